/**
 * Shamir t-of-n secret sharing (Shamir 1979), chunked over the prime field GF(p), p = 2^26 − 5.
 * Used by secure aggregation (secagg.ts) to share each client's 32-byte self-mask seed and X25519
 * mask secret key with its share holders: any t shares reconstruct the secret, any t − 1 shares are
 * jointly uniform and independent of it.
 *
 * A secret of L bytes is cut into ⌈L/3⌉ chunks of 24 bits (each < p) and every chunk is shared
 * with its own random polynomial of degree t − 1, evaluated at the same points: per chunk this is
 * plain Shamir, so t − 1 shares of all chunks are jointly uniform (the chunks' polynomials are
 * independent). Why not one element of GF(2^521 − 1) as before: every product there is a BigInt
 * multiplication and reduction (≈ 0.2 µs), and sharing costs holders × t of them per secret
 * (143 ms CPU for 1,000 holders, t = 667; 290 CPU-s per round at n = 1,000 on the complete graph).
 * With p < 2^26 a product is < 2^52, exact in a double (≈ 9 ns per mul-mod incl. fmod): 66 ms for
 * the same split, 15 ms instead of 134 ms for a cold reconstruction, and 44-byte shares, not 66.
 *
 * Shares are evaluations f(x) at the holders' client ids x = 1..n (< p; x = 0 is the secret and
 * never shared). Coefficients come from node:crypto's CSPRNG (rejection sampling, uniform mod p):
 * this is key material, never seeded.
 */
import { randomBytes } from 'node:crypto';

/** The field modulus p = 2^26 − 5 (prime; (p − 1)² < 2^52, so products are exact doubles). */
export const PRIME = 67108859;
/** Secret bytes per field element (24 bits < p). */
export const CHUNK_BYTES = 3;
/** Bytes of one serialised share of a 32-byte secret: 11 chunks × 4 bytes (big-endian u32). */
export const SHARE_BYTES = 4 * Math.ceil(32 / CHUNK_BYTES);

export class ShamirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShamirError';
  }
}

function mul(a: number, b: number): number {
  return (a * b) % PRIME;
}

/** a^(p−2) = a^(−1) mod p (Fermat). */
function inverse(a: number): number {
  a %= PRIME;
  if (a === 0) throw new ShamirError('inverse of 0');
  let result = 1;
  let base = a;
  let e = PRIME - 2;
  while (e > 0) {
    if (e & 1) result = mul(result, base);
    base = mul(base, base);
    e = Math.floor(e / 2);
  }
  return result;
}

export interface Share {
  /** Evaluation point (a client id, >= 1). */
  x: number;
  /** f_c(x) for every chunk c, each in [0, p). */
  y: Uint32Array;
}

function chunksOf(length: number): number {
  return Math.ceil(length / CHUNK_BYTES);
}

/** Secret bytes → field elements (big-endian 3-byte chunks; the last may be shorter). */
export function secretToChunks(secret: Uint8Array): Uint32Array {
  const out = new Uint32Array(chunksOf(secret.length));
  for (let i = 0; i < secret.length; i++) out[Math.floor(i / CHUNK_BYTES)] = out[Math.floor(i / CHUNK_BYTES)]! * 256 + secret[i]!;
  return out;
}

export function chunksToSecret(chunks: Uint32Array, length: number): Uint8Array {
  if (chunks.length !== chunksOf(length)) throw new ShamirError(`a ${length}-byte secret has ${chunksOf(length)} chunks, got ${chunks.length}`);
  const out = new Uint8Array(length);
  for (let c = 0; c < chunks.length; c++) {
    const lo = c * CHUNK_BYTES;
    const hi = Math.min(length, lo + CHUNK_BYTES);
    let v = chunks[c]!;
    for (let i = hi - 1; i >= lo; i--) {
      out[i] = v & 0xff;
      v = Math.floor(v / 256);
    }
    if (v !== 0) throw new ShamirError(`reconstructed chunk ${c} does not fit in ${hi - lo} bytes (shares from different secrets or tampered)`);
  }
  return out;
}

/** `count` independent uniform elements of GF(p) (26-bit rejection sampling, acceptance ≈ 1 − 7.5e-8). */
function randomElements(count: number): Float64Array {
  const out = new Float64Array(count);
  let filled = 0;
  while (filled < count) {
    const buf = randomBytes(4 * (count - filled + 4));
    for (let o = 0; o + 4 <= buf.length && filled < count; o += 4) {
      const v = buf.readUInt32LE(o) & 0x3ffffff;
      if (v < PRIME) out[filled++] = v;
    }
  }
  return out;
}

/** Shares of `secret` for the points `xs` (distinct integers in [1, p)), threshold t. */
export function split(secret: Uint8Array, t: number, xs: readonly number[]): Share[] {
  if (!Number.isInteger(t) || t < 1) throw new ShamirError(`threshold must be an integer >= 1, got ${t}`);
  if (xs.length < t) throw new ShamirError(`need at least t = ${t} share holders, got ${xs.length}`);
  if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isInteger(x) || x < 1 || x >= PRIME)) throw new ShamirError('share points must be distinct integers in [1, p)');
  const s = secretToChunks(secret);
  const C = s.length;
  // coeffs[i * C + c] = coefficient of x^i of chunk c's polynomial (i = 0: the secret).
  const coeffs = new Float64Array(t * C);
  for (let c = 0; c < C; c++) coeffs[c] = s[c]!;
  coeffs.set(randomElements((t - 1) * C), C);
  return xs.map((x) => {
    const y = new Float64Array(C);
    for (let i = t - 1; i >= 0; i--) {
      const row = i * C;
      for (let c = 0; c < C; c++) y[c] = (y[c]! * x + coeffs[row + c]!) % PRIME;
    }
    return { x, y: Uint32Array.from(y) };
  });
}

/**
 * The secret from at least t shares (Lagrange interpolation at 0; the t smallest distinct points
 * are used). Fewer than t shares is an error: they determine nothing about the secret.
 */
export function reconstruct(shares: readonly Share[], t: number, length: number): Uint8Array {
  const C = chunksOf(length);
  const seen = new Map<number, Uint32Array>();
  for (const s of shares) {
    if (s.y.length !== C) throw new ShamirError(`share for point ${s.x} has ${s.y.length} chunks, a ${length}-byte secret ${C}`);
    const prev = seen.get(s.x);
    if (prev !== undefined && prev.some((v, i) => v !== s.y[i])) throw new ShamirError(`two different shares for point ${s.x}`);
    seen.set(s.x, s.y);
  }
  if (seen.size < t) throw new ShamirError(`need ${t} shares to reconstruct, got ${seen.size}`);
  // The t smallest points: every secret reconstructed from the same responders reuses one set of
  // Lagrange coefficients.
  const pts = [...seen.entries()].sort((a, b) => a[0] - b[0]).slice(0, t);
  const lambda = lagrangeAtZero(pts.map((p) => p[0]));
  const acc = new Float64Array(C);
  for (let i = 0; i < pts.length; i++) {
    const y = pts[i]![1];
    const l = lambda[i]!;
    for (let c = 0; c < C; c++) acc[c] = (acc[c]! + mul(y[c]!, l)) % PRIME;
  }
  return chunksToSecret(Uint32Array.from(acc), length);
}

const lagrangeCache = new Map<string, Float64Array>();

/** Lagrange coefficients λ_i with f(0) = Σ λ_i f(x_i) (batch inversion: one field inverse per set). */
export function lagrangeAtZero(xs: readonly number[]): Float64Array {
  const key = xs.join(',');
  const hit = lagrangeCache.get(key);
  if (hit) return hit;
  const m = xs.length;
  const nums = new Float64Array(m);
  const dens = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let num = 1;
    let den = 1;
    const xi = xs[i]!;
    for (let j = 0; j < m; j++) {
      if (j === i) continue;
      const xj = xs[j]!;
      num = mul(num, xj);
      den = mul(den, (xj - xi + PRIME) % PRIME);
    }
    nums[i] = num;
    dens[i] = den;
  }
  // Montgomery's trick: prefix products, one inverse, walk back.
  const prefix = new Float64Array(m);
  let acc = 1;
  for (let i = 0; i < m; i++) {
    prefix[i] = acc;
    acc = mul(acc, dens[i]!);
  }
  let inv = inverse(acc);
  const out = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    out[i] = mul(nums[i]!, mul(inv, prefix[i]!));
    inv = mul(inv, dens[i]!);
  }
  if (lagrangeCache.size > 4096) lagrangeCache.clear();
  lagrangeCache.set(key, out);
  return out;
}

/** One share value of a 32-byte secret → SHARE_BYTES bytes (big-endian u32 per chunk). */
export function shareToBytes(y: Uint32Array): Uint8Array {
  const out = new Uint8Array(4 * y.length);
  const dv = new DataView(out.buffer);
  y.forEach((v, i) => dv.setUint32(4 * i, v));
  return out;
}

export function shareFromBytes(b: Uint8Array): Uint32Array {
  if (b.length !== SHARE_BYTES) throw new ShamirError(`a share is ${SHARE_BYTES} bytes, got ${b.length}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const y = new Uint32Array(b.length / 4);
  for (let i = 0; i < y.length; i++) {
    y[i] = dv.getUint32(4 * i);
    if (y[i]! >= PRIME) throw new ShamirError(`share chunk ${i} is not a field element`);
  }
  return y;
}
