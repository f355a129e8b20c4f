// Reference workloads shared by the engine benchmark and tests: the MLP 784-512-10 and the
// reference MNIST CNN of issue 2 / shared/bench/torch_ref.py, written with plain tfjs ops so they
// run on any backend. Not part of the public API (src/nn owns real models).
import * as tf from '@tensorflow/tfjs-core';
import { convBiasRelu, denseBias } from './fused-layers.js';

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export interface RefNet {
  params: tf.Variable[];
  /** logits for NHWC input [B, 28, 28, 1] */
  forward(x: tf.Tensor4D): tf.Tensor2D;
}

function glorot(shape: number[], fanIn: number, fanOut: number, seed: number): tf.Tensor {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return tf.randomUniform(shape, -limit, limit, 'float32', seed);
}

export function makeMlp(seed = 0): RefNet {
  const w1 = tf.variable(glorot([784, 512], 784, 512, seed + 1));
  const b1 = tf.variable(tf.zeros([512]));
  const w2 = tf.variable(glorot([512, 10], 512, 10, seed + 2));
  const b2 = tf.variable(tf.zeros([10]));
  return {
    params: [w1, b1, w2, b2],
    forward: (x) => {
      const flat = tf.reshape(x, [x.shape[0], 784]);
      const h = tf.relu(tf.add(tf.matMul(flat, w1), b1));
      return tf.add(tf.matMul(h, w2), b2) as tf.Tensor2D;
    },
  };
}

/** Conv2d(1→16, 8×8, s2, pad 3) → ReLU → MaxPool 2 s1 → Conv2d(16→32, 4×4, s2) → ReLU → MaxPool 2 s1 → Dense 512→32 → ReLU → Dense 32→10 */
export function makeCnn(seed = 0): RefNet {
  const w1 = tf.variable(glorot([8, 8, 1, 16], 64, 16 * 64, seed + 1));
  const b1 = tf.variable(tf.zeros([16]));
  const w2 = tf.variable(glorot([4, 4, 16, 32], 256, 512, seed + 2));
  const b2 = tf.variable(tf.zeros([32]));
  const w3 = tf.variable(glorot([512, 32], 512, 32, seed + 3));
  const b3 = tf.variable(tf.zeros([32]));
  const w4 = tf.variable(glorot([32, 10], 32, 10, seed + 4));
  const b4 = tf.variable(tf.zeros([10]));
  return {
    params: [w1, b1, w2, b2, w3, b3, w4, b4],
    forward: (x) => {
      let h = tf.relu(
        tf.add(
          tf.conv2d(x, w1 as tf.Tensor4D, 2, [
            [0, 0],
            [3, 3],
            [3, 3],
            [0, 0],
          ]),
          b1,
        ),
      ) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 1, 'valid');
      h = tf.relu(tf.add(tf.conv2d(h, w2 as tf.Tensor4D, 2, 'valid'), b2)) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 1, 'valid');
      const flat = tf.reshape(h, [h.shape[0], 512]);
      const z = tf.relu(tf.add(tf.matMul(flat, w3), b3));
      return tf.add(tf.matMul(z, w4), b4) as tf.Tensor2D;
    },
  };
}

/**
 * The same nets (same parameters for the same seed) written with the fused layers of
 * fused-layers.ts, as dplens models are: conv + bias + ReLU and dense + bias (+ ReLU) as one
 * forward kernel each, the one-kernel ReLU gradient backward, and no input gradient for the first
 * layer (its input is data). Same function as makeMlp/makeCnn up to float rounding order.
 */
export function makeMlpFused(seed = 0): RefNet {
  const net = makeMlp(seed);
  const [w1, b1, w2, b2] = net.params;
  return {
    params: net.params,
    forward: (x) => {
      const flat = tf.reshape(x, [x.shape[0], 784]) as tf.Tensor2D;
      const h = denseBias(flat, w1 as tf.Tensor2D, b1 as tf.Tensor1D, true, true);
      return denseBias(h, w2 as tf.Tensor2D, b2 as tf.Tensor1D, false, true);
    },
  };
}

export function makeCnnFused(seed = 0): RefNet {
  const net = makeCnn(seed);
  const [w1, b1, w2, b2, w3, b3, w4, b4] = net.params;
  return {
    params: net.params,
    forward: (x) => {
      let h = convBiasRelu(
        x,
        w1 as tf.Tensor4D,
        b1 as tf.Tensor1D,
        2,
        [
          [0, 0],
          [3, 3],
          [3, 3],
          [0, 0],
        ],
        true,
        true,
      );
      h = tf.maxPool(h, 2, 1, 'valid');
      h = convBiasRelu(h, w2 as tf.Tensor4D, b2 as tf.Tensor1D, 2, 'valid', true, false);
      h = tf.maxPool(h, 2, 1, 'valid');
      const flat = tf.reshape(h, [h.shape[0], 512]) as tf.Tensor2D;
      const z = denseBias(flat, w3 as tf.Tensor2D, b3 as tf.Tensor1D, true, true);
      return denseBias(z, w4 as tf.Tensor2D, b4 as tf.Tensor1D, false, true);
    },
  };
}

/** Mean softmax cross-entropy of logits [B, 10] against int labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const oneHot = tf.oneHot(labels, logits.shape[1]);
  const lsm = tf.logSoftmax(logits);
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, lsm), 1))) as tf.Scalar;
}

/** MNIST uint8 NHWC images -> normalised float tensor [B, 28, 28, 1]. */
export function mnistBatch(images: Uint8Array, start: number, count: number): tf.Tensor4D {
  const out = new Float32Array(count * 784);
  const base = start * 784;
  for (let i = 0; i < out.length; i++) out[i] = (images[base + i] / 255 - MNIST_MEAN) / MNIST_STD;
  return tf.tensor4d(out, [count, 28, 28, 1]);
}

/** One forward+backward pass; returns the loss value and the gradients (caller disposes). */
export function lossAndGrads(net: RefNet, x: tf.Tensor4D, labels: tf.Tensor1D): { loss: tf.Scalar; grads: tf.Tensor[] } {
  const { value, grads } = tf.variableGrads(() => crossEntropy(net.forward(x), labels), net.params);
  return { loss: value, grads: net.params.map((p) => grads[p.name]) };
}

/** One SGD step; returns the loss before the update. */
export function sgdStep(net: RefNet, x: tf.Tensor4D, labels: tf.Tensor1D, lr: number): number {
  return tf.tidy(() => {
    const { loss, grads } = lossAndGrads(net, x, labels);
    net.params.forEach((p, i) => p.assign(tf.sub(p, tf.mul(grads[i], lr))));
    return loss.dataSync()[0];
  });
}
