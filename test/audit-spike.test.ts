/**
 * Issue 12 #12: the white-box spike score and the pre-registered guesses of the DP-SGD audit, on
 * simulated canary series with the real pipeline's shape (m = 1000, q = 0.004, T = 250 steps: an
 * included canary enters ~1 step, 37 % never). Fast: no training; the full MNIST runs are in
 * bench/audit.ts (`npm run bench:audit`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canaryAuditPlan, makeDiracCanaries, spikeLlrScore, summarizeAudit } from '../src/audit/index.js';
import { seededRandom } from '../src/privacy/index.js';

const m = 1000;
const q = 0.004;
const T = 250;

/** Feeds T steps of simulated ⟨noisy sum, e_k⟩/C to a canary set: data drift + per-coordinate jitter + σ noise + 1 per inclusion. */
function simulate(statistic: 'sum' | 'sq-diff' | 'spike-llr', sigma: number, seed: number) {
  const rng = seededRandom(seed);
  const set = makeDiracCanaries(m, q, rng, statistic);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.nextDouble())) * Math.cos(2 * Math.PI * rng.nextDouble());
  const scale = Array.from({ length: m }, () => 0.3 * rng.nextDouble() ** 2); // many quiet coordinates, a few busy ones
  const level = new Float64Array(m);
  const probs = set.hook.probability as number[];
  for (let t = 0; t < T; t++) {
    const dots: number[] = [];
    const included: boolean[] = [];
    for (let j = 0; j < m; j++) {
      level[j]! += 0.05 * scale[j]! * gauss(); // slow drift of the data gradient along the coordinate
      const inc = rng.nextDouble() < probs[j]!;
      included.push(inc);
      dots.push(level[j]! + scale[j]! * gauss() + sigma * gauss() + (inc ? 1 : 0));
    }
    set.hook.onStep({ step: t, included, dots });
  }
  return set;
}

test('σ = 0 at q = 0.004: spike score + pre-registered single test gives ε ≥ 4; the old sum/sq-diff scores with the 30-choice grid cannot', () => {
  const plan = canaryAuditPlan({ m, sampleRate: q, steps: T, noiseMultiplier: 0 });
  assert.equal(plan.statistic, 'spike-llr');
  assert.deepEqual(plan.strategy, { kind: 'fixed', kPlus: Math.round(0.75 * plan.expectedDetectable), kMinus: 0 });
  const set = simulate('spike-llr', 0, 1);
  const r = summarizeAudit(set.scores(), set.included, { claimedEpsilon: null, delta: 1e-5, confidence: 0.95, attack: 't', strategy: plan.strategy, seconds: 0 });
  assert.ok(r.empiricalEpsilonLowerBound >= 4, `new design: ${r.empiricalEpsilonLowerBound}`);
  for (const statistic of ['sum', 'sq-diff'] as const) {
    const old = simulate(statistic, 0, 1);
    const o = summarizeAudit(old.scores(), old.included, { claimedEpsilon: null, delta: 1e-5, confidence: 0.95, attack: 't', seconds: 0 });
    assert.ok(o.empiricalEpsilonLowerBound < 4, `old ${statistic}: ${o.empiricalEpsilonLowerBound}`);
  }
});

test('σ = 1.3 at q = 0.004 (claimed ε ≈ 0.48): the bound stays below the claim', () => {
  const plan = canaryAuditPlan({ m, sampleRate: q, steps: T, noiseMultiplier: 1.3 });
  assert.equal(plan.strategy.kind, 'bonferroni');
  const set = simulate('spike-llr', 1.3, 2);
  const r = summarizeAudit(set.scores(), set.included, { claimedEpsilon: 0.4838, delta: 1e-5, confidence: 0.95, attack: 't', strategy: plan.strategy, seconds: 0 });
  assert.ok(r.empiricalEpsilonLowerBound <= 0.4838, `bound ${r.empiricalEpsilonLowerBound}`);
  assert.equal(r.violation, false);
});

test('spike score: a +1 spike on a quiet series outranks a busy series without one, and never overflows', () => {
  const quiet = new Array<number>(50).fill(0.2);
  quiet[20] = 1.2;
  const busy = Array.from({ length: 50 }, (_, t) => Math.sin(t) * 0.5);
  assert.ok(spikeLlrScore(quiet, q) > spikeLlrScore(busy, q));
  assert.ok(Number.isFinite(spikeLlrScore(quiet, q)));
  assert.ok(spikeLlrScore(new Array<number>(50).fill(0), q) < 0);
});
