/**
 * dp-gan: per-example clipping of the discriminator against a per-example autodiff loop, the
 * ledger's ε against the DP-SGD accountant for the run's steps, public pre-training reading no
 * private record, the synth contract on real MNIST (seconds), resume, and σ = 0 caught by the audit.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, dpsgdEpsilon, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { loadFashionMnist, loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { ensureEngine, findGenerator, resolvePluginHyper } from '../src/generate/index.js';
import { releaseCentralImages } from '../src/generate/warmup.js';
import { SavedGenerator } from '../src/generate/voting-gan.js';
import { dpGanMechanism, dpGanNoiseMultiplier, dpGanPlugin, GanPair, type DpGanHyper } from '../src/generate/dp-gan.js';
import { bceLoss, buildDiscriminator, discriminatorClippedSum, headSelector } from '../src/generate/gan-models.js';
import { mechanismAuditStrategy, replayGaussianRelease, summarizeAudit } from '../src/audit/index.js';
import type { GaussianReleaseMechanism } from '../src/generate/types.js';
import { auditRun } from '../src/runs/audit.js';
import { runSynthesis } from '../src/runs/synth.js';
import { spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
let fashion: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
  fashion = loadFashionMnist();
});

const TINY: Partial<DpGanHyper> = { batch: 32, genBatch: 8, dSteps: 2, genChannels: 8, discChannels: 8, zDim: 8 };

test('discriminator clipping: discriminatorClippedSum equals Σ_i clip_C(∇ℓ_i) from a per-example autodiff loop (real and fake rows, conditional and unconditional heads)', () => {
  const C = 3;
  const shape = { height: 8, width: 8, numClasses: C, channels: 4 };
  const d = buildDiscriminator(shape, 7);
  const params = d.parameters();
  const n = 6;
  const rng = seededRandom(3);
  const xs = new Float32Array(n * 64);
  rng.normal(xs, 1);
  const targets = Int32Array.from([1, 1, 1, 0, 0, 0]);
  const labels = Int32Array.from([0, 2, 1, 1, 0, 2]);
  for (const [clip, lab] of [[0.05, labels], [1e6, labels], [0.05, null]] as const) {
    const got = tf.tidy(() => {
      const sel = headSelector(n, lab, C);
      return discriminatorClippedSum(d, tf.tensor4d(xs, [n, 8, 8, 1]), targets, sel, clip).grads.map((g) => (g.dataSync() as Float32Array).slice());
    });
    const want = params.map((p) => new Float64Array(p.value.size));
    let clipped = 0;
    for (let i = 0; i < n; i++) {
      const gi = tf.tidy(() => {
        const sel = headSelector(1, lab ? lab.subarray(i, i + 1) : null, C);
        const xi = tf.tensor4d(xs.subarray(i * 64, (i + 1) * 64), [1, 8, 8, 1]);
        const { grads } = tf.variableGrads(() => bceLoss(d.forward(xi, false), tf.tensor1d([targets[i]!], 'int32'), sel).lossSum, params.map((p) => p.value));
        return params.map((p) => (grads[p.value.name]!.dataSync() as Float32Array).slice());
      });
      const norm = Math.sqrt(gi.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
      const f = Math.min(1, clip / norm);
      if (f < 1) clipped++;
      gi.forEach((g, j) => g.forEach((v, k) => (want[j]![k]! += f * v)));
    }
    if (clip < 1) assert.equal(clipped, n, 'the small clip bound binds for every example');
    got.forEach((g, j) => g.forEach((v, k) => assert.ok(Math.abs(v - want[j]![k]!) <= 1e-4 * Math.max(1, Math.abs(want[j]![k]!)), `param ${params[j]!.name}[${k}]: ${v} vs loop ${want[j]![k]}`)));
  }
  for (const p of params) p.value.dispose();
});

test('dp-gan on real MNIST: every discriminator step is the DP-SGD event poissonSampled(q, gaussian(z)) recorded before use; the ledger ε equals the DP-SGD accountant\'s for the run\'s steps', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gan-'));
  try {
    const hyper = { ...TINY, steps: 500 };
    const r = await runSynthesis({ method: 'dp-gan', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 40, seed: 4, maxSteps: 5, preset: 'plain', hyper }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 5);
    assert.equal(r.relation, 'add-remove');
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'add-remove');
    assert.equal(ledger.entries.length, 5);
    const q = 32 / mnist.train.count;
    const z = dpGanNoiseMultiplier(q, 500, 1, 1e-5);
    for (const e of ledger.entries) assert.deepEqual(e.event, DpEvents.poissonSampled(q, DpEvents.gaussian(z)));
    const dpsgd = dpsgdEpsilon({ noiseMultiplier: z, sampleRate: q, steps: 5, delta: 1e-5 });
    assert.ok(Math.abs(r.epsilon - dpsgd) < 1e-9, `ledger ε ${r.epsilon} vs DP-SGD accountant ${dpsgd}`);
    const planned = dpsgdEpsilon({ noiseMultiplier: z, sampleRate: q, steps: 500, delta: 1e-5 });
    assert.ok(planned <= 1 && planned > 0.99, `planned ε ${planned}`);
    assert.deepEqual(readNpz(r.syntheticPath).images!.shape, [40, 28, 28]);
    const s = findGenerator('dp-gan')!.loadSampler(join(dir, 'generator'));
    const more = await s.sample(12, seededRandom(1));
    s.dispose();
    assert.equal(more.count, 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function weightsAfterPretraining(priv: ImageDataset, dir: string): Promise<Float32Array[]> {
  const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 1, delta: 1e-5 } });
  const gen = dpGanPlugin.create({ data: priv, publicData: { name: 'fashion-mnist', source: 'test', fingerprint: 'f', data: fashion }, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(9) }, { ...dpGanPlugin.defaults, ...TINY, pretrainSteps: 3 }, { maxSteps: 0, maxMinutes: Infinity });
  try {
    await gen.fit();
    const pair = (gen as unknown as { pair: { generator: { snapshot(): { values: Float32Array }[] }; discriminator: { parameters(): { value: tf.Variable }[] } } }).pair;
    assert.equal(ledger.entries.length, 0, 'pre-training records nothing');
    return [...pair.generator.snapshot().map((p) => p.values.slice()), ...pair.discriminator.parameters().map((p) => (p.value.dataSync() as Float32Array).slice())];
  } finally {
    gen.dispose();
    ledger.close();
  }
}

test('public pre-training touches no private record: MNIST vs an all-black private set give identical pre-trained G and D weights (and pre-training did move them)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-gan-pt-'));
  try {
    const black: ImageDataset = { ...mnist, train: { ...mnist.train, images: new Uint8Array(mnist.train.images.length) }, rawFingerprint: 'black' };
    const a = await weightsAfterPretraining(mnist, mkdtempSync(join(root, 'a')));
    const b = await weightsAfterPretraining(black, mkdtempSync(join(root, 'b')));
    assert.equal(a.length, b.length);
    a.forEach((w, i) => assert.deepEqual(w, b[i], `tensor ${i} differs`));
    // the same construction without pre-training: the weights differ (pre-training did something)
    const ledger = PrivacyLedger.open(join(mkdtempSync(join(root, 'c')), 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 1, delta: 1e-5 } });
    const g0 = dpGanPlugin.create({ data: mnist, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(9) }, { ...dpGanPlugin.defaults, ...TINY }, { maxSteps: 0, maxMinutes: Infinity });
    const snap0 = (g0 as unknown as { pair: { generator: { snapshot(): { values: Float32Array }[] } } }).pair.generator.snapshot();
    assert.ok(snap0.some((p, i) => p.values.some((v, k) => v !== a[i]![k])), 'pre-training changed the generator');
    g0.dispose();
    ledger.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const dplensSpawned = spawnedDplens(300_000);

test('dplens synth --method dp-gan --public-data fashion-mnist --json: the synth contract, then --resume continues the same ledger', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-gan-cli-')), 'run');
  try {
    const common = ['synth', '--method', 'dp-gan', '--data', 'mnist', '--epsilon', '1', '--delta', '1e-5', '--real-batch', '32', '--gen-batch', '8', '--gen-channels', '8', '--disc-channels', '8', '--preset', 'plain', '--out', dir, '--seed', '2', '--json'];
    const r = dplensSpawned(...common, '--public-data', 'fashion-mnist', '--pretrain-steps', '2', '--steps', '3', '--samples', '100');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const k of ['epsilon', 'delta', 'seconds', 'syntheticPath']) assert.ok(k in out, k);
    assert.ok(out.epsilon <= 1 && out.epsilon > 0);
    assert.equal(out.relation, 'add-remove');
    assert.equal(out.generatorSteps, 3);
    const man = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.equal(man.method, 'dp-gan');
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html', 'generator/discriminator.json']) assert.ok(readFileSync(join(dir, f)).length > 0, f);
    const r2 = dplensSpawned(...common, '--public-data', 'fashion-mnist', '--pretrain-steps', '2', '--steps', '5', '--samples', '100', '--resume');
    assert.equal(r2.code, 0, r2.stderr);
    const out2 = JSON.parse(r2.stdout);
    assert.equal(out2.generatorSteps, 5);
    assert.equal(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length, 5);
    assert.ok(out2.epsilon > out.epsilon);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('dp-gan --warmup class-means: the central images are released first (warm-up entries), then DP-SGD calibrated for the rest: warm-up ∘ T planned steps ≤ ε and close to it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gan-wu-'));
  try {
    const hyper = { ...TINY, steps: 300, warmup: 'class-means', warmupShare: 0.2, warmupSteps: 3 };
    const r = await runSynthesis({ method: 'dp-gan', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 20, seed: 4, maxSteps: 4, preset: 'plain', hyper }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 4);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    const phases = ledger.entries.map((e) => (e.meta?.phase === 'warm-up' ? 'warm-up' : e.event.kind));
    assert.deepEqual(phases, ['warm-up', 'poissonSampled', 'poissonSampled', 'poissonSampled', 'poissonSampled']);
    const q = 32 / mnist.train.count;
    const z = (ledger.entries[1]!.event as { event: { noiseMultiplier: number } }).event.noiseMultiplier;
    const planned = new RdpAccountant().compose(ledger.entries[0]!.event).compose(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), 300).getEpsilon(1e-5);
    assert.ok(planned <= 1 && planned > 0.99, `planned ε of warm-up ∘ 300 steps: ${planned}`);
    assert.ok(z > dpGanNoiseMultiplier(q, 300, 1, 1e-5), 'DP-SGD gets less than the whole budget');
    assert.ok(readFileSync(join(dir, 'generator', 'central-images.json')).length > 0, 'central images checkpointed (a resume must not release them again)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function replayAudit(mech: GaussianReleaseMechanism, claimed: number | null, seed: number) {
  const r = replayGaussianRelease({ mechanism: mech, m: 1000, rng: seededRandom(seed), noise: seededRandom(seed + 1) });
  return summarizeAudit(r.scores, r.included, { claimedEpsilon: claimed, delta: 1e-5, confidence: 0.95, attack: 'dp-gan release replay', strategy: mechanismAuditStrategy(r.declaredNoise), seconds: 0 });
}

test('mechanism audit of the discriminator release: honest within its claim; σ = 0 caught', () => {
  const h = { ...dpGanPlugin.defaults, batch: 30000, steps: 20 };
  const facts = { trainCount: 60000, numClasses: 10, epsilon: 2, delta: 1e-5 };
  const honest = dpGanMechanism(h, facts);
  const claimed = new RdpAccountant().compose(honest.event, honest.releases).getEpsilon(1e-5);
  assert.ok(claimed <= 2 && claimed > 1.95);
  const a = replayAudit(honest, claimed, 1);
  assert.ok(a.empiricalEpsilonLowerBound <= claimed, `honest: bound ${a.empiricalEpsilonLowerBound} > claimed ${claimed}`);
  const zero = dpGanMechanism(h, { ...facts, epsilon: null });
  assert.equal(zero.sigma, 0);
  const c = replayAudit(zero, null, 3);
  assert.ok(c.empiricalEpsilonLowerBound > 4, `σ = 0: bound ${c.empiricalEpsilonLowerBound}`);
});

test('a --non-private (σ = 0) dp-gan run folder is flagged by auditRun, which reads no private data and spends no ε', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-gan-audit-'));
  try {
    const dir = join(root, 'np');
    await runSynthesis({ method: 'dp-gan', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 20, seed: 2, maxSteps: 3, nonPrivate: true, preset: 'plain', hyper: { ...TINY } }, { dataOverride: mnist });
    assert.deepEqual(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.map((e) => e.event.kind), ['nonPrivate']);
    const a = await auditRun(dir, { seed: 5 });
    assert.equal(a.flagged, true);
    assert.match(a.flagReason!, /no DP guarantee/);
    assert.equal(a.additionalEpsilonSpent, 0);
    assert.equal(a.privateDataUsed, false);
    assert.equal((a as unknown as { steps: number }).steps, 3, 'the replay makes as many releases as the run made');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('dp-gan killed between the warm-up release and its checkpoint: the resumed fit finds the warm-up charged and does not release (or pay for) it again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gan-wu-kill-'));
  try {
    const hyper = resolvePluginHyper(dpGanPlugin, 'plain', { ...TINY, steps: 300, warmup: 'class-means', warmupShare: 0.2, warmupSteps: 2 } as Partial<DpGanHyper>);
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', budget: { epsilon: 1, delta: 1e-5 }, randomness: { kind: 'seeded', seed: 7 } });
    try {
      const ctx = { data: mnist, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(7) };
      // The first attempt: the central images are released (and charged), then the process dies
      // before generator/central-images.json is written — the images are lost, the charge is not.
      const lost = await releaseCentralImages(ctx, hyper, { method: 'dp-gan', relation: 'add-remove' });
      assert.equal(lost.stoppedBy, 'done');
      const charged = ledger.entries.length;
      assert.ok(charged >= 1);
      const gen = dpGanPlugin.create(ctx, hyper, { maxSteps: 2, maxMinutes: Number.POSITIVE_INFINITY });
      try {
        const r = await gen.fit();
        assert.equal(r.steps, 2);
      } finally {
        gen.dispose();
      }
      const phases = ledger.entries.map((e) => (e.meta?.phase === 'warm-up' ? 'warm-up' : e.event.kind));
      assert.deepEqual(phases, [...Array<string>(charged).fill('warm-up'), 'poissonSampled', 'poissonSampled']);
    } finally {
      ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('discriminator update at large batch: chunked per-example passes give the unchunked sum, and the update is Σ clip(real)/B + Σ clip(fake)/B_f (two public denominators)', () => {
  const shape = { height: 8, width: 8, numClasses: 3 };
  const h = { ...dpGanPlugin.defaults, ...TINY, discChannels: 4, genBatch: 4 };
  const k = 10;
  const m = 4;
  const rng = seededRandom(5);
  const real = new Float32Array(k * 64);
  rng.uniform(real);
  const realLabels = Int32Array.from({ length: k }, (_, i) => i % 3);
  const fakeLabels = Int32Array.from([0, 1, 2, 0]);
  const fakeValues = new Float32Array(m * 64);
  rng.uniform(fakeValues);
  const fake = tf.tensor2d(fakeValues, [m, 64]);
  const clip = 0.05;
  const updates = [1, 3, 100].map((discChunk) => {
    const pair = new GanPair({ ...h, discChunk }, shape, 1, 2);
    const { update } = pair.discriminatorUpdate(real, realLabels, fake, fakeLabels, clip, 0, { real: 16, fake: 4 }, seededRandom(1));
    const v = update.map((t) => (t.dataSync() as Float32Array).slice());
    update.forEach((t) => t.dispose());
    // the reference: one unchunked clipped sum per term, from gan-models.ts
    const want = tf.tidy(() => {
      const D = pair.discriminator;
      const sr = discriminatorClippedSum(D, tf.reshape(tf.sub(tf.mul(tf.tensor2d(real, [k, 64]), 2), 1), [k, 8, 8, 1]) as tf.Tensor4D, new Int32Array(k).fill(1), headSelector(k, realLabels, 3), clip).grads;
      const sf = discriminatorClippedSum(D, tf.reshape(tf.sub(tf.mul(fake, 2), 1), [m, 8, 8, 1]) as tf.Tensor4D, new Int32Array(m), headSelector(m, fakeLabels, 3), clip).grads;
      return sr.map((g, i) => (tf.add(tf.div(g, 16), tf.div(sf[i]!, 4)).dataSync() as Float32Array).slice());
    });
    want.forEach((w, j) => w.forEach((x, i) => assert.ok(Math.abs(x - v[j]![i]!) <= 1e-6 + 1e-4 * Math.abs(x), `chunk ${discChunk}: param ${j}[${i}] ${v[j]![i]} vs ${x}`)));
    pair.dispose();
    return v;
  });
  // the fake term is not divided by B + B_f: it carries weight 1/B_f (its norm ≤ C, not ≤ C·B_f/(B + B_f))
  const pooled = new GanPair({ ...h, discChunk: 100 }, shape, 1, 2);
  const p = pooled.discriminatorUpdate(real, realLabels, fake, fakeLabels, clip, 0, 20, seededRandom(1));
  const pv = p.update.map((t) => (t.dataSync() as Float32Array).slice());
  p.update.forEach((t) => t.dispose());
  pooled.dispose();
  assert.ok(pv.some((w, j) => w.some((x, i) => Math.abs(x - updates[0]![j]![i]!) > 1e-6)), 'the pooled form differs');
  fake.dispose();
});

test('generator EMA (--ema): the EMA weights differ from the trained ones, samples and generator.json use them, generator-raw.json keeps the trained ones and a resume restores both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gan-ema-'));
  try {
    const hyper = { ...TINY, steps: 500, ema: 0.9 };
    await runSynthesis({ method: 'dp-gan', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 20, seed: 4, maxSteps: 6, preset: 'plain', hyper }, { dataOverride: mnist });
    const genDir = join(dir, 'generator');
    assert.ok(existsSync(join(genDir, 'generator-raw.json')));
    const ledger = PrivacyLedger.open(join(mkdtempSync(join(tmpdir(), 'dplens-gan-ema-l-')), 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 1, delta: 1e-5 } });
    const gen = dpGanPlugin.create({ data: mnist, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(11) }, resolvePluginHyper(dpGanPlugin, 'plain', hyper as Partial<DpGanHyper>), { maxSteps: 0, maxMinutes: Infinity });
    try {
      await gen.load(genDir);
      const pair = (gen as unknown as { pair: GanPair }).pair;
      const raw = pair.generator.snapshot();
      const ema = pair.emaGenerator!.snapshot();
      assert.equal(pair.emaUpdates, 3, '6 D steps at n_D = 2: 3 generator steps folded in');
      assert.ok(raw.some((p, i) => p.values.some((v, k) => Math.abs(v - ema[i]!.values[k]!) > 1e-6)), 'the EMA differs from the trained weights');
      // generator.json (what loadSampler and `dplens sample` read) holds the EMA weights
      const saved = SavedGenerator.load(genDir);
      saved.generator.snapshot().forEach((p, i) => assert.deepEqual(p.values, ema[i]!.values, `generator.json ${p.name}`));
      saved.dispose();
      // sample() draws from the EMA: the saved sampler with the same latent stream gives the same images
      const labels = Int32Array.from({ length: 16 }, (_, i) => i % 10);
      const got = await gen.sample(16, labels);
      const rng = seededRandom(11);
      rng.nextUint32();
      rng.nextUint32(); // the two initial-weight seeds the constructor drew
      const s = findGenerator('dp-gan')!.loadSampler(genDir);
      const want = await s.sample(16, rng, labels);
      s.dispose();
      assert.deepEqual(got.images, want.images);
    } finally {
      gen.dispose();
      ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
