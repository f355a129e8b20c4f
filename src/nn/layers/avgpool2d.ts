// AvgPool2d.
import * as tf from '@tensorflow/tfjs-core';
import { checkRank, requireCache } from './common.js';
import { Pool2d, poolOptions } from './pool2d.js';
import { registerLayer } from './registry.js';

export class AvgPool2d extends Pool2d {
  readonly type = 'avgpool2d';
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    checkRank(x, 4, 'avgpool2d');
    if (training) this.x = x as tf.Tensor4D;
    return tf.avgPool(x as tf.Tensor4D, this.k, this.s, this.pad);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'avgpool2d');
    this.x = undefined;
    return tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, { filterSize: this.k, strides: this.s, pad: this.pad } as any) as tf.Tensor;
  }
}


registerLayer({ types: ['avgpool2d'], build: (s) => new AvgPool2d(poolOptions(s)) });
