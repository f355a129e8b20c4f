/**
 * Random-k DP-SGD (random sparsification, Stich et al. 2018 / Konečný et al. 2016), accounted
 * exactly: each step draws ONE public random set S of k coordinates (shared by all examples, from
 * the RandomSource; it does not depend on the data); each example's gradient restricted to S is
 * clipped to L2 ≤ C, the restricted vectors are summed and N(0, σ²C²) is added on S only. The
 * update is (P/k)·(noisy sum)/B on S and 0 elsewhere (unbiased for the clipped restricted mean;
 * post-processing).
 *   Sensitivity (add/remove): one example contributes one vector supported on S with norm ≤ C,
 *   so the release (the noisy k-vector; S is public, data-independent randomness) is a Gaussian
 *   mechanism with multiplier σ: poissonSampled(q, gaussian(σ)).
 * Clipping after the restriction keeps more signal than clipping the full gradient first (the
 * restricted norm is ≈ √(k/P) of the full one). bytesPerExample = 4k (values only; S comes from a
 * shared seed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';
import { paramShapes, splitFlat } from './compress.js';
import { checkSigma, type Privatizer, type PrivatizerFactory } from './types.js';

export class RandKPrivatizer implements Privatizer {
  readonly name = 'randk';
  private support: Int32Array | undefined;
  constructor(
    readonly k: number,
    readonly clip: number,
    readonly noiseMultiplier: number,
  ) {
    checkSigma(noiseMultiplier);
    if (!(Number.isInteger(k) && k > 0)) throw new RangeError(`--randk-k must be a positive integer, got ${k}`);
    if (!(clip > 0 && Number.isFinite(clip))) throw new RangeError(`clip must be a positive finite number, got ${clip}`);
  }
  get sensitivity(): number {
    return this.clip;
  }
  get bytesPerExample(): number {
    return 4 * this.k;
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('random-k DP-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  /** The step's public support: k distinct coordinates (partial Fisher–Yates). */
  private supportFor(P: number, rng: RandomSource): Int32Array {
    if (this.support) return this.support;
    const k = Math.min(this.k, P);
    const perm = new Int32Array(P);
    for (let i = 0; i < P; i++) perm[i] = i;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rng.nextDouble() * (P - i));
      const tmp = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = tmp;
    }
    this.support = perm.slice(0, k).sort();
    return this.support;
  }
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[] {
    const P = params.reduce((s, p) => s + p.value.size, 0);
    const S = this.supportFor(P, rng);
    return tf.tidy(() => {
      const idx = tf.tensor1d(S, 'int32');
      const R = tf.gather(perSampleFlat(tape, params), idx, 1);
      const norms = tf.sqrt(tf.sum(tf.square(R), 1, true));
      const clipped = tf.mul(R, tf.minimum(1, tf.div(this.clip, tf.maximum(norms, 1e-12))));
      const sumS = tf.sum(clipped, 0);
      return splitFlat(tf.scatterND(tf.reshape(idx, [-1, 1]), sumS, [P]), paramShapes(params));
    });
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const P = sum.reduce((s, x) => s + x.size, 0);
    const S = this.support ?? this.supportFor(P, rng);
    this.support = undefined;
    const noise = new Float32Array(S.length);
    const std = this.noiseMultiplier * this.clip;
    if (std > 0) rng.normal(noise, std);
    const flat = new Float32Array(P);
    const mask = new Float32Array(P);
    for (let i = 0; i < S.length; i++) {
      flat[S[i]!] = noise[i]!;
      mask[S[i]!] = 1;
    }
    const scale = P / S.length / expectedBatch;
    let off = 0;
    return sum.map((s) => {
      const part = flat.subarray(off, off + s.size);
      const m = mask.subarray(off, off + s.size);
      off += s.size;
      // only S is released: anything added to the sum off S (gradient canaries) is dropped
      return tf.tidy(() => tf.mul(tf.add(tf.mul(s, tf.tensor(m, s.shape, 'float32')), tf.tensor(part, s.shape, 'float32')), scale));
    });
  }
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, k: this.k };
  }
}

export const randkFactory: PrivatizerFactory = {
  name: 'randk',
  summary: 'random-k: one public random set of k coordinates per step, per-example clip to --clip on it, N(0, σ²C²) (sensitivity C)',
  uses: ['clip'],
  options: [{ flag: 'randk-k', type: 'integer', min: 1, help: 'random-k: coordinates kept per step (default 1% of parameters)' }],
  create: (ctx) => new RandKPrivatizer((ctx.options['randk-k'] as number | undefined) ?? Math.max(1, Math.round(ctx.paramCount * 0.01)), ctx.clip, ctx.noiseMultiplier),
};
