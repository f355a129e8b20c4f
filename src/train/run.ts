/**
 * Config-driven DP-SGD runner used by `dplens train`, the demo and the audit.
 *
 * Run folder (when `out` is set): config.json (resolved config), ledger.jsonl (privacy ledger,
 * hash-chained, written before each block of steps runs), metrics.jsonl (one JSON line per
 * logged step: {type:'step', step, epoch, loss, accuracy, epsilon, lr, batchSize} and per
 * evaluation: {type:'eval', step, epoch, testAccuracy, testLoss, epsilon}), model.json +
 * weights.bin (see nn/spec.ts; `loadModel(dir)` reads them), result.json, report.html (via
 * src/report when available).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type AccountantKind, calibrateNoiseMultiplier, PrivacyLedger, type RandomSource, secureRandom, seededRandom } from '../privacy/index.js';
import { buildModel, type LayerSpec, loadModel, type ModelPreset, modelPresets, presetSpec, saveModel, setInitSeed, type Sequential } from '../nn/index.js';
import type { ImageDataset, TabularDataset } from '../data/index.js';
import { ensureEngine } from './backend.js';
import { Adam, AdamW, type LrSchedule, type Optimizer, schedules, SGD } from './optim.js';
import { GaussianPrivatizer, type Privatizer, TopAggPrivatizer } from './privatizer.js';
import { type GradientCanaries, imageData, PrivateTrainer, type StepInfo, tabularData } from './trainer.js';

export interface TrainConfig {
  /** 'mnist' | 'fashion-mnist' | 'pneumonia' | a path (see src/data); ignored with hooks.dataOverride. */
  data?: string;
  dataPath?: string;
  /** CSV tables: the label column (default: label/class/target/y, else the last column). */
  labelColumn?: string;
  /** A preset name ('cnn' = reference CNN, 'cnn-tanh', 'cnn-tanh-gn', 'mlp'; see modelPresets) or a layer spec list. */
  model?: ModelPreset | LayerSpec[];
  /** Epochs (fractions allowed); steps = round(epochs·n/batch). Default 1. */
  epochs?: number;
  /** Expected logical batch size (Poisson rate batch/n). Default 240. */
  batch?: number;
  /** σ; omit with targetEpsilon to calibrate. 0 = explicitly non-private. */
  noise?: number;
  /** Calibrate σ to reach this ε after `epochs` (also the ε cap). Alias: epsilon. */
  targetEpsilon?: number;
  epsilon?: number;
  /** Clip bound C (default 1.5). */
  clip?: number;
  lr?: number;
  delta?: number;
  privatizer?: 'gaussian' | 'topagg';
  /** TopAgg-SGD parameters (k default 1% of parameters, per-coordinate clip default 0.01). */
  topagg?: { k?: number; clip?: number; threshold?: { sigma1: number; beta: number } };
  accountant?: AccountantKind;
  /** Seed for sampling/noise (non-secure, recorded in the ledger) and init; omit for secure randomness. */
  seed?: number;
  optimizer?: 'sgd' | 'adam' | 'adamw';
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  schedule?: 'constant' | 'cosine';
  ema?: number;
  clipping?: 'flat' | 'per-layer';
  sampling?: 'poisson' | 'shuffle';
  maxPhysicalBatch?: number;
  /** Run folder. Alias: out. */
  outDir?: string;
  out?: string;
  /** Continue the run in outDir (weights, step count and ledger). */
  resume?: boolean;
  /** Wall-clock limit for training, minutes (the demo uses it). */
  maxMinutes?: number;
  /** Steps between metrics.jsonl lines (default: ~50 per epoch). */
  logEvery?: number;
  /** Command line, stored in config.json. */
  command?: string[];
  /** Write report.html at the end (default true when a run folder is written). */
  report?: boolean;
  /** Evaluate on the test split at the end (default true). */
  evaluate?: boolean;
  /** Also evaluate every this many epochs (metrics.jsonl 'eval' lines; default 1 when epochs >= 2, else off; 0 = off). */
  evalEvery?: number;
  backend?: string;
}

export interface TrainHooks {
  /** Train on this dataset instead of loading `config.data` (e.g. with inserted canaries). */
  dataOverride?: ImageDataset;
  /** Called after every step (info.epsilon = ε recorded so far). */
  onStep?: (info: StepInfo) => void;
  /** Gradient-space canaries for auditing (see GradientCanaries in trainer.ts). */
  gradientCanaries?: GradientCanaries;
  /** Alias of gradientCanaries (the name used in the team briefing). */
  canaries?: GradientCanaries;
  /** Log lines (default: none). */
  log?: (msg: string) => void;
}

export interface TrainResult {
  epsilon: number | null;
  /** true when σ = 0 or shuffled batches: ε = ∞. */
  nonPrivate: boolean;
  delta: number;
  noiseMultiplier: number;
  sampleRate: number;
  /** Clip bound and expected batch size actually used (from the stored config on resume). */
  clip: number;
  batch: number;
  steps: number;
  epochs: number;
  testAccuracy: number | null;
  testLoss: number | null;
  trainLoss: number;
  trainAccuracy: number;
  /** Training wall time (s), excluding data loading and evaluation. */
  seconds: number;
  samplesPerSecond: number;
  stoppedBy: string;
  accountant: AccountantKind;
  privatizer: string;
  randomness: 'secure' | 'seeded';
  runDir?: string;
  reportPath?: string;
  model: Sequential;
  peakRssMB: number;
}

function normalisation(ds: ImageDataset): { mean: number[]; std: number[] } {
  if (ds.name === 'mnist') return { mean: [0.1307], std: [0.3081] };
  if (ds.name === 'fashion-mnist') return { mean: [0.286], std: [0.353] };
  // Fixed, data-independent default (computing statistics of the private set would leak).
  return { mean: new Array(ds.channels).fill(0.5), std: new Array(ds.channels).fill(0.5) };
}

async function loadData(cfg: TrainConfig): Promise<ImageDataset | TabularDataset> {
  const d = await import('../data/index.js');
  const spec = d.resolveDataFlag(cfg.data ?? 'mnist', cfg.dataPath);
  return d.loadAnyDataset(cfg.labelColumn !== undefined ? { ...spec, labelColumn: cfg.labelColumn } : spec);
}

/** Trains a model with DP-SGD according to `config`; see TrainConfig and the run-folder layout above. */
export async function runTraining(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  await ensureEngine({ backend: config.backend });
  const log = hooks.log ?? (() => {});
  const outDir = config.outDir ?? config.out;
  const cfg: TrainConfig = { ...config };
  if (cfg.resume) {
    if (!outDir) throw new RangeError('resume needs a run folder (out)');
    const prev = JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8')) as { config: TrainConfig };
    for (const [k, v] of Object.entries(prev.config)) if ((cfg as Record<string, unknown>)[k] === undefined) (cfg as Record<string, unknown>)[k] = v;
  }
  const ds = hooks.dataOverride ?? (await loadData(cfg));
  const n = ds.train.count;
  const batch = cfg.batch ?? 240;
  const epochs = cfg.epochs ?? 1;
  const delta = cfg.delta ?? 1e-5;
  const clip = cfg.clip ?? 1.5;
  const lr = cfg.lr ?? 0.25;
  const accountant = cfg.accountant ?? 'rdp';
  const targetEps = cfg.targetEpsilon ?? cfg.epsilon;
  if (!(Number.isInteger(batch) && batch > 0 && batch <= n)) throw new RangeError(`batch must be an integer in [1, ${n}], got ${batch}`);
  if (!(epochs > 0 && Number.isFinite(epochs))) throw new RangeError(`epochs must be > 0, got ${epochs}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (delta >= 1 / n) log(`warning: delta ${delta} >= 1/n = ${(1 / n).toExponential(2)}: this allows leaking whole records`);
  if (targetEps !== undefined && !(targetEps > 0 && Number.isFinite(targetEps))) throw new RangeError(`target epsilon must be a positive finite number, got ${targetEps}`);
  const q = batch / n;
  const steps = Math.max(1, Math.round(epochs / q));
  let sigma = cfg.noise;
  if (sigma === undefined) {
    if (targetEps === undefined) throw new RangeError('give a noise multiplier (noise) or a target epsilon');
    sigma = calibrateNoiseMultiplier({ targetEpsilon: targetEps, delta, sampleRate: q, steps, accountant });
    log(`calibrated noise multiplier σ = ${sigma.toFixed(4)} for ε = ${targetEps} at δ = ${delta} over ${steps} steps (q = ${q.toPrecision(4)}, ${accountant})`);
  }
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new RangeError(`noise multiplier must be >= 0, got ${sigma}`);
  cfg.noise = sigma;

  setInitSeed(cfg.seed ?? Math.floor(Math.random() * 2 ** 31));
  // A CSV table trains an MLP on its encoded features (standardised numerics, one-hot categoricals).
  const tabular = ds.kind === 'tabular';
  if (cfg.labelColumn !== undefined && !tabular) throw new RangeError(`label column '${cfg.labelColumn}' given, but ${ds.source} is an image dataset (the label column applies to CSV tables)`);
  const inputShape = tabular ? [ds.numFeatures] : [ds.height, ds.width, ds.channels];
  const modelName = cfg.model ?? (tabular ? 'mlp' : 'cnn');
  if (tabular && modelName !== 'mlp') throw new RangeError(`${ds.source} is a table (CSV): use model mlp (the CNNs need images), got ${JSON.stringify(modelName)}`);
  if (tabular) log(`note: the CSV encoding (column means/stds, category lists, class names) is computed from the training split and is not covered by ε`);
  if (!Array.isArray(modelName) && !Object.hasOwn(modelPresets, modelName)) throw new RangeError(`model must be one of ${Object.keys(modelPresets).join(', ')} or a list of layer specs, got ${JSON.stringify(cfg.model)}`);
  const spec = Array.isArray(modelName) ? modelName : presetSpec(modelName, ds.numClasses);
  let model: Sequential;
  let startStep = 0;
  let resumeState: TrainState | undefined;
  if (cfg.resume && existsSync(join(outDir!, 'model.json'))) {
    const loaded = loadModel(outDir!);
    model = loaded.model;
    startStep = Number(loaded.meta.steps ?? 0);
    resumeState = readTrainState(outDir!);
    // model.json holds the released (EMA-averaged) weights; training continues from the live ones.
    if (resumeState?.tensors.live) model.parameters().forEach((p, i) => p.value.assign(resumeState!.tensors.live![i]!));
    log(`resuming ${outDir} at step ${startStep}${resumeState ? ` (optimizer state${resumeState.tensors.ema ? ' and EMA' : ''} restored)` : ' (no optimizer state saved: momentum restarts)'}`);
  } else model = buildModel(spec, inputShape);
  // A resumed seeded run must not replay the noise stream of the steps already taken.
  const rng: RandomSource = cfg.seed !== undefined ? seededRandom(startStep ? (cfg.seed + Math.imul(startStep, 0x9e3779b1)) >>> 0 : cfg.seed) : secureRandom();
  const params = model.parameters();
  const paramCount = params.reduce((s, p) => s + p.value.size, 0);

  let privatizer: Privatizer;
  if ((cfg.privatizer ?? 'gaussian') === 'topagg') {
    privatizer = new TopAggPrivatizer({ k: cfg.topagg?.k ?? Math.max(1, Math.round(paramCount * 0.01)), clip: cfg.topagg?.clip ?? 0.01, noiseMultiplier: sigma, threshold: cfg.topagg?.threshold });
  } else if (cfg.privatizer === undefined || cfg.privatizer === 'gaussian') {
    privatizer = new GaussianPrivatizer(sigma, { maxGradNorm: clip, mode: cfg.clipping ?? 'flat' });
  } else throw new RangeError(`privatizer must be gaussian or topagg, got ${String(cfg.privatizer)}`);

  const schedule: LrSchedule = cfg.schedule === 'cosine' ? schedules.cosine() : schedules.constant();
  const opt: Optimizer =
    (cfg.optimizer ?? 'sgd') === 'sgd'
      ? new SGD(lr, { momentum: cfg.momentum ?? 0, nesterov: cfg.nesterov, weightDecay: cfg.weightDecay }, schedule)
      : cfg.optimizer === 'adam'
        ? new Adam(lr, { weightDecay: cfg.weightDecay }, schedule)
        : cfg.optimizer === 'adamw'
          ? new AdamW(lr, { weightDecay: cfg.weightDecay }, schedule)
          : (() => {
              throw new RangeError(`optimizer must be sgd, adam or adamw, got ${String(cfg.optimizer)}`);
            })();

  let ledger: PrivacyLedger | undefined;
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    const ledgerPath = join(outDir, 'ledger.jsonl');
    if (!cfg.resume && existsSync(ledgerPath)) throw new RangeError(`${outDir} already holds a run (ledger.jsonl); use resume or another folder`);
    ledger = PrivacyLedger.open(ledgerPath, { accountant, randomness: rng, meta: { method: 'dpsgd', dataset: ds.name } });
    const { command, ...rest } = cfg;
    writeFileSync(
      join(outDir, 'config.json'),
      JSON.stringify({ kind: 'train', command, createdAt: new Date().toISOString(), config: { ...rest, model: modelName, data: cfg.data ?? ds.name }, dataset: { name: ds.name, source: ds.source, fingerprint: ds.fingerprint, train: n, test: ds.test.count, shape: inputShape, classes: ds.numClasses }, derived: { sampleRate: q, steps, noiseMultiplier: sigma, paramCount, ...(ds.kind === 'tabular' ? { labelColumn: ds.labelColumn, columns: ds.columns, encodingNote: 'CSV encoding statistics come from the training split and are not covered by epsilon' } : { normalisation: normalisation(ds) }) } }, null, 1) + '\n',
    );
  }

  const norm = ds.kind === 'image' ? normalisation(ds) : undefined;
  const asTrainData = (split: 'train' | 'test') => (ds.kind === 'image' ? imageData(ds[split], ds, norm!) : tabularData(ds[split], ds.numFeatures));
  const trainer = new PrivateTrainer({
    model,
    optimizer: opt,
    data: asTrainData('train'),
    noiseMultiplier: sigma,
    maxGradNorm: clip,
    delta,
    batchSize: batch,
    maxPhysicalBatch: cfg.maxPhysicalBatch,
    sampling: cfg.sampling,
    privatizer,
    accountant,
    ledger,
    datasetFingerprint: ds.fingerprint,
    rng,
    maxEpsilon: targetEps !== undefined ? targetEps * (1 + 1e-9) : undefined,
    emaDecay: cfg.ema,
    gradientCanaries: hooks.gradientCanaries ?? hooks.canaries,
  });
  if (resumeState) {
    const { live: _live, ema: emaShadow, ...slots } = resumeState.tensors;
    if (resumeState.optimizer === opt.name && opt.setState) opt.setState({ name: resumeState.optimizer, t: resumeState.t, slots }, params);
    else log(`optimizer changed (${resumeState.optimizer} → ${opt.name}): its state restarts`);
    if (emaShadow && trainer.ema) trainer.ema.setShadow(emaShadow);
    tf.dispose(Object.values(resumeState.tensors).flat());
  }
  const logEvery = cfg.logEvery ?? Math.max(1, Math.round(steps / Math.max(1, epochs) / 50));
  const metricsPath = outDir ? join(outDir, 'metrics.jsonl') : undefined;
  const metrics: string[] = [];
  const flush = () => {
    if (metricsPath && metrics.length) appendFileSync(metricsPath, metrics.splice(0).join(''));
  };
  let peakRss = process.memoryUsage().rss;
  const evalEvery = cfg.evalEvery ?? (epochs >= 2 ? 1 : 0);
  const evalSteps = evalEvery > 0 && cfg.evaluate !== false && ds.test.count > 0 ? Math.max(1, Math.round(evalEvery / q)) : 0;
  const testData = asTrainData('test');
  let evalSeconds = 0;
  const fit = trainer.fit({
    steps,
    startStep,
    maxSeconds: cfg.maxMinutes !== undefined ? cfg.maxMinutes * 60 : undefined,
    onStep: (info) => {
      if (info.step % logEvery === 0 || info.step === steps) {
        metrics.push(JSON.stringify({ type: 'step', step: info.step, epoch: +info.epoch.toFixed(4), loss: info.loss, accuracy: info.accuracy, epsilon: Number.isFinite(info.epsilon) ? info.epsilon : null, lr: info.lr, batchSize: info.batchSize }) + '\n');
        if (metrics.length >= 20) flush();
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }
      if (evalSteps && info.step % evalSteps === 0 && info.step < steps) {
        const t0 = performance.now();
        const ev = trainer.evaluate(testData);
        metrics.push(JSON.stringify({ type: 'eval', step: info.step, epoch: +info.epoch.toFixed(4), testAccuracy: ev.testAccuracy, testLoss: ev.testLoss, epsilon: Number.isFinite(info.epsilon) ? info.epsilon : null }) + '\n');
        flush();
        evalSeconds += (performance.now() - t0) / 1000;
      }
      hooks.onStep?.(info);
    },
  });
  flush();
  const epsilon = trainer.epsilon();
  let testAccuracy: number | null = null;
  let testLoss: number | null = null;
  if (cfg.evaluate !== false && ds.test.count > 0) {
    const ev = trainer.evaluate(testData);
    testAccuracy = ev.testAccuracy;
    testLoss = ev.testLoss;
    if (metricsPath) appendFileSync(metricsPath, JSON.stringify({ type: 'eval', step: fit.steps, epoch: fit.epochs, testAccuracy, testLoss, epsilon: Number.isFinite(epsilon) ? epsilon : null }) + '\n');
  }
  const result: TrainResult = {
    epsilon: Number.isFinite(epsilon) ? epsilon : null,
    nonPrivate: !Number.isFinite(epsilon),
    delta,
    noiseMultiplier: sigma,
    sampleRate: q,
    clip,
    batch,
    steps: fit.steps,
    epochs: fit.epochs,
    testAccuracy,
    testLoss,
    trainLoss: fit.loss,
    trainAccuracy: fit.accuracy,
    // training wall time only: periodic evaluations are excluded
    seconds: fit.seconds - evalSeconds,
    samplesPerSecond: fit.examplesProcessed / (fit.seconds - evalSeconds),
    stoppedBy: fit.stoppedBy,
    accountant,
    privatizer: privatizer.name,
    randomness: rng.kind,
    model,
    peakRssMB: Math.round(Math.max(peakRss, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024) / 2 ** 20),
  };
  if (outDir) {
    result.runDir = resolve(outDir);
    // The released model is what was evaluated (the EMA weights when EMA is on); the live weights,
    // optimizer slots and EMA go to train-state.* so that --resume continues exactly.
    const liveCopy = trainer.ema ? params.map((p) => p.value.clone()) : undefined;
    const optState = opt.getState?.();
    writeTrainState(outDir, {
      optimizer: opt.name,
      t: optState?.t ?? 0,
      tensors: { ...(optState?.slots ?? {}), ...(liveCopy ? { live: liveCopy, ema: trainer.ema!.getShadow() } : {}) },
    });
    trainer.ema?.swap();
    try {
      saveModel(outDir, model, inputShape, { steps: fit.steps, dataset: ds.name, ...(ds.kind === 'tabular' ? { labelColumn: ds.labelColumn, columns: ds.columns } : { normalisation: norm }), classNames: ds.classNames, ...(trainer.ema ? { ema: cfg.ema } : {}) });
    } finally {
      trainer.ema?.swap();
      tf.dispose(liveCopy ?? []);
    }
    const { model: _m, ...plain } = result;
    writeFileSync(join(outDir, 'result.json'), JSON.stringify(plain, null, 1) + '\n');
    if (cfg.report !== false) {
      try {
        const rep = (await import('../report/index.js')) as { writeReport?: (dir: string) => Promise<string> };
        if (typeof rep.writeReport === 'function') result.reportPath = await rep.writeReport(outDir);
      } catch (e) {
        log(`report not written: ${(e as Error).message}`);
      }
    }
  }
  tf.dispose([]);
  return result;
}

/** Optimizer/EMA state of a run folder (train-state.json + train-state.bin, little-endian float32). */
interface TrainState {
  optimizer: string;
  t: number;
  /** Slot name → tensors aligned with the model parameters ('live' and 'ema' when EMA is on). */
  tensors: Record<string, tf.Tensor[]>;
}

function writeTrainState(dir: string, st: TrainState): void {
  const entries: { slot: string; index: number; shape: number[]; offset: number; length: number }[] = [];
  const arrays: Float32Array[] = [];
  let off = 0;
  for (const [slot, ts] of Object.entries(st.tensors)) {
    ts.forEach((t, index) => {
      const a = t.dataSync() as Float32Array;
      arrays.push(a);
      entries.push({ slot, index, shape: t.shape, offset: off, length: a.length });
      off += a.length;
    });
  }
  const buf = new Float32Array(off);
  let o = 0;
  for (const a of arrays) {
    buf.set(a, o);
    o += a.length;
  }
  writeFileSync(join(dir, 'train-state.bin'), new Uint8Array(buf.buffer));
  writeFileSync(join(dir, 'train-state.json'), JSON.stringify({ format: 'dplens-train-state/1', optimizer: st.optimizer, t: st.t, tensors: entries, data: 'train-state.bin' }) + '\n');
}

function readTrainState(dir: string): TrainState | undefined {
  const path = join(dir, 'train-state.json');
  if (!existsSync(path)) return undefined;
  const j = JSON.parse(readFileSync(path, 'utf8'));
  if (j.format !== 'dplens-train-state/1') throw new RangeError(`${path}: unknown format ${JSON.stringify(j.format)}`);
  const raw = readFileSync(join(dir, 'train-state.bin'));
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const tensors: Record<string, tf.Tensor[]> = {};
  for (const e of j.tensors as { slot: string; index: number; shape: number[]; offset: number; length: number }[]) {
    if (e.offset + e.length > all.length) throw new RangeError(`${dir}/train-state.bin is truncated`);
    (tensors[e.slot] ??= [])[e.index] = tf.tensor(all.slice(e.offset, e.offset + e.length), e.shape);
  }
  return { optimizer: String(j.optimizer), t: Number(j.t), tensors };
}
