/**
 * The evaluation job runner behind `dplens eval`: train the evaluation CNN (evaluate/) only on a
 * synthetic set, test it on the real test split, and write `eval.json` next to the synthetic file.
 * When that folder is a run folder with a manifest (run.json), eval.json is added to its artifacts,
 * so the report lists it. The evaluate/ library itself does no file I/O; this runner does.
 *
 * eval.json holds test-set figures of a classifier trained on covered output (the synthetic set):
 * post-processing, so its status in the manifest is 'covered'.
 */
import { dirname, join, resolve } from 'node:path';
import { DataError, loadDataset, readImageNpz, resolveDataFlag } from '../data/index.js';
import { ensureEngine } from '../engine/index.js';
import { evaluateSynthetic, type EpochResult, type EvaluateResult } from '../evaluate/index.js';
import { writeFileAtomic } from '../util/files.js';
import { readManifest, writeManifest, type ManifestArtifact } from './manifest.js';

export const EVAL_FILE = 'eval.json';

export interface EvalJobOptions {
  /** synthetic.npz (images N×H×W[×C] uint8, labels N). */
  synthetic: string;
  /** Real dataset whose test split is used (a --data value: mnist, fashion-mnist, pneumonia, or a path). */
  data: string;
  dataPath?: string;
  /** Declared (public) class count / names of --data (see src/data DatasetSpec). */
  numClasses?: number;
  classNames?: string[];
  epochs?: number;
  batchSize?: number;
  optimizer?: 'adam' | 'sgd';
  learningRate?: number;
  seed?: number;
  maxMinutes?: number;
  /** Train on only the first N synthetic images. */
  limit?: number;
  threads?: number;
  onLog?: (line: string) => void;
  onEpoch?: (e: EpochResult) => void;
}

export interface EvalJobResult extends EvaluateResult {
  /** Absolute path of the synthetic file. */
  synthetic: string;
  /** Name of the real dataset. */
  data: string;
  /** Where eval.json was written. */
  evalJson: string;
  /** The run folder whose run.json now lists eval.json (absent when the folder has no manifest). */
  manifestUpdated?: string;
}

/**
 * Lists eval.json in `folder`'s run.json (replacing an earlier listing), so the report shows it
 * with its release status. False when the folder has no manifest (not a run folder).
 */
export function listEvalJson(folder: string, entry: Omit<ManifestArtifact, 'path'>): boolean {
  const m = readManifest(folder);
  if (!m) return false;
  m.artifacts = [...m.artifacts.filter((a) => a.path !== EVAL_FILE), { path: EVAL_FILE, ...entry }];
  writeManifest(folder, m);
  return true;
}

export async function runEval(o: EvalJobOptions): Promise<EvalJobResult> {
  const declared = { ...(o.numClasses !== undefined ? { numClasses: o.numClasses } : {}), ...(o.classNames ? { classNames: o.classNames } : {}) };
  const real = loadDataset({ ...resolveDataFlag(o.data, o.dataPath), ...declared });
  // The data layer's reader: shape, count, NaN/Inf and label-range checks, each a DataError
  // (exit 2, one line naming the file), against the real set's classes and image geometry.
  const syn = readImageNpz(o.synthetic, { numClasses: real.numClasses, expect: { height: real.height, width: real.width, channels: real.channels } });
  if (syn.count === 0) throw new DataError(`${o.synthetic}: no synthetic images to train on`);
  const { height, width, channels } = syn;
  const count = Math.min(syn.count, o.limit ?? syn.count);
  const backend = await ensureEngine(o.threads ? { threads: o.threads } : {});
  o.onLog?.(`dplens eval: ${count} synthetic images from ${o.synthetic}; real test: ${real.name} (${real.test.count}); engine ${backend}`);
  const r = await evaluateSynthetic({
    synthetic: { images: syn.images.subarray(0, count * height * width * channels), labels: syn.labels.subarray(0, count), count, height, width, channels },
    realTest: { ...real.test, height: real.height, width: real.width, channels: real.channels },
    numClasses: real.numClasses,
    epochs: o.epochs,
    batchSize: o.batchSize,
    optimizer: o.optimizer,
    learningRate: o.learningRate,
    seed: o.seed,
    maxSeconds: o.maxMinutes !== undefined ? o.maxMinutes * 60 : undefined,
    onEpoch: o.onEpoch,
  });
  const folder = dirname(resolve(o.synthetic));
  const written = { synthetic: resolve(o.synthetic), data: real.name, ...r };
  const evalJson = join(folder, EVAL_FILE);
  writeFileAtomic(evalJson, JSON.stringify(written, null, 2));
  const result: EvalJobResult = { ...written, evalJson };
  const listed = listEvalJson(folder, { what: `utility of the synthetic set: a CNN trained on it, tested on the real ${real.name} test split`, status: 'covered' });
  if (listed) result.manifestUpdated = folder;
  return result;
}
