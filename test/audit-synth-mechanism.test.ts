/**
 * Mechanism-level white-box audit of the voting generators (issue 12 #12, synthesis): the run's own
 * aggregator (TopAgg / G-PATE Confident-GNMax, its noise code and recorded parameters) replayed with
 * canary voters of the step's full charged sensitivity.
 *  - σ = 0 (DataLens and G-PATE, default ε = 1 presets with σ set to 0): bound ≥ 4 at 95 %, m = 1000;
 *  - the default ε = 1 presets: the bound stays ≤ the claimed ε;
 *  - an aggregator that adds 1/50 of the noise it charges is caught (bound > claim);
 *  - end to end: a `--non-private` σ = 0 synthesis run folder is flagged by auditRun, which reads no
 *    private data and records no ε; noise 0 without --non-private is refused.
 * Fails on the original code by construction: it had no replay (mechanismAuditStrategy,
 * replayMechanismWithCanaries, plugin.mechanism) and no way to run synthesis with σ = 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { mechanismAuditStrategy, replayMechanismWithCanaries, summarizeAudit } from '../src/audit/index.js';
import { datalensPlugin, DataLens, ensureEngine, gpatePlugin, resolvePluginHyper, TopAggAggregator, votingGanOptions, votingStepFacts, type GeneratorPlugin, type SynthesisHyper, type VotingFacts } from '../src/generate/index.js';
import { PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { auditRun } from '../src/runs/audit.js';
import { runSynthesis } from '../src/runs/synth.js';

const MNIST_FACTS = { trainCount: 60000, numClasses: 10, height: 28, width: 28, channels: 1 };

/** The mechanism of `preset` with overrides, and the steps an ε = 1 budget allows (60 when unbounded). */
function mechanismOf(plugin: GeneratorPlugin<SynthesisHyper>, over: Partial<SynthesisHyper>) {
  const h = plugin.finalizeHyper!(resolvePluginHyper(plugin, 'mnist-eps1', over), MNIST_FACTS);
  const mech = plugin.mechanism!(h, MNIST_FACTS);
  const ev = mech.aggregator.stepEvent(mech.facts);
  const acc = new RdpAccountant();
  let steps = 0;
  while (steps < 5000 && acc.epsilonIf(ev, 1e-5) <= 1) {
    acc.compose(ev);
    steps++;
  }
  return { ...mech, steps: steps === 0 ? 60 : steps };
}

function audit(mech: ReturnType<typeof mechanismOf>, seed: number) {
  const r = replayMechanismWithCanaries({ ...mech, m: 1000, rng: seededRandom(seed), noise: seededRandom(seed + 1) });
  const eps = r.replayEpsilon(1e-5);
  return summarizeAudit(r.scores, r.included, { claimedEpsilon: Number.isFinite(eps) ? eps : null, delta: 1e-5, confidence: 0.95, attack: 'mechanism replay', strategy: mechanismAuditStrategy(r.declaredNoise), seconds: 0 });
}

test('σ = 0 DataLens and G-PATE mechanisms: the replay gives ε ≥ 4 at 95 % with 1,000 canaries', (t) => {
  for (const [plugin, over] of [
    [datalensPlugin, { sigma: 0 }],
    [gpatePlugin, { sigma1: 0, sigma2: 0 }],
  ] as const) {
    const mech = mechanismOf(plugin, over);
    const r = audit(mech, 11);
    t.diagnostic(`${plugin.name} σ = 0: bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc}, ${r.guesses.correct}/${r.guesses.kPlus + r.guesses.kMinus}`);
    assert.equal(r.claimedEpsilon, null);
    assert.ok(r.empiricalEpsilonLowerBound >= 4, `${plugin.name}: bound ${r.empiricalEpsilonLowerBound}`);
    assert.ok(r.auc > 0.999, `auc ${r.auc}`);
  }
});

test('default ε = 1 presets (DataLens, G-PATE): the replay bound stays ≤ the claimed ε', (t) => {
  for (const plugin of [datalensPlugin, gpatePlugin]) {
    const mech = mechanismOf(plugin, {});
    const r = audit(mech, 21);
    t.diagnostic(`${plugin.name} ε = 1 preset, ${mech.steps} steps: claimed ${r.claimedEpsilon}, bound ${r.empiricalEpsilonLowerBound.toFixed(3)}, auc ${r.auc.toFixed(3)}`);
    assert.ok(r.claimedEpsilon !== null && r.claimedEpsilon <= 1 && r.claimedEpsilon > 0.9);
    assert.ok(r.empiricalEpsilonLowerBound <= r.claimedEpsilon!, `${plugin.name}: bound ${r.empiricalEpsilonLowerBound} > claim ${r.claimedEpsilon}`);
    assert.ok(!r.violation);
  }
});

test('an aggregator that adds 1/50 of the noise it charges is caught (bound > claimed ε)', (t) => {
  const mech = mechanismOf(datalensPlugin, {});
  const honest = mech.aggregator as TopAggAggregator;
  class QuietTopAgg extends TopAggAggregator {
    // charges the honest σ's event, releases with σ/50: the bug class the replay must catch
    override stepEvent(f: VotingFacts) {
      return honest.stepEvent(f);
    }
  }
  const r = audit({ ...mech, aggregator: new QuietTopAgg({ ...honest.params, sigma: honest.params.sigma / 50 }) }, 31);
  t.diagnostic(`σ/50 released, σ charged: claimed ${r.claimedEpsilon}, bound ${r.empiricalEpsilonLowerBound.toFixed(3)}`);
  assert.ok(r.violation, `bound ${r.empiricalEpsilonLowerBound} vs claim ${r.claimedEpsilon}`);
});

const mnist = loadMnist();
/** A 2,000-record MNIST subset: kernel teachers are one per record, so steps are fast. */
const small = { ...mnist, train: { images: mnist.train.images.slice(0, 2000 * 784), labels: mnist.train.labels.slice(0, 2000), count: 2000 }, rawFingerprint: `${mnist.rawFingerprint}:first-2000` };

test('votingStepFacts (the replay) equals the facts VotingGan derives (drift guard)', async () => {
  await ensureEngine();
  for (const preset of ['mnist-eps1', 'neural-mnist-eps1', 'paper-mnist-eps1']) {
    const h = datalensPlugin.finalizeHyper!(resolvePluginHyper(datalensPlugin, preset, preset === 'mnist-eps1' ? {} : { teachers: 100 }), { trainCount: 2000, numClasses: 10 });
    const ledger = PrivacyLedger.open(join(mkdtempSync(join(tmpdir(), 'dplens-facts-')), 'l.jsonl'), { accountant: 'rdp', relation: 'replace-one', randomness: { kind: 'seeded', seed: 1 } });
    try {
      const gan = new DataLens({ data: small, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(1) }, votingGanOptions(h, 1, 1), { k: h.topk, sigma: h.sigma, clip: h.clip, stochastic: h.stochastic, beta: h.beta, alpha: h.alpha });
      assert.deepEqual(votingStepFacts(h, { trainCount: 2000, numClasses: 10, height: 28, width: 28, channels: 1 }), gan.facts, preset);
      gan.dispose();
    } finally {
      ledger.close();
    }
  }
});

test('a σ = 0 synthesis run (--non-private, DataLens and G-PATE) is flagged by auditRun, which spends no ε; σ = 0 without --non-private is refused', async (t) => {
  await ensureEngine();
  const root = mkdtempSync(join(tmpdir(), 'dplens-synth-audit-'));
  try {
    await assert.rejects(
      runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 1, delta: 1e-5, out: join(root, 'refused'), samples: 50, maxSteps: 2, hyper: { sigma: 0 } }, { dataOverride: small }),
      /not private.*--non-private/,
    );
    await assert.rejects(runSynthesis({ method: 'class-mean', data: 'mnist', epsilon: 1, delta: 1e-5, out: join(root, 'cm'), nonPrivate: true }, { dataOverride: small }), /--non-private does not apply/);
    for (const [method, hyper] of [
      ['datalens', { sigma: 0 }],
      ['gpate', { sigma1: 0, sigma2: 0 }],
    ] as const) {
      const dir = join(root, method);
      const res = await runSynthesis({ method, data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 50, maxSteps: 3, seed: 3, hyper, nonPrivate: true }, { dataOverride: small });
      assert.equal(res.generatorSteps, 3);
      const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
      assert.deepEqual(ledger.entries.map((e) => e.event.kind), ['nonPrivate']);
      assert.equal(ledger.header.budget, undefined);
      const a = await auditRun(dir, { seed: 5 });
      t.diagnostic(`${method} σ = 0, 3 steps: bound ${a.empiricalEpsilonLowerBound.toFixed(3)}, flagged ${a.flagged} (${a.flagReason}), ${a.seconds} s`);
      assert.equal(a.flagged, true);
      assert.match(a.flagReason!, /no DP guarantee/);
      assert.ok(a.empiricalEpsilonLowerBound >= 4, `bound ${a.empiricalEpsilonLowerBound}`);
      assert.equal(a.additionalEpsilonSpent, 0);
      assert.equal(a.privateDataUsed, false);
      const onDisk = JSON.parse(readFileSync(join(dir, 'audit.json'), 'utf8')) as Record<string, unknown>;
      for (const k of ['claimedEpsilon', 'empiricalEpsilonLowerBound', 'confidence', 'attack', 'roc', 'auc', 'flagged']) assert.ok(k in onDisk, k);
      assert.ok(!existsSync(join(dir, 'audit-ledger.jsonl')) && !existsSync(join(dir, 'audit-rerun')), 'the replay records no re-run');
    }
    // a private run with the default ε = 1 preset (5 steps) stays within its claim and is not flagged
    const dir = join(root, 'private');
    await runSynthesis({ method: 'datalens', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 50, maxSteps: 5, seed: 4 }, { dataOverride: small });
    const a = await auditRun(dir, { seed: 6 });
    t.diagnostic(`datalens ε = 1 preset, 5 steps: claimed ${a.claimedEpsilon}, bound ${a.empiricalEpsilonLowerBound.toFixed(3)}`);
    assert.ok(a.claimedEpsilon !== null && a.empiricalEpsilonLowerBound <= a.claimedEpsilon);
    assert.equal(a.flagged, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
