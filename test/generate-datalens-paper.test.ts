/**
 * DataLens as published (paper-* presets, trained MLP teachers, TopAgg k = 200 / β = 0.7 /
 * b = 1e-5): the faithful path learns class-specific images on real MNIST (issue 15 item 6).
 *
 * Scale model: 100 teachers on 1,500 MNIST records keep the published shard size (m = 15, B = 15)
 * and σ = 5000 · 100/4000 = 125 keeps the published per-coordinate vote-sum signal-to-noise of
 * 4,000 teachers at σ = 5000 (the vote sum grows with N). The ε of this small run is large
 * (that is the price of the small N); what is tested is that the mechanism carries class signal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, RdpAccountant } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { ensureEngine, resolveHyper } from '../src/generate/index.js';
import { TeacherEnsemble } from '../src/generate/teachers.js';
import { assignShards } from '../src/generate/shards.js';
import { runSynthesis } from '../src/runs/synth.js';

test('paper presets: the published TopAgg settings with SGD MLP teachers and label gain 10', () => {
  for (const p of ['paper-mnist-eps1', 'paper-fashion-mnist-eps1', 'paper-mnist-eps10', 'paper-fashion-mnist-eps10']) {
    const h = resolveHyper('datalens', p, {});
    assert.equal(h.teacherKind, 'neural');
    assert.equal(h.teacherOptimizer, 'sgd');
    assert.equal(h.teachers, 4000);
    assert.equal(h.clip, 1e-5);
    assert.equal(h.stochastic, true);
    assert.equal(h.generatorLabelGain, 10);
  }
  // The kernel-teacher defaults are untouched.
  assert.equal(resolveHyper('datalens', 'mnist-eps1', {}).teacherKind, 'kernel');
});

test('teacher initSlots: teachers i and i+slots start from the same (public) init, and train apart', async () => {
  await ensureEngine();
  const full = loadMnist();
  const d = 784;
  const n = 60;
  const data: ImageDataset = { ...full, train: { images: full.train.images.subarray(0, n * d), labels: full.train.labels.subarray(0, n), count: n } };
  const N = 4;
  const ens = new TeacherEnsemble({ numTeachers: N, hidden: 4, perClassHead: true, classLinear: true, lr: 0.1, optimizer: 'sgd', beta1: 0.5, initStd: 0.02, batchSize: 15, initSlots: 2 }, data, assignShards(n, N), 5);
  const x = new Float32Array(2 * d).fill(0.3);
  const y = Int32Array.from([3, 7]);
  const g0 = ens.imageGradients(x, y);
  const per = 2 * d;
  const same = (a: number, b: number) => g0.subarray(a * per, (a + 1) * per).every((v, t) => v === g0[b * per + t]);
  assert.ok(same(0, 2) && same(1, 3), 'teachers 0/2 and 1/3 share an init');
  assert.ok(!same(0, 1), 'teachers 0 and 1 have different inits');
  // One training step on their own (different) shards separates teachers that shared an init.
  const fakes = ens.fakeBatch(0, new Float32Array(10 * 15 * d).fill(0.5));
  ens.trainStep(0, fakes);
  const g1 = ens.imageGradients(x, y);
  assert.ok(!g1.subarray(0, per).every((v, t) => v === g1[2 * per + t]), 'training is per teacher');
  ens.dispose();
});

test('DataLens paper-mnist-eps1 (scaled to 100 teachers, same SNR) learns class-specific samples on real MNIST', async (t) => {
  await ensureEngine();
  const full = loadMnist();
  const d = 784;
  const n = 1500;
  const data: ImageDataset = { ...full, train: { images: full.train.images.subarray(0, n * d), labels: full.train.labels.subarray(0, n), count: n } };
  const dir = mkdtempSync(join(tmpdir(), 'dplens-datalens-paper-'));
  try {
    const sigma = 125;
    const steps = 40;
    const r = await runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 100, delta: 1e-5, out: dir, samples: 500, seed: 3, maxSteps: steps, preset: 'paper-mnist-eps1', hyper: { teachers: 100, sigma } }, { dataOverride: data });
    assert.equal(r.generatorSteps, steps);
    // B = 15 TopAgg queries per step, each 2kλ/σ² (k = 200): the ledger is the privacy core's.
    const core = new RdpAccountant().compose(DpEvents.topAgg({ k: 200, sigma, voters: 100 }), 15 * steps).getEpsilon(1e-5);
    assert.ok(Math.abs(core - r.epsilon) < 1e-9, `ledger ε ${r.epsilon} vs core ε ${core}`);
    // Class signal: a sample is nearest to its own label's real class mean (chance: 0.1).
    const means = new Float64Array(10 * d);
    const cnt = new Float64Array(10);
    for (let i = 0; i < n; i++) {
      const c = data.train.labels[i]!;
      cnt[c]!++;
      for (let t = 0; t < d; t++) means[c * d + t]! += data.train.images[i * d + t]!;
    }
    for (let c = 0; c < 10; c++) for (let t = 0; t < d; t++) means[c * d + t]! /= cnt[c]!;
    const npz = readNpz(r.syntheticPath);
    const img = npz.images!.data as Uint8Array;
    const lab = npz.labels!.data as Uint8Array;
    let hits = 0;
    for (let s = 0; s < 500; s++) {
      let best = -1;
      let bd = Infinity;
      for (let c = 0; c < 10; c++) {
        let dist = 0;
        for (let t = 0; t < d; t++) dist += (img[s * d + t]! - means[c * d + t]!) ** 2;
        if (dist < bd) [bd, best] = [dist, c];
      }
      if (best === lab[s]) hits++;
    }
    t.diagnostic(`${hits}/500 samples nearest to their own class mean`);
    assert.ok(hits / 500 > 0.25, `only ${hits}/500 samples are nearest to their own class mean`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
