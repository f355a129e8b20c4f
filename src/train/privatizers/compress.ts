/**
 * Shared helpers of the compression privatizers (topk, randk, sign, sketch): per-sample clipped
 * gradient rows and the split of a flat vector back into parameter tensors. Every compression
 * privatizer adds its Gaussian noise AFTER compression, calibrated to the L2 sensitivity of one
 * example's compressed vector (stated in each file), so its step is an ordinary
 * poissonSampled(q, gaussian(σ)) event; decompression and the update rule are post-processing.
 * `bytesPerExample` is what one example would send to an aggregator in a communication-limited
 * deployment (float32 values, int32 indices, 1 bit per sign); the train runner reports
 * bytesPerStep = expected batch × bytesPerExample.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';

/** Per-sample gradients [n, P], each row clipped to L2 ≤ C. */
export function clippedRows(tape: GradTape, params: Param[], clip: number): tf.Tensor2D {
  return tf.tidy(() => {
    const G = perSampleFlat(tape, params);
    const norms = tf.sqrt(tf.sum(tf.square(G), 1, true));
    return tf.mul(G, tf.minimum(1, tf.div(clip, tf.maximum(norms, 1e-12)))) as tf.Tensor2D;
  });
}

/** Splits a flat [P] tensor into tensors shaped like `params` (or like `like`). */
export function splitFlat(flat: tf.Tensor, shapes: readonly number[][]): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  let off = 0;
  for (const s of shapes) {
    const size = s.reduce((a, b) => a * b, 1);
    out.push(tf.reshape(tf.slice(flat, [off], [size]), s));
    off += size;
  }
  return out;
}

export const paramShapes = (params: Param[]): number[][] => params.map((p) => p.value.shape);
export const flatten = (ts: tf.Tensor[]): tf.Tensor1D => tf.concat(ts.map((t) => tf.reshape(t, [-1]))) as tf.Tensor1D;
