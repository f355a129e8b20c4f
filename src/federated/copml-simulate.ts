/**
 * COPML parties over the WebSocket transport (copml.ts has the arithmetic and the method notes).
 *
 * Roles: N client parties, each a data owner AND a worker; one server, the decoder (it holds the
 * model, decodes the gradient and updates the model; it never holds data). Protocol:
 *   1. keys    each party sends an X25519 public key; the server broadcasts the roster and the
 *              public parameters (p, K, T, r, fixed point, α, β) in `roster`.
 *   2. shares  each party Lagrange-encodes its own rows [x | y] (K blocks + T random blocks) into
 *              N shares and sends share i to party i sealed with AES-256-GCM under the X25519/HKDF
 *              key of the pair (routed by the server, which sees only ciphertext).
 *   3. rounds  the server Lagrange-encodes the model w (T random vectors) and sends w̃_i to party i
 *              (`round`); party i returns f(X̃_i, w̃_i) over all the coded rows it holds (`masked`);
 *              as soon as (2r+1)(K+T−1)+1 results are in (stragglers and dropouts beyond that are
 *              tolerated), the server decodes Σ_k f(X_k, w) = the gradient and steps.
 *   4. done.
 * Only ciphertext, coded shares and the gradient cross the wire; no party sees another's rows.
 */
import WebSocket from 'ws';
import { FedServer } from './server.js';
import { PROTOCOL_VERSION } from './server.js';
import { Connection, PeerGone } from './transport.js';
import { agree, openShares, sealShares, x25519Generate } from './secagg.js';
import { b64, bytes, int, objects, type Message } from './wire.js';
import {
  CopmlError,
  P127,
  P61,
  accuracy,
  codeParams,
  codedGradient,
  dequantize,
  fieldCoefficients,
  gradientBits,
  lccDecodeSum,
  lccEncode,
  needed,
  quantize,
  toBlocks,
  type Binary,
  type CodeParams,
  type FixedPoint,
} from './copml.js';

export function elementBytes(p: bigint): number {
  return p.toString(2).length <= 64 ? 8 : 16;
}

export function fieldToBuffer(v: readonly bigint[], p: bigint): Uint8Array {
  const eb = elementBytes(p);
  const out = new BigUint64Array((v.length * eb) / 8);
  if (eb === 8) for (let i = 0; i < v.length; i++) out[i] = v[i]!;
  else
    for (let i = 0; i < v.length; i++) {
      out[2 * i] = v[i]! & 0xffffffffffffffffn;
      out[2 * i + 1] = v[i]! >> 64n;
    }
  return new Uint8Array(out.buffer);
}

export function bufferToField(b: Uint8Array, p: bigint, expected?: number): bigint[] {
  const eb = elementBytes(p);
  if (b.length % eb !== 0 || (expected !== undefined && b.length !== expected * eb)) throw new CopmlError(`field vector of ${b.length} bytes, expected ${expected ?? '?'} elements of ${eb} bytes`);
  const copy = new Uint8Array(b);
  const w = new BigUint64Array(copy.buffer);
  const n = b.length / eb;
  const out: bigint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = eb === 8 ? w[i]! : w[2 * i]! | (w[2 * i + 1]! << 64n);
    if (v >= p) throw new CopmlError('field element out of range');
    out[i] = v;
  }
  return out;
}

export interface CopmlPlan {
  p: bigint;
  N: number;
  K: number;
  T: number;
  r: number;
  fp: FixedPoint;
  /** ĝ's real coefficients c_0..c_r. */
  coef: number[];
  d: number;
  iterations: number;
  lr: number;
  /** Total training rows m (public): the step is w ← w − (lr/m)·gradient. */
  m: number;
}

function planHeader(pl: CopmlPlan): Record<string, unknown> {
  return { p: pl.p.toString(), N: pl.N, K: pl.K, T: pl.T, r: pl.r, lx: pl.fp.lx, lw: pl.fp.lw, lc: pl.fp.lc, coef: pl.coef, d: pl.d };
}

// ---------------------------------------------------------------- party ----

export interface CopmlPartyOptions {
  url: string;
  /** This party's own rows (the intercept column included in x). */
  data: Binary;
  timeoutMs: number;
  maxPayload: number;
  /** Tests/dropouts: stop (disconnect) before answering this iteration. */
  dieAtIteration?: number;
  log?: (line: string) => void;
}

export interface CopmlPartyResult {
  id: number;
  iterations: number;
  bytesSent: number;
  bytesReceived: number;
  ended: string;
}

export async function runCopmlParty(o: CopmlPartyOptions): Promise<CopmlPartyResult> {
  const conn = await new Promise<Connection>((resolve, reject) => {
    const ws = new WebSocket(o.url, { maxPayload: o.maxPayload, perMessageDeflate: false });
    ws.once('open', () => resolve(new Connection(ws, 'server')));
    ws.once('error', (e) => reject(new PeerGone(`cannot connect to ${o.url}: ${e.message}`)));
  });
  let iterations = 0;
  const result = (ended: string): CopmlPartyResult => ({ id, iterations, bytesSent: conn.bytesSent, bytesReceived: conn.bytesReceived, ended });
  let id = 0;
  try {
    await conn.send({ type: 'hello', version: PROTOCOL_VERSION });
    id = int((await conn.next('welcome', o.timeoutMs)).header, 'id', 1);
    const keys = x25519Generate();
    await conn.send({ type: 'keys', round: 'copml', publicKey: b64(keys.publicKey) });
    const roster = await conn.next('roster', o.timeoutMs, 'copml');
    const h = roster.header;
    const p = BigInt(String(h.p));
    if (p !== P61 && p !== P127) throw new CopmlError(`roster: unsupported field modulus ${String(h.p).slice(0, 60)}`);
    const N = int(h, 'N', 1);
    const K = int(h, 'K', 1);
    const T = int(h, 'T', 0);
    const r = int(h, 'r', 1, 3);
    const d = int(h, 'd', 1);
    const fp: FixedPoint = { lx: int(h, 'lx'), lw: int(h, 'lw'), lc: int(h, 'lc') };
    const coef = (h.coef as unknown[]).map(Number);
    if (coef.length !== r + 1 || coef.some((v) => !Number.isFinite(v))) throw new CopmlError(`roster: ${coef.length} sigmoid coefficients for degree ${r}`);
    if (d !== o.data.d) throw new CopmlError(`server expects ${d} features, this party has ${o.data.d}`);
    if (T < 1) throw new CopmlError('this party refuses T = 0 (no privacy against a single other party)');
    const code = codeParams(p, N, K, T);
    const peers = objects(h, 'keys', 100_000).map((e) => ({ id: Number(e.id), publicKey: bytes(e.publicKey, 'publicKey', 32) }));
    const sessionKey = (other: number): Uint8Array => agree(keys.secret, peers.find((q) => q.id === other)!.publicKey, `copml-${Math.min(id, other)}-${Math.max(id, other)}`, 'copml');
    // Own rows → K blocks (+T random) → N coded shares, one sealed per party.
    const { blocks, rowsPerBlock } = toBlocks(o.data.x, o.data.y, o.data.count, d, K, fp.lx, p);
    const shares = lccEncode(blocks, code);
    const sealed = shares.map((s, i) => sealShares(sessionKey(i + 1), 'copml', id, i + 1, fieldToBuffer(s, p)));
    const lens = sealed.map((s) => s.length);
    await conn.send({ type: 'shares', round: 'copml', lengths: lens, rows: rowsPerBlock }, Buffer.concat(sealed.map((s) => Buffer.from(s))));
    // Coded rows from every owner (including itself), stacked: the gradient is a sum over rows.
    const routed = await conn.next('routed', o.timeoutMs, 'copml');
    const froms = objects(routed.header, 'parts', N).map((e) => ({ from: Number(e.from), length: Number(e.length), rows: Number(e.rows) }));
    const coded: bigint[] = [];
    let codedRows = 0;
    let off = 0;
    for (const f of froms) {
      const plain = openShares(sessionKey(f.from), 'copml', f.from, id, routed.payload.subarray(off, off + f.length));
      off += f.length;
      const v = bufferToField(plain, p, f.rows * (d + 1));
      for (const x of v) coded.push(x);
      codedRows += f.rows;
    }
    const { c, yScale } = fieldCoefficients(coef, fp, p);
    o.log?.(`copml party ${id}: ${o.data.count} own rows, holds ${codedRows} coded rows from ${froms.length} owners`);
    for (;;) {
      const m: Message = await conn.next('round', o.timeoutMs);
      if (m.header.stop === true) {
        conn.close();
        return result('done');
      }
      const it = int(m.header, 'iteration', 1);
      if (o.dieAtIteration === it) {
        conn.kill();
        return result('died');
      }
      const w = bufferToField(m.payload, p, d);
      const g = codedGradient(coded, codedRows, d, w, c, yScale, p);
      await conn.send({ type: 'masked', round: m.header.round }, fieldToBuffer(g, p));
      iterations++;
    }
  } catch (e) {
    conn.close();
    return result((e as Error).message);
  }
}

// ---------------------------------------------------------------- decoder / server ----

export interface CopmlServerOptions {
  plan: CopmlPlan;
  test: Binary;
  timeoutMs: number;
  maxPayload: number;
  host?: string;
  port?: number;
  log?: (line: string) => void;
  onIteration?: (it: number, w: Float64Array, responders: number) => void;
  /** Called with the listening URL once the server is up. */
  onListening?: (url: string) => void;
}

export interface CopmlServerResult {
  w: Float64Array;
  testAccuracy: number;
  iterations: number;
  bytesTotal: number;
  respondersPerIteration: number[];
}

export async function runCopmlServer(o: CopmlServerOptions): Promise<CopmlServerResult> {
  const pl = o.plan;
  const code: CodeParams = codeParams(pl.p, pl.N, pl.K, pl.T);
  const need = needed(pl.K, pl.T, pl.r);
  if (need > pl.N) throw new CopmlError(`N = ${pl.N} parties cannot decode degree ${pl.r} with K = ${pl.K}, T = ${pl.T}: need N ≥ (2r+1)(K+T−1)+1 = ${need}`);
  const server = await FedServer.listen({ host: o.host, port: o.port ?? 0, maxPayload: o.maxPayload, phaseTimeoutMs: o.timeoutMs, log: o.log });
  o.onListening?.(server.url);
  const bytes = (): number => [...server.clients.values()].reduce((s, c) => s + c.bytesSent + c.bytesReceived, 0);
  const responders: number[] = [];
  try {
    await server.waitForClients(pl.N, o.timeoutMs);
    const ids = [...server.clients.keys()];
    const conns = ids.map((i) => server.clients.get(i)!);
    const keyMsgs = await Promise.all(conns.map((c) => c.next('keys', o.timeoutMs, 'copml')));
    const roster = ids.map((id, k) => ({ id, publicKey: b64(bytes_(keyMsgs[k]!)) }));
    await Promise.all(conns.map((c) => c.send({ type: 'roster', round: 'copml', keys: roster, ...planHeader(pl) })));
    // Route sealed shares: owner j's i-th ciphertext goes to party i (the server sees ciphertext only).
    const shareMsgs = await Promise.all(conns.map((c) => c.next('shares', o.timeoutMs, 'copml')));
    const inbox: { from: number; rows: number; ct: Buffer }[][] = ids.map(() => []);
    shareMsgs.forEach((m, j) => {
      const lens = m.header.lengths as number[];
      if (!Array.isArray(lens) || lens.length !== pl.N) throw new CopmlError(`party ${ids[j]} sent ${String(lens?.length)} shares, expected ${pl.N}`);
      const rows = int(m.header, 'rows', 1);
      let off = 0;
      lens.forEach((len, i) => {
        inbox[i]!.push({ from: ids[j]!, rows, ct: Buffer.from(m.payload.subarray(off, off + len)) });
        off += len;
      });
      if (off !== m.payload.length) throw new CopmlError(`party ${ids[j]}: share lengths do not add up to the payload`);
    });
    await Promise.all(conns.map((c, i) => c.send({ type: 'routed', round: 'copml', parts: inbox[i]!.map((e) => ({ from: e.from, length: e.ct.length, rows: e.rows })) }, Buffer.concat(inbox[i]!.map((e) => e.ct)))));
    const gBits = gradientBits(pl.fp, pl.r);
    const w = new Float64Array(pl.d);
    for (let it = 1; it <= pl.iterations; it++) {
      const round = `copml-${it}`;
      const wq = Array.from(w, (v) => quantize(v, pl.fp.lw, pl.p));
      const wShares = lccEncode(Array.from({ length: pl.K }, () => wq), code);
      const live = ids.filter((id) => server.clients.get(id)!.open);
      if (live.length < need) throw new CopmlError(`iteration ${it}: only ${live.length} parties left, ${need} needed to decode`);
      const got = await firstResults(live, need, (id) => {
        const c = server.clients.get(id)!;
        return c.send({ type: 'round', round, iteration: it }, fieldToBuffer(wShares[id - 1]!, pl.p)).then(() => c.next('masked', o.timeoutMs, round));
      });
      if (got.length < need) throw new CopmlError(`iteration ${it}: ${got.length} results, ${need} needed to decode`);
      const use = got.slice(0, need);
      const grad = lccDecodeSum(code, use.map((g) => g.id), use.map((g) => bufferToField(g.m.payload, pl.p, pl.d)));
      for (let j = 0; j < pl.d; j++) w[j]! -= (pl.lr / pl.m) * dequantize(grad[j]!, gBits, pl.p);
      responders.push(got.length);
      o.onIteration?.(it, w, got.length);
    }
    await Promise.all(ids.map((id) => server.clients.get(id)!).filter((c) => c.open).map((c) => c.send({ type: 'round', round: 'copml-stop', stop: true }).catch(() => undefined)));
    return { w, testAccuracy: accuracy(w, o.test), iterations: pl.iterations, bytesTotal: bytes(), respondersPerIteration: responders };
  } finally {
    await server.close({ iterations: responders.length }).catch(() => undefined);
  }
}

function bytes_(m: Message): Uint8Array {
  return bytes(m.header.publicKey, 'publicKey', 32);
}

/** Resolves with the results of the first `need` parties to answer (or all that answered once the rest failed). */
function firstResults(ids: number[], need: number, ask: (id: number) => Promise<Message>): Promise<{ id: number; m: Message }[]> {
  return new Promise((resolve) => {
    const got: { id: number; m: Message }[] = [];
    let settled = 0;
    for (const id of ids)
      ask(id).then(
        (m) => {
          got.push({ id, m });
          settled++;
          if (got.length === need || settled === ids.length) resolve(got.slice());
        },
        () => {
          settled++;
          if (settled === ids.length) resolve(got.slice());
        },
      );
  });
}

// ---------------------------------------------------------------- simulation ----

export interface CopmlSimOptions {
  plan: CopmlPlan;
  /** One data set per party (its own rows). */
  parts: Binary[];
  test: Binary;
  timeoutMs?: number;
  dieAt?: (id: number) => number | undefined;
  log?: (line: string) => void;
  onIteration?: (it: number, w: Float64Array, responders: number) => void;
}

export async function simulateCopml(o: CopmlSimOptions): Promise<CopmlServerResult & { parties: CopmlPartyResult[] }> {
  const timeoutMs = o.timeoutMs ?? 600_000;
  const maxRows = Math.max(...o.parts.map((q) => q.count));
  const eb = elementBytes(o.plan.p);
  const maxPayload = Math.max(1 << 20, 2 * o.plan.N * (Math.ceil(maxRows / o.plan.K) * (o.plan.d + 1) * eb + 64));
  let url = '';
  let ready!: () => void;
  const up = new Promise<void>((res) => (ready = res));
  const serverRun = runCopmlServer({ plan: o.plan, test: o.test, timeoutMs, maxPayload, log: o.log, onIteration: o.onIteration, onListening: (u) => ((url = u), ready()) });
  await Promise.race([up, serverRun.then(() => undefined)]);
  // Parties join one after another so ids match part order (the server numbers them by arrival).
  const parties: Promise<CopmlPartyResult>[] = [];
  for (let k = 0; k < o.parts.length; k++) {
    const part = o.parts[k]!;
    const die = o.dieAt?.(k + 1);
    parties.push(runCopmlParty({ url, data: part, timeoutMs, maxPayload, log: o.log, ...(die !== undefined ? { dieAtIteration: die } : {}) }));
  }
  const [res, ps] = await Promise.all([serverRun, Promise.all(parties)]);
  return { ...res, parties: ps };
}
