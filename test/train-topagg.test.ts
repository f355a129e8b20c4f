/**
 * TopAgg-SGD privatizer (src/train/privatizers/topagg.ts): sensitivity property (one record added
 * or changed moves the vote sum by exactly its own vote vector, L2 norm √k, whatever the data),
 * top-k selection against a brute-force reference, unbiased stochastic signs, and the TopAgg-SGD
 * study's fix (the estimate's scale) on a tiny real-MNIST run.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../src/privacy/index.js';
import { ensureEngine, TopAggPrivatizer, topaggFactory } from '../src/train/index.js';
import { topAggVoteSum } from '../src/train/privatizers/topagg.js';
import { runTraining } from '../src/runs/train.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND });
});

/** Rows with the awkward cases: ties, zeros, NaN, ±∞, tiny and huge magnitudes. */
function awkwardRows(n: number, P: number, seed: number): Float32Array {
  const rng = seededRandom(seed);
  const rows = new Float32Array(n * P);
  rng.normal(rows, 1);
  for (let i = 0; i < rows.length; i++) {
    const u = rng.nextDouble();
    if (u < 0.05) rows[i] = 0;
    else if (u < 0.08) rows[i] = 0.5; // exact ties
    else if (u < 0.09) rows[i] = NaN;
    else if (u < 0.1) rows[i] = rng.nextDouble() < 0.5 ? Infinity : -Infinity;
    else if (u < 0.12) rows[i] *= 1e30;
    else if (u < 0.14) rows[i] *= 1e-30;
  }
  return rows;
}

test('sensitivity property: adding one record (any gradient) moves the vote sum by exactly k entries of ±1 (L2 = √k)', () => {
  const P = 97;
  for (const k of [1, 5, 40, 97]) {
    for (let trial = 0; trial < 20; trial++) {
      const n = 1 + (trial % 7);
      const base = awkwardRows(n, P, 100 * k + trial);
      // the added record: random, all-zero, all-NaN, or all-equal
      const extra = new Float32Array(P);
      const kind = trial % 4;
      if (kind === 0) seededRandom(trial).normal(extra, 3);
      else if (kind === 2) extra.fill(NaN);
      else if (kind === 3) extra.fill(-2);
      const withX = new Float32Array((n + 1) * P);
      withX.set(base);
      withX.set(extra, n * P);
      for (const clip of [undefined, 0.01]) {
        // same coin stream: the first n rows draw identical coins, so the difference is the new row's votes
        const a = topAggVoteSum(base, n, P, k, clip, seededRandom(7));
        const b = topAggVoteSum(withX, n + 1, P, k, clip, seededRandom(7));
        let nz = 0;
        let sq = 0;
        for (let t = 0; t < P; t++) {
          const d = b[t]! - a[t]!;
          if (d !== 0) {
            assert.ok(d === 1 || d === -1, `difference ${d} at ${t}`);
            nz++;
          }
          sq += d * d;
        }
        assert.equal(nz, k, `k=${k} trial=${trial}: ${nz} votes`);
        assert.equal(Math.sqrt(sq), Math.sqrt(k));
      }
    }
  }
  // replace-one: swapping one record's gradient moves the sum by at most 2√k (DataLens's bound)
  const P2 = 50;
  const k2 = 10;
  const rows = awkwardRows(4, P2, 3);
  const swapped = rows.slice();
  seededRandom(9).normal(swapped.subarray(3 * P2), 10);
  const a = topAggVoteSum(rows, 4, P2, k2, undefined, seededRandom(1));
  const b = topAggVoteSum(swapped, 4, P2, k2, undefined, seededRandom(1));
  const l2 = Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));
  assert.ok(l2 <= 2 * Math.sqrt(k2) + 1e-12, `replace-one L2 ${l2}`);
  assert.equal(new TopAggPrivatizer({ k: 7, noiseMultiplier: 1 }).sensitivity, Math.sqrt(7));
});

test('top-k support equals a brute-force sort by |g| (ties by position; NaN/∞ count as 0)', () => {
  const P = 300;
  const n = 12;
  const k = 17;
  const rows = awkwardRows(n, P, 42);
  for (let e = 0; e < n; e++) {
    const row = rows.subarray(e * P, (e + 1) * P);
    const mag = Array.from(row, (v) => (Number.isFinite(v) ? Math.abs(v) : 0));
    const want = mag.map((m, i) => [m, i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, k).map((x) => x[1]).sort((x, y) => x - y);
    const got = topAggVoteSum(row, 1, P, k, undefined, seededRandom(e));
    const support = Array.from(got).flatMap((v, i) => (v !== 0 ? [i] : []));
    assert.deepEqual(support, want, `row ${e}`);
  }
});

test('stochastic sign is unbiased for g / b, b = min(max|g|, clip)', () => {
  const g = Float32Array.from([0.8, -0.4, 0.2, 0, -0.1, 0.05]);
  const P = g.length;
  const reps = 20000;
  const rows = new Float32Array(reps * P);
  for (let r = 0; r < reps; r++) rows.set(g, r * P);
  for (const clip of [undefined, 0.2]) {
    const sum = topAggVoteSum(rows, reps, P, P, clip, seededRandom(3));
    const b = clip === undefined ? 0.8 : Math.min(0.8, clip);
    for (let t = 0; t < P; t++) {
      const expect = Math.max(-1, Math.min(1, g[t]! / b));
      const se = Math.sqrt((1 - expect * expect) / reps) + 1e-9;
      assert.ok(Math.abs(sum[t]! / reps - expect) < 5 * se + 1e-12, `coord ${t} clip ${clip}: ${sum[t]! / reps} vs ${expect}`);
    }
  }
});

test('factory defaults: k = 1% of the parameters, no per-coordinate cap, estimate scale 1.5', () => {
  const p = topaggFactory.create({ noiseMultiplier: 1, clip: 1.5, clipping: 'flat', paramCount: 26010, options: {} }) as TopAggPrivatizer;
  assert.equal(p.opts.k, 260);
  assert.equal(p.opts.clip, undefined);
  assert.equal(p.scale, 1.5);
  assert.throws(() => new TopAggPrivatizer({ k: 3, noiseMultiplier: 1, scale: 0 }), /scale must be > 0/);
});

/** The first n training and m test images of MNIST (a tiny, fast real-data run). */
function mnistSubset(n: number, m: number): ImageDataset {
  const ds = loadMnist();
  const per = ds.height * ds.width * ds.channels;
  const cut = (s: ImageDataset['train'], c: number) => ({ images: s.images.subarray(0, c * per), labels: s.labels.subarray(0, c), count: c });
  return { ...ds, train: cut(ds.train, n), test: cut(ds.test, m) };
}

test('TopAgg-SGD study fix: on real MNIST the new defaults learn well above chance, the old estimate scale barely moves', async () => {
  const ds = mnistSubset(6000, 1000);
  // 30 steps of q = 120/6000, σ = 0.5, lr 1, reference CNN, fixed seeds (init, sampling, noise, coins)
  const base = { epochs: 0.6, batch: 120, noise: 0.5, lr: 1, delta: 1e-5, seed: 5, privatizer: 'topagg' };
  const fixed = await runTraining(base, { dataOverride: ds });
  // the old defaults: fixed per-coordinate clip 0.01 and estimate c·votes/B (= scale c·√k, k = 260)
  const old = await runTraining({ ...base, privatizerOptions: { 'topagg-clip': 0.01, 'topagg-scale': 0.01 * Math.sqrt(260) } }, { dataOverride: ds });
  console.log(`# TopAgg 30 steps on 6000 MNIST images: new defaults ${fixed.testAccuracy}, old scale ${old.testAccuracy} (measured 0.281 / 0.181)`);
  assert.ok(fixed.testAccuracy! > 0.2, `new defaults: test accuracy ${fixed.testAccuracy}`);
  assert.ok(fixed.testAccuracy! > old.testAccuracy! + 0.05, `new ${fixed.testAccuracy} vs old ${old.testAccuracy}`);
});
