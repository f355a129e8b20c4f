/**
 * COPML / CodedPrivateML core (So, Güler, Avestimehr, Mohassel: "CodedPrivateML: A Fast and
 * Privacy-Preserving Framework for Distributed Machine Learning", 2019/2021, and "Scalable,
 * Private and Byzantine-Resilient ML via coded computing" (COPML), 2020): logistic regression on
 * Lagrange-coded, quantised data over a prime field, with a degree-r polynomial in place of the
 * sigmoid. Pure arithmetic, no I/O; the parties and the wire are in copml-simulate.ts.
 *
 * Lagrange coded computing (Yu et al. 2019): the data (rows [X | y]) is cut into K blocks
 * X_1..X_K; with T uniformly random blocks Z_1..Z_T the encoding polynomial
 *   u(z) = Σ_k X_k ℓ_k(z) + Σ_t Z_t ℓ_{K+t}(z)       (ℓ_j: Lagrange basis on β_1..β_{K+T})
 * has u(β_k) = X_k; party i receives X̃_i = u(α_i). The model is coded the same way (w at β_1..β_K,
 * T random vectors), so each party computes f(X̃_i, w̃_i) = X̃_iᵀ(ĝ(X̃_i w̃_i) − ỹ_i), a polynomial of
 * degree (2r+1)(K+T−1) in z; any (2r+1)(K+T−1)+1 results determine it and the decoder reads
 * Σ_k f(X_k, w) = the full gradient at β_1..β_K. Hence N ≥ (2r+1)(K+T−1)+1.
 *
 * Privacy (information-theoretic, NOT differential privacy): any T shares are X̃_S = X·L_S + Z·M_S
 * with M_S = [ℓ_{K+t}(α_i)] a T×T matrix that is invertible whenever the α are distinct and
 * disjoint from the β (a Cauchy-like/Vandermonde argument), so X̃_S is uniform for every X:
 * T colluding parties learn nothing about the data (nor about the model) beyond what the decoder
 * publishes. The decoder learns the gradient of each round (and the coded polynomial, i.e. the K
 * block gradients) — the model and gradients are public outputs here. `isTPrivate` checks M_S.
 *
 * Fixed point: x → round(x·2^lx) (one-hot features and y are exact), w → round(w·2^lw), ĝ's
 * coefficient c_j → round(c_j·2^(lc + (r−j)(lx+lw))) so that every term of the gradient has scale
 * 2^(lx + lc + r(lx+lw)); values are signed, represented in (−p/2, p/2). Modular arithmetic is
 * exact, so only the decoded gradient must fit: p = 2^61−1 (r = 1) or 2^127−1 (r = 3).
 *
 * What differs from the papers: the model update is done by the decoder in the clear (as in
 * CodedPrivateML, whose master is the decoder) rather than inside MPC with secure truncation
 * (COPML's decentralised phase); each data owner Lagrange-encodes its own rows (the gradient is a
 * sum over rows, so the owners' coded polynomials add up) instead of a joint Shamir-shared encoding;
 * deterministic rounding instead of stochastic; BigInt arithmetic over a Mersenne prime.
 */
import { randomBytes } from 'node:crypto';

export const P61 = (1n << 61n) - 1n;
export const P127 = (1n << 127n) - 1n;

export class CopmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopmlError';
  }
}

export function mod(a: bigint, p: bigint): bigint {
  const r = a % p;
  return r < 0n ? r + p : r;
}

export function powMod(b: bigint, e: bigint, p: bigint): bigint {
  let r = 1n;
  b = mod(b, p);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % p;
    b = (b * b) % p;
    e >>= 1n;
  }
  return r;
}

export function invMod(a: bigint, p: bigint): bigint {
  if (mod(a, p) === 0n) throw new CopmlError('inverse of 0');
  return powMod(a, p - 2n, p);
}

/** Uniform field elements (node:crypto; 64 extra bits make the modular bias < 2^-64). */
export type FieldRandom = (count: number) => bigint[];
export function secureFieldRandom(p: bigint): FieldRandom {
  const bytes = Math.ceil(p.toString(2).length / 8) + 8;
  return (count) => {
    const buf = randomBytes(bytes * count);
    const out: bigint[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = BigInt('0x' + buf.subarray(i * bytes, (i + 1) * bytes).toString('hex')) % p;
    return out;
  };
}

export interface CodeParams {
  p: bigint;
  K: number;
  T: number;
  /** Evaluation points of the parties, α_1..α_N (distinct, disjoint from β). */
  alphas: bigint[];
  /** Interpolation points β_1..β_{K+T}. */
  betas: bigint[];
}

/** Largest K with (2r+1)(K+T−1)+1 ≤ N (0 if none). */
export function maxBlocks(N: number, T: number, r: number): number {
  return Math.floor((N - 1) / (2 * r + 1)) - T + 1;
}

export function needed(K: number, T: number, r: number): number {
  return (2 * r + 1) * (K + T - 1) + 1;
}

/** β_j = j (j = 1..K+T), α_i = K+T+i (i = 1..N). */
export function codeParams(p: bigint, N: number, K: number, T: number): CodeParams {
  if (K < 1 || T < 0 || N < 1) throw new CopmlError(`bad code parameters N=${N} K=${K} T=${T}`);
  return { p, K, T, betas: Array.from({ length: K + T }, (_, j) => BigInt(j + 1)), alphas: Array.from({ length: N }, (_, i) => BigInt(K + T + i + 1)) };
}

/** ℓ_j(x) for the basis on `points`, j = 0..points.length−1. */
export function lagrangeBasisAt(points: readonly bigint[], x: bigint, p: bigint): bigint[] {
  return points.map((pj, j) => {
    let num = 1n;
    let den = 1n;
    for (let l = 0; l < points.length; l++) {
      if (l === j) continue;
      num = (num * mod(x - points[l]!, p)) % p;
      den = (den * mod(pj - points[l]!, p)) % p;
    }
    return (num * invMod(den, p)) % p;
  });
}

/**
 * Lagrange-encodes K data blocks (each `len` field elements, flattened) with T random blocks:
 * returns the N shares u(α_i). `rand` draws the T masks (secure by default).
 */
export function lccEncode(blocks: readonly bigint[][], c: CodeParams, rand: FieldRandom = secureFieldRandom(c.p)): bigint[][] {
  if (blocks.length !== c.K) throw new CopmlError(`expected ${c.K} blocks, got ${blocks.length}`);
  const len = blocks[0]!.length;
  const all = [...blocks];
  for (let t = 0; t < c.T; t++) all.push(rand(len));
  return c.alphas.map((a) => {
    const coef = lagrangeBasisAt(c.betas, a, c.p);
    const share = new Array<bigint>(len).fill(0n);
    for (let j = 0; j < all.length; j++) {
      const b = all[j]!;
      const cj = coef[j]!;
      for (let q = 0; q < len; q++) share[q] = share[q]! + cj * b[q]!;
    }
    for (let q = 0; q < len; q++) share[q] = share[q]! % c.p;
    return share;
  });
}

/** Interpolates from evaluations at `xs` (≥ degree+1 of them) and evaluates at each of `at`. */
export function interpolateAt(xs: readonly bigint[], ys: readonly bigint[][], at: readonly bigint[], p: bigint): bigint[][] {
  return at.map((b) => {
    const coef = lagrangeBasisAt(xs, b, p);
    const len = ys[0]!.length;
    const out = new Array<bigint>(len).fill(0n);
    for (let i = 0; i < xs.length; i++) for (let q = 0; q < len; q++) out[q] = out[q]! + coef[i]! * ys[i]![q]!;
    return out.map((v) => v % p);
  });
}

/** Decodes the block values f(X_k) from results at the parties `ids` (1-based) and returns their sum. */
export function lccDecodeSum(c: CodeParams, ids: readonly number[], results: readonly bigint[][]): bigint[] {
  const blocks = interpolateAt(ids.map((i) => c.alphas[i - 1]!), results, c.betas.slice(0, c.K), c.p);
  const sum = new Array<bigint>(blocks[0]!.length).fill(0n);
  for (const b of blocks) for (let q = 0; q < sum.length; q++) sum[q] = (sum[q]! + b[q]!) % c.p;
  return sum;
}

/** Determinant mod p (Gaussian elimination). */
function detMod(m: bigint[][], p: bigint): bigint {
  const a = m.map((r) => r.slice());
  const n = a.length;
  let det = 1n;
  for (let col = 0; col < n; col++) {
    const piv = a.findIndex((r, i) => i >= col && mod(r[col]!, p) !== 0n);
    if (piv < 0) return 0n;
    if (piv !== col) {
      [a[piv], a[col]] = [a[col]!, a[piv]!];
      det = mod(-det, p);
    }
    det = (det * mod(a[col]![col]!, p)) % p;
    const inv = invMod(a[col]![col]!, p);
    for (let i = col + 1; i < n; i++) {
      const f = (mod(a[i]![col]!, p) * inv) % p;
      for (let j = col; j < n; j++) a[i]![j] = mod(a[i]![j]! - f * a[col]![j]!, p);
    }
  }
  return det;
}

/** T-privacy of the code for the colluding set `ids`: the T×T mask matrix [ℓ_{K+t}(α_i)] is invertible. */
export function isTPrivate(c: CodeParams, ids: readonly number[]): boolean {
  if (ids.length !== c.T) throw new CopmlError(`a colluding set has T = ${c.T} members`);
  const m = ids.map((i) => lagrangeBasisAt(c.betas, c.alphas[i - 1]!, c.p).slice(c.K));
  return detMod(m, c.p) !== 0n;
}

// ---------------------------------------------------------------- fixed point ----

export function quantize(x: number, bits: number, p: bigint): bigint {
  return mod(BigInt(Math.round(x * 2 ** bits)), p);
}

export function dequantize(v: bigint, bits: number, p: bigint): number {
  const signed = v > p / 2n ? v - p : v;
  return Number(signed) / 2 ** bits;
}

export interface FixedPoint {
  lx: number;
  lw: number;
  lc: number;
}

/** Least-squares polynomial fit of the sigmoid on [−R, R] (a fine grid), coefficients c_0..c_r. */
export function sigmoidFit(r: number, R: number): number[] {
  const n = r + 1;
  const A = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const b = new Array<number>(n).fill(0);
  for (let s = 0; s <= 2000; s++) {
    const z = -R + (2 * R * s) / 2000;
    const sg = 1 / (1 + Math.exp(-z));
    for (let i = 0; i < n; i++) {
      b[i]! += z ** i * sg;
      for (let j = 0; j < n; j++) A[i]![j]! += z ** (i + j);
    }
  }
  // Gaussian elimination with partial pivoting (n ≤ 4).
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(A[i]![c]!) > Math.abs(A[piv]![c]!)) piv = i;
    [A[c], A[piv]] = [A[piv]!, A[c]!];
    [b[c], b[piv]] = [b[piv]!, b[c]!];
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = A[i]![c]! / A[c]![c]!;
      for (let j = c; j < n; j++) A[i]![j]! -= f * A[c]![j]!;
      b[i]! -= f * b[c]!;
    }
  }
  return b.map((v, i) => v / A[i]![i]!);
}

export function polyEval(coef: readonly number[], z: number): number {
  let v = 0;
  for (let j = coef.length - 1; j >= 0; j--) v = v * z + coef[j]!;
  return v;
}

/** Scale (bits) of the coded gradient. */
export function gradientBits(fp: FixedPoint, r: number): number {
  return fp.lx + fp.lc + r * (fp.lx + fp.lw);
}

/** Field coefficients of ĝ at the scales that make every term 2^(lc + r(lx+lw)); plus the y multiplier. */
export function fieldCoefficients(coef: readonly number[], fp: FixedPoint, p: bigint): { c: bigint[]; yScale: bigint } {
  const r = coef.length - 1;
  const c = coef.map((cj, j) => quantize(cj, fp.lc + (r - j) * (fp.lx + fp.lw), p));
  const yScale = mod(1n << BigInt(fp.lc + r * (fp.lx + fp.lw) - fp.lx), p);
  return { c, yScale };
}

/**
 * The party's computation on its coded rows: rows × (d+1) elements [x | y] (flattened), coded
 * model w̃ (d elements): returns X̃ᵀ(ĝ(X̃ w̃)) − yScale·X̃ᵀỹ (d elements, mod p).
 */
export function codedGradient(rows: readonly bigint[], count: number, d: number, w: readonly bigint[], c: readonly bigint[], yScale: bigint, p: bigint): bigint[] {
  const acc = new Array<bigint>(d).fill(0n);
  const stride = d + 1;
  for (let q = 0; q < count; q++) {
    const o = q * stride;
    let z = 0n;
    for (let j = 0; j < d; j++) z += rows[o + j]! * w[j]!;
    z %= p;
    // ĝ(z) by Horner, then minus yScale·y.
    let g = 0n;
    for (let j = c.length - 1; j >= 0; j--) g = (g * z + c[j]!) % p;
    g = mod(g - yScale * rows[o + d]!, p);
    for (let j = 0; j < d; j++) acc[j] = acc[j]! + rows[o + j]! * g;
    if ((q & 63) === 63) for (let j = 0; j < d; j++) acc[j] = acc[j]! % p;
  }
  return acc.map((v) => v % p);
}

/** Cuts n rows (each d+1 quantised elements [x | y]) into K blocks of ⌈n/K⌉ rows (zero rows pad: they add 0 to the gradient). */
export function toBlocks(x: Float32Array, y: Int32Array, n: number, d: number, K: number, lx: number, p: bigint): { blocks: bigint[][]; rowsPerBlock: number } {
  const rowsPerBlock = Math.max(1, Math.ceil(n / K));
  const blocks: bigint[][] = [];
  for (let k = 0; k < K; k++) {
    const b = new Array<bigint>(rowsPerBlock * (d + 1)).fill(0n);
    for (let q = 0; q < rowsPerBlock; q++) {
      const i = k * rowsPerBlock + q;
      if (i >= n) break;
      for (let j = 0; j < d; j++) b[q * (d + 1) + j] = quantize(x[i * d + j]!, lx, p);
      b[q * (d + 1) + d] = quantize(y[i]!, lx, p);
    }
    blocks.push(b);
  }
  return { blocks, rowsPerBlock };
}

// ---------------------------------------------------------------- plaintext reference ----

export interface Binary {
  x: Float32Array;
  y: Int32Array;
  count: number;
  d: number;
}

export function accuracy(w: Float64Array, data: Binary): number {
  let ok = 0;
  for (let i = 0; i < data.count; i++) {
    let z = 0;
    for (let j = 0; j < data.d; j++) z += data.x[i * data.d + j]! * w[j]!;
    if ((z > 0 ? 1 : 0) === data.y[i]) ok++;
  }
  return data.count ? ok / data.count : 0;
}

/** Full-batch gradient descent: w ← w − (lr/m)·Xᵀ(g(Xw) − y), g = sigmoid or the polynomial `coef`. */
export function plaintextLogistic(data: Binary, iterations: number, lr: number, coef?: readonly number[]): Float64Array {
  const w = new Float64Array(data.d);
  const g = new Float64Array(data.d);
  for (let it = 0; it < iterations; it++) {
    g.fill(0);
    for (let i = 0; i < data.count; i++) {
      let z = 0;
      for (let j = 0; j < data.d; j++) z += data.x[i * data.d + j]! * w[j]!;
      const e = (coef ? polyEval(coef, z) : 1 / (1 + Math.exp(-z))) - data.y[i]!;
      for (let j = 0; j < data.d; j++) g[j]! += data.x[i * data.d + j]! * e;
    }
    for (let j = 0; j < data.d; j++) w[j]! -= (lr / data.count) * g[j]!;
  }
  return w;
}
