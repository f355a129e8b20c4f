/**
 * Shamir t-of-n secret sharing (Shamir 1979) over the prime field GF(p), p = 2^521 − 1 (a Mersenne
 * prime, so reduction is a shift and an add). Used by secure aggregation (secagg.ts) to share each
 * client's 32-byte self-mask seed and X25519 mask secret key: any t shares reconstruct the secret,
 * any t − 1 shares are jointly uniform and independent of it (the polynomial's t − 1 random
 * coefficients act as a one-time pad). 2^521 − 1 > 2^256, so every 32-byte string is a field element.
 *
 * Shares are evaluations f(x) at the client ids x = 1..n (x = 0 is the secret and never shared).
 * The coefficients come from node:crypto's CSPRNG: this is key material, never seeded.
 */
import { randomBytes } from 'node:crypto';

export const FIELD_BITS = 521;
export const PRIME = (1n << 521n) - 1n;
/** Bytes of one serialised share value (big-endian, fixed width). */
export const SHARE_BYTES = 66;

export class ShamirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShamirError';
  }
}

/** x mod p for 0 <= x < p^2 (Mersenne reduction). */
function reduce(x: bigint): bigint {
  if (x < 0n) {
    x %= PRIME;
    return x < 0n ? x + PRIME : x;
  }
  while (x > PRIME) x = (x & PRIME) + (x >> 521n);
  return x === PRIME ? 0n : x;
}

function mul(a: bigint, b: bigint): bigint {
  return reduce(a * b);
}

/** a^(p−2) = a^(−1) mod p (Fermat). */
function inverse(a: bigint): bigint {
  if (a === 0n) throw new ShamirError('inverse of 0');
  let result = 1n;
  let base = reduce(a);
  let e = PRIME - 2n;
  while (e > 0n) {
    if (e & 1n) result = mul(result, base);
    base = mul(base, base);
    e >>= 1n;
  }
  return result;
}

export function bytesToField(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  if (x >= PRIME) throw new ShamirError(`value of ${b.length} bytes is not a field element`);
  return x;
}

export function fieldToBytes(x: bigint, length: number): Uint8Array {
  if (x < 0n || x >= PRIME) throw new ShamirError('not a field element');
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  if (x !== 0n) throw new ShamirError(`field element does not fit in ${length} bytes`);
  return out;
}

function randomFieldElement(): bigint {
  for (;;) {
    const b = randomBytes(SHARE_BYTES);
    b[0] &= 0x01; // 521 bits
    const x = bytesToField(b);
    if (x < PRIME) return x;
  }
}

export interface Share {
  /** Evaluation point (a client id, >= 1). */
  x: number;
  /** f(x) in GF(p). */
  y: bigint;
}

/** Shares of `secret` (<= 65 bytes) for the points `xs` (distinct integers >= 1), threshold t. */
export function split(secret: Uint8Array, t: number, xs: readonly number[]): Share[] {
  if (!Number.isInteger(t) || t < 1) throw new ShamirError(`threshold must be an integer >= 1, got ${t}`);
  if (xs.length < t) throw new ShamirError(`need at least t = ${t} share holders, got ${xs.length}`);
  if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isInteger(x) || x < 1)) throw new ShamirError('share points must be distinct integers >= 1');
  const coeffs = [bytesToField(secret)];
  for (let i = 1; i < t; i++) coeffs.push(randomFieldElement());
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) y = reduce(mul(y, bx) + coeffs[i]!);
    return { x, y };
  });
}

/**
 * The secret from at least t shares (Lagrange interpolation at 0; the first t distinct points are
 * used). Fewer than t shares is an error: they determine nothing about the secret.
 */
export function reconstruct(shares: readonly Share[], t: number, length: number): Uint8Array {
  const seen = new Map<number, bigint>();
  for (const s of shares) {
    const prev = seen.get(s.x);
    if (prev !== undefined && prev !== s.y) throw new ShamirError(`two different shares for point ${s.x}`);
    seen.set(s.x, s.y);
  }
  if (seen.size < t) throw new ShamirError(`need ${t} shares to reconstruct, got ${seen.size}`);
  // The first t points in ascending order: every secret reconstructed from the same responders
  // reuses one set of Lagrange coefficients.
  const pts = [...seen.entries()].sort((a, b) => a[0] - b[0]).slice(0, t);
  const lambda = lagrangeAtZero(pts.map((p) => p[0]));
  let secret = 0n;
  for (let i = 0; i < pts.length; i++) secret = reduce(secret + mul(pts[i]![1], lambda[i]!));
  return fieldToBytes(secret, length);
}

const lagrangeCache = new Map<string, bigint[]>();

/** Lagrange coefficients λ_i with f(0) = Σ λ_i f(x_i) (batch inversion: one field inverse per set). */
export function lagrangeAtZero(xs: readonly number[]): bigint[] {
  const key = xs.join(',');
  const hit = lagrangeCache.get(key);
  if (hit) return hit;
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let i = 0; i < xs.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < xs.length; j++) {
      if (j === i) continue;
      num = mul(num, BigInt(xs[j]!));
      den = mul(den, reduce(BigInt(xs[j]!) - BigInt(xs[i]!)));
    }
    nums.push(num);
    dens.push(den);
  }
  // Montgomery's trick: prefix products, one inverse, walk back.
  const prefix: bigint[] = [];
  let acc = 1n;
  for (const d of dens) {
    prefix.push(acc);
    acc = mul(acc, d);
  }
  let inv = inverse(acc);
  const out = new Array<bigint>(xs.length);
  for (let i = xs.length - 1; i >= 0; i--) {
    out[i] = mul(nums[i]!, mul(inv, prefix[i]!));
    inv = mul(inv, dens[i]!);
  }
  if (lagrangeCache.size > 64) lagrangeCache.clear();
  lagrangeCache.set(key, out);
  return out;
}

export function shareToBytes(y: bigint): Uint8Array {
  return fieldToBytes(y, SHARE_BYTES);
}

export function shareFromBytes(b: Uint8Array): bigint {
  if (b.length !== SHARE_BYTES) throw new ShamirError(`a share is ${SHARE_BYTES} bytes, got ${b.length}`);
  return bytesToField(b);
}
