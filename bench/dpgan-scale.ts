/**
 * dp-gan at DPImageBench's batch sizes: CPU and wall ms per discriminator DP-SGD step (Poisson-size
 * real batch B + the fake batch B_f through G and D's per-example gradients, chunked by
 * --disc-chunk rows) and per generator step, and the process's peak RSS, for each B.
 * Usage: node --import tsx bench/dpgan-scale.ts [--batches 512,1024,2048] [--gen-batch 128]
 *        [--chunk 512] [--steps 3] [--disc-channels 16] [--gen-channels 32]
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { dpGanPlugin, GanPair } from '../src/generate/dp-gan.js';
import { seededRandom } from '../src/privacy/index.js';
import { balancedLabels } from '../src/generate/voting-gan.js';
import { pixelRows } from '../src/generate/gaussian-release.js';
import { loadMnist } from '../src/data/index.js';
import { benchArgs } from './bench-args.js';

const get = benchArgs();

await ensureEngine();
const mnist = loadMnist();
const rng = seededRandom(3);
const steps = Number(get('steps', '3'));
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const d = 784;
for (const B of get('batches', '512,1024,2048').split(',').map(Number)) {
  const h = { ...dpGanPlugin.defaults, batch: B, genBatch: Number(get('gen-batch', '128')), discChunk: Number(get('chunk', '512')), discChannels: Number(get('disc-channels', '16')), genChannels: Number(get('gen-channels', '32')), ema: 0.999 };
  const pair = new GanPair(h, { height: 28, width: 28, numClasses: 10 }, 1, 2);
  const dStep = () => {
    const idx = Int32Array.from({ length: B }, () => Math.floor(rng.nextDouble() * mnist.train.count));
    const real = pixelRows(mnist.train.images, idx, d);
    const lab = Int32Array.from(idx, (i) => mnist.train.labels[i]!);
    const fl = balancedLabels(rng, h.genBatch, 10);
    const z = tf.randomUniform([h.genBatch, h.zDim], -1, 1) as tf.Tensor2D;
    const f = pair.fakes(z, fl);
    pair.discriminatorStep(real, lab, f, fl, 1e-3, 1e-3, { real: B, fake: h.genBatch }, rng);
    f.dispose();
    z.dispose();
  };
  const gStep = () => pair.generatorStep(balancedLabels(rng, h.genBatch, 10), rng);
  dStep();
  gStep();
  let c0 = cpu();
  let t0 = Date.now();
  for (let i = 0; i < steps; i++) dStep();
  const dc = (cpu() - c0) / steps;
  const dw = (Date.now() - t0) / 1000 / steps;
  c0 = cpu();
  t0 = Date.now();
  for (let i = 0; i < steps; i++) gStep();
  const gc = (cpu() - c0) / steps;
  const gw = (Date.now() - t0) / 1000 / steps;
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ B, genBatch: h.genBatch, chunk: h.discChunk, dStepCpuMs: +(dc * 1000).toFixed(0), dStepWallMs: +(dw * 1000).toFixed(0), rowsPerCpuSecond: +((B + h.genBatch) / dc).toFixed(0), gStepCpuMs: +(gc * 1000).toFixed(0), gStepWallMs: +(gw * 1000).toFixed(0), peakRssMB: +rss.toFixed(0), tensors: tf.memory().numTensors }));
  pair.dispose();
}
