/**
 * G-PATE aggregator (spec §6): fresh public random projection per query, per-teacher clipping of
 * the projected gradient, binning into nb bins per projected coordinate (exactly one vote per
 * teacher per coordinate, pitfall P5), then Confident-GNMax per coordinate: a noisy threshold test
 * on the max count (σ1) and, only if it passes, a noisy argmax over the bins (σ2).
 *
 * The two noisy steps are separate functions so the caller can record each release in the ledger
 * before it is made (threshold events for every coordinate, GNMax events for the answered ones).
 */
import type { RandomSource } from '../privacy/index.js';

export interface GpateParams {
  /** Projection dimension p. */
  projDim: number;
  /** Number of bins nb. */
  bins: number;
  /** Clip bound c of the projected gradient (bins span [−c, c]). */
  clip: number;
  /** Threshold-test noise σ1. */
  sigma1: number;
  /** GNMax noise σ2. */
  sigma2: number;
  /** Threshold as a fraction of N (T = thresh·N). */
  thresh: number;
}

export function validateGpateParams(p: GpateParams): void {
  if (!Number.isInteger(p.projDim) || p.projDim < 1) throw new RangeError(`G-PATE: projection dimension must be a positive integer, got ${p.projDim}`);
  if (!Number.isInteger(p.bins) || p.bins < 2) throw new RangeError(`G-PATE: bins must be an integer >= 2, got ${p.bins}`);
  if (!(p.clip > 0)) throw new RangeError(`G-PATE: clip must be > 0, got ${p.clip}`);
  if (!(p.sigma1 >= 0 && Number.isFinite(p.sigma1)) || !(p.sigma2 >= 0 && Number.isFinite(p.sigma2))) throw new RangeError(`G-PATE: sigma1 and sigma2 must be >= 0 (0 only in an explicitly non-private run), got ${p.sigma1}, ${p.sigma2}`);
  if (!(p.thresh >= 0) || p.thresh > 1) throw new RangeError(`G-PATE: thresh must be in [0, 1], got ${p.thresh}`);
}

/** Fresh projection matrices for B queries, [B, d, p], entries N(0, 1/p): public, data-independent. */
export function drawProjections(numQueries: number, dim: number, projDim: number, rng: RandomSource): Float32Array {
  const out = new Float32Array(numQueries * dim * projDim);
  rng.normal(out, 1 / Math.sqrt(projDim));
  return out;
}

/**
 * Histograms of the clipped projected teacher gradients.
 * projected: [B, N, p] (query-major). Returns counts [B, p, nb] (each (j, l) row sums to N).
 * Private intermediate (P9): never logged.
 */
export function histograms(projected: Float32Array, numQueries: number, numTeachers: number, p: GpateParams): Int32Array {
  const { projDim, bins, clip } = p;
  if (projected.length !== numQueries * numTeachers * projDim) throw new RangeError(`G-PATE: expected ${numQueries}×${numTeachers}×${projDim} projected values, got ${projected.length}`);
  const h = new Int32Array(numQueries * projDim * bins);
  const width = (2 * clip) / bins;
  for (let j = 0; j < numQueries; j++) {
    for (let i = 0; i < numTeachers; i++) {
      const off = (j * numTeachers + i) * projDim;
      for (let l = 0; l < projDim; l++) {
        const u = Math.min(clip, Math.max(-clip, projected[off + l]!));
        // NaN would fall through every comparison; treat as 0 so the teacher still casts one vote.
        const uu = Number.isNaN(u) ? 0 : u;
        const m = Math.min(bins - 1, Math.floor((uu + clip) / width));
        h[(j * projDim + l) * bins + m]!++;
      }
    }
  }
  return h;
}

/** Noisy threshold test per coordinate: answered[c] = 1 iff max(h_c) + N(0, σ1²) ≥ T. */
export function thresholdStep(hist: Int32Array, numTeachers: number, p: GpateParams, rng: RandomSource): Uint8Array {
  const n = hist.length / p.bins;
  const noise = new Float64Array(n);
  rng.normal(noise, p.sigma1);
  const T = p.thresh * numTeachers;
  const answered = new Uint8Array(n);
  for (let c = 0; c < n; c++) {
    let mx = 0;
    for (let m = 0; m < p.bins; m++) mx = Math.max(mx, hist[c * p.bins + m]!);
    answered[c] = mx + noise[c]! >= T ? 1 : 0;
  }
  return answered;
}

/** Noisy argmax (GNMax) for answered coordinates; returns the bin midpoints r [B, p] (0 where skipped). */
export function argmaxStep(hist: Int32Array, answered: Uint8Array, p: GpateParams, rng: RandomSource): Float32Array {
  const n = answered.length;
  const r = new Float32Array(n);
  const noise = new Float64Array(p.bins);
  const width = (2 * p.clip) / p.bins;
  for (let c = 0; c < n; c++) {
    if (!answered[c]) continue;
    rng.normal(noise, p.sigma2);
    let best = 0;
    let bestVal = -Infinity;
    for (let m = 0; m < p.bins; m++) {
      const v = hist[c * p.bins + m]! + noise[m]!;
      if (v > bestVal) {
        bestVal = v;
        best = m;
      }
    }
    r[c] = -p.clip + (best + 0.5) * width;
  }
  return r;
}

/** Maps the answered bin values back to pixel space: out[j] = P_j r_j, [B, d]. */
export function backProject(r: Float32Array, proj: Float32Array, numQueries: number, dim: number, projDim: number): Float32Array {
  const out = new Float32Array(numQueries * dim);
  for (let j = 0; j < numQueries; j++) {
    for (let t = 0; t < dim; t++) {
      let s = 0;
      const po = (j * dim + t) * projDim;
      for (let l = 0; l < projDim; l++) s += proj[po + l]! * r[j * projDim + l]!;
      out[j * dim + t] = s;
    }
  }
  return out;
}
