import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, clippedSum, forwardBackward, setInitSeed } from '../src/nn/index.js';
import { DpEvents, makeAccountant, PrivacyLedger, seededRandom } from '../src/privacy/index.js';
import { ensureEngine, GaussianPrivatizer, makePrivate, makePrivateWithEpsilon, poissonSample, SGD, TopAggPrivatizer, type TrainData } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { toyDataset } from './train-fixture.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(3);
});

function vecData(x: Float32Array, labels: Int32Array, d: number): TrainData {
  return {
    count: labels.length,
    labels,
    batch: (idx) => tf.tensor2d(Float32Array.from({ length: idx.length * d }, (_, k) => x[idx[Math.floor(k / d)]! * d + (k % d)]!), [idx.length, d]),
    range: (s, e) => tf.tensor2d(x.subarray(s * d, e * d), [e - s, d]),
  };
}

test('Poisson sampling keeps each example with probability q (geometric-gap sampler)', () => {
  const rng = seededRandom(1);
  const n = 1000;
  const q = 0.05;
  const hits = new Float64Array(n);
  const sizes: number[] = [];
  const reps = 2000;
  for (let r = 0; r < reps; r++) {
    const s = poissonSample(n, q, rng);
    sizes.push(s.length);
    for (let i = 1; i < s.length; i++) assert.ok(s[i]! > s[i - 1]!);
    for (const i of s) hits[i]++;
  }
  const mean = sizes.reduce((a, b) => a + b, 0) / reps;
  const sd = Math.sqrt(n * q * (1 - q));
  assert.ok(Math.abs(mean - n * q) < (4 * sd) / Math.sqrt(reps), `mean batch ${mean}`);
  const vr = sizes.reduce((a, b) => a + (b - mean) ** 2, 0) / (reps - 1);
  assert.ok(Math.abs(Math.sqrt(vr) / sd - 1) < 0.08, `batch size sd ${Math.sqrt(vr)} vs ${sd}`);
  // first and last indices are as likely as the middle ones
  const first = hits.slice(0, 100).reduce((a, b) => a + b, 0) / (100 * reps);
  const last = hits.slice(900).reduce((a, b) => a + b, 0) / (100 * reps);
  assert.ok(Math.abs(first - q) < 0.004 && Math.abs(last - q) < 0.004, `${first} ${last}`);
});

test('Gaussian privatizer: clipping never exceeded; noisy update has mean = clipped sum / B and std σC / B', () => {
  const model = buildModel([{ type: 'dense', units: 3 }], [5]);
  const params = model.parameters();
  const C = 0.7;
  const sigma = 1.3;
  const B = 4;
  const clean = tf.tidy(() => {
    const x = tf.mul(tf.randomNormal([6, 5], 0, 1, 'float32', 2), 10); // large gradients: all clipped
    const fb = forwardBackward(model, x, tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'));
    // each example alone: its clipped gradient has norm <= C
    return clippedSum(fb.tape, params, { maxGradNorm: C }).grads;
  });
  for (let i = 0; i < 6; i++) {
    const g = tf.tidy(() => {
      const x = tf.mul(tf.randomNormal([1, 5], 0, 1, 'float32', 100 + i), 10 ** (i - 2));
      const fb = forwardBackward(model, x, tf.tensor1d([i % 3], 'int32'));
      return tf.sqrt(tf.addN(clippedSum(fb.tape, params, { maxGradNorm: C }).grads.map((t) => tf.sum(tf.square(t))))).dataSync()[0]!;
    });
    assert.ok(g <= C * (1 + 1e-6), `clipped norm ${g} > C`);
  }
  const priv = new GaussianPrivatizer(sigma, { maxGradNorm: C });
  const rng = seededRandom(42);
  const cleanFlat = tf.concat(clean.map((t) => tf.reshape(t, [-1]))).dataSync();
  const P = cleanFlat.length;
  const reps = 3000;
  const sum = new Float64Array(P);
  const sq = new Float64Array(P);
  for (let r = 0; r < reps; r++) {
    const out = priv.finalize(clean, B, rng);
    const f = tf.concat(out.map((t) => tf.reshape(t, [-1])));
    const v = f.dataSync();
    for (let j = 0; j < P; j++) {
      const d = v[j]! - cleanFlat[j]! / B;
      sum[j] += d;
      sq[j] += d * d;
    }
    tf.dispose([...out, f]);
  }
  const std = (sigma * C) / B;
  let allSq = 0;
  for (let j = 0; j < P; j++) {
    const m = sum[j]! / reps;
    assert.ok(Math.abs(m) < (4.5 * std) / Math.sqrt(reps), `coordinate ${j}: noise mean ${m}`);
    allSq += sq[j]!;
  }
  const measured = Math.sqrt(allSq / (reps * P));
  assert.ok(Math.abs(measured / std - 1) < 0.02, `noise std ${measured} vs σC/B = ${std}`);
  assert.deepEqual(priv.stepEvent(0.01), DpEvents.poissonSampled(0.01, DpEvents.gaussian(sigma)));
  assert.equal(new GaussianPrivatizer(0, { maxGradNorm: C }).stepEvent(0.01).kind, 'nonPrivate');
});

test('TopAgg-SGD: each example casts exactly k ±1 votes (sensitivity √k); threshold composes into one Gaussian', () => {
  const model = buildModel([{ type: 'dense', units: 4 }], [6]);
  const params = model.parameters();
  const k = 5;
  const t = new TopAggPrivatizer({ k, clip: 0.05, noiseMultiplier: 2 });
  const rng = seededRandom(5);
  for (let i = 0; i < 4; i++) {
    const v = tf.tidy(() => {
      const fb = forwardBackward(model, tf.randomNormal([1, 6], 0, 1, 'float32', 50 + i), tf.tensor1d([i % 4], 'int32'));
      return tf.concat(t.chunkSum(fb.tape, params, rng).map((g) => tf.reshape(g, [-1]))).dataSync();
    });
    const nz = Array.from(v).filter((x) => x !== 0);
    assert.equal(nz.length, k);
    assert.ok(nz.every((x) => x === 1 || x === -1));
  }
  assert.equal(t.sensitivity, Math.sqrt(k));
  const th = new TopAggPrivatizer({ k, clip: 0.05, noiseMultiplier: 2, threshold: { sigma1: 3, beta: 0.1 } });
  assert.ok(Math.abs(th.noiseMultiplier - 1 / Math.sqrt(1 / 4 + 1 / 9)) < 1e-12);
});

test('reported ε equals the privacy core for the run events; ledger written before use; σ = 0 is recorded as non-private', async () => {
  const ds = toyDataset(600, 1, { testCount: 200 });
  const dir = mkdtempSync(join(tmpdir(), 'dplens-train-'));
  const res = await runTraining({ epochs: 0.5, batch: 30, noise: 1.1, clip: 1, lr: 0.5, delta: 1e-5, seed: 7, model: 'mlp', out: join(dir, 'a') }, { dataOverride: ds });
  const steps = Math.round(0.5 / (30 / 600));
  assert.equal(res.steps, steps);
  const acc = makeAccountant('rdp').compose(DpEvents.poissonSampled(30 / 600, DpEvents.gaussian(1.1)), steps);
  assert.ok(Math.abs(res.epsilon! - acc.getEpsilon(1e-5)) < 1e-9 * acc.getEpsilon(1e-5), `${res.epsilon} vs ${acc.getEpsilon(1e-5)}`);
  const ledger = PrivacyLedger.read(join(dir, 'a', 'ledger.jsonl'));
  assert.equal(ledger.header.randomness.kind, 'seeded');
  assert.ok(Math.abs(ledger.spent(1e-5) - res.epsilon!) < 1e-12);
  const lines = readFileSync(join(dir, 'a', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.type === 'eval' && l.testAccuracy > 0.5), 'toy task learned');
  // PLD accountant run
  const pld = await runTraining({ epochs: 0.2, batch: 30, noise: 1.1, clip: 1, lr: 0.5, delta: 1e-5, seed: 7, model: 'mlp', accountant: 'pld', evaluate: false }, { dataOverride: ds });
  const pacc = makeAccountant('pld').compose(DpEvents.poissonSampled(30 / 600, DpEvents.gaussian(1.1)), 4);
  assert.ok(Math.abs(pld.epsilon! - pacc.getEpsilon(1e-5)) < 1e-6);
  // σ = 0: explicit non-private run, ε = ∞ in ledger and result
  const np = await runTraining({ epochs: 0.1, batch: 30, noise: 0, clip: 1, lr: 0.5, seed: 1, model: 'mlp', out: join(dir, 'b') }, { dataOverride: ds });
  assert.equal(np.epsilon, null);
  assert.equal(np.nonPrivate, true);
  const l2 = PrivacyLedger.read(join(dir, 'b', 'ledger.jsonl'));
  assert.equal(l2.entries[0]!.event.kind, 'nonPrivate');
  assert.equal(l2.spent(1e-5), Infinity);
  // resume continues the ledger
  const again = await runTraining({ epochs: 1, out: join(dir, 'a'), resume: true }, { dataOverride: ds });
  assert.equal(again.steps, 20);
  const acc2 = makeAccountant('rdp').compose(DpEvents.poissonSampled(30 / 600, DpEvents.gaussian(1.1)), 20);
  assert.ok(Math.abs(again.epsilon! - acc2.getEpsilon(1e-5)) < 1e-9);
});

test('budget: makePrivateWithEpsilon calibrates σ and never exceeds the target; a tight cap stops early', () => {
  const d = 4;
  const n = 400;
  const rng = seededRandom(9);
  const x = new Float32Array(n * d);
  rng.normal(x, 1);
  const labels = Int32Array.from({ length: n }, (_, i) => (x[i * d]! > 0 ? 1 : 0));
  const data = vecData(x, labels, d);
  const model = buildModel([{ type: 'dense', units: 2 }], [d]);
  const t = makePrivateWithEpsilon({ model, optimizer: new SGD(0.5), data, maxGradNorm: 1, delta: 1e-5, batchSize: 20, targetEpsilon: 2, epochs: 2, rng: seededRandom(1) });
  const r = t.fit({ steps: t.plannedSteps });
  assert.ok(r.epsilon <= 2 && r.epsilon > 1.9, `ε ${r.epsilon}`);
  assert.equal(r.stoppedBy, 'steps');
  const t2 = makePrivate({ model, optimizer: new SGD(0.5), data, noiseMultiplier: 0.8, maxGradNorm: 1, delta: 1e-5, batchSize: 20, maxEpsilon: 1, rng: seededRandom(2), recordEvery: 7 });
  const r2 = t2.fit({ steps: 500 });
  assert.equal(r2.stoppedBy, 'budget');
  assert.ok(r2.epsilon <= 1, `ε ${r2.epsilon}`);
  const acc = makeAccountant('rdp').compose(DpEvents.poissonSampled(0.05, DpEvents.gaussian(0.8)), r2.steps);
  assert.ok(Math.abs(acc.getEpsilon(1e-5) - r2.epsilon) < 1e-9, 'ε = accountant over exactly the steps run');
  assert.ok(makeAccountant('rdp').compose(DpEvents.poissonSampled(0.05, DpEvents.gaussian(0.8)), r2.steps + 1).getEpsilon(1e-5) > 1, 'one more step would exceed');
});

test('gradient canaries: included with probability ½, observed dot products shift by one clip unit', () => {
  const d = 3;
  const n = 200;
  const x = new Float32Array(n * d); // all-zero inputs and a bias-free layer: every real gradient is 0
  const labels = new Int32Array(n);
  const model = buildModel([{ type: 'dense', units: 2, bias: false }], [d]);
  const seen: { included: boolean[]; dots: number[] }[] = [];
  const t = makePrivate({
    model,
    optimizer: new SGD(0.1),
    data: vecData(x, labels, d),
    noiseMultiplier: 0.5,
    maxGradNorm: 2,
    delta: 1e-5,
    batchSize: 10,
    rng: seededRandom(4),
    gradientCanaries: { directions: (P) => [Float32Array.from({ length: P }, (_, i) => (i === 0 ? 1 : 0)), Float32Array.from({ length: P }, (_, i) => (i === 1 ? 3 : 0))], onStep: (s) => seen.push(s) },
  });
  t.fit({ steps: 400 });
  assert.equal(seen.length, 400);
  const inc = seen.filter((s) => s.included[0]).length / 400;
  assert.ok(Math.abs(inc - 0.5) < 0.1);
  // dots = included + N(0, σ²): means 1 and 0, std σ
  const m1 = seen.filter((s) => s.included[1]).map((s) => s.dots[1]!);
  const m0 = seen.filter((s) => !s.included[1]).map((s) => s.dots[1]!);
  const mean = (a: number[]) => a.reduce((p, c) => p + c, 0) / a.length;
  assert.ok(Math.abs(mean(m1) - 1) < 0.12 && Math.abs(mean(m0)) < 0.12, `${mean(m1)} ${mean(m0)}`);
});

test('virtual batches: a logical batch run in physical chunks gives the same update as one pass', () => {
  const d = 6;
  const n = 50;
  const rng = seededRandom(12);
  const x = new Float32Array(n * d);
  rng.normal(x, 2);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const data = vecData(x, labels, d);
  const run = (phys: number) => {
    setInitSeed(99);
    const model = buildModel([{ type: 'dense', units: 5 }, { type: 'tanh' }, { type: 'dense', units: 3 }], [d]);
    const t = makePrivate({ model, optimizer: new SGD(0.3), data, noiseMultiplier: 1, maxGradNorm: 0.5, delta: 1e-5, batchSize: 40, maxPhysicalBatch: phys, rng: seededRandom(5) });
    t.step(Int32Array.from({ length: 40 }, (_, i) => i), 0, 1);
    return tf.concat(t.params.map((p) => tf.reshape(p.value, [-1]))).dataSync();
  };
  const one = run(1000);
  const chunked = run(7);
  for (let i = 0; i < one.length; i++) assert.ok(Math.abs(one[i]! - chunked[i]!) < 1e-5, `param ${i}: ${one[i]} vs ${chunked[i]}`);
});
