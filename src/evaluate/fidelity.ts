/**
 * Fidelity of a synthetic image set: FID, precision and recall in the feature space of a fixed
 * network, plus per-class sample counts.
 *
 * - Feature network: the strided CNN of classifiers.ts trained with a fixed seed ONLY on the real
 *   training split (never on test images, never on synthetic data); features are its 128 penultimate
 *   ReLU activations. It is an evaluation instrument: no generator reads it. Inception-v3 (the FID
 *   of Heusel et al. 2017) is an ImageNet network, meaningless on 28×28 digits and not shippable
 *   here; DPImageBench and the DP-generation papers on MNIST also use a domain classifier's features,
 *   so FID values are comparable only between runs of dplens (same feature net, same reference set).
 * - FID (Heusel et al. 2017): ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½, computed in float64
 *   with a Jacobi eigendecomposition (symmetric form, so no complex square roots).
 * - Precision / recall (Kynkäänniemi et al., NeurIPS 2019, "Improved precision and recall metric"):
 *   each set's manifold is the union of balls around its points with radius the distance to the
 *   k-th nearest neighbour in the same set (k = 5). Precision = share of synthetic points inside the
 *   real manifold; recall = share of real points inside the synthetic manifold. A generator that
 *   emits one prototype per class has (near-)zero radii, so its recall is near zero.
 *
 * Privacy: the feature network is trained on the private training split, so these figures are a
 * release OUTSIDE the DP guarantee of the synthetic set (the runner says so in run.json).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Symmetric eigenvalues/vectors by cyclic Jacobi rotations (float64, n ≤ a few hundred). */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += A[i * n + i]! * A[i * n + i]!;
      for (let j = i + 1; j < n; j++) off += A[i * n + j]! * A[i * n + j]!;
    }
    if (off <= 1e-22 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const app = A[p * n + p]!;
        const aqq = A[q * n + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = A[i * n + i]!;
  return { values, vectors: V };
}

/** Mean and covariance (unbiased, float64) of `count` rows of dimension `dim`. */
export function meanCov(x: Float32Array, count: number, dim: number): { mean: Float64Array; cov: Float64Array } {
  if (count < 2) throw new RangeError(`FID needs at least 2 feature vectors per set, got ${count}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < count; r++) for (let j = 0; j < dim; j++) mean[j] += x[r * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j] /= count;
  const cov = new Float64Array(dim * dim);
  const row = new Float64Array(dim);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < dim; j++) row[j] = x[r * dim + j]! - mean[j]!;
    for (let i = 0; i < dim; i++) {
      const ri = row[i]!;
      if (ri === 0) continue;
      for (let j = i; j < dim; j++) cov[i * dim + j] += ri * row[j]!;
    }
  }
  for (let i = 0; i < dim; i++)
    for (let j = i; j < dim; j++) {
      const v = cov[i * dim + j]! / (count - 1);
      cov[i * dim + j] = v;
      cov[j * dim + i] = v;
    }
  return { mean, cov };
}

function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j]!;
    }
  return c;
}

/** Fréchet distance between two Gaussians N(μ₁, Σ₁), N(μ₂, Σ₂) of dimension `dim`. */
export function frechetDistance(m1: Float64Array, c1: Float64Array, m2: Float64Array, c2: Float64Array, dim: number): number {
  let d2 = 0;
  for (let i = 0; i < dim; i++) d2 += (m1[i]! - m2[i]!) ** 2;
  let tr1 = 0;
  let tr2 = 0;
  for (let i = 0; i < dim; i++) {
    tr1 += c1[i * dim + i]!;
    tr2 += c2[i * dim + i]!;
  }
  // Σ₁^½ = V diag(√λ) Vᵀ; then tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Σ √eig (symmetric PSD).
  const { values, vectors: V } = symmetricEigen(c1, dim);
  const s1h = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++)
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += V[i * dim + k]! * Math.sqrt(Math.max(0, values[k]!)) * V[j * dim + k]!;
      s1h[i * dim + j] = s;
    }
  const M = matMul(matMul(s1h, c2, dim), s1h, dim);
  for (let i = 0; i < dim; i++)
    for (let j = i + 1; j < dim; j++) {
      const v = (M[i * dim + j]! + M[j * dim + i]!) / 2;
      M[i * dim + j] = v;
      M[j * dim + i] = v;
    }
  const ev = symmetricEigen(M, dim).values;
  let trSqrt = 0;
  for (const v of ev) trSqrt += Math.sqrt(Math.max(0, v));
  return Math.max(0, d2 + tr1 + tr2 - 2 * trSqrt);
}

/** FID between two feature sets ([count × dim] row-major). */
export function fid(a: Float32Array, na: number, b: Float32Array, nb: number, dim: number): number {
  const A = meanCov(a, na, dim);
  const B = meanCov(b, nb, dim);
  return frechetDistance(A.mean, A.cov, B.mean, B.cov, dim);
}

function sqNorms(x: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[r * dim + j]! ** 2;
    out[r] = s;
  }
  return out;
}

/**
 * Squared distances of row blocks of `a` to all rows of `b`: ‖a‖² + ‖b‖² − 2 a·b with the product
 * on the engine (10k × 10k × 128 is 13 GFLOP: seconds in JS, ~0.1 s in MLAS), clamped at 0.
 * Calls `each(i0, i1, block)` with block = [(i1 − i0) × nb] row-major.
 */
function forDistanceBlocks(a: Float32Array, na: number, b: Float32Array, nb: number, dim: number, each: (i0: number, i1: number, d: Float32Array) => void): void {
  const block = 1000;
  // The product runs on the engine; the norms are added in the same JS pass that reads the block
  // back (elementwise tfjs ops on 10⁷ entries cost more than the product itself).
  const bt = tf.tidy(() => tf.transpose(tf.tensor2d(b, [nb, dim])));
  const bn = sqNorms(b, nb, dim);
  try {
    for (let i0 = 0; i0 < na; i0 += block) {
      const i1 = Math.min(na, i0 + block);
      const rows = a.subarray(i0 * dim, i1 * dim);
      const an = sqNorms(rows, i1 - i0, dim);
      // Not returned through tf.tidy: tidy walks a returned typed array element by element
      // (35 s of a 10k × 10k precision/recall went there).
      const x = tf.tensor2d(rows, [i1 - i0, dim]);
      const prod = tf.matMul(x, bt as tf.Tensor2D);
      const d = prod.dataSync() as Float32Array;
      tf.dispose([x, prod]);
      for (let i = 0; i < i1 - i0; i++) {
        const o = i * nb;
        const ai = an[i]!;
        for (let j = 0; j < nb; j++) {
          const v = ai + bn[j]! - 2 * d[o + j]!;
          d[o + j] = v > 0 ? v : 0;
        }
      }
      each(i0, i1, d);
    }
  } finally {
    bt.dispose();
  }
}

/** Squared distance of each row to its k-th nearest neighbour in the same set (itself excluded). */
export function kthNeighbourRadii(x: Float32Array, n: number, dim: number, k: number): Float32Array {
  if (n <= k) throw new RangeError(`precision/recall with k = ${k} needs more than ${k} points per set, got ${n}`);
  const radii = new Float32Array(n);
  const best = new Float32Array(k + 1);
  forDistanceBlocks(x, n, x, n, dim, (i0, i1, d) => {
    for (let i = i0; i < i1; i++) {
      // keep the k+1 smallest (the point itself, at distance ≈ 0, is one of them)
      best.fill(Infinity);
      const o = (i - i0) * n;
      for (let j = 0; j < n; j++) {
        const v = j === i ? 0 : d[o + j]!;
        if (v >= best[k]!) continue;
        let p = k;
        while (p > 0 && best[p - 1]! > v) {
          best[p] = best[p - 1]!;
          p--;
        }
        best[p] = v;
      }
      radii[i] = best[k]!;
    }
  });
  return radii;
}

/** Share of rows of `q` that lie within the radius of at least one row of `ref`. */
export function coverage(q: Float32Array, nq: number, ref: Float32Array, refRadii: Float32Array, nref: number, dim: number): number {
  let inside = 0;
  forDistanceBlocks(q, nq, ref, nref, dim, (i0, i1, d) => {
    for (let i = i0; i < i1; i++) {
      const o = (i - i0) * nref;
      for (let j = 0; j < nref; j++) {
        if (d[o + j]! <= refRadii[j]!) {
          inside++;
          break;
        }
      }
    }
  });
  return inside / nq;
}

/** Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds. */
export function precisionRecall(real: Float32Array, nReal: number, fake: Float32Array, nFake: number, dim: number, k = 5): { precision: number; recall: number } {
  const rReal = kthNeighbourRadii(real, nReal, dim, k);
  const rFake = kthNeighbourRadii(fake, nFake, dim, k);
  return { precision: coverage(fake, nFake, real, rReal, nReal, dim), recall: coverage(real, nReal, fake, rFake, nFake, dim) };
}

/** Samples per class of a labelled set (index = class). */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const c = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) c[labels[i]!]!++;
  return c;
}

export interface FidelityResult {
  fid: number;
  precision: number;
  recall: number;
  /** k of the k-NN manifolds. */
  k: number;
  /** Synthetic and real images compared (equal counts: like with like). */
  count: number;
  featureDim: number;
}

/** FID / precision / recall between feature sets of equal size (see the module doc). */
export function fidelityFromFeatures(real: Float32Array, fake: Float32Array, count: number, dim: number, k = 5): FidelityResult {
  const pr = precisionRecall(real, count, fake, count, dim, k);
  return { fid: fid(real, count, fake, count, dim), precision: pr.precision, recall: pr.recall, k, count, featureDim: dim };
}

/** Seeded choice of `m` distinct indices out of `n` (partial Fisher–Yates). */
export function sampleIndices(n: number, m: number, rnd: () => number): Int32Array {
  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(rnd() * (n - i));
    const t = all[i]!;
    all[i] = all[j]!;
    all[j] = t;
  }
  return all.slice(0, m);
}


