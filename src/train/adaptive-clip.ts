/**
 * Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy 2021, "Differentially Private Learning
 * with Adaptive Clipping"), as Opacus's AdaClipDPOptimizer and TF-Privacy's
 * QuantileAdaptiveClipSumQuery implement it: the Gaussian privatizer whose clip bound C follows a
 * private estimate of the γ-quantile of the per-sample gradient norms.
 *
 * Each step releases, from the same Poisson batch,
 *   S̃ = Σ_i clip_C(g_i) + N(0, σ_Δ²C²·I)         (the gradient sum)
 *   b̃ = Σ_i (1[‖g_i‖ ≤ C] − ½) + N(0, σ_b²)       (the centred count of unclipped examples)
 * then updates C ← C·exp(−η·(b̃/B + ½ − γ)) (geometric update; b̃/B + ½ is the noisy unclipped
 * fraction, B the expected batch). The update is post-processing of released values.
 *
 * Accounting (Andrew et al. 2021, §3.1 / Thm 1). Under add/remove one example changes S̃'s mean by
 * at most C and the centred count by exactly ½. Scaling each part by its noise std gives one
 * Gaussian mechanism with unit noise whose sensitivity is √(σ_Δ⁻² + (2σ_b)⁻²), so the pair is
 * exactly a Gaussian mechanism with noise multiplier z = (σ_Δ⁻² + (2σ_b)⁻²)^(−½), subsampled as
 * one (the same record enters both). Given the target z (the run's σ, from --noise or calibrated
 * to --target-epsilon), the gradient noise multiplier is σ_Δ = (z⁻² − (2σ_b)⁻²)^(−½), which needs
 * 2σ_b > z. The step's event is therefore `poissonSampled(q, gaussian(z))`, the same event as the
 * plain Gaussian privatizer at σ = z, and the ledger meta records σ_Δ, σ_b, γ, η and C.
 *
 * Defaults as the paper recommends: η = 0.2, σ_b = B/20, initial C = --clip. Flat clipping only
 * (the paper adapts one bound). Gradient canaries (audit) are added at the current C and do not
 * enter the count (they are not part of the privatizer's chunk sums).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../privacy/index.js';
import { clippedSum, type GradTape, type Param } from '../nn/index.js';
import { checkSigma, gaussianNoise, type Privatizer } from './privatizers/types.js';

export interface AdaptiveClipOptions {
  /** Target quantile γ ∈ (0, 1) of the per-sample gradient norms. */
  quantile: number;
  /** Initial clip bound C₀. */
  initialClip: number;
  /** Total noise multiplier z of the step (what the accountant prices). */
  noiseMultiplier: number;
  /** Expected batch size B (for the count's scale and the default σ_b). */
  expectedBatch: number;
  /** Geometric learning rate η (default 0.2). */
  learningRate?: number;
  /** Std σ_b of the noise on the unclipped count (default B/20). */
  countStd?: number;
}

/** σ_Δ = (z⁻² − (2σ_b)⁻²)^(−½): the gradient noise multiplier that keeps the combined step at z. */
export function gradientNoiseMultiplier(z: number, countStd: number): number {
  if (z === 0) return 0;
  const rest = 1 / (z * z) - 1 / (4 * countStd * countStd);
  if (!(rest > 0)) throw new RangeError(`adaptive clipping needs 2·σ_b > σ (count noise std σ_b = ${countStd}, noise multiplier σ = ${z}): raise --adaptive-clip-count-std or lower σ`);
  return 1 / Math.sqrt(rest);
}

export class AdaptiveClipPrivatizer implements Privatizer {
  readonly name = 'gaussian';
  readonly quantile: number;
  readonly learningRate: number;
  readonly countStd: number;
  /** σ_Δ: noise multiplier of the gradient sum. */
  readonly gradientNoise: number;
  readonly noiseMultiplier: number;
  private readonly expectedBatch: number;
  private clip: number;
  /** Centred unclipped count of the current step's chunks (reset by finalize). */
  private pendingCount = 0;
  /** Clip bounds after each step (public: post-processing of released values), for tests and logs. */
  readonly history: number[] = [];

  constructor(o: AdaptiveClipOptions) {
    checkSigma(o.noiseMultiplier);
    if (!(o.quantile > 0 && o.quantile < 1)) throw new RangeError(`--adaptive-clip must be a quantile in (0, 1), got ${o.quantile}`);
    if (!(o.initialClip > 0 && Number.isFinite(o.initialClip))) throw new RangeError(`--clip must be a positive finite number, got ${o.initialClip}`);
    if (!(o.expectedBatch > 0)) throw new RangeError(`expected batch must be > 0, got ${o.expectedBatch}`);
    this.quantile = o.quantile;
    this.learningRate = o.learningRate ?? 0.2;
    if (!(this.learningRate > 0 && Number.isFinite(this.learningRate))) throw new RangeError(`--adaptive-clip-lr must be > 0, got ${this.learningRate}`);
    this.countStd = o.countStd ?? o.expectedBatch / 20;
    if (!(this.countStd > 0 && Number.isFinite(this.countStd))) throw new RangeError(`--adaptive-clip-count-std must be > 0, got ${this.countStd}`);
    this.noiseMultiplier = o.noiseMultiplier;
    this.gradientNoise = gradientNoiseMultiplier(o.noiseMultiplier, this.countStd);
    this.expectedBatch = o.expectedBatch;
    this.clip = o.initialClip;
  }
  /** The current clip bound C (sensitivity of the gradient sum this step). */
  get sensitivity(): number {
    return this.clip;
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('DP-SGD with noise multiplier 0 (adaptive clipping)');
    // the gradient sum and the count form one Gaussian mechanism with multiplier z (file comment)
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[]): tf.Tensor[] {
    const r = clippedSum(tape, params, { maxGradNorm: this.clip, mode: 'flat' });
    const norms = r.norms.dataSync();
    let c = 0;
    for (const n of norms) c += (n <= this.clip ? 1 : 0) - 0.5;
    this.pendingCount += c;
    return r.grads;
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const std = this.gradientNoise * this.clip;
    const out = sum.map((s) => tf.tidy(() => tf.div(std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s, expectedBatch)));
    // the count release, then the geometric update (post-processing)
    const noise = new Float64Array(1);
    if (this.noiseMultiplier > 0) rng.normal(noise, this.countStd);
    const unclippedFraction = (this.pendingCount + noise[0]!) / this.expectedBatch + 0.5;
    this.pendingCount = 0;
    this.clip *= Math.exp(-this.learningRate * (unclippedFraction - this.quantile));
    this.history.push(this.clip);
    return out;
  }
  ledgerMeta(): Record<string, number | string> {
    return {
      noiseMultiplier: this.noiseMultiplier,
      clipping: 'adaptive',
      gradientNoiseMultiplier: this.gradientNoise,
      countNoiseStd: this.countStd,
      targetQuantile: this.quantile,
      clipLearningRate: this.learningRate,
      clipAtBlockStart: this.clip,
    };
  }
}
