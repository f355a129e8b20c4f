/**
 * dp2-vae DP-SGD step cost at several batch sizes: CPU ms and wall ms per step (process.cpuUsage,
 * after a few untimed warm-up steps), peak RSS and the tfjs tensor memory after the timed steps.
 * Each step is the plugin's real step (Poisson sample, per-example clipped ELBO gradient over the
 * whole VAE, Gaussian noise, Adam); the warm-up curriculum and public pre-training are off so only
 * the DP-SGD step is timed. A seeded RandomSource (timing only; nothing here is a release).
 * Usage: node --import tsx bench/dp2-vae.ts [--batches 600,2000,4000] [--steps 10] [--data mnist]
 *        [--hidden 400] [--latent 16] [--chunk 0] [--encoder-share 1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/engine/index.js';
import { PrivacyLedger, seededRandom, keyedFingerprint } from '../src/privacy/index.js';
import { resolvePluginHyper } from '../src/generate/plugin.js';
import { dp2VaePlugin } from '../src/generate/dp2-vae.js';
import { benchArgs } from './bench-args.js';

const get = benchArgs();

await ensureEngine();
const dataName = get('data', 'mnist');
const data = loadDataset(dataName);
const steps = Number(get('steps', '10'));
const warm = 3;
const dir = mkdtempSync(join(tmpdir(), 'bench-dp2vae-'));
for (const B of get('batches', '600,2000,4000').split(',').map(Number)) {
  const rng = seededRandom(1);
  const budget = { epsilon: 1e6, delta: 1e-5 };
  const ledger = PrivacyLedger.open(join(dir, `ledger-${B}.jsonl`), { accountant: 'rdp', relation: 'add-remove', randomness: { kind: 'seeded', seed: 1 }, budget });
  const ctx = { data, budget, ledger, random: rng, datasetFingerprint: keyedFingerprint(data.rawFingerprint) };
  const h = resolvePluginHyper(dp2VaePlugin, 'no-warmup', {
    batch: B,
    steps: 1000,
    noise: 1,
    timeCap: 0,
    hidden: Number(get('hidden', '400')),
    zDim: Number(get('latent', '16')),
    encoderShare: Number(get('encoder-share', '1')),
    ...(get.has('chunk') ? { chunk: Number(get('chunk', '0')) } : {}),
  });
  let gen = dp2VaePlugin.create(ctx, h, { maxSteps: warm, maxMinutes: Infinity });
  await gen.fit();
  await gen.save(dir);
  gen.dispose();
  gen = dp2VaePlugin.create(ctx, h, { maxSteps: warm + steps, maxMinutes: Infinity });
  await gen.load(dir);
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  await gen.fit();
  const c = process.cpuUsage(c0);
  const wallMs = Date.now() - t0;
  const cpuMs = (c.user + c.system) / 1000;
  console.log(JSON.stringify({ data: dataName, batch: B, hidden: h.hidden, latent: h.zDim, steps, cpuMsPerStep: +(cpuMs / steps).toFixed(1), wallMsPerStep: +(wallMs / steps).toFixed(1), cpuMsPer1kSamples: +((cpuMs / steps / B) * 1000).toFixed(1), rssMB: Math.round(process.memoryUsage().rss / 2 ** 20), peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), tfBytesMB: Math.round(tf.memory().numBytes / 2 ** 20) }));
  gen.dispose();
  ledger.close();
}
rmSync(dir, { recursive: true, force: true });
