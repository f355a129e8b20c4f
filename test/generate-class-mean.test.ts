/**
 * The generator plugin seam: the registry drives `dplens synth` (choices, flags, validation), and
 * the class-mean plugin (one file + one registry line) honours the synth contract.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, PrivacyLedger, RdpAccountant } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { classMeanNoiseMultiplier, ensureEngine, findGenerator, generatorNames, GENERATORS } from '../src/generate/index.js';
import { runSynthesis } from '../src/runs/synth.js';
import { dplensInProcess, spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const dplensSpawned = spawnedDplens(300_000);

test('registry: every plugin is complete (presets resolve, flags typed, relation stated)', () => {
  assert.deepEqual(generatorNames().slice(0, 3), ['datalens', 'gpate', 'class-mean']);
  for (const p of GENERATORS) {
    // Voting and release-once generators prove replace-one; DP-SGD-based ones (psg, dp-sinkhorn) add/remove.
    assert.ok(p.relation === 'replace-one' || p.relation === 'add-remove', `${p.name}: relation ${String(p.relation)}`);
    assert.ok(p.treatedAsPublic.length > 0);
    assert.ok(Object.keys(p.presets).length > 0);
    for (const eps of [1, 10]) assert.ok(p.presets[p.defaultPreset('mnist', eps)], `${p.name}: default preset for ε=${eps}`);
    for (const h of p.hyperParameters) assert.ok(h.key in (p.defaults as object) || h.type === 'choice' || h.type === 'boolean' || h.key === 'queryBatch' || h.key === 'kernelBandwidth' || h.key === 'smoothDirection' || h.key === 'generatorLabelGain', `${p.name}: --${h.flag} sets unknown key ${h.key}`);
  }
});

test('class-mean: T + 1 Gaussian releases with sensitivity 2R, calibrated to ε, recorded under replace-one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-cm-'));
  try {
    const r = await runSynthesis({ method: 'class-mean', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 200, seed: 1, hyper: { centroids: 3, iterations: 2, clip: 9 } }, { dataOverride: mnist });
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'replace-one');
    assert.equal(ledger.entries.length, 3);
    const z = classMeanNoiseMultiplier(3, 1, 1e-5);
    for (const e of ledger.entries) {
      assert.equal(e.event.kind, 'gaussian');
      assert.equal((e.event as { l2Sensitivity: number }).l2Sensitivity, 18);
      assert.ok(Math.abs((e.event as { noiseMultiplier: number }).noiseMultiplier - z) < 1e-9);
    }
    const core = new RdpAccountant().compose(DpEvents.gaussian(z), 3).getEpsilon(1e-5);
    assert.ok(core <= 1 && core > 0.99, `core ε ${core}`);
    assert.ok(Math.abs(r.epsilon - core) < 1e-9);
    const npz = readNpz(r.syntheticPath);
    assert.deepEqual(npz.images!.shape, [200, 28, 28]);
    const counts = new Array(10).fill(0);
    for (const l of npz.labels!.data as Uint8Array) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(20));
    // Samples of a class look like that class: nearest real class mean (a coarse utility check).
    const d = 784;
    const means = Array.from({ length: 10 }, () => new Float64Array(d));
    const n = new Array(10).fill(0);
    for (let i = 0; i < 10000; i++) {
      const c = mnist.train.labels[i]!;
      n[c]++;
      for (let t = 0; t < d; t++) means[c]![t]! += mnist.train.images[i * d + t]! / 255;
    }
    means.forEach((m, c) => m.forEach((_, t) => (m[t]! /= n[c])));
    let right = 0;
    const img = npz.images!.data as Uint8Array;
    const lab = npz.labels!.data as Uint8Array;
    for (let s = 0; s < 200; s++) {
      let best = -1;
      let bd = Infinity;
      for (let c = 0; c < 10; c++) {
        let dist = 0;
        for (let t = 0; t < d; t++) dist += (img[s * d + t]! / 255 - means[c]![t]!) ** 2;
        if (dist < bd) [bd, best] = [dist, c];
      }
      if (best === lab[s]) right++;
    }
    assert.ok(right >= 120, `only ${right}/200 samples nearest their own class mean`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dplens synth: method choices and flags come from the registry; a flag of another method is an error naming it', async () => {
  const help = dplensSpawned('synth', '--help');
  assert.match(help.stdout, /class-mean/);
  assert.match(help.stdout, /--centroids/);
  const cases: [string[], RegExp][] = [
    [['--method', 'datalens', '--sigma1', '5'], /--sigma1 does not apply to method datalens \(it is a gpate flag\)/],
    [['--method', 'gpate', '--topk', '5'], /--topk does not apply to method gpate/],
    [['--method', 'class-mean', '--teachers', '5'], /--teachers does not apply to method class-mean/],
    [['--method', 'class-mean', '--steps', '5'], /--steps does not apply to method class-mean/],
    [['--method', 'datalens', '--centroids', '5'], /--centroids does not apply to method datalens/],
    [['--method', 'nope'], /--method must be one of datalens\|gpate\|class-mean/],
    [['--method', 'class-mean', '--preset', 'paper-mnist-eps1'], /--preset must be one of/],
  ];
  for (const [flags, re] of cases) {
    const r = await dplensInProcess('synth', '--data', 'mnist', '--epsilon', '1', '--out', '/tmp/dplens-never', ...flags);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
  }
});

test('dplens synth --method class-mean --json: the synth contract (same keys as datalens, relation); dplens eval scores it', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-cm-cli-')), 'run');
  try {
    const r = dplensSpawned('synth', '--method', 'class-mean', '--data', 'mnist', '--epsilon', '1', '--delta', '1e-5', '--samples', '300', '--out', dir, '--seed', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out).sort(), ['delta', 'engine', 'epsilon', 'generatorSteps', 'ledgerPath', 'method', 'preset', 'relation', 'reportPath', 'samples', 'samplesPng', 'seconds', 'stoppedBy', 'syntheticPath', 'targetEpsilon', 'teachers'].sort());
    assert.equal(out.relation, 'replace-one');
    assert.ok(out.epsilon <= 1);
    assert.ok(findGenerator('class-mean'));
    const man = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.equal(man.method, 'class-mean');
    const ev = dplensSpawned('eval', '--synthetic', out.syntheticPath, '--data', 'mnist', '--epochs', '1', '--json');
    assert.equal(ev.code, 0, ev.stderr);
    assert.ok(JSON.parse(ev.stdout).testAccuracy > 0.2);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
