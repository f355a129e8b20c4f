/**
 * Membership inference against DP-SGD classifiers trained by `runTraining`: a target model on a
 * random half of a candidate pool, shadow models on other random halves (offline LiRA uses only
 * the shadows that did not see an example), and the loss-threshold attack on the target.
 */
import type { ImageDataset, ImageSplit } from '../data/index.js';
import type { Module } from '../nn/index.js';
import { imageData } from '../train/index.js';
import { auditRandom, liraOfflineScores, lossAndConfidence, lossThresholdAttack, attackMetrics, type AttackMetrics } from '../audit/index.js';
import { datasetNormalisation, runTraining, type TrainConfig } from './train.js';
import { tidyRead } from '../engine/tidy-read.js';

/** Logits [count × classes] of `model` on a split (batched). */
export function modelLogits(model: Module, split: ImageSplit, ds: ImageDataset): Float32Array {
  const data = imageData(split, ds, datasetNormalisation(ds));
  const out = new Float32Array(split.count * ds.numClasses);
  for (let s = 0; s < split.count; s += 256) {
    const e = Math.min(split.count, s + 256);
    const z = tidyRead(() => model.forward(data.range(s, e), false)) as Float32Array;
    out.set(z, s * ds.numClasses);
  }
  return out;
}

function pick(split: ImageSplit, idx: number[], per: number): ImageSplit {
  const images = new Uint8Array(idx.length * per);
  const labels = new Int32Array(idx.length);
  idx.forEach((i, k) => {
    images.set(split.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = split.labels[i]!;
  });
  return { images, labels, count: idx.length };
}

export interface MiaTrainingResult {
  members: boolean[];
  loss: AttackMetrics;
  lira: AttackMetrics;
  shadows: number;
  targetTestAccuracy: number | null;
  seconds: number;
}

/**
 * Trains a target and `shadows` shadow models with `config` on random halves of `pool.train`
 * (each example in the target's half with probability ½) and attacks the target.
 */
export async function membershipInferenceTraining(config: TrainConfig, pool: ImageDataset, opts: { shadows?: number; seed?: number } = {}): Promise<MiaTrainingResult> {
  const t0 = Date.now();
  const K = opts.shadows ?? 8;
  if (!(Number.isInteger(K) && K >= 2)) throw new RangeError(`need ≥ 2 shadow models, got ${K}`);
  const rng = auditRandom(opts.seed);
  const n = pool.train.count;
  const per = pool.height * pool.width * pool.channels;
  const cfg: TrainConfig = { ...config, out: undefined, outDir: undefined, evaluate: false };
  const trainOn = async (inSet: boolean[]): Promise<Float32Array> => {
    const idx = inSet.flatMap((b, i) => (b ? [i] : []));
    const ds: ImageDataset = { ...pool, train: pick(pool.train, idx, per), rawFingerprint: `${pool.rawFingerprint}/subset` };
    const res = await runTraining(cfg, { dataOverride: ds });
    const z = modelLogits(res.model, pool.train, pool);
    res.model.parameters().forEach((p) => p.value.dispose());
    return z;
  };
  const members = Array.from({ length: n }, () => rng.nextDouble() < 0.5);
  const target = lossAndConfidence(await trainOn(members), pool.train.labels, pool.numClasses);
  const outPhi: number[][] = Array.from({ length: n }, () => []);
  for (let k = 0; k < K; k++) {
    const inSet = Array.from({ length: n }, () => rng.nextDouble() < 0.5);
    const { phi } = lossAndConfidence(await trainOn(inSet), pool.train.labels, pool.numClasses);
    for (let i = 0; i < n; i++) if (!inSet[i]) outPhi[i]!.push(phi[i]!);
  }
  // examples no shadow left out (probability 2^-K) get the pooled statistics via a global fallback
  const covered = outPhi.map((o) => o.length > 0);
  const idx = covered.flatMap((c, i) => (c ? [i] : []));
  const liraScores = liraOfflineScores(idx.map((i) => target.phi[i]!), idx.map((i) => outPhi[i]!), { globalVariance: K < 16 });
  const { scores: _s, ...loss } = lossThresholdAttack(target.loss, members);
  return { members, loss, lira: attackMetrics(liraScores, idx.map((i) => members[i]!)), shadows: K, targetTestAccuracy: null, seconds: (Date.now() - t0) / 1000 };
}
