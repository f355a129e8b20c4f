/**
 * One party's end of a WebSocket connection (library `ws`: RFC 6455 framing, per-message size
 * limit `maxPayload` enforced before a message is buffered whole, close code 1009 when exceeded).
 * A Connection turns the socket into "wait for the next message of type X, with a deadline":
 * a closed socket, a timeout, a malformed message or an `error` message from the peer all reject
 * the wait with a one-line reason, so the caller can count the peer as a dropout and go on.
 */
import type WebSocket from 'ws';
import { decode, encode, WireError, type Header, type Message, type MessageType } from './wire.js';

export class PeerGone extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeerGone';
  }
}

/** Unrequested messages kept per connection (a protocol phase needs at most a few). */
const MAX_QUEUED = 64;

interface Waiter {
  type: MessageType;
  round?: string;
  resolve(m: Message): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

export class Connection {
  bytesSent = 0;
  bytesReceived = 0;
  /** Why the connection ended (undefined while open). */
  closedBecause: string | undefined;
  private readonly queue: Message[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly listeners: ((m: Message) => void)[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly label: string,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.bytesReceived += data.length;
      let m: Message;
      try {
        m = decode(data, isBinary);
      } catch (e) {
        this.fail(`malformed message from ${this.label}: ${(e as Error).message}`, 1007);
        return;
      }
      if (m.header.type === 'error') {
        // The peer refused something: reject the current wait (the round treats it as no answer).
        const w = this.waiters.shift();
        const msg = `${this.label} refused: ${typeof m.header.message === 'string' ? m.header.message.slice(0, 300) : 'no reason'}`;
        if (w) {
          clearTimeout(w.timer);
          w.reject(new PeerGone(msg));
        }
        return;
      }
      this.deliver(m);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const why = code === 1009 ? `${this.label} sent a message over the size limit (closed, code 1009)` : `${this.label} disconnected (code ${code}${reason.length ? `: ${reason.toString().slice(0, 200)}` : ''})`;
      this.closedBecause ??= why;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new PeerGone(this.closedBecause));
      }
    });
    ws.on('error', (e: Error) => {
      this.closedBecause ??= `${this.label}: ${e.message}`;
    });
  }

  get open(): boolean {
    return this.closedBecause === undefined && this.ws.readyState === 1;
  }

  /** Called for every message nobody waits for (used by the client's dispatch loop). */
  onMessage(f: (m: Message) => void): void {
    this.listeners.push(f);
    for (const m of this.queue.splice(0)) f(m);
  }

  send(header: Header, payload?: Uint8Array): Promise<void> {
    if (!this.open) return Promise.reject(new PeerGone(this.closedBecause ?? `${this.label} is not connected`));
    const frame = encode(header, payload);
    this.bytesSent += frame.length;
    return new Promise((resolve, reject) => this.ws.send(frame, { binary: true }, (e) => (e ? reject(new PeerGone(`${this.label}: send failed: ${e.message}`)) : resolve())));
  }

  /** The next message of `type` (for `round`, when given); stale messages of other rounds are dropped. */
  next(type: MessageType, timeoutMs: number, round?: string): Promise<Message> {
    // Messages of an earlier round (a late answer after its phase closed) are stale: drop them.
    if (round !== undefined) for (let k = this.queue.length - 1; k >= 0; k--) if (this.queue[k]!.header.round !== undefined && this.queue[k]!.header.round !== round) this.queue.splice(k, 1);
    const i = this.queue.findIndex((m) => m.header.type === type && (round === undefined || m.header.round === round));
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (!this.open) return Promise.reject(new PeerGone(this.closedBecause ?? `${this.label} is not connected`));
    return new Promise((resolve, reject) => {
      const w: Waiter = { type, round, resolve, reject };
      w.timer = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new PeerGone(`${this.label} did not send ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Protocol violation: tell the peer why (best effort), then close. */
  fail(reason: string, code = 1008): void {
    this.closedBecause ??= reason;
    try {
      if (this.ws.readyState === 1) this.ws.send(encode({ type: 'error', message: reason.slice(0, 500) }), { binary: true });
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      this.ws.terminate();
    }
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new PeerGone(reason));
    }
  }

  close(): void {
    this.closedBecause ??= 'closed';
    if (this.ws.readyState <= 1) this.ws.close(1000);
  }

  /** Abrupt end, as a crashed process would leave it (tests and --dropout). */
  kill(): void {
    this.closedBecause ??= 'killed';
    this.ws.terminate();
  }

  private deliver(m: Message): void {
    const i = this.waiters.findIndex((w) => w.type === m.header.type && (w.round === undefined || w.round === m.header.round));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(m);
      return;
    }
    if (this.listeners.length) for (const f of this.listeners) f(m);
    else {
      // A peer that floods messages nobody asked for is cut off instead of growing the queue.
      if (this.queue.length >= MAX_QUEUED) return this.fail(`${this.label} sent more than ${MAX_QUEUED} unexpected messages`);
      this.queue.push(m);
    }
  }
}

export { WireError };
