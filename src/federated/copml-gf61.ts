/**
 * Fast GF(2^61 − 1) vectors for COPML (copml.ts has the method; this file only makes the same
 * arithmetic cheap). The BigInt path allocated one heap object per element and spent most of a
 * MNIST 3-vs-5 run (785-wide rows) encoding and parsing shares; here a vector is a Uint32Array of
 * little-endian (lo, hi) word pairs — exactly the wire format (8 bytes per element), so receiving a
 * share is a view plus a range check — and products are done in Float64 on 21-bit limbs:
 *   a = a0 + a1·2^21 + a2·2^42   (a0, a1 < 2^21, a2 < 2^19)
 *   a·b = Σ c_k 2^(21k), k = 0..4, and 2^63 ≡ 4, 2^84 ≡ 2^23 (mod 2^61 − 1), so
 *   a·b ≡ A + B·2^21 + C·2^42 with A = c0 + 4c3, B = c1 + 4c4, C = c2.
 * Every limb product is < 2^42 and one element adds < 2^43.6 to A (2^43.2 to B, 2^43 to C), so up
 * to CHUNK = 512 products accumulate exactly in a double (< 2^53) before a carry-and-fold reduction
 * (`reduce`). All results are canonical (in [0, p)). The tests check every kernel against the BigInt
 * reference in copml.ts, edge values included.
 */
import { randomBytes } from 'node:crypto';
import { CopmlError, P61 } from './copml.js';

/** A GF(2^61 − 1) vector: element q is lo = v[2q], hi = v[2q+1] (value lo + hi·2^32, hi < 2^29). */
export type F61Vec = Uint32Array;

const TWO21 = 2097152;
const M21 = TWO21 - 1;
const TWO19 = 524288;
const TWO32 = 4294967296;
const HI_MAX = 0x1fffffff;
/** Products accumulated before a reduction (see the bound in the header). */
const CHUNK = 512;

/** Canonical limbs of A + B·2^21 + C·2^42 (A, B, C non-negative integers < 2^53), written as (lo, hi) at out[2q]. */
function reduceInto(A: number, B: number, C: number, out: Uint32Array, q: number): void {
  for (;;) {
    let t = Math.floor(A / TWO21);
    A -= t * TWO21;
    B += t;
    t = Math.floor(B / TWO21);
    B -= t * TWO21;
    C += t;
    t = Math.floor(C / TWO19); // bits from 2^61 up wrap to bit 0 (2^61 ≡ 1)
    C -= t * TWO19;
    if (t === 0) break;
    A += t;
  }
  if (A === M21 && B === M21 && C === TWO19 - 1) A = B = C = 0; // the value p itself
  out[2 * q] = (A | ((B & 0x7ff) << 21)) >>> 0;
  out[2 * q + 1] = (B >>> 11) | (C << 10);
}

function limbsOf(lo: number, hi: number): [number, number, number] {
  return [lo & M21, (lo >>> 21) | ((hi & 0x3ff) << 11), hi >>> 10];
}

export function f61FromBigints(v: readonly bigint[]): F61Vec {
  const out = new Uint32Array(2 * v.length);
  for (let q = 0; q < v.length; q++) {
    const x = v[q]!;
    if (x < 0n || x >= P61) throw new CopmlError('field element out of range');
    out[2 * q] = Number(x & 0xffffffffn);
    out[2 * q + 1] = Number(x >> 32n);
  }
  return out;
}

export function f61ToBigints(v: F61Vec): bigint[] {
  const out: bigint[] = new Array(v.length / 2);
  for (let q = 0; q < out.length; q++) out[q] = (BigInt(v[2 * q + 1]!) << 32n) | BigInt(v[2 * q]!);
  return out;
}

export function f61Element(v: F61Vec, q: number): bigint {
  return (BigInt(v[2 * q + 1]!) << 32n) | BigInt(v[2 * q]!);
}

/** A signed integer |n| < 2^53 as a field element (negative n → p − |n|). */
export function f61FromInt(n: number, out: Uint32Array, q: number): void {
  const m = Math.abs(n);
  const lo = m % TWO32;
  const hi = (m - lo) / TWO32;
  if (n >= 0 || m === 0) {
    out[2 * q] = lo;
    out[2 * q + 1] = hi;
  } else {
    out[2 * q] = 0xffffffff - lo;
    out[2 * q + 1] = HI_MAX - hi;
  }
}

/** Checks a received vector: `count` elements (when given), every element < p. Returns a view (no copy when aligned). */
export function f61FromBytes(b: Uint8Array, count?: number): F61Vec {
  if (b.length % 8 !== 0 || (count !== undefined && b.length !== count * 8)) throw new CopmlError(`field vector of ${b.length} bytes, expected ${count ?? '?'} elements of 8 bytes`);
  const v = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length / 4) : new Uint32Array(new Uint8Array(b).buffer);
  for (let q = 1; q < v.length; q += 2) {
    const hi = v[q]!;
    if (hi > HI_MAX || (hi === HI_MAX && v[q - 1] === 0xffffffff)) throw new CopmlError('field element out of range');
  }
  return v;
}

export function f61Bytes(v: F61Vec): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** `count` uniform elements of GF(2^61 − 1) from node:crypto (61 random bits, the single value p re-drawn). */
export function f61Random(count: number): F61Vec {
  const v = new Uint32Array(randomBytes(8 * count).buffer.slice(0));
  for (let q = 0; q < count; q++) {
    v[2 * q + 1]! &= HI_MAX;
    while (v[2 * q + 1] === HI_MAX && v[2 * q] === 0xffffffff) {
      const r = new Uint32Array(randomBytes(8).buffer.slice(0));
      v[2 * q] = r[0]!;
      v[2 * q + 1] = r[1]! & HI_MAX;
    }
  }
  return v;
}

/** Σ_j coef_j · vecs_j (all of one length), canonical. The Lagrange encoding and the decoder are both this. */
export function f61Combine(coefs: readonly bigint[], vecs: readonly F61Vec[]): F61Vec {
  if (coefs.length !== vecs.length || vecs.length === 0) throw new CopmlError('f61Combine: one coefficient per vector');
  if (vecs.length > CHUNK) throw new CopmlError(`f61Combine: at most ${CHUNK} vectors`);
  const n = vecs[0]!.length / 2;
  for (const v of vecs) if (v.length !== 2 * n) throw new CopmlError('f61Combine: vectors of different lengths');
  const cl = coefs.map((c) => {
    const t = f61FromBigints([((c % P61) + P61) % P61]);
    return limbsOf(t[0]!, t[1]!);
  });
  // vector by vector (tight inner loops), then one reduction per element
  const A = new Float64Array(n);
  const B = new Float64Array(n);
  const C = new Float64Array(n);
  for (let j = 0; j < vecs.length; j++) {
    const v = vecs[j]!;
    const [b0, b1, b2] = cl[j]!;
    const b2x4 = 4 * b2;
    const b1x4 = 4 * b1;
    for (let q = 0; q < n; q++) {
      const lo = v[2 * q]!;
      const hi = v[2 * q + 1]!;
      const a0 = lo & M21;
      const a1 = (lo >>> 21) | ((hi & 0x3ff) << 11);
      const a2 = hi >>> 10;
      A[q]! += a0 * b0 + a1 * b2x4 + a2 * b1x4;
      B[q]! += a0 * b1 + a1 * b0 + a2 * b2x4;
      C[q]! += a0 * b2 + a1 * b1 + a2 * b0;
    }
  }
  const out = new Uint32Array(2 * n);
  for (let q = 0; q < n; q++) reduceInto(A[q]!, B[q]!, C[q]!, out, q);
  return out;
}

/**
 * The party's computation over GF(2^61 − 1), the same as copml.ts `codedGradient`:
 * rows (count × (d+1) elements [x | y]), coded model w (d elements), ĝ's field coefficients c:
 * returns X̃ᵀ(ĝ(X̃ w̃) − yScale·ỹ).
 */
export function f61CodedGradient(rows: F61Vec, count: number, d: number, w: F61Vec, c: readonly bigint[], yScale: bigint): F61Vec {
  const stride = d + 1;
  if (rows.length !== 2 * count * stride) throw new CopmlError(`coded rows: ${rows.length / 2} elements, expected ${count} × ${stride}`);
  if (w.length !== 2 * d) throw new CopmlError(`coded model: ${w.length / 2} elements, expected ${d}`);
  // model limbs, once
  const w0 = new Float64Array(d);
  const w1 = new Float64Array(d);
  const w2 = new Float64Array(d);
  for (let j = 0; j < d; j++) [w0[j], w1[j], w2[j]] = limbsOf(w[2 * j]!, w[2 * j + 1]!);
  const cl = c.map((v) => f61FromBigints([((v % P61) + P61) % P61]));
  const yS = f61FromBigints([((yScale % P61) + P61) % P61]);
  const accA = new Float64Array(d);
  const accB = new Float64Array(d);
  const accC = new Float64Array(d);
  const z = new Uint32Array(2);
  const g = new Uint32Array(2);
  const t = new Uint32Array(2);
  const fold = (): void => {
    for (let j = 0; j < d; j++) {
      reduceInto(accA[j]!, accB[j]!, accC[j]!, t, 0);
      [accA[j], accB[j], accC[j]] = limbsOf(t[0]!, t[1]!);
    }
  };
  for (let r = 0; r < count; r++) {
    const o = 2 * r * stride;
    // z = Σ_j x_j w_j
    let A = 0;
    let B = 0;
    let C = 0;
    for (let j = 0; j < d; j++) {
      if (j > 0 && j % CHUNK === 0) {
        reduceInto(A, B, C, z, 0);
        [A, B, C] = limbsOf(z[0]!, z[1]!);
      }
      const lo = rows[o + 2 * j]!;
      const hi = rows[o + 2 * j + 1]!;
      const a0 = lo & M21;
      const a1 = (lo >>> 21) | ((hi & 0x3ff) << 11);
      const a2 = hi >>> 10;
      const b0 = w0[j]!;
      const b1 = w1[j]!;
      const b2 = w2[j]!;
      A += a0 * b0 + 4 * (a1 * b2 + a2 * b1);
      B += a0 * b1 + a1 * b0 + 4 * (a2 * b2);
      C += a0 * b2 + a1 * b1 + a2 * b0;
    }
    reduceInto(A, B, C, z, 0);
    // g = ĝ(z) − yScale·y (Horner), scalar field arithmetic
    g[0] = 0;
    g[1] = 0;
    for (let k = cl.length - 1; k >= 0; k--) {
      f61MulInto(g, 0, z, 0, g, 0);
      f61AddInto(g, 0, cl[k]!, 0, g, 0);
    }
    f61MulInto(yS, 0, rows.subarray(o + 2 * d, o + 2 * d + 2), 0, t, 0);
    f61SubInto(g, 0, t, 0, g, 0);
    const [g0, g1, g2] = limbsOf(g[0]!, g[1]!);
    // acc_j += x_j · g
    for (let j = 0; j < d; j++) {
      const lo = rows[o + 2 * j]!;
      const hi = rows[o + 2 * j + 1]!;
      const a0 = lo & M21;
      const a1 = (lo >>> 21) | ((hi & 0x3ff) << 11);
      const a2 = hi >>> 10;
      accA[j]! += a0 * g0 + 4 * (a1 * g2 + a2 * g1);
      accB[j]! += a0 * g1 + a1 * g0 + 4 * (a2 * g2);
      accC[j]! += a0 * g2 + a1 * g1 + a2 * g0;
    }
    if ((r + 1) % CHUNK === 0) fold();
  }
  const out = new Uint32Array(2 * d);
  for (let j = 0; j < d; j++) reduceInto(accA[j]!, accB[j]!, accC[j]!, out, j);
  return out;
}

/** out[q] = a[i]·b[k] (canonical). */
export function f61MulInto(a: Uint32Array, i: number, b: Uint32Array, k: number, out: Uint32Array, q: number): void {
  const [a0, a1, a2] = limbsOf(a[2 * i]!, a[2 * i + 1]!);
  const [b0, b1, b2] = limbsOf(b[2 * k]!, b[2 * k + 1]!);
  reduceInto(a0 * b0 + 4 * (a1 * b2 + a2 * b1), a0 * b1 + a1 * b0 + 4 * (a2 * b2), a0 * b2 + a1 * b1 + a2 * b0, out, q);
}

export function f61AddInto(a: Uint32Array, i: number, b: Uint32Array, k: number, out: Uint32Array, q: number): void {
  const [a0, a1, a2] = limbsOf(a[2 * i]!, a[2 * i + 1]!);
  const [b0, b1, b2] = limbsOf(b[2 * k]!, b[2 * k + 1]!);
  reduceInto(a0 + b0, a1 + b1, a2 + b2, out, q);
}

/** out[q] = a[i] − b[k]: a + (p − b), where p − b flips the 61 bits of b. */
export function f61SubInto(a: Uint32Array, i: number, b: Uint32Array, k: number, out: Uint32Array, q: number): void {
  const [a0, a1, a2] = limbsOf(a[2 * i]!, a[2 * i + 1]!);
  const [b0, b1, b2] = limbsOf(b[2 * k]!, b[2 * k + 1]!);
  reduceInto(a0 + (M21 - b0), a1 + (M21 - b1), a2 + (TWO19 - 1 - b2), out, q);
}
