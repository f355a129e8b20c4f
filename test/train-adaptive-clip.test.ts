/**
 * Adaptive clipping (src/train/adaptive-clip.ts, Andrew et al. 2021): the split of the noise
 * (σ_Δ⁻² + (2σ_b)⁻² = z⁻²), the clip bound converging to the target quantile of the per-sample
 * norms on a frozen-model fixture, the ledger's ε equal to the accountant's for the combined
 * mechanism, and the flag checks.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { buildModel, clippedSum, forwardBackward } from '../src/nn/index.js';
import { AdaptiveClipPrivatizer, ensureEngine, gradientNoiseMultiplier, makePrivate, SGD, type TrainData } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { toyDataset } from './train-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-adaclip-'));
process.env.DPLENS_OWNER_KEY_FILE = join(dir, 'owner.key');
before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND });
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

function vecData(x: Float32Array, labels: Int32Array, d: number): TrainData {
  return {
    count: labels.length,
    labels,
    batch: (idx) => tf.tensor2d(Float32Array.from({ length: idx.length * d }, (_, k) => x[idx[Math.floor(k / d)]! * d + (k % d)]!), [idx.length, d]),
    range: (s, e) => tf.tensor2d(x.subarray(s * d, e * d), [e - s, d]),
  };
}

test('noise split: σ_Δ⁻² + (2σ_b)⁻² = z⁻² (Andrew et al. 2021 §3.1); refused when 2σ_b ≤ z', () => {
  // B = 256, σ_b = B/20 = 12.8 (the paper's default), z = 1.1: σ_Δ = (1/1.21 − 1/655.36)^(−½) ≈ 1.101017
  const s = gradientNoiseMultiplier(1.1, 12.8);
  assert.ok(Math.abs(s - 1 / Math.sqrt(1 / 1.21 - 1 / 655.36)) < 1e-12);
  assert.ok(Math.abs(s - 1.101017) < 1e-6);
  assert.ok(Math.abs(1 / s ** 2 + 1 / (2 * 12.8) ** 2 - 1 / 1.1 ** 2) < 1e-12);
  assert.throws(() => gradientNoiseMultiplier(2, 1), /2·σ_b > σ/);
  const p = new AdaptiveClipPrivatizer({ quantile: 0.5, initialClip: 1, noiseMultiplier: 1.1, expectedBatch: 256 });
  assert.equal(p.countStd, 12.8);
  assert.deepEqual(p.stepEvent(0.01), DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1)));
});

test('the clip bound converges to the target quantile of the per-sample norms (frozen model fixture)', () => {
  const d = 6;
  const n = 400;
  const rng = seededRandom(1);
  const x = new Float32Array(n * d);
  rng.normal(x, 1);
  // per-example scales spread over two decades, so the norm quantiles are far apart
  for (let i = 0; i < n; i++) {
    const s = Math.exp(4.6 * rng.nextDouble() - 2.3);
    for (let j = 0; j < d; j++) x[i * d + j]! *= s;
  }
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  for (const gamma of [0.5, 0.9]) {
    const model = buildModel([{ type: 'dense', units: 3 }], [d]);
    const params = model.parameters();
    // true per-sample norms (the model is frozen: lr 1e-12)
    const norms = tf.tidy(() => {
      const fb = forwardBackward(model, vecData(x, labels, d).batch(Int32Array.from({ length: n }, (_, i) => i)), tf.tensor1d(labels, 'int32'));
      return Array.from(clippedSum(fb.tape, params, { maxGradNorm: 1 }).norms.dataSync());
    });
    const priv = new AdaptiveClipPrivatizer({ quantile: gamma, initialClip: 50 * Math.max(...norms), noiseMultiplier: 1, expectedBatch: 50 });
    const t = makePrivate({ model, optimizer: new SGD(1e-12), data: vecData(x, labels, d), noiseMultiplier: 1, maxGradNorm: 1, delta: 1e-5, batchSize: 50, rng: seededRandom(Math.round(10 * gamma)), privatizer: priv });
    t.fit({ steps: 500 });
    const tail = priv.history.slice(-200);
    const logMean = Math.exp(tail.reduce((s, c) => s + Math.log(c), 0) / tail.length);
    const unclipped = norms.filter((v) => v <= logMean).length / n;
    assert.ok(Math.abs(unclipped - gamma) < 0.06, `γ ${gamma}: clip ${logMean.toPrecision(4)} leaves ${unclipped} unclipped`);
  }
});

test('gradient noise std is σ_Δ·C (C the current bound); the ledger ε equals the accountant’s for the combined mechanism', async () => {
  const p = new AdaptiveClipPrivatizer({ quantile: 0.5, initialClip: 2, noiseMultiplier: 0.9, expectedBatch: 40 });
  const z = new Float32Array(20000);
  const r = p.finalize([tf.tensor(z)], 1, seededRandom(3));
  const v = r[0]!.dataSync();
  let sq = 0;
  for (const a of v) sq += a * a;
  assert.ok(Math.abs(Math.sqrt(sq / v.length) / (p.gradientNoise * 2) - 1) < 0.02);
  r[0]!.dispose();

  const ds = toyDataset(600, 1, { testCount: 100 });
  const out = join(dir, 'ada');
  const res = await runTraining({ epochs: 1, batch: 40, noise: 1.2, clip: 1, lr: 0.5, delta: 1e-5, seed: 7, model: 'mlp', out, privatizerOptions: { 'adaptive-clip': 0.6 } }, { dataOverride: ds, log: () => {} });
  const q = 40 / 600;
  const ref = new RdpAccountant().compose(DpEvents.poissonSampled(q, DpEvents.gaussian(1.2)), res.steps).getEpsilon(1e-5);
  assert.ok(Math.abs(res.epsilon! - ref) < 1e-9, `${res.epsilon} vs ${ref}`);
  assert.deepEqual(res.guarantee, { kind: 'approxDP', epsilon: res.epsilon, delta: 1e-5 });
  const l = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.ok(Math.abs(l.spent(1e-5) - ref) < 1e-9);
  const meta = l.entries[0]!.meta as Record<string, number | string>;
  assert.equal(meta.clipping, 'adaptive');
  assert.equal(meta.countNoiseStd, 2);
  assert.ok(Math.abs(1 / (meta.gradientNoiseMultiplier as number) ** 2 + 1 / (2 * 2) ** 2 - 1 / 1.2 ** 2) < 1e-12);
});

test('flag checks: --adaptive-clip applies to gaussian only, flat clipping only; its sub-flags need it', async () => {
  const ds = toyDataset(200, 2, { testCount: 50 });
  const run = (c: Record<string, unknown>) => runTraining({ epochs: 0.2, batch: 20, noise: 1, model: 'mlp', ...c }, { dataOverride: ds, log: () => {} });
  await assert.rejects(run({ privatizer: 'topagg', privatizerOptions: { 'adaptive-clip': 0.5 } }), /--adaptive-clip does not apply to --privatizer topagg \(it applies to --privatizer gaussian\)/);
  await assert.rejects(run({ clipping: 'per-layer', privatizerOptions: { 'adaptive-clip': 0.5 } }), /does not apply to --clipping per-layer/);
  await assert.rejects(run({ privatizerOptions: { 'adaptive-clip-lr': 0.1 } }), /--adaptive-clip-lr needs --adaptive-clip/);
  await assert.rejects(run({ noise: 3, privatizerOptions: { 'adaptive-clip': 0.5, 'adaptive-clip-count-std': 1 } }), /2·σ_b > σ/);
});
