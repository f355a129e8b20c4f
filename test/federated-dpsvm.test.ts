/**
 * DP-SVM averaging with one secure summation (src/federated/dp-svm.ts): the output-perturbation
 * sensitivity (property test: change one record of one party, the averaged model moves by at most
 * Δ_party/m), the summed noise shares (variance t σ², Gaussian-equivalent multiplier >= target),
 * and a tiny end-to-end run on real MNIST over sockets (one ledger entry recorded before
 * unmasking, equal to the RDP accountant's ε; record-level replace-one in run.json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, RdpAccountant, seededRandom, type RandomSource } from '../src/privacy/index.js';
import { encodeSvmShare, normaliseFeatures, partySensitivity, quantisedSensitivity, svmNoiseMultiplier, svmNoisePlan, trainLocalSvm, type SvmData } from '../src/federated/dp-svm.js';
import { runDpSvm } from '../src/runs/fed-dpsvm.js';

function randomData(rng: RandomSource, n: number, feat: number, classes: number): SvmData {
  const f = Float64Array.from({ length: n * feat }, () => rng.nextDouble() * 2 - 1);
  const labels = Int32Array.from({ length: n }, () => Math.floor(rng.nextDouble() * classes));
  return normaliseFeatures(f, labels, n, feat);
}

test('sensitivity: changing one record of one party moves the averaged model by <= Δ_party / m', () => {
  const rng = seededRandom(11);
  let worstRatio = 0;
  for (let trial = 0; trial < 24; trial++) {
    const classes = 2 + Math.floor(rng.nextDouble() * 4);
    const feat = 2 + Math.floor(rng.nextDouble() * 6);
    const n = 5 + Math.floor(rng.nextDouble() * 20);
    const m = 1 + Math.floor(rng.nextDouble() * 4);
    const o = { lambda: 10 ** (-2.5 + 2 * rng.nextDouble()), iterations: 1 + Math.floor(rng.nextDouble() * 300) };
    const parties = Array.from({ length: m }, () => randomData(rng, n, feat, classes));
    const avg = (ps: SvmData[]) => {
      const out = new Float64Array(classes * (feat + 1));
      for (const p of ps) trainLocalSvm(p, classes, o).forEach((v, i) => (out[i]! += v / m));
      return out;
    };
    const a = avg(parties);
    // Replace one record of party 0 by an adversarial-ish one: opposite features, another label.
    const changed = { ...parties[0]!, x: parties[0]!.x.slice(), labels: parties[0]!.labels.slice() };
    const D = feat + 1;
    const r = Math.floor(rng.nextDouble() * n);
    for (let j = 0; j < feat; j++) changed.x[r * D + j] = -changed.x[r * D + j]!;
    changed.labels[r] = (changed.labels[r]! + 1) % classes;
    const b = avg([changed, ...parties.slice(1)]);
    let d2 = 0;
    for (let i = 0; i < a.length; i++) d2 += (a[i]! - b[i]!) ** 2;
    const bound = partySensitivity(n, classes, o) / m;
    assert.ok(Math.sqrt(d2) <= bound * (1 + 1e-9), `‖Δ avg‖ = ${Math.sqrt(d2)} > Δ_party/m = ${bound}`);
    worstRatio = Math.max(worstRatio, Math.sqrt(d2) / bound);
  }
  // The bound is not vacuous: some changes come within a factor of 20 of it.
  assert.ok(worstRatio > 0.05, `bound looks loose: max ratio ${worstRatio}`);
});

test('noise shares: t parties\' discrete Gaussian shares sum to variance t σ²; the plan meets the target multiplier', () => {
  const rng = seededRandom(12);
  const t = 6;
  const dim = 3000;
  const p = { sensitivity: 0.5, clip: 10, scaleBits: 6, sigma: 4, dim };
  const sum = new Float64Array(dim);
  for (let c = 0; c < t; c++) {
    const y = new Int32Array(encodeSvmShare(new Float64Array(dim), p, rng).buffer);
    for (let i = 0; i < dim; i++) sum[i]! += y[i]!;
  }
  let mean = 0;
  let v = 0;
  for (const s of sum) mean += s / dim;
  for (const s of sum) v += (s - mean) ** 2 / (dim - 1);
  const target = t * p.sigma ** 2;
  assert.ok(Math.abs(mean) < 5 * Math.sqrt(target / dim), `mean ${mean}`);
  // Var of the sample variance ≈ 2 target²/dim: 5 standard deviations.
  assert.ok(Math.abs(v - target) < 5 * target * Math.sqrt(2 / dim), `variance ${v} vs ${target}`);
  for (const z of [0.8, 3, 6.5]) {
    const plan = svmNoisePlan(z, { parties: 1000, minNoisy: 667, dim: 1290, sensitivity: 42.15, clip: Math.sqrt(10) / 0.003 });
    const got = svmNoiseMultiplier(plan, 667);
    assert.ok(got >= z && got < z * 1.001, `multiplier ${got} vs target ${z}`);
    // Summed noise std / Δ_q is the multiplier (τ ≈ 0 at these σ).
    assert.ok(Math.abs((Math.sqrt(667) * plan.sigma) / quantisedSensitivity(plan) - got) < 1e-3 * z);
    assert.ok(1000 * (2 ** plan.scaleBits + 1) + 12 * Math.sqrt(1000) * plan.sigma < 2 ** 31);
  }
});

test('end to end on MNIST over sockets: one release in the server ledger = accountant, record-level replace-one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-dpsvm-'));
  const prevCache = process.env.DPLENS_CACHE_DIR;
  process.env.DPLENS_CACHE_DIR = join(dir, 'cache');
  try {
    const logs: string[] = [];
    const r = await runDpSvm({ data: 'mnist', out: join(dir, 'run'), clients: 4, examplesPerClient: 30, epsilon: 2, delta: 1e-5, lambda: 0.01, iterations: 40, dropout: 0, seed: 5, featureNetTrainLimit: 600, featureNetEpochs: 1, testLimit: 300, onLog: (l) => logs.push(l) });
    assert.equal(r.rounds, 1);
    assert.equal(r.survivors, 4);
    assert.ok(r.bytesTotal > 0 && r.bytesPerClient > 0);
    assert.ok(r.testAccuracy >= 0 && r.testAccuracy <= 1);
    assert.ok(logs.some((l) => l.includes('public fashion-mnist')));
    const lines = readFileSync(join(r.runDir, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const entries = lines.filter((l) => l.event !== undefined);
    assert.equal(entries.length, 1, 'exactly one release recorded');
    const acc = new RdpAccountant(undefined, { relation: 'replace-one' });
    acc.compose(DpEvents.gaussian((entries[0]!.event as { noiseMultiplier: number }).noiseMultiplier));
    assert.ok((entries[0]!.event as { noiseMultiplier: number }).noiseMultiplier >= r.noiseMultiplier);
    assert.ok(r.epsilon <= 2 + 1e-9);
    assert.ok(Math.abs(acc.getEpsilon(1e-5) - r.epsilon) < 1e-12, `ledger ε ${r.epsilon} vs accountant ${acc.getEpsilon(1e-5)}`);
    const run = JSON.parse(readFileSync(join(r.runDir, 'run.json'), 'utf8')) as { method: string; privacy: { relation: string }; config: { unit: string } };
    assert.equal(run.method, 'dp-svm');
    assert.equal(run.privacy.relation, 'replace-one');
    assert.match(run.config.unit, /record/);
  } finally {
    if (prevCache === undefined) delete process.env.DPLENS_CACHE_DIR;
    else process.env.DPLENS_CACHE_DIR = prevCache;
  }
});
