// Dense (alias linear): y = x W + b over the last axis.
import * as tf from '@tensorflow/tfjs-core';
import { param, requireCache, rowDots, uniformInit } from './common.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';
import { registerLayer } from './registry.js';

export interface DenseOptions {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}

/** y = x W + b over the last axis; W is [in, out]. Accepts [N, in] or [N, T..., in]. */
export class Dense implements Module {
  readonly type = 'dense';
  readonly weight: Param;
  readonly bias?: Param;
  private x?: tf.Tensor;
  constructor(readonly opts: DenseOptions) {
    const { inFeatures: i, outFeatures: o } = opts;
    if (!(Number.isInteger(i) && i > 0 && Number.isInteger(o) && o > 0)) throw new ModelError(`dense: inFeatures/outFeatures must be positive integers, got ${i}, ${o}`);
    const bound = 1 / Math.sqrt(i);
    this.weight = param('weight', uniformInit([i, o], bound));
    if (opts.bias !== false) this.bias = param('bias', uniformInit([o], bound));
  }
  parameters(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const d = this.opts.inFeatures;
    if (x.rank < 2 || x.shape[x.rank - 1] !== d) throw new ModelError(`dense: expected input [..., ${d}], got [${x.shape.join(', ')}]`);
    if (training) this.x = x;
    const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, d])) as tf.Tensor2D;
    // Training (manual backward): bias fused into the matmul. Inference keeps plain ops so tfjs
    // autodiff through forward stays differentiable to any order.
    let y: tf.Tensor;
    if (training) y = tf.fused.matMul({ a: x2, b: this.weight.value as tf.Tensor2D, bias: this.bias?.value });
    else {
      y = tf.matMul(x2, this.weight.value);
      if (this.bias) y = tf.add(y, this.bias.value);
    }
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.opts.outFeatures]);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const x = requireCache(this.x, 'dense');
    const { inFeatures: din, outFeatures: dout } = this.opts;
    const n = x.shape[0]!;
    const dy2 = tf.reshape(dy, [-1, dout]);
    const dx = tf.reshape(tf.matMul(dy2, this.weight.value, false, true), x.shape);
    const params = this.parameters();
    if (x.rank === 2) {
      const A = x as tf.Tensor2D;
      const B = dy as tf.Tensor2D;
      tape.push({
        params,
        // ghost norm: ||a_i b_iᵀ||² = ||a_i||²·||b_i||²
        sqNorms: () => {
          const bb = rowDots(B, n);
          const r = [tf.mul(rowDots(A, n), bb) as tf.Tensor1D];
          if (this.bias) r.push(bb);
          return r;
        },
        weightedSum: (w) => {
          const r: tf.Tensor[] = [tf.matMul(A, tf.mul(B, tf.reshape(w, [n, 1])), true, false)];
          if (this.bias) r.push(tf.reshape(tf.matMul(tf.reshape(w, [1, n]), B), [dout]));
          return r;
        },
        perSample: () => {
          const r: tf.Tensor[] = [tf.matMul(tf.reshape(A, [n, din, 1]), tf.reshape(B, [n, 1, dout]))];
          if (this.bias) r.push(B);
          return r;
        },
      });
    } else {
      const T = x.size / (n * din);
      const A = tf.reshape(x, [n, T, din]) as tf.Tensor3D;
      const B = tf.reshape(dy, [n, T, dout]) as tf.Tensor3D;
      let G: tf.Tensor | undefined;
      const gw = () => (G ??= tf.matMul(A, B, true, false));
      const gb = () => tf.sum(B, 1);
      // Ghost norm through Gram matrices when T²(din+dout) < T·din·dout.
      const ghost = T * (din + dout) < din * dout;
      tape.push({
        params,
        sqNorms: () => {
          const r: tf.Tensor1D[] = [ghost ? (tf.sum(tf.mul(tf.matMul(A, A, false, true), tf.matMul(B, B, false, true)), [1, 2]) as tf.Tensor1D) : (tf.sum(tf.square(gw()), [1, 2]) as tf.Tensor1D)];
          if (this.bias) r.push(tf.sum(tf.square(gb()), 1) as tf.Tensor1D);
          return r;
        },
        weightedSum: (w) => {
          const wb = tf.mul(B, tf.reshape(w, [n, 1, 1]));
          const r: tf.Tensor[] = [tf.matMul(tf.reshape(A, [n * T, din]), tf.reshape(wb, [n * T, dout]), true, false)];
          if (this.bias) r.push(tf.sum(wb, [0, 1]));
          return r;
        },
        perSample: () => (this.bias ? [gw(), gb()] : [gw()]),
      });
    }
    this.x = undefined;
    return dx;
  }
  spec(): LayerSpec {
    return { type: 'dense', units: this.opts.outFeatures, inFeatures: this.opts.inFeatures, bias: this.opts.bias !== false };
  }
}

registerLayer({
  types: ['dense', 'linear'],
  build: (s, { last }) => new Dense({ inFeatures: last, outFeatures: Number(s.units ?? s.outFeatures), bias: s.bias !== false }),
});
