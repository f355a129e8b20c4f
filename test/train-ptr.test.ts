/**
 * PTR-robust privatizer and the corruption harness:
 *  - property tests of the robust aggregates' PTR facts on neighbouring batches (one record added
 *    or removed): the aggregate moves by ≤ U₀ (local-sensitivity bound), U_k(D') ≤ U_{k+1}(D)
 *    (so the distance to instability has sensitivity 1), and the padded trimmed mean moves by
 *    ≤ ‖x‖/B (its global sensitivity C/B) — including batches whose coordinates all have one sign;
 *  - the corruption harness: spec parsing, corrupted counts, Byzantine per-sample gradients are
 *    exactly −10× the honest ones, config/result record the spec;
 *  - σ = 0 is recorded as non-private and caught by the DP-SGD audit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, seededRandom } from '../src/privacy/index.js';
import { buildModel, forwardBackward, perSampleFlat } from '../src/nn/index.js';
import { ensureEngine, PtrRobustPrivatizer, ptrRobustFactory, robustAggregate } from '../src/train/index.js';
import { byzantineLoss, corruptDataset, parseCorruption } from '../src/train/corrupt.js';
import { runTraining } from '../src/runs/train.js';
import { auditTraining } from '../src/runs/audit.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { toyDataset } from './train-fixture.js';

await ensureEngine();

/** n rows of length P with L2 ≤ C; `shift` pushes every coordinate positive (one-signed batches). */
function rows(n: number, P: number, C: number, seed: number, shift = 0): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    let nn = 0;
    for (let j = 0; j < P; j++) {
      const v = (r.nextDouble() < 0.2 ? 3 : 1) * (r.nextDouble() - 0.5 + shift);
      out[i * P + j] = v;
      nn += v * v;
    }
    const s = Math.min(1, C / Math.sqrt(nn));
    for (let j = 0; j < P; j++) out[i * P + j]! *= s;
  }
  return out;
}
const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

test('robust aggregates: LS ≤ U₀, U_k(D′) ≤ U_{k+1}(D), γ has sensitivity 1, padded trimmed mean moves ≤ ‖x‖/B', () => {
  const P = 6;
  const C = 1;
  const B = 20;
  const K = 8;
  let checked = 0;
  for (const trim of [0.5, 0.1, 0.25]) {
    for (let seed = 1; seed <= 30; seed++) {
      const n = 10 + (seed % 15);
      const D = rows(n, P, C, seed, seed % 3 === 0 ? 0.5 : 0);
      const x = rows(1, P, C, 1000 + seed, seed % 2 ? 0.5 : -0.5);
      const o = { clip: C, trim, expectedBatch: B, beta: 0.3, kMax: K, globalSensitivity: Infinity };
      const a = robustAggregate(D, n, P, o);
      const neighbours: [Float32Array, number, number][] = [
        [Float32Array.from([...D, ...x]), n + 1, Math.sqrt(x.reduce((s, v) => s + v * v, 0))],
        [D.slice(P), n - 1, Math.sqrt(D.slice(0, P).reduce((s, v) => s + v * v, 0))],
      ];
      for (const [D2, n2, xNorm] of neighbours) {
        const b = robustAggregate(D2, n2, P, o);
        const d = dist(a.value, b.value);
        assert.ok(d <= a.levels[0]! + 1e-6 && d <= b.levels[0]! + 1e-6, `trim ${trim} seed ${seed}: moved ${d} > U0 ${a.levels[0]} / ${b.levels[0]}`);
        if (trim < 0.5) assert.ok(d <= xNorm / B + 1e-6, `padded trimmed mean moved ${d} > ‖x‖/B ${xNorm / B}`);
        for (let k = 0; k < K; k++) {
          assert.ok(b.levels[k]! <= a.levels[k + 1]! + 1e-6, `U_${k}(D') ${b.levels[k]} > U_${k + 1}(D) ${a.levels[k + 1]}`);
          assert.ok(a.levels[k]! <= b.levels[k + 1]! + 1e-6);
        }
        assert.ok(Math.abs(a.gamma - b.gamma) <= 1, `γ ${a.gamma} vs ${b.gamma}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 180);
});

test('ptr-robust: event from the options (GS/β), σ = 0 is non-private', () => {
  const t = ptrRobustFactory.create({ noiseMultiplier: 2, clip: 1, clipping: 'flat', paramCount: 10, expectedBatch: 100, options: {} }) as PtrRobustPrivatizer;
  assert.equal(t.beta, 0.01); // 1 × C/B
  assert.equal(t.globalSensitivity, 0.01); // padded trimmed mean: C/B
  const ev = t.stepEvent(0.01);
  assert.deepEqual(ev, DpEvents.poissonSampled(0.01, DpEvents.ptr({ testEpsilon: 1, threshold: t.threshold, noiseMultiplier: 2, gsRatio: 1, kMax: t.kMax })));
  const m = ptrRobustFactory.create({ noiseMultiplier: 2, clip: 1, clipping: 'flat', paramCount: 10, expectedBatch: 100, options: { 'ptr-trim': 0.5, 'ptr-radius': 1.5 } }) as PtrRobustPrivatizer;
  assert.ok(Math.abs((m.stepEvent(0.01) as { event: { gsRatio: number } }).event.gsRatio - 3) < 1e-12);
  assert.equal(ptrRobustFactory.create({ noiseMultiplier: 0, clip: 1, clipping: 'flat', paramCount: 10, expectedBatch: 100, options: {} }).stepEvent(0.01).kind, 'nonPrivate');
});

test('corruption harness: parsing, counts, Byzantine per-sample gradients = −10 × honest', () => {
  assert.deepEqual(parseCorruption('labels:0.2,byzantine:0.1:target'), { labels: 0.2, byzantine: { fraction: 0.1, mode: 'target' } });
  assert.throws(() => parseCorruption('labels:2'), /--corrupt/);
  assert.throws(() => parseCorruption('bits:0.1'), /unknown kind/);
  assert.throws(() => parseCorruption('byzantine:0.1:flip'), /negate or target/);
  const ds = toyDataset(200, 3);
  const c = corruptDataset(ds, parseCorruption('labels:0.2,features:0.1,byzantine:0.1'));
  assert.deepEqual(c.counts, { labels: 40, features: 20, byzantine: 20 });
  let flipped = 0;
  for (let i = 0; i < 200; i++) flipped += c.data.train.labels[i] !== ds.train.labels[i] ? 1 : 0;
  assert.equal(flipped, 40);
  assert.deepEqual(c.data.test, ds.test);
  const model = buildModel([{ type: 'flatten' }, { type: 'dense', units: 4 }], [8, 8, 1]);
  const params = model.parameters();
  const chunk = Int32Array.from({ length: 10 }, (_, i) => i);
  const mask = new Uint8Array(200);
  mask[3] = 1;
  const [honest, byz] = tf.tidy(() => {
    const x = tf.tensor(Float32Array.from(ds.train.images.slice(0, 640), (v) => v / 255), [10, 8, 8, 1]);
    const y = tf.tensor1d(ds.train.labels.slice(0, 10), 'int32');
    const h = perSampleFlat(forwardBackward(model, x, y).tape, params).arraySync();
    const b = perSampleFlat(forwardBackward(model, x, y, byzantineLoss(mask, 'negate', chunk)).tape, params).arraySync();
    return [h, b];
  });
  for (let i = 0; i < 10; i++) for (let j = 0; j < honest[0]!.length; j++) assert.ok(Math.abs(byz[i]![j]! - (i === 3 ? -10 : 1) * honest[i]![j]!) < 1e-4);
});

test('--corrupt is recorded in config.json and the result; ptr-robust trains and reports the (ε, δ)-PTR bound', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-ptr-'));
  const res = await runTraining({ epochs: 0.5, batch: 30, noise: 1, clip: 1, lr: 0.5, seed: 3, model: 'mlp', privatizer: 'ptr-robust', corrupt: 'byzantine:0.1', out: join(dir, 'a') }, { dataOverride: toyDataset(300, 4) });
  assert.deepEqual(res.corrupt, { spec: 'byzantine:0.1', labels: 0, features: 0, byzantine: 30 });
  assert.equal(JSON.parse(readFileSync(join(dir, 'a', 'config.json'), 'utf8')).config.corrupt, 'byzantine:0.1');
  assert.ok(res.ptr && res.ptr.tested === res.steps && res.ptr.passed === res.steps, JSON.stringify(res.ptr));
  assert.ok(res.ptr.epsilonApproxDp! > res.epsilon!, `${res.ptr.epsilonApproxDp} vs ${res.epsilon}`);
  assert.ok(res.bytesPerStep > 0);
});

const mnist = loadMnist();
const subset: ImageDataset = {
  ...mnist,
  train: { images: mnist.train.images.slice(0, 480 * 784), labels: mnist.train.labels.slice(0, 480), count: 480 },
  test: { images: mnist.test.images.slice(0, 100 * 784), labels: mnist.test.labels.slice(0, 100), count: 100 },
  rawFingerprint: 'mnist-subset-ptr-480',
};

test('σ = 0: the DP-SGD audit catches ptr-robust (trimmed mean) as non-private', async (t) => {
  const r = await auditTraining({ model: 'cnn', batch: 240, clip: 1.5, lr: 0.25, epochs: 6, noise: 0, seed: 11, privatizer: 'ptr-robust' }, { dataOverride: subset, canaries: 1000, seed: 12 });
  t.diagnostic(`σ=0 ptr-robust: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
  assert.equal(r.claimedEpsilon, null);
  assert.ok(r.empiricalEpsilonLowerBound >= 2, `bound ${r.empiricalEpsilonLowerBound}`);
});
