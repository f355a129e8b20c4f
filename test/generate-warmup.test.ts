/**
 * The DP-FETA-style warm-up curriculum (src/generate/warmup.ts): sensitivity of one release, ledger
 * before release, calibration of DP-SGD on the composition warm-up ∘ T steps, and central images on
 * real MNIST that classify like class means.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { calibrateNoise, CalibrationError, DpEvents, PrivacyLedger, RdpAccountant, seededRandom, type RandomSource } from '../src/privacy/index.js';
import {
  calibrateWithWarmup,
  centralImageBatch,
  centralImagesFromJson,
  centralImagesToJson,
  clippedPooledRecords,
  dpsgdStepFamily,
  releaseCentralImages,
  releaseStatistic,
  WARMUP_DEFAULTS,
  WARMUP_HYPER,
  warmupEvent,
  warmupPlan,
  warmupSensitivity,
  warmUp,
  type CentralImages,
  type WarmupHyper,
} from '../src/generate/warmup.js';
import type { GeneratorContext } from '../src/generate/types.js';

let mnist: ImageDataset;
before(() => {
  mnist = loadMnist();
});

const facts = { numClasses: 10, height: 28, width: 28, channels: 1, delta: 1e-5 } as const;

function withLedger<T>(budget: number | undefined, relation: 'add-remove' | 'replace-one', f: (l: PrivacyLedger, rng: RandomSource) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-warmup-'));
  const rng = seededRandom(7);
  const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation, randomness: { kind: 'seeded', seed: 7 }, ...(budget !== undefined ? { budget: { epsilon: budget, delta: 1e-5 } } : {}) });
  return f(ledger, rng).finally(() => {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

function subset(data: ImageDataset, n: number): ImageDataset {
  const d = data.height * data.width * data.channels;
  return { ...data, train: { images: data.train.images.slice(0, n * d), labels: data.train.labels.slice(0, n), count: n } };
}

function l2(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

test('WARMUP_HYPER: every flag sets a key of WARMUP_DEFAULTS', () => {
  for (const spec of WARMUP_HYPER) assert.ok(spec.key in WARMUP_DEFAULTS, spec.key);
  assert.equal(WARMUP_DEFAULTS.warmup, 'none');
});

test('sensitivity: changing one record (contents and class) moves the released statistic by ≤ Δ, and Δ is attained', () => {
  const n = 300;
  const R = 5;
  const ds = 2;
  const d = 14 * 14;
  const imgs = mnist.train.images.slice(0, n * 784);
  const rng = seededRandom(3);
  for (const K of [1, 4]) {
    const centroids = new Float32Array(10 * K * d);
    rng.uniform(centroids); // public centroids (any values: the bound may not depend on them)
    const km = K > 1 ? { centroids, perClass: K } : undefined;
    let maxReplace = 0;
    let maxAddRemove = 0;
    for (let trial = 0; trial < 60; trial++) {
      const labels = mnist.train.labels.slice(0, n);
      const base = releaseStatistic(clippedPooledRecords(imgs, n, 28, 28, 1, ds, R), labels, n, d, 10, R, km);
      // replace-one: record j gets another record's pixels (a bright one every 3rd trial) and another class
      const j = Math.floor(rng.nextDouble() * n);
      const img2 = imgs.slice();
      const src = trial % 3 === 0 ? null : 1000 + trial;
      for (let t = 0; t < 784; t++) img2[j * 784 + t] = src === null ? 255 : mnist.train.images[src * 784 + t]!;
      const lab2 = labels.slice();
      lab2[j] = (labels[j]! + 1 + (trial % 9)) % 10;
      const changed = releaseStatistic(clippedPooledRecords(img2, n, 28, 28, 1, ds, R), lab2, n, d, 10, R, km);
      const dr = l2(base, changed);
      assert.ok(dr <= warmupSensitivity(R, 'replace-one') + 1e-6, `replace-one K=${K}: ‖ΔV‖ = ${dr} > 2R`);
      maxReplace = Math.max(maxReplace, dr);
      // add/remove: record j removed
      const keep = Uint8Array.from({ length: n }, (_, i) => (i === j ? 0 : 1));
      const removed = releaseStatistic(clippedPooledRecords(imgs, n, 28, 28, 1, ds, R), labels, n, d, 10, R, km, keep);
      const da = l2(base, removed);
      assert.ok(da <= warmupSensitivity(R, 'add-remove') + 1e-6, `add-remove K=${K}: ‖ΔV‖ = ${da} > √2R`);
      maxAddRemove = Math.max(maxAddRemove, da);
    }
    // the bounds are tight: a clipped record of norm R in another cell moves it by 2R / √2R
    assert.ok(maxReplace > 0.99 * 2 * R, `replace-one bound not attained (max ${maxReplace})`);
    assert.ok(maxAddRemove > 0.99 * Math.SQRT2 * R, `add/remove bound not attained (max ${maxAddRemove})`);
  }
});

test('plan: σ from the share is data-independent, q < 1 only under add/remove, none costs nothing', () => {
  const h: WarmupHyper = { ...WARMUP_DEFAULTS, warmup: 'class-means' };
  const p = warmupPlan(h, { ...facts, relation: 'add-remove', epsilon: 1 });
  assert.equal(p.releases, 1);
  assert.equal(p.l2Sensitivity, Math.SQRT2 * 5);
  assert.ok(p.epsilon <= 0.1 && p.epsilon > 0.099, `warm-up ε ${p.epsilon}`);
  assert.ok(Math.abs(p.sigma - p.noiseMultiplier * p.l2Sensitivity) < 1e-9);
  const k = warmupPlan({ ...h, warmup: 'kmeans', warmupCentroids: 4, warmupIterations: 2 }, { ...facts, relation: 'replace-one', epsilon: 1 });
  assert.deepEqual(k.cells, [10, 40, 40]);
  assert.equal(k.l2Sensitivity, 10);
  assert.throws(() => warmupPlan({ ...h, warmupSampleRate: 0.1 }, { ...facts, relation: 'replace-one', epsilon: 1 }), /--warmup-sample-rate.*add\/remove/);
  assert.throws(() => warmupPlan({ ...h, warmupShare: 1 }, { ...facts, relation: 'add-remove', epsilon: 1 }), /--warmup-share/);
  const sub = warmupPlan({ ...h, warmupSampleRate: 0.1, warmupCentroids: 5 }, { ...facts, relation: 'add-remove', epsilon: 1 });
  assert.equal(sub.releaseEvent.kind, 'poissonSampled');
  assert.ok(sub.noiseMultiplier < p.noiseMultiplier, 'subsampling amplifies: less noise per release');
  assert.equal(warmupEvent({ ...h, warmup: 'none' }, { ...facts, relation: 'add-remove', epsilon: 1 }).kind, 'noOp');
});

test('ledger: every release is recorded before its noise is drawn; a refused release computes nothing', async () => {
  const data = subset(mnist, 2000);
  const h: WarmupHyper = { ...WARMUP_DEFAULTS, warmup: 'kmeans', warmupCentroids: 3, warmupIterations: 2 };
  const sigma = warmupPlan(h, { ...facts, relation: 'add-remove', epsilon: 1 }).sigma;
  await withLedger(1, 'add-remove', async (ledger, rng) => {
    const log: string[] = [];
    const spyLedger = new Proxy(ledger, { get: (t, k) => (k === 'tryRecord' ? (x: Parameters<PrivacyLedger['tryRecord']>[0]) => (log.push('record'), t.tryRecord(x)) : Reflect.get(t, k, t).bind?.(t) ?? Reflect.get(t, k, t)) });
    const spyRng: RandomSource = { ...rng, kind: rng.kind, nextDouble: () => rng.nextDouble(), nextUint32: () => rng.nextUint32(), uniform: (o) => rng.uniform(o), normal: (o, s) => (s === sigma && log.push('noise'), rng.normal(o, s)) };
    const ctx: GeneratorContext = { data, budget: { epsilon: 1, delta: 1e-5 }, ledger: spyLedger, random: spyRng };
    const c = await releaseCentralImages(ctx, h, { method: 'test-warmup' });
    assert.deepEqual(log, ['record', 'noise', 'record', 'noise', 'record', 'noise']);
    assert.equal(c.releases, 3);
    assert.equal(ledger.entries.length, 3);
    for (const e of ledger.entries) assert.equal((e.meta as { phase: string }).phase, 'warm-up');
    const expected = new RdpAccountant().compose(c.plan.releaseEvent, 3).getEpsilon(1e-5);
    assert.ok(Math.abs(ledger.spent(1e-5) - expected) < 1e-9);
  });
  // a ledger budget smaller than the plan: the first release is refused, no noise, no images
  await withLedger(0.05, 'add-remove', async (ledger, rng) => {
    let noiseCalls = 0;
    const spyRng: RandomSource = { ...rng, kind: rng.kind, nextDouble: () => rng.nextDouble(), nextUint32: () => rng.nextUint32(), uniform: (o) => rng.uniform(o), normal: (o, s) => (noiseCalls++, rng.normal(o, s)) };
    const c = await releaseCentralImages({ data, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: spyRng }, { ...h, warmupShare: 0.5 }, { method: 'test-warmup' });
    assert.equal(c.stoppedBy, 'budget');
    assert.equal(c.count, 0);
    assert.equal(noiseCalls, 0);
    assert.equal(ledger.entries.length, 0);
  });
});

test('calibration: warm-up ∘ T DP-SGD steps spends ≤ ε and close to it; the ledger agrees', async () => {
  const q = 256 / 60000;
  const T = 100;
  for (const eps of [1, 10]) {
    const plan = warmupPlan({ ...WARMUP_DEFAULTS, warmup: 'class-means' }, { ...facts, relation: 'add-remove', epsilon: eps });
    const cal = calibrateWithWarmup({ warmup: plan.event, step: dpsgdStepFamily(q), steps: T, epsilon: eps, delta: 1e-5, relation: 'add-remove' });
    const total = new RdpAccountant().compose(DpEvents.composed([plan.event, DpEvents.selfComposed(dpsgdStepFamily(q)(cal.noise), T)])).getEpsilon(1e-5);
    assert.ok(total <= eps && total >= eps * 0.99, `ε=${eps}: composed ${total}`);
    assert.ok(Math.abs(total - cal.achievedEpsilon) < 1e-9);
    const plain = calibrateNoise({ targetEpsilon: eps, delta: 1e-5, sampleRate: q, steps: T, epsilonTolerance: 2e-3 * eps }).noiseMultiplier;
    assert.ok(cal.noise > plain, 'the warm-up costs DP-SGD some noise');
    assert.ok(cal.noise < plain * 1.1, `a 10 % share costs < 10 % more noise (${cal.noise} vs ${plain})`);
    const none = calibrateWithWarmup({ warmup: DpEvents.noOp(), step: dpsgdStepFamily(q), steps: T, epsilon: eps, delta: 1e-5, relation: 'add-remove' });
    assert.ok(Math.abs(none.noise - plain) / plain < 0.01);
    // the ledger (the budget gate) accepts the warm-up and exactly the planned T steps
    await withLedger(eps, 'add-remove', async (ledger) => {
      assert.ok(ledger.tryRecord({ event: plan.releaseEvent, method: 't', datasetFingerprint: 'x' }).ok);
      const step = dpsgdStepFamily(q)(cal.noise);
      for (let s = 0; s < T; s++) assert.ok(ledger.tryRecord({ event: step, method: 't', datasetFingerprint: 'x' }).ok, `step ${s + 1} refused`);
      assert.ok(Math.abs(ledger.spent(1e-5) - total) < 1e-6);
    });
  }
  assert.throws(() => calibrateWithWarmup({ warmup: DpEvents.gaussian(0.5), step: dpsgdStepFamily(q), steps: T, epsilon: 1, delta: 1e-5, relation: 'add-remove' }), CalibrationError);
});

function nearestCentroidAccuracy(c: CentralImages, data: ImageDataset, tests: number): number {
  const d = 784;
  let right = 0;
  for (let i = 0; i < tests; i++) {
    let best = -1;
    let bd = Infinity;
    for (let j = 0; j < c.count; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += (data.test.images[i * d + t]! / 255 - c.images[j * d + t]!) ** 2;
      if (s < bd) [bd, best] = [s, c.labels[j]!];
    }
    if (best === data.test.labels[i]) right++;
  }
  return right / tests;
}

test('real MNIST: central images at ε = 1 (share 0.1) classify the test set like class means (nearest centroid > 70 %)', async () => {
  for (const h of [
    { ...WARMUP_DEFAULTS, warmup: 'class-means' as const },
    { ...WARMUP_DEFAULTS, warmup: 'kmeans' as const, warmupCentroids: 4, warmupIterations: 1 },
  ]) {
    await withLedger(1, 'add-remove', async (ledger, rng) => {
      const c = await releaseCentralImages({ data: mnist, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: rng }, h, { method: 'test-warmup' });
      assert.equal(c.stoppedBy, 'done');
      assert.ok(ledger.spent(1e-5) <= 1);
      for (const v of c.images) assert.ok(v >= 0 && v <= 1);
      assert.deepEqual(new Set(c.labels), new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
      const acc = nearestCentroidAccuracy(c, mnist, 2000);
      assert.ok(acc > 0.7, `${h.warmup}: nearest-centroid accuracy ${acc}`);
      // warm-up batches: balanced labels, pixels in [0, 1]; JSON round trip keeps the images
      const b = centralImageBatch(c, 40, rng);
      assert.equal(b.images.length, 40 * 784);
      const counts = new Array(10).fill(0);
      for (const l of b.labels) counts[l]++;
      assert.deepEqual(counts, new Array(10).fill(4));
      for (const v of b.images) assert.ok(v >= 0 && v <= 1);
      const back = centralImagesFromJson(JSON.parse(JSON.stringify(centralImagesToJson(c))), c.plan);
      assert.equal(back.count, c.count);
      assert.ok(Math.abs(back.images[300]! - c.images[300]!) < 1e-4);
    });
  }
});

test('warmUp: the generic loop runs the caller step on central batches only, and stops on abort', async () => {
  const central: CentralImages = {
    images: Float32Array.from({ length: 2 * 16 }, (_, i) => (i < 16 ? 0.25 : 0.75)),
    labels: Int32Array.from([0, 1]),
    weights: Float64Array.from([1, 1]),
    count: 2,
    height: 4,
    width: 4,
    channels: 1,
    releases: 1,
    stoppedBy: 'done',
    plan: warmupPlan({ ...WARMUP_DEFAULTS, warmup: 'class-means' }, { ...facts, height: 4, width: 4, numClasses: 2, relation: 'add-remove', epsilon: 1 }),
  };
  const seen: number[] = [];
  const r = await warmUp(central, {
    steps: 25,
    batch: 6,
    rng: seededRandom(1),
    batchOptions: { augment: false, mix: 0 },
    step: (images, labels) => {
      for (let i = 0; i < labels.length; i++) assert.equal(images[i * 16 + 5], labels[i] === 0 ? 0.25 : 0.75);
      seen.push(labels.length);
      return 2;
    },
  });
  assert.deepEqual(r, { steps: 25, loss: 2 });
  assert.equal(seen.length, 25);
  const ac = new AbortController();
  ac.abort();
  assert.equal((await warmUp(central, { steps: 5, batch: 2, rng: seededRandom(1), signal: ac.signal, step: () => 0 })).steps, 0);
});
