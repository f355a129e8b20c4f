/**
 * Gradient-leakage measures (src/audit/gradient-leakage.ts): the float64 host gradient of the
 * reference CNN against tfjs autodiff, the V-information estimators on synthetic data (≈ 0 bits for
 * features independent of the label, > 0 for informative ones), and on real MNIST test digits with
 * the fresh reference CNN: a single client's gradient carries the label, the measure falls with
 * aggregation over clients and with a per-client DP release; the attack-independent measures put
 * the most original information in conv1 and the most latent information in the dense head.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../src/engine/index.js';
import { loadMnist } from '../src/data/index.js';
import { initRefCnn, refCnnGradient, ensureAuditGradients } from '../src/audit/index.js';
import { hostParams, refCnnDims } from '../src/audit/refcnn-host.js';
import { gradientVInformation, latentSubspaceDistance, layerSensitivity, linearLabelVInformation, linearGaussianVInformation, refCnnHostGradient, subspaceDistance, type LeakageExamples } from '../src/audit/gradient-leakage.js';
import { seededRandom } from '../src/privacy/index.js';
import { mulberry32 } from '../src/util/prng.js';

before(async () => {
  await initEngine();
  ensureAuditGradients();
});

function mnistTest(n: number): LeakageExamples {
  const ds = loadMnist();
  const pixels = new Float64Array(n * 784);
  for (let i = 0; i < n * 784; i++) pixels[i] = ds.test.images[i]! / 255;
  return { pixels, labels: Int32Array.from(ds.test.labels.subarray(0, n)), count: n };
}

const gauss = (rnd: () => number): number => Math.sqrt(-2 * Math.log(Math.max(rnd(), 1e-300))) * Math.cos(2 * Math.PI * rnd());

test('host gradient of the reference CNN equals tfjs autodiff (all 8 tensors)', () => {
  const ex = mnistTest(2);
  const params = initRefCnn(3);
  const p = hostParams(params.map((t) => t.dataSync()));
  const d = refCnnDims(28, 28, 1, 10);
  for (let e = 0; e < 2; e++) {
    const x = tf.tensor4d(Float32Array.from(ex.pixels.subarray(e * 784, (e + 1) * 784)), [1, 28, 28, 1]);
    const y = tf.cast(tf.oneHot(tf.tensor1d([ex.labels[e]!], 'int32'), 10), 'float32') as tf.Tensor2D;
    const tg = refCnnGradient(params, x, y);
    const hg = refCnnHostGradient(d, p, ex.pixels.subarray(e * 784, (e + 1) * 784), ex.labels[e]!);
    tg.forEach((t, i) => {
      const a = t.dataSync();
      let err = 0;
      let mx = 0;
      for (let k = 0; k < a.length; k++) {
        err = Math.max(err, Math.abs(a[k]! - hg[i]![k]!));
        mx = Math.max(mx, Math.abs(a[k]!));
      }
      assert.equal(a.length, hg[i]!.length);
      assert.ok(err <= 1e-5 * Math.max(mx, 1e-3), `tensor ${i}: max error ${err} (max |g| ${mx})`);
    });
    tf.dispose([x, y, ...tg]);
  }
});

test('V-information estimators: ≈ 0 bits for features independent of the target, > 0 for informative ones', () => {
  const rnd = mulberry32(7);
  const n = 400;
  const dim = 16;
  const y = Int32Array.from({ length: n }, () => Math.floor(rnd() * 10));
  const noise = Float64Array.from({ length: n * dim }, () => gauss(rnd));
  const informative = Float64Array.from({ length: n * dim }, (_, i) => gauss(rnd) * 0.5 + (i % dim === y[Math.floor(i / dim)]! ? 2 : 0));
  const h = n / 2;
  const none = linearLabelVInformation(noise.subarray(0, h * dim), y.subarray(0, h), noise.subarray(h * dim), y.subarray(h), dim, 10);
  assert.ok(Math.abs(none.information) < 0.1, `independent features: ${none.information} bits`);
  const some = linearLabelVInformation(informative.subarray(0, h * dim), y.subarray(0, h), informative.subarray(h * dim), y.subarray(h), dim, 10);
  assert.ok(some.information > 1.5, `informative features: ${some.information} bits (H(Y) ≈ ${some.hY})`);
  // linear-Gaussian: target = noise-free linear map of the features vs an independent target
  const t = new Float64Array(n * 2);
  const tIndep = Float64Array.from({ length: n * 2 }, () => gauss(rnd));
  for (let i = 0; i < n; i++) {
    t[2 * i] = noise[i * dim]! + 0.1 * gauss(rnd);
    t[2 * i + 1] = noise[i * dim + 1]! - noise[i * dim + 2]! + 0.1 * gauss(rnd);
  }
  const lin = linearGaussianVInformation(noise.subarray(0, h * dim), t.subarray(0, h * 2), noise.subarray(h * dim), t.subarray(h * 2), dim, 2);
  assert.ok(lin.information > 3, `linear target: ${lin.information} bits`);
  const ind = linearGaussianVInformation(noise.subarray(0, h * dim), tIndep.subarray(0, h * 2), noise.subarray(h * dim), tIndep.subarray(h * 2), dim, 2);
  assert.ok(Math.abs(ind.information) < 0.15, `independent target: ${ind.information} bits`);
});

test('subspace distance: 0 for the same span, 1 for orthogonal spans', () => {
  const e = (i: number): Float64Array => Float64Array.from({ length: 4 }, (_, k) => (k === i ? 1 : 0));
  assert.ok(subspaceDistance([e(0), e(1)], [e(1), e(0)]) < 1e-12);
  assert.ok(Math.abs(subspaceDistance([e(0), e(1)], [e(2), e(3)]) - 1) < 1e-12);
});

test('real MNIST, fresh reference CNN: one client leaks its label, aggregation over clients and a DP release remove it; conv1 most original, dense head most latent', () => {
  const ex = mnistTest(260);
  const params = initRefCnn(1);
  const p = hostParams(params.map((t) => t.dataSync()));
  tf.dispose(params);
  const d = refCnnDims(28, 28, 1, 10);
  const rows = gradientVInformation(d, p, ex, { aggregation: [1, 8, 64], targets: 160, projectDim: 32, seed: 3 });
  const best = (A: number): number => Math.max(...rows.filter((r) => r.aggregation === A).map((r) => r.labelBits));
  const conv1 = rows.find((r) => r.aggregation === 1 && r.layer === 'conv1')!;
  assert.ok(conv1.labelBits > 0.5, `single client, conv1: ${conv1.labelBits} bits`);
  assert.ok(best(1) > 2, `single client, best layer: ${best(1)} bits of ${conv1.labelEntropy}`);
  assert.ok(best(8) < best(1) - 1, `8 clients: ${best(8)} vs 1 client: ${best(1)}`);
  assert.ok(best(64) < 0.3, `64 clients: ${best(64)} bits`);
  // the pooled image (linear-Gaussian family) likewise
  const bestImage = (A: number): number => Math.max(...rows.filter((r) => r.aggregation === A).map((r) => r.imageBits));
  assert.ok(bestImage(1) > 2 && bestImage(64) < bestImage(1) - 2 && bestImage(64) < 0.5, `image bits: 1 client ${bestImage(1)}, 8: ${bestImage(8)}, 64: ${bestImage(64)}`);
  // per-client DP release (clip 1e-3·‖g‖-ish, σ = 50): the label is gone from every layer
  const dp = gradientVInformation(d, p, { ...ex, count: 100, pixels: ex.pixels.subarray(0, 100 * 784), labels: ex.labels.subarray(0, 100) }, { aggregation: [1], targets: 100, projectDim: 32, seed: 3, release: { clip: 1, noiseMultiplier: 50, rng: seededRandom(9) } });
  // held-out estimates on 50 rows scatter around 0 (negative = the fitted decoder does worse than the prior)
  for (const r of dp) assert.ok(r.labelBits < 0.35, `DP release, ${r.layer}: ${r.labelBits} bits`);
  // raw information: the effective rank of the gradient's input Jacobian falls with depth (conv1 ≈ 15.5 of 16 directions, fc2 ≈ 9.5)
  const sens = layerSensitivity(d, p, ex, { examples: 3, directions: 16 });
  const byRank = [...sens].sort((a, b) => b.effectiveRank - a.effectiveRank);
  assert.equal(byRank[0]!.layer, 'conv1', JSON.stringify(sens));
  assert.equal(byRank[3]!.layer, 'fc2', JSON.stringify(sens));
  const sub = latentSubspaceDistance(d, p, ex, { perClass: 6, k: 3 });
  const byLatent = [...sub].sort((a, b) => b.latent - a.latent);
  assert.ok(byLatent[0]!.layer === 'fc2' || byLatent[0]!.layer === 'fc1', JSON.stringify(sub));
  assert.ok(sub.find((s) => s.layer === 'fc2')!.latent > sub.find((s) => s.layer === 'conv1')!.latent, JSON.stringify(sub));
});

test('dplens attack gradient-leakage --json writes leakage.json, metrics and a report; foreign flags are refused', async () => {
  const { spawnedDplens } = await import('./cli-helper.js');
  const dplens = spawnedDplens(300_000);
  const { mkdtempSync, existsSync, readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const out = join(mkdtempSync(join(tmpdir(), 'dplens-leak-')), 'run');
  const r = dplens('attack', 'gradient-leakage', '--clients', '60', '--targets', '40', '--aggregation', '1,4', '--project-dim', '16', '--sensitivity-examples', '2', '--subspace-per-class', '3', '--seed', '2', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { vInformation: unknown[]; mostOriginal: string; report: string };
  assert.equal(j.vInformation.length, 8);
  for (const f of ['leakage.json', 'metrics.jsonl', 'run.json', 'config.json', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  assert.equal(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).method, 'attack-gradient-leakage');
  const bad = dplens('attack', 'gradient-leakage', '--rounds', '3', '--out', out);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--rounds does not apply/);
});
