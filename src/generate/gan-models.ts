/**
 * The conditional DCGAN discriminator of dp-gan (dp-gan.ts) and the passes it is used in: the
 * private DP-SGD step (per-example clipped gradient sums, persample.ts), the generator step
 * (autodiff through D's inference path) and the non-private public pre-training step.
 *
 * D(x, y) = o_0(x) + o_{1+y}(x), o = trunk(x) ∈ R^{1+C}: a projection discriminator (Miyato &
 * Koyama 2018; the class embedding is the last dense layer's rows 1..C). Trunk: image in [−1, 1]
 * [N, H, W, 1] → conv 4×4 stride 2 (c) → LeakyReLU 0.2 → conv 4×4 stride 2 (2c) → LeakyReLU 0.2 →
 * flatten → dense 1 + C. An unconditional pass uses o_0 only. Conditioning at the head instead of
 * label planes at the input keeps the first convolution 11× cheaper (1 input channel instead of
 * 1 + C). Built from nn/ layers with per-sample gradient records and no batch norm: row i of every
 * activation depends only on example i, so the per-example gradients are exact.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, Dense, Flatten, LeakyReLU, Sequential, setInitSeed } from '../nn/layers/index.js';
import { clippedSum, forwardBackward, type LossOutput } from '../nn/persample.js';
import type { Param } from '../nn/module.js';

export interface DiscriminatorShape {
  height: number;
  width: number;
  numClasses: number;
  /** Channels of the first convolution (the second has twice as many). */
  channels: number;
}

/** The discriminator as an nn/ Sequential; its initial weights are a function of `initSeed` only. */
export function buildDiscriminator(s: DiscriminatorShape, initSeed: number): Sequential {
  if (s.height % 4 !== 0 || s.width % 4 !== 0) throw new RangeError(`dp-gan discriminator needs height and width divisible by 4, got ${s.height}×${s.width}`);
  setInitSeed(initSeed);
  const c = s.channels;
  const flat = (s.height / 4) * (s.width / 4) * 2 * c;
  return new Sequential([
    new Conv2d({ inChannels: 1, outChannels: c, kernel: 4, stride: 2, padding: 1 }),
    new LeakyReLU(0.2),
    new Conv2d({ inChannels: c, outChannels: 2 * c, kernel: 4, stride: 2, padding: 1 }),
    new LeakyReLU(0.2),
    new Flatten(),
    new Dense({ inFeatures: flat, outFeatures: 1 + s.numClasses }),
  ]);
}

/** The discriminator's input: images [N, H·W] in [0, 1] mapped to [−1, 1], as [N, H, W, 1]. */
export function discriminatorInput(images: tf.Tensor2D, s: Pick<DiscriminatorShape, 'height' | 'width'>): tf.Tensor4D {
  return tf.tidy(() => tf.reshape(tf.sub(tf.mul(images, 2), 1), [images.shape[0], s.height, s.width, 1]) as tf.Tensor4D);
}

/** Head selector [N, 1 + C]: 1 in column 0 and in column 1 + y_i (only column 0 where labels is null). */
export function headSelector(n: number, labels: Int32Array | null, numClasses: number): tf.Tensor2D {
  const sel = new Float32Array(n * (1 + numClasses));
  for (let i = 0; i < n; i++) {
    sel[i * (1 + numClasses)] = 1;
    if (labels) sel[i * (1 + numClasses) + 1 + labels[i]!] = 1;
  }
  return tf.tensor2d(sel, [n, 1 + numClasses]);
}

/** D's logit per row from the trunk output o [N, 1 + C] and the head selector. */
export function projectedLogit(o: tf.Tensor, sel: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(o, sel), 1) as tf.Tensor1D;
}

/**
 * Per-example binary cross-entropy of the projected logit l_i = Σ_c o_ic·sel_ic with targets
 * t ∈ {0, 1}: ℓ_i = softplus(−l_i) (real, t = 1) or softplus(l_i) (fake, t = 0);
 * ∂ℓ_i/∂o_i = (σ(l_i) − t_i)·sel_i (row i depends on example i only).
 */
export function bceLoss(o: tf.Tensor, targets: tf.Tensor1D, sel: tf.Tensor2D): LossOutput {
  const l = projectedLogit(o, sel);
  const t = tf.cast(targets, 'float32');
  const sign = tf.sub(tf.mul(t, 2), 1); // +1 real, −1 fake
  const lossSum = tf.sum(tf.softplus(tf.neg(tf.mul(sign, l)))) as tf.Scalar;
  const dlogits = tf.mul(tf.reshape(tf.sub(tf.sigmoid(l), t), [-1, 1]), sel);
  const correct = tf.sum(tf.cast(tf.equal(tf.greater(l, 0), tf.greater(t, 0.5)), 'float32')) as tf.Scalar;
  return { lossSum, dlogits, correct };
}

/**
 * Σ_i clip_C(∇_θ ℓ_i) over the rows of x (targets 1 real / 0 fake, head selector sel), one tensor
 * per parameter of D (order of D.parameters()), and the per-example norms before clipping. Call in tf.tidy.
 */
export function discriminatorClippedSum(d: Sequential, x: tf.Tensor4D, targets: Int32Array, sel: tf.Tensor2D, clip: number): { grads: tf.Tensor[]; norms: tf.Tensor1D } {
  const fb = forwardBackward(d, x, tf.tensor1d(targets, 'int32'), (o, t) => bceLoss(o, t, sel));
  return clippedSum(fb.tape, d.parameters(), { maxGradNorm: clip });
}

/**
 * The generator's non-saturating loss (1/m) Σ_i softplus(−D(x_i, y_i)) through D's inference path
 * (plain tfjs ops: differentiable by autodiff; D's parameters are not updated by the caller).
 */
export function generatorLoss(d: Sequential, x: tf.Tensor4D, sel: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.softplus(tf.neg(projectedLogit(d.forward(x, false), sel)))) as tf.Scalar;
}

/** Named-gradient map of D's parameters for a tfjs optimizer (keys: the variables' names). */
export function namedGrads(params: Param[], grads: tf.Tensor[]): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  params.forEach((p, i) => (out[p.value.name] = grads[i]!));
  return out;
}
