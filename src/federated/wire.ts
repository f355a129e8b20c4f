/**
 * Message format of the federated protocols on top of WebSocket frames (the `ws` library does the
 * framing, masking and per-message size limit). One binary WebSocket message =
 *   u32 big-endian header length | header (UTF-8 JSON) | payload bytes (vectors, little-endian).
 * Byte strings in the header (public keys, sealed shares, Shamir shares) are base64.
 * Every message is validated on receipt: a malformed one is a WireError naming what is wrong, and
 * the receiver closes the connection (the sender becomes a dropout); nothing partially parsed is used.
 */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** Largest JSON header accepted (the routed shares of 1,000 clients are ~230 KB). */
export const MAX_HEADER_BYTES = 8 * 1024 * 1024;

export const MESSAGE_TYPES = ['hello', 'welcome', 'round', 'keys', 'roster', 'shares', 'routed', 'masked', 'unmask', 'unmask-shares', 'abort', 'done', 'error'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface Header {
  type: MessageType;
  round?: string;
  [k: string]: unknown;
}

export interface Message {
  header: Header;
  payload: Uint8Array;
}

export function encode(header: Header, payload?: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  if (h.length > MAX_HEADER_BYTES) throw new WireError(`message header of ${h.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length);
  return payload && payload.length ? Buffer.concat([len, h, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)]) : Buffer.concat([len, h]);
}

export function decode(data: Buffer, isBinary: boolean): Message {
  if (!isBinary) throw new WireError('text frame (the protocol uses binary frames only)');
  if (data.length < 4) throw new WireError(`frame of ${data.length} bytes is shorter than its length prefix`);
  const n = data.readUInt32BE(0);
  if (n > MAX_HEADER_BYTES || n > data.length - 4) throw new WireError(`header length ${n} exceeds the frame (${data.length - 4} bytes) or the limit`);
  let header: unknown;
  try {
    header = JSON.parse(data.subarray(4, 4 + n).toString('utf8'));
  } catch {
    throw new WireError('header is not valid JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new WireError('header is not a JSON object');
  const type = (header as { type?: unknown }).type;
  if (typeof type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(type)) throw new WireError(`unknown message type ${JSON.stringify(type)}`);
  const round = (header as { round?: unknown }).round;
  if (round !== undefined && (typeof round !== 'string' || round.length > 64)) throw new WireError(`${type}: round must be a short string`);
  // Copy the payload so it is 4-byte aligned and owned (views into ws buffers are not).
  const payload = new Uint8Array(data.length - 4 - n);
  payload.set(data.subarray(4 + n));
  return { header: header as Header, payload };
}

// ---------------------------------------------------------------- field readers ----

export function int(h: Header, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new WireError(`${h.type}: field ${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

export function str(h: Header, key: string, maxLen = 4096): string {
  const v = h[key];
  if (typeof v !== 'string' || v.length > maxLen) throw new WireError(`${h.type}: field ${key} must be a string of at most ${maxLen} characters`);
  return v;
}

export function ints(h: Header, key: string, maxLen: number): number[] {
  const v = h[key];
  if (!Array.isArray(v) || v.length > maxLen || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 1)) throw new WireError(`${h.type}: field ${key} must be a list of at most ${maxLen} positive integers`);
  return v as number[];
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function bytes(v: unknown, what: string, exactLength?: number, maxLength = 1 << 20): Uint8Array {
  if (typeof v !== 'string' || v.length > ((maxLength + 2) / 3) * 4 + 4 || !B64.test(v)) throw new WireError(`${what} must be base64`);
  const b = new Uint8Array(Buffer.from(v, 'base64'));
  if (exactLength !== undefined && b.length !== exactLength) throw new WireError(`${what} must be ${exactLength} bytes, got ${b.length}`);
  return b;
}

export function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function objects(h: Header, key: string, maxLen: number): Record<string, unknown>[] {
  const v = h[key];
  if (!Array.isArray(v) || v.length > maxLen || v.some((x) => !x || typeof x !== 'object' || Array.isArray(x))) throw new WireError(`${h.type}: field ${key} must be a list of at most ${maxLen} objects`);
  return v as Record<string, unknown>[];
}

export function u32Payload(m: Message, dim: number): Uint32Array {
  if (m.payload.length !== 4 * dim) throw new WireError(`${m.header.type}: payload must hold ${dim} uint32 values (${4 * dim} bytes), got ${m.payload.length} bytes`);
  return new Uint32Array(m.payload.buffer, m.payload.byteOffset, dim);
}
