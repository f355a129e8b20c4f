/**
 * Statistical tests of every sampler with fixed seeds. Thresholds are set so that a correct
 * sampler passes with overwhelming probability (p > 0.999 per check) while e.g. a 1% variance
 * error, a missing ziggurat tail, a wrong scale or a biased selection fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addGaussianNoise,
  discreteGaussian,
  discreteLaplace,
  exactUniform,
  exponentialMechanism,
  gaussianRelease,
  laplaceNoise,
  randomizedResponse,
  reportNoisyMax,
  secureRandom,
  seededRandom,
  snappingLaplace,
  vonMisesFisher,
  vmfMeanResultantLength3,
  gammaSample,
  randomInt,
} from '../src/privacy/index.js';
import type { RandomSource } from '../src/privacy/index.js';
import { erfc, normCdf, normSf } from '../src/privacy/special.js';
import { zigguratTables } from '../src/privacy/random.js';

/** Kolmogorov–Smirnov statistic sqrt(n) * D of samples against a CDF (sorted in place). */
function ksStat(xs: Float64Array, cdf: (x: number) => number): number {
  xs.sort();
  const n = xs.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(xs[i]);
    d = Math.max(d, Math.abs(f - i / n), Math.abs((i + 1) / n - f));
  }
  return d * Math.sqrt(n);
}
const KS_CRIT = 1.95; // P(sqrt(n) D > 1.95) ~ 0.001
/** Stricter bounds for the Gaussian checks, which also run on the (unseeded) secure generator. */
const KS_CRIT_STRICT = 2.3; // ~ 1e-4
const Z_STRICT = 4.26; // ~ 1e-5 one-sided

/** Pearson chi-square of counts against probabilities (bins with expected >= 5; rest lumped). */
function chiSquare(observed: Map<number, number>, pmf: (k: number) => number, support: number[], n: number): { stat: number; df: number } {
  let stat = 0;
  let df = -1;
  let restObs = n;
  let restExp = n;
  for (const k of support) {
    const e = n * pmf(k);
    if (e < 5) continue;
    const o = observed.get(k) ?? 0;
    stat += ((o - e) * (o - e)) / e;
    restObs -= o;
    restExp -= e;
    df++;
  }
  if (restExp >= 5) {
    stat += ((restObs - restExp) * (restObs - restExp)) / restExp;
    df++;
  }
  return { stat, df };
}
/** Upper quantile of chi-square(df) at normal quantile z (Wilson–Hilferty); default 99.9%. */
function chiCrit(df: number, z = 3.09): number {
  return df * Math.pow(1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df)), 3);
}

function moments(xs: ArrayLike<number>): { mean: number; variance: number; kurtosis: number } {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m += xs[i];
  m /= xs.length;
  let v = 0;
  let k = 0;
  for (let i = 0; i < xs.length; i++) {
    const d = xs[i] - m;
    v += d * d;
    k += d * d * d * d;
  }
  v /= xs.length;
  k /= xs.length;
  return { mean: m, variance: v, kurtosis: k / (v * v) };
}

/**
 * Every check of a bulk N(0, std^2) sample; returns the failures (empty = pass). Each check is a
 * 5-sigma (chi-square and KS: p ~ 1e-5 / 1e-4) bound, so a correct sampler (also the unseeded
 * secure one) passes while the broken samplers in the negative-control test below fail.
 */
function gaussianFailures(x: Float32Array | Float64Array, std: number): string[] {
  const n = x.length;
  const fails: string[] = [];
  const m = moments(x);
  const v = std * std;
  if (!(Math.abs(m.mean) < 5 * (std / Math.sqrt(n)))) fails.push(`mean ${m.mean}`);
  if (!(Math.abs(m.variance / v - 1) < 5 * Math.sqrt(2 / n))) fails.push(`variance ${m.variance / v}`);
  if (!(Math.abs(m.kurtosis - 3) < 5 * Math.sqrt(96 / n))) fails.push(`kurtosis ${m.kurtosis}`);
  // two-sided tails: |z| > 3 (ziggurat wedges), 3.6 and 4 (past the base r = 3.654: tail algorithm)
  for (const t of [3, 3.6, 4]) {
    let count = 0;
    for (let i = 0; i < n; i++) if (Math.abs(x[i]) > t * std) count++;
    const p = 2 * normSf(t);
    if (!(Math.abs(count - n * p) < 5 * Math.sqrt(n * p))) fails.push(`P(|z| > ${t}): ${count} vs ${(n * p).toFixed(1)} expected`);
  }
  // chi-square over 512 equiprobable bins (sensitive to one bad ziggurat layer)
  const bins = 512;
  const counts = new Float64Array(bins);
  for (let i = 0; i < n; i++) counts[Math.min(bins - 1, Math.floor(normCdf(x[i] / std) * bins))]++;
  let chi = 0;
  const e = n / bins;
  for (let b = 0; b < bins; b++) chi += ((counts[b] - e) * (counts[b] - e)) / e;
  const crit = chiCrit(bins - 1, Z_STRICT);
  if (!(chi < crit)) fails.push(`chi-square ${chi.toFixed(0)} over ${bins} bins (crit ${crit.toFixed(0)})`);
  const ks = ksStat(Float64Array.from(x), (z) => normCdf(z / std));
  if (!(ks < KS_CRIT_STRICT)) fails.push(`KS ${ks}`);
  return fails;
}

for (const [name, make] of [
  ['seeded', () => seededRandom(20240611)],
  ['secure', () => secureRandom()],
] as [string, () => RandomSource][]) {
  test(`${name} Gaussian (Float32, ziggurat): moments, tails |z|>3,3.6,4, 512-bin chi-square and KS (2M draws)`, () => {
    const x = new Float32Array(2_000_000);
    make().normal(x, 2.5);
    assert.deepEqual(gaussianFailures(x, 2.5), []);
  });

  test(`${name} Gaussian (Float32) in many small calls matches N(0,1) too (buffer/fused boundaries)`, () => {
    const rng = make();
    const x = new Float32Array(1_000_000);
    // odd chunk sizes cross the 8192-sample blocks and the word buffer at every offset
    for (let i = 0; i < x.length; ) {
      const len = Math.min(x.length - i, 1 + ((i * 7919) % 20011));
      rng.normal(x.subarray(i, i + len));
      i += len;
    }
    assert.deepEqual(gaussianFailures(x, 1), []);
  });

  test(`${name} Gaussian (Float64) and uniforms: moments, tails, chi-square, KS (1M draws)`, () => {
    const rng = make();
    const x = new Float64Array(1_000_000);
    rng.normal(x);
    assert.deepEqual(gaussianFailures(x, 1), []);
    const u = new Float64Array(400_000);
    rng.uniform(u);
    assert.ok(ksStat(u, (v) => Math.min(1, Math.max(0, v))) < KS_CRIT);
    const u32 = new Float32Array(400_000);
    rng.uniform(u32);
    assert.ok(ksStat(Float64Array.from(u32), (v) => Math.min(1, Math.max(0, v))) < KS_CRIT);
    for (let i = 0; i < u.length; i++) assert.ok(u[i] >= 0 && u[i] < 1);
  });
}

test('ziggurat tables: 256 layers of equal area V closing at x_0 = 0 (Marsaglia–Tsang 2000)', () => {
  const { r, v, x, layers } = zigguratTables();
  const f = (z: number): number => Math.exp(-0.5 * z * z);
  assert.equal(layers, 256);
  assert.equal(x[255], r);
  // base strip: rectangle [0, r] x [0, f(r)] plus the tail, of area V
  const tail = Math.sqrt(Math.PI / 2) * erfc(r / Math.SQRT2);
  assert.ok(Math.abs(r * f(r) + tail - v) < 1e-15, `base strip area ${r * f(r) + tail} vs ${v}`);
  for (let i = 2; i < 256; i++) {
    assert.ok(x[i] > x[i - 1], `x increasing at ${i}`);
    assert.ok(Math.abs(x[i] * (f(x[i - 1]) - f(x[i])) - v) < 1e-12, `layer ${i} area`);
  }
  // top layer [0, x_1] x [f(x_1), 1] has area V too: the recursion closes at x_0 = 0
  assert.ok(Math.abs(x[1] * (1 - f(x[1])) - v) < 1e-12, `top layer area ${x[1] * (1 - f(x[1]))} vs ${v}`);
});

test('negative controls: the Gaussian checks reject broken samplers', () => {
  const n = 2_000_000;
  const rng = seededRandom(5);
  const good = new Float32Array(n);
  rng.normal(good);
  // (a) wrong scale by 1%
  const scaled = good.map((z) => z * 1.01);
  assert.ok(gaussianFailures(scaled, 1).some((s) => s.startsWith('variance')));
  // (b) tail algorithm missing: everything past r = 3.654 folded back inside
  const { r, x: xs } = zigguratTables();
  const noTail = good.map((z) => (Math.abs(z) > r ? Math.sign(z) * (2 * r - Math.abs(z)) : z));
  assert.ok(gaussianFailures(noTail, 1).some((s) => s.startsWith('P(|z| > 4)')));
  // (c) ziggurat without the wedge test: uniform under each layer's rectangle
  const noWedge = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const layer = 1 + randomInt(rng, 255);
    noWedge[i] = (rng.nextDouble() < 0.5 ? -1 : 1) * rng.nextDouble() * xs[layer];
  }
  const fails = gaussianFailures(noWedge, 1);
  assert.ok(fails.length >= 4 && fails.some((s) => s.startsWith('chi-square')), fails.join('; '));
  // (d) one bad layer: draws from layer 128's wedge accepted without the test (Box–Muller elsewhere)
  const oneBad = Float32Array.from(good);
  const lo = xs[127];
  const hi = xs[128];
  let replaced = 0;
  for (let i = 0; i < n && replaced < 1500; i++) {
    if (Math.abs(oneBad[i]) < lo) {
      oneBad[i] = Math.sign(oneBad[i]) * (lo + rng.nextDouble() * (hi - lo));
      replaced++;
    }
  }
  assert.ok(gaussianFailures(oneBad, 1).some((s) => s.startsWith('chi-square')));
});

test('seeded generator is reproducible and seed-dependent; secure is not repeatable', () => {
  const a = new Float32Array(1000);
  const b = new Float32Array(1000);
  seededRandom(7).normal(a);
  seededRandom(7).normal(b);
  assert.deepEqual(a, b);
  seededRandom(8).normal(b);
  assert.notDeepEqual(a, b);
  const s1 = new Float32Array(16);
  const s2 = new Float32Array(16);
  secureRandom().normal(s1);
  secureRandom().normal(s2);
  assert.notDeepEqual(s1, s2);
  assert.equal(seededRandom(7).kind, 'seeded');
  assert.equal(seededRandom(7).seed, 7);
  assert.equal(secureRandom().kind, 'secure');
  // bulk and scalar draws interleave without reusing words
  const r = seededRandom(9);
  const w = new Set<number>();
  for (let i = 0; i < 50000; i++) w.add(r.nextUint32());
  assert.ok(w.size > 49990);
});

test('randomInt is unbiased (chi-square over 7 values)', () => {
  const rng = seededRandom(11);
  const n = 70000;
  const obs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const k = randomInt(rng, 7);
    obs.set(k, (obs.get(k) ?? 0) + 1);
  }
  const { stat, df } = chiSquare(obs, () => 1 / 7, [0, 1, 2, 3, 4, 5, 6], n);
  assert.ok(stat < chiCrit(df), `chi2 ${stat}`);
});

test('Laplace noise: KS against the Laplace CDF; addGaussianNoise adds with the right scale', () => {
  const rng = seededRandom(12);
  const x = new Float64Array(300_000);
  laplaceNoise(x, 1.7, rng);
  const cdf = (v: number): number => (v < 0 ? 0.5 * Math.exp(v / 1.7) : 1 - 0.5 * Math.exp(-v / 1.7));
  assert.ok(ksStat(x, cdf) < KS_CRIT);
  const y = new Float32Array(200_000).fill(10);
  addGaussianNoise(y, 0.5, rng);
  const m = moments(y);
  assert.ok(Math.abs(m.mean - 10) < 0.005 && Math.abs(m.variance / 0.25 - 1) < 0.02, JSON.stringify(m));
});

test('exact discrete Gaussian (CKS 2020): chi-square against the normalised pmf', () => {
  const rng = seededRandom(13);
  for (const sigma of [0.8, 3.5]) {
    const n = 20000;
    const obs = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const y = discreteGaussian(rng, sigma);
      assert.ok(Number.isInteger(y));
      obs.set(y, (obs.get(y) ?? 0) + 1);
    }
    const R = Math.ceil(12 * sigma) + 2;
    let Z = 0;
    for (let k = -R; k <= R; k++) Z += Math.exp((-k * k) / (2 * sigma * sigma));
    const support = Array.from({ length: 2 * R + 1 }, (_, i) => i - R);
    const { stat, df } = chiSquare(obs, (k) => Math.exp((-k * k) / (2 * sigma * sigma)) / Z, support, n);
    assert.ok(stat < chiCrit(df), `sigma ${sigma}: chi2 ${stat} (df ${df})`);
  }
});

test('exact discrete Laplace (CKS 2020): chi-square against the two-sided geometric pmf', () => {
  const rng = seededRandom(14);
  for (const scale of [0.6, 2.5]) {
    const n = 20000;
    const obs = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const y = discreteLaplace(rng, scale);
      obs.set(y, (obs.get(y) ?? 0) + 1);
    }
    const p = Math.exp(-1 / scale);
    const pmf = (k: number): number => ((1 - p) / (1 + p)) * Math.pow(p, Math.abs(k));
    const support = Array.from({ length: 201 }, (_, i) => i - 100);
    const { stat, df } = chiSquare(obs, pmf, support, n);
    assert.ok(stat < chiCrit(df), `scale ${scale}: chi2 ${stat} (df ${df})`);
  }
});

test('von Mises–Fisher (Wood): unit norm, mean resultant length on S^2, mean direction in d = 20', () => {
  const rng = seededRandom(15);
  for (const kappa of [0.5, 5, 50]) {
    const n = 20000;
    let s = 0;
    let s2 = 0;
    const mu = [0.6, 0, -0.8];
    for (let i = 0; i < n; i++) {
      const x = vonMisesFisher(mu, kappa, rng);
      assert.ok(Math.abs(Math.hypot(...x) - 1) < 1e-12);
      const w = x[0] * 0.6 - x[2] * 0.8;
      s += w;
      s2 += w * w;
    }
    const mean = s / n;
    const sd = Math.sqrt(s2 / n - mean * mean);
    const expected = vmfMeanResultantLength3(kappa);
    assert.ok(Math.abs(mean - expected) < 5 * (sd / Math.sqrt(n)), `kappa ${kappa}: ${mean} vs ${expected}`);
  }
  // d = 20: the sample mean points along mu; orthogonal components average to zero
  const d = 20;
  const mu = Array.from({ length: d }, (_, i) => (i === 3 ? 1 : 0));
  const acc = new Float64Array(d);
  for (let i = 0; i < 5000; i++) {
    const x = vonMisesFisher(mu, 30, rng);
    for (let j = 0; j < d; j++) acc[j] += x[j] / 5000;
  }
  for (let j = 0; j < d; j++) if (j !== 3) assert.ok(Math.abs(acc[j]) < 0.02, `component ${j}: ${acc[j]}`);
  assert.ok(acc[3] > 0.6 && acc[3] < 0.75, `mean along mu ${acc[3]}`);
});

test('gamma sampler: mean and variance for shapes < 1 and > 1', () => {
  const rng = seededRandom(16);
  for (const a of [0.4, 3]) {
    const xs = Array.from({ length: 40000 }, () => gammaSample(a, rng));
    const m = moments(xs);
    assert.ok(Math.abs(m.mean - a) < 5 * Math.sqrt(a / 40000), `shape ${a} mean ${m.mean}`);
    assert.ok(Math.abs(m.variance / a - 1) < 0.06, `shape ${a} var ${m.variance}`);
  }
});

test('exponential mechanism: selection frequencies match exp(eps u / 2 Delta) (chi-square)', () => {
  const rng = seededRandom(17);
  const scores = [0, 1, 2, 4, 4.5];
  const eps = 1.2;
  const w = scores.map((u) => Math.exp((eps * u) / 2));
  const Z = w.reduce((a, b) => a + b, 0);
  const n = 30000;
  const obs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = exponentialMechanism(scores, eps, 1, rng);
    obs.set(r.index, (obs.get(r.index) ?? 0) + 1);
    if (i === 0) assert.deepEqual(r.event, { kind: 'randomizedResponse', epsilon: eps, numCategories: 2 });
  }
  const { stat, df } = chiSquare(obs, (k) => w[k] / Z, [0, 1, 2, 3, 4], n);
  assert.ok(stat < chiCrit(df), `chi2 ${stat}`);
});

test('report-noisy-max: uniform on ties, favours the max more as epsilon grows', () => {
  const rng = seededRandom(18);
  const n = 20000;
  const obs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const k = reportNoisyMax([3, 3, 3, 3], 1, 1, rng).index;
    obs.set(k, (obs.get(k) ?? 0) + 1);
  }
  const { stat, df } = chiSquare(obs, () => 0.25, [0, 1, 2, 3], n);
  assert.ok(stat < chiCrit(df));
  const hit = (eps: number): number => {
    let h = 0;
    for (let i = 0; i < 5000; i++) if (reportNoisyMax([0, 1, 2, 3], eps, 1, rng).index === 3) h++;
    return h / 5000;
  };
  const lo = hit(0.5);
  const hi = hit(5);
  assert.ok(lo > 0.3 && lo < hi && hi > 0.85, `${lo} ${hi}`);
});

test('randomized response: keep probability e^eps/(e^eps+k-1), others uniform', () => {
  const rng = seededRandom(19);
  const k = 4;
  const eps = 1;
  const n = 40000;
  const obs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = randomizedResponse(2, k, eps, rng);
    obs.set(r.value, (obs.get(r.value) ?? 0) + 1);
  }
  const keep = Math.E / (Math.E + k - 1);
  const { stat, df } = chiSquare(obs, (v) => (v === 2 ? keep : (1 - keep) / (k - 1)), [0, 1, 2, 3], n);
  assert.ok(stat < chiCrit(df), `chi2 ${stat}`);
  assert.throws(() => randomizedResponse(4, 4, 1, rng), /value/);
});

test('exact uniform (Mironov U*) is uniform; snapping Laplace outputs lie on the Lambda grid in [-B, B] with Laplace spread', () => {
  const rng = seededRandom(20);
  const u = new Float64Array(200_000);
  for (let i = 0; i < u.length; i++) u[i] = exactUniform(rng);
  assert.ok(ksStat(u, (v) => v) < KS_CRIT);
  const xs: number[] = [];
  for (let i = 0; i < 40000; i++) {
    const r = snappingLaplace(3.3, { scale: 0.7, bound: 100 }, rng);
    const k = r.value / 1; // Lambda = 1 (smallest power of two >= 0.7)
    assert.ok(Number.isInteger(k) && Math.abs(r.value) <= 100);
    xs.push(r.value);
    if (i === 0) assert.ok(r.epsilon > 1 / 0.7 && r.epsilon < 1 / 0.7 + 1e-9);
  }
  const m = moments(xs);
  assert.ok(Math.abs(m.mean - 3.3) < 0.05, `mean ${m.mean}`);
  // Laplace variance 2 b^2 plus rounding variance 1/12
  assert.ok(Math.abs(m.variance - (2 * 0.49 + 1 / 12)) < 0.06, `variance ${m.variance}`);
});

test('gaussianRelease: values on the grid, unbiased, variance sigma^2; event charges the rounding', () => {
  const rng = seededRandom(21);
  const g = 1 / 64;
  const n = 5000;
  const xs: number[] = [];
  let ev;
  for (let i = 0; i < n; i++) {
    const r = gaussianRelease([1.234], { sigma: 2, l2Sensitivity: 1, granularity: g }, rng);
    assert.ok(Number.isInteger(r.values[0] / g));
    xs.push(r.values[0]);
    ev = r.event;
  }
  const m = moments(xs);
  assert.ok(Math.abs(m.mean - 1.234) < 5 * (2 / Math.sqrt(n)), `mean ${m.mean}`);
  assert.ok(Math.abs(m.variance / 4 - 1) < 0.1, `variance ${m.variance}`);
  assert.ok(ev && ev.kind === 'gaussian' && Math.abs(ev.noiseMultiplier - 2 / (1 + g)) < 1e-12);
});
