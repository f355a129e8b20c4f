// ReLU (fused into a following valid MaxPool2d during training, see sequential.ts).
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import { registerLayer } from './registry.js';

export class ReLU extends Stateless {
  readonly type = 'relu';
  /**
   * Set by Sequential when a 'valid' MaxPool2d follows: in training the pool applies the ReLU on
   * its (host-side) output instead — relu(maxpool(x)) = maxpool(relu(x)), with the same gradient —
   * saving three full-size kernels per step. Inference is unaffected.
   */
  fusedIntoPool = false;
  private y?: tf.Tensor;
  private passthrough = false;
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    this.passthrough = training && this.fusedIntoPool;
    if (this.passthrough) return x;
    const y = tf.relu(x);
    if (training) this.y = y;
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    if (this.passthrough) {
      this.passthrough = false;
      return dy;
    }
    const y = requireCache(this.y, 'relu');
    this.y = undefined;
    return tf.mul(dy, tf.step(y));
  }
}

registerLayer({ types: ['relu'], build: () => new ReLU() });
