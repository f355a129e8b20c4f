/**
 * Randomness for every DP mechanism in dplens.
 *
 * - `secureRandom()` (the default everywhere): 32-bit words from node:crypto's CSPRNG
 *   (randomFillSync into a 256 KiB buffer), turned into Gaussians with a 128-layer ziggurat
 *   (Marsaglia & Tsang 2000), with the layer index and the value taken from disjoint bits.
 * - `seededRandom(seed)`: xoshiro128** (Blackman & Vigna), only when the user asks for
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

// ---- ziggurat tables (128 layers, 25-bit signed value v = j + offset, |v| < 2^24) ----
const ZN = 128;
const M1 = 16777216; // 2^24
const KN = new Float64Array(ZN);
const WN = new Float64Array(ZN);
const FN = new Float64Array(ZN);
const ZR = 3.442619855899;
(() => {
  let dn = ZR;
  let tn = dn;
  const vn = 9.91256303526217e-3;
  const q = vn / Math.exp(-0.5 * dn * dn);
  KN[0] = (dn / q) * M1;
  KN[1] = 0;
  WN[0] = q / M1;
  WN[ZN - 1] = dn / M1;
  FN[0] = 1;
  FN[ZN - 1] = Math.exp(-0.5 * dn * dn);
  for (let i = ZN - 2; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(vn / dn + Math.exp(-0.5 * dn * dn)));
    KN[i + 1] = (dn / tn) * M1;
    tn = dn;
    FN[i] = Math.exp(-0.5 * dn * dn);
    WN[i] = dn / M1;
  }
})();

/**
 * Hot-path layout of a 32-bit word h: bits 0-6 layer iz, bit 7 sign, bits 8-31 magnitude u.
 * Value v = +-(u + 0.5) (symmetric, |v| < 2^24); accept iff |v| < KN[iz]  <=>  u < KI[iz].
 */
const KI = new Int32Array(ZN);
for (let i = 0; i < ZN; i++) KI[i] = Math.max(0, Math.ceil(KN[i] - 0.5));

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

  protected zigSlowPublic(v: number, iz: number): number {
    return this.zigSlow(v, iz, false);
  }

  /** Slow path of the ziggurat (rejection in a wedge, or the tail). */
  private zigSlow(v: number, iz: number, fine: boolean): number {
    for (;;) {
      let x = v * WN[iz];
      if (iz === 0) {
        let y: number;
        do {
          x = -Math.log(this.uOpen()) / ZR;
          y = -Math.log(this.uOpen());
        } while (y + y < x * x);
        return v > 0 ? ZR + x : -ZR - x;
      }
      if (FN[iz] + this.uOpen() * (FN[iz - 1] - FN[iz]) < Math.exp(-0.5 * x * x)) return x;
      const h = this.nextUint32() | 0;
      iz = h & 127;
      v = (h >> 7) + (fine ? (this.nextUint32() >>> 11) * TWO_M21 : 0.5);
      x = v * WN[iz];
      if (Math.abs(v) < KN[iz]) return x;
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

  /**
   * Float32 path, two passes per buffer block: a branch-light fast pass writes the ~97% of
   * samples accepted by the ziggurat rectangles and records the rest; the second pass runs the
   * exact slow path (wedges, tail) for those, drawing fresh words after the block.
   */
  protected normal32(out: Float32Array, std: number): void {
    const ws = signedWidths(std);
    if (this.slowIdx.length < this.buf.length) {
      this.slowIdx = new Int32Array(this.buf.length);
      this.slowWord = new Uint32Array(this.buf.length);
    }
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
        const u = h >>> 8;
        if (u < KI[h & 127]) out[i + k] = (u + 0.5) * ws[h & 255];
        else {
          slowIdx[ns] = i + k;
          slowWord[ns++] = h;
        }
      }
      this.pos = p + m;
      i += m;
      for (let k = 0; k < ns; k++) {
        const h = slowWord[k];
        const u = h >>> 8;
        out[slowIdx[k]] = this.zigSlow(h & 128 ? -(u + 0.5) : u + 0.5, h & 127, false) * std;
      }
    }
  }

  /** Float64 path: 25 + 21 random bits per value. */
  protected normal64(out: Float64Array, std: number): void {
    for (let i = 0; i < out.length; i++) {
      const h = this.nextUint32() | 0;
      const iz = h & 127;
      const v = (h >> 7) + (this.nextUint32() >>> 11) * TWO_M21;
      out[i] = (Math.abs(v) < KN[iz] ? v * WN[iz] : this.zigSlow(v, iz, true)) * std;
    }
  }
}

const WS_CACHE = { std: NaN, ws: new Float64Array(2 * ZN) };
/** ws[h & 255] = +-WN[h & 127] * std (sign from bit 7). */
function signedWidths(std: number): Float64Array {
  if (WS_CACHE.std !== std) {
    for (let i = 0; i < 2 * ZN; i++) WS_CACHE.ws[i] = (i & 128 ? -1 : 1) * WN[i & 127] * std;
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
 * Reproducible generator: xoshiro128** (Blackman & Vigna 2018), state from splitmix32 of the seed.
 * Float32 Gaussians use a fused generator + ziggurat loop (no buffer round trip).
 */
class SeededRandom extends BufferedRandom {
  readonly kind = 'seeded' as const;
  override readonly seed: number;
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    super(16384);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    this.seed = seed;
    const lo = splitmix32(seed >>> 0);
    const hi = splitmix32(Math.floor(seed / 4294967296) ^ 0x5bd1e995);
    this.s0 = lo() ^ hi();
    this.s1 = lo();
    this.s2 = lo() ^ hi();
    this.s3 = lo();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Fused xoshiro128** + two-pass ziggurat (no buffer round trip for the generated words). */
  protected override normal32(out: Float32Array, std: number): void {
    if (this.pos < this.buf.length) {
      const head = Math.min(out.length, this.buf.length - this.pos);
      super.normal32(out.subarray(0, head), std);
      if (head === out.length) return;
      out = out.subarray(head);
    }
    const ws = signedWidths(std);
    if (this.slowIdx.length < 8192) {
      this.slowIdx = new Int32Array(8192);
      this.slowWord = new Uint32Array(8192);
    }
    const slowIdx = this.slowIdx;
    const slowWord = this.slowWord;
    const n = out.length;
    let s0 = this.s0 | 0;
    let s1 = this.s1 | 0;
    let s2 = this.s2 | 0;
    let s3 = this.s3 | 0;
    for (let i0 = 0; i0 < n; i0 += 8192) {
      const end = Math.min(n, i0 + 8192);
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
        const u = h >>> 8;
        if (u < KI[h & 127]) out[i] = (u + 0.5) * ws[h & 255];
        else {
          slowIdx[ns] = i;
          slowWord[ns++] = h;
        }
      }
      this.s0 = s0;
      this.s1 = s1;
      this.s2 = s2;
      this.s3 = s3;
      for (let k = 0; k < ns; k++) {
        const h = slowWord[k] >>> 0;
        const u = h >>> 8;
        out[slowIdx[k]] = this.zigSlowPublic(h & 128 ? -(u + 0.5) : u + 0.5, h & 127) * std;
      }
      s0 = this.s0 | 0;
      s1 = this.s1 | 0;
      s2 = this.s2 | 0;
      s3 = this.s3 | 0;
    }
  }

  protected refill(): void {
    const b = this.ibuf;
    let s0 = this.s0 | 0;
    let s1 = this.s1 | 0;
    let s2 = this.s2 | 0;
    let s3 = this.s3 | 0;
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
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
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
