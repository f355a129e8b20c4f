/**
 * Privacy accounting against reference vectors (../shared/data/accounting-vectors.json: Opacus
 * 1.4.0 RDP/PRV, get_noise_multiplier, DataLens pate_core.py) plus properties that must hold for
 * any correct accountant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AccountingError,
  DEFAULT_ORDERS,
  DpEvents,
  PldAccountant,
  RdpAccountant,
  calibrateNoise,
  calibrateSteps,
  dpsgdEpsilon,
  makeAccountant,
  pate,
  rdpSampledWithoutReplacement,
  rdpSubsampledGaussian,
  rdpLaplace,
  rdpToEpsilon,
} from '../src/privacy/index.js';
import { normCdf } from '../src/privacy/special.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const vectorsPath = resolve(repoRoot, '../shared/data/accounting-vectors.json');
const haveVectors = existsSync(vectorsPath);
if (!haveVectors) console.log(`# skipping reference-vector tests: ${vectorsPath} not found`);
const V = haveVectors ? JSON.parse(readFileSync(vectorsPath, 'utf8')) : { cases: [], opacusDefaultAlphas: [] };
const cases = (kind: string): any[] => V.cases.filter((c: any) => c.kind === kind);
const vt = (name: string, fn: () => void): void => {
  test(name, { skip: haveVectors ? false : `reference vectors absent (${vectorsPath})` }, fn);
};

const relErr = (a: number, b: number): number => (b === 0 ? Math.abs(a) : Math.abs(a / b - 1));
const sgm = (q: number, s: number) => DpEvents.poissonSampled(q, DpEvents.gaussian(s));

vt('default orders are exactly the Opacus default alphas', () => {
  assert.deepEqual([...DEFAULT_ORDERS], V.opacusDefaultAlphas);
});

vt('RDP epsilon of subsampled Gaussian matches Opacus within 0.5% (and the optimal order)', () => {
  const cs = cases('subsampled_gaussian');
  assert.ok(cs.length >= 20);
  for (const c of cs) {
    const d = new RdpAccountant().compose(sgm(c.sampleRate, c.noiseMultiplier), c.steps).getEpsilonDetails(c.delta);
    assert.ok(relErr(d.epsilon, c.rdpEpsilon) < 0.005, `${c.id}: ${d.epsilon} vs ${c.rdpEpsilon}`);
    assert.ok(relErr(d.epsilon, c.rdpEpsilon) < 1e-9, `${c.id}: not bit-close: ${d.epsilon} vs ${c.rdpEpsilon}`);
    assert.equal(d.optimalOrder, c.rdpOptimalOrder, c.id);
    const edge = (c.rdpWarnings ?? []).some((w: string) => /Optimal order/.test(w));
    assert.equal(d.warnings.some((w) => /optimal RDP order is the (smallest|largest)/.test(w)), edge, `${c.id}: edge warning`);
  }
});

vt('epochs -> steps = floor(epochs / q) as Opacus', () => {
  for (const c of cases('subsampled_gaussian').filter((c: any) => c.epochs !== undefined)) assert.equal(Math.floor(c.epochs / c.sampleRate), c.steps, c.id);
});

vt('per-order RDP curves (integer and fractional orders up to 256) within 1e-6 relative', () => {
  for (const c of cases('rdp_curve')) {
    c.orders.forEach((a: number, i: number) => {
      const r = c.steps * rdpSubsampledGaussian(c.sampleRate, c.noiseMultiplier, a);
      assert.ok(relErr(r, c.rdp[i]) < 1e-6, `${c.id} alpha=${a}: ${r} vs ${c.rdp[i]}`);
    });
    const acc = new RdpAccountant(c.orders).compose(sgm(c.sampleRate, c.noiseMultiplier), 7);
    acc.getRdp().forEach((r, i) => assert.ok(relErr(r, 7 * c.rdp[i]) < 1e-6));
  }
});

vt('calibration reproduces Opacus get_noise_multiplier; achieved eps <= target within tolerance', () => {
  for (const c of cases('calibrate_noise')) {
    const r = calibrateNoise({ targetEpsilon: c.targetEpsilon, delta: c.targetDelta, sampleRate: c.sampleRate, steps: c.steps, epsilonTolerance: c.epsilonTolerance });
    assert.ok(Math.abs(r.noiseMultiplier - c.expectedNoiseMultiplier) < 1e-12, `${c.id}: ${r.noiseMultiplier} vs ${c.expectedNoiseMultiplier}`);
    assert.ok(r.achievedEpsilon <= c.targetEpsilon && c.targetEpsilon - r.achievedEpsilon <= c.epsilonTolerance, `${c.id}: achieved ${r.achievedEpsilon}`);
    assert.ok(relErr(r.achievedEpsilon, c.achievedEpsilon) < 1e-9, c.id);
    if (c.epochs !== undefined) {
      const r2 = calibrateNoise({ targetEpsilon: c.targetEpsilon, delta: c.targetDelta, sampleRate: c.sampleRate, epochs: c.epochs });
      assert.equal(r2.noiseMultiplier, r.noiseMultiplier);
      assert.equal(r2.steps, c.steps);
    }
  }
});

vt('PLD calibration: achieved eps <= target, needs no more noise than RDP', () => {
  const c = cases('calibrate_noise').find((x: any) => x.id === 'cal-q0.01-10k-eps8') ?? cases('calibrate_noise')[0];
  const r = calibrateNoise({ targetEpsilon: c.targetEpsilon, delta: c.targetDelta, sampleRate: c.sampleRate, steps: c.steps, accountant: 'pld' });
  assert.ok(r.achievedEpsilon <= c.targetEpsilon && c.targetEpsilon - r.achievedEpsilon <= 0.01, `achieved ${r.achievedEpsilon}`);
  assert.ok(r.noiseMultiplier <= c.expectedNoiseMultiplier + 1e-12, `${r.noiseMultiplier} > ${c.expectedNoiseMultiplier}`);
});

vt('PLD epsilon within 2% of the Opacus PRV estimate and inside its [lower, upper] error band', () => {
  for (const c of cases('subsampled_gaussian')) {
    if (c.prvEpsilon === null) continue;
    const e = new PldAccountant().compose(sgm(c.sampleRate, c.noiseMultiplier), c.steps).getEpsilon(c.delta);
    const ref = Math.max(c.prvEpsilonEstimate, 0);
    assert.ok(Math.abs(e - ref) <= 0.02 * ref + 0.002, `${c.id}: pld ${e} vs PRV estimate ${ref}`);
    // never below the PRV lower bound (true eps >= lower), never above the PRV upper bound
    assert.ok(e >= c.prvEpsilonLower - 1e-6, `${c.id}: pld ${e} < PRV lower ${c.prvEpsilonLower}`);
    assert.ok(e <= c.prvEpsilon + 1e-6, `${c.id}: pld ${e} > PRV upper ${c.prvEpsilon}`);
  }
});

vt('PATE data-dependent analysis matches pate_core.py within 1e-6', () => {
  for (const c of cases('pate_gnmax')) {
    const logq = pate.computeLogqGaussian(c.counts, c.sigma);
    assert.ok(relErr(logq, c.logq) < 1e-6, `${c.id}: logq ${logq} vs ${c.logq}`);
    const dd = pate.rdpGaussianDataDependent(c.logq, c.rdpSigma, c.orders);
    const di = pate.rdpDataIndependentGaussian(c.rdpSigma, c.orders);
    c.orders.forEach((_: number, i: number) => {
      assert.ok(relErr(dd[i], c.rdpGnmax[i]) < 1e-6, `${c.id} gnmax[${i}] ${dd[i]} vs ${c.rdpGnmax[i]}`);
      assert.ok(relErr(di[i], c.rdpGnmaxDataIndependent[i]) < 1e-12);
    });
    assert.equal(c.orders.some((_: number, i: number) => dd[i] < di[i]), c.gnmaxDataDependentUsed, `${c.id}: data-dependent used flag`);
    // the same through the (opt-in) data-dependent RDP accountant
    const acc = new RdpAccountant(c.orders, { dataDependent: true }).compose(DpEvents.gnmax({ sigma: c.rdpSigma, dataDependent: { logq: c.logq } }));
    acc.getRdp().forEach((r, i) => assert.ok(relErr(r, c.rdpGnmax[i]) < 1e-6));
    assert.ok(acc.getEpsilonDetails(1e-5).warnings.some((w) => /data-dependent/.test(w)));
    if (c.threshold !== undefined) {
      const lp = pate.computeLogprAnswered(c.threshold, c.sigmaThreshold, c.counts);
      assert.ok(relErr(lp, c.logPrAnswered) < 1e-6, `${c.id}: logPrAnswered ${lp} vs ${c.logPrAnswered}`);
      const t = pate.computeRdpThreshold(c.logPrAnswered, c.sigmaThreshold, c.orders);
      c.orders.forEach((_: number, i: number) => {
        assert.ok(relErr(t[i], c.rdpThreshold[i]) < 1e-6, `${c.id} threshold[${i}] ${t[i]} vs ${c.rdpThreshold[i]}`);
        assert.ok(relErr(c.orders[i] / (2 * c.sigmaThreshold ** 2), c.rdpThresholdDataIndependent[i]) < 1e-12);
      });
      const data = new RdpAccountant(c.orders).compose(DpEvents.gnmax({ sigma: c.sigma, thresholdSigma: c.sigmaThreshold }));
      data.getRdp().forEach((r, i) => assert.ok(relErr(r, c.rdpGnmaxDataIndependent[i] + c.rdpThresholdDataIndependent[i]) < 1e-12));
    }
  }
});

vt('plain Gaussian with sensitivity (incl. DataLens TopAgg 2*sqrt(k)): eps, order, classic conversion', () => {
  for (const c of cases('gaussian_rdp_sensitivity')) {
    const ev = DpEvents.selfComposed(DpEvents.gaussianWithSensitivity(c.sigma, c.sensitivity), c.steps);
    const acc = new RdpAccountant().compose(ev);
    const d = acc.getEpsilonDetails(c.delta);
    assert.ok(relErr(d.epsilon, c.epsilon) < 1e-9, `${c.id}: ${d.epsilon} vs ${c.epsilon}`);
    assert.equal(d.optimalOrder, c.optimalOrder);
    const classic = new RdpAccountant(undefined, { conversion: 'classic' }).compose(ev).getEpsilonDetails(c.delta);
    assert.ok(relErr(classic.epsilon, c.classicEpsilon) < 1e-9, `${c.id} classic: ${classic.epsilon} vs ${c.classicEpsilon}`);
    assert.equal(classic.optimalOrder, c.classicOptimalOrder);
    acc.getRdp().forEach((r, i) => assert.ok(relErr(r, c.rdpPerOrderCoefficient * DEFAULT_ORDERS[i]) < 1e-12));
    if (c.k !== undefined) {
      const top = new RdpAccountant().compose(DpEvents.topAgg({ k: c.k, sigma: c.sigma, voters: 4000 }), c.steps).getEpsilonDetails(c.delta);
      assert.ok(relErr(top.epsilon, c.epsilon) < 1e-9, `${c.id} topAgg: ${top.epsilon}`);
    }
  }
});

test('TopAgg: 2k alpha / sigma^2 per query; DataLens threshold is free, a separately noised one costs 2 alpha/sigma1^2', () => {
  const a = new RdpAccountant([2, 4]).compose(DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000, threshold: { beta: 0.7 } }));
  assert.deepEqual([...a.getRdp()], [(2 * 200 * 2) / 5000 ** 2, (2 * 200 * 4) / 5000 ** 2]);
  const b = new RdpAccountant([2]).compose(DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000, threshold: { beta: 0.7, sigma1: 100 } }));
  assert.ok(relErr(b.getRdp()[0], (2 * 200 * 2) / 5000 ** 2 + (2 * 2) / 100 ** 2) < 1e-15);
  // DataLens's own stopping point: 86 steps x 15 queries at eps=1 (doc section 3, classic conversion, orders 1.1 + 2..199)
  const orders = [1.1, ...Array.from({ length: 198 }, (_, i) => i + 2)];
  const acc = new RdpAccountant(orders, { conversion: 'classic' }).compose(DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }), 86 * 15);
  const e = acc.getEpsilonDetails(1e-5);
  assert.ok(e.epsilon < 1 && e.epsilon > 0.99, `DataLens eps after 86 steps: ${e.epsilon}`);
  assert.equal(e.optimalOrder, 25);
  assert.ok(acc.epsilonIf(DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }), 1e-5, 15) > 1);
});

test('G-PATE: threshold charged always, GNMax only when answered (data-independent by default)', () => {
  const orders = [2, 10];
  const answered = new RdpAccountant(orders).compose(DpEvents.gnmax({ sigma: 1000, thresholdSigma: 3000, answered: true }));
  const skipped = new RdpAccountant(orders).compose(DpEvents.gnmax({ sigma: 1000, thresholdSigma: 3000, answered: false }));
  orders.forEach((a, i) => {
    assert.ok(relErr(answered.getRdp()[i], a / 1000 ** 2 + a / (2 * 3000 ** 2)) < 1e-14);
    assert.ok(relErr(skipped.getRdp()[i], a / (2 * 3000 ** 2)) < 1e-14);
  });
  // data-dependent statistics present but not opted in: ignored, with a warning
  const ev = DpEvents.gnmax({ sigma: 100, answered: true, dataDependent: { logq: -50 } });
  const def = new RdpAccountant(orders).compose(ev);
  orders.forEach((a, i) => assert.equal(def.getRdp()[i], a / 100 ** 2));
  assert.ok(def.getEpsilonDetails(1e-5).warnings.some((w) => /ignored/.test(w)));
});

test('NonPrivate gives epsilon = Infinity (never throws); Unsupported throws in every accountant', () => {
  for (const kind of ['rdp', 'pld'] as const) {
    const acc = makeAccountant(kind).compose(sgm(0.01, 1), 10).compose(DpEvents.nonPrivate('sigma = 0 run'));
    assert.equal(acc.getEpsilon(1e-5), Infinity);
    assert.ok(acc.getEpsilonDetails(1e-5).warnings.some((w) => /non-private/.test(w)));
    assert.equal(makeAccountant(kind).compose(DpEvents.gaussian(0)).getEpsilon(1e-5), Infinity);
    assert.throws(() => makeAccountant(kind).compose(DpEvents.unsupported('PTR without analysis')), (e: Error) => e instanceof AccountingError && /unsupported/.test(e.message));
    assert.throws(() => makeAccountant(kind).compose(DpEvents.composed([sgm(0.1, 1), DpEvents.unsupported('x')])), AccountingError);
    assert.equal(makeAccountant(kind).getEpsilon(1e-5), 0);
  }
});

test('events are immutable and round-trip through JSON', () => {
  const ev = DpEvents.composed([DpEvents.selfComposed(sgm(0.01, 1.1), 100), DpEvents.topAgg({ k: 5, sigma: 3, voters: 10 }), DpEvents.gnmax({ sigma: 4, thresholdSigma: 5, answered: false })]);
  assert.ok(Object.isFrozen(ev) && Object.isFrozen(ev.events));
  assert.throws(() => {
    (ev as any).kind = 'noOp';
  });
  const back = JSON.parse(JSON.stringify(ev));
  assert.deepEqual(back, ev);
  const a = new RdpAccountant().compose(ev).getEpsilon(1e-5);
  const b = new RdpAccountant().compose(back).getEpsilon(1e-5);
  assert.equal(a, b);
  assert.throws(() => DpEvents.poissonSampled(1.5, DpEvents.gaussian(1)), /sampling probability/);
  assert.throws(() => DpEvents.gaussian(-1), /noiseMultiplier/);
  assert.throws(() => DpEvents.selfComposed(DpEvents.gaussian(1), 2.5), /count/);
});

test('properties: eps increases with steps and q, decreases with sigma (RDP and PLD)', () => {
  for (const kind of ['rdp', 'pld'] as const) {
    const e = (q: number, s: number, t: number): number => dpsgdEpsilon({ noiseMultiplier: s, sampleRate: q, steps: t, delta: 1e-5, accountant: kind });
    const steps = [10, 100, 1000].map((t) => e(0.01, 1, t));
    assert.ok(steps[0] < steps[1] && steps[1] < steps[2], `${kind} steps ${steps}`);
    const qs = [0.001, 0.01, 0.1].map((q) => e(q, 1, 100));
    assert.ok(qs[0] < qs[1] && qs[1] < qs[2], `${kind} q ${qs}`);
    const ss = [0.8, 1.2, 2].map((s) => e(0.01, s, 100));
    assert.ok(ss[0] > ss[1] && ss[1] > ss[2], `${kind} sigma ${ss}`);
  }
});

test('composition of N identical events equals SelfComposed(N) (RDP and PLD)', () => {
  const ev = sgm(0.02, 1.3);
  for (const kind of ['rdp', 'pld'] as const) {
    const a = makeAccountant(kind);
    for (let i = 0; i < 50; i++) a.compose(ev);
    const b = makeAccountant(kind).compose(DpEvents.selfComposed(ev, 50));
    const c = makeAccountant(kind).compose(ev, 50);
    const d = makeAccountant(kind).compose(DpEvents.composed(Array(50).fill(ev)));
    const ea = a.getEpsilon(1e-6);
    for (const x of [b, c, d]) assert.ok(relErr(x.getEpsilon(1e-6), ea) < 1e-9, `${kind}: ${x.getEpsilon(1e-6)} vs ${ea}`);
  }
});

test('PLD <= RDP for the same events (subsampled Gaussian, Laplace, randomized response, mixtures)', () => {
  const evs = [
    DpEvents.selfComposed(sgm(0.01, 1.1), 1000),
    DpEvents.selfComposed(DpEvents.laplace(2), 20),
    DpEvents.selfComposed(DpEvents.randomizedResponse(0.5, 4), 30),
    DpEvents.composed([DpEvents.selfComposed(sgm(0.05, 2), 200), DpEvents.selfComposed(DpEvents.topAgg({ k: 50, sigma: 300, voters: 100 }), 20), DpEvents.gnmax({ sigma: 20, thresholdSigma: 30 })]),
  ];
  for (const ev of evs) {
    for (const delta of [1e-5, 1e-8]) {
      const r = new RdpAccountant().compose(ev).getEpsilon(delta);
      const p = new PldAccountant().compose(ev).getEpsilon(delta);
      assert.ok(p <= r + 1e-9, `${JSON.stringify(ev).slice(0, 80)}: pld ${p} > rdp ${r}`);
      assert.ok(p > 0.3 * r, `pld ${p} implausibly small vs rdp ${r}`);
    }
  }
});

test('PLD is tight for mechanisms with closed-form privacy profiles (Gaussian, Laplace, RR)', () => {
  // Gaussian (Balle & Wang 2018): delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), mu = sqrt(T)/sigma
  const sigma = 2;
  const T = 16;
  const mu = Math.sqrt(T) / sigma;
  const exactDelta = (eps: number): number => normCdf(-eps / mu + mu / 2) - Math.exp(eps) * normCdf(-eps / mu - mu / 2);
  const acc = new PldAccountant().compose(DpEvents.gaussian(sigma), T);
  for (const eps of [0.5, 2, 5]) {
    const d = acc.getDelta(eps);
    assert.ok(d >= exactDelta(eps) - 1e-12 && relErr(d, exactDelta(eps)) < 1e-3, `gaussian eps=${eps}: ${d} vs ${exactDelta(eps)}`);
  }
  // Laplace b: delta(eps) = 1 - exp((eps - 1/b)/2) for 0 <= eps < 1/b
  const b = 0.5;
  const lap = new PldAccountant().compose(DpEvents.laplace(b));
  for (const eps of [0.2, 1, 1.8]) {
    const exact = 1 - Math.exp((eps - 1 / b) / 2);
    const d = lap.getDelta(eps);
    assert.ok(d >= exact - 1e-12 && Math.abs(d - exact) < 2e-4, `laplace eps=${eps}: ${d} vs ${exact}`);
  }
  assert.ok(lap.getDelta(1 / b + 0.01) < 1e-9);
  // k-ary RR with eps0 is pure eps0-DP: delta(eps0) = 0, and delta(0) = (e^eps0 - 1)/(e^eps0 + k - 1)
  const rr = new PldAccountant().compose(DpEvents.randomizedResponse(1, 3));
  assert.ok(rr.getDelta(1 + 1e-3) < 1e-12);
  assert.ok(Math.abs(rr.getDelta(0) - (Math.E - 1) / (Math.E + 2)) < 1e-3);
});

test('RDP closed forms: Laplace limit, sampling without replacement at alpha = 2, conversion on a single order', () => {
  assert.ok(Math.abs(rdpLaplace(0.5, 1e6) - 2) < 1e-4);
  assert.ok(rdpLaplace(0.5, 2) < rdpLaplace(0.5, 10));
  // WBK19 Thm 9 at alpha = 2: log(1 + g^2 min(4(e^{e2}-1), 2 e^{e2}))
  const g = 0.01;
  const s = 1.5;
  const e2 = 2 / (2 * s * s);
  const exact = Math.log(1 + g * g * Math.min(4 * Math.expm1(e2), 2 * Math.exp(e2)));
  const got = rdpSampledWithoutReplacement(g, (j) => j / (2 * s * s), Infinity, 2);
  assert.ok(relErr(got, exact) < 1e-12, `${got} vs ${exact}`);
  // sampling without replacement is analysed under replace-one only (issue 12 #1: accountants are built for one relation)
  const replaceOne = () => new RdpAccountant(undefined, { relation: 'replace-one' });
  const wor = (m: number) => replaceOne().compose(DpEvents.sampledWithoutReplacement(60000, m, DpEvents.gaussian(1.1)), 1000).getEpsilon(1e-5);
  assert.ok(wor(128) < wor(256) && wor(256) < wor(1024));
  assert.equal(replaceOne().compose(DpEvents.sampledWithoutReplacement(100, 100, DpEvents.gaussian(3))).getEpsilon(1e-5), new RdpAccountant().compose(DpEvents.gaussian(3)).getEpsilon(1e-5));
  const one = rdpToEpsilon([2], [1], 1e-5);
  assert.ok(relErr(one.epsilon, 1 - (Math.log(1e-5) + Math.log(2)) + Math.log(0.5)) < 1e-14);
});

test('RDP accountant is incremental: 10,000 composes of one event cost one computation', () => {
  const acc = new RdpAccountant();
  const ev = sgm(0.004, 1.1);
  const t0 = performance.now();
  for (let i = 0; i < 10000; i++) acc.compose(ev);
  const eps = acc.getEpsilon(1e-5);
  const dt = performance.now() - t0;
  assert.ok(acc.rdpOf(ev) === acc.rdpOf(sgm(0.004, 1.1)), 'cached vector reused');
  assert.ok(relErr(eps, new RdpAccountant().compose(ev, 10000).getEpsilon(1e-5)) < 1e-12);
  assert.ok(dt < 1500, `10k composes took ${dt} ms`);
});

test('calibrateSteps is the inverse of the accountant', () => {
  const T = calibrateSteps({ noiseMultiplier: 1.1, sampleRate: 0.004, targetEpsilon: 2, delta: 1e-5 });
  assert.ok(dpsgdEpsilon({ noiseMultiplier: 1.1, sampleRate: 0.004, steps: T, delta: 1e-5 }) <= 2);
  assert.ok(dpsgdEpsilon({ noiseMultiplier: 1.1, sampleRate: 0.004, steps: T + 1, delta: 1e-5 }) > 2);
  assert.equal(calibrateSteps({ noiseMultiplier: 0.3, sampleRate: 1, targetEpsilon: 0.1, delta: 1e-5 }), 0);
  const Tp = calibrateSteps({ noiseMultiplier: 1.1, sampleRate: 0.004, targetEpsilon: 2, delta: 1e-5, accountant: 'pld' });
  assert.ok(Tp > T, `PLD allows more steps (${Tp}) than RDP (${T})`);
  assert.throws(() => calibrateNoise({ targetEpsilon: 0, delta: 1e-5, sampleRate: 0.01, steps: 10 }), /target epsilon/);
  assert.throws(() => calibrateNoise({ targetEpsilon: 1, delta: 1e-5, sampleRate: 0.01, steps: 10.5 }), /steps/);
});

test('Poisson-subsampled Laplace: PLD prices it (monotone in q, below the unsampled mechanism); RDP refuses loudly', () => {
  const e = (q: number): number => new PldAccountant().compose(DpEvents.poissonSampled(q, DpEvents.laplace(1)), 50).getEpsilon(1e-6);
  const full = new PldAccountant().compose(DpEvents.laplace(1), 50).getEpsilon(1e-6);
  const vals = [0.01, 0.1, 0.5].map(e);
  assert.ok(vals[0] < vals[1] && vals[1] < vals[2] && vals[2] < full, `${vals} / ${full}`);
  assert.ok(Math.abs(e(1) - full) < 1e-12);
  // amplification by subsampling for a single pure-DP step: eps' <= log(1 + q (e^eps - 1))
  const single = new PldAccountant().compose(DpEvents.poissonSampled(0.1, DpEvents.laplace(1))).getEpsilon(1e-9);
  assert.ok(single <= Math.log(1 + 0.1 * (Math.E - 1)) + 1e-3, `${single}`);
  assert.throws(() => new RdpAccountant().compose(DpEvents.poissonSampled(0.1, DpEvents.laplace(1))), /use the PLD accountant/);
});

test('DataLens / G-PATE stopping points from the algorithm spec (classic conversion, orders 1.1 + 2..199)', () => {
  const orders = [1.1, ...Array.from({ length: 198 }, (_, i) => i + 2)];
  const acc = () => new RdpAccountant(orders, { conversion: 'classic' });
  // DataLens MNIST eps=10: k=300, sigma=800, 15 queries per generator step -> stops after 109 steps (eps ~ 9.97, lambda = 4)
  const top = DpEvents.topAgg({ k: 300, sigma: 800, voters: 4000, threshold: { beta: 0.2 } });
  const d109 = acc().compose(top, 109 * 15).getEpsilonDetails(1e-5);
  assert.ok(d109.epsilon <= 10 && d109.epsilon > 9.9, `${d109.epsilon}`);
  assert.equal(d109.optimalOrder, 4);
  assert.ok(acc().compose(top, 110 * 15).getEpsilon(1e-5) > 10);
  // G-PATE eps=1 (sigma1 = 3000, sigma2 = 1000, p = 10 coordinates, all answered): ~1971 queries
  const query = DpEvents.selfComposed(DpEvents.gnmax({ sigma: 1000, thresholdSigma: 3000, answered: true }), 10);
  const a = acc();
  let n = 0;
  while (a.epsilonIf(query, 1e-5) <= 1) {
    a.compose(query);
    n++;
  }
  assert.ok(Math.abs(n - 1971) <= 2, `G-PATE answered queries at eps=1: ${n}`);
});

test('PLD single step of Poisson-subsampled Gaussian / Laplace equals the closed-form hockey stick (40-digit mpmath references)', () => {
  // remove direction dominates at these eps; references: delta = (1-q) S0(x) + q S1(x) - e^eps S0(x) evaluated in mpmath
  const refs: [any, number, number][] = [
    [DpEvents.poissonSampled(0.1, DpEvents.gaussian(1)), 0.05, 0.02614366295894726],
    [DpEvents.poissonSampled(0.1, DpEvents.gaussian(1)), 0.2, 0.009889314485188696],
    [DpEvents.poissonSampled(0.1, DpEvents.laplace(1)), 0.02, 0.03350217913562772],
    [DpEvents.poissonSampled(0.1, DpEvents.laplace(1)), 0.05, 0.025401389825142776],
    [DpEvents.poissonSampled(0.1, DpEvents.laplace(1)), 0.1, 0.013121830885831265],
  ];
  for (const [ev, eps, exact] of refs) {
    const d = new PldAccountant().compose(ev).getDelta(eps);
    assert.ok(d >= exact - 1e-13 && d - exact < 1e-9, `${ev.event.kind} eps=${eps}: ${d} vs ${exact}`);
  }
});

test('PLD stays exact and finite for huge losses (tiny noise): no underflow to a zero epsilon', () => {
  // 10 Gaussian steps with z = 0.03: closed form (mpmath root of the Balle-Wang profile) 6004.1342457801961
  const e = new PldAccountant().compose(DpEvents.gaussian(0.03), 10).getEpsilon(1e-5);
  assert.ok(e >= 6004.1342457 - 1e-6 && relErr(e, 6004.1342457801961) < 1e-5, `${e}`);
  const r = new RdpAccountant().compose(DpEvents.poissonSampled(0.5, DpEvents.gaussian(0.3)), 10000).getEpsilon(1e-5);
  const p = new PldAccountant().compose(DpEvents.poissonSampled(0.5, DpEvents.gaussian(0.3)), 10000).getEpsilon(1e-5);
  assert.ok(p <= r && p > 0.5 * r, `pld ${p} vs rdp ${r}`);
});
