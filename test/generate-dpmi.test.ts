/**
 * dpmi: the discriminator's per-example clipping against a per-example autodiff loop, per-record
 * inversion (a record's latent does not depend on the other records), the ledger's ε against the
 * DP-SGD accountant, stage 1 reading no private record (all-black private set → same public
 * generator), resume, --public-data required, and the synth CLI contract on real MNIST with
 * Fashion-MNIST public (seconds).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { dpsgdEpsilon } from '../src/privacy/calibrate.js';
import { loadFashionMnist, loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/generate/index.js';
import { conditionRows, LatentGan } from '../src/generate/dpmi-gan.js';
import { PublicAutoencoder } from '../src/generate/dpmi-public.js';
import { dpmiMechanism, dpmiNoiseMultiplier, dpmiPlugin } from '../src/generate/dpmi.js';
import { readCheckpoint } from '../src/nn/checkpoint.js';
import { runSynthesis } from '../src/runs/synth.js';
import { auditRun } from '../src/runs/audit.js';
import { mechanismAuditStrategy, replayGaussianRelease, summarizeAudit } from '../src/audit/index.js';
import { dplensInProcess, spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
let fashion: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
  fashion = loadFashionMnist();
});

/** The first n training records of d as a dataset of its own (its own fingerprint). */
function head(d: ImageDataset, n: number, tag: string): ImageDataset {
  const px = d.height * d.width * d.channels;
  return { ...d, name: d.name, train: { images: d.train.images.slice(0, n * px), labels: d.train.labels.slice(0, n), count: n }, rawFingerprint: `${d.rawFingerprint}-${tag}-${n}` };
}

const TINY = { publicSamples: 200, invertSteps: 1, discSteps: 40, batch: 64, fakeBatch: 32, hidden: 16, zDim: 4, aeWidth: 4, latentChannels: 1 };

test('discriminator: per-example clipped gradient sum from one backward pass equals a per-example autodiff loop (clip active and inactive)', () => {
  const gan = new LatentGan({ latentDim: 6, numClasses: 3, hidden: 8, zDim: 2 }, 7);
  const rng = seededRandom(3);
  const n = 9;
  const lat = new Float32Array(n * 6);
  rng.normal(lat, 2);
  const lab = Int32Array.from({ length: n }, (_, i) => i % 3);
  const params = gan.disc.parameters();
  for (const clip of [1e-3, 0.05, 1e3]) {
    const fast = tf.tidy(() => gan.realClippedSum(conditionRows(tf.tensor2d(lat, [n, 6]), lab, 3), clip).grads.map((g) => Array.from(g.dataSync())));
    const slow = params.map((p) => new Float64Array(p.value.size));
    let clipped = 0;
    for (let i = 0; i < n; i++) {
      const gi = tf.tidy(() => {
        const x = conditionRows(tf.tensor2d(lat.slice(i * 6, (i + 1) * 6), [1, 6]), lab.slice(i, i + 1), 3);
        const { grads } = tf.variableGrads(() => tf.sum(tf.softplus(tf.neg(gan.disc.forward(x, false)))) as tf.Scalar, params.map((p) => p.value));
        return params.map((p) => Array.from(grads[p.value.name]!.dataSync()));
      });
      const norm = Math.sqrt(gi.flat().reduce((s, v) => s + v * v, 0));
      const f = Math.min(1, clip / norm);
      if (f < 1) clipped++;
      gi.forEach((g, j) => g.forEach((v, t) => (slow[j]![t]! += f * v)));
    }
    if (clip === 1e-3) assert.equal(clipped, n, 'the small clip is active for every example');
    if (clip === 1e3) assert.equal(clipped, 0, 'the large clip is inactive');
    fast.forEach((g, j) => g.forEach((v, t) => assert.ok(Math.abs(v - slow[j]![t]!) <= 1e-5 + 1e-4 * Math.abs(slow[j]![t]!), `clip ${clip}, param ${j}[${t}]: ${v} vs loop ${slow[j]![t]}`)));
  }
  gan.dispose();
});

test('inversion is per record: a record\'s latent is the same whatever the other records of its chunk are', () => {
  const ae = new PublicAutoencoder({ height: 28, width: 28, latentChannels: 1, width0: 4 }, seededRandom(5));
  const d = 784;
  const a = mnist.train.images.slice(0, 6 * d);
  const b = a.slice();
  b.set(mnist.train.images.subarray(100 * d, 105 * d), d); // records 1..5 replaced, record 0 kept
  const za = ae.invert(a, 6, { steps: 3, lr: 0.05, reg: 0.01, clamp: 6 });
  const zb = ae.invert(b, 6, { steps: 3, lr: 0.05, reg: 0.01, clamp: 6 });
  const k = ae.latentDim;
  for (let t = 0; t < k; t++) assert.ok(Math.abs(za[t]! - zb[t]!) < 1e-5, `latent ${t}: ${za[t]} vs ${zb[t]}`);
  let differ = 0;
  for (let t = k; t < 6 * k; t++) if (Math.abs(za[t]! - zb[t]!) > 1e-3) differ++;
  assert.ok(differ > 0, 'the replaced records do get other latents');
  ae.dispose();
});

test('ledger: one Poisson-subsampled Gaussian event per discriminator step, add-remove; ε equals the DP-SGD accountant\'s for the run\'s steps', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-dpmi-ledger-'));
  try {
    const priv = head(mnist, 3000, 'p');
    const r = await runSynthesis({ method: 'dpmi', data: 'mnist', epsilon: 2, delta: 1e-5, out: join(root, 'r'), samples: 20, seed: 3, maxSteps: 5, hyper: TINY }, { dataOverride: priv, publicDataOverride: head(fashion, 500, 'pub') });
    assert.equal(r.generatorSteps, 5);
    assert.equal(r.relation, 'add-remove');
    const q = TINY.batch / 3000;
    const z = dpmiNoiseMultiplier(q, TINY.discSteps, 2, 1e-5);
    assert.ok(dpsgdEpsilon({ noiseMultiplier: z, sampleRate: q, steps: TINY.discSteps, delta: 1e-5 }) <= 2, 'the calibrated z spends ≤ ε over the planned steps');
    const ledger = PrivacyLedger.read(join(root, 'r', 'ledger.jsonl'));
    assert.equal(ledger.header.relation, 'add-remove');
    assert.equal(ledger.entries.length, 5);
    for (const e of ledger.entries) assert.deepEqual(e.event, DpEvents.poissonSampled(q, DpEvents.gaussian(z)));
    const expected = new RdpAccountant().compose(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), 5).getEpsilon(1e-5);
    assert.ok(Math.abs(r.epsilon - expected) < 1e-9, `ledger ${r.epsilon} vs accountant ${expected}`);
    assert.ok(Math.abs(expected - dpsgdEpsilon({ noiseMultiplier: z, sampleRate: q, steps: 5, delta: 1e-5 })) < 1e-9);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('stage 1 reads no private record: an all-black private set gives the same public generator weights; the discriminator does see the data', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-dpmi-pub-'));
  try {
    const priv = head(mnist, 1000, 'p');
    const black: ImageDataset = { ...priv, train: { ...priv.train, images: new Uint8Array(priv.train.images.length) }, rawFingerprint: 'all-black' };
    const pub = head(fashion, 300, 'pub');
    const run = (d: ImageDataset, name: string) => runSynthesis({ method: 'dpmi', data: 'mnist', epsilon: 5, delta: 1e-5, out: join(root, name), samples: 20, seed: 11, maxSteps: 2, hyper: { ...TINY, batch: 200 } }, { dataOverride: d, publicDataOverride: pub });
    await run(priv, 'a');
    await run(black, 'b');
    const ta = readCheckpoint(join(root, 'a', 'generator'), { header: 'generator.json', blob: 'generator.bin', format: 'dplens-dpmi-1' }).tensors;
    const tb = readCheckpoint(join(root, 'b', 'generator'), { header: 'generator.json', blob: 'generator.bin', format: 'dplens-dpmi-1' }).tensors;
    const ae = ta.filter((t) => String(t.entry.name).startsWith('ae.'));
    assert.ok(ae.length >= 12, 'encoder and decoder weights are in the checkpoint');
    for (const t of ae) {
      const u = tb.find((x) => x.entry.name === t.entry.name)!;
      assert.deepEqual(Array.from(u.data), Array.from(t.data), `${String(t.entry.name)} differs between the two private sets`);
    }
    const da = ta.find((t) => t.entry.name === 'disc.0')!.data;
    const db = tb.find((t) => t.entry.name === 'disc.0')!.data;
    assert.ok(da.some((v, i) => v !== db[i]), 'the discriminator (DP-SGD) depends on the private data');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('resume continues the run (same ledger, checkpoint step), and --public-data is required', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-dpmi-resume-'));
  try {
    const priv = head(mnist, 1000, 'p');
    const pub = head(fashion, 300, 'pub');
    const cfg = { method: 'dpmi', data: 'mnist', epsilon: 5, delta: 1e-5, out: join(root, 'r'), samples: 20, seed: 2, hyper: TINY };
    await runSynthesis({ ...cfg, maxSteps: 3 }, { dataOverride: priv, publicDataOverride: pub });
    const r2 = await runSynthesis({ ...cfg, maxSteps: 6, resume: true }, { dataOverride: priv, publicDataOverride: pub });
    assert.equal(r2.resumedFromStep, 3);
    assert.equal(r2.generatorSteps, 6);
    assert.equal(PrivacyLedger.read(join(root, 'r', 'ledger.jsonl')).entries.length, 6);
    const s = dpmiPlugin.loadSampler(join(root, 'r', 'generator'));
    const set = await s.sample(10, seededRandom(1));
    assert.equal(set.count, 10);
    s.dispose();
    await assert.rejects(runSynthesis({ ...cfg, out: join(root, 'nopub'), maxSteps: 1 }, { dataOverride: priv }), /--public-data is required for method dpmi/);
    assert.ok(!existsSync(join(root, 'nopub', 'ledger.jsonl')), 'no ledger is created when the public data is missing');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('audit: the replayed discriminator release is within its claim; σ = 0 is caught, and a --non-private run folder is flagged without reading private data', async () => {
  const h = { ...dpmiPlugin.defaults, batch: 30000, discSteps: 20 };
  const facts = { trainCount: 60000, numClasses: 10, epsilon: 2, delta: 1e-5 };
  const honest = dpmiMechanism(h, facts);
  const claimed = new RdpAccountant().compose(honest.event, honest.releases).getEpsilon(1e-5);
  assert.ok(claimed <= 2 && claimed > 1.9);
  const audit = (m: typeof honest, c: number | null, seed: number) => {
    const r = replayGaussianRelease({ mechanism: m, m: 1000, rng: seededRandom(seed), noise: seededRandom(seed + 1) });
    return summarizeAudit(r.scores, r.included, { claimedEpsilon: c, delta: 1e-5, confidence: 0.95, attack: 'dpmi release replay', strategy: mechanismAuditStrategy(r.declaredNoise), seconds: 0 });
  };
  assert.ok(audit(honest, claimed, 1).empiricalEpsilonLowerBound <= claimed);
  const zero = dpmiMechanism(h, { ...facts, epsilon: null });
  assert.equal(zero.sigma, 0);
  assert.ok(audit(zero, null, 3).empiricalEpsilonLowerBound > 4);
  const root = mkdtempSync(join(tmpdir(), 'dplens-dpmi-audit-'));
  try {
    const dir = join(root, 'np');
    await runSynthesis({ method: 'dpmi', data: 'mnist', epsilon: Number.POSITIVE_INFINITY, delta: 1e-5, out: dir, samples: 20, seed: 2, maxSteps: 3, nonPrivate: true, hyper: TINY }, { dataOverride: head(mnist, 1000, 'p'), publicDataOverride: head(fashion, 300, 'pub') });
    const a = await auditRun(dir, { seed: 5 });
    assert.equal(a.flagged, true);
    assert.equal(a.additionalEpsilonSpent, 0);
    assert.equal(a.privateDataUsed, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const dplens = spawnedDplens(600_000);

test('CLI: synth --method dpmi --data mnist --public-data fashion-mnist writes the contract files; flags of other methods are refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-dpmi-cli-'));
  try {
    const out = join(root, 'run');
    const r = dplens('synth', '--method', 'dpmi', '--data', 'mnist', '--public-data', 'fashion-mnist', '--epsilon', '1', '--delta', '1e-5', '--out', out, '--json', '--seed', '1', '--steps', '3', '--samples', '100', '--public-samples', '200', '--invert-steps', '0', '--ae-width', '4', '--latent-channels', '1');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(j.method, 'dpmi');
    assert.ok((j.epsilon as number) > 0 && (j.epsilon as number) <= 1);
    assert.equal(j.delta, 1e-5);
    assert.equal(typeof j.seconds, 'number');
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html', 'run.json']) assert.ok(existsSync(join(out, f)), f);
    const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { privacy: { relation: string; released: { what: string; status: string }[] } };
    assert.equal(run.privacy.relation, 'add-remove');
    assert.ok(run.privacy.released.some((x) => /public pre-training data \(fashion-mnist\)/.test(x.what) && x.status === 'outside-guarantee'));
    const bad = await dplensInProcess('synth', '--method', 'dpmi', '--data', 'mnist', '--public-data', 'fashion-mnist', '--epsilon', '1', '--out', join(root, 'never'), '--centroids', '3');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--centroids does not apply to method dpmi/);
    const nopub = await dplensInProcess('synth', '--method', 'dpmi', '--data', 'mnist', '--epsilon', '1', '--out', join(root, 'never2'));
    assert.equal(nopub.code, 2);
    assert.match(nopub.stderr, /--public-data is required for method dpmi/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
