// Tempered sigmoid (Papernot et al. 2021).
import * as tf from '@tensorflow/tfjs-core';
import { requireCache, Stateless } from './common.js';
import type { LayerSpec } from '../module.js';
import { registerLayer } from './registry.js';

/**
 * Tempered sigmoid (Papernot et al. 2021): scale·σ(temperature·x) − offset. The default
 * (2, 2, 1) equals tanh; smaller scales bound activations, which suits gradient clipping.
 */
export class TemperedSigmoid extends Stateless {
  readonly type = 'temperedsigmoid';
  private s?: tf.Tensor;
  constructor(
    readonly scale = 2,
    readonly temperature = 2,
    readonly offset = 1,
  ) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const s = tf.sigmoid(tf.mul(x, this.temperature));
    if (training) this.s = s;
    return tf.sub(tf.mul(s, this.scale), this.offset);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const s = requireCache(this.s, 'temperedsigmoid');
    this.s = undefined;
    return tf.mul(dy, tf.mul(tf.mul(s, tf.sub(1, s)), this.scale * this.temperature));
  }
  override spec(): LayerSpec {
    return { type: 'temperedsigmoid', scale: this.scale, temperature: this.temperature, offset: this.offset };
  }
}

registerLayer({
  types: ['temperedsigmoid'],
  build: (s) => new TemperedSigmoid((s.scale as number | undefined) ?? 2, (s.temperature as number | undefined) ?? 2, (s.offset as number | undefined) ?? 1),
});
