/**
 * Fidelity metrics (evaluate/fidelity.ts, feature-net.ts): FID against closed forms, the
 * Kynkäänniemi et al. (2019) k-NN precision / recall, and on real MNIST: real vs real is close,
 * one prototype per class (the 10 class means, repeated) has a recall far below real images.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/engine/index.js';
import { classCounts, featuresOf, fid, fidelityFromFeatures, frechetDistance, precisionRecall, symmetricEigen, toFloatImages, trainFeatureNet, loadFeatureNet, type Classifier } from '../src/evaluate/index.js';
import { mulberry32 } from '../src/util/prng.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

function gaussian(n: number, dim: number, mean: number[], std: number[], seed: number): Float32Array {
  const r = mulberry32(seed);
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n * dim; i++) {
    const u = Math.max(1e-12, r());
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
    x[i] = mean[i % dim]! + std[i % dim]! * z;
  }
  return x;
}

test('symmetricEigen reconstructs a symmetric matrix (V diag(λ) Vᵀ = A)', () => {
  const n = 6;
  const r = mulberry32(4);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = r() - 0.5;
  const { values, vectors: V } = symmetricEigen(a, n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += V[i * n + k]! * values[k]! * V[j * n + k]!;
      assert.ok(Math.abs(s - a[i * n + j]!) < 1e-10);
    }
});

test('Fréchet distance matches closed forms (identical: 0; diagonal: Σ (μ₁−μ₂)² + (σ₁−σ₂)²)', () => {
  const dim = 3;
  const m1 = Float64Array.from([0, 1, 2]);
  const m2 = Float64Array.from([1, 1, 0]);
  const diag = (v: number[]) => Float64Array.from({ length: 9 }, (_, i) => (i % 4 === 0 ? v[i / 4]! : 0));
  assert.ok(Math.abs(frechetDistance(m1, diag([1, 2, 3]), m1, diag([1, 2, 3]), dim)) < 1e-9);
  // 1 + 0 + 4 for the means; (1−2)² + (√2−√2)² + (√3−1)² for the covariances
  const want = 5 + 1 + 0 + (Math.sqrt(3) - 1) ** 2;
  assert.ok(Math.abs(frechetDistance(m1, diag([1, 2, 3]), m2, diag([4, 2, 1]), dim) - want) < 1e-9);
  // sample version: two large samples from one Gaussian are close, a shifted one is ~‖Δμ‖² away
  const a = gaussian(4000, 4, [0, 0, 0, 0], [1, 1, 1, 1], 1);
  const b = gaussian(4000, 4, [0, 0, 0, 0], [1, 1, 1, 1], 2);
  const c = gaussian(4000, 4, [2, 0, 0, 0], [1, 1, 1, 1], 3);
  assert.ok(fid(a, 4000, b, 4000, 4) < 0.05);
  assert.ok(Math.abs(fid(a, 4000, c, 4000, 4) - 4) < 0.3);
});

test('precision/recall (k = 5): same distribution high; prototypes have high precision and near-zero recall', () => {
  const dim = 8;
  const n = 1000;
  const real = gaussian(n, dim, new Array(dim).fill(0), new Array(dim).fill(1), 5);
  const same = precisionRecall(real, n, gaussian(n, dim, new Array(dim).fill(0), new Array(dim).fill(1), 6), n, dim, 5);
  assert.ok(same.precision > 0.6 && same.recall > 0.6, JSON.stringify(same));
  // 10 prototypes near the centre, each repeated 100 times: inside the real manifold, covering none of it
  const protos = gaussian(10, dim, new Array(dim).fill(0), new Array(dim).fill(0.3), 7);
  const fake = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) fake.set(protos.subarray((i % 10) * dim, ((i % 10) + 1) * dim), i * dim);
  const pr = precisionRecall(real, n, fake, n, dim, 5);
  assert.ok(pr.precision > 0.9, JSON.stringify(pr));
  assert.ok(pr.recall < 0.05, JSON.stringify(pr));
});

test('classCounts counts samples per class', () => {
  assert.deepEqual(classCounts(Int32Array.from([0, 2, 2, 1, 2]), 4), [1, 1, 3, 0]);
});

test('on real MNIST features: real vs real is close; one prototype per class has a far lower recall', () => {
  const n = 1500;
  const per = 784;
  const geo = { height: 28, width: 28, channels: 1 };
  // the feature net: trained only on real training images (the first 3000, 1 epoch: a small test instrument)
  const { net, saved } = trainFeatureNet({ ...mnist.train, ...geo }, 10, 3000, 1);
  let reloaded: Classifier | undefined;
  try {
    const testSet = toFloatImages({ ...mnist.test, ...geo }, Int32Array.from({ length: n }, (_, i) => i));
    // held-out real training images (never seen by the feature net)
    const heldOut = toFloatImages({ ...mnist.train, ...geo }, Int32Array.from({ length: n }, (_, i) => 50000 + i));
    // the 10 class means of real training images, repeated: what a "one prototype per class" generator emits
    const sums = new Float64Array(10 * per);
    const cnt = new Array<number>(10).fill(0);
    for (let i = 0; i < 10000; i++) {
      const l = mnist.train.labels[i]!;
      cnt[l]!++;
      for (let t = 0; t < per; t++) sums[l * per + t] += mnist.train.images[i * per + t]!;
    }
    const proto = new Uint8Array(n * per);
    const plabels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const l = i % 10;
      plabels[i] = l;
      for (let t = 0; t < per; t++) proto[i * per + t] = Math.round(sums[l * per + t]! / cnt[l]!);
    }
    const protoSet = toFloatImages({ images: proto, labels: plabels, count: n, ...geo });
    const fr = featuresOf(net, testSet);
    const fh = featuresOf(net, heldOut);
    const fp = featuresOf(net, protoSet);
    const realVsReal = fidelityFromFeatures(fr.data, fh.data, n, fr.dim);
    const protoVsReal = fidelityFromFeatures(fr.data, fp.data, n, fr.dim);
    assert.ok(realVsReal.precision > 0.6 && realVsReal.recall > 0.6, JSON.stringify(realVsReal));
    assert.ok(protoVsReal.recall < 0.1, JSON.stringify(protoVsReal));
    assert.ok(protoVsReal.recall < realVsReal.recall / 5);
    assert.ok(protoVsReal.fid > 3 * realVsReal.fid, `FID prototypes ${protoVsReal.fid} vs real ${realVsReal.fid}`);
    // the cached form rebuilds the same instrument
    reloaded = loadFeatureNet(saved, { config: saved.config, numClasses: 10, ...geo });
    const again = featuresOf(reloaded, testSet);
    assert.deepEqual(Array.from(again.data.subarray(0, 50)), Array.from(fr.data.subarray(0, 50)));
    assert.throws(() => loadFeatureNet(saved, { config: { ...saved.config, epochs: 2 }, numClasses: 10, ...geo }), /does not match/);
  } finally {
    net.dispose();
    reloaded?.dispose();
  }
});
