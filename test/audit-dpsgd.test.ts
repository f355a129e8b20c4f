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
import { auditTraining, auditRandom, makeDiracCanaries, statisticFor, summarizeAudit } from '../src/audit/index.js';
import { buildModel, referenceCnnSpec, setInitSeed } from '../src/nn/index.js';
import { ensureEngine, GaussianPrivatizer, gaussianNoise, imageData, makePrivate, SGD } from '../src/train/index.js';
import { seededRandom, type RandomSource } from '../src/privacy/index.js';

const mnist = loadMnist();
function subset(n: number, offset = 0): ImageDataset {
  return {
    ...mnist,
    train: { images: mnist.train.images.slice(offset * 784, (offset + n) * 784), labels: mnist.train.labels.slice(offset, offset + n), count: n },
    test: { images: mnist.test.images.slice(0, 100 * 784), labels: mnist.test.labels.slice(0, 100), count: 100 },
    fingerprint: `mnist-subset-${offset}-${n}`,
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
