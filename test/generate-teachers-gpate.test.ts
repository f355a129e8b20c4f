import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../src/privacy/index.js';
import type { ImageDataset } from '../src/data/types.js';
import { assignShards, ensureEngine, TeacherEnsemble, histograms, thresholdStep, argmaxStep, backProject, drawProjections } from '../src/generate/index.js';

before(async () => {
  await ensureEngine();
});

function tinyDataset(count: number, side: number, C: number, seed: number): ImageDataset {
  const rng = seededRandom(seed);
  const u = new Float64Array(count * side * side);
  rng.uniform(u);
  const images = Uint8Array.from(u, (v) => Math.floor(v * 256));
  const labels = Int32Array.from({ length: count }, (_, i) => i % C);
  const split = { images, labels, count };
  return { kind: 'image', name: 'tiny', height: side, width: side, channels: 1, numClasses: C, train: split, test: split, rawFingerprint: 'tiny' + seed, source: 'test' };
}

const cfg = (N: number, arch: { perClassHead?: boolean; classLinear?: boolean; hidden?: number } = {}) => ({ numTeachers: N, hidden: 6, lr: 1e-2, beta1: 0.5, initStd: 0.5, batchSize: 4, ...arch });

const ARCHS = [{}, { perClassHead: true }, { perClassHead: true, classLinear: true }, { classLinear: true, hidden: 0 }];

for (const arch of ARCHS) test(`teacher image gradients match finite differences of each teacher’s own loss (${JSON.stringify(arch)})`, () => {
  const N = 3;
  const data = tinyDataset(12, 4, 3, 1);
  const ens = new TeacherEnsemble(cfg(N, arch), data, assignShards(12, N), 7);
  const B = 2;
  const d = 16;
  const rng = seededRandom(2);
  const x = new Float32Array(B * d);
  rng.uniform(x);
  const y = Int32Array.from([0, 2]);
  const grads = ens.imageGradients(x, y);
  const lossPerTeacher = (xx: Float32Array): number[] => {
    const tiled = new Float32Array(N * B * d);
    for (let i = 0; i < N; i++) tiled.set(xx, i * B * d);
    const labels = new Int32Array(N * B);
    for (let i = 0; i < N; i++) labels.set(y, i * B);
    const l = ens.logits(tiled, labels, B);
    return Array.from({ length: N }, (_, i) => {
      let s = 0;
      for (let b = 0; b < B; b++) s += Math.log1p(Math.exp(-l[i * B + b]!));
      return s / B;
    });
  };
  const h = 1e-2;
  for (const [b, t] of [[0, 0], [0, 5], [1, 9], [1, 15]] as const) {
    const xp = x.slice();
    const xm = x.slice();
    xp[b * d + t]! += h;
    xm[b * d + t]! -= h;
    const lp = lossPerTeacher(xp);
    const lm = lossPerTeacher(xm);
    for (let i = 0; i < N; i++) {
      const numeric = -(lp[i]! - lm[i]!) / (2 * h);
      const analytic = grads[(i * B + b) * d + t]!;
      assert.ok(Math.abs(numeric - analytic) <= 2e-3 * Math.max(1, Math.abs(numeric)) + 5e-4, `teacher ${i} sample ${b} pixel ${t}: analytic ${analytic} vs numeric ${numeric}`);
    }
  }
  ens.dispose();
});

for (const arch of ARCHS) test(`training lowers the teacher loss, and a changed record affects only its own teacher (P3) (${JSON.stringify(arch)})`, () => {
  const N = 4;
  const count = 16;
  const data = tinyDataset(count, 4, 2, 3);
  const shards = assignShards(count, N);
  const changed = 5;
  const owner = shards.shardOf[changed]!;
  const data2: ImageDataset = { ...data, train: { ...data.train, images: data.train.images.slice(), labels: data.train.labels.slice() } };
  for (let t = 0; t < 16; t++) data2.train.images[changed * 16 + t] = 255 - data2.train.images[changed * 16 + t]!;
  data2.train.labels[changed] = 1 - data2.train.labels[changed]!;
  const e1 = new TeacherEnsemble(cfg(N, arch), data, shards, 9);
  const e2 = new TeacherEnsemble(cfg(N, arch), data2, shards, 9);
  const table = new Float32Array(2 * 4 * 16);
  seededRandom(4).uniform(table);
  const probe = new Float32Array(N * 4 * 16);
  seededRandom(5).uniform(probe);
  const probeLabels = Int32Array.from({ length: N * 4 }, (_, i) => i % 2);
  const before1 = e1.logits(probe, probeLabels, 4);
  for (let s = 0; s < 15; s++) {
    e1.trainStep(0, e1.fakeBatch(0, table));
    e2.trainStep(0, e2.fakeBatch(0, table));
  }
  const l1 = e1.logits(probe, probeLabels, 4);
  const l2 = e2.logits(probe, probeLabels, 4);
  assert.notDeepEqual(Array.from(before1), Array.from(l1), 'training changed nothing');
  for (let i = 0; i < N; i++) {
    const a = Array.from(l1.subarray(i * 4, i * 4 + 4));
    const b = Array.from(l2.subarray(i * 4, i * 4 + 4));
    if (i === owner) assert.notDeepEqual(a, b, 'the owner of the changed record should differ');
    else assert.deepEqual(a, b, `teacher ${i} changed although its shard did not`);
  }
  // Real rows scored "real", fakes "fake": the loss on the real batch went down.
  const fake = e1.fakeBatch(0, table);
  const lf = e1.logits(fake.X, fake.labels, 4);
  const meanFake = lf.reduce((a, b) => a + b, 0) / lf.length;
  assert.ok(meanFake < 0, `fake logits should be negative after training, mean ${meanFake}`);
  e1.dispose();
  e2.dispose();
});

test('G-PATE: one vote per teacher per coordinate; a changed teacher moves one vote', () => {
  const B = 3;
  const N = 50;
  const p = { projDim: 4, bins: 10, clip: 1, sigma1: 1, sigma2: 1, thresh: 0.5 };
  const rng = seededRandom(8);
  const u = new Float32Array(B * N * p.projDim);
  rng.normal(u, 0.7);
  const h = histograms(u, B, N, p);
  for (let c = 0; c < B * p.projDim; c++) assert.equal(h.subarray(c * 10, c * 10 + 10).reduce((a, b) => a + b, 0), N);
  const u2 = u.slice();
  for (let j = 0; j < B; j++) for (let l = 0; l < p.projDim; l++) u2[(j * N + 17) * p.projDim + l] = 50; // clipped to +c: last bin
  const h2 = histograms(u2, B, N, p);
  for (let c = 0; c < B * p.projDim; c++) {
    let l1 = 0;
    for (let m = 0; m < 10; m++) l1 += Math.abs(h[c * 10 + m]! - h2[c * 10 + m]!);
    assert.ok(l1 <= 2, `coordinate ${c}: histogram moved by ${l1}`);
    assert.ok(h2[c * 10 + 9]! >= 1);
  }
});

test('G-PATE: Confident-GNMax answers a clear consensus with its bin midpoint and skips a split vote', () => {
  const p = { projDim: 2, bins: 10, clip: 1e-4, sigma1: 1, sigma2: 1, thresh: 0.5 };
  const N = 100;
  const hist = new Int32Array(2 * 10);
  hist[3] = 95; // coordinate 0: consensus in bin 3
  hist[4] = 5;
  for (let m = 0; m < 10; m++) hist[10 + m] = 10; // coordinate 1: split
  const rng = seededRandom(3);
  const answered = thresholdStep(hist, N, p, rng);
  assert.deepEqual(Array.from(answered), [1, 0]);
  const r = argmaxStep(hist, answered, p, rng);
  assert.ok(Math.abs(r[0]! - (-1e-4 + 3.5 * 2e-5)) < 1e-12);
  assert.equal(r[1], 0);
  // Back-projection is P r.
  const proj = drawProjections(1, 3, 2, seededRandom(1));
  const out = backProject(Float32Array.from([2, -1]), proj, 1, 3, 2);
  for (let t = 0; t < 3; t++) assert.ok(Math.abs(out[t]! - (2 * proj[t * 2]! - proj[t * 2 + 1]!)) < 1e-6);
});
