/**
 * Issue 12 findings in synthesis (each fails on the original code): relation, keyed fingerprint,
 * private timings, seeded resume, G-PATE worst-case charge, TopAgg with non-finite gradients,
 * public-fact path choice, and the silent results (tiny ε, wrong data on resume, changed ε on
 * resume, killed run resume, flags of other methods, the ledger as the only gate).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrivacyLedger, seededRandom } from '../src/privacy/index.js';
import { keyedFingerprint } from '../src/privacy/owner-key.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { addTeacherVotes, assignShards, ensureEngine, KernelTeacherEnsemble, makeGenerator, resolveHyper } from '../src/generate/index.js';
import { runSynthesis } from '../src/runs/synth.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const small = { teachers: 30, teacherHidden: 8, batchSize: 15, queryBatch: 15, generatorArch: 'mlp' as const, generatorHidden: [32, 64], pretrainSteps: 1, dStep: 1 };
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `dplens-i12-${p}-`));
const readLines = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

test('#1 #2 #3: replace-one ledger and manifest, only the keyed fingerprint, timings only in private-diagnostics.jsonl', async () => {
  const dir = tmp('rel');
  try {
    const r = await runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 5, delta: 1e-5, out: dir, samples: 20, seed: 1, maxSteps: 2, preset: 'neural-mnist-eps1', hyper: { ...small, topk: 50, sigma: 2000 } }, { dataOverride: mnist });
    assert.equal(r.relation, 'replace-one');
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'replace-one');
    const man = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.equal(man.privacy.relation, 'replace-one');
    assert.ok(man.privacy.treatedAsPublic.some((s: string) => /number of training records/.test(s)));
    assert.ok(man.privacy.treatedAsPublic.some((s: string) => /teachers/.test(s)));
    // #2: the plain SHA-256 appears in no released file; the keyed one does.
    const keyed = keyedFingerprint(mnist.rawFingerprint);
    for (const f of ['config.json', 'run.json', 'ledger.jsonl', 'metrics.jsonl']) assert.ok(!readFileSync(join(dir, f), 'utf8').includes(mnist.rawFingerprint), `${f} holds the plain fingerprint`);
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).datasetFingerprint, keyed);
    for (const e of ledger.entries) assert.equal(e.datasetFingerprint, keyed);
    // #3: no timing in metrics.jsonl; they are in private-diagnostics.jsonl, listed as private.
    for (const m of readLines(join(dir, 'metrics.jsonl'))) assert.deepEqual(Object.keys(m).filter((k) => /Ms$|seconds/.test(k)), []);
    assert.ok(readLines(join(dir, 'private-diagnostics.jsonl')).every((m) => typeof m.voteMs === 'number'));
    assert.equal(man.artifacts.find((a: { path: string }) => a.path === 'private-diagnostics.jsonl')?.status, 'private');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('#8: a seeded resume draws a fresh noise stream; a secure run resumed with a seed is refused', async () => {
  const dir = tmp('seed');
  const dir2 = tmp('secure');
  try {
    const cfg = { method: 'datalens', data: 'mnist', epsilon: 5, delta: 1e-5, out: dir, samples: 20, seed: 9, preset: 'neural-mnist-eps1', hyper: { ...small, topk: 50, sigma: 2000 } };
    await runSynthesis({ ...cfg, maxSteps: 1 }, { dataOverride: mnist });
    await runSynthesis({ ...cfg, maxSteps: 2, resume: true }, { dataOverride: mnist });
    const first = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const again = JSON.parse(readFileSync(join(dir, 'config.resume-1.json'), 'utf8'));
    assert.equal(first.noiseSeed, 9);
    assert.notEqual(again.noiseSeed, 9, 'the resumed attempt replays the original noise stream');
    assert.equal(again.resumedFromStep, 1);
    const sec = { ...cfg, out: dir2, seed: undefined };
    await runSynthesis({ ...sec, maxSteps: 1 }, { dataOverride: mnist });
    await assert.rejects(runSynthesis({ ...sec, seed: 3, maxSteps: 2, resume: true }, { dataOverride: mnist }), /secure randomness.*--seed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('#9: neural G-PATE charges GNMax for every coordinate by default; the answered-only charge is opt-in and labelled', async () => {
  for (const charge of ['worst-case', 'answered-data-dependent'] as const) {
    const dir = tmp('gp');
    try {
      const r = await runSynthesis(
        { method: 'gpate', data: 'mnist', epsilon: 50, delta: 1e-5, out: dir, samples: 20, seed: 5, maxSteps: 2, preset: 'paper-mnist-eps1', hyper: { ...small, sigma1: 300, sigma2: 200, thresh: 0.9, gpateCharge: charge } },
        { dataOverride: mnist },
      );
      const gn = PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.filter((e) => e.meta?.part === 'gnmax');
      if (charge === 'worst-case') {
        assert.equal(gn.length, r.generatorSteps);
        for (const e of gn) {
          assert.equal((e.event as { count: number }).count, 15 * 10);
          assert.match(String(e.meta?.accounting), /data-independent/);
        }
      } else {
        for (const e of gn) assert.match(String(e.meta?.accounting), /data-dependent/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('#10: TopAgg with k < d and NaN gradients casts exactly k votes and reuses no stale picks', () => {
  const d = 20;
  const k = 6;
  const p = { k, clip: 0, stochastic: false };
  const scratch = new Float32Array(d);
  const picked = new Int32Array(k);
  const u = new Float64Array(k);
  // A previous teacher picked coordinates 0..5 (all positive).
  const prev = new Float32Array(d).map((_, t) => (t < k ? 10 : 0.1));
  addTeacherVotes(prev, p, u, 0, new Int32Array(d), 0, scratch, picked);
  const row = new Float32Array(d).map((_, t) => (t % 2 ? Number.NaN : -(t + 1)));
  const acc = new Int32Array(d);
  addTeacherVotes(row, p, u, 0, acc, 0, scratch, picked);
  let sq = 0;
  for (const v of acc) sq += v * v;
  assert.ok(sq <= k, `‖v‖² = ${sq} > k = ${k}`);
  // The picks are the k largest |g| among the finite coordinates (the even ones), all negative.
  for (let t = 0; t < d; t++) if (acc[t] !== 0) assert.ok(t % 2 === 0 && acc[t] === -1, `vote on coordinate ${t}`);
  assert.equal(sq, k);
});

test('#10: kernel G-PATE chooses the batched path from public facts (m = 1) only', async () => {
  // 20 records, 10 teachers: m = 2; shards hold records of different classes, so every voter of
  // every class holds one record of it — a data-dependent fact that must not pick the path.
  const n = 20;
  const d = 16;
  const images = new Uint8Array(n * d).map((_, i) => (i * 37) % 256);
  const labels = new Int32Array(n).map((_, i) => i % 10);
  const data = { kind: 'image', name: 'toy', height: 4, width: 4, channels: 1, numClasses: 10, train: { images, labels, count: n }, test: { images, labels, count: n }, rawFingerprint: 'x', source: 'test' } as unknown as ImageDataset;
  const shards = assignShards(n, 10);
  const ens = new KernelTeacherEnsemble({ numTeachers: 10, bandwidth: Infinity }, data, shards);
  let batchedCalls = 0;
  const proto = Object.getPrototypeOf(ens) as { classHistograms: (...a: unknown[]) => void };
  const orig = proto.classHistograms;
  (ens as unknown as { classHistograms: (...a: unknown[]) => void }).classHistograms = function (this: unknown, ...a: unknown[]) {
    batchedCalls++;
    return orig.apply(this, a);
  };
  const B = 10;
  const x = new Float32Array(B * d).fill(0.5);
  const y = new Int32Array(B).map((_, i) => i % 10);
  const proj = new Float32Array(B * d * 2).fill(0.1);
  ens.projectedHistograms(x, y, proj, 2, 4, 1);
  assert.equal(batchedCalls, 0);
  ens.dispose();
});

test('silent results: ε too small for one step is an error naming the smallest ε; other data or another ε on resume are refused', async () => {
  const dir = tmp('silent');
  try {
    const base = { method: 'datalens', data: 'mnist', delta: 1e-5, out: dir, samples: 20, seed: 2, preset: 'neural-mnist-eps1', hyper: { ...small, topk: 50, sigma: 2000 } };
    await assert.rejects(runSynthesis({ ...base, epsilon: 0.05 }, { dataOverride: mnist }), /too small for even one datalens step.*use --epsilon ≥ \d/);
    // Nothing was spent, so the same folder can be used again.
    await runSynthesis({ ...base, epsilon: 5, maxSteps: 1 }, { dataOverride: mnist });
    const other = { ...mnist, name: 'fashion-mnist', rawFingerprint: 'f'.repeat(64) };
    await assert.rejects(runSynthesis({ ...base, epsilon: 5, maxSteps: 2, resume: true, data: 'fashion-mnist' }, { dataOverride: other }), /was run on mnist.*not on fashion-mnist/);
    await assert.rejects(runSynthesis({ ...base, epsilon: 0.5, maxSteps: 2, resume: true }, { dataOverride: mnist }), /budget is \(ε=5.*keeps it/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('silent results: a killed synth resumes from its last checkpoint and keeps every charge', async () => {
  const dir = tmp('kill');
  try {
    const cfg = { method: 'datalens', data: 'mnist', epsilon: 50, delta: 1e-5, out: dir, samples: 20, seed: 4, checkpointEvery: 2, preset: 'neural-mnist-eps1', hyper: { ...small, topk: 50, sigma: 2000 } };
    // A crash at step 3 (after its release was charged, before the next checkpoint).
    await assert.rejects(
      runSynthesis({ ...cfg, maxSteps: 10 }, {
        dataOverride: mnist,
        onStep: (p) => {
          if (p.step === 3) throw new Error('killed');
        },
      }),
      /killed/,
    );
    const charged = PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length;
    assert.equal(charged, 3);
    assert.ok(existsSync(join(dir, 'generator', 'generator.json')));
    const logs: string[] = [];
    const r = await runSynthesis({ ...cfg, maxSteps: 4, resume: true }, { dataOverride: mnist, onLog: (l) => logs.push(l) });
    assert.ok(logs.some((l) => /resuming from step 2/.test(l)), logs.join('\n'));
    assert.equal(r.generatorSteps, 4);
    assert.equal(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length, charged + 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the voting loop stops on the ledger\'s answer (tryRecord), not on a budget of its own', async () => {
  const dir = tmp('gate');
  try {
    const rng = seededRandom(3);
    const hyper = resolveHyper('datalens', 'neural-mnist-eps1', { ...small, topk: 50, sigma: 2000 });
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'replace-one', randomness: rng, budget: { epsilon: 0.35, delta: 1e-5 } });
    // The generator is told a much larger budget: the ledger's must win, without an exception.
    const gen = makeGenerator('datalens', { data: mnist, budget: { epsilon: 100, delta: 1e-5 }, ledger, random: rng }, hyper, 50, Infinity);
    const fit = await gen.fit();
    assert.equal(fit.stoppedBy, 'budget');
    assert.ok(fit.epsilon <= 0.35);
    assert.ok(fit.steps >= 1);
    gen.dispose();
    ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
