/**
 * dp2-vae tuning: trains one dp2-vae run (the plugin's own fit: warm-up releases, DP-SGD steps,
 * ledger) with a preset plus overrides, then samples it at several latent temperatures τ (z ~
 * N(0, τ²I), post-processing of the same decoder, no extra ε) and scores each sample set with the
 * default eval protocol (`evaluateSynthetic`, spec §7 CNN, --epochs) on the real test set. One JSON
 * line per temperature: the hyper-parameters, ε spent, train CPU-s and wall-s, accuracies.
 * Seeded RandomSource (--seed) for comparable runs; a real release would use the CLI (secure).
 * Usage: node --import tsx bench/dp2-vae-tune.ts [--data mnist] [--eps 1] [--preset P]
 *        [--set batch=4000,steps=500,lr=0.002] [--temps 1,0.8,0.6] [--samples 10000] [--epochs 2] [--seed 1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/engine/index.js';
import { PrivacyLedger, seededRandom, keyedFingerprint } from '../src/privacy/index.js';
import { resolvePluginHyper } from '../src/generate/plugin.js';
import { dp2VaePlugin, sampleVae, type Dp2VaeHyper } from '../src/generate/dp2-vae.js';
import type { ConditionalVae } from '../src/generate/vae-model.js';
import { balancedLabels } from '../src/generate/voting-gan.js';
import { evaluateSynthetic } from '../src/evaluate/synthetic-eval.js';
import { benchArgs } from './bench-args.js';

const get = benchArgs();

await ensureEngine();
const dataName = get('data', 'mnist');
const data = loadDataset(dataName);
const eps = Number(get('eps', '1'));
const delta = 1e-5;
const preset = get('preset', dp2VaePlugin.defaultPreset(dataName, eps));
const overrides: Record<string, unknown> = { timeCap: 0 };
for (const kv of get('set', '').split(',').filter(Boolean)) {
  const [k, v] = kv.split('=') as [string, string];
  overrides[k] = /^-?[\d.e]+$/.test(v) ? Number(v) : v;
}
const h = resolvePluginHyper(dp2VaePlugin, preset, overrides as Partial<Dp2VaeHyper>);
const dir = mkdtempSync(join(tmpdir(), 'bench-dp2vae-tune-'));
const seed = Number(get('seed', '1'));
const rng = seededRandom(seed);
const budget = { epsilon: eps, delta };
const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', randomness: { kind: 'seeded', seed }, budget });
const ctx = { data, budget, ledger, random: rng, datasetFingerprint: keyedFingerprint(data.rawFingerprint) };
const gen = dp2VaePlugin.create(ctx, h, { maxSteps: h.steps, maxMinutes: Infinity });
const c0 = process.cpuUsage();
const t0 = Date.now();
const fit = await gen.fit();
const c = process.cpuUsage(c0);
const trainCpuS = (c.user + c.system) / 1e6;
const trainWallS = (Date.now() - t0) / 1000;
const vae = (gen as unknown as { vae: ConditionalVae }).vae;
const n = Number(get('samples', '10000'));
const realTest = { ...data.test, height: data.height, width: data.width, channels: data.channels };
for (const tau of get('temps', '1,0.8,0.6').split(',').map(Number)) {
  const samples = await sampleVae(vae, n, balancedLabels(rng, n, data.numClasses), rng, data.height, data.width, tau);
  const e0 = process.cpuUsage();
  const ev = await evaluateSynthetic({ synthetic: samples, realTest, numClasses: data.numClasses, epochs: Number(get('epochs', '2')) });
  const ec = process.cpuUsage(e0);
  const { warmup, warmupCentroids, warmupShare, steps, batch, lr, lrFinal, encoderShare, hidden, zDim, clip, beta } = h;
  console.log(JSON.stringify({ data: dataName, eps, preset, set: get('set', ''), hyper: { steps, batch, lr, lrFinal, encoderShare, hidden, zDim, clip, beta, warmup, warmupCentroids, warmupShare }, temperature: tau, dpsgdSteps: fit.steps, epsilonSpent: +fit.epsilon.toFixed(4), noiseMultiplier: +(gen as unknown as { noiseMultiplier(): number }).noiseMultiplier().toFixed(3), trainCpuS: +trainCpuS.toFixed(1), trainWallS: +trainWallS.toFixed(1), evalCpuS: +((ec.user + ec.system) / 1e6).toFixed(1), testAccuracy: ev.testAccuracy, bestEpochTestAccuracy: ev.bestEpochTestAccuracy }));
}
gen.dispose();
ledger.close();
rmSync(dir, { recursive: true, force: true });
