/**
 * signSGD with majority vote (Bernstein et al. 2018, "signSGD: compressed optimisation for
 * non-convex problems"; privatised as in Jin et al. 2020's DP-SignSGD), accounted exactly: each
 * example sends sign(g_i) ∈ {−1, 0, +1}^P (1 bit per coordinate; exact zeros send 0); the votes
 * are summed and N(0, σ²P) is added; the update is s·sign(noisy vote sum) — the majority vote,
 * post-processing of the noisy sum — with s = `--sign-scale`.
 *   Sensitivity (add/remove): one example's vote vector has at most P non-zero entries of
 *   magnitude 1, so its L2 norm is ≤ √P whatever the data; noise std σ√P makes the step a
 *   Gaussian mechanism with multiplier σ: poissonSampled(q, gaussian(σ)). No clipping is needed
 *   (the sign bounds each example), so `--clip` does not apply.
 * In high dimension the √P noise swamps a batch of B ≪ √P·σ votes per coordinate: expect little
 * learning unless B is large; that is the measured trade-off, not a defect.
 * bytesPerExample = ⌈P/8⌉ (1 bit per coordinate).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';
import { paramShapes, splitFlat } from './compress.js';
import { checkSigma, gaussianNoise, type Privatizer, type PrivatizerFactory } from './types.js';

export class SignPrivatizer implements Privatizer {
  readonly name = 'sign';
  constructor(
    readonly paramCount: number,
    readonly scale: number,
    readonly noiseMultiplier: number,
  ) {
    checkSigma(noiseMultiplier);
    if (!(scale > 0 && Number.isFinite(scale))) throw new RangeError(`--sign-scale must be a positive finite number, got ${scale}`);
    if (!(Number.isInteger(paramCount) && paramCount > 0)) throw new RangeError(`sign privatizer needs the parameter count, got ${paramCount}`);
  }
  get sensitivity(): number {
    return Math.sqrt(this.paramCount);
  }
  get bytesPerExample(): number {
    return Math.ceil(this.paramCount / 8);
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('sign-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[]): tf.Tensor[] {
    return tf.tidy(() => splitFlat(tf.sum(tf.sign(perSampleFlat(tape, params)), 0), paramShapes(params)));
  }
  finalize(sum: tf.Tensor[], _expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const std = this.noiseMultiplier * this.sensitivity;
    return sum.map((s) => tf.tidy(() => tf.mul(tf.sign(std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s), this.scale)));
  }
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, signScale: this.scale };
  }
}

export const signFactory: PrivatizerFactory = {
  name: 'sign',
  summary: 'signSGD majority vote: per-example sign vectors summed, N(0, σ²P) (sensitivity √P), update = scale·sign',
  uses: [],
  options: [{ flag: 'sign-scale', type: 'number', check: (x) => x > 0 || 'must be > 0', help: 'sign: magnitude of each coordinate of the update before the learning rate (default 0.01)' }],
  create: (ctx) => new SignPrivatizer(ctx.paramCount, (ctx.options['sign-scale'] as number | undefined) ?? 0.01, ctx.noiseMultiplier),
};
