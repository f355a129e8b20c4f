import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  binomialSurvival,
  oneRunPValue,
  oneRunEpsilonLowerBound,
  oneRunAudit,
  rocCurve,
  tprAtFpr,
  attackMetrics,
  downsampleRoc,
} from '../src/audit/stats.js';
// test data only: the project's seeded xorshift32
import { xorshift32 } from '../src/util/prng.js';

test('binomial survival matches brute force and scipy', () => {
  // brute force on a small case
  const n = 20;
  const p = 0.3;
  for (const k of [0, 1, 5, 6, 12, 20, 21]) {
    let s = 0;
    for (let j = k; j <= n; j++) {
      let c = 1;
      for (let t = 0; t < j; t++) c = (c * (n - t)) / (t + 1);
      s += c * p ** j * (1 - p) ** (n - j);
    }
    assert.ok(Math.abs(binomialSurvival(k, n, p) - (k > n ? 0 : s)) < 1e-12, `k=${k}`);
  }
  // scipy.stats.binom.sf(899, 1000, 0.88) = 0.0266405331... (SciPy 1.17)
  assert.ok(Math.abs(binomialSurvival(900, 1000, 0.88) / 0.02664053316189475 - 1) < 1e-9, String(binomialSurvival(900, 1000, 0.88)));
});

test('one-run p-value and ε lower bound match the reference implementation (SciPy) incl. δ > 0', () => {
  // values computed with the paper's p_value_DP_audit / get_eps_audit in Python + SciPy 1.17
  const cases: [number, number, number, number, number, number][] = [
    [1000, 1000, 1000, 0, 0.05, 5.80906833854533],
    [1000, 1000, 1000, 1e-5, 0.05, 5.782283135391481],
    [1000, 100, 90, 0, 0.05, 1.6308231927405359],
    [1000, 100, 90, 1e-5, 0.05, 1.6261434806956458],
    [1000, 300, 250, 1e-5, 0.0025, 1.1690287030769468],
    [10000, 500, 400, 1e-5, 0.05, 1.1916704866162036],
    [1000, 200, 120, 0, 0.05, 0.15906974921745132],
  ];
  for (const [m, r, v, delta, beta, want] of cases) {
    const got = oneRunEpsilonLowerBound(m, r, v, delta, beta);
    assert.ok(Math.abs(got - want) < 1e-4, `m=${m} r=${r} v=${v} δ=${delta}: ${got} vs ${want}`);
  }
  const pv: [number, number, number, number, number][] = [
    [1000, 1000, 1000, 1e-5, 6.588622306865122e-5],
    [1000, 100, 90, 1e-5, 0.0008412885614385305],
    [1000, 300, 250, 1e-5, 0.00046869314043320674],
  ];
  for (const [m, r, v, delta, want] of pv) {
    const got = oneRunPValue(m, r, v, 1.0, delta);
    assert.ok(Math.abs(got / want - 1) < 1e-6, `p-value ${got} vs ${want}`);
  }
  // perfect guessing, δ = 0: closed form q^r = β ⇒ ε = logit(β^{1/r})
  const q = Math.pow(0.05, 1 / 1000);
  assert.ok(Math.abs(oneRunEpsilonLowerBound(1000, 1000, 1000, 0, 0.05) - Math.log(q / (1 - q))) < 1e-5);
  assert.throws(() => oneRunPValue(10, 5, 6, 1, 0), RangeError);
  assert.throws(() => oneRunEpsilonLowerBound(10, 5, 5, 0, 0), RangeError);
});

test('ε = ∞ (perfect scores) on m = 1000 gives a bound ≥ 4 at 95% even with the Bonferroni grid', () => {
  const r = xorshift32(1);
  const m = 1000;
  const included = Array.from({ length: m }, () => r() < 0.5);
  const scores = included.map((b) => (b ? 1 : 0) + r() * 0.1);
  const res = oneRunAudit(scores, included, { delta: 1e-5, confidence: 0.95 });
  assert.ok(res.epsilonLowerBound >= 4, `bound ${res.epsilonLowerBound}`);
  assert.equal(res.tests, 30);
  assert.equal(res.best.v, res.best.r); // all guesses of the best choice are right
  const fixed = oneRunAudit(scores, included, { delta: 1e-5, strategy: { kind: 'fixed', kPlus: 400, kMinus: 400 } });
  assert.ok(fixed.epsilonLowerBound > 4.5, `fixed bound ${fixed.epsilonLowerBound}`);
});

test('random scores give a bound ≈ 0 and false positives stay below β', () => {
  const r = xorshift32(7);
  let positives = 0;
  let maxBound = 0;
  const trials = 200;
  for (let t = 0; t < trials; t++) {
    const included = Array.from({ length: 1000 }, () => r() < 0.5);
    const scores = included.map(() => r());
    const res = oneRunAudit(scores, included, { delta: 1e-5, confidence: 0.95 });
    if (res.epsilonLowerBound > 0) positives++;
    maxBound = Math.max(maxBound, res.epsilonLowerBound);
  }
  // Bonferroni makes the test conservative: far fewer than 5% of null runs report ε > 0
  assert.ok(positives / trials <= 0.05, `false positive rate ${positives / trials}`);
  assert.ok(maxBound < 0.5, `max bound under the null ${maxBound}`);
});

test('a bound computed from an ε-DP randomised-response mechanism stays below ε (validity)', () => {
  // Each canary's score is its inclusion bit passed through ε-DP randomised response; the
  // mechanism is exactly ε-DP, so the 95% bound must exceed ε in at most ~5% of runs.
  const eps = 2;
  const pKeep = Math.exp(eps) / (1 + Math.exp(eps));
  const r = xorshift32(11);
  let violations = 0;
  let sum = 0;
  const trials = 60;
  for (let t = 0; t < trials; t++) {
    const included = Array.from({ length: 1000 }, () => r() < 0.5);
    const scores = included.map((b) => ((r() < pKeep ? b : !b) ? 1 : 0) + r() * 1e-3);
    const res = oneRunAudit(scores, included, { delta: 0, confidence: 0.95 });
    if (res.epsilonLowerBound > eps) violations++;
    sum += res.epsilonLowerBound;
  }
  assert.ok(violations <= 3, `violations ${violations}`);
  // and the attack is informative: the bound is a substantial fraction of ε
  assert.ok(sum / trials > 0.8, `mean bound ${sum / trials}`);
});

test('ROC, AUC and TPR at low FPR', () => {
  // perfect separation
  const perfect = rocCurve([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]);
  assert.equal(perfect.auc, 1);
  assert.deepEqual(perfect.fpr, [0, 0, 0, 0.5, 1]);
  assert.deepEqual(perfect.tpr, [0, 0.5, 1, 1, 1]);
  // all ties → diagonal, AUC ½
  const ties = rocCurve([1, 1, 1, 1], [1, 0, 1, 0]);
  assert.equal(ties.auc, 0.5);
  // AUC equals the Mann–Whitney statistic on random data
  const r = xorshift32(3);
  const scores = Array.from({ length: 500 }, () => Math.round(r() * 50));
  const labels = scores.map((s) => (r() < 0.3 + s / 100 ? 1 : 0));
  let pairs = 0;
  let wins = 0;
  for (let i = 0; i < scores.length; i++) {
    for (let j = 0; j < scores.length; j++) {
      if (labels[i] === 1 && labels[j] === 0) {
        pairs++;
        wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
  }
  assert.ok(Math.abs(rocCurve(scores, labels).auc - wins / pairs) < 1e-12);
  // TPR at FPR: 1000 non-members, 100 members; the 5 top scores are members, then a non-member
  const s2: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < 1000; i++) {
    s2.push(i / 1000);
    l2.push(0);
  }
  for (let i = 0; i < 100; i++) {
    s2.push(i < 5 ? 2 + i : 0.5 + i / 1e4);
    l2.push(1);
  }
  const roc = rocCurve(s2, l2);
  assert.equal(tprAtFpr(roc, 0), 0.05);
  const m = attackMetrics(s2, l2);
  assert.equal(m.tprAt0p1, 0.05); // the first non-member (FPR 0.001) comes before the next member
  assert.ok(m.roc.fpr.length <= 200 && m.roc.fpr[0] === 0 && m.roc.fpr.at(-1) === 1);
  const d = downsampleRoc(roc, 50);
  assert.ok(d.fpr.length <= 50 + 2);
  for (let i = 1; i < d.fpr.length; i++) assert.ok(d.fpr[i]! >= d.fpr[i - 1]!);
  assert.throws(() => rocCurve([1, 2], [1, 1]), RangeError);
  assert.throws(() => rocCurve([1, NaN], [1, 0]), RangeError);
});
