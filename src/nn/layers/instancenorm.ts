// InstanceNorm: GroupNorm with one channel per group.
import { GroupNorm } from './groupnorm.js';
import type { LayerSpec } from '../module.js';
import { registerLayer } from './registry.js';

/** InstanceNorm = GroupNorm with one channel per group (PyTorch default: no affine params). */
export class InstanceNorm extends GroupNorm {
  override readonly type = 'instancenorm';
  constructor(opts: { channels: number; eps?: number; affine?: boolean }) {
    super({ groups: opts.channels, channels: opts.channels, eps: opts.eps, affine: opts.affine === true });
  }
  override spec(): LayerSpec {
    return { type: 'instancenorm', channels: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}


registerLayer({
  types: ['instancenorm'],
  build: (s, { last }) => new InstanceNorm({ channels: last, eps: s.eps as number | undefined, affine: s.affine === true }),
});
