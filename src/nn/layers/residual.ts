// Residual container: y = body(x) + shortcut(x).
import * as tf from '@tensorflow/tfjs-core';
import { prefixed } from './common.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';
import { registerLayer } from './registry.js';

/** y = body(x) + shortcut(x) (identity shortcut by default). */
export class Residual implements Module {
  readonly type = 'residual';
  constructor(
    readonly body: Module,
    readonly shortcut?: Module,
  ) {}
  parameters(): Param[] {
    return [...prefixed('body', this.body.parameters()), ...(this.shortcut ? prefixed('shortcut', this.shortcut.parameters()) : [])];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const a = this.body.forward(x, training);
    const b = this.shortcut ? this.shortcut.forward(x, training) : x;
    if (!tf.util.arraysEqual(a.shape, b.shape)) throw new ModelError(`residual: body output [${a.shape.join(', ')}] and shortcut output [${b.shape.join(', ')}] differ`);
    return tf.add(a, b);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const da = this.body.backward(dy, tape);
    const db = this.shortcut ? this.shortcut.backward(dy, tape) : dy;
    return tf.add(da, db);
  }
  spec(): LayerSpec {
    return { type: 'residual', body: this.body.spec(), ...(this.shortcut ? { shortcut: this.shortcut.spec() } : {}) };
  }
}

registerLayer({
  types: ['residual'],
  build: (s, { inShape, build }) => {
    const body = build(s.body as LayerSpec, inShape);
    const sc = s.shortcut ? build(s.shortcut as LayerSpec, inShape) : undefined;
    return new Residual(body.module, sc?.module);
  },
});
