/**
 * dp-gan with and without the DP-FETA warm-up curriculum (src/generate/warmup.ts), same ε, same
 * DP-SGD steps: the warm-up releases central images under --share of ε, warms the GAN up on them
 * (non-private GAN steps whose "real" batch is drawn from the central images: post-processing), and
 * DP-SGD's noise multiplier is calibrated on the composition warm-up ∘ T steps (calibrateWithWarmup),
 * passed to dp-gan as --noise-multiplier. Without warm-up dp-gan calibrates itself (noise 0).
 * Utility: `evaluateSynthetic` (the default dplens eval protocol) on --samples synthetic images.
 * Usage: node --import tsx bench/warmup-dpgan.ts [--data mnist] [--eps 1] [--steps 300] [--warmup none,class-means]
 *        [--warmup-steps 300] [--share 0.1] [--samples 10000] [--seed N] [--out DIR]
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/engine/index.js';
import { PrivacyLedger, seededRandom, secureRandom, keyedFingerprint } from '../src/privacy/index.js';
import { balancedLabels } from '../src/generate/voting-gan.js';
import { dpGanPlugin, dpGanStepEvent, type GanPair } from '../src/generate/dp-gan.js';
import { resolvePluginHyper } from '../src/generate/plugin.js';
import { calibrateWithWarmup, releaseCentralImages, warmUp, warmupFactsOf, warmupPlan, WARMUP_DEFAULTS, type WarmupKind } from '../src/generate/warmup.js';
import { evaluateSynthetic } from '../src/evaluate/synthetic-eval.js';
import { benchArgs } from './bench-args.js';

const get = benchArgs();

await ensureEngine();
const dataName = get('data', 'mnist');
const data = loadDataset(dataName);
const eps = Number(get('eps', '1'));
const delta = 1e-5;
const T = Number(get('steps', '300'));
const out = get('out', '/tmp/warmup-dpgan');
const seed = get.has('seed') ? Number(get('seed', '')) : undefined;
for (const kind of get('warmup', 'none,class-means').split(',') as WarmupKind[]) {
  const t0 = Date.now();
  const dir = join(out, `${dataName}-eps${eps}-${kind}`);
  mkdirSync(dir, { recursive: true });
  const rng = seed === undefined ? secureRandom() : seededRandom(seed);
  const ledger = PrivacyLedger.open(join(dir, `ledger-${Date.now()}.jsonl`), { accountant: 'rdp', relation: 'add-remove', randomness: rng.kind === 'seeded' ? { kind: 'seeded', seed: rng.seed! } : { kind: 'secure' }, budget: { epsilon: eps, delta } });
  const ctx = { data, budget: { epsilon: eps, delta }, ledger, random: rng, datasetFingerprint: keyedFingerprint(data.rawFingerprint) };
  const wh = { ...WARMUP_DEFAULTS, warmup: kind, warmupShare: Number(get('share', '0.1')), warmupSteps: Number(get('warmup-steps', '300')), warmupCentroids: Number(get('centroids', kind === 'kmeans' ? '4' : '1')) };
  const base = resolvePluginHyper(dpGanPlugin, dpGanPlugin.defaultPreset(dataName, eps), { steps: T, timeCap: 0 });
  const q = base.batch / data.train.count;
  let noise = 0;
  let cal: ReturnType<typeof calibrateWithWarmup> | undefined;
  if (kind !== 'none') {
    const plan = warmupPlan(wh, warmupFactsOf(ctx, 'add-remove'));
    cal = calibrateWithWarmup({ warmup: plan.event, step: (z) => dpGanStepEvent(q, z), steps: T, epsilon: eps, delta, relation: 'add-remove' });
    noise = cal.noise;
  }
  const h = { ...base, noise };
  const gen = dpGanPlugin.create(ctx, h, { maxSteps: T, maxMinutes: Infinity });
  let warm = { steps: 0, loss: NaN };
  if (kind !== 'none') {
    const central = await releaseCentralImages(ctx, wh, { method: 'dp-gan' });
    const pair = (gen as unknown as { pair: GanPair }).pair;
    const B = h.genBatch;
    warm = await warmUp(central, {
      steps: wh.warmupSteps,
      batch: B,
      rng,
      step: (images, labels) => {
        const fakeLabels = balancedLabels(rng, B, data.numClasses);
        const u = new Float32Array(B * h.zDim);
        rng.uniform(u);
        const z = tf.tensor2d(u.map((v) => 2 * v - 1), [B, h.zDim]);
        const fake = pair.fakes(z, fakeLabels);
        pair.discriminatorStep(images, labels, fake, fakeLabels, 1e6, 0, 2 * B, rng);
        z.dispose();
        fake.dispose();
        return pair.generatorStep(balancedLabels(rng, B, data.numClasses), rng);
      },
    });
  }
  const tw = (Date.now() - t0) / 1000;
  const fit = await gen.fit();
  const samples = await gen.sample(Number(get('samples', '10000')));
  const ev = await evaluateSynthetic({ synthetic: samples, realTest: { ...data.test, height: data.height, width: data.width, channels: data.channels }, numClasses: data.numClasses });
  console.log(JSON.stringify({ data: dataName, epsilon: eps, warmup: kind, share: kind === 'none' ? 0 : wh.warmupShare, warmupSteps: warm.steps, dpsgdSteps: fit.steps, noiseMultiplier: noise || null, calibration: cal, ledgerEpsilon: ledger.spent(delta), testAccuracy: ev.testAccuracy, bestEpochTestAccuracy: ev.bestEpochTestAccuracy, warmupSeconds: tw, seconds: (Date.now() - t0) / 1000 }));
  ledger.close();
  gen.dispose();
}
