/**
 * Gaussian privatizer (Abadi et al. 2016): Σ_i clip_C(g_i) + N(0, σ²C²·I). Add/remove sensitivity
 * of the clipped sum is C, so one step under Poisson sampling at rate q is
 * poissonSampled(q, gaussian(σ)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import { clippedSum, type ClippingOptions, type GradTape, type Param } from '../../nn/index.js';
import { checkSigma, gaussianNoise, type Privatizer, type PrivatizerFactory } from './types.js';
import { AdaptiveClipPrivatizer } from '../adaptive-clip.js';

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
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, clipping: this.clipping.mode ?? 'flat' };
  }
}

export const gaussianFactory: PrivatizerFactory = {
  name: 'gaussian',
  summary: 'clip each per-sample gradient to --clip, add N(0, σ²C²) to the sum (default)',
  uses: ['clip', 'clipping'],
  options: [
    { flag: 'adaptive-clip', type: 'number', help: 'adaptive clipping (Andrew et al. 2021): the clip bound (starting at --clip) follows this target quantile of the per-sample gradient norms, from a noisy unclipped count; accounted in the same step (σ stays the total)', check: (v) => (v > 0 && v < 1) || 'must be a quantile in (0, 1)' },
    { flag: 'adaptive-clip-lr', type: 'number', help: 'geometric learning rate η of the adaptive clip bound (default 0.2)', check: (v) => (v > 0 && Number.isFinite(v)) || 'must be > 0' },
    { flag: 'adaptive-clip-count-std', type: 'number', help: 'noise std σ_b of the unclipped count (default batch/20; needs 2σ_b > σ)', check: (v) => (v > 0 && Number.isFinite(v)) || 'must be > 0' },
  ],
  create: (ctx) => {
    const quantile = ctx.options['adaptive-clip'];
    if (quantile === undefined) {
      for (const f of ['adaptive-clip-lr', 'adaptive-clip-count-std']) if (ctx.options[f] !== undefined) throw new RangeError(`--${f} needs --adaptive-clip`);
      return new GaussianPrivatizer(ctx.noiseMultiplier, { maxGradNorm: ctx.clip, mode: ctx.clipping });
    }
    if (ctx.clipping !== 'flat') throw new RangeError('--adaptive-clip adapts one flat clip bound: it does not apply to --clipping per-layer');
    if (ctx.expectedBatch === undefined) throw new RangeError('--adaptive-clip needs the expected batch size');
    return new AdaptiveClipPrivatizer({
      quantile: Number(quantile),
      initialClip: ctx.clip,
      noiseMultiplier: ctx.noiseMultiplier,
      expectedBatch: ctx.expectedBatch,
      learningRate: ctx.options['adaptive-clip-lr'] as number | undefined,
      countStd: ctx.options['adaptive-clip-count-std'] as number | undefined,
    });
  },
};
