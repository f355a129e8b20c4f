/**
 * Top-k DP-SGD (gradient sparsification, e.g. Aji & Heafield 2017; Stich et al. 2018), accounted
 * exactly: each example's gradient is clipped to L2 ≤ C and then keeps only its k coordinates of
 * largest magnitude; the kept vectors are summed and N(0, σ²C²) is added to every coordinate.
 *   Sensitivity (add/remove): zeroing coordinates never increases the L2 norm, so one example's
 *   sparse vector has norm ≤ C whatever the data — sensitivity C, the same event as the Gaussian
 *   privatizer: poissonSampled(q, gaussian(σ)).
 * Differs from communication-efficient top-k SGD: no error feedback (a residual memory per example
 * would be per-example state across steps), and the noise is dense (added centrally after the sum;
 * a sparse noisy release would need a private choice of the support). bytesPerExample = 8k
 * (k float32 values + k int32 indices).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import type { GradTape, Param } from '../../nn/index.js';
import { clippedRows, paramShapes, splitFlat } from './compress.js';
import { checkSigma, gaussianNoise, type Privatizer, type PrivatizerFactory } from './types.js';

export class TopKPrivatizer implements Privatizer {
  readonly name = 'topk';
  constructor(
    readonly k: number,
    readonly clip: number,
    readonly noiseMultiplier: number,
  ) {
    checkSigma(noiseMultiplier);
    if (!(Number.isInteger(k) && k > 0)) throw new RangeError(`--topk-k must be a positive integer, got ${k}`);
    if (!(clip > 0 && Number.isFinite(clip))) throw new RangeError(`clip must be a positive finite number, got ${clip}`);
  }
  get sensitivity(): number {
    return this.clip;
  }
  get bytesPerExample(): number {
    return 8 * this.k;
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('top-k DP-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[]): tf.Tensor[] {
    return tf.tidy(() => {
      const G = clippedRows(tape, params, this.clip);
      const [n, P] = G.shape;
      const k = Math.min(this.k, P);
      const { indices } = tf.topk(tf.abs(G), k);
      const rows = tf.mul(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), tf.scalar(P, 'int32'));
      const flatIdx = tf.reshape(tf.add(indices, rows), [n * k]);
      const vals = tf.gather(tf.reshape(G, [n * P]), flatIdx);
      const sum = tf.unsortedSegmentSum(vals, tf.reshape(indices, [n * k]), P);
      return splitFlat(sum, paramShapes(params));
    });
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const std = this.noiseMultiplier * this.clip;
    return sum.map((s) => tf.tidy(() => tf.div(std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s, expectedBatch)));
  }
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, k: this.k };
  }
}

export const topkFactory: PrivatizerFactory = {
  name: 'topk',
  summary: 'top-k: clip to --clip, keep each example\'s k largest coordinates, N(0, σ²C²) on the sum (sensitivity C)',
  uses: ['clip'],
  options: [{ flag: 'topk-k', type: 'integer', min: 1, help: 'top-k: coordinates kept per example (default 1% of parameters)' }],
  create: (ctx) => new TopKPrivatizer((ctx.options['topk-k'] as number | undefined) ?? Math.max(1, Math.round(ctx.paramCount * 0.01)), ctx.clip, ctx.noiseMultiplier),
};
