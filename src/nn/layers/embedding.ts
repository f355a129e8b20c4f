// Embedding: lookup table over int32 ids (must be the first layer).
import * as tf from '@tensorflow/tfjs-core';
import { nextInitSeed, param, requireCache } from './common.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';
import { registerLayer } from './registry.js';

/** Lookup table [vocab, dim]; input int32 ids [N] or [N, T]. Must be the first layer. */
export class Embedding implements Module {
  readonly type = 'embedding';
  readonly weight: Param;
  private ids?: tf.Tensor;
  constructor(readonly opts: { vocab: number; dim: number }) {
    if (!(Number.isInteger(opts.vocab) && opts.vocab > 0 && Number.isInteger(opts.dim) && opts.dim > 0)) throw new ModelError('embedding: vocab and dim must be positive integers');
    this.weight = param('weight', tf.mul(tf.randomNormal([opts.vocab, opts.dim], 0, 1, 'float32', nextInitSeed()), 1));
  }
  parameters(): Param[] {
    return [this.weight];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (x.dtype !== 'int32') throw new ModelError(`embedding: expected int32 ids, got ${x.dtype}`);
    if (training) this.ids = x;
    return tf.gather(this.weight.value, x);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const ids = requireCache(this.ids, 'embedding');
    this.ids = undefined;
    const { vocab: V, dim: D } = this.opts;
    const n = ids.shape[0]!;
    const T = ids.size / n;
    const I = tf.reshape(ids, [n, T]);
    const B = tf.reshape(dy, [n, T, D]) as tf.Tensor3D;
    tape.push({
      params: [this.weight],
      // ||Σ_t e_{id_t} b_tᵀ||² = Σ_{t,t'} [id_t = id_t'] <b_t, b_t'>
      sqNorms: () => {
        const same = tf.cast(tf.equal(tf.reshape(I, [n, T, 1]), tf.reshape(I, [n, 1, T])), 'float32');
        return [tf.sum(tf.mul(same, tf.matMul(B, B, false, true)), [1, 2]) as tf.Tensor1D];
      },
      weightedSum: (w) => [tf.unsortedSegmentSum(tf.reshape(tf.mul(B, tf.reshape(w, [n, 1, 1])), [n * T, D]), tf.reshape(I, [n * T]), V)],
      perSample: () => [tf.matMul(tf.cast(tf.oneHot(I, V), 'float32') as tf.Tensor3D, B, true, false)],
    });
    return tf.zeros(ids.shape);
  }
  spec(): LayerSpec {
    return { type: 'embedding', vocab: this.opts.vocab, dim: this.opts.dim };
  }
}

registerLayer({
  types: ['embedding'],
  build: (s) => new Embedding({ vocab: Number(s.vocab), dim: Number(s.dim) }),
  // shape inference feeds ids, not floats
  inputDtype: 'int32',
});
