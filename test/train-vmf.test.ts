/**
 * `vmf` privatizer (DirDP-SGD, src/train/privatizers/vmf.ts): statistics of the VMF perturbation
 * (mean resultant length A_d(κ), its variance A'_d(κ), the uniform orthogonal part, the output
 * norm), the release depends on an example only through its direction, a tiny real-MNIST run
 * through the runner (metric-DP guarantee, replace-one ledger), flag checks, and κ = ∞ (no noise)
 * caught by the one-run DP-SGD audit.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrivacyLedger, seededRandom, vmfMeanResultantLength } from '../src/privacy/index.js';
import { ensureEngine, VmfPrivatizer } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { auditTraining } from '../src/runs/audit.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-vmf-'));
process.env.DPLENS_OWNER_KEY_FILE = join(dir, 'owner.key');
before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND });
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

function unit(d: number, seed: number): Float32Array {
  const g = new Float32Array(d);
  seededRandom(seed).normal(g, 1);
  let n = 0;
  for (const v of g) n += v * v;
  n = Math.sqrt(n);
  return g.map((v) => v / n);
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

test('VMF perturbation: mean resultant length A_d(κ), its variance A′_d(κ), uniform orthogonal part, norm C', () => {
  const d = 200;
  const n = 3000;
  const C = 1.5;
  const u = unit(d, 1);
  // e ⟂ u, unit
  const e0 = unit(d, 2);
  const p = dot(e0, u);
  const e = e0.map((v, i) => v - p * u[i]!);
  const en = Math.sqrt(dot(e, e));
  e.forEach((v, i) => (e[i] = v / en));
  for (const kappa of [5, 100, 2000]) {
    const priv = new VmfPrivatizer(kappa, C, d);
    const rng = seededRandom(10 + kappa);
    const g = u.map((v) => 3.7 * v); // norm irrelevant
    let sw = 0;
    let sww = 0;
    let so = 0;
    let soo = 0;
    for (let t = 0; t < n; t++) {
      const z = priv.privatizeExample(g, rng);
      const norm = Math.sqrt(dot(z, z));
      assert.ok(Math.abs(norm - C) < 1e-4 * C, `norm ${norm}`);
      const w = dot(z, u) / C;
      const o = dot(z, e) / C;
      sw += w;
      sww += w * w;
      so += o;
      soo += o * o;
    }
    const A = vmfMeanResultantLength(d, kappa);
    const varW = 1 - A * A - ((d - 1) / kappa) * A; // A′_d(κ) (Mardia & Jupp 2000, §9.3)
    const mean = sw / n;
    const v = sww / n - mean * mean;
    assert.ok(Math.abs(mean - A) < 5 * Math.sqrt(varW / n), `κ ${kappa}: mean ⟨z,u⟩ ${mean} vs A ${A}`);
    // variance within ±15 % (n = 3000: the sample variance's relative sd is ≈ √(2/n) ≈ 2.6 % for near-Gaussian w)
    assert.ok(Math.abs(v / varW - 1) < 0.15, `κ ${kappa}: var ${v} vs ${varW}`);
    // orthogonal part: mean 0, second moment (1 − E w²)/(d − 1)
    const m2 = (1 - sww / n) / (d - 1);
    assert.ok(Math.abs(so / n) < 5 * Math.sqrt(m2 / n), `κ ${kappa}: orthogonal mean ${so / n}`);
    assert.ok(Math.abs(soo / n / m2 - 1) < 0.15, `κ ${kappa}: orthogonal second moment ${soo / n} vs ${m2}`);
  }
});

test('the release depends on an example only through its direction; κ = ∞ releases C·u exactly', () => {
  const d = 50;
  const u = unit(d, 3);
  const priv = new VmfPrivatizer(40, 2, d);
  const a = priv.privatizeExample(u.map((v) => 0.01 * v), seededRandom(5));
  const b = priv.privatizeExample(u.map((v) => 1e4 * v), seededRandom(5));
  for (let i = 0; i < d; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5, `coordinate ${i}`);
  const inf = new VmfPrivatizer(Infinity, 2, d);
  const z = inf.privatizeExample(u, seededRandom(1));
  for (let i = 0; i < d; i++) assert.ok(Math.abs(z[i]! - 2 * u[i]!) < 1e-6);
  assert.equal(inf.stepEvent().kind, 'nonPrivate');
  assert.deepEqual(priv.stepEvent(), { kind: 'metricDp', epsilon: 40, metric: 'angular', mechanism: 'vmf' });
  // the metric-DP bound of one release: log f(z|u)/f(z|u') = κ⟨z, u − u'⟩ ≤ κ‖u − u'‖ ≤ κ·angle(u, u')
  const u2 = unit(d, 4);
  const angle = Math.acos(Math.max(-1, Math.min(1, dot(u, u2))));
  const rng = seededRandom(9);
  for (let t = 0; t < 200; t++) {
    const s = priv.privatizeExample(u, rng).map((v) => v / 2);
    assert.ok(40 * (dot(s, u) - dot(s, u2)) <= 40 * angle + 1e-9);
  }
});

const mnist = loadMnist();
function subset(n: number, offset = 0): ImageDataset {
  return {
    ...mnist,
    train: { images: mnist.train.images.slice(offset * 784, (offset + n) * 784), labels: mnist.train.labels.slice(offset, offset + n), count: n },
    test: { images: mnist.test.images.slice(0, 200 * 784), labels: mnist.test.labels.slice(0, 200), count: 200 },
    rawFingerprint: `mnist-subset-${offset}-${n}`,
  };
}

test('tiny MNIST run: metric-DP guarantee T·κ, ε null (no (ε, δ) stated), replace-one ledger; --vmf-epsilon sets κ = ε/T', async () => {
  const out = join(dir, 'run');
  const r = await runTraining({ data: 'mnist', model: 'cnn', batch: 120, epochs: 1, clip: 1.5, lr: 0.25, privatizer: 'vmf', privatizerOptions: { 'vmf-kappa': 3000 }, out, seed: 3 }, { dataOverride: subset(480), log: () => {} });
  assert.equal(r.steps, 4);
  assert.equal(r.epsilon, null);
  assert.equal(r.nonPrivate, false);
  assert.deepEqual(r.guarantee, { kind: 'metricDP', epsilon: 4 * 3000, metric: 'angular' });
  assert.equal(r.relation, 'replace-one');
  const l = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.equal(l.relation, 'replace-one');
  assert.deepEqual(l.metricSpent(), { epsilon: 12000, metric: 'angular' });
  assert.equal(l.entries[0]!.event.kind, 'selfComposed');
  assert.ok(readFileSync(join(out, 'ledger.jsonl'), 'utf8').includes('"kind":"metricDp"'));
  const r2 = await runTraining({ data: 'mnist', model: 'cnn', batch: 120, epochs: 1, privatizer: 'vmf', privatizerOptions: { 'vmf-epsilon': 1000 }, seed: 4 }, { dataOverride: subset(480), log: () => {} });
  assert.deepEqual(r2.guarantee, { kind: 'metricDP', epsilon: 1000, metric: 'angular' });
  // the Gaussian path states (ε, δ)
  const g = await runTraining({ data: 'mnist', model: 'cnn', batch: 120, epochs: 1, noise: 2, seed: 5 }, { dataOverride: subset(480), log: () => {} });
  assert.equal(g.guarantee.kind, 'approxDP');
  assert.equal(g.guarantee.kind === 'approxDP' && g.guarantee.epsilon, g.epsilon);
});

test('flag checks: --noise / --target-epsilon, both or neither κ flag, --clipping are refused for vmf', async () => {
  const cfg = { data: 'mnist', model: 'cnn' as const, batch: 120, epochs: 1, privatizer: 'vmf' };
  const run = (c: Record<string, unknown>) => runTraining({ ...cfg, ...c }, { dataOverride: subset(480), log: () => {} });
  await assert.rejects(run({ noise: 1, privatizerOptions: { 'vmf-kappa': 10 } }), /do not apply to --privatizer vmf/);
  await assert.rejects(run({ targetEpsilon: 1, privatizerOptions: { 'vmf-kappa': 10 } }), /do not apply to --privatizer vmf/);
  await assert.rejects(run({ privatizerOptions: { 'vmf-kappa': 10, 'vmf-epsilon': 5 } }), /exactly one of --vmf-kappa or --vmf-epsilon/);
  await assert.rejects(run({ privatizerOptions: {} }), /exactly one of --vmf-kappa or --vmf-epsilon/);
  await assert.rejects(run({ clipping: 'per-layer', privatizerOptions: { 'vmf-kappa': 10 } }), /--clipping does not apply to --privatizer vmf/);
  await assert.rejects(runTraining({ data: 'mnist', model: 'cnn', batch: 120, epochs: 1, noise: 1, privatizerOptions: { 'vmf-kappa': 10 } }, { dataOverride: subset(480), log: () => {} }), /--vmf-kappa does not apply to --privatizer gaussian/);
});

test('κ = ∞ (no noise) is caught by the one-run DP-SGD audit (canaries perturbed like examples)', async (t) => {
  const base = { model: 'cnn' as const, batch: 240, clip: 1.5, lr: 0.25, delta: 1e-5, privatizer: 'vmf' };
  const r = await auditTraining({ ...base, epochs: 25, privatizerOptions: { 'vmf-kappa': Infinity }, seed: 11 }, { dataOverride: subset(480), canaries: 1000, seed: 12 });
  t.diagnostic(`vmf κ=∞: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
  assert.equal(r.claimedEpsilon, null);
  assert.ok(r.empiricalEpsilonLowerBound >= 4, `bound ${r.empiricalEpsilonLowerBound}`);
});

test('long: a noisy VMF run (κ = 2000 per step on S^{26009}, A ≈ 0.077) leaks less to the same audit', { skip: process.env.DPLENS_LONG !== '1' }, async (t) => {
  const base = { model: 'cnn' as const, batch: 240, clip: 1.5, lr: 0.25, delta: 1e-5, privatizer: 'vmf' };
  const n = await auditTraining({ ...base, epochs: 25, privatizerOptions: { 'vmf-kappa': 2000 }, seed: 13 }, { dataOverride: subset(480, 480), canaries: 1000, seed: 14 });
  t.diagnostic(`vmf κ=2000: bound ${n.empiricalEpsilonLowerBound.toFixed(3)}, auc ${n.auc.toFixed(4)}, ${n.seconds.toFixed(1)} s`);
  assert.ok(n.empiricalEpsilonLowerBound < 4);
});
