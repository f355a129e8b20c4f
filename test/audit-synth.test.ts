/**
 * Generator audits with input canaries + distance to closest synthetic record:
 *  - a "generator" that leaks (releases a random half of its training data verbatim) is flagged
 *    with a large ε lower bound — the generator analogue of the injected-bug test;
 *  - DataLens end to end (small but real: 30 teachers on MNIST + canaries): the bound stays below
 *    the claimed ε.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { distanceToClosestRecord, insertInputCanaries, summarizeAudit } from '../src/audit/index.js';
import { auditSynthesis } from '../src/runs/audit.js';
import { seededRandom } from '../src/privacy/index.js';
import { ensureEngine } from '../src/generate/index.js';

const mnist = loadMnist();

test('a generator that copies training records is flagged (bound ≥ 3 at 95%, m = 1000)', () => {
  const small = { ...mnist, train: { images: mnist.train.images.slice(0, 5000 * 784), labels: mnist.train.labels.slice(0, 5000), count: 5000 } };
  const { data, canaries, included } = insertInputCanaries(small, 1000, seededRandom(5));
  assert.equal(data.train.count, 5000 + included.filter(Boolean).length);
  // leaky "generator": releases half of the original records and every included canary verbatim
  const per = 784;
  const keep: number[] = [];
  for (let i = 0; i < data.train.count; i++) if (i % 2 === 0 || i >= 5000) keep.push(i);
  const images = new Uint8Array(keep.length * per);
  const labels = new Int32Array(keep.length);
  keep.forEach((i, k) => {
    images.set(data.train.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = data.train.labels[i]!;
  });
  const dcr = distanceToClosestRecord(canaries, { images, labels, count: keep.length }, per);
  const r = summarizeAudit(Array.from(dcr, (d) => -d), included, { claimedEpsilon: 1, delta: 1e-5, confidence: 0.95, attack: 'dcr', seconds: 0 });
  assert.ok(r.empiricalEpsilonLowerBound >= 3, `bound ${r.empiricalEpsilonLowerBound}`);
  assert.ok(r.violation);
});

test('DataLens end to end with 200 canaries: the bound does not exceed the claimed ε', async (t) => {
  await ensureEngine();
  const small = { teachers: 30, teacherHidden: 8, batchSize: 15, generatorArch: 'mlp' as const, generatorHidden: [32, 64], pretrainSteps: 2, dStep: 1 };
  const r = await auditSynthesis(
    { method: 'datalens', data: 'mnist', epsilon: 0.35, delta: 1e-5, out: '', seed: 7, hyper: { ...small, topk: 50, sigma: 2000, beta: 0.1 } },
    { dataOverride: mnist, canaries: 200, seed: 8, samples: 2000 },
  );
  t.diagnostic(`DataLens: claimed ε ${r.claimedEpsilon}, bound ${r.empiricalEpsilonLowerBound}, auc ${r.auc.toFixed(3)}, ${r.seconds.toFixed(1)} s`);
  assert.ok(r.claimedEpsilon !== null && r.claimedEpsilon <= 0.35);
  assert.ok(r.empiricalEpsilonLowerBound <= r.claimedEpsilon!);
  assert.equal(r.m, 200);
  assert.equal(r.roc.fpr[0], 0);
});

test('input-canary re-run kept in rerunDir: only its ledger and config stay, never its private diagnostics', async () => {
  const small = { ...mnist, train: { images: mnist.train.images.slice(0, 3000 * 784), labels: mnist.train.labels.slice(0, 3000), count: 3000 } };
  const rerunDir = mkdtempSync(join(tmpdir(), 'dplens-audit-rerun-'));
  try {
    await auditSynthesis({ method: 'class-mean', data: 'mnist', epsilon: 1, delta: 1e-5, out: '' }, { dataOverride: small, canaries: 100, seed: 3, samples: 300, rerunDir });
    assert.ok(existsSync(join(rerunDir, 'ledger.jsonl')), 'the re-run ledger is kept');
    for (const f of ['private-diagnostics.jsonl', 'synthetic.npz', 'generator', 'metrics.jsonl']) assert.ok(!existsSync(join(rerunDir, f)), `${f} must not stay in the re-run folder`);
  } finally {
    rmSync(rerunDir, { recursive: true, force: true });
  }
});
