// Tanh.
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import { registerLayer } from './registry.js';

export class Tanh extends Stateless {
  readonly type = 'tanh';
  private y?: tf.Tensor;
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const y = tf.tanh(x);
    if (training) this.y = y;
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const y = requireCache(this.y, 'tanh');
    this.y = undefined;
    return tf.mul(dy, tf.sub(1, tf.square(y)));
  }
}

registerLayer({ types: ['tanh'], build: () => new Tanh() });
