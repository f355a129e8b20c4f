// Dropout (inverted, per-example masks).
import * as tf from '@tensorflow/tfjs-core';
import { Stateless } from './common.js';
import { lcgStep } from '../../util/prng.js';
import { type LayerSpec, ModelError } from '../module.js';
import { registerLayer } from './registry.js';

/** Inverted dropout; the mask is drawn independently per example, so DP analysis is unaffected. */
export class Dropout extends Stateless {
  readonly type = 'dropout';
  private mask?: tf.Tensor;
  private static seed = 777;
  constructor(readonly rate: number) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new ModelError(`dropout: rate must be in [0, 1), got ${rate}`);
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training || this.rate === 0) {
      this.mask = undefined;
      return x;
    }
    Dropout.seed = lcgStep(Dropout.seed);
    const mask = tf.div(tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', Dropout.seed), this.rate), 'float32'), 1 - this.rate);
    this.mask = mask;
    return tf.mul(x, mask);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const m = this.mask;
    this.mask = undefined;
    return m ? tf.mul(dy, m) : dy;
  }
  override spec(): LayerSpec {
    return { type: 'dropout', rate: this.rate };
  }
}

registerLayer({ types: ['dropout'], build: (s) => new Dropout(Number(s.rate)) });
