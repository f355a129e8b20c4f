/**
 * Diagnostic probe of DataLens with trained (neural) teachers — issue 15 item 6. NOT a DP run:
 * it reads the un-noised teacher gradients (inside the privacy boundary) to measure, per step,
 * how well the noised TopAgg aggregate agrees with the non-private mean teacher gradient and with
 * the "ideal" direction (real class mean − x), and at the end how class-specific the samples are.
 * Nothing here is released; it exists to find why the faithful path stays at chance.
 *
 * Scale model: N teachers on N·m records (default N = 400, m = 15 — the same shard size as
 * 4,000 teachers on 60,000 MNIST records) with σ and the threshold scaled by N/4000, so the
 * per-coordinate vote-sum signal-to-noise matches the full-size run.
 *
 * Env PROBE: JSON overrides, e.g.
 *   PROBE='{"N":400,"steps":86,"teacher":{"sharedInit":true}}' node --import tsx bench/datalens-probe.ts
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { loadFashionMnist, loadMnist } from '../src/data/index.js';
import { seededRandom } from '../src/privacy/index.js';
import { assignShards, PUBLIC_SHARD_SEED } from '../src/generate/shards.js';
import { TeacherEnsemble, type TeacherConfig } from '../src/generate/teachers.js';
import { ConditionalGenerator, type GeneratorConfig } from '../src/generate/generator.js';
import { noisyAggregate, voteSums, type TopAggParams } from '../src/generate/topagg.js';

interface ProbeConfig {
  data: 'mnist' | 'fashion-mnist';
  N: number;
  /** σ of the full-size (4,000-teacher) run; the probe uses σ·N/4000. */
  sigmaFull: number;
  steps: number;
  queries: number;
  dStep: number;
  pretrain: number;
  genLr: number;
  genBeta1: number;
  seed: number;
  teacher: Omit<TeacherConfig, 'numTeachers' | 'batchSize'>;
  topagg: Omit<TopAggParams, 'sigma'>;
  gen: Omit<GeneratorConfig, 'numClasses' | 'height' | 'width' | 'bnGroup'>;
  every: number;
}

const base: ProbeConfig = {
  data: 'mnist',
  N: 400,
  sigmaFull: 5000,
  steps: 86,
  queries: 15,
  dStep: 2,
  pretrain: 10,
  genLr: 1e-3,
  genBeta1: 0.5,
  seed: 1,
  teacher: { hidden: 16, perClassHead: true, classLinear: true, lr: 1e-3, beta1: 0.5, initStd: 0.02 },
  topagg: { k: 200, clip: 1e-5, stochastic: true, beta: 0.7, alpha: 1e-3 },
  gen: { arch: 'mlp', zDim: 50, fc: 1024, channels: 128, hidden: [256, 512] },
  every: 10,
};
const over = JSON.parse(process.env.PROBE ?? '{}') as Partial<ProbeConfig>;
const cfg: ProbeConfig = { ...base, ...over, teacher: { ...base.teacher, ...over.teacher }, topagg: { ...base.topagg, ...over.topagg }, gen: { ...base.gen, ...over.gen } };

function cos(a: ArrayLike<number>, b: ArrayLike<number>, off = 0, len = a.length): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let t = off; t < off + len; t++) {
    ab += a[t]! * b[t]!;
    aa += a[t]! * a[t]!;
    bb += b[t]! * b[t]!;
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

/** Mean per-query cosine over B rows of d. */
function rowCos(a: ArrayLike<number>, b: ArrayLike<number>, B: number, d: number): number {
  let s = 0;
  for (let j = 0; j < B; j++) s += cos(a, b, j * d, d);
  return s / B;
}

async function main(): Promise<void> {
  await ensureEngine();
  const full = cfg.data === 'fashion-mnist' ? loadFashionMnist() : loadMnist();
  const d = full.height * full.width;
  const C = full.numClasses;
  const n = cfg.N * 15;
  const data = { ...full, train: { images: full.train.images.subarray(0, n * d), labels: full.train.labels.subarray(0, n), count: n } };
  const rng = seededRandom(cfg.seed);
  const shards = assignShards(n, cfg.N, PUBLIC_SHARD_SEED);
  const teachers = new TeacherEnsemble({ ...cfg.teacher, numTeachers: cfg.N, batchSize: 30 }, data, shards, rng.nextUint32());
  const B = cfg.queries;
  const TB = teachers.batchSize;
  const gen = new ConditionalGenerator({ ...cfg.gen, numClasses: C, height: full.height, width: full.width, bnGroup: B }, rng.nextUint32());
  const opt = tf.train.adam(cfg.genLr, cfg.genBeta1, 0.999, 1e-8);
  const sigma = (cfg.sigmaFull * cfg.N) / 4000;
  const p: TopAggParams = { ...cfg.topagg, sigma };
  // Real class means (diagnostic only).
  const means = new Float32Array(C * d);
  const cnt = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    const c = data.train.labels[i]!;
    cnt[c]!++;
    for (let t = 0; t < d; t++) means[c * d + t]! += data.train.images[i * d + t]! / 255;
  }
  for (let c = 0; c < C; c++) for (let t = 0; t < d; t++) means[c * d + t]! /= cnt[c]!;
  const globalMean = new Float32Array(d);
  for (let c = 0; c < C; c++) for (let t = 0; t < d; t++) globalMean[t]! += (means[c * d + t]! * cnt[c]!) / n;
  const latent = (m: number) => {
    const u = new Float32Array(m * cfg.gen.zDim);
    rng.uniform(u);
    for (let i = 0; i < u.length; i++) u[i] = 2 * u[i]! - 1;
    return tf.tensor2d(u, [m, cfg.gen.zDim]);
  };
  const acc = { cosAggMean: 0, cosAggIdeal: 0, cosMeanIdeal: 0, cosVotesIdeal: 0, cosVotesClass: 0, cosMeanClass: 0, agreement: 0, nonZero: 0, loss: 0, k: 0 };
  const t0 = Date.now();
  for (let step = 0; step < cfg.steps; step++) {
    // Teachers: fakes G(z_b, Y_i[b]).
    const zT = latent(TB);
    const table = tf.tidy(() => {
      const lab = new Int32Array(C * TB);
      for (let c = 0; c < C; c++) lab.fill(c, c * TB, (c + 1) * TB);
      return gen.apply(tf.tile(zT, [C, 1]) as tf.Tensor2D, tf.oneHot(tf.tensor1d(lab, 'int32'), C) as tf.Tensor2D, C * TB);
    });
    const fakes = teachers.fakeBatch(0, table.dataSync() as Float32Array);
    table.dispose();
    const nD = step === 0 ? cfg.pretrain : cfg.dStep;
    for (let s = 0; s < nD; s++) teachers.trainStep(0, fakes);
    // Queries.
    const z = B === TB ? zT : latent(B);
    const yLab = new Int32Array(B);
    for (let j = 0; j < B; j++) yLab[j] = Math.min(C - 1, Math.floor(rng.nextDouble() * C));
    const y = tf.oneHot(tf.tensor1d(yLab, 'int32'), C) as tf.Tensor2D;
    const xT = gen.apply(z, y);
    const x = xT.dataSync() as Float32Array;
    const g = teachers.imageGradients(x, yLab);
    const mean = new Float32Array(B * d);
    for (let i = 0; i < cfg.N; i++) for (let q = 0; q < B * d; q++) mean[q]! += g[i * B * d + q]! / cfg.N;
    const ideal = new Float32Array(B * d);
    for (let j = 0; j < B; j++) for (let t = 0; t < d; t++) ideal[j * d + t] = means[yLab[j]! * d + t]! - x[j * d + t]!;
    // Class-specific part of the ideal direction: class mean − global mean.
    const classDir = new Float32Array(B * d);
    for (let j = 0; j < B; j++) for (let t = 0; t < d; t++) classDir[j * d + t] = means[yLab[j]! * d + t]! - globalMean[t]!;
    const votes = voteSums(g, cfg.N, B, d, p, rng);
    const agg = noisyAggregate(votes, cfg.N, B, d, p, rng);
    let vv = 0;
    for (const v of votes) vv += v * v;
    const stats = {
      cosAggMean: rowCos(agg.direction, mean, B, d),
      cosAggIdeal: rowCos(agg.direction, ideal, B, d),
      cosMeanIdeal: rowCos(mean, ideal, B, d),
      cosVotesIdeal: rowCos(votes, ideal, B, d),
      cosVotesClass: rowCos(votes, classDir, B, d),
      cosMeanClass: rowCos(mean, classDir, B, d),
      agreement: Math.sqrt(vv / B) / (cfg.N * Math.sqrt(p.k)),
      nonZero: agg.nonZeroFraction,
    };
    const target = tf.add(xT, tf.tensor2d(agg.direction, [B, d]));
    const lossT = opt.minimize(() => tf.sum(tf.square(tf.sub(target, gen.apply(z, y)))) as tf.Scalar, true, [...gen.vars.values()]);
    const loss = lossT ? lossT.dataSync()[0]! : NaN;
    lossT?.dispose();
    tf.dispose([target, xT, y, z, zT]);
    for (const [key, v] of Object.entries(stats)) (acc as Record<string, number>)[key]! += v;
    acc.loss += loss;
    acc.k++;
    if ((step + 1) % cfg.every === 0 || step === cfg.steps - 1) {
      const row: Record<string, number> = { step: step + 1 };
      for (const [key, v] of Object.entries(acc)) if (key !== 'k') row[key] = +(v / acc.k).toPrecision(3);
      row.sec = +((Date.now() - t0) / 1000).toFixed(1);
      console.log(JSON.stringify(row));
      for (const key of Object.keys(acc)) (acc as Record<string, number>)[key] = 0;
    }
  }
  // Samples: class-specificity.
  const S = 1000;
  const lab = new Int32Array(S);
  for (let i = 0; i < S; i++) lab[i] = i % C;
  const chunks: Float32Array[] = [];
  for (let s = 0; s < S; s += B * 10) {
    const m = Math.min(B * 10, S - s);
    const t = tf.tidy(() => gen.apply(latent(m), tf.oneHot(tf.tensor1d(lab.subarray(s, s + m), 'int32'), C) as tf.Tensor2D, B));
    chunks.push(t.dataSync() as Float32Array);
    t.dispose();
  }
  const xs = new Float32Array(S * d);
  let o = 0;
  for (const c of chunks) xs.set(c, (o += c.length) - c.length);
  const nearest = (img: Float32Array, off: number, cents: Float32Array) => {
    let best = -1;
    let bd = Infinity;
    for (let c = 0; c < C; c++) {
      let dd = 0;
      for (let t = 0; t < d; t++) dd += (img[off + t]! - cents[c * d + t]!) ** 2;
      if (dd < bd) {
        bd = dd;
        best = c;
      }
    }
    return best;
  };
  let own = 0;
  for (let i = 0; i < S; i++) if (nearest(xs, i * d, means) === lab[i]) own++;
  const synthMeans = new Float32Array(C * d);
  for (let i = 0; i < S; i++) for (let t = 0; t < d; t++) synthMeans[lab[i]! * d + t]! += xs[i * d + t]! / (S / C);
  const T = 2000;
  const test = new Float32Array(T * d);
  for (let i = 0; i < T * d; i++) test[i] = full.test.images[i]! / 255;
  let nc = 0;
  for (let i = 0; i < T; i++) if (nearest(test, i * d, synthMeans) === full.test.labels[i]) nc++;
  let meanPix = 0;
  for (const v of xs) meanPix += v / xs.length;
  console.log(JSON.stringify({ final: true, ownClassNearest: own / S, synthCentroidTestAcc: nc / T, meanPixel: +meanPix.toFixed(3), sec: (Date.now() - t0) / 1000, cfg }));
  if (process.env.PROBE_SAMPLES) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.PROBE_SAMPLES, Buffer.from(xs.buffer));
  }
  teachers.dispose();
  gen.dispose();
}

await main();
