// Base of the 2-D pooling layers (options, kernel/stride/padding checks, spec).
import * as tf from '@tensorflow/tfjs-core';
import { type Pair, pair, Stateless } from './common.js';
import { type LayerSpec, ModelError } from '../module.js';

export interface PoolOptions {
  kernel: number | [number, number];
  stride?: number | [number, number];
  /** Zero padding per side, or 'valid'/'same' (default 'valid'). */
  padding?: number | 'valid' | 'same';
}

export abstract class Pool2d extends Stateless {
  readonly k: Pair;
  readonly s: Pair;
  readonly pad: number | 'valid' | 'same';
  protected x?: tf.Tensor4D;
  protected y?: tf.Tensor4D;
  constructor(readonly opts: PoolOptions) {
    super();
    this.k = pair(opts.kernel, 1, 'pool kernel');
    this.s = opts.stride === undefined ? this.k : pair(opts.stride, 1, 'pool stride');
    this.pad = opts.padding ?? 'valid';
    if (this.k.some((v) => v < 1) || this.s.some((v) => v < 1)) throw new ModelError('pool: kernel and stride must be >= 1');
  }
  override spec(): LayerSpec {
    return { type: this.type, kernel: this.k, stride: this.s, padding: this.pad };
  }
}

/** PoolOptions from a layer spec. */
export function poolOptions(s: LayerSpec): PoolOptions {
  return { kernel: s.kernel as PoolOptions['kernel'], stride: s.stride as PoolOptions['stride'], padding: s.padding as PoolOptions['padding'] };
}
