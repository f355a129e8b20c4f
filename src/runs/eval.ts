/**
 * The evaluation job runner behind `dplens eval`: train classifiers (evaluate/) only on a
 * synthetic set, test them on the real test split, measure fidelity (FID / precision / recall,
 * per-class counts), and write `eval.json` next to the synthetic file. When that folder is a run
 * folder with a manifest (run.json), eval.json is added to its artifacts, so the report lists it.
 * The evaluate/ library itself does no file I/O; this runner does (eval.json, the feature-net cache).
 *
 * Release status of eval.json: test-set figures of a classifier trained on covered output (the
 * synthetic set) are post-processing ('covered'). fid / precision / recall are NOT: they are
 * computed with a feature network trained on the private training split, so with fidelity on,
 * eval.json is 'outside-guarantee' and run.json lists the fidelity figures as a released fact
 * outside the guarantee.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DataError, loadDataset, readImageNpz, resolveDataFlag, type ImageDataset } from '../data/index.js';
import { ensureEngine } from '../engine/index.js';
import {
  FEATURE_NET_ARCH,
  FEATURE_NET_EPOCHS,
  FEATURE_NET_SEED,
  classCounts,
  evaluateDpImageBench,
  evaluateSynthetic,
  featureNetKey,
  featuresOf,
  fidelityFromFeatures,
  loadFeatureNet,
  sampleIndices,
  toFloatImages,
  trainFeatureNet,
  type BenchClassifierResult,
  type Classifier,
  type EpochResult,
  type EvalProtocol,
  type FeatureNetConfig,
  type LabelledImages,
  type SavedFeatureNet,
} from '../evaluate/index.js';
import { keyedFingerprint } from '../privacy/index.js';
import { writeFileAtomic } from '../util/files.js';
import { mulberry32 } from '../util/prng.js';
import { readManifest, writeManifest, type ManifestArtifact } from './manifest.js';

export const EVAL_FILE = 'eval.json';

/** Largest reference / synthetic subset for FID and precision / recall (10k vs 10k). */
export const FIDELITY_MAX_COUNT = 10000;

export interface EvalJobOptions {
  /** synthetic.npz (images N×H×W[×C] uint8, labels N). */
  synthetic: string;
  /** Real dataset whose test split is used (a --data value: mnist, fashion-mnist, pneumonia, or a path). */
  data: string;
  dataPath?: string;
  /** Declared (public) class count / names of --data (see src/data DatasetSpec). */
  numClasses?: number;
  classNames?: string[];
  /** 'default' (spec §7 CNN, final epoch) or 'dpimagebench' (three CNNs, synthetic validation). */
  protocol?: EvalProtocol;
  epochs?: number;
  batchSize?: number;
  optimizer?: 'adam' | 'sgd';
  learningRate?: number;
  seed?: number;
  maxMinutes?: number;
  /** Train on only the first N synthetic images. */
  limit?: number;
  threads?: number;
  /** Compute fid / precision / recall (default true). */
  fidelity?: boolean;
  /** Tests: train the feature net on only the first N real training images (cached separately). */
  featureNetTrainLimit?: number;
  /** Tests: feature-net epochs (cached separately). */
  featureNetEpochs?: number;
  onLog?: (line: string) => void;
  onEpoch?: (e: EpochResult) => void;
}

export interface EvalFidelity {
  fid: number;
  precision: number;
  recall: number;
  /** What was compared, in words (reference set, counts, feature net). */
  fidelityDescription: string;
  fidelityCount: number;
  fidelitySeconds: number;
}

export interface EvalJobResult {
  /** Absolute path of the synthetic file. */
  synthetic: string;
  /** Name of the real dataset. */
  data: string;
  protocol: EvalProtocol;
  protocolDescription: string;
  /** Real test accuracy (default: final epoch; dpimagebench: mean over the classifiers). */
  testAccuracy: number;
  /** default protocol only. */
  bestEpochTestAccuracy?: number;
  bestEpoch?: number;
  epochs?: number;
  perEpoch?: EpochResult[];
  /** dpimagebench protocol only. */
  classifiers?: BenchClassifierResult[];
  valCount?: number;
  trainCount: number;
  testCount: number;
  /** Synthetic images per class (index = class) of the evaluated set. */
  classCounts: number[];
  fid?: number;
  precision?: number;
  recall?: number;
  fidelityDescription?: string;
  fidelityCount?: number;
  fidelitySeconds?: number;
  seconds: number;
  /** Where eval.json was written. */
  evalJson: string;
  /** The run folder whose run.json now lists eval.json (absent when the folder has no manifest). */
  manifestUpdated?: string;
}

const FIDELITY_FACT = 'fid / precision / recall of the synthetic set (eval.json)';
const FIDELITY_WHY = 'computed in the feature space of a network trained on the private training split (an evaluation instrument outside the DP mechanism)';

/**
 * Lists eval.json in `folder`'s run.json (replacing an earlier listing), so the report shows it
 * with its release status. With `fidelityReleased`, also lists the fidelity figures as a released
 * fact outside the guarantee. False when the folder has no manifest (not a run folder).
 */
export function listEvalJson(folder: string, entry: Omit<ManifestArtifact, 'path'>, fidelityReleased = false): boolean {
  const m = readManifest(folder);
  if (!m) return false;
  m.artifacts = [...m.artifacts.filter((a) => a.path !== EVAL_FILE), { path: EVAL_FILE, ...entry }];
  if (m.privacy) {
    const rest = m.privacy.released.filter((f) => f.what !== FIDELITY_FACT);
    m.privacy.released = fidelityReleased ? [...rest, { what: FIDELITY_FACT, where: [EVAL_FILE, 'report.html', 'stdout'], status: 'outside-guarantee', why: FIDELITY_WHY }] : rest;
  }
  writeManifest(folder, m);
  return true;
}

/** Where cached evaluation instruments live: `$DPLENS_CACHE_DIR`, else `~/.cache/dplens`. */
export function evalCacheDir(): string {
  const env = process.env.DPLENS_CACHE_DIR;
  return env !== undefined && env !== '' ? env : join(homedir(), '.cache', 'dplens');
}

/**
 * The feature net of `real`, from the cache (keyed by the dataset's KEYED fingerprint, never a
 * plain hash, and by the net's configuration) or trained on the real training split and cached.
 */
export function featureNetFor(real: ImageDataset, o: { trainLimit?: number; epochs?: number; onLog?: (line: string) => void }): { net: Classifier; cachePath: string; cached: boolean } {
  const config: FeatureNetConfig = { arch: FEATURE_NET_ARCH.name, seed: FEATURE_NET_SEED, epochs: o.epochs ?? FEATURE_NET_EPOCHS, trainCount: Math.min(o.trainLimit ?? real.train.count, real.train.count) };
  const fp = keyedFingerprint(real.rawFingerprint).slice(0, 32);
  const cachePath = join(evalCacheDir(), 'feature-net', `${fp}-${featureNetKey(config)}.json`);
  const expect = { config, numClasses: real.numClasses, height: real.height, width: real.width, channels: real.channels };
  if (existsSync(cachePath)) {
    try {
      const net = loadFeatureNet(JSON.parse(readFileSync(cachePath, 'utf8')) as SavedFeatureNet, expect);
      return { net, cachePath, cached: true };
    } catch (e) {
      o.onLog?.(`${cachePath}: unusable cached feature net (${(e as Error).message}); retraining`);
    }
  }
  o.onLog?.(`training the fidelity feature net (${FEATURE_NET_ARCH.name}, ${config.epochs} epochs) on ${config.trainCount} real training images; cached at ${cachePath}`);
  const { net, saved } = trainFeatureNet({ ...real.train, height: real.height, width: real.width, channels: real.channels }, real.numClasses, config.trainCount, config.epochs);
  mkdirSync(dirname(cachePath), { recursive: true, mode: 0o700 });
  writeFileAtomic(cachePath, JSON.stringify(saved));
  return { net, cachePath, cached: false };
}

/** FID / precision / recall of `syn` against the real test split (equal-size seeded subsets). */
export function measureFidelity(real: ImageDataset, syn: LabelledImages, o: { seed: number; trainLimit?: number; epochs?: number; onLog?: (line: string) => void }): EvalFidelity {
  const t0 = Date.now();
  const testSet = { ...real.test, height: real.height, width: real.width, channels: real.channels };
  const m = Math.min(FIDELITY_MAX_COUNT, syn.count, testSet.count);
  if (m < 6) throw new DataError(`fidelity metrics need at least 6 synthetic images (k = 5 nearest neighbours), got ${syn.count}; use --no-fidelity`);
  const rnd = mulberry32(o.seed ^ 0x3c6ef372);
  const fakeIdx = sampleIndices(syn.count, m, rnd);
  const realIdx = sampleIndices(testSet.count, m, rnd);
  const { net, cachePath } = featureNetFor(real, o);
  try {
    const fr = featuresOf(net, toFloatImages(testSet, realIdx));
    const ff = featuresOf(net, toFloatImages(syn, fakeIdx));
    const r = fidelityFromFeatures(fr.data, ff.data, m, fr.dim, 5);
    return {
      fid: r.fid,
      precision: r.precision,
      recall: r.recall,
      fidelityCount: m,
      fidelitySeconds: (Date.now() - t0) / 1000,
      fidelityDescription: `${m} synthetic vs ${m} real ${real.name} TEST images (seeded subsets), in the ${r.featureDim}-d penultimate features of the ${FEATURE_NET_ARCH.name} feature net trained on the real training split (not covered by the DP guarantee; cached at ${cachePath}); precision/recall: Kynkäänniemi et al. 2019, k = ${r.k}`,
    };
  } finally {
    net.dispose();
  }
}

export async function runEval(o: EvalJobOptions): Promise<EvalJobResult> {
  const t0 = Date.now();
  const declared = { ...(o.numClasses !== undefined ? { numClasses: o.numClasses } : {}), ...(o.classNames ? { classNames: o.classNames } : {}) };
  const real = loadDataset({ ...resolveDataFlag(o.data, o.dataPath), ...declared });
  // The data layer's reader: shape, count, NaN/Inf and label-range checks, each a DataError
  // (exit 2, one line naming the file), against the real set's classes and image geometry.
  const syn = readImageNpz(o.synthetic, { numClasses: real.numClasses, expect: { height: real.height, width: real.width, channels: real.channels } });
  if (syn.count === 0) throw new DataError(`${o.synthetic}: no synthetic images to train on`);
  const { height, width, channels } = syn;
  const count = Math.min(syn.count, o.limit ?? syn.count);
  const protocol = o.protocol ?? 'default';
  const seed = o.seed ?? 1;
  const backend = await ensureEngine(o.threads ? { threads: o.threads } : {});
  o.onLog?.(`dplens eval (${protocol} protocol): ${count} synthetic images from ${o.synthetic}; real test: ${real.name} (${real.test.count}); engine ${backend}`);
  const synthetic: LabelledImages = { images: syn.images.subarray(0, count * height * width * channels), labels: syn.labels.subarray(0, count), count, height, width, channels };
  const realTest = { ...real.test, height: real.height, width: real.width, channels: real.channels };
  let utility: Omit<EvalJobResult, 'synthetic' | 'data' | 'classCounts' | 'evalJson' | 'seconds'>;
  if (protocol === 'dpimagebench') {
    const r = evaluateDpImageBench({
      synthetic,
      realTest,
      numClasses: real.numClasses,
      seed,
      epochs: o.epochs,
      maxSecondsPerClassifier: o.maxMinutes !== undefined ? (o.maxMinutes * 60) / 3 : undefined,
      onEpoch: (name, e) => o.onLog?.(`${name} epoch ${e.epoch}: loss ${e.trainLoss.toFixed(4)}, synthetic validation accuracy ${(100 * e.valAccuracy).toFixed(2)}% (${e.seconds.toFixed(0)} s)`),
    });
    for (const c of r.classifiers) o.onLog?.(`${c.name}: epoch ${c.selectedEpoch} selected on synthetic validation → real test accuracy ${(100 * c.testAccuracy).toFixed(2)}% (${c.seconds.toFixed(0)} s)`);
    utility = { protocol: r.protocol, protocolDescription: r.protocolDescription, testAccuracy: r.testAccuracy, classifiers: r.classifiers, trainCount: r.trainCount, valCount: r.valCount, testCount: r.testCount };
  } else {
    const r = await evaluateSynthetic({
      synthetic,
      realTest,
      numClasses: real.numClasses,
      epochs: o.epochs,
      batchSize: o.batchSize,
      optimizer: o.optimizer,
      learningRate: o.learningRate,
      seed,
      maxSeconds: o.maxMinutes !== undefined ? o.maxMinutes * 60 : undefined,
      onEpoch: o.onEpoch,
    });
    utility = { protocol: r.protocol, protocolDescription: r.protocolDescription, testAccuracy: r.testAccuracy, bestEpochTestAccuracy: r.bestEpochTestAccuracy, bestEpoch: r.bestEpoch, epochs: r.epochs, perEpoch: r.perEpoch, trainCount: r.trainCount, testCount: r.testCount };
  }
  const fidelity = o.fidelity === false ? undefined : measureFidelity(real, synthetic, { seed, trainLimit: o.featureNetTrainLimit, epochs: o.featureNetEpochs, onLog: o.onLog });
  const folder = dirname(resolve(o.synthetic));
  const written = { synthetic: resolve(o.synthetic), data: real.name, ...utility, classCounts: classCounts(synthetic.labels, real.numClasses), ...(fidelity ?? {}), seconds: (Date.now() - t0) / 1000 };
  const evalJson = join(folder, EVAL_FILE);
  writeFileAtomic(evalJson, JSON.stringify(written, null, 2));
  const result: EvalJobResult = { ...written, evalJson };
  const what = `utility of the synthetic set (${protocol} protocol): classifiers trained on it, tested on the real ${real.name} test split${fidelity ? '; fid / precision / recall against the real test split' : ''}; per-class counts`;
  const listed = listEvalJson(folder, fidelity ? { what, status: 'outside-guarantee', why: `fid / precision / recall are ${FIDELITY_WHY}; the accuracy figures alone are post-processing of the synthetic set` } : { what, status: 'covered' }, fidelity !== undefined);
  if (listed) result.manifestUpdated = folder;
  return result;
}
