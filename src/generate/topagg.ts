/**
 * DataLens TopAgg (spec §3): per-teacher top-k compression, (stochastic) sign quantisation, vote
 * sum, Gaussian noise and threshold. Pure typed-array code: the teacher gradients arrive as one
 * [N, B, d] block (teacher-major, the layout of the batched teacher computation).
 *
 * Privacy: each teacher's vote vector has at most k non-zero entries, each ±1, and depends only on
 * that teacher's own gradient (the bound b_i uses only teacher i's values — pitfall P5), so
 * replacing one teacher moves the sum by at most 2√k in L2. The Gaussian noise is the only thing that
 * makes the release private; it is drawn fresh per coordinate, per query, per step (P7).
 */
import type { RandomSource } from '../privacy/index.js';

export interface TopAggParams {
  /** Votes per teacher per query. */
  k: number;
  /** Std of the Gaussian noise added to every coordinate of the vote sum. */
  sigma: number;
  /** Clip bound b (max_grad). The per-teacher bound is min(b, max_t |g_i[t]|); 0 = own max only. */
  clip: number;
  /** Stochastic sign (unbiased for |g| ≤ b) or deterministic sign(g) ∈ {−1, 0, +1}. */
  stochastic: boolean;
  /** Threshold fraction β: dir = ±1 where |Ṽ| > βN, else 0. β = 0 selects the no-threshold variant (α·Ṽ/k). */
  beta: number;
  /** Step size α in pixel space. */
  alpha: number;
}

export function validateTopAggParams(p: TopAggParams, dim: number): void {
  if (!Number.isInteger(p.k) || p.k < 1 || p.k > dim) throw new RangeError(`TopAgg: k must be an integer in [1, ${dim}], got ${p.k}`);
  if (!(p.sigma >= 0) || !Number.isFinite(p.sigma)) throw new RangeError(`TopAgg: sigma must be >= 0 (0 only in an explicitly non-private run), got ${p.sigma}`);
  if (!(p.clip >= 0) || !Number.isFinite(p.clip)) throw new RangeError(`TopAgg: clip bound must be >= 0, got ${p.clip}`);
  if (!(p.beta >= 0) || p.beta > 1) throw new RangeError(`TopAgg: beta must be in [0, 1], got ${p.beta}`);
  if (!(p.alpha > 0) || !Number.isFinite(p.alpha)) throw new RangeError(`TopAgg: alpha must be > 0, got ${p.alpha}`);
}

/**
 * Value of the k-th largest |row[t]| (quickselect on a scratch copy; O(d) expected).
 * `scratch` must have row.length entries.
 */
export function kthLargestAbs(row: Float32Array, k: number, scratch: Float32Array): number {
  const n = row.length;
  for (let t = 0; t < n; t++) scratch[t] = Math.abs(row[t]!);
  // Select index n-k in ascending order.
  const target = n - k;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = scratch[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (scratch[i]! < pivot) i++;
      while (scratch[j]! > pivot) j--;
      if (i <= j) {
        const t = scratch[i]!;
        scratch[i] = scratch[j]!;
        scratch[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return scratch[target]!;
}

/**
 * Adds teacher `row`'s vote vector into `acc` (exactly ≤ k entries, each ±1).
 * `uniforms` holds k uniform draws in [0,1); exactly k are consumed per row whatever the data, so the
 * random stream of the other teachers never depends on this teacher's gradient.
 * Returns nothing; `picked` is a scratch Int32Array of length k.
 */
export function addTeacherVotes(
  row: Float32Array,
  p: Pick<TopAggParams, 'k' | 'clip' | 'stochastic'>,
  uniforms: Float64Array | Float32Array,
  uOffset: number,
  acc: Int32Array,
  accOffset: number,
  scratch: Float32Array,
  picked: Int32Array,
): void {
  const d = row.length;
  const k = p.k;
  let maxAbs = 0;
  for (let t = 0; t < d; t++) {
    // A non-finite gradient (NaN from a diverged teacher, ±Inf) votes as 0: NaN compares false
    // with everything, so quickselect and the pick loops below would select fewer than k
    // coordinates and leave the previous teacher's picks in `picked` (issue 12 #10). The row is
    // a private scratch copy of one teacher's gradient, overwritten in place.
    const v = row[t]!;
    if (!Number.isFinite(v)) row[t] = 0;
    const a = Math.abs(row[t]!);
    if (a > maxAbs) maxAbs = a;
  }
  if (k >= d) {
    // k = d: every coordinate votes; no selection needed.
    for (let t = 0; t < d; t++) picked[t] = t;
  } else {
    const tau = kthLargestAbs(row, k, scratch);
    // Exactly k indices: all strictly above τ, then ties at τ in index order.
    let n = 0;
    for (let t = 0; t < d && n < k; t++) if (Math.abs(row[t]!) > tau) picked[n++] = t;
    for (let t = 0; t < d && n < k; t++) if (Math.abs(row[t]!) === tau) picked[n++] = t;
    // Exactly k distinct picks (the two loops select disjoint sets): the sensitivity 2√k assumes it.
    if (n !== k) throw new Error(`TopAgg: selected ${n} coordinates instead of k = ${k} (non-finite gradient?)`);
  }
  const b = p.clip > 0 ? Math.min(p.clip, maxAbs) : maxAbs;
  for (let s = 0; s < k; s++) {
    const t = picked[s]!;
    const g = row[t]!;
    let v: number;
    if (p.stochastic) {
      // P(+1) = clamp(1/2 + g/(2b)); b = 0 (all-zero row) votes ±1 uniformly — still ≤ k entries of ±1.
      const prob = b > 0 ? Math.min(1, Math.max(0, 0.5 + g / (2 * b))) : 0.5;
      v = uniforms[uOffset + s]! < prob ? 1 : -1;
    } else {
      v = g > 0 ? 1 : g < 0 ? -1 : 0;
    }
    acc[accOffset + t]! += v;
  }
}

/**
 * Un-noised vote sums V[j] = Σ_i v_i[j] for B queries. grads: [N, B, d] teacher-major.
 * Private intermediate: never log or return it past the noise step (P9); exported for tests.
 */
export function voteSums(grads: Float32Array, numTeachers: number, numQueries: number, dim: number, p: Pick<TopAggParams, 'k' | 'clip' | 'stochastic'>, rng: RandomSource): Int32Array {
  if (grads.length !== numTeachers * numQueries * dim) throw new RangeError(`TopAgg: expected ${numTeachers}×${numQueries}×${dim} gradients, got ${grads.length} values`);
  const acc = new Int32Array(numQueries * dim);
  const scratch = new Float32Array(dim);
  const picked = new Int32Array(p.k);
  const uniforms = new Float64Array(numQueries * p.k);
  for (let i = 0; i < numTeachers; i++) {
    if (p.stochastic) rng.uniform(uniforms);
    for (let j = 0; j < numQueries; j++) {
      const off = (i * numQueries + j) * dim;
      addTeacherVotes(grads.subarray(off, off + dim), p, uniforms, j * p.k, acc, j * dim, scratch, picked);
    }
  }
  return acc;
}

export interface TopAggResult {
  /** α·dir per query, [B, d]: the only data-dependent output (noised). */
  direction: Float32Array;
  /** Fraction of non-zero coordinates in dir (post-processing of the noised sum; safe to log). */
  nonZeroFraction: number;
}

/** Noise + threshold (or scaling) of the vote sums: Ṽ = V + N(0, σ²) then dir. */
export function noisyAggregate(votes: Int32Array, numTeachers: number, numQueries: number, dim: number, p: TopAggParams, rng: RandomSource): TopAggResult {
  const noise = new Float64Array(numQueries * dim);
  rng.normal(noise, p.sigma);
  const out = new Float32Array(numQueries * dim);
  const thr = p.beta * numTeachers;
  let nz = 0;
  for (let t = 0; t < out.length; t++) {
    const v = votes[t]! + noise[t]!;
    let dir: number;
    if (p.beta > 0) dir = v > thr ? 1 : v < -thr ? -1 : 0;
    else dir = v / p.k;
    if (dir !== 0) nz++;
    out[t] = p.alpha * dir;
  }
  return { direction: out, nonZeroFraction: nz / out.length };
}

/** The whole TopAgg query batch: B queries, one per generated sample. */
export function topAgg(grads: Float32Array, numTeachers: number, numQueries: number, dim: number, p: TopAggParams, rng: RandomSource): TopAggResult {
  validateTopAggParams(p, dim);
  const votes = voteSums(grads, numTeachers, numQueries, dim, p, rng);
  return noisyAggregate(votes, numTeachers, numQueries, dim, p, rng);
}
