/**
 * npm run bench:datalens — time per DataLens generator step, split into teacher training / voting
 * (image gradients + TopAgg) / generator update, plus memory, at N teachers (default 4,000, the
 * published setting: m = 15 records each, B = 15, k = 200, σ = 5000).
 *
 * Env: DL_KIND (kernel|neural, default kernel = the default presets of both methods),
 *      DL_TEACHERS (default: 60,000 = one per record for kernel, 4000 for neural),
 *      DL_STEPS (4 timed steps after 1 warm-up), DL_HIDDEN (16),
 *      DL_GEN (mlp|dcgan, default mlp), DL_METHOD (datalens|gpate), DL_SAMPLES (sampling timing, 6000).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { PrivacyLedger, seededRandom } from '../src/privacy/index.js';
import { ensureEngine, makeGenerator, resolveHyper, type GeneratorProgress, type VotingGan } from '../src/generate/index.js';

const env = (k: string, d: string) => process.env[k] ?? d;
const steps = Number(env('DL_STEPS', '4'));
const method = env('DL_METHOD', 'datalens');
const kind = env('DL_KIND', 'kernel') as 'kernel' | 'neural';
const N = Number(env('DL_TEACHERS', kind === 'kernel' ? '60000' : '4000'));
const backend = await ensureEngine();
const eng = (await import('../src/engine/index.js')) as { engineStats?: () => { kernelTimeMs?: Record<string, number>; fallbacks?: Record<string, number> }; resetEngineStats?: () => void };
const data = loadMnist();
const dir = mkdtempSync(join(tmpdir(), 'dplens-bench-'));
const rng = seededRandom(1);
const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'replace-one', randomness: rng });
const hyper = resolveHyper(method, kind === 'kernel' ? 'mnist-eps1' : method === 'gpate' ? 'paper-mnist-eps1' : 'neural-mnist-eps1', { teachers: N, teacherHidden: Number(env('DL_HIDDEN', '16')), generatorArch: env('DL_GEN', 'mlp') as 'dcgan', pretrainSteps: 0 });
const gen = makeGenerator(method, { data, budget: { epsilon: 1e9, delta: 1e-5 }, ledger, random: rng }, hyper, steps + 1, Infinity) as VotingGan;
const rows: GeneratorProgress[] = [];
let peakRss = 0;
const t0 = Date.now();
await gen.fit({
  onProgress: (p) => {
    rows.push(p);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    process.stderr.write(`step ${p.step}: teachers ${p.timing.teacherTrainMs} ms, votes ${p.timing.voteMs} ms, generator ${p.timing.generatorMs} ms\n`);
  },
});
const timed = rows.slice(1);
const mean = (f: (p: GeneratorProgress) => number) => timed.reduce((a, p) => a + f(p), 0) / Math.max(1, timed.length);
const nSample = Number(env('DL_SAMPLES', '6000'));
const ts = Date.now();
await gen.sample(nSample);
const sampleMs = Date.now() - ts;
const stats = eng.engineStats?.();
const result = {
  backend,
  method,
  teacherKind: kind,
  teachers: N,
  shardSize: Math.floor(data.train.count / N),
  B: gen.B,
  teacherHidden: hyper.teacherHidden,
  generator: hyper.generatorArch,
  timedSteps: timed.length,
  msPerStep: { teacherTraining: mean((p) => p.timing.teacherTrainMs), voting: mean((p) => p.timing.voteMs), generatorUpdate: mean((p) => p.timing.generatorMs) },
  totalMsPerStep: mean((p) => p.timing.teacherTrainMs + p.timing.voteMs + p.timing.generatorMs),
  tensorMemoryMB: Math.round(tf.memory().numBytes / 2 ** 20),
  peakRssMB: Math.round(peakRss / 2 ** 20),
  sampleMsPer60k: Math.round((sampleMs * 60000) / nSample),
  wallSeconds: (Date.now() - t0) / 1000,
  fallbacks: stats?.fallbacks,
};
console.log(JSON.stringify(result, null, 1));
gen.dispose();
ledger.close();
rmSync(dir, { recursive: true, force: true });
