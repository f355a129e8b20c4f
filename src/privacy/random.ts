/**
 * Randomness for every DP mechanism in dplens.
 *
 * - `secureRandom()` (the default everywhere): 32-bit words from node:crypto's CSPRNG
 *   (randomFillSync into a 256 KiB buffer), turned into Gaussians with a 256-layer ziggurat
 *   (Marsaglia & Tsang 2000), with layer, sign and magnitude taken from disjoint bits.
 * - `seededRandom(seed)`: xoshiro128** (Blackman & Vigna), fused with the same ziggurat, only when the user asks for
 *   reproducibility (--seed); the seed is recorded in the ledger header, so anyone who reads the
 *   ledger can regenerate (and subtract) the noise. NOT cryptographically secure.
 *
 * Math.random is never used for privacy noise.
 */
import { randomFillSync } from 'node:crypto';

export interface RandomSource {
  readonly kind: 'secure' | 'seeded';
  readonly seed?: number;
  /** Uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number;
  nextUint32(): number;
  /** Fill with uniforms in [0, 1) (24 random bits for Float32Array, 53 for Float64Array). */
  uniform(out: Float32Array | Float64Array): void;
  /** Fill with N(0, std^2) samples (in place, overwriting). */
  normal(out: Float32Array | Float64Array, std?: number): void;
}

/** Uniform integer in [0, n) without modulo bias (n <= 2^32). */
export function randomInt(rng: RandomSource, n: number): number {
  if (!(Number.isInteger(n) && n > 0 && n <= 4294967296)) throw new RangeError(`randomInt: n must be an integer in [1, 2^32], got ${n}`);
  if (n === 1) return 0;
  const limit = 4294967296 - (4294967296 % n);
  for (;;) {
    const w = rng.nextUint32();
    if (w < limit) return w % n;
  }
}

/** Uniform double in (0, 1) (never 0), for logs. */
export function uniformOpen(rng: RandomSource): number {
  for (;;) {
    const u = rng.nextDouble();
    if (u > 0) return u;
  }
}

// ---- ziggurat (Marsaglia & Tsang 2000) with 256 layers ----
// Layer i >= 1 is the rectangle [0, x_i] x [f(x_i), f(x_{i-1})] of the unnormalised density
// f(x) = exp(-x^2/2); layer 0 is the base strip [0, r] plus the tail beyond r = x_255. Every
// layer has area ZV. ZR and ZV solve x_0 = 0 exactly (computed with 40-digit arithmetic; the
// closure is checked by a test through `zigguratTables`). 256 layers accept ~99% of draws in the
// rectangle (one table compare and one multiply) against ~97% for 128.
const ZN = 256;
const ZR = 3.6541528853610088;
const ZV = 4.9286732339746554e-3;
/** Magnitudes are 23-bit integers u; v = u + 0.5 (or u + fine fraction) lies in (0, 2^23). */
const ZM = 8388608; // 2^23
const KN = new Float64Array(ZN); // accept |v| < KN[i]  <=>  |x| < x_{i-1}
const WN = new Float64Array(ZN); // x = v * WN[i]
const FN = new Float64Array(ZN); // f(x_i)
/** x_i of the ziggurat, i = 0..255 (x_0 = 0 up to rounding, x_255 = r). */
const XN = new Float64Array(ZN);
(() => {
  let x = ZR;
  XN[ZN - 1] = ZR;
  for (let i = ZN - 2; i >= 1; i--) {
    x = Math.sqrt(-2 * Math.log(ZV / x + Math.exp(-0.5 * x * x)));
    XN[i] = x;
  }
  const q = ZV / Math.exp(-0.5 * ZR * ZR); // base strip as a rectangle of width q
  KN[0] = (ZR / q) * ZM;
  WN[0] = q / ZM;
  FN[0] = 1;
  KN[1] = 0;
  for (let i = 1; i < ZN; i++) {
    WN[i] = XN[i] / ZM;
    FN[i] = Math.exp(-0.5 * XN[i] * XN[i]);
    if (i >= 2) KN[i] = (XN[i - 1] / XN[i]) * ZM;
  }
})();

/**
 * Hot-path layout of a 32-bit word h: bits 0-7 layer i, bit 8 sign, bits 9-31 magnitude u.
 * Accept iff u + 0.5 < KN[i]  <=>  u < KI[h & 511]; the value is (u + 0.5) * WS[h & 511].
 * The value is symmetric in the sign bit, so the sampler has exactly zero mean.
 */
const KI = new Int32Array(2 * ZN);
for (let i = 0; i < 2 * ZN; i++) KI[i] = Math.max(0, Math.ceil(KN[i & 255] - 0.5));

/** Tables for tests (closure x_0 ~ 0, layer areas): copies, so callers cannot corrupt them. */
export function zigguratTables(): { r: number; v: number; x: Float64Array; layers: number } {
  return { r: ZR, v: ZV, x: XN.slice(), layers: ZN };
}

const TWO_M32 = 2.3283064365386963e-10;
const TWO_M24 = 5.960464477539063e-8;
const TWO_M21 = 4.76837158203125e-7;

abstract class BufferedRandom implements RandomSource {
  abstract readonly kind: 'secure' | 'seeded';
  readonly seed?: number;
  protected readonly buf: Uint32Array;
  protected readonly ibuf: Int32Array;
  protected pos: number;

  constructor(words: number) {
    this.buf = new Uint32Array(words);
    this.ibuf = new Int32Array(this.buf.buffer);
    this.pos = words;
  }

  protected abstract refill(): void;

  nextUint32(): number {
    if (this.pos >= this.buf.length) this.refill();
    return this.buf[this.pos++];
  }

  nextDouble(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  private uOpen(): number {
    return (this.nextUint32() + 0.5) * TWO_M32;
  }

  uniform(out: Float32Array | Float64Array): void {
    if (out instanceof Float32Array) {
      const n = out.length;
      let i = 0;
      while (i < n) {
        if (this.pos >= this.buf.length) this.refill();
        const buf = this.buf;
        const m = Math.min(n - i, buf.length - this.pos);
        let p = this.pos;
        for (let k = 0; k < m; k++) out[i + k] = (buf[p++] >>> 8) * TWO_M24;
        this.pos = p;
        i += m;
      }
    } else {
      for (let i = 0; i < out.length; i++) out[i] = this.nextDouble();
    }
  }

  /**
   * Slow path of the ziggurat for a draw (layer iz, magnitude v in (0, 2^23), sign) rejected by
   * the rectangle test: the wedge test against the exact density, or the tail (Marsaglia 1964)
   * for layer 0; a rejected draw restarts from a fresh word (with `fine` extra bits for Float64).
   */
  protected zigSlow(v: number, iz: number, negative: boolean, fine: boolean): number {
    for (;;) {
      if (iz === 0) {
        let x: number;
        let y: number;
        do {
          x = -Math.log(this.uOpen()) / ZR;
          y = -Math.log(this.uOpen());
        } while (y + y < x * x);
        return negative ? -ZR - x : ZR + x;
      }
      const x = v * WN[iz];
      if (FN[iz] + this.uOpen() * (FN[iz - 1] - FN[iz]) < Math.exp(-0.5 * x * x)) return negative ? -x : x;
      const h = this.nextUint32();
      iz = h & 255;
      negative = (h & 256) !== 0;
      v = (h >>> 9) + (fine ? ((this.nextUint32() >>> 11) + 0.5) * TWO_M21 : 0.5);
      if (v < KN[iz]) {
        const y = v * WN[iz];
        return negative ? -y : y;
      }
    }
  }

  normal(out: Float32Array | Float64Array, std = 1): void {
    if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`normal: std must be finite and >= 0, got ${std}`);
    if (out instanceof Float32Array) this.normal32(out, std);
    else this.normal64(out, std);
  }

  /** Indices and words of slow-path samples of the current block (see normal32). */
  protected slowIdx = new Int32Array(0);
  protected slowWord = new Uint32Array(0);

  /** Finishes the draws a fast pass deferred (their words in slowWord) with the exact slow path. */
  protected finishSlow(out: Float32Array, ns: number, std: number): void {
    const slowIdx = this.slowIdx;
    const slowWord = this.slowWord;
    for (let k = 0; k < ns; k++) {
      const h = slowWord[k];
      out[slowIdx[k]] = this.zigSlow((h >>> 9) + 0.5, h & 255, (h & 256) !== 0, false) * std;
    }
  }

  protected ensureSlowCapacity(n: number): void {
    if (this.slowIdx.length < n) {
      this.slowIdx = new Int32Array(n);
      this.slowWord = new Uint32Array(n);
    }
  }

  /**
   * Float32 path, two passes per buffer block: a branch-light fast pass writes the ~99% of
   * samples accepted by the ziggurat rectangles and records the rest; the second pass runs the
   * exact slow path (wedges, tail) for those, drawing fresh words after the block.
   */
  protected normal32(out: Float32Array, std: number): void {
    const ws = signedWidths(std);
    this.ensureSlowCapacity(this.buf.length);
    const slowIdx = this.slowIdx;
    const slowWord = this.slowWord;
    const n = out.length;
    let i = 0;
    while (i < n) {
      if (this.pos >= this.buf.length) this.refill();
      const ub = this.buf;
      const p = this.pos;
      const m = Math.min(n - i, ub.length - p);
      let ns = 0;
      for (let k = 0; k < m; k++) {
        const h = ub[p + k];
        const u = h >>> 9;
        const j = h & 511;
        if (u < KI[j]) out[i + k] = (u + 0.5) * ws[j];
        else {
          slowIdx[ns] = i + k;
          slowWord[ns++] = h;
        }
      }
      this.pos = p + m;
      i += m;
      this.finishSlow(out, ns, std);
    }
  }

  /** Float64 path: 9 + 23 + 21 random bits per value (two words). */
  protected normal64(out: Float64Array, std: number): void {
    for (let i = 0; i < out.length; i++) {
      const h = this.nextUint32();
      const iz = h & 255;
      const v = (h >>> 9) + ((this.nextUint32() >>> 11) + 0.5) * TWO_M21;
      const neg = (h & 256) !== 0;
      out[i] = (v < KN[iz] ? (neg ? -v : v) * WN[iz] : this.zigSlow(v, iz, neg, true)) * std;
    }
  }
}

const WS_CACHE = { std: NaN, ws: new Float64Array(2 * ZN) };
/** ws[h & 511] = +-WN[h & 255] * std (sign from bit 8). */
function signedWidths(std: number): Float64Array {
  if (WS_CACHE.std !== std) {
    for (let i = 0; i < 2 * ZN; i++) WS_CACHE.ws[i] = (i & 256 ? -1 : 1) * WN[i & 255] * std;
    WS_CACHE.std = std;
  }
  return WS_CACHE.ws;
}

class SecureRandom extends BufferedRandom {
  readonly kind = 'secure' as const;
  constructor() {
    super(65536);
  }
  protected refill(): void {
    randomFillSync(this.buf);
    this.pos = 0;
  }
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * One xoshiro128** step per element of `b` (Blackman & Vigna 2018); state in `st`. Module-level
 * functions over typed arrays stay monomorphic and optimised (as methods reading named fields
 * they were deoptimised on every buffer refill).
 */
function xoshiroFill(st: Int32Array, b: Int32Array): void {
  let s0 = st[0];
  let s1 = st[1];
  let s2 = st[2];
  let s3 = st[3];
  for (let i = 0; i < b.length; i++) {
    const r = Math.imul(s1, 5);
    b[i] = Math.imul((r << 7) | (r >>> 25), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
  }
  st[0] = s0;
  st[1] = s1;
  st[2] = s2;
  st[3] = s3;
}

/**
 * Fast pass of the fused generator + ziggurat over out[i0, end): each xoshiro128** word goes
 * straight into the rectangle test; rejected draws are recorded (index, word) for the slow path.
 * Returns the number recorded.
 */
function xoshiroZigguratPass(st: Int32Array, out: Float32Array, i0: number, end: number, ws: Float64Array, slowIdx: Int32Array, slowWord: Uint32Array): number {
  let s0 = st[0];
  let s1 = st[1];
  let s2 = st[2];
  let s3 = st[3];
  let ns = 0;
  for (let i = i0; i < end; i++) {
    const r = Math.imul(s1, 5);
    const h = Math.imul((r << 7) | (r >>> 25), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const u = h >>> 9;
    const j = h & 511;
    if (u < KI[j]) out[i] = (u + 0.5) * ws[j];
    else {
      slowIdx[ns] = i;
      slowWord[ns++] = h;
    }
  }
  st[0] = s0;
  st[1] = s1;
  st[2] = s2;
  st[3] = s3;
  return ns;
}

/**
 * Reproducible generator: xoshiro128** (Blackman & Vigna 2018), state from splitmix32 of the seed.
 * Float32 Gaussians use a fused generator + ziggurat loop (no buffer round trip).
 */
class SeededRandom extends BufferedRandom {
  readonly kind = 'seeded' as const;
  override readonly seed: number;
  /** xoshiro128** state s0..s3 (as int32 bit patterns). */
  private readonly st = new Int32Array(4);
  constructor(seed: number) {
    super(16384);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    this.seed = seed;
    const lo = splitmix32(seed >>> 0);
    const hi = splitmix32(Math.floor(seed / 4294967296) ^ 0x5bd1e995);
    const st = this.st;
    st[0] = lo() ^ hi();
    st[1] = lo();
    st[2] = lo() ^ hi();
    st[3] = lo();
    if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1;
  }

  /**
   * Fused xoshiro128** + two-pass ziggurat. Draws the fast pass rejects are finished after each
   * block of BLOCK samples with words from the buffer (refilled from the same state), so the
   * output is a deterministic function of the seed and the sequence of calls.
   */
  protected override normal32(out: Float32Array, std: number): void {
    if (this.pos < this.buf.length) {
      const head = Math.min(out.length, this.buf.length - this.pos);
      super.normal32(out.subarray(0, head), std);
      if (head === out.length) return;
      out = out.subarray(head);
    }
    const BLOCK = 8192;
    const ws = signedWidths(std);
    this.ensureSlowCapacity(BLOCK);
    const n = out.length;
    for (let i0 = 0; i0 < n; i0 += BLOCK) {
      const ns = xoshiroZigguratPass(this.st, out, i0, Math.min(n, i0 + BLOCK), ws, this.slowIdx, this.slowWord);
      this.finishSlow(out, ns, std);
    }
  }

  protected refill(): void {
    xoshiroFill(this.st, this.ibuf);
    this.pos = 0;
  }
}

/** node:crypto-backed randomness: the default for every DP release. */
export function secureRandom(): RandomSource {
  return new SecureRandom();
}

/** Reproducible (NOT secure) randomness; use only when the user passes --seed, and record it. */
export function seededRandom(seed: number): RandomSource {
  return new SeededRandom(seed);
}

/** `--seed` handling shared by commands: seeded when a seed is given, otherwise secure. */
export function randomFromSeed(seed: number | string | undefined): RandomSource {
  if (seed === undefined || seed === '') return secureRandom();
  const s = typeof seed === 'number' ? seed : Number(seed);
  if (!Number.isSafeInteger(s) || s < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  return seededRandom(s);
}

/** What the ledger header records about the randomness. */
export function describeRandomness(r: RandomSource): { kind: 'secure' | 'seeded'; seed?: number } {
  return r.kind === 'seeded' ? { kind: 'seeded', seed: r.seed } : { kind: 'secure' };
}
