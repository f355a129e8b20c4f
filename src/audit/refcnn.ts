/**
 * The reference CNN of issue 4 (Conv 16 8×8 s2 p3 → ReLU → MaxPool 2 s1 → Conv 32 4×4 s2 → ReLU →
 * MaxPool 2 s1 → Dense 32 → ReLU → Dense 10; inputs normalised with mean 0.1307, std 0.3081),
 * written with kernels that are twice differentiable under `ensureAuditGradients()` (which also
 * gives the convolution's backward kernels a gradient); max-pooling (2×2, stride 1) is a maximum
 * of four shifted slices because the MaxPoolGrad kernel has no gradient. The gradient-inversion
 * attack differentiates *through* ∇θ L.
 *
 * Parameter layout (NHWC, HWIO weights, flatten in NHWC order) matches tfjs conv2d/dense.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureAuditGradients } from './autodiff.js';
import { tidyRead } from '../engine/tidy-read.js';
import { xorshift32 } from '../util/prng.js';

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

/** Names and shapes of the reference CNN's parameters for an H×W×C input (MNIST: 28×28×1). */
export function refCnnShapes(height = 28, width = 28, channels = 1, classes = 10): { name: string; shape: number[] }[] {
  const h1 = Math.floor((height + 6 - 8) / 2) + 1;
  const w1 = Math.floor((width + 6 - 8) / 2) + 1;
  const h2 = Math.floor((h1 - 1 - 4) / 2) + 1;
  const w2 = Math.floor((w1 - 1 - 4) / 2) + 1;
  const flat = (h2 - 1) * (w2 - 1) * 32;
  return [
    { name: 'conv1.weight', shape: [8, 8, channels, 16] },
    { name: 'conv1.bias', shape: [16] },
    { name: 'conv2.weight', shape: [4, 4, 16, 32] },
    { name: 'conv2.bias', shape: [32] },
    { name: 'fc1.weight', shape: [flat, 32] },
    { name: 'fc1.bias', shape: [32] },
    { name: 'fc2.weight', shape: [32, classes] },
    { name: 'fc2.bias', shape: [classes] },
  ];
}

/** Deterministic initialisation (PyTorch default: U(±1/√fan_in) for weights and biases). */
export function initRefCnn(seed: number, height = 28, width = 28, channels = 1, classes = 10): tf.Tensor[] {
  // xorshift32: model initialisation only (not DP noise)
  const next = xorshift32((seed >>> 0) ^ 0x9e3779b9);
  const shapes = refCnnShapes(height, width, channels, classes);
  const fanIns = [8 * 8 * channels, 8 * 8 * channels, 4 * 4 * 16, 4 * 4 * 16, shapes[4]!.shape[0]!, shapes[4]!.shape[0]!, 32, 32];
  return shapes.map(({ shape }, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIns[i]!);
    const v = new Float32Array(n);
    for (let k = 0; k < n; k++) v[k] = (2 * next() - 1) * bound;
    return tf.tensor(v, shape);
  });
}

/** conv2d (NHWC, HWIO, symmetric zero padding) + bias. */
export function conv2dBias(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, stride: number, pad: number): tf.Tensor4D {
  return tf.add(tf.conv2d(x, w, stride, pad), b) as tf.Tensor4D;
}

/** 2×2 max-pool with stride 1 (no padding) as a maximum of four shifted slices. */
export function maxPool2s1(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const s = (dy: number, dx: number): tf.Tensor4D => tf.slice(x, [0, dy, dx, 0], [n, h - 1, w - 1, c]);
  return tf.maximum(tf.maximum(s(0, 0), s(0, 1)), tf.maximum(s(1, 0), s(1, 1)));
}

/** Input of the first dense layer (flattened pooled conv features) for images in [0, 1]. */
export function refCnnFeatures(params: tf.Tensor[], pixels: tf.Tensor4D): tf.Tensor2D {
  ensureAuditGradients();
  const [c1w, c1b, c2w, c2b] = params as [tf.Tensor4D, tf.Tensor1D, tf.Tensor4D, tf.Tensor1D];
  const x = tf.div(tf.sub(pixels, MNIST_MEAN), MNIST_STD) as tf.Tensor4D;
  let h = maxPool2s1(tf.relu(conv2dBias(x, c1w, c1b, 2, 3)));
  h = maxPool2s1(tf.relu(conv2dBias(h, c2w, c2b, 2, 0)));
  return tf.reshape(h, [h.shape[0], -1]) as tf.Tensor2D;
}

/** Logits of the reference CNN for images in [0, 1] (NHWC); normalisation is applied here. */
export function refCnnLogits(params: tf.Tensor[], pixels: tf.Tensor4D): tf.Tensor2D {
  const [, , , , f1w, f1b, f2w, f2b] = params as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D];
  const flat = refCnnFeatures(params, pixels);
  const z = tf.relu(tf.add(tf.matMul(flat, f1w), f1b)) as tf.Tensor2D;
  return tf.add(tf.matMul(z, f2w), f2b) as tf.Tensor2D;
}

/** Mean cross-entropy against label distributions `target` [N, classes] (rows sum to 1). */
export function softCrossEntropy(logits: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  // log Σ exp z, stabilised by a constant shift (its gradient contribution is zero anyway)
  const shift = tidyRead(() => tf.max(logits, 1, true));
  const shifted = tf.sub(logits, tf.tensor2d(Array.from(shift), [logits.shape[0], 1]));
  const lse = tf.log(tf.sum(tf.exp(shifted), 1, true));
  const logp = tf.sub(shifted, lse);
  return tf.div(tf.neg(tf.sum(tf.mul(target, logp))), logits.shape[0]) as tf.Scalar;
}

/** ∇θ of the mean cross-entropy of the batch (what one client would share in federated SGD). */
export function refCnnGradient(params: tf.Tensor[], pixels: tf.Tensor4D, target: tf.Tensor2D): tf.Tensor[] {
  ensureAuditGradients();
  return tf.grads((...ps: tf.Tensor[]) => softCrossEntropy(refCnnLogits(ps, pixels), target))(params);
}
