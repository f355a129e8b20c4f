// The engine depends on onnxruntime-node's INTERNAL synchronous binding. These tests fail loudly
// if that API (or the pinned version) changes, and check the hand-written ONNX encoder and the
// session cache (symbolic batch dims: one session for every batch size).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { checkBinding, PINNED_ORT_VERSION, runGraph, sessionCount } from '../src/engine/ort-runtime.js';
import { encodeModel, OnnxType } from '../src/engine/onnx-proto.js';
import { GraphBuilder, attr } from '../src/engine/graph.js';
import { engineStats, initEngine, resetEngineStats, setEngineThreads, setEngineTiming } from '../src/engine/index.js';

const require = createRequire(import.meta.url);

test('onnxruntime-node is the pinned version, in package.json and installed', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies['onnxruntime-node'], PINNED_ORT_VERSION, 'package.json must pin the exact version the engine was written for');
  const installed = (require('onnxruntime-node/package.json') as { version: string }).version;
  assert.equal(installed, PINNED_ORT_VERSION);
});

test('internal binding API: InferenceSession with loadModel(buffer, offset, length, options) and a synchronous run()', () => {
  const mod = require('onnxruntime-node/dist/binding') as { binding: Record<string, unknown>; initOrt: unknown };
  assert.equal(typeof mod.initOrt, 'function', 'binding.initOrt');
  const ctor = mod.binding.InferenceSession as { prototype: Record<string, unknown> };
  assert.equal(typeof ctor, 'function', 'binding.InferenceSession');
  for (const m of ['loadModel', 'run', 'dispose']) assert.equal(typeof ctor.prototype[m], 'function', `InferenceSession.prototype.${m}`);
  checkBinding();

  // Exercise the exact call shapes used by ort-runtime.ts, directly on the native object.
  const model = encodeModel({
    nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', type: OnnxType.FLOAT, dims: ['n'] },
      { name: 'b', type: OnnxType.FLOAT, dims: ['n'] },
    ],
    outputs: [{ name: 'y', type: OnnxType.FLOAT, dims: ['n'] }],
  });
  const Session = ctor as unknown as new () => {
    loadModel(b: ArrayBufferLike, o: number, l: number, opts: object): void;
    run(f: object, fetches: object, o: object): Record<string, { data: Float32Array; dims: number[]; type: string }>;
    dispose(): void;
    inputMetadata: { name: string; symbolicDimensions: string[] }[];
  };
  const s = new Session();
  s.loadModel(model.buffer, model.byteOffset, model.byteLength, { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
  assert.deepEqual(
    s.inputMetadata.map((m) => [m.name, m.symbolicDimensions]),
    [
      ['a', ['n']],
      ['b', ['n']],
    ],
  );
  const out = s.run(
    { a: { type: 'float32', data: new Float32Array([1, 2, 3]), dims: [3], location: 'cpu' }, b: { type: 'float32', data: new Float32Array([10, 20, 30]), dims: [3], location: 'cpu' } },
    { y: null },
    {},
  );
  // Returned synchronously, not a Promise.
  assert.ok(!(out instanceof Promise));
  assert.deepEqual(Array.from(out.y.data), [11, 22, 33]);
  assert.deepEqual(Array.from(out.y.dims), [3]);
  assert.equal(out.y.type, 'float32');
  s.dispose();
});

test('ONNX encoder: initializers (float, int64), attributes (ints, float, string), multiple outputs', () => {
  const outs = runGraph(
    'test-encoder',
    () => {
      const g = new GraphBuilder();
      const x = g.input('float32', ['n', 4]);
      const w = g.constF32([1, -2, 3.5, 0.25], [4]);
      const y = g.op('Mul', [x, w]);
      const s = g.op('ReduceSum', [y, g.constI64([1])], { keepdims: attr.int(0) });
      const lr = g.op('LeakyRelu', [y], { alpha: attr.float(0.5) });
      const p = g.op('Pad', [x, g.constI64([0, 1, 0, 0])], { mode: attr.string('constant') });
      const t = g.transpose(x, [1, 0]);
      g.output(s, 'float32');
      g.output(lr, 'float32');
      g.output(p, 'float32');
      g.output(t, 'float32');
      return g.build();
    },
    [{ type: 'float32', data: new Float32Array([1, 1, 1, 1, -2, 0, 2, -4]), dims: [2, 4] }],
  );
  const vals = (i: number) => Array.from(outs[i].data as Float32Array, (v) => v + 0); // + 0 turns -0 into 0
  assert.deepEqual(vals(0), [2.75, -2 + 7 - 1]);
  assert.deepEqual(vals(1), [1, -1, 3.5, 0.25, -1, 0, 7, -0.5]);
  assert.deepEqual(Array.from(outs[2].dims), [2, 5]);
  assert.deepEqual(vals(2), [0, 1, 1, 1, 1, 0, -2, 0, 2, -4]);
  assert.deepEqual(vals(3), [1, -2, 1, 0, 1, 2, 1, -4]);
});

test('symbolic batch dims: one cached session serves every batch size', async () => {
  await initEngine({ backend: 'ort' });
  const w = tf.randomNormal([8, 5], 0, 1, 'float32', 3);
  const run = (b: number) => tf.tidy(() => tf.matMul(tf.ones([b, 8]), w).dataSync());
  run(300);
  const before = sessionCount();
  for (const b of [301, 257, 999, 1024]) run(b);
  assert.equal(sessionCount(), before, 'no new sessions for new batch sizes');
  w.dispose();
});

test('initEngine switches backends by name and rejects unknown ones; stats and threads', async () => {
  assert.equal(await initEngine({ backend: 'cpu' }), 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(await initEngine(), 'ort');
  await assert.rejects(initEngine({ backend: 'no-such-backend' }), /not registered/);
  assert.equal(await initEngine(), 'ort');
  assert.throws(() => setEngineThreads(0), /positive integer/);
  setEngineThreads(1);
  assert.equal(engineStats().threads, 1);
  setEngineThreads(2);
  resetEngineStats();
  setEngineTiming(true);
  tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync());
  setEngineTiming(false);
  const s = engineStats();
  assert.equal(s.backend, 'ort');
  assert.equal(s.kernelCalls.BatchMatMul, 1);
  assert.ok(s.kernelTimeMs.BatchMatMul > 0);
  assert.ok(s.nativeKernels.includes('Conv2DBackpropFilter'));
});

test('a kernel registered for cpu after the engine loaded also runs on ort (counted as a fallback)', async () => {
  tf.registerKernel({
    kernelName: 'DplensTestDouble',
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      const b = backend as unknown as { data: { get(id: unknown): { values: Float32Array } }; makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo };
      return b.makeTensorInfo(x.shape, 'float32', b.data.get(x.dataId).values.map((v) => 2 * v));
    },
  });
  await initEngine();
  resetEngineStats();
  const y = tf.tidy(() => Array.from((tf.engine().runKernel('DplensTestDouble', { x: tf.tensor1d([1, 2, 3]) }) as tf.Tensor).dataSync()));
  assert.deepEqual(y, [2, 4, 6]);
  assert.equal(engineStats().fallbacks.DplensTestDouble, 1);
});

test('tidyRead: returns the values of the tensor built under tidy and leaves no tensor behind', async () => {
  await initEngine();
  const { tidyRead } = await import('../src/engine/index.js');
  const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  const b = tf.tensor2d([1, 0, 2, 0, 1, 3], [2, 3]);
  const before = tf.memory().numTensors;
  const v = tidyRead(() => tf.matMul(a, b));
  assert.deepEqual([...v], [1, 2, 8, 3, 4, 18, 5, 6, 28]);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => tidyRead(() => tf.tensor1d([1, 2], 'int32')), /float32/);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([a, b]);
});
