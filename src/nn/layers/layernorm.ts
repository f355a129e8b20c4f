// LayerNorm: normalises the last axis per position.
import * as tf from '@tensorflow/tfjs-core';
import { NormBase } from './norm-base.js';
import type { LayerSpec } from '../module.js';
import { registerLayer } from './registry.js';

/** Normalises over the last axis (features), per position; params [features]. */
export class LayerNorm extends NormBase {
  readonly type = 'layernorm';
  constructor(readonly opts: { features: number; eps?: number; affine?: boolean }) {
    super(opts.features, opts.eps ?? 1e-5, opts.affine !== false);
  }
  protected view(x: tf.Tensor) {
    return { shape: [x.size / this.channels, this.channels], axes: [1] };
  }
  spec(): LayerSpec {
    return { type: 'layernorm', features: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}


registerLayer({
  types: ['layernorm'],
  build: (s, { last }) => new LayerNorm({ features: last, eps: s.eps as number | undefined, affine: s.affine !== false }),
});
