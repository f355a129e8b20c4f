import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { DataLens, ensureEngine, makeGenerator, resolveHyper } from '../src/generate/index.js';
import { runSynthesis } from '../src/runs/synth.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

/** Small but real: 30 teachers on all of MNIST (m = 2000, B = 15), a 2-layer MLP generator. */
const small = { teachers: 30, teacherHidden: 8, batchSize: 15, queryBatch: 15, generatorArch: 'mlp' as const, generatorHidden: [32, 64], pretrainSteps: 2, dStep: 1 };

test('DataLens end-to-end on real MNIST: stops at the budget; ledger ε = privacy core ε for that many queries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-synth-'));
  try {
    // σ chosen so that only a handful of steps fit the budget: k = 50, σ = 2000 → per query 2kλ/σ².
    const epsilon = 0.35;
    const r = await runSynthesis(
      { method: 'datalens', data: 'mnist', epsilon, delta: 1e-5, out: dir, samples: 500, seed: 7, preset: 'neural-mnist-eps1', hyper: { ...small, topk: 50, sigma: 2000, beta: 0.1 } },
      { dataOverride: mnist },
    );
    assert.equal(r.stoppedBy, 'budget');
    assert.ok(r.generatorSteps >= 2, `only ${r.generatorSteps} steps`);
    assert.ok(r.epsilon <= epsilon);
    const perQuery = DpEvents.topAgg({ k: 50, sigma: 2000, voters: 30 });
    const core = new RdpAccountant().compose(perQuery, 15 * r.generatorSteps).getEpsilon(1e-5);
    assert.ok(Math.abs(core - r.epsilon) < 1e-9, `ledger ε ${r.epsilon} vs core ε ${core}`);
    // One more step would have exceeded the budget: that is why it stopped (and it was not applied).
    const oneMore = new RdpAccountant().compose(perQuery, 15 * (r.generatorSteps + 1)).getEpsilon(1e-5);
    assert.ok(oneMore > epsilon);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.entries.length, r.generatorSteps);
    assert.equal(ledger.header.randomness.kind, 'seeded');
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(metrics.length, r.generatorSteps);
    for (const m of metrics) assert.deepEqual(Object.keys(m).filter((k) => /teacher.*loss|grad/i.test(k)), []); // P9: nothing private logged
    const npz = readNpz(r.syntheticPath);
    assert.deepEqual(npz.images!.shape, [500, 28, 28]);
    assert.equal(npz.images!.dtype, 'uint8');
    assert.deepEqual(npz.labels!.shape, [500]);
    const counts = new Array(10).fill(0);
    for (const l of npz.labels!.data as Uint8Array) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(50)); // uniform (balanced) labels, P8
    assert.ok(existsSync(r.samplesPng));
    assert.ok(existsSync(join(dir, 'generator', 'generator.json')));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.hyper.topk, 50);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a step that would exceed the budget is not applied: generator unchanged, nothing recorded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-budget-'));
  try {
    const rng = seededRandom(3);
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', randomness: rng });
    const hyper = resolveHyper('datalens', 'neural-mnist-eps1', { ...small, topk: 50, sigma: 2000 });
    const perStep = DpEvents.selfComposed(DpEvents.topAgg({ k: 50, sigma: 2000, voters: 30 }), 15);
    // Budget just below one step's cost.
    const epsilon = new RdpAccountant().compose(perStep).getEpsilon(1e-5) * 0.999;
    const gen = makeGenerator('datalens', { data: mnist, budget: { epsilon, delta: 1e-5 }, ledger, random: rng }, hyper, 5, Infinity) as DataLens;
    const before = gen.generator.snapshot().map((p) => Array.from(p.values.subarray(0, 50)));
    const fit = await gen.fit();
    assert.equal(fit.steps, 0);
    assert.equal(fit.stoppedBy, 'budget');
    assert.equal(ledger.entries.length, 0);
    assert.equal(ledger.spent(1e-5), 0);
    assert.deepEqual(gen.generator.snapshot().map((p) => Array.from(p.values.subarray(0, 50))), before);
    gen.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a query batch larger than the teacher batch is charged in full: Q TopAgg queries per generator step', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-qbatch-'));
  try {
    const rng = seededRandom(4);
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', randomness: rng });
    const hyper = resolveHyper('datalens', 'neural-mnist-eps1', { ...small, queryBatch: 40, topk: 784, sigma: 3000, beta: 0 });
    const gen = makeGenerator('datalens', { data: mnist, budget: { epsilon: 50, delta: 1e-5 }, ledger, random: rng }, hyper, 2, Infinity) as DataLens;
    assert.equal(gen.B, 40);
    assert.equal(gen.teacherBatch, 15);
    const fit = await gen.fit();
    assert.equal(fit.steps, 2);
    assert.equal(ledger.entries.length, 2);
    for (const e of ledger.entries) assert.equal((e.event as { count: number }).count, 40);
    const core = new RdpAccountant().compose(DpEvents.topAgg({ k: 784, sigma: 3000, voters: 30 }), 80).getEpsilon(1e-5);
    assert.ok(Math.abs(core - fit.epsilon) < 1e-9, `ledger ε ${fit.epsilon} vs core ε ${core}`);
    const s = await gen.sample(40);
    assert.equal(s.count, 40);
    gen.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('G-PATE end-to-end: threshold charged for every coordinate, GNMax for answered ones, ε ≤ target', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gpate-'));
  try {
    const epsilon = 1.5;
    const r = await runSynthesis(
      { method: 'gpate', data: 'mnist', epsilon, delta: 1e-5, out: dir, samples: 100, seed: 5, maxSteps: 3, preset: 'paper-mnist-eps1', hyper: { ...small, sigma1: 300, sigma2: 200, thresh: 0.3 } },
      { dataOverride: mnist },
    );
    assert.ok(r.epsilon <= epsilon);
    assert.ok(r.generatorSteps >= 1);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    const thresholds = ledger.entries.filter((e) => e.meta?.part === 'threshold');
    const answered = ledger.entries.filter((e) => e.meta?.part === 'gnmax');
    assert.equal(thresholds.length, r.generatorSteps);
    for (const e of thresholds) assert.equal((e.event as { count: number }).count, 15 * 10);
    // Replaying the ledger's events through the core accountant gives the reported ε.
    const acc = new RdpAccountant();
    for (const e of ledger.entries) acc.compose(e.event);
    assert.ok(Math.abs(acc.getEpsilon(1e-5) - r.epsilon) < 1e-12);
    assert.ok(answered.length <= r.generatorSteps);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad configurations fail with clear messages', async () => {
  await assert.rejects(runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 0, delta: 1e-5, out: '/tmp/never' }, { dataOverride: mnist }), /epsilon must be/);
  await assert.rejects(runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 1, delta: 2, out: '/tmp/never' }, { dataOverride: mnist }), /delta must be/);
  await assert.rejects(runSynthesis({ method: 'nope' as 'gpate', data: 'mnist', epsilon: 1, delta: 1e-5, out: '/tmp/never' }, { dataOverride: mnist }), /unknown method/);
  await assert.rejects(runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 1, delta: 1e-5, out: '/tmp/never', preset: 'cifar' }, { dataOverride: mnist }), /unknown preset/);
});
