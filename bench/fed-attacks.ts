/**
 * The issue-17 item-7 study in one command (`npm run bench:fed-attacks [-- --quick]`): Hitaj et al.'s
 * GAN attack without DP, the control (victim without class v), record-level DP for the victim at
 * ε = 8, 2, 0.5, selective upload θu = 0.1; then the gradient-leakage measures of the fresh reference
 * CNN. Each configuration writes a run folder under $BENCH_OUT (default /tmp/dplens-fed-attacks) and
 * one table is printed at the end. Full scale ≈ 4–6 CPU-minutes per Hitaj configuration on 2 cores;
 * `--quick` runs 30 rounds with 300 records per class.
 */
import { join } from 'node:path';
import { runHitajJob, type HitajJob } from '../src/runs/attack-hitaj.js';
import { runLeakageJob } from '../src/runs/attack-leakage.js';

const quick = process.argv.includes('--quick');
const root = process.env.BENCH_OUT ?? '/tmp/dplens-fed-attacks';
const base = (name: string): HitajJob => ({
  data: 'mnist', out: join(root, name), victimClass: 3, perClass: quick ? 300 : 600, rounds: quick ? 30 : 100, victimSteps: 5, adversarySteps: 5, generatorSteps: 5, batchSize: 64,
  uploadFraction: 1, downloadFraction: 1, learningRate: 0.1, delta: 1e-5, clip: 1, control: false, samples: 500, evalEvery: 10, seed: 1,
  onLog: (l) => process.stderr.write(`[${name}] ${l}\n`),
});
const configs: [string, Partial<HitajJob>][] = [
  ['no-dp', {}],
  ['control', { control: true }],
  ['eps8', { epsilon: 8 }],
  ['eps2', { epsilon: 2 }],
  ['eps0.5', { epsilon: 0.5 }],
  ['theta-u-0.1', { uploadFraction: 0.1 }],
];
const rows: string[] = [
  '| run | ε | σ | CNN judge: share v / mean p(v) | template: share v / corr. | 2nd-half mean (CNN share / template share / corr.) | shared-model test acc. | seconds |',
  '|---|---|---|---|---|---|---|---|',
];
for (const [name, extra] of configs) {
  const r = await runHitajJob({ ...base(name), ...extra });
  const f = (x: number): string => x.toFixed(3);
  const l = r.lateMean;
  rows.push(`| ${name} | ${r.epsilon === null ? '∞ (no DP)' : r.epsilon.toFixed(2)} | ${r.noiseMultiplier?.toFixed(3) ?? '—'} | ${f(r.victimClassShare)} / ${f(r.victimClassConfidence)} | ${f(r.prototypeShare)} / ${f(r.prototypeCorrelation)} | ${f(l.victimClassShare)} / ${f(l.prototypeShare)} / ${f(l.prototypeCorrelation)} | ${r.sharedModelTestAccuracy.toFixed(4)} | ${r.seconds.toFixed(0)} |`);
}
const lk = await runLeakageJob({ data: 'mnist', out: join(root, 'leakage'), model: 'cnn', split: 'test', clients: 1000, targets: 600, aggregation: [1, 10, 100], projectDim: 128, sensitivityExamples: 16, subspacePerClass: 8, seed: 1, onLog: (l) => process.stderr.write(`[leakage] ${l}\n`) });
console.log(rows.join('\n'));
console.log('\n| aggregation | ' + lk.layers.map((l) => `${l} label bits / image bits`).join(' | ') + ' |');
console.log('|---|' + lk.layers.map(() => '---|').join(''));
for (const A of [1, 10, 100]) console.log(`| ${A} | ` + lk.layers.map((l) => {
      const r = lk.vInformation.find((x) => x.aggregation === A && x.layer === l)!;
      return `${r.labelBits.toFixed(3)} / ${r.imageBits.toFixed(2)}`;
    }).join(' | ') + ' |');
console.log('\n| layer | effective rank of ∂g/∂x (of 16) | relative sensitivity | subspace latent |');
console.log('|---|---|---|---|');
for (const l of lk.layers) console.log(`| ${l} | ${lk.sensitivity.find((s) => s.layer === l)!.effectiveRank.toFixed(2)} | ${lk.sensitivity.find((s) => s.layer === l)!.sensitivity.toFixed(4)} | ${lk.subspace.find((s) => s.layer === l)!.latent.toFixed(3)} |`);
