/**
 * dp2-vae: per-example clipping of the whole ELBO gradient against a per-example autodiff loop,
 * the sensitivity of one step's release, the ledger against the DP-SGD accountant, public
 * pre-training reading no private record, resume, the synth contract on real MNIST (seconds) and
 * the audit of a σ = 0 run.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PrivacyLedger, RdpAccountant, DpEvents, seededRandom, calibrateNoise } from '../src/privacy/index.js';
import { loadFashionMnist, loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/generate/index.js';
import { ConditionalVae } from '../src/generate/vae-model.js';
import { clippedElboSum, dp2VaeNoise, dp2VaeNoiseMultiplier, dp2VaePlugin, type Dp2VaeHyper } from '../src/generate/dp2-vae.js';
import { auditRun } from '../src/runs/audit.js';
import { runSynthesis } from '../src/runs/synth.js';
import { spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const TINY: Partial<Dp2VaeHyper> = { batch: 40, hidden: 24, zDim: 4, steps: 50, pretrainSteps: 3, pretrainBatch: 16, warmup: 'none' };

function tinyVae(seed: number): ConditionalVae {
  return new ConditionalVae({ inputDim: 12, numClasses: 3, hidden: [7], zDim: 3, labelGain: 2, outputBias: -1 }, seed);
}

/** ℓ_i by plain tfjs ops (inference path), differentiated by tfjs autodiff: the reference. */
function autodiffGrad(vae: ConditionalVae, x: tf.Tensor2D, label: number, eps: tf.Tensor2D, beta: number, trainEncoder: boolean): Float64Array {
  const params = trainEncoder ? vae.params() : vae.decoderParams();
  const k = vae.config.zDim;
  const C = vae.config.numClasses;
  const { grads } = tf.variableGrads(() => {
    const y = tf.mul(tf.oneHot(tf.tensor1d([label], 'int32'), C), vae.config.labelGain);
    const h = vae.encoder.forward(tf.concat([x, y], 1), false);
    const mu = tf.slice(h, [0, 0], [1, k]);
    const lv = tf.slice(h, [0, k], [1, k]);
    const z = tf.add(mu, tf.mul(tf.exp(tf.mul(lv, 0.5)), eps));
    const logits = vae.decoder.forward(tf.concat([z, y], 1), false);
    const rec = tf.sum(tf.sub(tf.softplus(logits), tf.mul(x, logits)));
    const kl = tf.mul(tf.sum(tf.sub(tf.sub(tf.add(tf.square(mu), tf.exp(lv)), lv), 1)), 0.5);
    return tf.add(rec, tf.mul(kl, beta)) as tf.Scalar;
  }, params.map((p) => p.value));
  const parts = params.map((p) => Array.from(grads[p.value.name]!.dataSync()));
  tf.dispose(Object.values(grads));
  return Float64Array.from(parts.flat());
}

test('per-example clipping of the whole ELBO gradient (encoder + decoder, or decoder only) equals a per-example autodiff loop', () => {
  const vae = tinyVae(7);
  const rng = seededRandom(3);
  const n = 6;
  const xs = new Float32Array(n * 12);
  rng.uniform(xs);
  const e = new Float32Array(n * 3);
  rng.normal(e, 1);
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  for (const trainEncoder of [true, false])
    for (const clip of [0.05, 1e6]) {
      const x = tf.tensor2d(xs, [n, 12]);
      const eps = tf.tensor2d(e, [n, 3]);
      const sums = clippedElboSum(vae, x, labels, eps, { clip, beta: 0.7, trainEncoder });
      const got = Float64Array.from(sums.flatMap((s) => Array.from(s.dataSync())));
      tf.dispose([...sums, x, eps]);
      const want = new Float64Array(got.length);
      for (let i = 0; i < n; i++) {
        const xi = tf.tensor2d(xs.subarray(i * 12, (i + 1) * 12), [1, 12]);
        const ei = tf.tensor2d(e.subarray(i * 3, (i + 1) * 3), [1, 3]);
        const g = autodiffGrad(vae, xi, labels[i]!, ei, 0.7, trainEncoder);
        tf.dispose([xi, ei]);
        const norm = Math.hypot(...g);
        const f = Math.min(1, clip / norm);
        for (let j = 0; j < g.length; j++) want[j]! += f * g[j]!;
      }
      let err = 0;
      let ref = 0;
      for (let j = 0; j < got.length; j++) {
        err = Math.max(err, Math.abs(got[j]! - want[j]!));
        ref = Math.max(ref, Math.abs(want[j]!));
      }
      assert.ok(err <= 1e-4 * Math.max(ref, 1e-3), `trainEncoder=${trainEncoder} clip=${clip}: max error ${err} (scale ${ref})`);
      if (!trainEncoder) assert.equal(got.length, vae.decoderParams().reduce((s, p) => s + p.value.size, 0), 'decoder phase releases the decoder gradient only');
    }
  vae.dispose();
});

test('sensitivity: adding or removing one record moves the clipped sum by ≤ C (add/remove); unclipped it moves far more', () => {
  const vae = tinyVae(11);
  const rng = seededRandom(9);
  const n = 5;
  const xs = new Float32Array((n + 1) * 12);
  rng.uniform(xs);
  const e = new Float32Array((n + 1) * 3);
  rng.normal(e, 1);
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  const C = 0.3;
  const flat = (m: number, clip: number) => {
    const x = tf.tensor2d(xs.subarray(0, m * 12), [m, 12]);
    const eps = tf.tensor2d(e.subarray(0, m * 3), [m, 3]);
    const s = clippedElboSum(vae, x, labels.subarray(0, m), eps, { clip, beta: 1, trainEncoder: true });
    const v = Float64Array.from(s.flatMap((t) => Array.from(t.dataSync())));
    tf.dispose([...s, x, eps]);
    return v;
  };
  const dist = (a: Float64Array, b: Float64Array) => Math.hypot(...a.map((v, j) => v - b[j]!));
  assert.ok(dist(flat(n, C), flat(n + 1, C)) <= C * (1 + 1e-5));
  assert.ok(dist(flat(n, 1e6), flat(n + 1, 1e6)) > 2 * C);
  vae.dispose();
});

test('dp2-vae on real MNIST: each step is the DP-SGD event poissonSampled(q, gaussian(z)) under add/remove, z calibrated for the planned steps; ledger ε = the DP-SGD accountant\'s', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-vae-')), 'run');
  try {
    const r = await runSynthesis({ method: 'dp2-vae', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 50, seed: 4, maxSteps: 4, hyper: TINY }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 4);
    assert.equal(r.relation, 'add-remove');
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'add-remove');
    assert.equal(ledger.entries.length, 4);
    const q = 40 / mnist.train.count;
    const z = calibrateNoise({ targetEpsilon: 1, delta: 1e-5, sampleRate: q, steps: 50, epsilonTolerance: 0.005 }).noiseMultiplier;
    const ev = DpEvents.poissonSampled(q, DpEvents.gaussian(z));
    for (const e of ledger.entries) assert.deepEqual(e.event, ev);
    assert.deepEqual(ledger.entries.map((e) => (e.meta as { phase: string }).phase), ['dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)']);
    const want = new RdpAccountant().compose(ev, 4).getEpsilon(1e-5);
    assert.ok(Math.abs(ledger.spent(1e-5) - want) < 1e-9, `ledger ${ledger.spent(1e-5)} vs accountant ${want}`);
    assert.ok(Math.abs(r.epsilon - want) < 1e-9);
    // all 50 planned steps would spend ≤ ε
    assert.ok(new RdpAccountant().compose(ev, 50).getEpsilon(1e-5) <= 1);
    // resume: continues from the checkpoint and the ledger
    const r2 = await runSynthesis({ method: 'dp2-vae', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 50, seed: 4, maxSteps: 6, resume: true, hyper: TINY }, { dataOverride: mnist });
    assert.equal(r2.generatorSteps, 6);
    assert.equal(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length, 6);
    // sampler read back from disk (post-processing)
    const s = dp2VaePlugin.loadSampler(join(dir, 'generator'));
    const set = await s.sample(20, seededRandom(1));
    assert.equal(set.count, 20);
    assert.equal(set.images.length, 20 * 784);
    s.dispose();
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('the DP² phases: with encoder share 0.5 the second half of the steps trains the decoder only (encoder frozen, decoder moving)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-vae-ph-'));
  const ledger = PrivacyLedger.open(join(root, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 5, delta: 1e-5 } });
  try {
    const h = { ...dp2VaePlugin.defaults, ...TINY, steps: 4, encoderShare: 0.5 };
    const gen = dp2VaePlugin.create({ data: mnist, budget: { epsilon: 5, delta: 1e-5 }, ledger, random: seededRandom(5) }, h, { maxSteps: 4, maxMinutes: Infinity }) as unknown as { vae: ConditionalVae; fit: (o: { onProgress: (p: { step: number }) => void }) => Promise<{ steps: number }>; dispose(): void };
    const snap = (ps: { value: tf.Variable }[]) => ps.map((p) => Array.from(p.value.dataSync()));
    const enc: number[][][] = [];
    const dec: number[][][] = [];
    const r = await gen.fit({
      onProgress: (p) => {
        if (p.step === 0) return; // the step-0 event (after pre-training / warm-up) precedes any private step
        enc.push(snap(gen.vae.encoderParams()));
        dec.push(snap(gen.vae.decoderParams()));
      },
    });
    assert.equal(r.steps, 4);
    assert.notDeepEqual(enc[1], enc[0], 'phase 1 trains the encoder');
    assert.deepEqual(enc[3], enc[1], 'phase 2 leaves the encoder frozen');
    assert.notDeepEqual(dec[3], dec[2], 'phase 2 trains the decoder');
    assert.deepEqual(ledger.entries.map((e) => (e.meta as { phase: string }).phase), ['dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)', 'dp2-decoder', 'dp2-decoder']);
    gen.dispose();
  } finally {
    ledger.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('warm-up curriculum: central images released first (phase warm-up), DP-SGD calibrated on the composition; ledger ε = warm-up ∘ DP-SGD steps by the accountant, ≤ target', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-vae-wu-')), 'run');
  try {
    const hyper = { ...TINY, warmup: 'class-means', warmupShare: 0.2, warmupSteps: 3 };
    const r = await runSynthesis({ method: 'dp2-vae', data: 'mnist', epsilon: 2, delta: 1e-5, out: dir, samples: 50, seed: 6, maxSteps: 3, hyper }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 3);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    const phases = ledger.entries.map((e) => (e.meta as { phase: string }).phase);
    assert.equal(phases[0], 'warm-up');
    assert.deepEqual(phases.slice(-3), ['dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)', 'dp2-pretrain (whole VAE)']);
    const h = { ...dp2VaePlugin.defaults, ...hyper } as Dp2VaeHyper;
    const q = 40 / mnist.train.count;
    const facts = { relation: 'add-remove' as const, numClasses: 10, height: 28, width: 28, channels: 1, epsilon: 2, delta: 1e-5 };
    const z = dp2VaeNoise(h, q, facts);
    assert.ok(z < dp2VaeNoiseMultiplier(q, h.steps, 2, 1e-5) * 1.5 && z > dp2VaeNoiseMultiplier(q, h.steps, 2, 1e-5), 'the warm-up share raises z');
    for (const e of ledger.entries.filter((x) => (x.meta as { phase: string }).phase !== 'warm-up')) assert.deepEqual(e.event, DpEvents.poissonSampled(q, DpEvents.gaussian(z)));
    const acc = new RdpAccountant();
    for (const e of ledger.entries) acc.compose(e.event);
    assert.ok(Math.abs(ledger.spent(1e-5) - acc.getEpsilon(1e-5)) < 1e-9);
    assert.ok(ledger.spent(1e-5) <= 2);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

function blackCopy(d: ImageDataset): ImageDataset {
  return { ...d, train: { ...d.train, images: new Uint8Array(d.train.images.length) }, rawFingerprint: 'all-black' };
}

test('public pre-training touches no private record: an all-black private set leaves the pre-trained weights unchanged', async () => {
  const fashion = loadFashionMnist();
  const pub = { name: 'fashion-mnist', source: fashion.source, fingerprint: fashion.rawFingerprint, data: fashion };
  const weights = async (priv: ImageDataset) => {
    const ledger = PrivacyLedger.open(join(mkdtempSync(join(tmpdir(), 'dplens-vae-pt-')), 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 1, delta: 1e-5 } });
    const h = { ...dp2VaePlugin.defaults, ...TINY };
    const gen = dp2VaePlugin.create({ data: priv, publicData: pub, budget: { epsilon: 1, delta: 1e-5 }, ledger, random: seededRandom(21) }, h, { maxSteps: 0, maxMinutes: Infinity }) as unknown as { vae: ConditionalVae; pretrainPublic(): number; dispose(): void };
    assert.equal(gen.pretrainPublic(), 3);
    const w = gen.vae.params().map((p) => Array.from(p.value.dataSync()));
    gen.dispose();
    assert.equal(ledger.entries.length, 0, 'pre-training records no release');
    ledger.close();
    return w;
  };
  const a = await weights(mnist);
  const b = await weights(blackCopy(mnist));
  assert.deepEqual(a, b);
  // and the pre-training did move the weights (it is not a no-op)
  const vae = new ConditionalVae({ inputDim: 784, numClasses: 10, hidden: [24], zDim: 4, labelGain: 4, outputBias: -2 }, seededRandom(21).nextUint32());
  assert.notDeepEqual(vae.params().map((p) => Array.from(p.value.dataSync())), a);
  vae.dispose();
});

const dplensSpawned = spawnedDplens(300_000);

test('dplens synth --method dp2-vae --public-data fashion-mnist --json: the synth contract; public set in the ledger header; flags of other methods are errors', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-vae-cli-')), 'run');
  try {
    const r = dplensSpawned('synth', '--method', 'dp2-vae', '--data', 'mnist', '--public-data', 'fashion-mnist', '--epsilon', '1', '--delta', '1e-5', '--steps', '3', '--vae-batch', '64', '--vae-hidden', '32', '--pretrain-steps', '2', '--samples', '100', '--out', dir, '--seed', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(j.method, 'dp2-vae');
    assert.ok((j.epsilon as number) <= 1);
    assert.equal(j.delta, 1e-5);
    assert.equal(typeof j.seconds, 'number');
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html', 'run.json']) assert.ok(existsSync(join(dir, f)), f);
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.match(JSON.stringify(ledger.header), /fashion-mnist/);
    const bad = dplensSpawned('synth', '--method', 'dp2-vae', '--data', 'mnist', '--epsilon', '1', '--out', '/tmp/dplens-never', '--centroids', '3');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--centroids does not apply to method dp2-vae/);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('a --non-private (σ = 0) dp2-vae run folder is flagged by auditRun, which reads no private data and spends no ε', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-vae-audit-'));
  try {
    const dir = join(root, 'np');
    await runSynthesis({ method: 'dp2-vae', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 50, seed: 2, maxSteps: 3, nonPrivate: true, hyper: TINY }, { dataOverride: mnist });
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.deepEqual(ledger.entries.map((e) => e.event.kind), ['nonPrivate']);
    const a = await auditRun(dir, { seed: 5 });
    assert.equal(a.flagged, true);
    assert.match(a.flagReason!, /no DP guarantee/);
    assert.equal(a.additionalEpsilonSpent, 0);
    assert.equal(a.privateDataUsed, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
