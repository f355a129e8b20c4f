// GroupNorm: normalises channel groups over all spatial positions.
import * as tf from '@tensorflow/tfjs-core';
import { NormBase } from './norm-base.js';
import { type LayerSpec, ModelError } from '../module.js';
import { registerLayer } from './registry.js';

/** GroupNorm over channel groups and all spatial positions of an NHWC (or [N, C]) input. */
export class GroupNorm extends NormBase {
  readonly type: string = 'groupnorm';
  constructor(readonly opts: { groups: number; channels: number; eps?: number; affine?: boolean }) {
    super(opts.channels, opts.eps ?? 1e-5, opts.affine !== false);
    if (!(Number.isInteger(opts.groups) && opts.groups > 0 && opts.channels % opts.groups === 0)) throw new ModelError(`groupnorm: groups (${opts.groups}) must divide channels (${opts.channels})`);
  }
  protected view(x: tf.Tensor) {
    const n = x.shape[0]!;
    const G = this.opts.groups;
    return { shape: [n, x.size / (n * this.channels), G, this.channels / G], axes: [1, 3] };
  }
  spec(): LayerSpec {
    return { type: 'groupnorm', groups: this.opts.groups, channels: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}


registerLayer({
  types: ['groupnorm'],
  build: (s, { last }) => new GroupNorm({ groups: Number(s.groups), channels: last, eps: s.eps as number | undefined, affine: s.affine !== false }),
});
