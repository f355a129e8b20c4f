import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { distanceToClosestRecord, dcrAttack, liraOfflineScores, lossAndConfidence, lossThresholdAttack, normalCdf } from '../src/audit/mia.js';
import { membershipInferenceTraining } from '../src/runs/mia-train.js';
import { ensureEngine } from '../src/train/index.js';
import { xorshift32 } from '../src/util/prng.js';

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r());
}

test('loss and logit-scaled confidence from logits', () => {
  const logits = [2, 0, -1, 0, 0, 0];
  const { loss, phi } = lossAndConfidence(logits, [0, 2], 3);
  const p0 = Math.exp(2) / (Math.exp(2) + 1 + Math.exp(-1));
  assert.ok(Math.abs(loss[0]! + Math.log(p0)) < 1e-12);
  assert.ok(Math.abs(phi[0]! - Math.log(p0 / (1 - p0))) < 1e-12);
  assert.ok(Math.abs(phi[1]! - Math.log(0.5)) < 1e-12); // p = 1/3 → log(1/3 / 2/3)
  assert.throws(() => lossAndConfidence(logits, [0, 3], 3), RangeError);
  assert.ok(Math.abs(normalCdf(1.959964) - 0.975) < 1e-6 && Math.abs(normalCdf(-1) - 0.158655) < 1e-6);
});

test('offline LiRA beats the plain threshold when examples differ in difficulty', () => {
  // example i has its own OUT mean μ_i (difficulty); membership adds +1 to φ
  const r = xorshift32(5);
  const n = 2000;
  const mu = Array.from({ length: n }, () => 3 * gauss(r));
  const member = Array.from({ length: n }, () => r() < 0.5);
  const target = mu.map((m, i) => m + (member[i] ? 1 : 0) + 0.3 * gauss(r));
  const outPhi = mu.map((m) => Array.from({ length: 8 }, () => m + 0.3 * gauss(r)));
  const lira = liraOfflineScores(target, outPhi);
  const liraM = lossThresholdAttack(lira.map((s) => -s), member); // −(−s) = s: reuse ROC code
  const plain = lossThresholdAttack(target.map((p) => -p), member);
  assert.ok(liraM.auc > 0.95, `lira auc ${liraM.auc}`);
  assert.ok(plain.auc < 0.7, `threshold auc ${plain.auc}`);
  assert.ok(liraM.tprAt1 > plain.tprAt1 + 0.3);
  assert.throws(() => liraOfflineScores([1], [[]]), RangeError);
});

test('distance to closest record matches brute force, with and without labels', () => {
  const r = xorshift32(9);
  const dim = 20;
  const mk = (count: number) => ({ images: Uint8Array.from({ length: count * dim }, () => Math.floor(r() * 256)), labels: Int32Array.from({ length: count }, () => Math.floor(r() * 3)), count });
  const cand = mk(37);
  const syn = mk(600);
  for (const useLabels of [false, true]) {
    const got = distanceToClosestRecord(useLabels ? cand : { ...cand, labels: undefined }, syn, dim);
    for (let i = 0; i < cand.count; i++) {
      let best = Infinity;
      for (let j = 0; j < syn.count; j++) {
        if (useLabels && cand.labels[i] !== syn.labels[j]) continue;
        let s = 0;
        for (let k = 0; k < dim; k++) s += ((cand.images[i * dim + k]! - syn.images[j * dim + k]!) / 255) ** 2;
        best = Math.min(best, s);
      }
      assert.ok(Math.abs(got[i]! - Math.sqrt(best)) < 1e-3, `i=${i}: ${got[i]} vs ${Math.sqrt(best)}`);
    }
  }
  // a generator that copies its members: DCR = 0 for members → AUC 1
  const members = Array.from({ length: cand.count }, (_, i) => i % 2 === 0);
  const copies = { images: new Uint8Array(cand.images.filter((_, k) => members[Math.floor(k / dim)]!)), count: members.filter(Boolean).length };
  const dcr = distanceToClosestRecord({ images: cand.images, count: cand.count }, copies, dim);
  assert.ok(Math.abs(dcrAttack(dcr, members).auc - 1) < 1e-12);
});

test('membership inference on a small non-private MNIST model: loss and LiRA beat chance', async (t) => {
  await ensureEngine();
  const mnist = loadMnist();
  const n = 256;
  const pool: ImageDataset = { ...mnist, train: { images: mnist.train.images.slice(0, n * 784), labels: mnist.train.labels.slice(0, n), count: n }, rawFingerprint: 'mia-pool' };
  // σ = 0, ~60 epochs of 128 examples: the model memorises its half of the pool
  const res = await membershipInferenceTraining({ model: 'cnn', batch: 64, epochs: 60, noise: 0, clip: 10, lr: 0.2, delta: 1e-5, seed: 3 }, pool, { shadows: 4, seed: 4 });
  t.diagnostic(`loss AUC ${res.loss.auc.toFixed(3)}, LiRA AUC ${res.lira.auc.toFixed(3)}, TPR@1% ${res.lira.tprAt1.toFixed(3)}, ${res.seconds.toFixed(1)} s`);
  assert.ok(res.loss.auc > 0.6, `loss auc ${res.loss.auc}`);
  assert.ok(res.lira.auc > 0.6, `lira auc ${res.lira.auc}`);
});
