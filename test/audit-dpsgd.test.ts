/**
 * One-run DP-SGD audits on real MNIST (small subsets so each run takes seconds):
 *  - σ = 0 (explicitly non-private): the audit must find ε ≥ 4 at 95% with m = 1000 canaries;
 *  - correctly private runs at several σ: the bound never exceeds the claimed ε;
 *  - an injected privacy bug (noise divided by the batch size twice) is flagged: bound > claimed ε.
 * Subset runs: n = 480 examples, expected batch 240 (q = ½), 50 steps — 12k example-gradients,
 * a fifth of an MNIST epoch of compute. A high sampling rate lets each included canary enter
 * ~25 steps, which is what makes a strong bound possible in a short run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { auditRandom, makeDiracCanaries, statisticFor, summarizeAudit } from '../src/audit/index.js';
import { auditTraining } from '../src/runs/audit.js';
import { buildModel, referenceCnnSpec, setInitSeed } from '../src/nn/index.js';
import { ensureEngine, GaussianPrivatizer, gaussianNoise, imageData, makePrivate, SGD } from '../src/train/index.js';
import { seededRandom, type RandomSource } from '../src/privacy/index.js';

const mnist = loadMnist();
function subset(n: number, offset = 0): ImageDataset {
  return {
    ...mnist,
    train: { images: mnist.train.images.slice(offset * 784, (offset + n) * 784), labels: mnist.train.labels.slice(offset, offset + n), count: n },
    test: { images: mnist.test.images.slice(0, 100 * 784), labels: mnist.test.labels.slice(0, 100), count: 100 },
    rawFingerprint: `mnist-subset-${offset}-${n}`,
  };
}

const base = { model: 'cnn' as const, batch: 240, clip: 1.5, lr: 0.25, delta: 1e-5 };

test('σ = 0: the audit finds ε ≥ 4 at 95% confidence with 1000 gradient canaries', async (t) => {
  const r = await auditTraining({ ...base, epochs: 25, noise: 0, seed: 11 }, { dataOverride: subset(480), canaries: 1000, seed: 12 });
  t.diagnostic(`σ=0: bound ${r.empiricalEpsilonLowerBound.toFixed(3)} (claimed ∞), auc ${r.auc.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
  assert.equal(r.claimedEpsilon, null); // ε = ∞ for a non-private run
  assert.equal(r.m, 1000);
  assert.ok(r.empiricalEpsilonLowerBound >= 4, `bound ${r.empiricalEpsilonLowerBound}`);
  assert.ok(r.auc > 0.98, `auc ${r.auc}`);
  assert.equal(r.violation, false);
});

test('correctly private runs: the bound never exceeds the claimed ε (σ = 2, 4, 8)', async (t) => {
  for (const [i, sigma] of [2, 4, 8].entries()) {
    const r = await auditTraining({ ...base, epochs: 10, noise: sigma, seed: 20 + i }, { dataOverride: subset(480, 480 * (i + 1)), canaries: 1000, seed: 30 + i });
    t.diagnostic(`σ=${sigma}: bound ${r.empiricalEpsilonLowerBound.toFixed(3)} vs claimed ${r.claimedEpsilon?.toFixed(3)}, auc ${r.auc.toFixed(4)}`);
    assert.ok(r.claimedEpsilon !== null && r.claimedEpsilon > 0);
    assert.ok(r.empiricalEpsilonLowerBound <= r.claimedEpsilon!, `σ=${sigma}: bound ${r.empiricalEpsilonLowerBound} > claimed ${r.claimedEpsilon}`);
    assert.equal(r.violation, false);
    // the canaries are detectable at all at low σ (the audit is not vacuous)
    if (sigma === 2) assert.ok(r.auc > 0.6, `σ=2 auc ${r.auc}`);
  }
});

/** Test-only privatizer with a realistic bug: noise std σC/B added to the sum (the 1/B applied twice). */
class NoiseScaledTwicePrivatizer extends GaussianPrivatizer {
  override finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const std = (this.noiseMultiplier * this.clipping.maxGradNorm) / expectedBatch; // BUG: should not divide here
    return sum.map((s) => tf.tidy(() => tf.div(tf.add(s, gaussianNoise(s.shape, std, rng)), expectedBatch)));
  }
}

test('an injected privacy bug (noise scaled by 1/B twice) is flagged: bound > claimed ε', async (t) => {
  await ensureEngine();
  const ds = subset(480, 2400);
  const sigma = 8;
  const q = 240 / ds.train.count;
  const steps = 50;
  const rng = seededRandom(41);
  setInitSeed(42);
  const canaries = makeDiracCanaries(1000, q, auditRandom(43), statisticFor(sigma));
  const trainer = makePrivate({
    model: buildModel(referenceCnnSpec(10), [28, 28, 1]),
    optimizer: new SGD(0.25),
    data: imageData(ds.train, ds, { mean: [0.1307], std: [0.3081] }),
    noiseMultiplier: sigma,
    maxGradNorm: 1.5,
    delta: 1e-5,
    batchSize: 240,
    privatizer: new NoiseScaledTwicePrivatizer(sigma, { maxGradNorm: 1.5 }),
    rng,
    gradientCanaries: canaries.hook,
  });
  const fit = await trainer.fit({ steps });
  assert.ok(fit.epsilon > 1 && fit.epsilon < 3, `claimed ε ${fit.epsilon}`); // the accountant believes σ = 8
  const r = summarizeAudit(canaries.scores(), canaries.included, { claimedEpsilon: fit.epsilon, delta: 1e-5, confidence: 0.95, attack: 'test', seconds: 0 });
  t.diagnostic(`bug: bound ${r.empiricalEpsilonLowerBound.toFixed(3)} vs claimed ${fit.epsilon.toFixed(3)}`);
  assert.ok(r.violation, `bug not flagged: bound ${r.empiricalEpsilonLowerBound} vs claimed ${fit.epsilon}`);
  assert.ok(r.empiricalEpsilonLowerBound > fit.epsilon + 0.5, `bound ${r.empiricalEpsilonLowerBound}`);
});

test('input-space canaries (mislabeled held-out images, black box) are detected in a non-private run', async (t) => {
  // 100 real examples + ~50 included canaries, many passes: a small model memorises its mislabeled inputs
  const ds = { ...subset(100, 4800), test: mnist.test };
  const r = await auditTraining({ ...base, batch: 75, epochs: 60, clip: 10, lr: 0.1, noise: 0, seed: 51 }, { dataOverride: ds, canaries: 100, seed: 52, canaryType: 'input' });
  t.diagnostic(`input canaries σ=0: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(3)}`);
  assert.match(r.attack, /input canaries/);
  assert.equal(r.m, 100);
  assert.ok(r.auc > 0.7, `auc ${r.auc}`);
  assert.ok(r.empiricalEpsilonLowerBound > 0.5, `bound ${r.empiricalEpsilonLowerBound}`);
});

// The CLI contract run: one epoch of full MNIST at σ = 1.3, then its audit (several minutes).
test('long: audit of a 1-epoch MNIST DP-SGD run stays below the claimed ε and within 2× the run time', { skip: process.env.DPLENS_LONG !== '1' }, async (t) => {
  const { runTraining } = await import('../src/runs/train.js');
  const cfg = { ...base, data: 'mnist', epochs: 1, noise: 1.3, evaluate: false };
  const t0 = Date.now();
  const run = await runTraining(cfg, { dataOverride: mnist });
  const runSeconds = (Date.now() - t0) / 1000;
  const r = await auditTraining(cfg, { dataOverride: mnist, canaries: 1000 });
  t.diagnostic(`1 epoch σ=1.3: claimed ε ${run.epsilon}, bound ${r.empiricalEpsilonLowerBound}, run ${runSeconds.toFixed(1)} s, audit ${r.seconds.toFixed(1)} s`);
  assert.ok(r.empiricalEpsilonLowerBound <= r.claimedEpsilon!);
  assert.ok(r.seconds <= 2 * runSeconds, `audit ${r.seconds} s vs run ${runSeconds} s`);
});
