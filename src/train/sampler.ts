/**
 * Batch samplers. Poisson sampling (each example independently with probability q) is what the
 * subsampled-Gaussian accountant assumes; shuffled fixed-size batches are offered only as an
 * explicitly non-DP-accounted option.
 */
import { type RandomSource, uniformOpen } from '../privacy/index.js';

/**
 * One Poisson-sampled logical batch: indices i in [0, n) each kept independently with
 * probability q. Uses geometric gaps (skip ~ Geometric(q)), i.e. ~q·n random draws instead of n,
 * which is exactly the same Bernoulli process.
 */
export function poissonSample(n: number, q: number, rng: RandomSource): Int32Array {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate must be in [0, 1], got ${q}`);
  if (q === 0 || n === 0) return new Int32Array(0);
  if (q === 1) return Int32Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  const logq1 = Math.log1p(-q);
  // first kept index ~ Geometric(q) - 1, then gaps ~ Geometric(q)
  let i = Math.floor(Math.log(uniformOpen(rng)) / logq1);
  while (i < n) {
    out.push(i);
    i += 1 + Math.floor(Math.log(uniformOpen(rng)) / logq1);
  }
  return Int32Array.from(out);
}

/** Fisher–Yates permutation of [0, n). */
export function permutation(n: number, rng: RandomSource): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.nextDouble() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Splits a logical batch into physical chunks of at most `max` examples (memory bound). */
export function physicalChunks(indices: Int32Array, max: number): Int32Array[] {
  if (!(Number.isInteger(max) && max > 0)) throw new RangeError(`max physical batch must be a positive integer, got ${max}`);
  const out: Int32Array[] = [];
  for (let s = 0; s < indices.length; s += max) out.push(indices.subarray(s, Math.min(indices.length, s + max)));
  return out;
}
