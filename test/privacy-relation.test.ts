/**
 * Issue 12 #1 and #11 / issue 13 item 4: accountants built for one neighbouring relation, exhaustive
 * dispatchers that throw on what they cannot price, composite events lowered once, generic calibration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const keyDir = mkdtempSync(join(tmpdir(), 'dplens-relation-key-'));
process.env.DPLENS_OWNER_KEY_FILE = join(keyDir, 'owner.key');
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

const P = await import('../src/privacy/index.js');
const { DpEvents, makeAccountant, RdpAccountant, PldAccountant, AccountingError, RelationError, describeEvent, describeRelation, lowerEvent, relationProblem, calibrate, calibrateNoise } = P;
type DpEvent = import('../src/privacy/index.js').DpEvent;

const sgm = DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1));
const wor = DpEvents.sampledWithoutReplacement(60000, 256, DpEvents.gaussian(1.1));

test('#1 accountants are built for one relation: Poisson sampling only under add/remove, sampling without replacement only under replace-one', () => {
  for (const kind of ['rdp', 'pld'] as const) {
    const ar = makeAccountant(kind, { relation: 'add-remove' });
    const ro = makeAccountant(kind, { relation: 'replace-one' });
    assert.equal(ar.relation, 'add-remove');
    assert.equal(ro.relation, 'replace-one');
    assert.equal(makeAccountant(kind).relation, 'add-remove', 'default relation as dp_accounting');
    assert.equal(ar.supports(sgm), true);
    assert.equal(ro.supports(sgm), false);
    assert.throws(() => ro.compose(sgm), (e: Error) => e instanceof RelationError && e instanceof AccountingError && /only analysed under the add\/remove relation/.test(e.message) && /replace-one/.test(e.message));
    // nested inside wrappers too
    assert.throws(() => ro.compose(DpEvents.composed([DpEvents.gaussian(3), DpEvents.selfComposed(sgm, 10)])), RelationError);
    assert.equal(ar.supports(wor), false);
    assert.throws(() => ar.compose(wor), (e: Error) => e instanceof RelationError && /only analysed under the replace-one relation/.test(e.message));
    assert.throws(() => ar.epsilonIf(wor, 1e-5), RelationError);
    // refused events are not composed
    assert.equal(ro.getEpsilon(1e-5), 0);
    // every other primitive is priced the same under both relations
    const others = [DpEvents.gaussian(2), DpEvents.laplace(3), DpEvents.randomizedResponse(0.5, 3), DpEvents.topAgg({ k: 5, sigma: 30, voters: 10 }), DpEvents.gnmax({ sigma: 20, thresholdSigma: 30 })];
    for (const ev of others) {
      assert.ok(ar.supports(ev) && ro.supports(ev), describeEvent(ev));
      assert.equal(makeAccountant(kind, { relation: 'add-remove' }).compose(ev, 3).getEpsilon(1e-5), makeAccountant(kind, { relation: 'replace-one' }).compose(ev, 3).getEpsilon(1e-5), describeEvent(ev));
    }
  }
  // RDP prices WOR under replace-one
  assert.ok(new RdpAccountant(undefined, { relation: 'replace-one' }).compose(wor, 100).getEpsilon(1e-5) > 0);
  assert.throws(() => makeAccountant('rdp', { relation: 'neighbours' as never }), /add-remove or replace-one/);
  assert.match(describeRelation('replace-one'), /n, is treated as public/);
  assert.match(describeRelation('unrecorded'), /not recorded \(legacy ledger\)/);
  assert.equal(relationProblem(DpEvents.gaussian(1), 'replace-one'), undefined);
});

test('#11 every dispatcher throws on an event kind it does not know (never epsilon = 0)', () => {
  const bogus = { kind: 'bogus' } as unknown as DpEvent;
  const nested = DpEvents.composed([DpEvents.gaussian(5), bogus]);
  for (const ev of [bogus, nested, DpEvents.selfComposed(bogus, 3)]) {
    assert.throws(() => new PldAccountant().compose(ev), /unknown event kind "bogus"/, 'PLD compose');
    assert.throws(() => new RdpAccountant().compose(ev), /unknown event kind "bogus"/, 'RDP compose');
    assert.throws(() => new PldAccountant().epsilonIf(ev, 1e-5), /unknown event kind/, 'PLD epsilonIf');
    assert.equal(new PldAccountant().supports(ev), false);
    assert.equal(new RdpAccountant().supports(ev), false);
  }
  assert.throws(() => describeEvent(bogus), /unknown event kind/);
  assert.throws(() => lowerEvent(bogus), /unknown event kind/);
  assert.throws(() => relationProblem(bogus, 'add-remove'), /unknown event kind/);
  assert.throws(() => describeRelation('sideways' as never), /unknown neighbouring relation/);
});

test('#11 composite events are lowered once (lowerEvent) and both accountants price the lowered form identically', () => {
  const composites = [
    DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }),
    DpEvents.topAgg({ k: 50, sigma: 300, voters: 100, threshold: { beta: 0.2, sigma1: 40 } }),
    DpEvents.gnmax({ sigma: 20, thresholdSigma: 30, answered: true }),
    DpEvents.gnmax({ sigma: 20, thresholdSigma: 30, answered: false }),
    DpEvents.gnmax({ sigma: 20, answered: false }),
    DpEvents.gaussianWithSensitivity(6, 2),
    DpEvents.selfComposed(DpEvents.composed([DpEvents.topAgg({ k: 5, sigma: 30, voters: 10 }), DpEvents.gnmax({ sigma: 9 })]), 7),
  ];
  const primitiveKinds = new Set(['gaussian', 'laplace', 'randomizedResponse', 'nonPrivate', 'unsupported', 'noOp', 'poissonSampled', 'sampledWithoutReplacement', 'selfComposed', 'composed']);
  const kinds = (e: DpEvent): string[] => {
    const inner = 'event' in e ? kinds(e.event) : 'events' in e ? e.events.flatMap(kinds) : [];
    return [e.kind, ...inner];
  };
  for (const ev of composites) {
    const low = lowerEvent(ev);
    assert.ok(kinds(low).every((k) => primitiveKinds.has(k)), `${describeEvent(ev)} lowered to ${describeEvent(low)}`);
    assert.deepEqual(lowerEvent(low), low, 'lowering is idempotent');
    assert.deepEqual([...new RdpAccountant().compose(ev).getRdp()], [...new RdpAccountant().compose(low).getRdp()]);
    assert.equal(new PldAccountant().compose(ev, 5).getEpsilon(1e-5), new PldAccountant().compose(low, 5).getEpsilon(1e-5));
  }
  // the DataLens sensitivity: TopAgg(k, sigma) = Gaussian with noise multiplier sigma / (2 sqrt k)
  assert.deepEqual(lowerEvent(DpEvents.topAgg({ k: 4, sigma: 8, voters: 3 })), DpEvents.gaussian(2));
  // G-PATE: threshold always, the answer as a sensitivity-sqrt(2) histogram
  assert.deepEqual(lowerEvent(DpEvents.gnmax({ sigma: 4, thresholdSigma: 5, answered: false })), DpEvents.gaussian(5));
});

test('generic calibration: any event family; the DP-SGD wrapper gives identical results', () => {
  // Laplace counting query released 10 times: smallest scale for eps = 1 at delta = 1e-5 (PLD)
  const family = (b: number): DpEvent => DpEvents.selfComposed(DpEvents.laplace(b), 10);
  const r = calibrate({ family, targetEpsilon: 1, delta: 1e-5, accountant: 'pld', epsilonTolerance: 1e-3 });
  assert.ok(r.achievedEpsilon <= 1 && r.achievedEpsilon > 0.999, String(r.achievedEpsilon));
  assert.ok(new PldAccountant().compose(family(r.noise * 0.99)).getEpsilon(1e-5) > 1, 'smallest noise (1% less misses the target)');
  assert.ok(r.noise < 10, 'tighter than basic composition (scale 10)');
  // TopAgg family under replace-one (the synthesis relation)
  const top = calibrate({ family: (s) => DpEvents.selfComposed(DpEvents.topAgg({ k: 200, sigma: s, voters: 4000 }), 1000), targetEpsilon: 2, delta: 1e-5, relation: 'replace-one' });
  assert.ok(top.achievedEpsilon <= 2 && top.achievedEpsilon > 1.99);
  // the wrapper: identical to the generic search on the DP-SGD family
  const q = 0.004;
  const steps = 3750;
  const wrapped = calibrateNoise({ targetEpsilon: 3, delta: 1e-5, sampleRate: q, steps });
  const generic = calibrate({ family: (z) => DpEvents.selfComposed(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), steps), targetEpsilon: 3, delta: 1e-5 });
  assert.equal(wrapped.noiseMultiplier, 0.765380859375);
  assert.equal(generic.noise, wrapped.noiseMultiplier);
  assert.equal(generic.achievedEpsilon, wrapped.achievedEpsilon);
  // a family under a relation the accountant refuses is an error, not a number
  assert.throws(() => calibrate({ family: (z) => DpEvents.poissonSampled(q, DpEvents.gaussian(z)), targetEpsilon: 1, delta: 1e-5, relation: 'replace-one' }), RelationError);
});

test('calibration says WHY a target is unreachable (the RDP order list, a non-private part), not "needs noise > 1e6"', () => {
  assert.throws(
    () => calibrateNoise({ targetEpsilon: 0.05, delta: 1e-5, sampleRate: 0.01, steps: 100 }),
    (e: Error) => e instanceof RangeError && /RDP order list/.test(e.message) && /orders up to 63/.test(e.message) && /PLD/.test(e.message) && !/needs noise/.test(e.message),
  );
  // ... and PLD reaches it
  const p = calibrateNoise({ targetEpsilon: 0.05, delta: 1e-5, sampleRate: 0.01, steps: 100, accountant: 'pld' });
  assert.ok(p.achievedEpsilon <= 0.05);
  assert.throws(
    () => calibrate({ family: (z) => DpEvents.composed([DpEvents.gaussian(z), DpEvents.nonPrivate('raw count')]), targetEpsilon: 1, delta: 1e-5 }),
    /not private at any noise/,
  );
});

test('data-dependent GNMax (opted in) prices a part without its statistic exactly as the lowered event', () => {
  const lowered = (e: DpEvent): Float64Array => new RdpAccountant().rdpOf(e);
  const dd = new RdpAccountant(undefined, { dataDependent: true });
  // statistics for neither part: identical to the data-independent lowering
  const noStats = DpEvents.gnmax({ sigma: 40, thresholdSigma: 150, answered: true, dataDependent: {} });
  assert.deepEqual(dd.rdpOf(noStats), lowered(DpEvents.gnmax({ sigma: 40, thresholdSigma: 150, answered: true })));
  // logq only: the threshold part is the lowered Gaussian(thresholdSigma)
  const withLogq = DpEvents.gnmax({ sigma: 40, thresholdSigma: 150, answered: true, dataDependent: { logq: -50 } });
  const answeredOnly = dd.rdpOf(DpEvents.gnmax({ sigma: 40, answered: true, dataDependent: { logq: -50 } }));
  const threshold = lowered(DpEvents.gaussian(150));
  const both = dd.rdpOf(withLogq);
  for (let i = 0; i < both.length; i++) assert.equal(both[i], answeredOnly[i] + threshold[i]);
});
