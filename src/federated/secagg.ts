/**
 * Secure aggregation after Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
 * Machine Learning" (CCS 2017), the honest-but-curious variant (their §4 without the signature and
 * consistency-check round), on the complete graph or on SecAgg+'s sparse graph (Bell et al. CCS
 * 2020; secagg-graph.ts): the server learns the sum of the surviving clients' vectors in
 * Z_{2^32}^d and nothing else, as long as it follows the protocol and the clients colluding with it
 * stay below the threshold (complete graph: fewer than t in all; SecAgg+: fewer than t among any
 * honest client's neighbours, with the statistical guarantee stated in secagg-graph.ts).
 *
 * Rounds (client u, server S; t = Shamir threshold, ids are 1..n and double as Shamir points;
 * H(u) = u's share holders: its graph neighbours N(u) and itself — everyone on the complete graph):
 *  0 AdvertiseKeys  u → S: two X25519 public keys (c_u for share encryption, s_u for masks).
 *                   S → u: the roster H(u) ∩ U1 with keys (>= t of them; U1 >= minSurvivors).
 *  1 ShareKeys      u: fresh self-mask seed b_u; Shamir t-of-|roster| shares of b_u and of s_u's
 *                   secret key; the shares for v are AES-256-GCM encrypted under
 *                   HKDF(X25519(c_u, c_v)), with (round, u, v) as associated data, and routed via S.
 *                   U2 = senders (>= minSurvivors); u is told U2 ∩ H(u) and |U2|.
 *  2 MaskedInput    u → S: y_u = x_u + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(HKDF(X25519(s_u, s_v))) mod 2^32
 *                   (+ when u < v, − when u > v, so every pair cancels). U3 = senders (>= minSurvivors).
 *  3 Unmasking      S → u: U3 ∩ H(u) and |U3|. u reveals, for each v ∈ U2 ∩ H(u), EITHER v's b
 *                   share (v ∈ U3) OR v's s-secret-key share (v ∉ U3) — never both: a client answers
 *                   one unmasking request per round and refuses any other survivor list.
 *  S: reconstructs b_v for survivors (removes self-masks) and s_v for dropouts with a surviving
 *  neighbour (recomputes and removes their pairwise masks); each needs t answering holders.
 *
 * minSurvivors (n − ⌊n/3⌋ by default) bounds every phase's count from below whatever the graph:
 * the DP protocols calibrate the distributed noise to that many survivors. On the complete graph
 * t = minSurvivors, as before.
 *
 * Why the self-mask: a client that is slow (not dead) in round 2 is first declared dropped (its
 * pairwise masks are removed) — were y_u then to arrive, it would be unmasked but for PRG(b_u).
 *
 * PRG: AES-256-CTR keystream (node:crypto) from a 32-byte seed, read as little-endian uint32 words.
 * Keys are fresh per round, so a (key, IV = 0) pair never repeats across rounds.
 *
 * Differs from the paper: no signatures/PKI (active-adversary variant) — a malicious server could
 * send different survivor lists to different clients, or a graph other than the seed's (clients
 * check that their roster is their neighbourhood of the public graph, but not the counts |U2|,
 * |U3| they are told); all key material from node:crypto (never seeded).
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { reconstruct, shareFromBytes, shareToBytes, split, SHARE_BYTES } from './shamir.js';
import { MaskGraph, completeThreshold } from './secagg-graph.js';

export class SecAggError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecAggError';
  }
}

/** Smallest survivor count that unmasks: n − floor(n/3) (tolerates up to 1/3 dropouts; > n/2). */
export function defaultThreshold(n: number): number {
  if (!Number.isInteger(n) || n < 2) throw new SecAggError(`secure aggregation needs at least 2 clients, got ${n}`);
  return completeThreshold(n);
}

// ------------------------------------------------------------------ primitives ----

export interface X25519Pair {
  secret: Uint8Array;
  publicKey: Uint8Array;
}

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * Raw 32-byte X25519 keys → KeyObjects through JWK: ~10× faster than DER/PKCS#8 import in Node 20
 * (DER import dominated a round at n = 100: 0.3 ms per public, 1 ms per private key). Node derives
 * the public part of a private JWK from `d` (an empty `x` is ignored); callers keep the objects.
 */
export function privateKeyObject(secret: Uint8Array): KeyObject {
  if (secret.length !== 32) throw new SecAggError(`an X25519 secret key is 32 bytes, got ${secret.length}`);
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secret), x: '' }, format: 'jwk' });
  } catch {
    // a Node that validates `x` of a private JWK: the slower PKCS#8 import
    return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' });
  }
}

export function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new SecAggError(`an X25519 public key is 32 bytes, got ${pub.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(pub) }, format: 'jwk' });
}

function publicBytes(priv: KeyObject): Uint8Array {
  const x = createPublicKey(priv).export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new SecAggError('X25519 key export failed');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

export function x25519PublicFromSecret(secret: Uint8Array): Uint8Array {
  return publicBytes(privateKeyObject(secret));
}

export function x25519Generate(): X25519Pair {
  const secret = new Uint8Array(randomBytes(32));
  return { secret, publicKey: x25519PublicFromSecret(secret) };
}

/** 32-byte key agreed by X25519 and HKDF-SHA256 from key objects (label separates mask and encryption keys). */
export function agreeKeys(priv: KeyObject, pub: KeyObject, label: string, round: string): Uint8Array {
  const shared = diffieHellman({ privateKey: priv, publicKey: pub });
  return new Uint8Array(hkdfSync('sha256', shared, Buffer.from(`dplens-secagg-${round}`), Buffer.from(label), 32));
}

/** 32-byte key agreed by X25519 and HKDF-SHA256 (label separates mask and encryption keys). */
export function agree(secret: Uint8Array, otherPublic: Uint8Array, label: string, round: string): Uint8Array {
  return agreeKeys(privateKeyObject(secret), publicKeyObject(otherPublic), label, round);
}

let zeros = Buffer.alloc(0);

/** dim uint32 words of AES-256-CTR keystream under `seed` (IV 0), little-endian. */
export function prg(seed: Uint8Array, dim: number): Uint32Array {
  if (seed.length !== 32) throw new SecAggError(`PRG seed is 32 bytes, got ${seed.length}`);
  if (zeros.length < 4 * dim) zeros = Buffer.alloc(4 * dim);
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  const ks = Buffer.concat([c.update(zeros.subarray(0, 4 * dim)), c.final()]);
  const out = new Uint32Array(dim);
  for (let i = 0; i < dim; i++) out[i] = ks.readUInt32LE(4 * i);
  return out;
}

/** acc += sign · prg(seed) mod 2^32, without materialising a second array when possible. */
export function addPrg(acc: Uint32Array, seed: Uint8Array, sign: 1 | -1): void {
  const dim = acc.length;
  if (zeros.length < 4 * dim) zeros = Buffer.alloc(4 * dim);
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  const ks = c.update(zeros.subarray(0, 4 * dim));
  // The keystream buffer is fresh and 4-aligned only by luck; copy into an aligned view when not.
  const words = ks.byteOffset % 4 === 0 ? new Uint32Array(ks.buffer, ks.byteOffset, dim) : new Uint32Array(new Uint8Array(ks).buffer);
  if (sign === 1) for (let i = 0; i < dim; i++) acc[i] += words[i]!;
  else for (let i = 0; i < dim; i++) acc[i] -= words[i]!;
}

function aad(round: string, from: number, to: number): Buffer {
  return Buffer.from(`${round}|${from}|${to}`);
}

export function sealShares(key: Uint8Array, round: string, from: number, to: number, plain: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(round, from, to));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return new Uint8Array(Buffer.concat([iv, body, c.getAuthTag()]));
}

export function openShares(key: Uint8Array, round: string, from: number, to: number, sealed: Uint8Array): Uint8Array {
  if (sealed.length < 28) throw new SecAggError(`encrypted shares from ${from} are too short (${sealed.length} bytes)`);
  const buf = Buffer.from(sealed);
  const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
  d.setAAD(aad(round, from, to));
  d.setAuthTag(buf.subarray(buf.length - 16));
  try {
    return new Uint8Array(Buffer.concat([d.update(buf.subarray(12, buf.length - 16)), d.final()]));
  } catch {
    throw new SecAggError(`encrypted shares from client ${from} to ${to} fail authentication (tampered or misrouted)`);
  }
}

// ------------------------------------------------------------------ messages ----

export interface AdvertisedKeys {
  cPk: Uint8Array;
  sPk: Uint8Array;
}
export interface RosterEntry extends AdvertisedKeys {
  id: number;
}
export interface SealedShare {
  /** Sender (in routed lists) or recipient (in a client's upload). */
  peer: number;
  ct: Uint8Array;
}
export interface UnmaskShare {
  /** Whose secret this is a share of. */
  of: number;
  share: Uint8Array;
}
export interface UnmaskResponse {
  /** Self-mask seed shares of survivors (v ∈ U3). */
  b: UnmaskShare[];
  /** Mask secret-key shares of dropouts (v ∈ U2 \ U3). */
  s: UnmaskShare[];
}

const PLAIN_BYTES = 8 + 2 * SHARE_BYTES;

function isSubset(a: readonly number[], b: ReadonlySet<number>): boolean {
  return a.every((x) => b.has(x));
}

function checkIds(ids: readonly number[], what: string): void {
  if (!Array.isArray(ids) || ids.some((x) => !Number.isInteger(x) || x < 1) || new Set(ids).size !== ids.length) throw new SecAggError(`${what}: ids must be distinct integers >= 1`);
}

/** Options of one round shared by client and server. */
export interface RoundGraph {
  /** The masking graph (default: complete over the ids the round sees). */
  graph?: MaskGraph;
  /** Fewest clients any phase may continue with (default t; the complete graph's t = n − ⌊n/3⌋). */
  minSurvivors?: number;
}

// ------------------------------------------------------------------ client ----

type ClientPhase = 'new' | 'advertised' | 'shared' | 'masked' | 'unmasked';

/** One client's state for one aggregation round (create a new one per round: keys are per round). */
export class SecAggClient {
  private phase: ClientPhase = 'new';
  private readonly c = x25519Generate();
  private readonly s = x25519Generate();
  private readonly cKey = privateKeyObject(this.c.secret);
  private readonly sKey = privateKeyObject(this.s.secret);
  private readonly b = new Uint8Array(randomBytes(32));
  private roster = new Map<number, RosterEntry & { sObj: KeyObject; encKey: Uint8Array }>();
  /** U2 ∩ H(u): the clients whose shares this client holds (itself included). */
  private u2 = new Set<number>();
  /** Shares held for each v (including this client's own), decrypted in round 2. */
  private held = new Map<number, { s: Uint8Array; b: Uint8Array }>();
  private ownShares = new Map<number, { s: Uint8Array; b: Uint8Array }>();
  private readonly graph: MaskGraph | undefined;
  readonly minSurvivors: number;

  constructor(
    readonly id: number,
    readonly round: string,
    readonly t: number,
    readonly dim: number,
    opts: RoundGraph = {},
  ) {
    this.graph = opts.graph;
    this.minSurvivors = opts.minSurvivors ?? t;
  }

  advertise(): AdvertisedKeys {
    this.expect('new', 'advertise');
    this.phase = 'advertised';
    return { cPk: this.c.publicKey, sPk: this.s.publicKey };
  }

  /** `roster`: H(u) ∩ U1 with keys (all of U1 on the complete graph). */
  shareKeys(roster: readonly RosterEntry[]): SealedShare[] {
    this.expect('advertised', 'share keys');
    checkIds(roster.map((r) => r.id), 'roster');
    if (roster.length < this.t) throw new SecAggError(`roster has ${roster.length} clients, fewer than the threshold ${this.t}; refusing to share keys`);
    if (!this.graph && roster.length < this.minSurvivors) throw new SecAggError(`roster has ${roster.length} clients, fewer than ${this.minSurvivors}; refusing to share keys`);
    const me = roster.find((r) => r.id === this.id);
    if (!me || Buffer.compare(Buffer.from(me.cPk), Buffer.from(this.c.publicKey)) !== 0 || Buffer.compare(Buffer.from(me.sPk), Buffer.from(this.s.publicKey)) !== 0) throw new SecAggError(`roster does not list client ${this.id} with its own keys`);
    if (this.graph) for (const r of roster) if (r.id !== this.id && !this.graph.adjacent(this.id, r.id)) throw new SecAggError(`roster lists client ${r.id}, which is not a neighbour of ${this.id} in the round's graph`);
    const sKeys = new Set(roster.map((r) => Buffer.from(r.sPk).toString('hex')));
    if (sKeys.size !== roster.length) throw new SecAggError('roster repeats a public key');
    // The encryption key with each peer is agreed once: it seals this client's shares to the peer
    // and opens the peer's shares to this client.
    this.roster = new Map(roster.map((r) => [r.id, { ...r, sObj: publicKeyObject(r.sPk), encKey: r.id === this.id ? new Uint8Array(0) : agreeKeys(this.cKey, publicKeyObject(r.cPk), 'enc', this.round) }]));
    const ids = roster.map((r) => r.id);
    const sShares = split(this.s.secret, this.t, ids);
    const bShares = split(this.b, this.t, ids);
    const out: SealedShare[] = [];
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      const sv = shareToBytes(sShares[i]!.y);
      const bv = shareToBytes(bShares[i]!.y);
      if (v === this.id) {
        this.ownShares.set(v, { s: sv, b: bv });
        continue;
      }
      const plain = new Uint8Array(PLAIN_BYTES);
      const dv = new DataView(plain.buffer);
      dv.setUint32(0, this.id);
      dv.setUint32(4, v);
      plain.set(sv, 8);
      plain.set(bv, 8 + SHARE_BYTES);
      const key = this.roster.get(v)!.encKey;
      out.push({ peer: v, ct: sealShares(key, this.round, this.id, v, plain) });
    }
    this.phase = 'shared';
    return out;
  }

  /**
   * y = x + PRG(b) + Σ ±PRG(s_uv) over U2 ∩ N(u). `u2` is U2 ∩ H(u) (all of U2 on the complete
   * graph), `u2Count` = |U2| (default u2.length); `incoming` are the sealed shares addressed to u.
   */
  maskInput(x: Uint32Array, u2: readonly number[], incoming: readonly SealedShare[], u2Count = u2.length): Uint32Array {
    this.expect('shared', 'mask its input');
    if (x.length !== this.dim) throw new SecAggError(`input has ${x.length} entries, the round aggregates ${this.dim}`);
    checkIds(u2, 'U2');
    if (u2Count < this.minSurvivors || u2Count < u2.length) throw new SecAggError(`only ${u2Count} clients shared keys, fewer than the threshold ${this.minSurvivors}`);
    if (!u2.includes(this.id)) throw new SecAggError(`U2 does not include client ${this.id}`);
    if (!isSubset(u2, new Set(this.roster.keys()))) throw new SecAggError('U2 names a client outside the roster');
    const fromIds = incoming.map((s) => s.peer);
    checkIds(fromIds, 'routed shares');
    const expected = u2.filter((v) => v !== this.id);
    if (fromIds.length !== expected.length || !isSubset(expected, new Set(fromIds))) throw new SecAggError(`routed shares come from [${fromIds.join(',')}], expected exactly U2 \\ {${this.id}}`);
    for (const sh of incoming) {
      const key = this.roster.get(sh.peer)!.encKey;
      const plain = openShares(key, this.round, sh.peer, this.id, sh.ct);
      if (plain.length !== PLAIN_BYTES) throw new SecAggError(`decrypted shares from ${sh.peer} have ${plain.length} bytes`);
      const dv = new DataView(plain.buffer, plain.byteOffset);
      if (dv.getUint32(0) !== sh.peer || dv.getUint32(4) !== this.id) throw new SecAggError(`shares from ${sh.peer} name the wrong sender or recipient`);
      this.held.set(sh.peer, { s: plain.slice(8, 8 + SHARE_BYTES), b: plain.slice(8 + SHARE_BYTES) });
    }
    this.held.set(this.id, this.ownShares.get(this.id)!);
    this.u2 = new Set(u2);
    const y = new Uint32Array(x);
    addPrg(y, this.b, 1);
    for (const v of u2) {
      if (v === this.id) continue;
      addPrg(y, agreeKeys(this.sKey, this.roster.get(v)!.sObj, 'mask', this.round), this.id < v ? 1 : -1);
    }
    this.phase = 'masked';
    return y;
  }

  /**
   * Shares for the server given the survivor list `u3` (U3 ∩ H(u); all of U3 on the complete
   * graph; `u3Count` = |U3|): b shares of survivors, s shares of dropouts. Answered once per round:
   * a second request (with any list) is refused, so no user ever has both of its shares revealed
   * by this client.
   */
  unmask(u3: readonly number[], u3Count = u3.length): UnmaskResponse {
    if (this.phase === 'unmasked') throw new SecAggError(`client ${this.id} already answered an unmasking request this round; refusing a second one (it could reveal both shares of a user)`);
    this.expect('masked', 'unmask');
    checkIds(u3, 'U3');
    if (u3Count < this.minSurvivors || u3Count < u3.length) throw new SecAggError(`survivor list has ${u3Count} clients, fewer than the threshold ${this.minSurvivors}; refusing to unmask`);
    if (!u3.includes(this.id)) throw new SecAggError(`survivor list omits client ${this.id}, which sent its masked input`);
    if (!isSubset(u3, this.u2)) throw new SecAggError('survivor list names a client that did not share keys (not in U2)');
    this.phase = 'unmasked';
    const alive = new Set(u3);
    const res: UnmaskResponse = { b: [], s: [] };
    for (const v of [...this.u2].sort((a, b) => a - b)) {
      const h = this.held.get(v)!;
      if (alive.has(v)) res.b.push({ of: v, share: h.b });
      else res.s.push({ of: v, share: h.s });
    }
    return res;
  }

  private expect(p: ClientPhase, what: string): void {
    if (this.phase !== p) throw new SecAggError(`client ${this.id} cannot ${what} in phase ${this.phase}`);
  }
}

// ------------------------------------------------------------------ server ----

export interface AggregateResult {
  /** Σ_{u ∈ U3} x_u mod 2^32. */
  sum: Uint32Array;
  u1: number[];
  u2: number[];
  u3: number[];
  /** Clients whose unmasking shares were used. */
  u5: number[];
}

type ServerPhase = 'keys' | 'shares' | 'masked' | 'unmask' | 'done';

/**
 * The server's side of one round. Messages of a phase may arrive in any order; `close*()` ends a
 * phase (on all answers or a timeout) and fixes the set that answered. A message from a client
 * outside the expected set, twice from one client, or in the wrong phase is a SecAggError.
 * With a sparse graph each client sees only its neighbourhood: `rosterFor`, `u2For`, `u3For`.
 */
export class SecAggServer {
  private phase: ServerPhase = 'keys';
  private readonly keys = new Map<number, AdvertisedKeys>();
  private readonly shares = new Map<number, SealedShare[]>();
  private readonly masked = new Map<number, Uint32Array>();
  private readonly unmasks = new Map<number, { b: Map<number, Uint8Array>; s: Map<number, Uint8Array> }>();
  private u1: number[] = [];
  private u2: number[] = [];
  private u3: number[] = [];
  private u1Set = new Set<number>();
  private u2Set = new Set<number>();
  private u3Set = new Set<number>();
  private readonly graph: MaskGraph | undefined;
  readonly minSurvivors: number;

  constructor(
    readonly round: string,
    readonly t: number,
    readonly dim: number,
    opts: RoundGraph = {},
  ) {
    if (!Number.isInteger(t) || t < 2) throw new SecAggError(`threshold must be an integer >= 2, got ${t}`);
    this.graph = opts.graph && !opts.graph.isComplete ? opts.graph : undefined;
    this.minSurvivors = opts.minSurvivors ?? t;
  }

  get currentPhase(): ServerPhase {
    return this.phase;
  }

  /** v's share holders among `among` (all of `among` on the complete graph), ascending. */
  private near(v: number, among: readonly number[], amongSet: ReadonlySet<number>): number[] {
    return this.graph ? this.graph.holders(v).filter((w) => amongSet.has(w)) : [...among];
  }

  receiveKeys(id: number, k: AdvertisedKeys): void {
    this.expect('keys', id);
    if (this.keys.has(id)) throw new SecAggError(`client ${id} advertised keys twice`);
    if (this.graph && id > this.graph.n) throw new SecAggError(`client ${id} is outside the round's graph of ${this.graph.n}`);
    if (k.cPk.length !== 32 || k.sPk.length !== 32) throw new SecAggError(`client ${id}: public keys must be 32 bytes`);
    this.keys.set(id, k);
  }

  /** Ends AdvertiseKeys; returns U1 with keys (send each client `rosterFor(id)`). */
  closeKeys(): RosterEntry[] {
    this.expect('keys');
    this.u1 = [...this.keys.keys()].sort((a, b) => a - b);
    this.u1Set = new Set(this.u1);
    this.need(this.u1.length, 'advertised keys');
    this.phase = 'shares';
    return this.u1.map((id) => ({ id, ...this.keys.get(id)! }));
  }

  /** The roster client `id` shares with: H(id) ∩ U1 with keys. */
  rosterFor(id: number): RosterEntry[] {
    return this.near(id, this.u1, this.u1Set).map((v) => ({ id: v, ...this.keys.get(v)! }));
  }

  receiveShares(id: number, sealed: SealedShare[]): void {
    this.expect('shares', id);
    if (!this.u1Set.has(id)) throw new SecAggError(`client ${id} is not in the roster`);
    if (this.shares.has(id)) throw new SecAggError(`client ${id} sent shares twice`);
    const to = sealed.map((s) => s.peer);
    const expected = this.near(id, this.u1, this.u1Set).filter((v) => v !== id);
    if (new Set(to).size !== to.length || to.length !== expected.length || !isSubset(expected, new Set(to))) throw new SecAggError(`client ${id} must send exactly one sealed share to each other member of its roster`);
    this.shares.set(id, sealed);
  }

  /** Ends ShareKeys; returns U2 and, per recipient, the sealed shares addressed to it. */
  closeShares(): { u2: number[]; routed: Map<number, SealedShare[]> } {
    this.expect('shares');
    this.u2 = [...this.shares.keys()].sort((a, b) => a - b);
    this.u2Set = new Set(this.u2);
    this.need(this.u2.length, 'shared keys');
    const routed = new Map<number, SealedShare[]>(this.u2.map((v) => [v, []]));
    for (const u of this.u2) {
      for (const s of this.shares.get(u)!) routed.get(s.peer)?.push({ peer: u, ct: s.ct });
    }
    this.phase = 'masked';
    return { u2: this.u2, routed };
  }

  /** U2 ∩ H(id): whose shares client `id` holds (what it is told as U2). */
  u2For(id: number): number[] {
    return this.near(id, this.u2, this.u2Set);
  }

  receiveMasked(id: number, y: Uint32Array): void {
    this.expect('masked', id);
    if (!this.u2Set.has(id)) throw new SecAggError(`client ${id} did not share keys (not in U2)`);
    if (this.masked.has(id)) throw new SecAggError(`client ${id} sent its masked input twice`);
    if (y.length !== this.dim) throw new SecAggError(`client ${id}: masked input has ${y.length} entries, expected ${this.dim}`);
    this.masked.set(id, y);
  }

  /** Ends MaskedInputCollection; returns the survivor list U3 (send each survivor `u3For(id)`). */
  closeMasked(): number[] {
    this.expect('masked');
    this.u3 = [...this.masked.keys()].sort((a, b) => a - b);
    this.u3Set = new Set(this.u3);
    this.need(this.u3.length, 'sent masked inputs');
    this.phase = 'unmask';
    return this.u3;
  }

  /** U3 ∩ H(id) (all of U3 on the complete graph). */
  u3For(id: number): number[] {
    return this.near(id, this.u3, this.u3Set);
  }

  receiveUnmask(id: number, r: UnmaskResponse): void {
    this.expect('unmask', id);
    if (!this.u3Set.has(id)) throw new SecAggError(`client ${id} is not a survivor (not in U3)`);
    if (this.unmasks.has(id)) throw new SecAggError(`client ${id} answered unmasking twice`);
    const held = this.u2For(id);
    const alive = held.filter((v) => this.u3Set.has(v));
    const dropped = held.filter((v) => !this.u3Set.has(v));
    const bOf = r.b.map((x) => x.of);
    const sOf = r.s.map((x) => x.of);
    if (new Set(bOf).size !== bOf.length || bOf.length !== alive.length || !isSubset(alive, new Set(bOf))) throw new SecAggError(`client ${id}: unmasking must hold one self-mask share per survivor it holds shares of`);
    if (new Set(sOf).size !== sOf.length || sOf.length !== dropped.length || !isSubset(dropped, new Set(sOf))) throw new SecAggError(`client ${id}: unmasking must hold one key share per dropped client it holds shares of`);
    for (const x of [...r.b, ...r.s]) if (x.share.length !== SHARE_BYTES) throw new SecAggError(`client ${id}: a share is ${SHARE_BYTES} bytes`);
    this.unmasks.set(id, { b: new Map(r.b.map((x) => [x.of, x.share])), s: new Map(r.s.map((x) => [x.of, x.share])) });
  }

  /** Unmasked sum (needs >= minSurvivors unmasking answers and t answering holders per secret). */
  finish(): AggregateResult {
    this.expect('unmask');
    const u5 = [...this.unmasks.keys()].sort((a, b) => a - b);
    this.need(u5.length, 'answered unmasking');
    const u5Set = new Set(u5);
    const sharesOf = (v: number, kind: 'b' | 's') => {
      const from = this.near(v, u5, u5Set);
      if (from.length < this.t) throw new SecAggError(`round ${this.round}: only ${from.length} holders of client ${v}'s ${kind === 'b' ? 'self-mask seed' : 'mask key'} answered, fewer than the threshold ${this.t}; the round is aborted and nothing is revealed`);
      return from.map((w) => ({ x: w, y: shareFromBytes(this.unmasks.get(w)![kind].get(v)!) }));
    };
    // Gather every secret first: a missing one aborts before any sum exists.
    const selfSeeds = this.u3.map((u) => reconstruct(sharesOf(u, 'b'), this.t, 32));
    const dropped: { v: number; secret: Uint8Array; survivors: number[] }[] = [];
    for (const v of this.u2) {
      if (this.u3Set.has(v)) continue;
      const survivors = this.graph ? this.graph.neighbours(v).filter((u) => this.u3Set.has(u)) : this.u3;
      if (survivors.length === 0) continue;
      dropped.push({ v, secret: reconstruct(sharesOf(v, 's'), this.t, 32), survivors });
    }
    const sum = new Uint32Array(this.dim);
    for (const u of this.u3) {
      const y = this.masked.get(u)!;
      for (let i = 0; i < this.dim; i++) sum[i] += y[i]!;
    }
    for (const seed of selfSeeds) addPrg(sum, seed, -1);
    for (const { v, secret, survivors } of dropped) {
      const priv = privateKeyObject(secret);
      const pub = this.keys.get(v)!.sPk;
      if (Buffer.compare(Buffer.from(publicBytes(priv)), Buffer.from(pub)) !== 0) throw new SecAggError(`reconstructed key of dropped client ${v} does not match its public key (a bad share)`);
      // Survivor u added +PRG(s_uv) when u < v: remove it (and add back what u > v subtracted).
      for (const u of survivors) addPrg(sum, agreeKeys(priv, publicKeyObject(this.keys.get(u)!.sPk), 'mask', this.round), u < v ? -1 : 1);
    }
    this.phase = 'done';
    return { sum, u1: this.u1, u2: this.u2, u3: this.u3, u5 };
  }

  private need(count: number, what: string): void {
    if (count < this.minSurvivors) throw new SecAggError(`round ${this.round}: only ${count} clients ${what}, fewer than the threshold ${this.minSurvivors}; the round is aborted and nothing is revealed`);
  }

  private expect(p: ServerPhase, from?: number): void {
    if (this.phase !== p) throw new SecAggError(`${from !== undefined ? `message from client ${from}: ` : ''}server is in phase ${this.phase}, not ${p}`);
  }
}
