// Flatten: [N, ...] → [N, prod(...)].
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import { registerLayer } from './registry.js';

/** [N, ...] → [N, prod(...)] (row-major over H, W, C for NHWC images). */
export class Flatten extends Stateless {
  readonly type = 'flatten';
  private shape?: number[];
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (training) this.shape = x.shape;
    return tf.reshape(x, [x.shape[0]!, -1]);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const s = requireCache(this.shape, 'flatten');
    this.shape = undefined;
    return tf.reshape(dy, s);
  }
}


registerLayer({ types: ['flatten'], build: () => new Flatten() });
