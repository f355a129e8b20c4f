/**
 * dp-gan step speed: discriminator DP-SGD steps (Poisson real batch B + fake batch, per-example
 * clipping, noise) and generator steps, CPU and wall time per step and samples/s of discriminator
 * steps (real + fake rows through D's per-example gradients), at the default preset's sizes.
 * `npm run bench:dpgan [steps]` — compare with `npm run bench:dpsgd` (reference CNN DP-SGD).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { dpGanPlugin, GanPair } from '../src/generate/dp-gan.js';
import { seededRandom } from '../src/privacy/index.js';
import { balancedLabels } from '../src/generate/voting-gan.js';
import { loadMnist } from '../src/data/index.js';

await ensureEngine();
const steps = Number(process.argv[2] ?? 20);
const h = { ...dpGanPlugin.defaults };
const pair = new GanPair(h, { height: 28, width: 28, numClasses: 10 }, 1, 2);
const rng = seededRandom(3);
const mnist = loadMnist();
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
function time(name: string, f: () => number, rows: number): void {
  f();
  const c0 = cpu();
  const t0 = Date.now();
  let n = 0;
  for (let i = 0; i < steps; i++) n += f();
  const c = cpu() - c0;
  const w = (Date.now() - t0) / 1000;
  console.log(`${name}: ${((c / steps) * 1000).toFixed(1)} ms CPU / step, ${((w / steps) * 1000).toFixed(1)} ms wall / step${rows ? `, ${(n / c).toFixed(0)} samples per CPU-second, ${(n / w).toFixed(0)} samples/s wall` : ''}`);
}
const d = 784;
time(`discriminator DP-SGD step (B=${h.batch} expected real + ${h.genBatch} fake rows)`, () => {
  const k = h.batch;
  const real = new Float32Array(k * d);
  const lab = new Int32Array(k);
  for (let j = 0; j < k; j++) {
    const i = Math.floor(rng.nextDouble() * mnist.train.count);
    lab[j] = mnist.train.labels[i]!;
    for (let t = 0; t < d; t++) real[j * d + t] = mnist.train.images[i * d + t]! / 255;
  }
  const fl = balancedLabels(rng, h.genBatch, 10);
  const z = tf.randomUniform([h.genBatch, h.zDim], -1, 1) as tf.Tensor2D;
  const f = pair.fakes(z, fl);
  pair.discriminatorStep(real, lab, f, fl, h.clip, h.clip, { real: k, fake: h.genBatch }, rng);
  f.dispose();
  z.dispose();
  return k + h.genBatch;
}, 1);
time(`generator step (${h.genBatch} samples)`, () => (pair.generatorStep(balancedLabels(rng, h.genBatch, 10), rng), 0), 0);
pair.dispose();
