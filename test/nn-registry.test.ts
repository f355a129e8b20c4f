// Layer registry (issue 13 item 5): one file per layer kind, registered by type name; buildModel
// looks kinds up there instead of a switch, so a new layer is one file plus one registry line.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { buildModel, type GradTape, type LayerSpec, layerKind, type Module, type Param, registeredLayerTypes, registerLayer, setInitSeed } from '../src/nn/index.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(3);
});

test('every layer type of the former spec.ts switch is registered (aliases and case-insensitive names too)', () => {
  const former = ['dense', 'linear', 'conv2d', 'embedding', 'layernorm', 'groupnorm', 'instancenorm', 'batchnorm', 'batchnormalization', 'relu', 'leakyrelu', 'tanh', 'temperedsigmoid', 'elu', 'maxpool2d', 'avgpool2d', 'flatten', 'dropout', 'sequential', 'residual'];
  for (const t of former) assert.ok(layerKind(t), `${t} registered`);
  assert.deepEqual(registeredLayerTypes().filter((t) => former.includes(t)).sort(), [...former].sort());
  assert.equal(layerKind('Dense'), layerKind('linear'));
});

test('a spec using every kind builds, infers shapes and rebuilds identically from model.spec()', () => {
  const spec: LayerSpec[] = [
    { type: 'conv2d', filters: 4, kernel: 3, padding: 'same' },
    { type: 'groupnorm', groups: 2 },
    { type: 'instancenorm' },
    { type: 'relu' },
    { type: 'maxpool2d', kernel: 2 },
    { type: 'residual', body: { type: 'sequential', layers: [{ type: 'conv2d', filters: 4, kernel: 1 }, { type: 'elu', alpha: 0.5 }] } },
    { type: 'avgpool2d', kernel: 2 },
    { type: 'flatten' },
    { type: 'Linear', units: 6 },
    { type: 'layernorm' },
    { type: 'leakyrelu', alpha: 0.2 },
    { type: 'dropout', rate: 0.1 },
    { type: 'temperedsigmoid', scale: 1, temperature: 1, offset: 0.5 },
    { type: 'tanh' },
    { type: 'dense', units: 3 },
  ];
  const m = buildModel(spec, [8, 8, 2]);
  const y = m.forward(tf.zeros([2, 8, 8, 2]), false);
  assert.deepEqual(y.shape, [2, 3]);
  const again = buildModel(m.spec(), [8, 8, 2]);
  assert.deepEqual(again.spec(), m.spec());
  assert.deepEqual(again.parameters().map((p) => [p.name, p.value.shape]), m.parameters().map((p) => [p.name, p.value.shape]));
  const emb = buildModel([{ type: 'embedding', vocab: 5, dim: 3 }, { type: 'flatten' }], [4]);
  assert.deepEqual(emb.forward(tf.zeros([1, 4], 'int32'), false).shape, [1, 12]);
});

test('unknown types and BatchNorm are refused with one-line reasons; a type name cannot be taken twice', () => {
  assert.throws(() => buildModel([{ type: 'nosuchlayer' }], [3]), /unknown layer type "nosuchlayer" \(known: .*dense/);
  assert.throws(() => buildModel([{ type: 'batchnorm' }], [3]), /BatchNorm is not supported for DP training/);
  assert.throws(() => registerLayer({ types: ['relu'], build: () => { throw new Error('unused'); } }), /already registered/);
});

/** A layer defined outside nn/: y = 2x, parameter-free. */
class Double implements Module {
  readonly type = 'test-double';
  parameters(): Param[] {
    return [];
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, 2);
  }
  backward(dy: tf.Tensor, _tape: GradTape): tf.Tensor {
    return tf.mul(dy, 2);
  }
  spec(): LayerSpec {
    return { type: this.type };
  }
}

test('a new layer kind is one registerLayer call: buildModel, shape inference and spec round-trip pick it up', () => {
  registerLayer({ types: ['test-double'], build: () => new Double() });
  const m = buildModel([{ type: 'flatten' }, { type: 'test-double' }, { type: 'dense', units: 2 }], [2, 2]);
  assert.equal(m.layers[1]!.type, 'test-double');
  const x = tf.ones([1, 2, 2]);
  const direct = tf.add(tf.matMul(tf.fill([1, 4], 2), m.parameters()[0]!.value as tf.Tensor2D), m.parameters()[1]!.value);
  assert.deepEqual(Array.from(m.forward(x, false).dataSync()), Array.from(direct.dataSync()));
  assert.deepEqual(buildModel(m.spec(), [2, 2]).spec(), m.spec());
});
