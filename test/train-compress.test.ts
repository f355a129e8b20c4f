/**
 * Compression privatizers (topk, randk, sign, sketch):
 *  - sensitivity property tests: the summed statistic of a batch and of the batch with one record
 *    removed differ by at most the stated sensitivity (topk / randk: C; sign: √P; sketch: C in
 *    sketch space), on gradients with norms far above C;
 *  - events (poissonSampled(q, gaussian(σ)); σ = 0 → nonPrivate) and bytes per example;
 *  - σ = 0 runs caught by the DP-SGD audit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, seededRandom } from '../src/privacy/index.js';
import { buildModel, forwardBackward, perSampleFlat, referenceCnnSpec, setInitSeed } from '../src/nn/index.js';
import { auditRandom, makeDiracCanaries, summarizeAudit } from '../src/audit/index.js';
import { ensureEngine, imageData, makePrivate, privatizers, SGD, RandKPrivatizer, SignPrivatizer, SketchPrivatizer, TopKPrivatizer, type Privatizer } from '../src/train/index.js';
import { auditTraining } from '../src/runs/audit.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';

await ensureEngine();

const model = buildModel([{ type: 'dense', units: 8 }, { type: 'relu' }, { type: 'dense', units: 3 }], [5]);
const params = model.parameters();
const P = params.reduce((s, p) => s + p.value.size, 0);
// large inputs: per-sample gradient norms far above the clip bound
const x = tf.mul(tf.randomNormal([12, 5], 0, 1, 'float32', 9), 40);
const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], 'int32');

function flatSum(priv: Privatizer, rows: number, rng = seededRandom(1)): Float32Array {
  return tf.tidy(() => {
    const fb = forwardBackward(model, tf.slice(x, [0, 0], [rows, 5]), tf.slice(y, [0], [rows]));
    return tf.concat(priv.chunkSum(fb.tape, params, rng).map((g) => tf.reshape(g, [-1]))).dataSync() as Float32Array;
  });
}
const norm = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

test('sensitivity: removing one record moves the summed statistic by ≤ the stated sensitivity', () => {
  const C = 0.7;
  const norms = tf.tidy(() => tf.norm(perSampleFlat(forwardBackward(model, x, y).tape, params), 'euclidean', 1).dataSync());
  assert.ok(norms.filter((v) => v > 3 * C).length >= 8, `fixture gradients exceed the clip bound: ${Array.from(norms)}`);
  const cases: [Privatizer, number][] = [
    [new TopKPrivatizer(7, C, 1), C],
    [new RandKPrivatizer(9, C, 1), C],
    [new SignPrivatizer(P, 0.01, 1), Math.sqrt(P)],
  ];
  for (const [priv, s] of cases) {
    assert.equal(priv.sensitivity, s);
    for (let n = 2; n <= 12; n += 5) {
      const d = norm(flatSum(priv, n), flatSum(priv, n - 1));
      assert.ok(d <= s * (1 + 1e-5), `${priv.name}: moved ${d} > ${s}`);
      assert.ok(d > 0, `${priv.name}: the removed record contributed nothing`);
    }
    if (priv instanceof RandKPrivatizer) priv.finalize(params.map((p) => tf.zeros(p.value.shape)), 1, seededRandom(2)).forEach((t) => t.dispose());
  }
  // top-k keeps exactly k coordinates of each example
  const one = flatSum(new TopKPrivatizer(7, C, 1), 1);
  assert.equal(one.filter((v) => v !== 0).length, 7);
  // sketch: each example's clipped sketch has norm ≤ C (sensitivity in sketch space); decoding is linear
  const sk = new SketchPrivatizer(2, 11, C, 1);
  const rng = seededRandom(3);
  const cols = tf.tidy(() => tf.norm(sk.clippedSketches(perSampleFlat(forwardBackward(model, x, y).tape, params), rng), 'euclidean', 0).dataSync());
  assert.ok(cols.every((v) => v <= C * (1 + 1e-5)) && cols.some((v) => v > 0.99 * C));
});

test('events, σ = 0, bytes per example, noise scale of top-k', () => {
  for (const name of ['topk', 'randk', 'sign', 'sketch']) {
    const f = privatizers[name]!;
    const p = f.create({ noiseMultiplier: 1.3, clip: 1, clipping: 'flat', paramCount: 1000, expectedBatch: 100, options: {} });
    assert.deepEqual(p.stepEvent(0.01), DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.3)), name);
    assert.equal(f.create({ noiseMultiplier: 0, clip: 1, clipping: 'flat', paramCount: 1000, options: {} }).stepEvent(0.01).kind, 'nonPrivate', name);
    assert.equal(p.bytesPerExample, { topk: 80, randk: 40, sign: 125, sketch: 200 }[name], name);
  }
  const t = new TopKPrivatizer(5, 2, 1.5);
  const out = t.finalize([tf.zeros([200, 50])], 10, seededRandom(4));
  const v = out[0]!.dataSync() as Float32Array;
  const std = Math.sqrt(v.reduce((s, a) => s + a * a, 0) / v.length);
  assert.ok(Math.abs(std / ((1.5 * 2) / 10) - 1) < 0.03, `std ${std}`);
  out.forEach((o) => o.dispose());
});

const mnist = loadMnist();
const subset: ImageDataset = {
  ...mnist,
  train: { images: mnist.train.images.slice(0, 480 * 784), labels: mnist.train.labels.slice(0, 480), count: 480 },
  test: { images: mnist.test.images.slice(0, 100 * 784), labels: mnist.test.labels.slice(0, 100), count: 100 },
  rawFingerprint: 'mnist-subset-compress-480',
};

// randk: a Dirac canary is only released when its coordinate is in the step's random support, so
// the audit runs with k = P/2; sketch: w = 2P so that colliding coordinates do not hide the canary.
for (const [name, opts] of [['topk', {}], ['randk', { 'randk-k': 13005 }], ['sketch', { 'sketch-cols': 52020 }]] as const) {
  test(`σ = 0: the DP-SGD audit catches ${name} as non-private`, async (t) => {
    const r = await auditTraining({ model: 'cnn', batch: 240, lr: 0.25, epochs: 6, noise: 0, seed: 11, privatizer: name, privatizerOptions: opts }, { dataOverride: subset, canaries: 1000, seed: 12 });
    t.diagnostic(`σ=0 ${name}: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
    assert.equal(r.claimedEpsilon, null);
    assert.ok(r.empiricalEpsilonLowerBound >= 2, `bound ${r.empiricalEpsilonLowerBound}`);
  });
}

// sign: the audit's σ = 0 score (squared step differences) reads a majority vote the wrong way
// round — an included canary pins its coordinate's vote to +1, so its series changes LESS (measured
// AUC 0.46 through auditTraining). The white-box 'sum' score sees the pinned vote.
test('σ = 0: Dirac canaries with the sum score catch sign (majority vote) as non-private', async (t) => {
  const q = 240 / subset.train.count;
  setInitSeed(42);
  const canaries = makeDiracCanaries(1000, q, auditRandom(43), 'sum');
  const trainer = makePrivate({
    model: buildModel(referenceCnnSpec(10), [28, 28, 1]),
    optimizer: new SGD(0.25),
    data: imageData(subset.train, subset, { mean: [0.1307], std: [0.3081] }),
    noiseMultiplier: 0,
    maxGradNorm: 1,
    delta: 1e-5,
    batchSize: 240,
    privatizer: privatizers.sign!.create({ noiseMultiplier: 0, clip: 1, clipping: 'flat', paramCount: 26010, options: {} }),
    rng: seededRandom(41),
    gradientCanaries: canaries.hook,
  });
  await trainer.fit({ steps: 12 });
  const r = summarizeAudit(canaries.scores(), canaries.included, { claimedEpsilon: null, delta: 1e-5, confidence: 0.95, attack: 'test', seconds: 0 });
  t.diagnostic(`σ=0 sign: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(4)}`);
  assert.ok(r.empiricalEpsilonLowerBound >= 2, `bound ${r.empiricalEpsilonLowerBound}`);
});
