/**
 * The DP-SGD job runner used by `dplens train`, the demo and the audit: resolves a config, trains
 * with the trainer of src/train and writes the run folder (a run folder is a release).
 *
 * Run folder (when `out` is set):
 * - run.json: the run manifest (runs/manifest.ts), written at start and at the end;
 * - config.json: the resolved config (keyed dataset fingerprint only);
 * - ledger.jsonl (+ .tip, .lock while running): the privacy ledger, one entry per block of steps,
 *   written before the steps run; it is the only budget gate;
 * - metrics.jsonl: only what ε covers or what is public: {type:'step', step, epoch, epsilon, lr}
 *   and test-set evaluations {type:'eval', step, epoch, testAccuracy, testLoss, epsilon} (the test
 *   split is the user's public holdout);
 * - private-diagnostics.jsonl: loss/accuracy/size of the private Poisson batches, released
 *   without noise — PRIVATE, never to be published (manifest status 'private');
 * - train-state.json + train-state(.ckpt-S).bin: live weights, optimizer slots and EMA for
 *   --resume, checkpointed every `checkpointEvery` steps / `checkpointSeconds` seconds;
 * - model.json + weights.bin: the released (EMA-averaged when EMA is on) model, at the end;
 * - result.json: the public result (no private batch figures).
 */
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type AccountantKind, calibrateNoiseMultiplier, type Guarantee, type NeighbouringRelation, PrivacyLedger, type RandomSource, secureRandom, seededRandom } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { buildModel, type LayerSpec, loadModel, type ModelPreset, modelPresets, presetSpec, saveModel, setInitSeed, type Sequential } from '../nn/index.js';
import { readCheckpoint, writeCheckpoint } from '../nn/checkpoint.js';
import { type DatasetSpec, loadDataset, publicColumns, resolveDataFlag, type ImageDataset, type TabularDataset } from '../data/index.js';
import { schedules } from '../train/optim.js';
import { checkMethodOptions, getPrivatizer, type MethodOptionValues, privatizers } from '../train/privatizers/index.js';
import { getOptimizer, optimizers } from '../train/optimizers/index.js';
import { type GradientCanaries, imageData, PrivateTrainer, type StepInfo, tabularData } from '../train/trainer.js';
import { checkPruneOptions, MagnitudePruner } from '../train/prune.js';
import { byzantineLoss, corruptDataset, parseCorruption } from '../train/corrupt.js';
import { PtrRobustPrivatizer } from '../train/privatizers/ptr-robust.js';
import { ptrApproxDpEpsilon } from '../privacy/ptr.js';
import { writeFileAtomic } from '../util/files.js';
import { type ManifestArtifact, type ReleasedFact, readManifest, type RunManifest, writeManifest } from './manifest.js';
import { dataReleasedFacts, fileHoldsUncovered, LEDGER_TIMESTAMPS } from './released.js';

export interface TrainConfig {
  /** 'mnist' | 'fashion-mnist' | 'pneumonia' | a path (see src/data); ignored with hooks.dataOverride. */
  data?: string;
  dataPath?: string;
  /** CSV tables: the label column (default: label/class/target/y, else the last column). */
  labelColumn?: string;
  /** Declared (public) class count; without it npz/idx/CSV class counts are derived from the data (see src/data). */
  numClasses?: number;
  /** Declared (public) class names in class-index order (npz, idx, PNG folders, CSV label values). */
  classNames?: string[];
  /** CSV tables: columns to read as categorical (one-hot) whatever their cells look like. */
  categorical?: string[];
  /** A preset name ('cnn' = reference CNN, 'cnn-tanh', 'cnn-tanh-gn', 'mlp'; see modelPresets) or a layer spec list. */
  model?: ModelPreset | LayerSpec[];
  /** Epochs (fractions allowed); steps = round(epochs·n/batch). Default 1. */
  epochs?: number;
  /** Expected logical batch size (Poisson rate batch/n). Default 240. */
  batch?: number;
  /** σ; omit with targetEpsilon to calibrate. 0 = explicitly non-private. */
  noise?: number;
  /** Calibrate σ to reach this ε after `epochs` (also the ledger's budget). Alias: epsilon. */
  targetEpsilon?: number;
  epsilon?: number;
  /** Clip bound C (default 1.5); only for privatizers that use it (gaussian). */
  clip?: number;
  /** Robustness experiment (train/corrupt.ts): e.g. 'labels:0.2', 'features:0.2', 'byzantine:0.1[:target]' (comma-separated). Not a privacy setting. */
  corrupt?: string;
  lr?: number;
  delta?: number;
  /** A name of the privatizer registry (train/privatizers): 'gaussian' (default) | 'topagg'. */
  privatizer?: string;
  /** Options of the chosen privatizer, keyed by their flag name (e.g. { 'topagg-k': 50 }). */
  privatizerOptions?: MethodOptionValues;
  /** Legacy spelling of the TopAgg options (folded into privatizerOptions). */
  topagg?: { k?: number; clip?: number; threshold?: { sigma1: number; beta: number } };
  accountant?: AccountantKind;
  /** Seed for sampling/noise (non-secure, recorded in the ledger) and init; omit for secure randomness. */
  seed?: number;
  /** A name of the optimizer registry (train/optimizers): 'sgd' (default) | 'adam' | 'adamw'. */
  optimizer?: string;
  /** Options of the chosen optimizer, keyed by their flag name (e.g. { momentum: 0.9 }). */
  optimizerOptions?: MethodOptionValues;
  /** Legacy spellings of the SGD options (folded into optimizerOptions). */
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  schedule?: 'constant' | 'cosine';
  ema?: number;
  clipping?: 'flat' | 'per-layer';
  sampling?: 'poisson' | 'shuffle';
  /** Magnitude pruning (train/prune.ts): fraction of each weight tensor set to zero and kept there. */
  prune?: number;
  /** Fraction of the steps after which the prune mask is chosen (0 = from the public init; default 0.5). */
  pruneAt?: number;
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
  /** Save train-state every this many steps (default: time-based only, see checkpointSeconds). */
  checkpointEvery?: number;
  /** Save train-state at least every this many seconds of training (default 60). */
  checkpointSeconds?: number;
  /** Command line, stored in config.json and run.json. */
  command?: string[];
  /** Evaluate on the test split at the end (default true). */
  evaluate?: boolean;
  /** Also evaluate every this many epochs (metrics.jsonl 'eval' lines; default 1 when epochs >= 2, else off; 0 = off). */
  evalEvery?: number;
  backend?: string;
}

export interface TrainHooks {
  /** Train on this dataset instead of loading `config.data` (e.g. with inserted canaries). */
  dataOverride?: ImageDataset | TabularDataset;
  /** Called after every step (info.epsilon = ε recorded so far; info.loss/accuracy/batchSize are PRIVATE diagnostics). */
  onStep?: (info: StepInfo) => void;
  /** Gradient-space canaries for auditing (see GradientCanaries in trainer.ts). */
  gradientCanaries?: GradientCanaries;
  /** Log lines (default: none). */
  log?: (msg: string) => void;
  /**
   * Without a run folder: record every release into this ledger (opened and closed by the caller),
   * e.g. the audit's own ledger for its re-run on the same private data (issue 12 #7).
   */
  ledger?: PrivacyLedger;
}

export interface TrainResult {
  epsilon: number | null;
  /** true when σ = 0 or shuffled batches: ε = ∞. */
  nonPrivate: boolean;
  /** What the run guarantees: {kind:'approxDP', epsilon, delta}, {kind:'metricDP', epsilon, metric} (vmf) or {kind:'none'}. */
  guarantee: Guarantee;
  delta: number;
  noiseMultiplier: number;
  sampleRate: number;
  /** The neighbouring relation the ε is stated for ('add-remove' for Poisson sampling). */
  relation: NeighbouringRelation;
  /** Clip bound and expected batch size actually used (from the stored config on resume). */
  clip: number;
  batch: number;
  steps: number;
  epochs: number;
  testAccuracy: number | null;
  testLoss: number | null;
  /** Training wall time (s), excluding data loading and evaluation (timing: outside the guarantee). */
  seconds: number;
  /** steps × expected batch / seconds (computed from public figures, not the realised batch sizes). */
  samplesPerSecond: number;
  stoppedBy: string;
  accountant: AccountantKind;
  privatizer: string;
  randomness: 'secure' | 'seeded';
  /** Keyed dataset fingerprint (only the data owner can recompute it). */
  datasetFingerprint: string;
  /** Step this attempt started from (0 for a fresh run). */
  resumedFromStep: number;
  /** Bytes one step would send in a communication-limited deployment: expected batch × bytes per example (dense float32 = 4·P). */
  bytesPerStep: number;
  /** With cfg.corrupt: the spec and how many training records were corrupted. */
  corrupt?: { spec: string; labels: number; features: number; byzantine: number };
  /** ptr-robust: the (ε, δ)-PTR comparison bound for the same run, and how many steps passed the test (released: a failed test releases ⊥). */
  ptr?: { epsilonApproxDp: number | null; passed: number; tested: number };
  /** With cfg.prune: requested sparsity, when the mask was fixed (steps done) and the zero fraction reached. */
  prune?: { sparsity: number; at: number; maskStep: number | null; measuredSparsity: number };
  runDir?: string;
  model: Sequential;
  peakRssMB: number;
  /**
   * PRIVATE: loss/accuracy of the last epoch's private Poisson batches, without noise. Never print
   * or write them to a released file (the run folder keeps them in private-diagnostics.jsonl).
   */
  privateDiagnostics: { trainLoss: number; trainAccuracy: number };
}

/** The released (public) part of a TrainResult: what result.json, run.json and `--json` hold. */
export function publicTrainResult(r: TrainResult): Record<string, unknown> {
  const { model: _m, privateDiagnostics: _p, ...plain } = r;
  return plain;
}

/** The input normalisation of an image dataset (fixed per dataset: never statistics of the private data). */
export function datasetNormalisation(ds: ImageDataset): { mean: number[]; std: number[] } {
  if (ds.name === 'mnist') return { mean: [0.1307], std: [0.3081] };
  if (ds.name === 'fashion-mnist') return { mean: [0.286], std: [0.353] };
  // Fixed, data-independent default (computing statistics of the private set would leak).
  return { mean: new Array(ds.channels).fill(0.5), std: new Array(ds.channels).fill(0.5) };
}

/** The data spec of a train config: --data/--data-path plus the declared (public) class and column facts. */
export function trainDataSpec(cfg: TrainConfig): DatasetSpec {
  const spec: DatasetSpec = resolveDataFlag(cfg.data ?? 'mnist', cfg.dataPath);
  if (cfg.labelColumn !== undefined) spec.labelColumn = cfg.labelColumn;
  if (cfg.numClasses !== undefined) spec.numClasses = cfg.numClasses;
  if (cfg.classNames !== undefined) spec.classNames = cfg.classNames;
  if (cfg.categorical?.length) spec.columns = Object.fromEntries(cfg.categorical.map((c) => [c, 'categorical' as const]));
  return spec;
}

function loadData(cfg: TrainConfig): ImageDataset | TabularDataset {
  return loadDataset({ ...trainDataSpec(cfg), expect: 'any' });
}

/** One-line error for a file-system failure on `path` (no raw ENOENT/EEXIST stack). */
function fsError(path: string, what: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  const reason = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code === 'EEXIST' ? 'already exists' : err.code === 'ENOTDIR' ? 'a part of the path is not a folder' : (err.message ?? String(e)).split('\n')[0];
  return new Error(`${path}: ${what}: ${reason}`);
}

/**
 * Makes sure `dir` exists and is writable before any training starts, creating the missing
 * levels one at a time (Node's recursive mkdir spins forever under /proc). Throws one line naming
 * the folder and the flag.
 */
export function prepareRunFolder(dir: string, flag = '--out'): void {
  if (dir.trim() === '') throw new RangeError(`${flag} must name a folder, got "${dir}"`);
  const abs = resolve(dir);
  const missing: string[] = [];
  let p = abs;
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  try {
    if (!statSync(p).isDirectory()) throw new RangeError(`${flag} ${dir}: ${p} is not a folder`);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw new RangeError(`${flag} ${dir}: ${fsError(p, 'cannot read', e).message}`);
  }
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RangeError(`${flag} ${dir}: cannot create ${m} (${fsError(m, 'mkdir', e).message.split(': ').pop()})`);
    }
  }
  const probe = join(abs, `.dplens-write-probe-${process.pid}`);
  try {
    accessSync(abs, constants.W_OK);
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
  } catch (e) {
    throw new RangeError(`${flag} ${dir}: the folder is not writable (${fsError(abs, 'write', e).message.split(': ').pop()})`);
  }
}

function readJsonFile<T>(path: string, what: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fsError(path, `cannot read ${what}`, e);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: ${what} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

interface StoredConfig {
  config: TrainConfig;
  dataset?: { name?: string; fingerprint?: string };
}

/** Folds the legacy option spellings (topagg: {k, clip}, momentum, nesterov) into the option records. */
function normaliseOptions(cfg: TrainConfig): void {
  const p: MethodOptionValues = { ...(cfg.privatizerOptions ?? {}) };
  if (cfg.topagg) {
    if (cfg.topagg.k !== undefined) p['topagg-k'] ??= cfg.topagg.k;
    if (cfg.topagg.clip !== undefined) p['topagg-clip'] ??= cfg.topagg.clip;
    if (cfg.topagg.threshold) {
      p['topagg-threshold-sigma1'] ??= cfg.topagg.threshold.sigma1;
      p['topagg-threshold-beta'] ??= cfg.topagg.threshold.beta;
    }
    delete cfg.topagg;
  }
  const o: MethodOptionValues = { ...(cfg.optimizerOptions ?? {}) };
  if (cfg.momentum !== undefined) o.momentum ??= cfg.momentum;
  if (cfg.nesterov !== undefined) o.nesterov ??= cfg.nesterov;
  delete cfg.momentum;
  delete cfg.nesterov;
  const defined = (r: MethodOptionValues) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
  cfg.privatizerOptions = defined(p);
  cfg.optimizerOptions = defined(o);
}

/** Steps of DP-SGD the ledger has recorded (entry meta.steps), or Infinity when a non-private entry makes ε = ∞. */
function ledgerSteps(ledger: PrivacyLedger): number {
  let s = 0;
  for (const e of ledger.entries) {
    if (e.event.kind === 'nonPrivate') return Infinity;
    s += Number((e.meta as { steps?: unknown } | undefined)?.steps ?? 0);
  }
  return s;
}

const TRAIN_STATE = { header: 'train-state.json', blob: 'train-state.bin', format: 'dplens-train-state/1', entriesKey: 'tensors', blobKey: 'data' };

/** Optimizer/EMA state of a run folder: live weights, optimizer slots, EMA shadow and the step reached. */
interface TrainState {
  optimizer: string;
  t: number;
  /** Steps completed when the state was saved (absent in folders written before checkpoints). */
  step?: number;
  /** Slot name → tensors aligned with the model parameters ('live' always, 'ema' when EMA is on). */
  tensors: Record<string, tf.Tensor[]>;
}

/**
 * Writes train-state atomically: the blob first (named after the step for periodic checkpoints,
 * `train-state.bin` for the final one), then the header naming it, then removes the blob the
 * previous header named. A crash at any point leaves a header that names a complete blob.
 */
function writeTrainState(dir: string, st: TrainState, final: boolean): void {
  const prevBlob = existsSync(join(dir, TRAIN_STATE.header)) ? (() => {
    try {
      return String((JSON.parse(readFileSync(join(dir, TRAIN_STATE.header), 'utf8')) as { data?: unknown }).data ?? '');
    } catch {
      return '';
    }
  })() : '';
  const blob = final ? TRAIN_STATE.blob : `train-state.ckpt-${st.step}.bin`;
  const tensors = Object.entries(st.tensors).flatMap(([slot, ts]) => ts.map((t, index) => ({ shape: t.shape, data: t.dataSync() as Float32Array, labels: { slot, index } })));
  writeCheckpoint(dir, { ...TRAIN_STATE, blob }, { optimizer: st.optimizer, t: st.t, step: st.step }, tensors);
  if (prevBlob && prevBlob !== blob && /^train-state[.\w-]*\.bin$/.test(prevBlob)) rmSync(join(dir, prevBlob), { force: true });
}

function readTrainState(dir: string): TrainState | undefined {
  if (!existsSync(join(dir, TRAIN_STATE.header))) return undefined;
  const { header, tensors: list } = readCheckpoint(dir, TRAIN_STATE);
  const tensors: Record<string, tf.Tensor[]> = {};
  for (const { entry, data } of list) (tensors[String(entry.slot)] ??= [])[Number(entry.index)] = tf.tensor(data.slice(), entry.shape);
  return { optimizer: String(header.optimizer), t: Number(header.t), step: header.step === undefined ? undefined : Number(header.step), tensors };
}

/** A seeded resume must not replay a noise stream: mix the seed with the ledger's entry count (strictly grows between attempts). */
function resumeSeed(seed: number, entriesAtStart: number): number {
  return entriesAtStart === 0 ? seed : (seed ^ Math.imul(entriesAtStart, 0x9e3779b1) ^ 0x5bd1e995) >>> 0;
}

/** Trains a model with DP-SGD according to `config`; see TrainConfig and the run-folder layout above. */
export async function runTraining(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? (() => {});
  const outDir = config.outDir ?? config.out;
  if (outDir !== undefined && outDir.trim() === '') throw new RangeError(`--out must name a folder, got "${outDir}"`);
  const cfg: TrainConfig = { ...config };
  normaliseOptions(cfg);
  let prev: StoredConfig | undefined;
  if (cfg.resume) {
    if (!outDir) throw new RangeError('resume needs a run folder (out)');
    const cfgPath = join(outDir, 'config.json');
    if (!existsSync(cfgPath)) throw new RangeError(`--resume: ${outDir} holds no run to resume (${cfgPath} not found)`);
    prev = readJsonFile<StoredConfig>(cfgPath, 'run config');
    if (!prev || typeof prev.config !== 'object' || prev.config === null) throw new Error(`${cfgPath}: no "config" object (not a dplens train run folder)`);
    const stored: TrainConfig = { ...prev.config };
    // The randomness of a run is fixed by its ledger: a secure run cannot be continued with a seed
    // (it would be reported as secure), nor a seeded one with another seed.
    if (config.seed !== undefined && config.seed !== stored.seed) {
      throw new RangeError(stored.seed === undefined ? `--seed: ${outDir} uses secure randomness (its ledger records it); a resume cannot switch it to a seed` : `--seed: ${outDir} was seeded with ${stored.seed}; a resume keeps that seed (drop --seed)`);
    }
    normaliseOptions(stored);
    for (const [k, v] of Object.entries(stored)) if ((cfg as Record<string, unknown>)[k] === undefined) (cfg as Record<string, unknown>)[k] = v;
    // option records merge key by key: a flag given again replaces only its own value
    if (!config.privatizer || config.privatizer === stored.privatizer) cfg.privatizerOptions = { ...stored.privatizerOptions, ...cfg.privatizerOptions };
    if (!config.optimizer || config.optimizer === stored.optimizer) cfg.optimizerOptions = { ...stored.optimizerOptions, ...cfg.optimizerOptions };
  } else if (outDir) {
    prepareRunFolder(outDir);
    if (existsSync(join(outDir, 'ledger.jsonl'))) throw new RangeError(`${outDir} already holds a run (ledger.jsonl); use --resume or another folder`);
  }

  // Methods from the registries; options for another method are an error naming the flag.
  const privFactory = getPrivatizer(cfg.privatizer ?? 'gaussian');
  const optFactory = getOptimizer(cfg.optimizer ?? 'sgd');
  checkMethodOptions('privatizer', privFactory, Object.values(privatizers), cfg.privatizerOptions ?? {});
  checkMethodOptions('optimizer', optFactory, Object.values(optimizers), cfg.optimizerOptions ?? {});
  // Shared settings the privatizer does not read: refuse them when the caller gives them now.
  for (const setting of ['clip', 'clipping'] as const) {
    if (config[setting] !== undefined && !privFactory.uses.includes(setting)) throw new RangeError(`--${setting} does not apply to --privatizer ${privFactory.name}${privFactory.options.length ? ` (its options: ${privFactory.options.filter((o) => o.cli !== false).map((o) => '--' + o.flag).join(', ')})` : ''}`);
  }
  if (cfg.optimizerOptions?.nesterov === true && !((cfg.optimizerOptions.momentum as number | undefined) ?? 0)) throw new RangeError('--nesterov needs --momentum > 0');

  const ds = hooks.dataOverride ?? loadData(cfg);
  const corruption = cfg.corrupt ? corruptDataset(ds, parseCorruption(cfg.corrupt)) : undefined;
  const fingerprint = keyedFingerprint(ds.rawFingerprint);
  if (prev) {
    const was = prev.dataset ?? {};
    const sameName = was.name === undefined || was.name === ds.name;
    // folders written before keyed fingerprints hold the plain hash: accept either spelling of the same data
    const samePrint = was.fingerprint === undefined || was.fingerprint === fingerprint || was.fingerprint === ds.rawFingerprint;
    if (!sameName || !samePrint) throw new RangeError(`--resume: ${outDir} was trained on ${was.name ?? 'another dataset'}${sameName ? ' with different contents (fingerprint mismatch)' : ''}, refusing to continue it on ${ds.name} (give the run's own --data)`);
  }
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
  const sampling = cfg.sampling ?? 'poisson';
  // Poisson sampling at the fixed rate q = B/n proves add/remove (n is treated as public); fixed-size
  // shuffled batches are recorded as non-private, and only make sense for a fixed n: replace-one.
  // A privatizer with its own accounting (vmf: metric DP) states its relation and sets its noise from its own options.
  const own = privFactory.ownAccounting;
  const relation: NeighbouringRelation = own?.relation ?? (sampling === 'poisson' ? 'add-remove' : 'replace-one');
  const q = batch / n;
  const steps = Math.max(1, Math.round(epochs / q));
  if (cfg.prune !== undefined || cfg.pruneAt !== undefined) {
    if (cfg.prune === undefined) throw new RangeError('--prune-at needs --prune SPARSITY');
    checkPruneOptions({ sparsity: cfg.prune, at: cfg.pruneAt });
  }
  let sigma = cfg.noise;
  if (own) {
    // (config.json records noise 0 for such runs: a re-run or resume passes it back)
    if ((sigma !== undefined && sigma !== 0) || targetEps !== undefined) throw new RangeError(`noise / target epsilon do not apply to --privatizer ${privFactory.name} (${own.why})`);
    sigma = 0; // unused by the privatizer; the run's guarantee is read from the ledger (result.guarantee)
  }
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
  // (the data layer checks this for files; a built-in image set must refuse it too)
  if (cfg.categorical?.length && !tabular) throw new RangeError(`--categorical ${cfg.categorical.join(', ')} given, but ${ds.source} is an image dataset (categorical columns apply to CSV tables)`);
  const inputShape = tabular ? [ds.numFeatures] : [ds.height, ds.width, ds.channels];
  const modelName = cfg.model ?? (tabular ? 'mlp' : 'cnn');
  if (tabular && modelName !== 'mlp') throw new RangeError(`${ds.source} is a table (CSV): use model mlp (the CNNs need images), got ${JSON.stringify(modelName)}`);
  if (tabular) log(`note: the CSV encoding (column means/stds, category lists, class names) is computed from the training split and is not covered by ε`);
  if (!Array.isArray(modelName) && !Object.hasOwn(modelPresets, modelName)) throw new RangeError(`model must be one of ${Object.keys(modelPresets).join(', ')} or a list of layer specs, got ${JSON.stringify(cfg.model)}`);
  const spec = Array.isArray(modelName) ? modelName : presetSpec(modelName, ds.numClasses);

  // The ledger first: on resume it must exist and cover the checkpoint (no path may lose spent budget).
  let ledger: PrivacyLedger | undefined;
  const ledgerPath = outDir ? join(outDir, 'ledger.jsonl') : undefined;
  const randomness = cfg.seed !== undefined ? { kind: 'seeded' as const, seed: cfg.seed } : { kind: 'secure' as const };
  const budget = targetEps !== undefined && sigma > 0 ? { epsilon: targetEps * (1 + 1e-9), delta } : undefined;
  if (ledgerPath) {
    if (cfg.resume && !existsSync(ledgerPath)) throw new RangeError(`--resume: ${ledgerPath} is missing; refusing to continue (the budget it recorded would be lost)`);
    ledger = PrivacyLedger.open(ledgerPath, { accountant, relation, randomness, budget, create: !cfg.resume, meta: { method: 'dpsgd', dataset: ds.name } });
  } else if (hooks.ledger) {
    if (hooks.ledger.relation !== relation) throw new RangeError(`${hooks.ledger.path}: ledger relation ${hooks.ledger.relation} differs from this run's ${relation}`);
    ledger = hooks.ledger;
  }
  try {
    return await trainWithLedger();
  } finally {
    if (ledger !== hooks.ledger) ledger?.close(); // the caller owns hooks.ledger
  }

  async function trainWithLedger(): Promise<TrainResult> {
    const entriesAtStart = ledger?.entries.length ?? 0;
    let model: Sequential;
    let startStep = 0;
    let resumeState: TrainState | undefined;
    if (cfg.resume) {
      resumeState = readTrainState(outDir!);
      const hasModel = existsSync(join(outDir!, 'model.json'));
      if (hasModel) {
        const loaded = loadModel(outDir!);
        model = loaded.model;
        startStep = Number(loaded.meta.steps ?? 0);
      } else model = buildModel(spec, inputShape);
      if (resumeState?.step !== undefined) startStep = resumeState.step;
      // model.json holds the released (EMA-averaged) weights; training continues from the live ones.
      if (resumeState?.tensors.live) model.parameters().forEach((p, i) => p.value.assign(resumeState!.tensors.live![i]!));
      else if (!hasModel) startStep = 0;
      const recorded = ledgerSteps(ledger!);
      if (recorded < startStep) throw new RangeError(`--resume: ${ledgerPath} records ${recorded} steps but the checkpoint is at step ${startStep}; the ledger was truncated or replaced, refusing to continue`);
      log(
        `resuming from step ${startStep} (${outDir}; ${resumeState ? `optimizer state${resumeState.tensors.ema ? ' and EMA' : ''} restored` : hasModel ? 'no optimizer state saved: momentum restarts' : 'no checkpoint was saved: weights restart'}; the ledger keeps its ${ledger!.entries.length} entries)`,
      );
    } else model = buildModel(spec, inputShape);
    const rng: RandomSource = cfg.seed !== undefined ? seededRandom(resumeSeed(cfg.seed, entriesAtStart)) : secureRandom();
    const params = model.parameters();
    const paramCount = params.reduce((s, p) => s + p.value.size, 0);
    const privatizer = privFactory.create({ noiseMultiplier: sigma!, clip, clipping: cfg.clipping ?? 'flat', paramCount, steps, expectedBatch: batch, options: cfg.privatizerOptions ?? {} });
    const opt = optFactory.create({ lr, schedule: cfg.schedule === 'cosine' ? schedules.cosine() : schedules.constant(), weightDecay: cfg.weightDecay, options: cfg.optimizerOptions ?? {} });

    const facts = releasedFacts(ds, !!outDir);
    const startedAt = new Date().toISOString();
    let manifest: RunManifest | undefined;
    const { command, ...rest } = cfg;
    if (outDir) {
      writeFileAtomic(
        join(outDir, 'config.json'),
        JSON.stringify({ kind: 'train', command, createdAt: startedAt, config: { ...rest, model: modelName, data: cfg.data ?? ds.name }, dataset: { name: ds.name, source: ds.source, fingerprint, fingerprintKind: 'keyed (HMAC-SHA256 with the data owner key)', train: n, test: ds.test.count, shape: inputShape, classes: ds.numClasses }, derived: { sampleRate: q, steps, noiseMultiplier: sigma, relation, paramCount, ...(ds.kind === 'tabular' ? { labelColumn: ds.labelColumn, columns: publicColumns(ds), encodingNote: 'CSV encoding statistics (means, stds, category lists) come from the training split and are not covered by epsilon: this file leaves them out; model.json holds them (needed to apply the model) and run.json privacy.released lists them' } : { normalisation: datasetNormalisation(ds) }) } }, null, 1) + '\n',
      );
      let old: RunManifest | undefined;
      try {
        old = cfg.resume ? readManifest(outDir) : undefined;
      } catch (e) {
        log(`warning: ${(e as Error).message}; starting a new run.json (earlier attempts are in the ledger)`);
      }
      manifest = {
        version: 1,
        kind: 'train',
        method: 'dpsgd',
        description: `DP-SGD (${privatizer.name} privatizer, ${sampling === 'poisson' ? 'Poisson sampling' : 'shuffled fixed-size batches, not accounted'}) on ${ds.name}`,
        createdAt: old?.createdAt ?? startedAt,
        updatedAt: startedAt,
        config: { ...rest, model: modelName, data: cfg.data ?? ds.name },
        dataset: { name: ds.name, source: ds.source, fingerprint, trainSize: n, testSize: ds.test.count, numClasses: ds.numClasses },
        privacy: {
          relation,
          treatedAsPublic: [
            `n = ${n}, the number of training records: the sampling rate q = B/n = ${q.toPrecision(4)} is fixed from it and recorded in the ledger`,
            'the hyper-parameters (expected batch B, σ, clip, steps, learning rate, model architecture)',
            `the test split (${ds.test.count} records, the user's public holdout): test-set metrics are released without noise`,
          ],
          accountant,
          delta,
          ...(budget ? { budget: { epsilon: targetEps!, delta } } : {}),
          ledger: 'ledger.jsonl',
          randomness,
          released: facts,
        },
        metrics: 'metrics.jsonl',
        privateDiagnostics: 'private-diagnostics.jsonl',
        artifacts: [],
        attempts: [...(old?.attempts ?? []), { startedAt, ...(command ? { command: command.slice(1) } : {}), ...(cfg.resume ? { resumedFromStep: startStep } : {}), ledgerEntriesAtStart: entriesAtStart }],
      };
      manifest.artifacts = artifacts(outDir, facts);
      writeManifest(outDir, manifest);
    }

    const norm = ds.kind === 'image' ? datasetNormalisation(ds) : undefined;
    const asTrainData = (split: 'train' | 'test') => {
      const src = split === 'train' && corruption ? corruption.data : ds;
      return src.kind === 'image' ? imageData(src[split], src, norm!) : tabularData(src[split], src.numFeatures);
    };
    const byzantine = corruption?.byzantine;
    const trainer = new PrivateTrainer({
      model,
      optimizer: opt,
      data: asTrainData('train'),
      noiseMultiplier: sigma!,
      maxGradNorm: clip,
      delta,
      batchSize: batch,
      maxPhysicalBatch: cfg.maxPhysicalBatch,
      sampling,
      privatizer,
      accountant,
      relation,
      ledger,
      datasetFingerprint: fingerprint,
      rng,
      // without a run folder there is no ledger: the in-memory accountant takes the cap
      maxEpsilon: !ledger && targetEps !== undefined ? targetEps * (1 + 1e-9) : undefined,
      emaDecay: cfg.ema,
      gradientCanaries: hooks.gradientCanaries,
      lossForChunk: byzantine ? (chunk) => byzantineLoss(byzantine, parseCorruption(cfg.corrupt!).byzantine!.mode, chunk) : undefined,
    });
    if (resumeState) {
      const { live: _live, ema: emaShadow, ...slots } = resumeState.tensors;
      if (resumeState.optimizer === opt.name && opt.setState) opt.setState({ name: resumeState.optimizer, t: resumeState.t, slots }, params);
      else log(`optimizer changed (${resumeState.optimizer} → ${opt.name}): its state restarts`);
      if (emaShadow && trainer.ema) trainer.ema.setShadow(emaShadow);
      tf.dispose(Object.values(resumeState.tensors).flat());
    }
    // mask from the public init or the DP iterate, re-applied after every step: post-processing (train/prune.ts)
    const pruner = cfg.prune ? new MagnitudePruner(params, { sparsity: cfg.prune, at: cfg.pruneAt }, () => (trainer.ema ? [trainer.ema.getShadow()] : [])) : undefined;
    pruner?.start(startStep, steps);
    const saveState = (step: number, final: boolean) => {
      const optState = opt.getState?.();
      writeTrainState(outDir!, { optimizer: opt.name, t: optState?.t ?? 0, step, tensors: { ...(optState?.slots ?? {}), live: params.map((p) => p.value), ...(trainer.ema ? { ema: trainer.ema.getShadow() } : {}) } }, final);
    };

    const logEvery = cfg.logEvery ?? Math.max(1, Math.round(steps / Math.max(1, epochs) / 50));
    const metricsPath = outDir ? join(outDir, 'metrics.jsonl') : undefined;
    const diagPath = outDir ? join(outDir, 'private-diagnostics.jsonl') : undefined;
    const metrics: string[] = [];
    const diagnostics: string[] = [];
    const flush = () => {
      if (metricsPath && metrics.length) appendFileSync(metricsPath, metrics.splice(0).join(''));
      if (diagPath && diagnostics.length) appendFileSync(diagPath, diagnostics.splice(0).join(''));
    };
    const eps = (e: number) => (Number.isFinite(e) ? e : null);
    let peakRss = process.memoryUsage().rss;
    const evalEvery = cfg.evalEvery ?? (epochs >= 2 ? 1 : 0);
    const evalSteps = evalEvery > 0 && cfg.evaluate !== false && ds.test.count > 0 ? Math.max(1, Math.round(evalEvery / q)) : 0;
    const testData = asTrainData('test');
    let evalSeconds = 0;
    const ckptSteps = cfg.checkpointEvery;
    const ckptMs = (cfg.checkpointSeconds ?? 60) * 1000;
    let lastCkptStep = startStep;
    let lastCkptTime = performance.now();
    const fit = trainer.fit({
      steps,
      startStep,
      maxSeconds: cfg.maxMinutes !== undefined ? cfg.maxMinutes * 60 : undefined,
      onStep: (info) => {
        pruner?.afterStep(info.step, steps);
        if (info.step % logEvery === 0 || info.step === steps) {
          metrics.push(JSON.stringify({ type: 'step', step: info.step, epoch: +info.epoch.toFixed(4), epsilon: eps(info.epsilon), lr: info.lr }) + '\n');
          diagnostics.push(JSON.stringify({ type: 'step', step: info.step, loss: info.loss, accuracy: info.accuracy, batchSize: info.batchSize }) + '\n');
          if (metrics.length >= 20) flush();
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
        }
        if (evalSteps && info.step % evalSteps === 0 && info.step < steps) {
          const t0 = performance.now();
          const ev = trainer.evaluate(testData);
          metrics.push(JSON.stringify({ type: 'eval', step: info.step, epoch: +info.epoch.toFixed(4), testAccuracy: ev.testAccuracy, testLoss: ev.testLoss, epsilon: eps(info.epsilon) }) + '\n');
          flush();
          evalSeconds += (performance.now() - t0) / 1000;
        }
        if (outDir && info.step < steps && ((ckptSteps !== undefined && info.step - lastCkptStep >= ckptSteps) || performance.now() - lastCkptTime >= ckptMs)) {
          // a killed run resumes from here (the ledger already holds these steps and up to one block more)
          flush();
          saveState(info.step, false);
          lastCkptStep = info.step;
          lastCkptTime = performance.now();
        }
        hooks.onStep?.(info);
      },
    });
    flush();
    if (fit.stoppedBy === 'budget' && trainer.refusal) log(`stopped by the ledger: ${trainer.refusal}`);
    const epsilon = trainer.epsilon();
    // (ε, δ), or metric DP for vmf (ε above is then ∞ → null: no (ε, δ) is stated), or none
    const guarantee = trainer.guarantee();
    let testAccuracy: number | null = null;
    let testLoss: number | null = null;
    if (cfg.evaluate !== false && ds.test.count > 0) {
      const ev = trainer.evaluate(testData);
      testAccuracy = ev.testAccuracy;
      testLoss = ev.testLoss;
      if (metricsPath) appendFileSync(metricsPath, JSON.stringify({ type: 'eval', step: fit.steps, epoch: fit.epochs, testAccuracy, testLoss, epsilon: eps(epsilon) }) + '\n');
    }
    const seconds = fit.seconds - evalSeconds;
    const result: TrainResult = {
      epsilon: eps(epsilon),
      nonPrivate: guarantee.kind === 'none',
      guarantee,
      delta,
      noiseMultiplier: sigma!,
      sampleRate: q,
      relation,
      clip,
      batch,
      steps: fit.steps,
      epochs: fit.epochs,
      testAccuracy,
      testLoss,
      // training wall time only: periodic evaluations are excluded
      seconds,
      samplesPerSecond: ((fit.steps - startStep) * batch) / seconds,
      stoppedBy: fit.stoppedBy,
      accountant,
      privatizer: privatizer.name,
      randomness: rng.kind,
      datasetFingerprint: fingerprint,
      resumedFromStep: startStep,
      bytesPerStep: batch * (privatizer.bytesPerExample ?? 4 * paramCount),
      ...(corruption ? { corrupt: { spec: cfg.corrupt!, ...corruption.counts } } : {}),
      ...(privatizer instanceof PtrRobustPrivatizer ? { ptr: { epsilonApproxDp: eps(ptrApproxDpEpsilon(q, privatizer.event(), fit.steps, delta)), passed: privatizer.passed, tested: privatizer.tested } } : {}),
      ...(pruner ? { prune: { sparsity: pruner.sparsity, at: pruner.at, maskStep: pruner.maskStep ?? null, measuredSparsity: pruner.measuredSparsity() } } : {}),
      model,
      peakRssMB: Math.round(Math.max(peakRss, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024) / 2 ** 20),
      privateDiagnostics: { trainLoss: fit.loss, trainAccuracy: fit.accuracy },
    };
    if (outDir) {
      result.runDir = resolve(outDir);
      // The released model is what was evaluated (the EMA weights when EMA is on); the live weights,
      // optimizer slots and EMA go to train-state.* so that --resume continues exactly.
      saveState(fit.steps, true);
      trainer.ema?.swap();
      try {
        saveModel(outDir, model, inputShape, { steps: fit.steps, dataset: ds.name, ...(ds.kind === 'tabular' ? { labelColumn: ds.labelColumn, columns: ds.columns } : { normalisation: norm }), classNames: ds.classNames, ...(trainer.ema ? { ema: cfg.ema } : {}) });
      } finally {
        trainer.ema?.swap();
      }
      const plain = publicTrainResult(result);
      writeFileAtomic(join(outDir, 'result.json'), JSON.stringify(plain, null, 1) + '\n');
      const last = manifest!.attempts[manifest!.attempts.length - 1]!;
      last.endedAt = new Date().toISOString();
      last.stoppedBy = fit.stoppedBy;
      manifest!.artifacts = artifacts(outDir, facts);
      manifest!.result = plain;
      writeManifest(outDir, manifest!);
    }
    return result;
  }
}

/** Facts about the data that the run folder (and stdout) reveal, with their status. */
function releasedFacts(ds: ImageDataset | TabularDataset, folder: boolean): ReleasedFact[] {
  const files = (...f: string[]) => (folder ? f : []).concat('stdout');
  const written = (...f: string[]) => (folder ? f : []);
  return [
    { what: 'n (training-set size)', where: files('config.json', 'run.json', 'ledger.jsonl (sampleRate)', 'result.json'), status: 'public-by-assumption', why: 'Poisson sampling at the fixed rate q = B/n: the add/remove proof treats n as public' },
    { what: 'test-set size and test-set metrics', where: files('config.json', 'metrics.jsonl', 'result.json'), status: 'public-by-assumption', why: "the test split is the user's public holdout, not covered by ε" },
    // class count: config.json dataset.classes, run.json dataset.numClasses, model.json output layer;
    // class names and the CSV encoding: model.json meta (needed to apply the model); schema: both files
    ...dataReleasedFacts(ds, {
      classCount: written('config.json', 'run.json', 'model.json'),
      classNames: written('model.json'),
      schema: written('config.json', 'model.json'),
      encoding: { where: written('model.json'), because: 'written to model.json (meta.columns) because applying the model to new rows needs the same encoding' },
    }),
    { what: 'training wall time and peak memory (seconds, samplesPerSecond, peakRssMB)', where: files('result.json', 'run.json'), status: 'outside-guarantee', why: 'timing depends on the realised batch sizes' },
    LEDGER_TIMESTAMPS,
  ];
}

/** The files of a train run folder that exist now, with their release status. */
function artifacts(dir: string, facts: readonly ReleasedFact[]): ManifestArtifact[] {
  const uncovered = (file: string, what: string, status: ManifestArtifact['status']): ManifestArtifact =>
    fileHoldsUncovered(facts, file) ? { path: file, what, status: 'outside-guarantee', why: 'holds data facts derived from the training split (run.json privacy.released lists them)' } : { path: file, what, status };
  const all: ManifestArtifact[] = [
    uncovered('config.json', 'resolved configuration and dataset facts', 'public'),
    { path: 'ledger.jsonl', what: 'privacy ledger (DP events of every block of steps)', status: 'public' },
    { path: 'ledger.jsonl.tip', what: 'ledger tip (entry count and last hash)', status: 'public' },
    { path: 'metrics.jsonl', what: 'ε and learning rate per logged step; test-set evaluations', status: 'covered' },
    { path: 'private-diagnostics.jsonl', what: 'loss, accuracy and size of the private training batches', status: 'private', why: 'computed on private Poisson batches without noise: must not be published' },
    { path: 'train-state.json', what: 'resume state: live weights, optimizer slots, EMA', status: 'covered' },
    { path: 'train-state.bin', what: 'resume state tensors', status: 'covered' },
    // the weights are covered; the model's class count is listed in privacy.released, but a CSV
    // model's verbatim encoding (category lists, means/stds) makes the file itself a release outside ε
    fileHoldsUncovered(facts.filter((f) => f.what.startsWith('CSV encoding of')), 'model.json')
      ? { path: 'model.json', what: 'released model (architecture, metadata, CSV encoding)', status: 'outside-guarantee', why: 'meta.columns holds the CSV encoding statistics of the training split (needed to apply the model)' }
      : { path: 'model.json', what: 'released model (architecture, metadata)', status: 'covered' },
    { path: 'weights.bin', what: 'released model weights', status: 'covered' },
    { path: 'result.json', what: 'public result summary', status: 'outside-guarantee', why: 'holds the training wall time and peak memory' },
  ];
  const out = all.filter((a) => existsSync(join(dir, a.path)));
  try {
    const st = JSON.parse(readFileSync(join(dir, 'train-state.json'), 'utf8')) as { data?: string };
    if (st.data && st.data !== 'train-state.bin') out.push({ path: st.data, what: 'resume state tensors (periodic checkpoint)', status: 'covered' });
  } catch {
    // no train state yet
  }
  return out;
}
