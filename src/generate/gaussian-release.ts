/**
 * The pieces every Poisson-sampled Gaussian release in generate/ shares (dp-sinkhorn, dp-gan,
 * dp2-vae, dpmi; the noise also for the one-shot mean embeddings): the Poisson sampler, the noise
 * addition, and the release as the mechanism audit replays it. One copy, so the audit replays the
 * same code each run uses.
 */
import { uniformOpen, type DpEvent, type RandomSource } from '../privacy/index.js';
import type { GaussianReleaseMechanism } from './types.js';

/** Poisson subsample of [0, n) with rate q (geometric gaps, from the run's RandomSource). */
export function poissonSubsample(n: number, q: number, rng: RandomSource): Int32Array {
  if (q >= 1) return Int32Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  const l = Math.log1p(-q);
  for (let i = Math.floor(Math.log(uniformOpen(rng)) / l); i < n; i += 1 + Math.floor(Math.log(uniformOpen(rng)) / l)) out.push(i);
  return Int32Array.from(out);
}

/** Rows idx of a uint8 image matrix (d pixels per row) as floats in [0, 1]: a Poisson batch's pixels. */
export function pixelRows(images: Uint8Array, idx: Int32Array, d: number): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let k = 0; k < idx.length; k++) {
    const o = idx[k]! * d;
    for (let t = 0; t < d; t++) out[k * d + t] = images[o + t]! / 255;
  }
  return out;
}

/** v += N(0, σ²I) from the run's RandomSource (σ = 0: nothing, a non-private run). */
export function addGaussianNoise(v: Float32Array | Float64Array, sigma: number, rng: RandomSource): void {
  if (!(sigma > 0)) return;
  const noise = new Float64Array(v.length);
  rng.normal(noise, sigma);
  for (let k = 0; k < noise.length; k++) v[k]! += noise[k]!;
}

/**
 * One DP-SGD-style release for the mechanism audit (add/remove): each canary coordinate is a
 * record's clipped contribution, sensitivity/2 when the run's Poisson sampler (rate q) includes
 * it, plus the run's noise at σ. `event` is what the run charges per release.
 */
export function poissonGaussianAuditMechanism(o: { method: string; q: number; sigma: number; sensitivity: number; releases: number; event: DpEvent; dim?: number }): GaussianReleaseMechanism {
  const { q, sigma, sensitivity } = o;
  return {
    method: o.method,
    dim: o.dim ?? 1000,
    releases: o.releases,
    sigma,
    l2Sensitivity: sensitivity,
    event: o.event,
    addNoise: (r, rng) => {
      const inBatch = new Uint8Array(r.length);
      for (const i of poissonSubsample(r.length, q, rng)) inBatch[i] = 1;
      for (let e = 0; e < r.length; e++) r[e] = inBatch[e] ? r[e]! + sensitivity / 2 : 0;
      addGaussianNoise(r, sigma, rng);
    },
  };
}
