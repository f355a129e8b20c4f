import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/generate/index.js';
import { runSynthesis } from '../src/runs/synth.js';
import { KernelTeacherEnsemble } from '../src/generate/kernel-teachers.js';
import { assignShards } from '../src/generate/shards.js';

/** A small image set: n records of h×w, C classes, random pixels. */
function tinySet(n: number, h: number, w: number, C: number, seed: number): ImageDataset {
  const r = seededRandom(seed);
  const u = new Float64Array(n * h * w);
  r.uniform(u);
  const images = Uint8Array.from(u, (v) => Math.floor(v * 256));
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % C);
  const split = { images, labels, count: n };
  return { kind: 'image', name: 'tiny', height: h, width: w, channels: 1, numClasses: C, train: split, test: split, rawFingerprint: 'tiny', source: 'test' };
}

function queries(B: number, d: number, seed: number): Float32Array {
  const x = new Float32Array(B * d);
  seededRandom(seed).uniform(x);
  return x;
}

test('kernel teachers: E[vote sum] = Σ over voting teachers of (class-y mean of own records − x)/b_i; non-holders abstain', () => {
  const data = tinySet(24, 3, 4, 3, 1);
  const d = 12;
  const N = 6; // m = 4 records each
  const shards = assignShards(24, N);
  const kt = new KernelTeacherEnsemble({ numTeachers: N, bandwidth: Infinity }, data, shards);
  const x = queries(2, d, 2);
  const y = Int32Array.from([0, 2]);
  // Expected votes by hand from the shards.
  const expect = new Float64Array(2 * d);
  const voters = [0, 0];
  for (let j = 0; j < 2; j++) {
    for (let i = 0; i < N; i++) {
      const recs = [...shards.members.subarray(i * 4, i * 4 + 4)].filter((r) => data.train.labels[r] === y[j]);
      if (!recs.length) continue;
      voters[j]!++;
      const g = new Float64Array(d);
      for (const r of recs) for (let t = 0; t < d; t++) g[t]! += (data.train.images[r * d + t]! / 255 - x[j * d + t]!) / recs.length;
      const b = Math.max(...g.map(Math.abs));
      for (let t = 0; t < d; t++) expect[j * d + t]! += g[t]! / b;
    }
  }
  const reps = 4000;
  const mean = new Float64Array(2 * d);
  const rng = seededRandom(3);
  for (let r = 0; r < reps; r++) {
    const v = kt.voteSums(x, y, { k: d, clip: 0, stochastic: true }, rng);
    for (let t = 0; t < v.length; t++) {
      mean[t]! += v[t]! / reps;
      // Each coordinate is a sum of ±1 votes from the teachers holding that class, nobody else.
      assert.ok(Math.abs(v[t]!) <= voters[Math.floor(t / d)]!);
      assert.ok(Math.abs(v[t]! - voters[Math.floor(t / d)]!) % 2 === 0, 'parity of a sum of ±1 votes');
    }
  }
  for (let t = 0; t < mean.length; t++) {
    const sd = Math.sqrt(voters[Math.floor(t / d)]! / reps);
    assert.ok(Math.abs(mean[t]! - expect[t]!) < 5 * sd, `coordinate ${t}: mean ${mean[t]} vs expected ${expect[t]}`);
  }
});

test('kernel teachers: replacing one record moves the summed votes by at most 2√k (deterministic and dithered signs)', () => {
  const n = 40;
  const d = 16;
  for (let trial = 0; trial < 40; trial++) {
    const data = tinySet(n, 4, 4, 3, 100 + trial);
    const N = [40, 20, 10, 8][trial % 4]!;
    const k = 1 + (trial % d);
    const stochastic = trial % 2 === 0;
    const bandwidth = trial % 3 === 0 ? Infinity : 0.5 + (trial % 5);
    const assign = trial % 4 < 2 ? ('all' as const) : ('nearest' as const);
    const other: ImageDataset = { ...data, train: { ...data.train, images: data.train.images.slice(), labels: data.train.labels.slice() } };
    const rec = trial % n;
    for (let t = 0; t < d; t++) other.train.images[rec * d + t] = (t * 37 + trial * 11) % 256;
    other.train.labels[rec] = (data.train.labels[rec]! + 1 + (trial % 2)) % 3; // the record changes class too
    const x = queries(5, d, 200 + trial);
    const y = Int32Array.from([0, 1, 2, 0, 1]);
    const p = { k, clip: 0, stochastic };
    const a = new KernelTeacherEnsemble({ numTeachers: N, bandwidth, assign }, data, assignShards(n, N)).voteSums(x, y, p, seededRandom(7 + trial));
    const b = new KernelTeacherEnsemble({ numTeachers: N, bandwidth, assign }, other, assignShards(n, N)).voteSums(x, y, p, seededRandom(7 + trial));
    for (let j = 0; j < 5; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += (a[j * d + t]! - b[j * d + t]!) ** 2;
      assert.ok(Math.sqrt(s) <= 2 * Math.sqrt(k) + 1e-9, `trial ${trial} query ${j}: ‖ΔV‖ = ${Math.sqrt(s)} > 2√${k}`);
    }
  }
});

test('kernel teachers: one step\'s whole vote block moves by at most its joint sensitivity (balanced labels)', () => {
  const n = 60;
  const d = 9;
  const C = 3;
  for (let trial = 0; trial < 48; trial++) {
    const data = tinySet(n, 3, 3, C, 500 + trial);
    const N = trial % 2 === 0 ? n : [20, 12, 6][trial % 3]!; // one record per teacher, or several
    const m = Math.floor(n / N);
    const assign = trial % 4 < 2 ? ('all' as const) : ('nearest' as const);
    const k = 1 + (trial % d);
    const B = [6, 7, 9, 12][trial % 4]!;
    // Balanced labels, as the DataLens loop draws them for kernel teachers.
    const y = Int32Array.from({ length: B }, (_, j) => j % C);
    const c = Math.ceil(B / C);
    const d2 = assign === 'nearest' ? (m === 1 ? 4 * k : 8 * k) : m === 1 ? 4 * k * c : 4 * k * Math.min(B, 2 * c);
    const other: ImageDataset = { ...data, train: { ...data.train, images: data.train.images.slice(), labels: data.train.labels.slice() } };
    const rec = (trial * 13) % n;
    for (let t = 0; t < d; t++) other.train.images[rec * d + t] = (t * 71 + trial * 29) % 256;
    if (trial % 3 !== 0) other.train.labels[rec] = (data.train.labels[rec]! + 1) % C;
    const x = queries(B, d, 900 + trial);
    for (const stochastic of [false, true]) {
      const p = { k, clip: 0, stochastic };
      const a = new KernelTeacherEnsemble({ numTeachers: N, bandwidth: Infinity, assign }, data, assignShards(n, N)).voteSums(x, y, p, seededRandom(trial));
      const b = new KernelTeacherEnsemble({ numTeachers: N, bandwidth: Infinity, assign }, other, assignShards(n, N)).voteSums(x, y, p, seededRandom(trial));
      let s2 = 0;
      for (let t = 0; t < a.length; t++) s2 += (a[t]! - b[t]!) ** 2;
      assert.ok(s2 <= d2 + 1e-9, `trial ${trial} (${assign}, m=${m}, B=${B}, k=${k}): ‖ΔV‖² = ${s2} > ${d2}`);
    }
  }
});

test('G-PATE kernel teachers: one vote per voting teacher per coordinate; a changed record touches ≤ 2⌈B/C⌉ queries (all) or 2 (nearest)', async () => {
  await ensureEngine(); // the batched path multiplies through the tensor engine
  const n = 60;
  const d = 9;
  const C = 3;
  const p = 4;
  const bins = 6;
  for (let trial = 0; trial < 24; trial++) {
    const data = tinySet(n, 3, 3, C, 700 + trial);
    const N = trial % 2 === 0 ? n : 12;
    const assign = trial % 4 < 2 ? ('all' as const) : ('nearest' as const);
    const B = [6, 9, 12][trial % 3]!;
    const y = Int32Array.from({ length: B }, (_, j) => j % C);
    const x = queries(B, d, 300 + trial);
    const proj = new Float32Array(B * d * p);
    seededRandom(trial).normal(proj, 1 / Math.sqrt(p));
    const other: ImageDataset = { ...data, train: { ...data.train, images: data.train.images.slice(), labels: data.train.labels.slice() } };
    const rec = (trial * 7) % n;
    for (let t = 0; t < d; t++) other.train.images[rec * d + t] = (t * 53 + trial * 17) % 256;
    other.train.labels[rec] = (data.train.labels[rec]! + 1 + (trial % 2)) % C;
    const kt = new KernelTeacherEnsemble({ numTeachers: N, bandwidth: Infinity, assign }, data, assignShards(n, N));
    const h1 = kt.projectedHistograms(x, y, proj, p, bins, 1);
    const h2 = new KernelTeacherEnsemble({ numTeachers: N, bandwidth: Infinity, assign }, other, assignShards(n, N)).projectedHistograms(x, y, proj, p, bins, 1);
    let changedQueries = 0;
    for (let j = 0; j < B; j++) {
      let changed = false;
      for (let l = 0; l < p; l++) {
        let tot = 0;
        for (let m = 0; m < bins; m++) {
          const o = (j * p + l) * bins + m;
          tot += h1[o]!;
          if (h1[o] !== h2[o]) changed = true;
        }
        // Never more votes than teachers; with 'all', exactly the teachers holding class y_j.
        assert.ok(tot <= N);
        if (assign === 'all' && N === n) assert.equal(tot, [...data.train.labels].filter((c) => c === y[j]).length);
      }
      if (changed) changedQueries++;
    }
    const c = Math.ceil(B / C);
    assert.ok(changedQueries <= (assign === 'nearest' ? 2 : 2 * c), `trial ${trial}: ${changedQueries} queries changed`);
  }
});

test('G-PATE kernel teachers: the batched (matmul) histograms equal the per-teacher reference loop', async () => {
  await ensureEngine(); // the batched path multiplies through the tensor engine
  const C = 3;
  const p = 5;
  const bins = 8;
  for (let trial = 0; trial < 8; trial++) {
    const n = 90;
    const data = tinySet(n, 4, 5, C, 900 + trial);
    const d = 20;
    const assign = trial % 2 === 0 ? ('all' as const) : ('nearest' as const);
    const B = [6, 9, 12, 7][trial % 4]!;
    const y = Int32Array.from({ length: B }, (_, j) => j % C);
    const x = queries(B, d, 400 + trial);
    const proj = new Float32Array(B * d * p);
    seededRandom(50 + trial).normal(proj, 1 / Math.sqrt(p));
    // One teacher per record: every class takes the batched path (bandwidth is irrelevant there).
    const fast = new KernelTeacherEnsemble({ numTeachers: n, bandwidth: 0.3, assign }, data, assignShards(n, n)).projectedHistograms(x, y, proj, p, bins, 0.6);
    const slow = new KernelTeacherEnsemble({ numTeachers: n, bandwidth: 0.3, assign, batched: false }, data, assignShards(n, n)).projectedHistograms(x, y, proj, p, bins, 0.6);
    let votes = 0;
    let moved = 0;
    for (let o = 0; o < fast.length; o++) {
      votes += slow[o]!;
      moved += Math.abs(fast[o]! - slow[o]!);
    }
    assert.ok(votes > 0);
    // Float rounding may move a value sitting exactly on a bin edge; nothing else may differ.
    assert.ok(moved <= 2, `trial ${trial}: ${moved} of ${votes} votes differ`);
    for (let r = 0; r < B * p; r++) {
      let a = 0;
      let b = 0;
      for (let m = 0; m < bins; m++) {
        a += fast[r * bins + m]!;
        b += slow[r * bins + m]!;
      }
      if (assign === 'all') assert.equal(a, b);
    }
  }
});

test('kernel teachers: a finite bandwidth weights a teacher towards its record nearest the query', () => {
  const data = tinySet(2, 2, 2, 1, 5);
  const d = 4;
  // One teacher with two class-0 records A and B; a query equal to A points (almost) towards B only
  // for h = ∞ (the mean) and towards A (i.e. nowhere: zero gradient) for a tiny h.
  data.train.images.set([255, 0, 0, 0, 0, 0, 0, 255]);
  const shards = assignShards(2, 1);
  const x = new Float32Array([1, 0, 0, 0]);
  const p = { k: d, clip: 0, stochastic: false };
  const wide = new KernelTeacherEnsemble({ numTeachers: 1, bandwidth: Infinity }, data, shards).voteSums(x, Int32Array.from([0]), p, seededRandom(1));
  assert.deepEqual([...wide], [-1, 0, 0, 1]); // (A+B)/2 − A = (−½, 0, 0, ½)
  const narrow = new KernelTeacherEnsemble({ numTeachers: 1, bandwidth: 0.05 }, data, shards).voteSums(x, Int32Array.from([0]), p, seededRandom(1));
  assert.deepEqual([...narrow], [0, 0, 0, 0]); // the query sits on its record: the mean-shift vector is 0
});

test("kernel teachers, assign 'nearest': a record pulls only the nearest query of its class", () => {
  const data = tinySet(3, 2, 2, 1, 9);
  data.train.images.set([255, 0, 0, 0, 250, 0, 0, 0, 0, 0, 0, 255]); // records A, A', B
  const kt = new KernelTeacherEnsemble({ numTeachers: 3, bandwidth: Infinity, assign: 'nearest' }, data, assignShards(3, 3));
  // Query 0 sits near A/A', query 1 near B: each gets votes only from its own records.
  const x = new Float32Array([0.8, 0, 0, 0, 0, 0, 0, 0.8]);
  const v = kt.voteSums(x, Int32Array.from([0, 0]), { k: 1, clip: 0, stochastic: false }, seededRandom(1));
  assert.deepEqual([...v], [2, 0, 0, 0, 0, 0, 0, 1]);
});

test('DataLens with kernel teachers on real MNIST: ledger ε = core ε, and samples resemble their own class', async () => {
  await ensureEngine();
  const full = loadMnist();
  const n = 6000;
  const d = 784;
  const data: ImageDataset = { ...full, train: { images: full.train.images.subarray(0, n * d), labels: full.train.labels.subarray(0, n), count: n } };
  const dir = mkdtempSync(join(tmpdir(), 'dplens-kernel-'));
  try {
    const epsilon = 3;
    const hyper = { teacherKind: 'kernel' as const, kernelAssign: 'all' as const, teachers: n, topk: 784, sigma: 800, clip: 0, beta: 0, queryBatch: 30, generatorHidden: [64, 128], smoothDirection: 1 };
    const r = await runSynthesis({ method: 'datalens', data: 'mnist', epsilon, delta: 1e-5, out: dir, samples: 500, seed: 11, maxSteps: 40, hyper }, { dataOverride: data });
    assert.ok(r.epsilon <= epsilon);
    // One Gaussian release per step with the joint sensitivity 2√(k·⌈B/C⌉) (one record per teacher, 'all').
    const core = new RdpAccountant().compose(DpEvents.gaussianWithSensitivity(800, 2 * Math.sqrt(784 * 3)), r.generatorSteps).getEpsilon(1e-5);
    assert.ok(Math.abs(core - r.epsilon) < 1e-9, `ledger ε ${r.epsilon} vs core ε ${core}`);
    assert.equal(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length, r.generatorSteps);
    // Utility signal: a sample is closer to its own class's real mean than to any other class mean.
    const means = new Float64Array(10 * d);
    const cnt = new Float64Array(10);
    for (let i = 0; i < n; i++) {
      const c = data.train.labels[i]!;
      cnt[c]!++;
      for (let t = 0; t < d; t++) means[c * d + t]! += data.train.images[i * d + t]!;
    }
    for (let c = 0; c < 10; c++) for (let t = 0; t < d; t++) means[c * d + t]! /= cnt[c]!;
    const npz = readNpz(r.syntheticPath);
    const img = npz.images!.data as Uint8Array;
    const lab = npz.labels!.data as Uint8Array;
    let hits = 0;
    for (let s = 0; s < 500; s++) {
      let best = -1;
      let bd = Infinity;
      for (let c = 0; c < 10; c++) {
        let dist = 0;
        for (let t = 0; t < d; t++) dist += (img[s * d + t]! - means[c * d + t]!) ** 2;
        if (dist < bd) [bd, best] = [dist, c];
      }
      if (best === lab[s]) hits++;
    }
    assert.ok(hits / 500 > 0.6, `only ${hits}/500 samples are nearest to their own class mean`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
