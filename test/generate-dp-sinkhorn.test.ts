/**
 * dp-sinkhorn: the Sinkhorn solver against references (brute-force exact OT, closed forms, finite
 * differences of its value), the sensitivity of one step's release (one real record added or
 * removed, any class), the ledger events, and the synth contract on real MNIST (seconds).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrivacyLedger, RdpAccountant, DpEvents, seededRandom } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { ensureEngine, findGenerator } from '../src/generate/index.js';
import { accumulateOtGradient, pairwiseCost, sinkhorn, type CostSpec } from '../src/generate/sinkhorn.js';
import { clipL2, dpSinkhornMechanism, dpSinkhornNoiseMultiplier, dpSinkhornPlugin, poissonSubsample, sinkhornLossGradient } from '../src/generate/dp-sinkhorn.js';
import { mechanismAuditStrategy, replayGaussianRelease, summarizeAudit } from '../src/audit/index.js';
import type { GaussianReleaseMechanism } from '../src/generate/mean-embedding.js';
import { auditRun } from '../src/runs/audit.js';
import { runSynthesis } from '../src/runs/synth.js';
import { dplensInProcess, spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const L2: CostSpec = { kind: 'l2', l1Weight: 0, labelScale: 0 };

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let k = 0; k <= p.length; k++) out.push([...p.slice(0, k), n - 1, ...p.slice(k)]);
  return out;
}

test('sinkhorn: small ε matches the exact OT cost found by brute force over all assignments (≤ ε·log n), plan ≈ the optimal permutation', () => {
  const rng = seededRandom(11);
  for (let trial = 0; trial < 5; trial++) {
    const n = 5;
    const d = 3;
    const x = new Float64Array(n * d);
    const y = new Float64Array(n * d);
    rng.normal(x, 1);
    rng.normal(y, 1);
    const lab = new Int32Array(n);
    const C = pairwiseCost(x, lab, n, y, lab, n, d, L2);
    let best = Infinity;
    let bestPerm: number[] = [];
    for (const p of permutations(n)) {
      const v = p.reduce((s, j, i) => s + C[i * n + j]!, 0) / n;
      if (v < best) [best, bestPerm] = [v, p];
    }
    const eps = 1e-3;
    const r = sinkhorn(C, n, n, { epsilon: eps, maxIter: 2000, tol: 1e-10 });
    assert.ok(Math.abs(r.value - best) <= eps * Math.log(n) + 1e-6, `trial ${trial}: sinkhorn ${r.value} vs exact ${best}`);
    for (let i = 0; i < n; i++) assert.ok(r.plan[i * n + bestPerm[i]!]! > 0.99 / n, `trial ${trial}: plan row ${i} misses the optimal assignment`);
  }
});

test('sinkhorn: closed forms — one point against m points is Σ_j c_j / m exactly for any ε; one against one is c(x, y)', () => {
  const x = [0.5, -1];
  const y = [1, 2, 0, 0, -3, 1];
  const C = pairwiseCost(x, [0], 1, y, [0, 0, 0], 3, 2, L2);
  const expect = (C[0]! + C[1]! + C[2]!) / 3;
  for (const eps of [0.01, 1, 100]) assert.ok(Math.abs(sinkhorn(C, 1, 3, { epsilon: eps }).value - expect) < 1e-9);
  const c11 = pairwiseCost([1, 2], [0], 1, [4, 6], [0], 1, 2, L2);
  assert.ok(Math.abs(sinkhorn(c11, 1, 1, { epsilon: 0.1 }).value - 25) < 1e-9);
  // the label term: different classes pay 2L² (+ w·2L with l1+l2)
  const lab = pairwiseCost([0, 0], [0], 1, [0, 0], [1], 1, 2, { kind: 'l1+l2', l1Weight: 3, labelScale: 15 });
  assert.equal(lab[0], 2 * 225 + 3 * 30);
});

test('sinkhorn: the plan pull Σ_j π_ij ∇c is the gradient of the OT value (finite differences, both clouds, l2 and l1+l2)', () => {
  const rng = seededRandom(5);
  const n = 4;
  const m = 6;
  const d = 3;
  for (const spec of [L2, { kind: 'l1+l2', l1Weight: 0.7, labelScale: 1 } as CostSpec]) {
    const x = new Float64Array(n * d);
    const y = new Float64Array(m * d);
    rng.normal(x, 1);
    rng.normal(y, 1);
    const lx = Int32Array.from([0, 1, 0, 1]);
    const ly = Int32Array.from([0, 0, 1, 1, 0, 1]);
    const value = (xx: Float64Array, yy: Float64Array) => sinkhorn(pairwiseCost(xx, lx, n, yy, ly, m, d, spec), n, m, { epsilon: 0.5, maxIter: 5000, tol: 1e-13 }).value;
    const r = sinkhorn(pairwiseCost(x, lx, n, y, ly, m, d, spec), n, m, { epsilon: 0.5, maxIter: 5000, tol: 1e-13 });
    const gx = new Float64Array(n * d);
    const gy = new Float64Array(m * d);
    accumulateOtGradient(r.plan, x, n, y, m, d, spec, 1, gx, gy);
    const h = 1e-5;
    for (const [arr, g] of [[x, gx], [y, gy]] as const) {
      for (let k = 0; k < arr.length; k++) {
        const a = Float64Array.from(arr);
        const b = Float64Array.from(arr);
        a[k]! += h;
        b[k]! -= h;
        const fd = arr === x ? (value(a, y) - value(b, y)) / (2 * h) : (value(x, a) - value(x, b)) / (2 * h);
        assert.ok(Math.abs(fd - g[k]!) < 1e-4 * Math.max(1, Math.abs(fd)), `${spec.kind} coordinate ${k}: analytic ${g[k]} vs finite difference ${fd}`);
      }
    }
  }
});

test('sensitivity: adding or removing one real record (any class) moves the pre-noise statistic clip_C(∂L/∂X) by ≤ 2C; unclipped it moves far more', () => {
  const rng = seededRandom(3);
  const d = 784;
  const C = 0.5;
  const cost: CostSpec = { kind: 'l1+l2', l1Weight: 1, labelScale: 15 };
  let maxClipped = 0;
  let maxRaw = 0;
  for (let trial = 0; trial < 25; trial++) {
    const B = 10;
    const mFresh = 2;
    const x = new Float32Array(B * d);
    const xf = new Float32Array(mFresh * d);
    rng.uniform(x);
    rng.uniform(xf);
    const xLabels = Int32Array.from({ length: B }, (_, i) => i % 10);
    const nS = trial % 5; // includes the empty batch
    const idx = Array.from({ length: nS + 1 }, () => Math.floor(rng.nextDouble() * mnist.train.count));
    const pick = (ids: number[]) => {
      const real = new Float32Array(ids.length * d);
      const lab = new Int32Array(ids.length);
      ids.forEach((i, k) => {
        lab[k] = mnist.train.labels[i]!;
        for (let t = 0; t < d; t++) real[k * d + t] = mnist.train.images[i * d + t]! / 255;
      });
      return { real, lab };
    };
    const stat = (ids: number[]) => {
      const { real, lab } = pick(ids);
      return sinkhornLossGradient({ x, xLabels, xFresh: xf, real, realLabels: lab, d, cost, sinkhornEps: 0.05, sinkhornIters: 10 }).gx;
    };
    const without = stat(idx.slice(0, nS));
    const withOne = stat(idx); // S ∪ {x}: the added record may have any class
    let raw = 0;
    for (let k = 0; k < without.length; k++) raw += (withOne[k]! - without[k]!) ** 2;
    maxRaw = Math.max(maxRaw, Math.sqrt(raw));
    clipL2(without, C);
    clipL2(withOne, C);
    let diff = 0;
    for (let k = 0; k < without.length; k++) diff += (withOne[k]! - without[k]!) ** 2;
    maxClipped = Math.max(maxClipped, Math.sqrt(diff));
    assert.ok(Math.sqrt(diff) <= 2 * C + 1e-9, `trial ${trial}: ‖Δ‖ = ${Math.sqrt(diff)} > 2C`);
  }
  assert.ok(maxClipped > C, `the bound 2C is approached (max ‖Δ‖ ${maxClipped}): a bound of C would be wrong`);
  assert.ok(maxRaw > 2 * C, `without clipping one record moves the gradient by ${maxRaw}`);
});

test('poissonSubsample: each record kept with probability q (mean and spread)', () => {
  const rng = seededRandom(9);
  let tot = 0;
  for (let r = 0; r < 200; r++) tot += poissonSubsample(10000, 0.01, rng).length;
  assert.ok(Math.abs(tot / 200 - 100) < 3, `mean batch ${tot / 200}`);
});

test('dp-sinkhorn on real MNIST: each step is one Poisson-subsampled Gaussian (sensitivity 2C, σ = 2Cz, z calibrated) recorded under add/remove; ε ≤ target', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-sk-'));
  try {
    const hyper = { steps: 400, batch: 50, genBatch: 20, clip: 0.5 };
    const r = await runSynthesis({ method: 'dp-sinkhorn', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 100, seed: 4, maxSteps: 4, hyper }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 4);
    assert.equal(r.relation, 'add-remove');
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'add-remove');
    assert.equal(ledger.entries.length, 4);
    const q = 50 / mnist.train.count;
    const z = dpSinkhornNoiseMultiplier(q, 400, 1, 1e-5);
    for (const e of ledger.entries) {
      assert.equal(e.event.kind, 'poissonSampled');
      const ev = e.event as { samplingProbability: number; event: { kind: string; sigma: number; l2Sensitivity: number } };
      assert.equal(ev.samplingProbability, q);
      assert.equal(ev.event.kind, 'gaussian');
      assert.equal(ev.event.l2Sensitivity, 1);
      assert.ok(Math.abs(ev.event.sigma - z) < 1e-12);
    }
    const planned = new RdpAccountant().compose(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), 400).getEpsilon(1e-5);
    assert.ok(planned <= 1 && planned > 0.98, `planned ε ${planned}`);
    assert.ok(r.epsilon < planned && r.epsilon > 0);
    const npz = readNpz(r.syntheticPath);
    assert.deepEqual(npz.images!.shape, [100, 28, 28]);
    // the written generator samples again (post-processing)
    const s = findGenerator('dp-sinkhorn')!.loadSampler(join(dir, 'generator'));
    const more = await s.sample(30, seededRandom(1));
    s.dispose();
    assert.equal(more.count, 30);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dp-sinkhorn --non-private: noise 0 allowed only explicitly, recorded as one nonPrivate entry (ε = ∞); noise 0 without it is calibrated, never 0', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-sk-np-'));
  try {
    const r = await runSynthesis({ method: 'dp-sinkhorn', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: join(root, 'np'), samples: 50, seed: 2, maxSteps: 3, nonPrivate: true, hyper: { genBatch: 20 } }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 3);
    const ledger = PrivacyLedger.read(join(root, 'np', 'ledger.jsonl'));
    assert.deepEqual(ledger.entries.map((e) => e.event.kind), ['nonPrivate']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const dplensSpawned = spawnedDplens(300_000);

test('dplens synth --method dp-sinkhorn --json: the synth contract; flags of other methods are errors', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-sk-cli-')), 'run');
  try {
    const r = dplensSpawned('synth', '--method', 'dp-sinkhorn', '--data', 'mnist', '--epsilon', '1', '--delta', '1e-5', '--steps', '3', '--gen-batch', '20', '--samples', '200', '--out', dir, '--seed', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const k of ['epsilon', 'delta', 'seconds', 'syntheticPath']) assert.ok(k in out, k);
    assert.ok(out.epsilon <= 1);
    assert.equal(out.relation, 'add-remove');
    const man = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.equal(man.method, 'dp-sinkhorn');
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html']) assert.ok(readFileSync(join(dir, f)).length > 0, f);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
  const bad = await dplensInProcess('synth', '--method', 'dp-sinkhorn', '--data', 'mnist', '--epsilon', '1', '--out', '/tmp/dplens-never', '--centroids', '3');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--centroids does not apply to method dp-sinkhorn/);
  const bad2 = await dplensInProcess('synth', '--method', 'class-mean', '--data', 'mnist', '--epsilon', '1', '--out', '/tmp/dplens-never', '--debias-ratio', '0.3');
  assert.equal(bad2.code, 2);
  assert.match(bad2.stderr, /--debias-ratio does not apply to method class-mean/);
});

function replayAudit(mech: GaussianReleaseMechanism, claimed: number | null, seed: number) {
  const r = replayGaussianRelease({ mechanism: mech, m: 1000, rng: seededRandom(seed), noise: seededRandom(seed + 1) });
  return summarizeAudit(r.scores, r.included, { claimedEpsilon: claimed, delta: 1e-5, confidence: 0.95, attack: 'dp-sinkhorn release replay', strategy: mechanismAuditStrategy(r.declaredNoise), seconds: 0 });
}

test('mechanism audit (replay of the run\'s Poisson sampler and noise code): honest release within its claim; noise 50× below the charge and σ = 0 are caught', () => {
  // q = 0.5 so canaries take part often enough for the audit to have power in 20 releases
  const h = { ...dpSinkhornPlugin.defaults, batch: 30000, steps: 20 };
  const facts = { trainCount: 60000, epsilon: 2, delta: 1e-5 };
  const honest = dpSinkhornMechanism(h, facts);
  const claimed = new RdpAccountant().compose(honest.event, honest.releases).getEpsilon(1e-5);
  assert.ok(claimed <= 2 && claimed > 1.95);
  const a = replayAudit(honest, claimed, 1);
  assert.ok(a.empiricalEpsilonLowerBound <= claimed, `honest: bound ${a.empiricalEpsilonLowerBound} > claimed ${claimed}`);
  const quiet = dpSinkhornMechanism({ ...h, noise: (honest.sigma / honest.l2Sensitivity) / 50 }, facts);
  const b = replayAudit({ ...honest, addNoise: quiet.addNoise }, claimed, 2);
  assert.ok(b.empiricalEpsilonLowerBound > claimed, `quiet: bound ${b.empiricalEpsilonLowerBound} ≤ claimed ${claimed}`);
  const zero = dpSinkhornMechanism(h, { ...facts, epsilon: null });
  assert.equal(zero.sigma, 0);
  const c = replayAudit(zero, null, 3);
  assert.ok(c.empiricalEpsilonLowerBound > 4, `σ = 0: bound ${c.empiricalEpsilonLowerBound}`);
});

test('a --non-private (σ = 0) dp-sinkhorn run folder is flagged by auditRun, which reads no private data and spends no ε', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-sk-audit-'));
  try {
    const dir = join(root, 'np');
    await runSynthesis({ method: 'dp-sinkhorn', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 50, seed: 2, maxSteps: 3, nonPrivate: true, hyper: { genBatch: 20 } }, { dataOverride: mnist });
    const a = await auditRun(dir, { seed: 5 });
    assert.equal(a.flagged, true);
    assert.match(a.flagReason!, /no DP guarantee/);
    assert.equal(a.additionalEpsilonSpent, 0);
    assert.equal(a.privateDataUsed, false);
    assert.equal((a as unknown as { steps: number }).steps, 3, 'the replay makes as many releases as the run made');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
