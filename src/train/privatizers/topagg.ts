/**
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
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';
import { checkSigma, gaussianNoise, type Privatizer, type PrivatizerFactory } from './types.js';

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
  /** Effective noise multiplier of the step's Gaussian mechanism (vote noise and threshold composed). */
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
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, k: this.opts.k, topaggClip: this.opts.clip, ...(this.opts.threshold ? { thresholdSigma1: this.opts.threshold.sigma1, thresholdBeta: this.opts.threshold.beta } : {}) };
  }
}

export const topaggFactory: PrivatizerFactory = {
  name: 'topagg',
  summary: 'TopAgg-SGD: k stochastic sign votes per example, N(0, σ²k) on the vote sum (sensitivity √k)',
  uses: [],
  options: [
    { flag: 'topagg-k', type: 'integer', min: 1, help: 'TopAgg: coordinates kept per example (default 1% of parameters)' },
    { flag: 'topagg-clip', type: 'number', check: (x) => x > 0 || 'must be > 0', help: 'TopAgg: per-coordinate clip before the sign vote (default 0.01)' },
    { flag: 'topagg-threshold-sigma1', type: 'number', cli: false, check: (x) => x > 0 || 'must be > 0', help: 'TopAgg: noise multiplier σ₁ of the noisy selection threshold (off by default)' },
    { flag: 'topagg-threshold-beta', type: 'number', cli: false, check: (x) => x >= 0 || 'must be >= 0', help: 'TopAgg: threshold β as a fraction of the expected batch (with σ₁)' },
  ],
  create: (ctx) =>
    new TopAggPrivatizer({
      k: (ctx.options['topagg-k'] as number | undefined) ?? Math.max(1, Math.round(ctx.paramCount * 0.01)),
      clip: (ctx.options['topagg-clip'] as number | undefined) ?? 0.01,
      noiseMultiplier: ctx.noiseMultiplier,
      threshold: ctx.options['topagg-threshold-sigma1'] !== undefined ? { sigma1: ctx.options['topagg-threshold-sigma1'] as number, beta: (ctx.options['topagg-threshold-beta'] as number | undefined) ?? 0 } : undefined,
    }),
};
