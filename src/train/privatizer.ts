/**
 * Gradient privatizers: turn the per-sample gradient records of one logical batch (possibly in
 * several physical chunks) into one noisy gradient estimate, and name the DP event of that step.
 *
 * Gaussian (Abadi et al. 2016): Σ_i clip_C(g_i) + N(0, σ²C²·I). Add/remove sensitivity of the
 * clipped sum is C, so one step under Poisson sampling at rate q is
 * poissonSampled(q, gaussian(σ)).
 *
 * TopAgg-SGD (gradient compression from DataLens, Wang et al. 2021, used here as a DP-SGD step):
 * each example keeps the k coordinates of its gradient with the largest magnitude, clips them to
 * [−c, c], and turns each into a stochastic sign vote v ∈ {−1, +1} with P(+1) = (1 + g/c)/2
 * (unbiased for g/c); all other coordinates vote 0. The votes are summed over the batch and
 * Gaussian noise N(0, σ²k) is added.
 *   Sensitivity (add/remove one example): the sum changes by exactly that example's vote vector,
 *   which has k entries of ±1 and zeros elsewhere, so its L2 norm is √k whatever the data and the
 *   sign coins — sensitivity √k (DataLens's 2√k is for replace-one neighbours). With noise std
 *   σ√k the step is a Gaussian mechanism with noise multiplier σ: poissonSampled(q, gaussian(σ)).
 *   Optional threshold: a second noisy copy of the same vote sum, std σ₁√k, selects the
 *   coordinates whose |noisy count| ≥ β·(expected batch); only those are released. The pair of
 *   Gaussian releases of one query is exactly a Gaussian with 1/σ_eff² = 1/σ² + 1/σ₁², so the
 *   event is poissonSampled(q, gaussian(σ_eff)).
 *   The update uses c·(noisy votes)/(expected batch) as the gradient estimate.
 * The sign coins need no cryptographic quality (privacy comes from the Gaussian noise alone) but
 * are drawn from the same RandomSource for reproducibility.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../privacy/index.js';
import { clippedSum, type ClippingOptions, GradTape, type Param, perSampleFlat } from '../nn/index.js';

export interface Privatizer {
  readonly name: string;
  /** Noise multiplier σ of the step's Gaussian mechanism (0 = non-private). */
  readonly noiseMultiplier: number;
  /** L2 sensitivity of the summed statistic (C for Gaussian, √k for TopAgg). */
  readonly sensitivity: number;
  /** DP event of one step at Poisson sampling rate q. */
  stepEvent(q: number): DpEvent;
  /** Sum statistic of one physical chunk, one tensor per parameter (caller adds chunks up). */
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[];
  /** Adds the noise to the summed statistic and returns gradient estimates (divided by `expectedBatch`). */
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[];
}

/** Gaussian noise tensor from the privacy RandomSource (never Math.random / tfjs PRNG). */
export function gaussianNoise(shape: number[], std: number, rng: RandomSource): tf.Tensor {
  const buf = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (std > 0) rng.normal(buf, std);
  return tf.tensor(buf, shape, 'float32');
}

function checkSigma(sigma: number): void {
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new RangeError(`noise multiplier must be a finite number >= 0, got ${sigma}`);
}

export class GaussianPrivatizer implements Privatizer {
  readonly name = 'gaussian';
  constructor(
    readonly noiseMultiplier: number,
    readonly clipping: ClippingOptions,
  ) {
    checkSigma(noiseMultiplier);
    if (!(clipping.maxGradNorm > 0 && Number.isFinite(clipping.maxGradNorm))) throw new RangeError(`max gradient norm must be a positive finite number, got ${clipping.maxGradNorm}`);
  }
  get sensitivity(): number {
    return this.clipping.maxGradNorm;
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('DP-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[]): tf.Tensor[] {
    return clippedSum(tape, params, this.clipping).grads;
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const std = this.noiseMultiplier * this.clipping.maxGradNorm;
    return sum.map((s) => tf.tidy(() => tf.div(std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s, expectedBatch)));
  }
}

export interface TopAggOptions {
  /** Coordinates kept per example. */
  k: number;
  /** Per-coordinate clip bound c before the stochastic sign. */
  clip: number;
  /** Noise multiplier σ (noise std σ·√k on the vote sum). */
  noiseMultiplier: number;
  /** Optional noisy threshold: σ₁ and β (fraction of the expected batch). */
  threshold?: { sigma1: number; beta: number };
}

export class TopAggPrivatizer implements Privatizer {
  readonly name = 'topagg';
  constructor(readonly opts: TopAggOptions) {
    if (!(Number.isInteger(opts.k) && opts.k > 0)) throw new RangeError(`topagg k must be a positive integer, got ${opts.k}`);
    if (!(opts.clip > 0)) throw new RangeError(`topagg clip must be > 0, got ${opts.clip}`);
    checkSigma(opts.noiseMultiplier);
    if (opts.threshold && !(opts.threshold.sigma1 > 0 && opts.threshold.beta >= 0)) throw new RangeError('topagg threshold needs sigma1 > 0 and beta >= 0');
  }
  get noiseMultiplier(): number {
    const s = this.opts.noiseMultiplier;
    const t = this.opts.threshold;
    if (!t || s === 0) return s;
    return 1 / Math.sqrt(1 / (s * s) + 1 / (t.sigma1 * t.sigma1));
  }
  get sensitivity(): number {
    return Math.sqrt(this.opts.k);
  }
  stepEvent(q: number): DpEvent {
    if (this.opts.noiseMultiplier === 0) return DpEvents.nonPrivate('TopAgg-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[] {
    const G = perSampleFlat(tape, params);
    const [n, P] = G.shape;
    const k = Math.min(this.opts.k, P);
    const c = this.opts.clip;
    const { indices } = tf.topk(tf.abs(G), k);
    const rows = tf.mul(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), tf.scalar(P, 'int32'));
    const flatIdx = tf.reshape(tf.add(indices, rows), [n * k]);
    const vals = tf.clipByValue(tf.gather(tf.reshape(G, [n * P]), flatIdx), -c, c);
    const u = new Float32Array(n * k);
    rng.uniform(u);
    // vote +1 with probability (1 + v/c)/2
    const votes = tf.sub(tf.mul(tf.cast(tf.less(tf.tensor1d(u), tf.div(tf.add(tf.div(vals, c), 1), 2)), 'float32'), 2), 1);
    const sum = tf.unsortedSegmentSum(votes, tf.reshape(indices, [n * k]), P);
    const out: tf.Tensor[] = [];
    let off = 0;
    for (const p of params) {
      out.push(tf.reshape(tf.slice(sum, [off], [p.value.size]), p.value.shape));
      off += p.value.size;
    }
    return out;
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const sk = Math.sqrt(this.opts.k);
    const std = this.opts.noiseMultiplier * sk;
    const t = this.opts.threshold;
    return sum.map((s) =>
      tf.tidy(() => {
        let noisy = std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s;
        if (t) {
          const sel = tf.add(s, gaussianNoise(s.shape, t.sigma1 * sk, rng));
          noisy = tf.mul(noisy, tf.cast(tf.greaterEqual(tf.abs(sel), t.beta * expectedBatch), 'float32'));
        }
        return tf.mul(noisy, this.opts.clip / expectedBatch);
      }),
    );
  }
}
