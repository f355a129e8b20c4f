// Fused layer building blocks with hand-written backward passes, shared by the evaluation
// classifiers (evaluate/classifiers.ts) and the engine's fused reference nets (issue 18): one
// forward kernel per layer (FusedConv2D / _FusedMatMul with bias and ReLU inside the kernel)
// instead of conv + add + relu, and a backward that uses the engine's one-kernel ReLU gradient.
// tfjs' own fused ops fall back to the unfused chain whenever gradients are recorded.
// Backend-independent (other backends take tfjs' generic paths).
import * as tf from '@tensorflow/tfjs-core';
import { engineCapabilities } from './capabilities.js';

type CustomGrad = Parameters<typeof tf.customGrad>[0];

/** 'valid', 'same' or tfjs' explicit NHWC padding [[0, 0], [top, bottom], [left, right], [0, 0]]. */
export type ConvPad = 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];

/** dy · step(y) for y = ReLU(z): the engine's one-kernel ReLU backprop where it has one. */
export function reluBackprop(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (engineCapabilities().fusedReluBackprop) return tf.engine().runKernel('DplensReluBackprop', { dy, x: y }) as tf.Tensor;
  return tf.mul(dy, tf.step(y));
}

/**
 * ReLU(conv(x, w) + b) as ONE forward kernel (FusedConv2D: bias and ReLU inside MLAS) with a
 * hand-written backward: tfjs's own fused op falls back to conv + add + relu whenever gradients
 * are recorded, which costs two extra passes over the largest activations forward and backward.
 * `inputIsData`: x is the image batch (no gradient needed), so its Conv2DBackpropInput is skipped.
 */
export function convBiasRelu(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, stride: number, pad: ConvPad, training: boolean, inputIsData: boolean): tf.Tensor4D {
  const conv = { strides: [stride, stride] as [number, number], pad, dataFormat: 'NHWC' as const, dimRoundingMode: undefined };
  const forward = (xx: tf.Tensor4D) => tf.engine().runKernel('FusedConv2D', { x: xx, filter: w, bias: b }, { ...conv, dilations: [1, 1], activation: 'relu' } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  if (!training) return forward(x);
  const backward = (dy: tf.Tensor, xx: tf.Tensor, y: tf.Tensor) => {
    const dz = reluBackprop(dy, y);
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x: xx, dy: dz }, { ...conv, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return { dz, dw, db: tf.sum(dz, [0, 1, 2]) };
  };
  if (inputIsData) {
    const f = tf.customGrad(((ww: tf.Tensor, bb: tf.Tensor, save: tf.GradSaveFunc) => {
      void ww;
      void bb;
      const y = forward(x);
      save([y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const r = backward(dy as tf.Tensor, x, saved[0]!);
          return [r.dw, r.db];
        },
      };
    }) as unknown as CustomGrad);
    return f(w, b) as tf.Tensor4D;
  }
  const f = tf.customGrad(((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor, save: tf.GradSaveFunc) => {
    void ww;
    void bb;
    const y = forward(xx as tf.Tensor4D);
    save([xx, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor, tf.Tensor];
        const r = backward(dy as tf.Tensor, sx, sy);
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy: r.dz, filter: w }, { ...conv, inputShape: sx.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
        return [dx, r.dw, r.db];
      },
    };
  }) as unknown as CustomGrad);
  return f(x, w, b) as tf.Tensor4D;
}

/** [ReLU](a·w + b) as one forward kernel (_FusedMatMul) with a hand-written backward. */
export function denseBias(a: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, relu: boolean, training: boolean): tf.Tensor2D {
  const forward = (aa: tf.Tensor) => tf.engine().runKernel('_FusedMatMul', { a: aa, b: w, bias: b }, { transposeA: false, transposeB: false, activation: relu ? 'relu' : 'linear' } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  if (!training) return forward(a);
  const f = tf.customGrad(((aa: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor, save: tf.GradSaveFunc) => {
    void ww;
    void bb;
    const y = forward(aa);
    save([aa, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sa, sy] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dz = (relu ? reluBackprop(dy as tf.Tensor, sy) : dy) as tf.Tensor2D;
        return [tf.matMul(dz, w, false, true), tf.matMul(sa, dz, true, false), tf.sum(dz, 0)];
      },
    };
  }) as unknown as CustomGrad);
  return f(a, w, b) as tf.Tensor2D;
}

