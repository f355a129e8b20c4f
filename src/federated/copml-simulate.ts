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
 *
 * The parties may run in one process (`simulateCopml`, `fed simulate`) or each in its own
 * (`fed server` + N × `fed client --shard k --shards N`): each party declares its row count and
 * shard in `keys` (public), the server checks the N shards are distinct and steps with the total
 * row count. Every party must complete the setup (its rows are coded into everyone's shares); after
 * it, a party that dies is a dropout, tolerated while (2r+1)(K+T−1)+1 parties answer; below that the
 * server stops with an error and releases no model. Degree 1 (GF(2^61 − 1)) runs on the Float64-limb
 * kernels of copml-gf61.ts; degree 3 (GF(2^127 − 1)) on the BigInt reference of copml.ts.
 */
import { FedServer } from './server.js';
import { PROTOCOL_VERSION } from './server.js';
import { connect } from './client.js';
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
  lagrangeBasisAt,
  lccDecodeSum,
  lccEncode,
  needed,
  quantize,
  toBlocks,
  type Binary,
  type CodeParams,
  type FixedPoint,
} from './copml.js';
import { f61Bytes, f61CodedGradient, f61Combine, f61FromBytes, f61FromInt, f61Random, f61ToBigints, type F61Vec } from './copml-gf61.js';

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

// ---------------------------------------------------------------- field backends ----

/**
 * The arithmetic behind the parties and the decoder, at the level of wire bytes: Float64-limb
 * GF(2^61 − 1) vectors (copml-gf61.ts; degree 1) or BigInt vectors (2^127 − 1; degree 3). Both
 * send 8 or 16 little-endian bytes per element.
 */
export interface CopmlFieldOps {
  /** Own rows [x | y] → K quantised blocks (zero rows pad) + T random blocks → N shares, as bytes. */
  encodeOwnRows(data: Binary, code: CodeParams, lx: number): { shares: Uint8Array[]; rowsPerBlock: number };
  /** Checks and stacks the coded rows received from every owner; returns the per-iteration computation. */
  holdCodedRows(parts: readonly { bytes: Uint8Array; rows: number }[], d: number): (w: Uint8Array, c: readonly bigint[], yScale: bigint) => Uint8Array;
  /** The model (quantised) at β_1..β_K with T random vectors → N shares, as bytes. */
  encodeModel(wq: readonly bigint[], code: CodeParams): Uint8Array[];
  /** Σ_k f(X_k, w) from the results (bytes) of the parties `ids` (1-based). */
  decodeSum(code: CodeParams, ids: readonly number[], results: readonly Uint8Array[], d: number): bigint[];
}

function gf61Ops(): CopmlFieldOps {
  const p = P61;
  const combineAt = (code: CodeParams, at: bigint, vecs: F61Vec[]): F61Vec => f61Combine(lagrangeBasisAt(code.betas, at, p), vecs);
  return {
    encodeOwnRows(data, code, lx) {
      const K = code.K;
      const d = data.d;
      const rowsPerBlock = Math.max(1, Math.ceil(data.count / K));
      const scale = 2 ** lx;
      const blocks: F61Vec[] = [];
      for (let k = 0; k < K; k++) {
        const b = new Uint32Array(2 * rowsPerBlock * (d + 1));
        for (let q = 0; q < rowsPerBlock; q++) {
          const i = k * rowsPerBlock + q;
          if (i >= data.count) break;
          for (let j = 0; j < d; j++) f61FromInt(Math.round(data.x[i * d + j]! * scale), b, q * (d + 1) + j);
          f61FromInt(Math.round(data.y[i]! * scale), b, q * (d + 1) + d);
        }
        blocks.push(b);
      }
      const all = [...blocks];
      for (let t = 0; t < code.T; t++) all.push(f61Random(rowsPerBlock * (d + 1)));
      return { shares: code.alphas.map((a) => f61Bytes(combineAt(code, a, all))), rowsPerBlock };
    },
    holdCodedRows(parts, d) {
      const total = parts.reduce((s, q) => s + q.rows, 0);
      const rows = new Uint32Array(2 * total * (d + 1));
      let off = 0;
      for (const q of parts) {
        const v = f61FromBytes(q.bytes, q.rows * (d + 1));
        rows.set(v, off);
        off += v.length;
      }
      return (w, c, yScale) => f61Bytes(f61CodedGradient(rows, total, d, f61FromBytes(w, d), c, yScale));
    },
    encodeModel(wq, code) {
      const w = fieldToBuffer(wq as bigint[], p);
      const base = new Uint32Array(w.buffer, w.byteOffset, w.length / 4);
      const all: F61Vec[] = Array.from({ length: code.K }, () => base);
      for (let t = 0; t < code.T; t++) all.push(f61Random(wq.length));
      return code.alphas.map((a) => f61Bytes(combineAt(code, a, all)));
    },
    decodeSum(code, ids, results, d) {
      // Σ_k Σ_i ℓ_i(β_k) y_i = Σ_i (Σ_k ℓ_i(β_k)) y_i: one combination.
      const xs = ids.map((i) => code.alphas[i - 1]!);
      const coef = new Array<bigint>(ids.length).fill(0n);
      for (const b of code.betas.slice(0, code.K)) lagrangeBasisAt(xs, b, p).forEach((v, i) => (coef[i] = (coef[i]! + v) % p));
      return f61ToBigints(f61Combine(coef, results.map((r) => f61FromBytes(r, d))));
    },
  };
}

function bigintOps(p: bigint): CopmlFieldOps {
  return {
    encodeOwnRows(data, code, lx) {
      const { blocks, rowsPerBlock } = toBlocks(data.x, data.y, data.count, data.d, code.K, lx, p);
      return { shares: lccEncode(blocks, code).map((s) => fieldToBuffer(s, p)), rowsPerBlock };
    },
    holdCodedRows(parts, d) {
      const coded: bigint[] = [];
      let total = 0;
      for (const q of parts) {
        for (const x of bufferToField(q.bytes, p, q.rows * (d + 1))) coded.push(x);
        total += q.rows;
      }
      return (w, c, yScale) => fieldToBuffer(codedGradient(coded, total, d, bufferToField(w, p, d), c, yScale, p), p);
    },
    encodeModel(wq, code) {
      return lccEncode(Array.from({ length: code.K }, () => wq as bigint[]), code).map((s) => fieldToBuffer(s, p));
    },
    decodeSum(code, ids, results, d) {
      return lccDecodeSum(code, ids, results.map((r) => bufferToField(r, p, d)));
    },
  };
}

export function copmlFieldOps(p: bigint): CopmlFieldOps {
  if (p === P61) return gf61Ops();
  if (p === P127) return bigintOps(p);
  throw new CopmlError(`unsupported field modulus ${p.toString().slice(0, 60)}`);
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
  /** Data set name the parties must hold (checked by each party when it knows its own). */
  data?: string;
}

function planHeader(pl: CopmlPlan): Record<string, unknown> {
  return { p: pl.p.toString(), N: pl.N, K: pl.K, T: pl.T, r: pl.r, lx: pl.fp.lx, lw: pl.fp.lw, lc: pl.fp.lc, coef: pl.coef, d: pl.d, ...(pl.data ? { data: pl.data } : {}) };
}

/** Largest message a separate-process party or server accepts (a MNIST party's shares are ~36 MB). */
export const COPML_MAX_PAYLOAD = 1 << 30;

// ---------------------------------------------------------------- party ----

export interface CopmlPartyOptions {
  url: string;
  /** This party's own rows (the intercept column included in x). */
  data: Binary;
  /** The data set's name, checked against the server's (separate processes). */
  dataName?: string;
  /** Which slice of the rows this party holds (rows i with i mod of = index − 1); the server checks that the N slices are distinct. */
  shard?: { index: number; of: number };
  timeoutMs: number;
  maxPayload: number;
  /** Keep retrying a refused connection this long (the server may still be loading). */
  connectRetryMs?: number;
  /** Tests/dropouts: stop (disconnect) before answering this iteration. */
  dieAtIteration?: number;
  /** Tests: stop answering at this iteration (log "holding at iteration I") and wait to be killed. */
  holdAtIteration?: number;
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
  const conn = await connect(o.url, o.maxPayload, o.connectRetryMs ?? 0);
  let iterations = 0;
  const result = (ended: string): CopmlPartyResult => ({ id, iterations, bytesSent: conn.bytesSent, bytesReceived: conn.bytesReceived, ended });
  let id = 0;
  try {
    await conn.send({ type: 'hello', version: PROTOCOL_VERSION });
    id = int((await conn.next('welcome', o.timeoutMs)).header, 'id', 1);
    const keys = x25519Generate();
    await conn.send({ type: 'keys', round: 'copml', publicKey: b64(keys.publicKey), rows: o.data.count, ...(o.shard ? { shard: o.shard.index, shards: o.shard.of } : {}) });
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
    if (o.dataName !== undefined && h.data !== undefined && h.data !== o.dataName) throw new CopmlError(`the server trains on ${String(h.data)}, this party holds ${o.dataName}`);
    if (d !== o.data.d) throw new CopmlError(`server expects ${d} features, this party has ${o.data.d}`);
    if (T < 1) throw new CopmlError('this party refuses T = 0 (no privacy against a single other party)');
    if (needed(K, T, r) > N) throw new CopmlError(`roster: N = ${N} cannot decode K = ${K}, T = ${T}, degree ${r}`);
    const code = codeParams(p, N, K, T);
    const ops = copmlFieldOps(p);
    const peers = objects(h, 'keys', 100_000).map((e) => ({ id: Number(e.id), publicKey: bytes(e.publicKey, 'publicKey', 32) }));
    if (peers.length !== N) throw new CopmlError(`roster lists ${peers.length} keys for N = ${N}`);
    const sessionKey = (other: number): Uint8Array => {
      const peer = peers.find((q) => q.id === other);
      if (!peer) throw new CopmlError(`no key for party ${other} in the roster`);
      return agree(keys.secret, peer.publicKey, `copml-${Math.min(id, other)}-${Math.max(id, other)}`, 'copml');
    };
    // Own rows → K blocks (+T random) → N coded shares, one sealed per party.
    const { shares, rowsPerBlock } = ops.encodeOwnRows(o.data, code, fp.lx);
    const sealed = shares.map((s, i) => sealShares(sessionKey(i + 1), 'copml', id, i + 1, s));
    await conn.send({ type: 'shares', round: 'copml', lengths: sealed.map((s) => s.length), rows: rowsPerBlock }, Buffer.concat(sealed.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))));
    // Coded rows from every owner (including itself), stacked: the gradient is a sum over rows.
    const routed = await conn.next('routed', o.timeoutMs, 'copml');
    const froms = objects(routed.header, 'parts', N).map((e) => ({ from: Number(e.from), length: Number(e.length), rows: Number(e.rows) }));
    const parts: { bytes: Uint8Array; rows: number }[] = [];
    let off = 0;
    for (const f of froms) {
      if (!Number.isInteger(f.length) || f.length < 0 || off + f.length > routed.payload.length) throw new CopmlError(`routed shares: bad length from party ${f.from}`);
      if (!Number.isInteger(f.rows) || f.rows < 1) throw new CopmlError(`routed shares: bad row count from party ${f.from}`);
      parts.push({ bytes: openShares(sessionKey(f.from), 'copml', f.from, id, routed.payload.subarray(off, off + f.length)), rows: f.rows });
      off += f.length;
    }
    const answer = ops.holdCodedRows(parts, d);
    const { c, yScale } = fieldCoefficients(coef, fp, p);
    o.log?.(`copml party ${id}: ${o.data.count} own rows, holds ${parts.reduce((s, q) => s + q.rows, 0)} coded rows from ${froms.length} owners`);
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
      if (o.holdAtIteration === it) {
        o.log?.(`copml party ${id}: holding at iteration ${it}`);
        await new Promise<never>(() => undefined);
      }
      await conn.send({ type: 'masked', round: m.header.round }, answer(m.payload, c, yScale));
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
  /** How long to wait for all N parties to connect (default timeoutMs). */
  joinTimeoutMs?: number;
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
  /** Training rows, the sum of the row counts the parties declared (public). */
  trainRows: number;
}

export async function runCopmlServer(o: CopmlServerOptions): Promise<CopmlServerResult> {
  const pl = o.plan;
  const code: CodeParams = codeParams(pl.p, pl.N, pl.K, pl.T);
  const ops = copmlFieldOps(pl.p);
  const need = needed(pl.K, pl.T, pl.r);
  if (need > pl.N) throw new CopmlError(`N = ${pl.N} parties cannot decode degree ${pl.r} with K = ${pl.K}, T = ${pl.T}: need N ≥ (2r+1)(K+T−1)+1 = ${need}`);
  const server = await FedServer.listen({ host: o.host, port: o.port ?? 0, maxPayload: o.maxPayload, phaseTimeoutMs: o.timeoutMs, log: o.log });
  o.onListening?.(server.url);
  const bytes = (): number => [...server.clients.values()].reduce((s, c) => s + c.bytesSent + c.bytesReceived, 0);
  const responders: number[] = [];
  const setup = async <X>(what: string, f: () => Promise<X>): Promise<X> => {
    try {
      return await f();
    } catch (e) {
      throw new CopmlError(`setup (${what}): ${(e as Error).message}; every party must take part in the setup (its rows are coded into everyone's shares)`);
    }
  };
  try {
    await server.waitForClients(pl.N, o.joinTimeoutMs ?? o.timeoutMs);
    const ids = [...server.clients.keys()];
    const conns = ids.map((i) => server.clients.get(i)!);
    const keyMsgs = await setup('keys', () => Promise.all(conns.map((c) => c.next('keys', o.timeoutMs, 'copml'))));
    const rows = keyMsgs.map((m) => int(m.header, 'rows', 1));
    const shardOf = keyMsgs.map((m) => (m.header.shard === undefined ? undefined : { index: int(m.header, 'shard', 1), of: int(m.header, 'shards', 1) }));
    if (shardOf.some((s) => s !== undefined)) {
      const seen = new Set<number>();
      shardOf.forEach((s, k) => {
        if (!s) throw new CopmlError(`party ${ids[k]} did not say which shard it holds`);
        if (s.of !== pl.N) throw new CopmlError(`party ${ids[k]} holds shard ${s.index} of ${s.of}, but this run has ${pl.N} parties (--shards must equal --clients)`);
        if (s.index > s.of || seen.has(s.index)) throw new CopmlError(`party ${ids[k]}: shard ${s.index} is out of range or held by another party`);
        seen.add(s.index);
      });
    }
    const trainRows = rows.reduce((a, b) => a + b, 0);
    o.log?.(`copml server: ${pl.N} parties, ${trainRows} training rows in all (${rows.join(', ')})`);
    const roster = ids.map((id, k) => ({ id, publicKey: b64(bytes_(keyMsgs[k]!)) }));
    await setup('roster', () => Promise.all(conns.map((c) => c.send({ type: 'roster', round: 'copml', keys: roster, ...planHeader(pl) }))));
    // Route sealed shares: owner j's i-th ciphertext goes to party i (the server sees ciphertext only).
    const shareMsgs = await setup('shares', () => Promise.all(conns.map((c) => c.next('shares', o.timeoutMs, 'copml'))));
    const inbox: { from: number; rows: number; ct: Uint8Array }[][] = ids.map(() => []);
    shareMsgs.forEach((m, j) => {
      const lens = m.header.lengths as number[];
      if (!Array.isArray(lens) || lens.length !== pl.N || lens.some((l) => !Number.isInteger(l) || l < 0)) throw new CopmlError(`party ${ids[j]} sent ${String(lens?.length)} shares, expected ${pl.N}`);
      const rowsPerBlock = int(m.header, 'rows', 1);
      if (rowsPerBlock !== Math.max(1, Math.ceil(rows[j]! / pl.K))) throw new CopmlError(`party ${ids[j]} declared ${rows[j]} rows but sent blocks of ${rowsPerBlock}`);
      let off = 0;
      lens.forEach((len, i) => {
        inbox[i]!.push({ from: ids[j]!, rows: rowsPerBlock, ct: m.payload.subarray(off, off + len) }); // a view: copied once, into the routed message
        off += len;
      });
      if (off !== m.payload.length) throw new CopmlError(`party ${ids[j]}: share lengths do not add up to the payload`);
    });
    // A party that left after sending its shares is a dropout (its rows are in everyone else's shares).
    await Promise.all(conns.map((c, i) => c.send({ type: 'routed', round: 'copml', parts: inbox[i]!.map((e) => ({ from: e.from, length: e.ct.length, rows: e.rows })) }, Buffer.concat(inbox[i]!.map((e) => e.ct))).catch((e: Error) => o.log?.(`party ${ids[i]} is gone after the shares: ${e.message}`))));
    const gBits = gradientBits(pl.fp, pl.r);
    const w = new Float64Array(pl.d);
    for (let it = 1; it <= pl.iterations; it++) {
      const round = `copml-${it}`;
      const wq = Array.from(w, (v) => quantize(v, pl.fp.lw, pl.p));
      const wShares = ops.encodeModel(wq, code);
      const live = ids.filter((id) => server.clients.get(id)!.open);
      if (live.length < need) throw new CopmlError(`iteration ${it}: only ${live.length} of ${pl.N} parties left, ${need} needed to decode; stopped, no model released`);
      const got = await firstResults(live, need, (id) => {
        const c = server.clients.get(id)!;
        return c.send({ type: 'round', round, iteration: it }, wShares[id - 1]!).then(() => c.next('masked', o.timeoutMs, round));
      });
      if (got.length < need) throw new CopmlError(`iteration ${it}: ${got.length} of ${pl.N} parties answered, ${need} needed to decode; stopped, no model released`);
      const use = got.slice(0, need);
      const grad = ops.decodeSum(code, use.map((g) => g.id), use.map((g) => g.m.payload), pl.d);
      for (let j = 0; j < pl.d; j++) w[j]! -= (pl.lr / trainRows) * dequantize(grad[j]!, gBits, pl.p);
      responders.push(got.length);
      o.onIteration?.(it, w, got.length);
    }
    await Promise.all(ids.map((id) => server.clients.get(id)!).filter((c) => c.open).map((c) => c.send({ type: 'round', round: 'copml-stop', stop: true }).catch(() => undefined)));
    return { w, testAccuracy: accuracy(w, o.test), iterations: pl.iterations, bytesTotal: bytes(), respondersPerIteration: responders, trainRows };
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
    parties.push(runCopmlParty({ url, data: part, shard: { index: k + 1, of: o.parts.length }, timeoutMs, maxPayload, log: o.log, ...(die !== undefined ? { dieAtIteration: die } : {}) }));
  }
  const [res, ps] = await Promise.all([serverRun, Promise.all(parties)]);
  return { ...res, parties: ps };
}
