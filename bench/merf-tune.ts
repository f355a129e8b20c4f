/**
 * Tuning probe for the mean-embedding generators (dp-merf, dp-kernel): one private release + generator
 * training on a dataset, then a fast proxy utility: softmax regression and 1-NN trained on the
 * synthetic samples, tested on the real test split. Usage:
 *   node --import tsx bench/merf-tune.ts '{"data":"fashion-mnist","epsilon":1,"hyper":{...},"method":"dp-kernel","samples":10000}'
 * Proxy figures only (the real figure is `dplens eval`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../src/data/index.js';
import { ensureEngine, getGenerator, resolvePluginHyper } from '../src/generate/index.js';
import { PrivacyLedger, seededRandom } from '../src/privacy/index.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as { data?: string; epsilon?: number; hyper?: Record<string, unknown>; method?: string; samples?: number; seed?: number };
await ensureEngine();
const data = loadDataset(cfg.data ?? 'mnist');
const plugin = getGenerator(cfg.method ?? 'dp-merf');
const eps = cfg.epsilon ?? 1;
const hyper = resolvePluginHyper(plugin, plugin.defaultPreset(data.name, eps), cfg.hyper ?? {});
const ledger = PrivacyLedger.open(join(mkdtempSync(join(tmpdir(), 'merf-tune-')), 'l.jsonl'), { accountant: 'rdp', relation: 'replace-one', randomness: { kind: 'seeded', seed: 1 } });
const t0 = Date.now();
const gen = plugin.create({ data, budget: { epsilon: eps, delta: 1e-5 }, ledger, random: seededRandom(cfg.seed ?? 1) }, hyper, { maxSteps: Infinity, maxMinutes: Infinity });
const fit = await gen.fit({ onProgress: (p) => { if (p.step % 200 === 1) process.stderr.write(`step ${p.step} loss ${p.generatorLoss.toFixed(4)} ${p.seconds.toFixed(0)}s\n`); } });
const fitS = (Date.now() - t0) / 1000;
const n = cfg.samples ?? 10000;
const set = await gen.sample(n);
const d = 784;
const C = data.numClasses;
const xs = tf.tidy(() => tf.div(tf.tensor2d(Float32Array.from(set.images), [n, d]), 255));
const ys = tf.oneHot(tf.tensor1d(set.labels, 'int32'), C);
const nt = 5000;
const xt = tf.tidy(() => tf.div(tf.tensor2d(Float32Array.from(data.test.images.subarray(0, nt * d)), [nt, d]), 255));
const yt = Int32Array.from(data.test.labels.subarray(0, nt));
// softmax regression on [x, 1], Adam, 8 epochs
const W = tf.variable(tf.zeros([d, C]));
const b = tf.variable(tf.zeros([C]));
const opt = tf.train.adam(0.01);
for (let ep = 0; ep < 8; ep++)
  for (let s = 0; s < n; s += 500) {
    const m = Math.min(500, n - s);
    tf.tidy(() => { opt.minimize(() => tf.losses.softmaxCrossEntropy(tf.slice(ys, [s, 0], [m, C]), tf.add(tf.matMul(tf.slice(xs, [s, 0], [m, d]), W), b)) as tf.Scalar, false, [W, b]); });
  }
const pred = tf.tidy(() => tf.argMax(tf.add(tf.matMul(xt, W), b), 1)).dataSync();
let lr = 0;
for (let i = 0; i < nt; i++) if (pred[i] === yt[i]) lr++;
// 1-NN
const nn = tf.tidy(() => {
  const dots = tf.matMul(xt, xs, false, true);
  const sq = tf.sum(tf.square(xs), 1);
  return tf.argMax(tf.sub(tf.mul(dots, 2), sq), 1);
}).dataSync();
let knn = 0;
for (let i = 0; i < nt; i++) if (set.labels[nn[i]!] === yt[i]) knn++;
console.log(JSON.stringify({ cfg, fitSeconds: fitS, steps: fit.steps, epsilon: fit.epsilon, logreg: lr / nt, nn1: knn / nt, seconds: (Date.now() - t0) / 1000 }));
