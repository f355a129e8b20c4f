// Sequential container (fuses ReLU → valid MaxPool2d for training).
import * as tf from '@tensorflow/tfjs-core';
import { prefixed } from './common.js';
import { MaxPool2d } from './maxpool2d.js';
import { ReLU } from './relu.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';
import { registerLayer } from './registry.js';

/** Runs modules in order. Parameter names are "<index>.<name>". */
export class Sequential implements Module {
  readonly type = 'sequential';
  constructor(readonly layers: Module[]) {
    for (const l of layers) if (!l || typeof l.forward !== 'function') throw new ModelError('sequential: every layer must implement the Module interface');
    layers.forEach((l, i) => {
      const next = layers[i + 1];
      if (l instanceof ReLU && next instanceof MaxPool2d && next.pad === 'valid') {
        l.fusedIntoPool = true;
        next.fuseRelu = true;
      }
    });
  }
  parameters(): Param[] {
    return this.layers.flatMap((l, i) => prefixed(String(i), l.parameters()));
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h, training);
    return h;
  }
  backward(dy: tf.Tensor, tape: GradTape, needInputGrad = true): tf.Tensor {
    let g = dy;
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i]!.backward(g, tape, i > 0 || needInputGrad);
    return g;
  }
  spec(): LayerSpec {
    return { type: 'sequential', layers: this.layers.map((l) => l.spec()) };
  }
}


registerLayer({
  types: ['sequential'],
  // the output shape comes from the chain, no dry run
  build: (s, { inShape, build }) => {
    const layers: Module[] = [];
    let shape = inShape;
    for (const l of (s.layers as LayerSpec[]) ?? []) {
      const b = build(l, shape);
      layers.push(b.module);
      shape = b.outShape;
    }
    return { module: new Sequential(layers), outShape: shape };
  },
});
