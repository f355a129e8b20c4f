/**
 * Hitaj et al.'s GAN attack (src/audit/hitaj-gan.ts, runner src/runs/attack-hitaj.ts): selective
 * sharing picks the largest entries; the victim's DP-SGD step clips each example's gradient to C
 * (closed-form per-example norms checked against the unclipped gradient) so one record moves the
 * summed update by at most C; the ledger gates every block of victim steps and its total equals the
 * accountant's; and on real MNIST at a tiny scale the adversary's generator output is labelled as
 * the victim's class by a classifier trained on real data far above chance.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../src/engine/index.js';
import { mlpLocalSteps, runHitajAttack, topMagnitude, type PartyData } from '../src/audit/hitaj-gan.js';
import { runHitajJob, type HitajJob } from '../src/runs/attack-hitaj.js';
import { PrivacyLedger, dpsgdEpsilon, seededRandom } from '../src/privacy/index.js';
import { mulberry32 } from '../src/util/prng.js';

before(async () => {
  await initEngine();
});

test('topMagnitude: the k entries of largest |v|', () => {
  const v = Float32Array.from([0.1, -5, 3, 0, -0.2, 4]);
  assert.deepEqual([...topMagnitude(v, 3)].sort(), [1, 2, 5]);
  assert.equal(topMagnitude(v, 6).length, 6);
});

const dims = { P: 20, H: 8, O: 4 };
function randomParams(seed: number): Float32Array[] {
  const r = mulberry32(seed);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => (2 * r() - 1) * 0.5);
  return [f(dims.P * dims.H), f(dims.H), f(dims.H * dims.O), f(dims.O)];
}
const diffNorm = (a: Float32Array[], b: Float32Array[]): number => Math.hypot(...a.flatMap((x, i) => Array.from(x, (v, k) => v - b[i]![k]!)));

test('victim DP-SGD step: per-example clipping is exact (closed-form norms) and one record moves the update by at most C', () => {
  const r = mulberry32(3);
  const n = 6;
  const x = Float32Array.from({ length: n * dims.P }, () => r() * 3);
  const y = Int32Array.from({ length: n }, (_, i) => i % dims.O);
  const p0 = randomParams(1);
  // unclipped gradient of example 0 alone (lr 1, mean over a batch of one = the gradient)
  const one = { x: x.subarray(0, dims.P), y: y.subarray(0, 1), n: 1 };
  const gNorm = diffNorm(mlpLocalSteps(p0, dims, [one], { lr: 1 }), p0);
  assert.ok(gNorm > 0.1, `gradient norm ${gNorm}`);
  const C = gNorm / 2;
  const clipped = diffNorm(mlpLocalSteps(p0, dims, [one], { lr: 1, clip: C, noiseStd: 0, denominator: 1 }), p0);
  assert.ok(Math.abs(clipped - C) < 1e-4 * C, `clipped norm ${clipped} vs C ${C}`);
  // neighbouring batches (add/remove one record): the summed clipped update differs by ≤ C
  for (let drop = 0; drop < n; drop++) {
    const keep = Array.from({ length: n }, (_, i) => i).filter((i) => i !== drop);
    const xs = new Float32Array(keep.length * dims.P);
    keep.forEach((i, k) => xs.set(x.subarray(i * dims.P, (i + 1) * dims.P), k * dims.P));
    const full = mlpLocalSteps(p0, dims, [{ x, y, n }], { lr: 1, clip: 0.3, noiseStd: 0, denominator: 1 });
    const less = mlpLocalSteps(p0, dims, [{ x: xs, y: Int32Array.from(keep, (i) => y[i]!), n: keep.length }], { lr: 1, clip: 0.3, noiseStd: 0, denominator: 1 });
    assert.ok(diffNorm(full, less) <= 0.3 * (1 + 1e-5), `dropping record ${drop}: ${diffNorm(full, less)}`);
  }
});

function toyParty(classes: number[], n: number, seed: number): PartyData {
  const r = mulberry32(seed);
  const y = Int32Array.from({ length: n }, (_, i) => classes[i % classes.length]!);
  const x = Float32Array.from({ length: n * 16 }, (_, k) => (Math.floor(k / 16) >= 0 && k % 16 === y[Math.floor(k / 16)]! ? 0.9 : 0.1 * r()));
  return { x, y, count: n };
}

test('the ledger gates the victim: blocks recorded before they run, training stops when it refuses', () => {
  let granted = 0;
  const res = runHitajAttack({
    victim: toyParty([0, 1, 2], 60, 1),
    adversary: toyParty([3, 4], 40, 2),
    pixels: 16,
    classes: 5,
    victimClass: 0,
    rounds: 5,
    victimSteps: 4,
    batchSize: 6,
    hidden: 8,
    generatorHidden: 8,
    latentDim: 4,
    seed: 1,
    dp: { noiseMultiplier: 1, clip: 1, rng: seededRandom(1), record: (steps) => {
      const ok = Math.min(steps, 10 - granted);
      granted += ok;
      return ok;
    } },
  });
  assert.equal(res.victimStepsRun, 10);
  assert.equal(res.stoppedBy, 'budget');
  assert.equal(res.rounds, 3);
  res.dispose();
});

const base = (out: string): HitajJob => ({
  data: 'mnist', out, victimClass: 3, perClass: 200, rounds: 20, victimSteps: 5, adversarySteps: 5, generatorSteps: 5, batchSize: 64,
  uploadFraction: 1, downloadFraction: 1, learningRate: 0.1, delta: 1e-5, clip: 1, control: false, samples: 200, evalEvery: 10, seed: 1,
  judgeTrainLimit: 3000, judgeEpochs: 1, testLimit: 1000,
});

test('real MNIST, tiny scale, no DP: the generator\'s samples are labelled as the victim class far above chance; run folder written', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dplens-hitaj-'));
  const r = await runHitajJob(base(out));
  assert.ok(r.victimClassShare > 0.4, `share labelled 3: ${r.victimClassShare} (chance ${r.chance})`);
  assert.ok(r.victimClassConfidence > 0.3, `mean p(3): ${r.victimClassConfidence}`);
  assert.ok(r.prototypeShare > 0.3, `template judge: ${r.prototypeShare} of samples closest to the real 3 mean`);
  assert.equal(r.epsilon, null);
  for (const f of ['samples.png', 'attack.json', 'run.json', 'config.json', 'metrics.jsonl', 'ledger.jsonl']) assert.ok(existsSync(join(out, f)), f);
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.equal(ledger.entries.length, 1);
  assert.equal(ledger.entries[0]!.event.kind, 'nonPrivate');
  assert.equal(JSON.parse(readFileSync(join(out, 'attack.json'), 'utf8')).victimClass, 3);
});

test('with --epsilon: σ calibrated, every victim block in the ledger, total = the accountant\'s ε ≤ budget', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dplens-hitaj-dp-'));
  const r = await runHitajJob({ ...base(out), rounds: 3, epsilon: 2, samples: 100 });
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.equal(ledger.entries.length, 3);
  assert.equal(r.victimSteps, 15);
  const spent = ledger.spent(1e-5);
  assert.ok(spent <= 2 + 1e-9, `spent ${spent}`);
  assert.ok(Math.abs(spent - dpsgdEpsilon({ noiseMultiplier: r.noiseMultiplier!, sampleRate: r.sampleRate, steps: 15, delta: 1e-5 })) < 1e-9);
  assert.ok(Math.abs(r.epsilon! - spent) < 1e-12);
});
