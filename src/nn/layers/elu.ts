// ELU.
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import type { LayerSpec } from '../module.js';
import { registerLayer } from './registry.js';

export class ELU extends Stateless {
  readonly type = 'elu';
  private x?: tf.Tensor;
  private y?: tf.Tensor;
  constructor(readonly alpha = 1) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    // relu(x) + α(e^{min(x,0)} − 1): differentiable by tfjs autodiff too (tf.where on a comparison is not)
    const y = this.alpha === 1 ? tf.elu(x) : tf.add(tf.relu(x), tf.mul(tf.expm1(tf.minimum(x, 0)), this.alpha));
    if (training) {
      this.x = x;
      this.y = y;
    }
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'elu');
    const y = this.y!;
    this.x = this.y = undefined;
    return tf.where(tf.greater(x, 0), dy, tf.mul(dy, tf.add(y, this.alpha)));
  }
  override spec(): LayerSpec {
    return { type: 'elu', alpha: this.alpha };
  }
}

registerLayer({ types: ['elu'], build: (s) => new ELU((s.alpha as number | undefined) ?? 1) });
