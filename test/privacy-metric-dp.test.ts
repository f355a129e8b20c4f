/**
 * Metric-DP events (privacy/metric-dp.ts): composed as DirDP-SGD proves (sequential composition of
 * εd-privacy: ε's add), refused by the (ε, δ) accountants, recorded by the ledger in their own
 * terms; the VMF mean resultant length A_d(κ) against closed forms / table values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AccountingError,
  DpEvents,
  describeEvent,
  makeAccountant,
  MetricDpTally,
  PldAccountant,
  PrivacyLedger,
  RdpAccountant,
  RelationError,
  validateEvent,
  vmfMeanResultantLength,
  vmfMeanResultantLength3,
  withMetricDp,
} from '../src/privacy/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-metricdp-'));
process.env.DPLENS_OWNER_KEY_FILE = join(dir, 'owner.key');
test.after(() => rmSync(dir, { recursive: true, force: true }));

const vmf = (k: number) => DpEvents.metricDp(k, 'angular', 'vmf');

test('composition follows the paper: T steps of VMF(κ) are (T·κ)d-private; mixed κ add up', () => {
  // Reference values by hand from Faustini et al. 2023 (DirDP-SGD, sequential composition of
  // εd-privacy, Chatzikokolakis et al. 2013 Thm: ε₁d ∘ ε₂d = (ε₁ + ε₂)d), no subsampling amplification.
  const t = new MetricDpTally();
  t.compose(DpEvents.selfComposed(vmf(0.5), 1000));
  assert.deepEqual(t.spent(), { epsilon: 500, metric: 'angular' });
  t.compose(DpEvents.composed([DpEvents.selfComposed(vmf(2), 3), vmf(1.5), DpEvents.noOp()]));
  assert.deepEqual(t.spent(), { epsilon: 507.5, metric: 'angular' });
  assert.equal(t.epsilonIf(vmf(2.5), 4), 517.5);
  assert.equal(new MetricDpTally().spent(), undefined);
  // a sampled metric-DP release: no amplification theorem here, refused
  assert.throws(() => new MetricDpTally().compose(DpEvents.poissonSampled(0.01, vmf(1))), AccountingError);
  assert.throws(() => new MetricDpTally().compose(DpEvents.gaussian(1)), AccountingError);
});

test('RDP and PLD accountants refuse metric-DP events (never converted to (ε, δ))', () => {
  for (const acc of [new RdpAccountant(), new PldAccountant(), makeAccountant('rdp', { relation: 'replace-one' })]) {
    for (const e of [vmf(1), DpEvents.selfComposed(vmf(1), 10), DpEvents.composed([DpEvents.gaussian(1), vmf(1)])]) {
      assert.equal(acc.supports(e), false, `${acc.kind} ${describeEvent(e)}`);
      assert.throws(() => acc.compose(e), AccountingError);
    }
  }
  assert.throws(() => makeAccountant('rdp', { relation: 'replace-one' }).compose(vmf(1)), /metric DP is not \(epsilon, delta\)-DP/);
  assert.throws(() => makeAccountant('pld', { relation: 'replace-one' }).compose(vmf(1)), /metric DP is not \(epsilon, delta\)-DP/);
});

test('metric-aware accountant: (ε, δ) part unchanged, metric part in its own terms, ε = ∞ once one is recorded', () => {
  const acc = withMetricDp(makeAccountant('rdp', { relation: 'replace-one' }));
  acc.compose(DpEvents.gaussian(2));
  const before = acc.getEpsilon(1e-5);
  assert.ok(Number.isFinite(before) && before > 0);
  assert.equal(acc.epsilonIf(vmf(1), 1e-5), Infinity);
  acc.compose(DpEvents.selfComposed(vmf(3), 7));
  assert.deepEqual(acc.metricSpent(), { epsilon: 21, metric: 'angular' });
  assert.equal(acc.getEpsilon(1e-5), Infinity);
  assert.match(acc.getEpsilonDetails(1e-5).warnings.join(), /no \(ε, δ\) guarantee is stated/);
  // one event mixing both kinds is refused; metric DP under add/remove is refused
  assert.throws(() => acc.compose(DpEvents.composed([DpEvents.gaussian(1), vmf(1)])), /mixes metric-DP and/);
  assert.throws(() => withMetricDp(makeAccountant('rdp')).compose(vmf(1)), RelationError);
});

test('ledger: metric-DP entries recorded, reported in metric terms, refused under add/remove', () => {
  const path = join(dir, 'vmf-ledger.jsonl');
  const l = PrivacyLedger.open(path, { accountant: 'rdp', relation: 'replace-one', randomness: { kind: 'secure' }, create: true });
  l.record({ event: DpEvents.selfComposed(vmf(4), 25), method: 'dpsgd-vmf', datasetFingerprint: 'x' });
  l.record({ event: DpEvents.selfComposed(vmf(4), 5), method: 'dpsgd-vmf', datasetFingerprint: 'x' });
  assert.deepEqual(l.metricSpent(), { epsilon: 120, metric: 'angular' });
  assert.equal(l.spent(1e-5), Infinity);
  assert.deepEqual(l.guarantee(1e-5), { kind: 'metricDP', epsilon: 120, metric: 'angular' });
  l.close();
  const r = PrivacyLedger.read(path);
  assert.equal(r.verification.ok, true);
  assert.deepEqual(r.guarantee(1e-5), { kind: 'metricDP', epsilon: 120, metric: 'angular' });
  // a Gaussian DP-SGD ledger states (ε, δ)
  const g = PrivacyLedger.open(join(dir, 'g.jsonl'), { accountant: 'rdp', relation: 'add-remove', randomness: { kind: 'secure' }, create: true });
  g.record({ event: DpEvents.selfComposed(DpEvents.poissonSampled(0.004, DpEvents.gaussian(1)), 250), method: 'dpsgd-gaussian', datasetFingerprint: 'x' });
  const ga = g.guarantee(1e-5);
  assert.equal(ga.kind, 'approxDP');
  assert.throws(() => g.record({ event: vmf(1), method: 'dpsgd-vmf', datasetFingerprint: 'x' }), RelationError);
  g.close();
  // JSON round trip of the event
  assert.deepEqual(validateEvent(JSON.parse(JSON.stringify(vmf(2.5)))), vmf(2.5));
  assert.throws(() => validateEvent({ kind: 'metricDp', epsilon: -1, metric: 'angular', mechanism: 'vmf' }));
  assert.throws(() => validateEvent({ kind: 'metricDp', epsilon: 1, metric: 'euclid', mechanism: 'vmf' }));
});

test('A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ): d = 3 closed form, d = 2 table values, limits', () => {
  for (const k of [0.1, 1, 5, 30, 200]) assert.ok(Math.abs(vmfMeanResultantLength(3, k) - vmfMeanResultantLength3(k)) < 1e-12, `κ ${k}`);
  // d = 2: I1(1)/I0(1), I1(2)/I0(2) (Abramowitz & Stegun Table 9.8: I0(1) = 1.266065878, I1(1) = 0.565159104, I0(2) = 2.279585302, I1(2) = 1.590636855)
  assert.ok(Math.abs(vmfMeanResultantLength(2, 1) - 0.565159104 / 1.266065878) < 1e-8);
  assert.ok(Math.abs(vmfMeanResultantLength(2, 2) - 1.590636855 / 2.279585302) < 1e-8);
  assert.equal(vmfMeanResultantLength(10, 0), 0);
  // high dimension, κ ≪ d: A ≈ κ/d; κ ≫ d: A ≈ 1 − (d−1)/(2κ)
  assert.ok(Math.abs(vmfMeanResultantLength(26010, 10) - 10 / 26010) < 1e-7);
  assert.ok(Math.abs(vmfMeanResultantLength(100, 1e6) - (1 - 99 / 2e6)) < 1e-8);
});
