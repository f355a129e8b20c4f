// Base of the per-sample normalisation layers (statistics never mix examples).
import * as tf from '@tensorflow/tfjs-core';
import { param, requireCache } from './common.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param, perSampleRecord } from '../module.js';

/**
 * Normalises x (viewed as [N, S, G, C/G]) over axes S and C/G, then scales/shifts per channel.
 * LayerNorm: S = all middle axes … no: LayerNorm normalises the last axis only (G = 1, S = 1 per
 * position, handled by viewing positions as part of the batch). GroupNorm/InstanceNorm normalise
 * spatial positions and channel groups of NHWC (or [N, C]) inputs.
 */
export abstract class NormBase implements Module {
  abstract readonly type: string;
  readonly gamma?: Param;
  readonly beta?: Param;
  private cache?: { x: tf.Tensor; xhat: tf.Tensor; invStd: tf.Tensor };
  constructor(
    readonly channels: number,
    readonly eps: number,
    affine: boolean,
  ) {
    if (!(Number.isInteger(channels) && channels > 0)) throw new ModelError(`normalisation: channel count must be a positive integer, got ${channels}`);
    if (!(eps > 0)) throw new ModelError('normalisation: eps must be > 0');
    if (affine) {
      this.gamma = param('weight', tf.ones([channels]));
      this.beta = param('bias', tf.zeros([channels]));
    }
  }
  /** Shape to view x in so normalisation reduces over axes `axes`. */
  protected abstract view(x: tf.Tensor): { shape: number[]; axes: number[] };
  parameters(): Param[] {
    return this.gamma ? [this.gamma, this.beta!] : [];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.channels) throw new ModelError(`${this.type}: expected ${this.channels} channels on the last axis, got [${x.shape.join(', ')}]`);
    const { shape, axes } = this.view(x);
    const v = tf.reshape(x, shape);
    const { mean, variance } = tf.moments(v, axes, true);
    const invStd = tf.rsqrt(tf.add(variance, this.eps));
    const xhat = tf.reshape(tf.mul(tf.sub(v, mean), invStd), x.shape);
    if (training) this.cache = { x, xhat, invStd };
    return this.gamma ? tf.add(tf.mul(xhat, this.gamma.value), this.beta!.value) : xhat;
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const { x, xhat, invStd } = requireCache(this.cache, this.type);
    this.cache = undefined;
    const n = x.shape[0]!;
    if (this.gamma) {
      const C = this.channels;
      const perSample = () => {
        const gg = tf.sum(tf.reshape(tf.mul(dy, xhat), [n, -1, C]), 1);
        const gb = tf.sum(tf.reshape(dy, [n, -1, C]), 1);
        return [gg, gb];
      };
      tape.push(perSampleRecord(this.parameters(), perSample()));
    }
    const dxhat = this.gamma ? tf.mul(dy, this.gamma.value) : dy;
    const { shape, axes } = this.view(x);
    const dh = tf.reshape(dxhat, shape);
    const xh = tf.reshape(xhat, shape);
    const m1 = tf.mean(dh, axes, true);
    const m2 = tf.mean(tf.mul(dh, xh), axes, true);
    return tf.reshape(tf.mul(tf.sub(tf.sub(dh, m1), tf.mul(xh, m2)), invStd), x.shape);
  }
  abstract spec(): LayerSpec;
}
