/** Recipe features: model presets (tanh / GroupNorm reference CNN), optimizer + EMA state and exact resume. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, clippedSum, forwardBackward, loadModel, modelPresets, perSampleFlat, presetSpec, setInitSeed, softmaxCrossEntropy, type LayerSpec, type Module, type Param } from '../src/nn/index.js';
import { Adam, Ema, ensureEngine, SGD, type Optimizer } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { toyDataset } from './train-fixture.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(5);
});

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-20);
}

/** Per-example autodiff gradients (the reference) vs the one-backward-pass per-sample gradients and clipped sum. */
function checkAgainstLoop(model: Module, x: tf.Tensor, labels: Int32Array): void {
  const params = model.parameters();
  const ref = Array.from(labels, (_, i) =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => softmaxCrossEntropy(model.forward(tf.slice(x, [i], [1]), false), tf.tensor1d([labels[i]!], 'int32')).lossSum, params.map((p) => p.value));
      return tf.concat(params.map((p) => tf.reshape(grads[p.value.name]!, [-1]))).dataSync() as Float32Array;
    }),
  );
  tf.tidy(() => {
    const fb = forwardBackward(model, x, tf.tensor1d(labels, 'int32'));
    const ps = perSampleFlat(fb.tape, params).arraySync();
    ref.forEach((r, i) => assert.ok(relErr(ps[i]!, r) < 1e-5, `sample ${i}: rel. error ${relErr(ps[i]!, r)}`));
    const norms = ref.map((g) => Math.hypot(...g));
    const C = norms.slice().sort((a, b) => a - b)[Math.floor(labels.length / 2)]!;
    const expect = new Float64Array(ref[0]!.length);
    ref.forEach((g, i) => g.forEach((v, j) => (expect[j] += v * Math.min(1, C / norms[i]!))));
    const got = tf.concat(clippedSum(fb.tape, params, { maxGradNorm: C }).grads.map((g) => tf.reshape(g, [-1]))).dataSync();
    assert.ok(relErr(got, expect) < 5e-5, `clipped sum rel. error ${relErr(got, expect)}`);
  });
}

test('cnn-tanh and cnn-tanh-gn presets: reference CNN shape, tanh activations, per-sample gradients equal a per-example loop', () => {
  assert.deepEqual(Object.keys(modelPresets).sort(), ['cnn', 'cnn-tanh', 'cnn-tanh-gn', 'mlp']);
  const types = (s: LayerSpec[]) => s.map((l) => l.type);
  assert.deepEqual(types(presetSpec('cnn-tanh')), types(presetSpec('cnn')).map((t) => (t === 'relu' ? 'tanh' : t)));
  assert.deepEqual(types(presetSpec('cnn-tanh-gn')).filter((t) => t === 'groupnorm').length, 2);
  assert.throws(() => presetSpec('resnet' as never), /unknown model preset/);
  const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 2);
  const labels = Int32Array.from([3, 0, 7, 9]);
  for (const name of ['cnn-tanh', 'cnn-tanh-gn'] as const) {
    const model = buildModel(presetSpec(name), [28, 28, 1]);
    // same parameter count as the reference CNN (26 010) plus GroupNorm's γ/β
    const count = model.parameters().reduce((s, p) => s + p.value.size, 0);
    assert.equal(count, name === 'cnn-tanh' ? 26010 : 26010 + 2 * (16 + 32));
    const h = tf.tidy(() => model.forward(x, false));
    assert.deepEqual(h.shape, [4, 10]);
    h.dispose();
    checkAgainstLoop(model, x, labels);
  }
  x.dispose();
});

/** Two optimizers fed the same gradients; the second is rebuilt from the first's state half-way. */
function continuesExactly(make: () => Optimizer): void {
  const mkParams = (): Param[] => [0, 1].map((i) => ({ name: `w${i}`, value: tf.variable(tf.tensor(Float32Array.from([0.5, -1, 2, 0.25].map((v) => v * (i + 1))), [2, 2]), true) }) as unknown as Param);
  const grads = Array.from({ length: 6 }, (_, s) => [0, 1].map((i) => tf.tensor(Float32Array.from([Math.sin(s + i), Math.cos(3 * s), 0.1 * s - 0.2, i - 0.5]), [2, 2])));
  const a = make();
  const pa = mkParams();
  const pb = mkParams();
  const b1 = make();
  for (let s = 0; s < 3; s++) {
    a.step(pa, grads[s]!, s, 6);
    b1.step(pb, grads[s]!, s, 6);
  }
  // round-trip the state through plain arrays, as the run folder does
  const st = b1.getState!();
  const copy = { name: st.name, t: st.t, slots: Object.fromEntries(Object.entries(st.slots).map(([k, ts]) => [k, ts.map((t) => tf.tensor(t.dataSync().slice(), t.shape))])) };
  const b2 = make();
  b2.setState!(copy, pb);
  for (let s = 3; s < 6; s++) {
    a.step(pa, grads[s]!, s, 6);
    b2.step(pb, grads[s]!, s, 6);
  }
  pa.forEach((p, i) => assert.deepEqual(Array.from(p.value.dataSync()), Array.from(pb[i]!.value.dataSync()), `${a.name}: parameter ${i} after resume`));
  // and a fresh optimizer (state lost) would have diverged: the test can fail
  const pc = mkParams();
  const c1 = make();
  for (let s = 0; s < 3; s++) c1.step(pc, grads[s]!, s, 6);
  const c2 = make();
  for (let s = 3; s < 6; s++) c2.step(pc, grads[s]!, s, 6);
  assert.ok(relErr(pc[0]!.value.dataSync(), pa[0]!.value.dataSync()) > 1e-4, `${a.name}: losing the state should change the result`);
  assert.throws(() => make().setState!({ name: 'other', t: 0, slots: {} }, pb), /cannot load/);
}

test('SGD (momentum, Nesterov) and Adam continue exactly from a saved state', () => {
  continuesExactly(() => new SGD(0.1, { momentum: 0.9 }));
  continuesExactly(() => new SGD(0.1, { momentum: 0.5, nesterov: true }));
  continuesExactly(() => new Adam(0.05));
  const p = [{ name: 'w', value: tf.variable(tf.ones([3]), true) } as unknown as Param];
  const e = new Ema(p, 0.5);
  p[0]!.value.assign(tf.fill([3], 3));
  e.update(); // shadow = 0.5·1 + 0.5·3 = 2
  const e2 = new Ema(p, 0.5);
  e2.setShadow(e.getShadow());
  e2.swap();
  assert.deepEqual(Array.from(p[0]!.value.dataSync()), [2, 2, 2]);
  assert.throws(() => e2.setShadow([tf.ones([4])]), /shape/);
});

test('run folder: model.json holds the EMA weights, train-state keeps momentum/live weights, resume restores them and reports the stored clip/batch', async () => {
  const ds = toyDataset(400, 3);
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-recipe-')), 'run');
  const spec: LayerSpec[] = [{ type: 'flatten' }, { type: 'dense', units: 8 }, { type: 'tanh' }, { type: 'dense', units: 4 }];
  const first = await runTraining({ model: spec, epochs: 0.5, batch: 40, noise: 1, clip: 0.7, lr: 0.5, momentum: 0.9, ema: 0.9, seed: 4, out: dir }, { dataOverride: ds });
  assert.equal(first.clip, 0.7);
  assert.equal(first.batch, 40);
  const st = JSON.parse(readFileSync(join(dir, 'train-state.json'), 'utf8'));
  assert.equal(st.optimizer, 'sgd');
  assert.deepEqual([...new Set(st.tensors.map((e: { slot: string }) => e.slot))].sort(), ['ema', 'live', 'velocity']);
  const bin = new Float32Array(new Uint8Array(readFileSync(join(dir, 'train-state.bin'))).buffer);
  const slot = (name: string): number[] => st.tensors.filter((e: { slot: string }) => e.slot === name).flatMap((e: { offset: number; length: number }) => Array.from(bin.subarray(e.offset, e.offset + e.length)));
  const saved = loadModel(dir).model.parameters().flatMap((p) => Array.from(p.value.dataSync()));
  assert.deepEqual(saved, slot('ema'), 'model.json = the evaluated EMA weights');
  assert.ok(relErr(slot('live'), slot('ema')) > 1e-4, 'live weights differ from the average');
  assert.ok(slot('velocity').some((v) => v !== 0), 'momentum was built up');
  const logs: string[] = [];
  const again = await runTraining({ epochs: 1, out: dir, resume: true }, { dataOverride: ds, log: (m) => logs.push(m) });
  assert.ok(logs.some((l) => /optimizer state and EMA restored/.test(l)), logs.join('\n'));
  assert.equal(again.steps, 10);
  assert.equal(again.clip, 0.7, 'clip from the stored config, not the flag default');
  assert.equal(again.batch, 40);
  assert.ok(again.testAccuracy! > 0.5, `toy task learned after resume: ${again.testAccuracy}`);
});
