/**
 * dp2-vae at large batches: the chunked per-example gradient computation gives the same clipped
 * sum (and so the same trained weights, same seed) as the whole batch at once; the latent
 * temperature of the samples is post-processing of the decoder (τ·z decoded), kept by the saved
 * sampler; the large-batch presets calibrate z for their planned steps within ε.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PrivacyLedger, RdpAccountant, DpEvents, seededRandom } from '../src/privacy/index.js';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/generate/index.js';
import { resolvePluginHyper } from '../src/generate/plugin.js';
import { ConditionalVae } from '../src/generate/vae-model.js';
import { clippedElboSum, dp2VaeNoise, dp2VaePlugin, sampleVae, type Dp2VaeHyper } from '../src/generate/dp2-vae.js';
import { warmupPlan } from '../src/generate/warmup.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const TINY: Partial<Dp2VaeHyper> = { batch: 40, hidden: 24, zDim: 4, steps: 50, pretrainSteps: 0, warmup: 'none', encoderShare: 0.5 };

test('clipped ELBO sum over chunks equals the sum over the whole batch (each example clipped on its own)', () => {
  const vae = new ConditionalVae({ inputDim: 12, numClasses: 3, hidden: [7], zDim: 3, labelGain: 2, outputBias: -1 }, 11);
  const rng = seededRandom(2);
  const n = 9;
  const xs = new Float32Array(n * 12);
  rng.uniform(xs);
  const es = new Float32Array(n * 3);
  rng.normal(es, 1);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  for (const trainEncoder of [true, false]) {
    const o = { clip: 0.3, beta: 1, trainEncoder };
    const whole = clippedElboSum(vae, tf.tensor2d(xs, [n, 12]), labels, tf.tensor2d(es, [n, 3]), o).map((t) => Array.from(t.dataSync()));
    const parts = [
      [0, 4],
      [4, 5],
      [5, 9],
    ].map(([a, b]) => clippedElboSum(vae, tf.tensor2d(xs.subarray(a! * 12, b! * 12), [b! - a!, 12]), labels.subarray(a!, b!), tf.tensor2d(es.subarray(a! * 3, b! * 3), [b! - a!, 3]), o).map((t) => t.dataSync()));
    whole.forEach((w, j) => w.forEach((v, k) => assert.ok(Math.abs(v - (parts[0]![j]![k]! + parts[1]![j]![k]! + parts[2]![j]![k]!)) < 1e-5, `param ${j}[${k}] (trainEncoder ${trainEncoder})`)));
  }
  vae.dispose();
});

test('fit with --vae-chunk 7 trains the same weights as the unchunked batch (same seed, same ledger)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'dplens-vae-chunk-'));
  try {
    const weights: number[][] = [];
    for (const chunk of [0, 7]) {
      const ledger = PrivacyLedger.open(join(root, `ledger-${chunk}.jsonl`), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 5, delta: 1e-5 } });
      const h = { ...dp2VaePlugin.defaults, ...TINY, steps: 4, chunk };
      const gen = dp2VaePlugin.create({ data: mnist, budget: { epsilon: 5, delta: 1e-5 }, ledger, random: seededRandom(9) }, h, { maxSteps: 4, maxMinutes: Infinity }) as unknown as { vae: ConditionalVae; fit: () => Promise<{ steps: number }>; dispose(): void };
      assert.equal((await gen.fit()).steps, 4);
      weights.push(gen.vae.params().flatMap((p) => Array.from(p.value.dataSync())));
      assert.equal(ledger.entries.length, 4);
      gen.dispose();
      ledger.close();
    }
    let maxDiff = 0;
    weights[0]!.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - weights[1]![i]!))));
    assert.ok(maxDiff < 1e-4, `max weight difference ${maxDiff}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('latent temperature: samples at τ are the decoder at τ·z (post-processing); τ ≤ 0 is refused; the saved sampler keeps τ', async () => {
  const vae = new ConditionalVae({ inputDim: 784, numClasses: 10, hidden: [16], zDim: 4, labelGain: 2, outputBias: -1 }, 3);
  const labels = Int32Array.from({ length: 6 }, (_, i) => i);
  const got = await sampleVae(vae, 6, labels, seededRandom(4), 28, 28, 0.5);
  const z = new Float32Array(6 * 4);
  seededRandom(4).normal(z, 1);
  const want = tf.tidy(() => tf.round(tf.mul(vae.decode(tf.mul(tf.tensor2d(z, [6, 4]), 0.5) as tf.Tensor2D, labels), 255)).dataSync());
  got.images.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1, `pixel ${i}: ${v} vs ${want[i]}`));
  const at1 = await sampleVae(vae, 6, labels, seededRandom(4), 28, 28);
  assert.notDeepEqual(at1.images, got.images);
  await assert.rejects(() => sampleVae(vae, 6, labels, seededRandom(4), 28, 28, 0), /temperature/);
  vae.dispose();
  // the checkpoint keeps τ: the sampler read back draws at the run's temperature
  const root = mkdtempSync(join(tmpdir(), 'dplens-vae-tau-'));
  const ledger = PrivacyLedger.open(join(root, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', create: true, budget: { epsilon: 5, delta: 1e-5 } });
  try {
    const gen = dp2VaePlugin.create({ data: mnist, budget: { epsilon: 5, delta: 1e-5 }, ledger, random: seededRandom(5) }, { ...dp2VaePlugin.defaults, ...TINY, steps: 1, temperature: 0.3 }, { maxSteps: 1, maxMinutes: Infinity });
    await gen.fit();
    await gen.save(join(root, 'gen'));
    const a = await gen.sample(8, Int32Array.from({ length: 8 }, (_, i) => i % 10));
    const s = dp2VaePlugin.loadSampler(join(root, 'gen'));
    // the live generator and the saved sampler, same RandomSource state → same images
    const rngA = seededRandom(6);
    const rngB = seededRandom(6);
    const lab = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const fromSaved = await s.sample(8, rngA, lab);
    const vaeLive = (gen as unknown as { vae: ConditionalVae }).vae;
    const fromLive = await sampleVae(vaeLive, 8, lab, rngB, 28, 28, 0.3);
    assert.deepEqual(fromSaved.images, fromLive.images);
    assert.equal(a.count, 8);
    s.dispose();
    gen.dispose();
  } finally {
    ledger.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('presets: z is calibrated for the planned steps and batch (warm-up ∘ T DP-SGD steps) and spends ≤ ε by the accountant', () => {
  for (const [name, eps] of [
    ['mnist-eps1', 1],
    ['mnist-eps10', 10],
    ['large-batch-eps1', 1],
  ] as const) {
    const h = resolvePluginHyper(dp2VaePlugin, name, {});
    const facts = { relation: 'add-remove' as const, numClasses: 10, height: 28, width: 28, channels: 1, epsilon: eps, delta: 1e-5 };
    const q = h.batch / 60000;
    const z = dp2VaeNoise(h, q, facts);
    const acc = new RdpAccountant();
    if (h.warmup !== 'none') acc.compose(warmupPlan(h, facts).event, 1);
    acc.compose(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), h.steps);
    const spent = acc.getEpsilon(1e-5);
    assert.ok(spent <= eps && spent > 0.97 * eps, `${name}: ${spent}`);
  }
});
