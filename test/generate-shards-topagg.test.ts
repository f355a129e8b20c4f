import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../src/privacy/index.js';
import { assignShards, kthLargestAbs, noisyAggregate, voteSums, addTeacherVotes, topAgg, smoothImages } from '../src/generate/index.js';

test('shards: disjoint, equal size m = floor(n/N), remainder dropped, independent of record contents', () => {
  const n = 60001;
  const N = 4000;
  const a = assignShards(n, N);
  assert.equal(a.shardSize, 15);
  const seen = new Uint8Array(n);
  for (const r of a.members) {
    assert.equal(seen[r], 0, `record ${r} is in two shards`);
    seen[r] = 1;
  }
  let dropped = 0;
  for (let r = 0; r < n; r++) {
    if (a.shardOf[r] === -1) dropped++;
    else assert.equal(a.members[a.shardOf[r]! * a.shardSize + (a.members.subarray(a.shardOf[r]! * a.shardSize, (a.shardOf[r]! + 1) * a.shardSize).indexOf(r))], r);
  }
  assert.equal(dropped, n - N * 15);
  // Deterministic, public rule: the same assignment every time, and not the identity (shuffled).
  assert.deepEqual(assignShards(n, N).members, a.members);
  assert.notDeepEqual(Array.from(a.members.subarray(0, 20)), Array.from({ length: 20 }, (_, i) => i));
});

test('shards: replacing one record changes the contents of exactly one shard', () => {
  const n = 1200;
  const N = 40;
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7) % 10);
  const a = assignShards(n, N);
  const changed = 517;
  const labels2 = labels.slice();
  labels2[changed] = (labels2[changed]! + 3) % 10;
  // Assignment depends only on (n, N, public seed); a label-sorted dealing would move many records.
  const b = assignShards(n, N);
  let differing = 0;
  for (let i = 0; i < N; i++) {
    const s1 = Array.from(a.members.subarray(i * a.shardSize, (i + 1) * a.shardSize), (r) => `${r}:${labels[r]}`);
    const s2 = Array.from(b.members.subarray(i * b.shardSize, (i + 1) * b.shardSize), (r) => `${r}:${labels2[r]}`);
    if (s1.join() !== s2.join()) differing++;
  }
  assert.equal(differing, 1);
  assert.throws(() => assignShards(10, 20), /need at least 20 records/);
  assert.throws(() => assignShards(100, 0), /positive integer/);
});

test('kthLargestAbs agrees with sorting', () => {
  const rng = seededRandom(3);
  const scratch = new Float32Array(97);
  for (let trial = 0; trial < 200; trial++) {
    const row = new Float32Array(97);
    rng.normal(row);
    if (trial % 3 === 0) for (let t = 0; t < 97; t += 4) row[t] = 0.5; // ties
    const k = 1 + (trial % 97);
    const sorted = Array.from(row, Math.abs).sort((x, y) => y - x);
    assert.equal(kthLargestAbs(row, k, scratch), Math.fround(sorted[k - 1]!));
  }
});

test('each teacher casts at most k votes, all ±1, on its k largest |g|', () => {
  const d = 50;
  const k = 7;
  const rng = seededRandom(5);
  for (const stochastic of [true, false]) {
    const row = new Float32Array(d);
    rng.normal(row);
    const acc = new Int32Array(d);
    const u = new Float64Array(k);
    rng.uniform(u);
    addTeacherVotes(row, { k, clip: 0.5, stochastic }, u, 0, acc, 0, new Float32Array(d), new Int32Array(k));
    const nz = Array.from(acc).filter((v) => v !== 0);
    assert.ok(nz.length <= k);
    assert.ok(nz.every((v) => v === 1 || v === -1));
    const top = Array.from(row, (g, t) => [Math.abs(g), t] as const).sort((x, y) => y[0] - x[0]).slice(0, k).map((x) => x[1]);
    for (let t = 0; t < d; t++) if (acc[t] !== 0) assert.ok(top.includes(t));
    if (!stochastic) for (const t of top) assert.equal(acc[t], Math.sign(row[t]!));
  }
});

test('property: replacing one teacher moves the summed vote vector by at most 2√k in L2', () => {
  const N = 12;
  const B = 3;
  const d = 40;
  const gen = seededRandom(11);
  for (let trial = 0; trial < 60; trial++) {
    const k = 1 + (trial % d);
    const stochastic = trial % 2 === 0;
    const grads = new Float32Array(N * B * d);
    gen.normal(grads, 1e-5);
    const other = grads.slice();
    const i = trial % N;
    const repl = new Float32Array(B * d);
    gen.normal(repl, trial % 3 === 0 ? 1 : 1e-5);
    if (trial % 5 === 0) repl.fill(0); // a teacher with an all-zero gradient
    other.set(repl, i * B * d);
    const p = { k, clip: 1e-5, stochastic };
    // Same randomness for both worlds: the other teachers' draws must not depend on teacher i.
    const v1 = voteSums(grads, N, B, d, p, seededRandom(1000 + trial));
    const v2 = voteSums(other, N, B, d, p, seededRandom(1000 + trial));
    for (let j = 0; j < B; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += (v1[j * d + t]! - v2[j * d + t]!) ** 2;
      assert.ok(Math.sqrt(s) <= 2 * Math.sqrt(k) + 1e-9, `query ${j}: ‖ΔV‖ = ${Math.sqrt(s)} > 2√${k}`);
    }
  }
});

test('stochastic sign is unbiased for |g| ≤ b: E[vote]·b = g', () => {
  const b = 1e-5;
  const g = [-1e-5, -6e-6, -2e-6, 0, 3e-6, 7.5e-6, 1e-5];
  const d = g.length;
  // One teacher, k = d so every coordinate votes; its own max |g| equals b, so the bound is b.
  const row = Float32Array.from(g);
  const trials = 20000;
  const rng = seededRandom(42);
  const sum = new Float64Array(d);
  const acc = new Int32Array(d);
  const u = new Float64Array(d);
  const scratch = new Float32Array(d);
  const picked = new Int32Array(d);
  for (let r = 0; r < trials; r++) {
    acc.fill(0);
    rng.uniform(u);
    addTeacherVotes(row, { k: d, clip: b, stochastic: true }, u, 0, acc, 0, scratch, picked);
    for (let t = 0; t < d; t++) sum[t]! += acc[t]!;
  }
  for (let t = 0; t < d; t++) {
    const p = 0.5 + Math.fround(g[t]!) / (2 * b);
    const se = 2 * Math.sqrt(p * (1 - p) / trials);
    const mean = sum[t]! / trials;
    assert.ok(Math.abs(mean - Math.fround(g[t]!) / b) <= 4 * se + 1e-12, `coordinate ${t}: E[vote] ${mean} vs g/b ${g[t]! / b}`);
  }
});

test('noisy aggregate: Gaussian noise of std σ, threshold βN, and the no-threshold variant α·Ṽ/k', () => {
  const N = 100;
  const B = 4;
  const d = 5000;
  const votes = new Int32Array(B * d);
  for (let t = 0; t < votes.length; t++) votes[t] = t % 3 === 0 ? 90 : t % 3 === 1 ? -90 : 0;
  const sigma = 10;
  const nothr = noisyAggregate(votes, N, B, d, { k: 10, sigma, clip: 0, stochastic: true, beta: 0, alpha: 2 }, seededRandom(1));
  let s1 = 0;
  let s2 = 0;
  for (let t = 0; t < votes.length; t++) {
    const noise = nothr.direction[t]! / 2 * 10 - votes[t]!;
    s1 += noise;
    s2 += noise * noise;
  }
  const mean = s1 / votes.length;
  const std = Math.sqrt(s2 / votes.length - mean * mean);
  assert.ok(Math.abs(mean) < 4 * sigma / Math.sqrt(votes.length));
  assert.ok(Math.abs(std - sigma) < 0.05 * sigma, `noise std ${std}`);
  const thr = noisyAggregate(votes, N, B, d, { k: 10, sigma: 1e-9, clip: 0, stochastic: true, beta: 0.5, alpha: 1e-3 }, seededRandom(2));
  for (let t = 0; t < votes.length; t++) assert.equal(thr.direction[t], Math.fround(1e-3 * (votes[t]! > 50 ? 1 : votes[t]! < -50 ? -1 : 0)));
  // Fresh noise per call (P7): two calls never reuse the same vector.
  const a = noisyAggregate(votes, N, B, d, { k: 10, sigma, clip: 0, stochastic: true, beta: 0, alpha: 1 }, seededRandom(9));
  const rng = seededRandom(9);
  const b1 = noisyAggregate(votes, N, B, d, { k: 10, sigma, clip: 0, stochastic: true, beta: 0, alpha: 1 }, rng);
  const b2 = noisyAggregate(votes, N, B, d, { k: 10, sigma, clip: 0, stochastic: true, beta: 0, alpha: 1 }, rng);
  assert.deepEqual(a.direction, b1.direction);
  assert.notDeepEqual(b1.direction, b2.direction);
  assert.throws(() => topAgg(new Float32Array(10), 1, 1, 10, { k: 0, sigma: 1, clip: 0, stochastic: true, beta: 0, alpha: 1 }, rng), /k must be/);
  assert.throws(() => topAgg(new Float32Array(9), 1, 1, 10, { k: 2, sigma: 1, clip: 0, stochastic: true, beta: 0, alpha: 1 }, rng), /expected 1×1×10/);
});

test('direction smoothing (post-processing): keeps a smooth field, cuts i.i.d. per-pixel noise', () => {
  const h = 28;
  const w = 28;
  // A constant field stays constant away from the border (weights sum to 1).
  const flat = new Float32Array(h * w).fill(2);
  const sf = smoothImages(flat, 1, h, w, 1);
  for (let y = 3; y < h - 3; y++) for (let x = 3; x < w - 3; x++) assert.ok(Math.abs(sf[y * w + x]! - 2) < 1e-5);
  // Unit Gaussian noise: a 1-pixel Gaussian blur leaves std ≈ 1/(2√π·1) ≈ 0.28.
  const n = 20;
  const noise = new Float32Array(n * h * w);
  seededRandom(11).normal(noise, 1);
  const sn = smoothImages(noise, n, h, w, 1);
  let ss = 0;
  let cnt = 0;
  for (let m = 0; m < n; m++) for (let y = 3; y < h - 3; y++) for (let x = 3; x < w - 3; x++) { ss += sn[m * h * w + y * w + x]! ** 2; cnt++; }
  const std = Math.sqrt(ss / cnt);
  assert.ok(std > 0.24 && std < 0.32, `smoothed noise std ${std}`);
  // Images are smoothed independently: a spike in image 1 leaves image 0 untouched.
  const two = new Float32Array(2 * h * w);
  two[h * w + 14 * w + 14] = 1;
  const st = smoothImages(two, 2, h, w, 1);
  for (let t = 0; t < h * w; t++) assert.equal(st[t], 0);
  assert.throws(() => smoothImages(new Float32Array(5), 1, h, w, 1), /expected/);
});
