/**
 * Auditing a finished run folder: read its config.json, re-run the same pipeline once with canaries
 * (nothing is written into the run folder except audit.json), score, and bound ε from below.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from '../data/index.js';
import { runTraining, type TrainConfig, type TrainHooks } from '../train/index.js';
import { auditRandom, type AuditReport, makeDiracCanaries, statisticFor, summarizeAudit } from './dpsgd.js';
import type { GuessStrategy } from './stats.js';
import { tidyRead } from '../engine/tidy-read.js';

export interface AuditOptions {
  /** Number of canaries (default 1000). */
  canaries?: number;
  confidence?: number;
  /** 'gradient' (Dirac gradient canaries, white box, default) or 'input' (mislabeled held-out images, black box). */
  canaryType?: 'gradient' | 'input';
  strategy?: GuessStrategy;
  /** Auditor seed (inclusion bits, coordinates); also reused for the re-run's sampling/noise when the run had none. */
  seed?: number;
  dataOverride?: ImageDataset;
  onStep?: TrainHooks['onStep'];
  log?: (msg: string) => void;
}

/**
 * One-run gradient-canary audit of the DP-SGD run described by `config` (as `runTraining` takes it):
 * re-runs training once with m Dirac canaries and returns the report.
 */
export async function auditTraining(config: TrainConfig, opts: AuditOptions = {}): Promise<AuditReport & { trainSeconds: number; steps: number; sampleRate: number; noiseMultiplier: number }> {
  if ((opts.canaryType ?? 'gradient') === 'input') return auditTrainingInput(config, opts);
  const t0 = Date.now();
  const m = opts.canaries ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  const rng = auditRandom(opts.seed);
  // the sampling rate is needed before training starts: q = batch / n (as runTraining computes it)
  // load once and hand it to the run (avoids a second load inside runTraining)
  const ds = opts.dataOverride ?? (await loadDataset(config));
  const q = Math.min(1, (config.batch ?? 240) / ds.train.count);
  if (config.noise === undefined) throw new Error('audit: the config must state the noise multiplier (noise); run folders record it');
  const statistic = statisticFor(config.noise);
  const canaries = makeDiracCanaries(m, q, rng, statistic);
  const cfg: TrainConfig = { ...config, out: undefined, outDir: undefined, resume: false, report: false, evaluate: false };
  const res = await runTraining(cfg, { dataOverride: ds, gradientCanaries: canaries.hook, onStep: opts.onStep, log: opts.log });
  if (Math.abs(res.sampleRate - q) > 1e-12) throw new Error(`audit: the run's sampling rate ${res.sampleRate} differs from the canaries' ${q}`);
  const claimed = res.nonPrivate || res.epsilon === null || !Number.isFinite(res.epsilon) ? null : res.epsilon;
  const report = summarizeAudit(canaries.scores(), canaries.included, {
    claimedEpsilon: claimed,
    delta: res.delta,
    confidence,
    attack: `one-run gradient canaries (Dirac, white box, ${statistic} score)`,
    strategy: opts.strategy,
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  return { ...report, trainSeconds: res.seconds, steps: res.steps, sampleRate: res.sampleRate, noiseMultiplier: res.noiseMultiplier };
}

/**
 * Black-box input-space canaries: m held-out test images with a random *wrong* label (the most
 * memorable kind of example), each added to the training set with probability ½. After the single
 * training run the adversary sees only the final model; a canary's score is minus its loss under
 * the wrong label (members are fit, non-members are not).
 */
export async function auditTrainingInput(config: TrainConfig, opts: AuditOptions = {}): Promise<AuditReport & { trainSeconds: number; steps: number; sampleRate: number; noiseMultiplier: number }> {
  const t0 = Date.now();
  const m = opts.canaries ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  const rng = auditRandom(opts.seed);
  const ds = opts.dataOverride ?? (await loadDataset(config));
  const per = ds.height * ds.width * ds.channels;
  if (ds.test.count < m) throw new RangeError(`input canaries come from the test split, which has only ${ds.test.count} images (< m = ${m})`);
  // m distinct test images (partial Fisher–Yates), each with a uniformly random wrong label
  const order = Int32Array.from({ length: ds.test.count }, (_, i) => i);
  for (let j = 0; j < m; j++) {
    const r = j + Math.floor(rng.nextDouble() * (ds.test.count - j));
    [order[j], order[r]] = [order[r]!, order[j]!];
  }
  const canImages = new Uint8Array(m * per);
  const canLabels = new Int32Array(m);
  for (let j = 0; j < m; j++) {
    canImages.set(ds.test.images.subarray(order[j]! * per, (order[j]! + 1) * per), j * per);
    canLabels[j] = (ds.test.labels[order[j]!]! + 1 + Math.floor(rng.nextDouble() * (ds.numClasses - 1))) % ds.numClasses;
  }
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const inIdx = included.flatMap((b, j) => (b ? [j] : []));
  const n = ds.train.count + inIdx.length;
  const images = new Uint8Array(n * per);
  images.set(ds.train.images.subarray(0, ds.train.count * per));
  const labels = new Int32Array(n);
  labels.set(ds.train.labels.subarray(0, ds.train.count));
  inIdx.forEach((j, k) => {
    images.set(canImages.subarray(j * per, (j + 1) * per), (ds.train.count + k) * per);
    labels[ds.train.count + k] = canLabels[j]!;
  });
  // (the re-run does not evaluate, so the canaries' presence in the test split does not matter)
  const withCanaries: ImageDataset = { ...ds, train: { images, labels, count: n }, fingerprint: `${ds.fingerprint}+input-canaries` };
  const cfg: TrainConfig = { ...config, out: undefined, outDir: undefined, resume: false, report: false, evaluate: false };
  const res = await runTraining(cfg, { dataOverride: withCanaries, onStep: opts.onStep, log: opts.log });
  const { imageData } = await import('../train/index.js');
  const tf = await import('@tensorflow/tfjs-core');
  const norm = ds.name === 'mnist' ? { mean: [0.1307], std: [0.3081] } : ds.name === 'fashion-mnist' ? { mean: [0.286], std: [0.353] } : { mean: new Array(ds.channels).fill(0.5), std: new Array(ds.channels).fill(0.5) };
  const data = imageData({ images: canImages, labels: canLabels, count: m }, ds, norm);
  const scores: number[] = [];
  for (let s = 0; s < m; s += 256) {
    const e = Math.min(m, s + 256);
    const l = tidyRead(() => {
      const logits = res.model.forward(data.range(s, e), false) as import('@tensorflow/tfjs-core').Tensor2D;
      const logp = tf.logSoftmax(logits);
      const y = tf.oneHot(tf.tensor1d(canLabels.subarray(s, e), 'int32'), ds.numClasses);
      return tf.sum(tf.mul(logp, tf.cast(y, 'float32')), 1);
    });
    for (const v of l) scores.push(v); // log-likelihood of the wrong label = −loss
  }
  const claimed = res.nonPrivate || res.epsilon === null || !Number.isFinite(res.epsilon) ? null : res.epsilon;
  const report = summarizeAudit(scores, included, { claimedEpsilon: claimed, delta: res.delta, confidence, attack: 'one-run input canaries (mislabeled held-out images, loss score, black box)', strategy: opts.strategy, seconds: 0 });
  report.seconds = (Date.now() - t0) / 1000;
  return { ...report, trainSeconds: res.seconds, steps: res.steps, sampleRate: res.sampleRate, noiseMultiplier: res.noiseMultiplier };
}

async function loadDataset(config: TrainConfig): Promise<ImageDataset> {
  const d = await import('../data/index.js');
  const anyD = d as unknown as { loadDataset?: (s: unknown) => ImageDataset; resolveDataFlag?: (a: string, b?: string) => unknown };
  const name = config.data ?? 'mnist';
  if (anyD.loadDataset && anyD.resolveDataFlag) return anyD.loadDataset(anyD.resolveDataFlag(name, config.dataPath));
  return d.loadMnist();
}

/**
 * Reads DIR/config.json of a run folder, audits it, writes DIR/audit.json. `dplens train` folders
 * get the DP-SGD audit (gradient or input canaries); `dplens synth` folders (DataLens, G-PATE)
 * the generator audit with input canaries.
 */
export async function auditRunFolder(dir: string, opts: AuditOptions = {}): Promise<AuditReport> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir} is not a run folder (no config.json)`);
  const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  let report: AuditReport;
  if (doc.kind === 'train' && doc.config) {
    // Re-run with the σ the run actually used (it may have been calibrated from a target ε).
    const cfg: TrainConfig = { ...(doc.config as TrainConfig) };
    const derived = doc.derived as { noiseMultiplier?: number } | undefined;
    if (derived?.noiseMultiplier !== undefined) {
      cfg.noise = derived.noiseMultiplier;
      delete cfg.targetEpsilon;
      delete cfg.epsilon;
    }
    report = await auditTraining(cfg, opts);
  } else if (doc.command === 'synth') {
    const { auditSynthesis } = await import('./synth-audit.js');
    const cfg = {
      method: doc.method as 'datalens' | 'gpate',
      data: String(doc.data),
      epsilon: Number(doc.epsilon),
      delta: Number(doc.delta),
      out: '',
      samples: typeof doc.samples === 'number' ? doc.samples : undefined,
      preset: typeof doc.preset === 'string' ? doc.preset : undefined,
      hyper: (doc.hyper as Record<string, unknown> | undefined) ?? undefined,
      maxSteps: typeof doc.maxSteps === 'number' ? doc.maxSteps : undefined,
      maxMinutes: typeof doc.maxMinutes === 'number' ? doc.maxMinutes : undefined,
    };
    opts.log?.(`generator run (${cfg.method}): auditing with input canaries and distance to closest synthetic record`);
    report = await auditSynthesis(cfg as Parameters<typeof auditSynthesis>[0], { canaries: opts.canaries, confidence: opts.confidence, strategy: opts.strategy, seed: opts.seed });
  } else {
    throw new Error(`${path}: not a dplens train or synth run folder`);
  }
  writeFileSync(join(dir, 'audit.json'), JSON.stringify(report, null, 1) + '\n');
  return report;
}
