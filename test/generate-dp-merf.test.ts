/**
 * dp-merf (and the mean-embedding machinery dp-kernel shares):
 *  - sensitivity: replacing one record (its image and its class) moves the pre-noise statistic by
 *    ≤ Δ₂ = √2 (mean-embedding.ts), and the bound is attained up to a few % (cross-class changes);
 *  - the release: exactly one ledger entry, a Gaussian with Δ = √2 and σ = z·√2 calibrated to ε;
 *  - the audit replay: σ = 0 gives a bound ≥ 4 with 1,000 canaries, the honest σ stays ≤ the claim,
 *    and a release adding 1/50 of the charged noise is caught;
 *  - end to end on real MNIST (2,000 records, tiny map): the CLI contract's files, and a
 *    `--non-private` (σ = 0) run folder flagged by auditRun without spending ε.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { mechanismAuditStrategy, replayGaussianRelease, summarizeAudit } from '../src/audit/index.js';
import { dpKernelPlugin, dpMerfPlugin, embeddingSums, kernelBlocks, EMBEDDING_SENSITIVITY, ensureEngine, mechanismFor, RffMap, type GaussianReleaseMechanism } from '../src/generate/index.js';
import { PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { auditRun } from '../src/runs/audit.js';
import { runSynthesis } from '../src/runs/synth.js';
import { readImageNpz } from '../src/data/index.js';
import { spawnedDplens } from './cli-helper.js';

const dplens = spawnedDplens(120_000);

const mnist = loadMnist();
const small = { ...mnist, train: { images: mnist.train.images.slice(0, 2000 * 784), labels: mnist.train.labels.slice(0, 2000), count: 2000 }, rawFingerprint: `${mnist.rawFingerprint}:first-2000` };

function norm(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

test('replacing one record (image and class) moves the released statistic by ≤ √2, and the bound is nearly attained', async () => {
  await ensureEngine();
  const rng = seededRandom(5);
  const n = 200;
  const images = mnist.train.images.slice(0, n * 784);
  const labels = mnist.train.labels.slice(0, n);
  let worst = 0;
  // two maps: the dp-merf bandwidth and a narrow multi-block one (dp-kernel)
  for (const blocks of [[{ bandwidth: 10, frequencies: 200, weight: 1 }], [{ bandwidth: 3, frequencies: 100, weight: 1 }, { bandwidth: 8, frequencies: 100, weight: 2 }]]) {
    const map = new RffMap(784, blocks, rng);
    const base = embeddingSums(images, labels, n, 10, map, 64);
    for (let trial = 0; trial < 12; trial++) {
      const i = Math.floor(rng.nextDouble() * n);
      const j = 1000 + Math.floor(rng.nextDouble() * 5000);
      const im2 = images.slice();
      // a replacement from outside the set; half the trials keep the class, half change it
      im2.set(mnist.train.images.subarray(j * 784, (j + 1) * 784), i * 784);
      // also try an adversarial image: all-white
      if (trial % 4 === 3) im2.fill(255, i * 784, (i + 1) * 784);
      const lab2 = labels.slice();
      lab2[i] = trial % 2 === 0 ? labels[i]! : (labels[i]! + 1 + (trial % 9)) % 10;
      const moved = norm(base, embeddingSums(im2, lab2, n, 10, map, 64));
      worst = Math.max(worst, moved);
      assert.ok(moved <= EMBEDDING_SENSITIVITY + 1e-4, `trial ${trial}: moved ${moved} > √2`);
    }
  }
  assert.ok(worst > 0.97 * EMBEDDING_SENSITIVITY, `the bound is nearly attained by a class change (worst ${worst})`);
});

test('one release: one ledger entry, Gaussian with Δ = √2 and σ calibrated to ε by the RDP accountant', async () => {
  await ensureEngine();
  const root = mkdtempSync(join(tmpdir(), 'dplens-merf-'));
  try {
    const dir = join(root, 'run');
    const res = await runSynthesis({ method: 'dp-merf', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 100, seed: 1, hyper: { features: 200, iterations: 5, perClass: 4 } }, { dataOverride: small });
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.entries.length, 1);
    const ev = ledger.entries[0]!.event as { kind: string; sigma: number; l2Sensitivity: number };
    assert.equal(ev.kind, 'gaussian');
    assert.equal(ev.l2Sensitivity, Math.SQRT2);
    const eps = new RdpAccountant().compose(ledger.entries[0]!.event).getEpsilon(1e-5);
    assert.ok(eps <= 1 && eps > 0.99, `ε ${eps}`);
    assert.ok(res.epsilon <= 1);
    assert.equal(res.generatorSteps, 5);
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl']) assert.ok(existsSync(join(dir, f)), f);
    const syn = readImageNpz(res.syntheticPath, { numClasses: 10, expect: { height: 28, width: 28, channels: 1 } });
    assert.equal(syn.count, 100);
    // the sampler reads back (post-processing)
    const s = dpMerfPlugin.loadSampler(join(dir, 'generator'));
    const set = await s.sample(20, seededRandom(2));
    assert.equal(set.count, 20);
    s.dispose();
    // ε too small for the one release is refused with the smallest ε that allows it
    await assert.rejects(runSynthesis({ method: 'dp-merf', data: 'mnist', epsilon: 1e-9, delta: 1e-5, out: join(root, 'tiny'), samples: 10, hyper: { features: 20, iterations: 1 } }, { dataOverride: small }), /too small|epsilon/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function replayAudit(mech: GaussianReleaseMechanism, seed: number) {
  const r = replayGaussianRelease({ mechanism: mech, m: 1000, rng: seededRandom(seed), noise: seededRandom(seed + 1) });
  const eps = r.replayEpsilon(1e-5);
  return summarizeAudit(r.scores, r.included, { claimedEpsilon: Number.isFinite(eps) ? eps : null, delta: 1e-5, confidence: 0.95, attack: 'gaussian release replay', strategy: mechanismAuditStrategy(r.declaredNoise), seconds: 0 });
}

test('audit replay of the release: σ = 0 bound ≥ 4, honest σ ≤ claim, σ/50 released while σ charged is caught', (t) => {
  const blocks = [{ bandwidth: 10, frequencies: 5000, weight: 1 }];
  const zero = replayAudit(mechanismFor('dp-merf', blocks, 10, null), 3);
  t.diagnostic(`σ = 0: bound ${zero.empiricalEpsilonLowerBound.toFixed(3)}`);
  assert.equal(zero.claimedEpsilon, null);
  assert.ok(zero.empiricalEpsilonLowerBound >= 4, `bound ${zero.empiricalEpsilonLowerBound}`);
  const honest = mechanismFor('dp-merf', blocks, 10, { epsilon: 1, delta: 1e-5 });
  const h = replayAudit(honest, 4);
  t.diagnostic(`ε = 1: claimed ${h.claimedEpsilon}, bound ${h.empiricalEpsilonLowerBound.toFixed(3)}`);
  assert.ok(h.claimedEpsilon !== null && h.empiricalEpsilonLowerBound <= h.claimedEpsilon && !h.violation);
  // a release that adds far less noise than its charged event: the replay's claim stays the honest one
  const q = replayAudit({ ...honest, addNoise: (r, rng) => {
    const v = new Float64Array(r.length);
    rng.normal(v, honest.sigma / 50);
    for (let i = 0; i < r.length; i++) r[i]! += v[i]!;
  } }, 5);
  t.diagnostic(`σ/50 released: claimed ${q.claimedEpsilon}, bound ${q.empiricalEpsilonLowerBound.toFixed(3)}`);
  assert.ok(q.violation, `bound ${q.empiricalEpsilonLowerBound} vs claim ${q.claimedEpsilon}`);
});

test('a --non-private (σ = 0) dp-merf run folder is flagged by auditRun, which spends no ε; a private one is not', async (t) => {
  await ensureEngine();
  const root = mkdtempSync(join(tmpdir(), 'dplens-merf-audit-'));
  try {
    const dir = join(root, 'np');
    await runSynthesis({ method: 'dp-merf', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 20, maxSteps: 2, seed: 3, nonPrivate: true, hyper: { features: 200, perClass: 2 } }, { dataOverride: small });
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.deepEqual(ledger.entries.map((e) => e.event.kind), ['nonPrivate']);
    const a = await auditRun(dir, { seed: 5 });
    t.diagnostic(`σ = 0: bound ${a.empiricalEpsilonLowerBound.toFixed(3)}, flagged ${a.flagged} (${a.flagReason})`);
    assert.equal(a.flagged, true);
    assert.ok(a.empiricalEpsilonLowerBound >= 4, `bound ${a.empiricalEpsilonLowerBound}`);
    assert.equal(a.additionalEpsilonSpent, 0);
    assert.equal(a.privateDataUsed, false);
    const pdir = join(root, 'p');
    await runSynthesis({ method: 'dp-merf', data: 'mnist', epsilon: 1, delta: 1e-5, out: pdir, samples: 20, seed: 4, hyper: { features: 200, iterations: 2, perClass: 2 } }, { dataOverride: small });
    const b = await auditRun(pdir, { seed: 6 });
    t.diagnostic(`ε = 1: claimed ${b.claimedEpsilon}, bound ${b.empiricalEpsilonLowerBound.toFixed(3)}`);
    assert.equal(b.flagged, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('CLI contract on real MNIST (all 60,000 records, a tiny map and 3 generator steps): JSON fields and run folder', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-merf-cli-'));
  try {
    const out = join(root, 'run');
    const r = dplens('synth', '--method', 'dp-merf', '--data', 'mnist', '--epsilon', '1', '--delta', '1e-5', '--out', out, '--json', '--samples', '200', '--rff-features', '100', '--gen-iterations', '3', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.ok((j.epsilon as number) <= 1 && (j.epsilon as number) > 0.99);
    assert.equal(j.delta, 1e-5);
    assert.equal(typeof j.seconds, 'number');
    assert.equal(j.syntheticPath, join(out, 'synthetic.npz'));
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html']) assert.ok(existsSync(join(out, f)), f);
    // a flag of another method is an error
    const bad = dplens('synth', '--method', 'dp-merf', '--data', 'mnist', '--epsilon', '1', '--out', join(root, 'bad'), '--teachers', '5');
    assert.equal(bad.code, 2);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('dp-kernel: geometric ladder of length scales, unit-norm map, the same one release (tiny run on real MNIST)', async () => {
  await ensureEngine();
  const blocks = kernelBlocks({ features: 1200, bandwidthMin: 4, bandwidthMax: 16, scales: 3 });
  assert.deepEqual(blocks.map((b) => Math.round(b.bandwidth * 1e6) / 1e6), [16, 8, 4]);
  assert.deepEqual(blocks.map((b) => b.frequencies), [200, 200, 200]);
  const map = new RffMap(784, blocks, seededRandom(9));
  let s = 0;
  for (const v of map.scale) s += v * v; // cos² + sin² = 1 per frequency
  assert.ok(Math.abs(s - 1) < 1e-6, `‖φ‖² = ${s}`);
  const root = mkdtempSync(join(tmpdir(), 'dplens-kernel-'));
  try {
    const dir = join(root, 'run');
    const res = await runSynthesis({ method: 'dp-kernel', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 40, seed: 2, hyper: { features: 120, iterations: 3, perClass: 2 } }, { dataOverride: small });
    assert.ok(res.epsilon <= 1);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.entries.length, 1);
    assert.equal((ledger.entries[0]!.event as { l2Sensitivity?: number }).l2Sensitivity, Math.SQRT2);
    assert.equal(dpKernelPlugin.gaussianMechanism!(res.hyper as never, { trainCount: 2000, numClasses: 10, epsilon: 1, delta: 1e-5 }).dim, 10 * (120 + 1));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
