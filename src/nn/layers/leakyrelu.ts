// LeakyReLU.
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import type { LayerSpec } from '../module.js';
import { registerLayer } from './registry.js';

export class LeakyReLU extends Stateless {
  readonly type = 'leakyrelu';
  private x?: tf.Tensor;
  constructor(readonly alpha = 0.01) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (training) this.x = x;
    return tf.leakyRelu(x, this.alpha);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'leakyrelu');
    this.x = undefined;
    return tf.where(tf.greater(x, 0), dy, tf.mul(dy, this.alpha));
  }
  override spec(): LayerSpec {
    return { type: 'leakyrelu', alpha: this.alpha };
  }
}

registerLayer({ types: ['leakyrelu'], build: (s) => new LeakyReLU((s.alpha as number | undefined) ?? 0.01) });
