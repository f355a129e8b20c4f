/**
 * Corruption harness for robustness experiments (`dplens train --corrupt SPEC`): a fixed fraction
 * of the TRAINING records is corrupted before training, the way Wang et al. 2022 (PTR-robust SGD)
 * and the Byzantine-robust literature evaluate aggregators. This is an experiment setting, not a
 * privacy setting: it changes the data (or what some records contribute), never the accounting;
 * the spec is recorded in config.json / run.json like any other training setting.
 *
 * SPEC is one or more comma-separated `kind:fraction[:mode]` items:
 *   labels:F            F of the records get a uniformly random OTHER label;
 *   features:F          F of the records get N(0, 0.5²) noise added to every feature (images: in
 *                       [0, 1] pixel units, clamped back to bytes; tables: in standardised units);
 *   byzantine:F[:mode]  F of the records are Byzantine: their per-sample gradient is replaced,
 *                       through the loss gradient w.r.t. the logits (backpropagation is linear in
 *                       it, so every layer's per-sample gradient follows and every privatizer sees
 *                       the corrupted gradient): mode 'negate' (default) sends −10·g_i; 'target'
 *                       sends 10× the gradient of the cross-entropy towards class 0 (a coordinated
 *                       attack: all Byzantine records push the same way).
 * Which records are corrupted (and the label / noise draws) comes from a seeded generator (the
 * corruption seed, default 1): reproducible, and independent of the privacy RandomSource.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset, TabularDataset } from '../data/index.js';
import { seededRandom } from '../privacy/index.js';
import { type LossOutput, softmaxCrossEntropy } from '../nn/index.js';

export type ByzantineMode = 'negate' | 'target';
export interface CorruptionSpec {
  labels?: number;
  features?: number;
  byzantine?: { fraction: number; mode: ByzantineMode };
}

/** Parses `labels:0.2,byzantine:0.1:target`; RangeError naming --corrupt on bad input. */
export function parseCorruption(spec: string): CorruptionSpec {
  const out: CorruptionSpec = {};
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [kind, frac, mode, ...rest] = item.split(':');
    const f = Number(frac);
    if (rest.length || frac === undefined || frac.trim() === '' || !(f >= 0 && f <= 1)) throw new RangeError(`--corrupt: "${item}" must be kind:fraction with a fraction in [0, 1] (kinds: labels, features, byzantine[:negate|target])`);
    if (kind === 'labels' || kind === 'features') {
      if (mode !== undefined) throw new RangeError(`--corrupt: ${kind} takes no mode, got "${item}"`);
      out[kind] = f;
    } else if (kind === 'byzantine') {
      if (mode !== undefined && mode !== 'negate' && mode !== 'target') throw new RangeError(`--corrupt: byzantine mode must be negate or target, got "${mode}"`);
      out.byzantine = { fraction: f, mode: (mode as ByzantineMode | undefined) ?? 'negate' };
    } else throw new RangeError(`--corrupt: unknown kind "${kind}" (labels, features, byzantine)`);
  }
  if (!Object.keys(out).length) throw new RangeError('--corrupt needs at least one kind:fraction item');
  return out;
}

/** ⌊f·n⌋ distinct record indices (partial Fisher–Yates), as a membership mask. */
function pick(n: number, f: number, next: () => number): Uint8Array {
  const m = Math.floor(f * n);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const mask = new Uint8Array(n);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(next() * (n - i));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
    mask[perm[i]!] = 1;
  }
  return mask;
}

export interface CorruptedData<D> {
  data: D;
  /** Byzantine record mask over the training split (undefined without byzantine). */
  byzantine?: Uint8Array;
  /** Counts actually corrupted. */
  counts: { labels: number; features: number; byzantine: number };
}

/** Returns a copy of `ds` whose training split is corrupted per `spec` (the test split is untouched). */
export function corruptDataset<D extends ImageDataset | TabularDataset>(ds: D, spec: CorruptionSpec, seed = 1): CorruptedData<D> {
  const rng = seededRandom(seed);
  const next = () => rng.nextDouble();
  const n = ds.train.count;
  const labels = Int32Array.from(ds.train.labels);
  const counts = { labels: 0, features: 0, byzantine: 0 };
  if (spec.labels) {
    const mask = pick(n, spec.labels, next);
    for (let i = 0; i < n; i++) {
      if (!mask[i]) continue;
      const shift = 1 + Math.floor(next() * (ds.numClasses - 1));
      labels[i] = (labels[i]! + shift) % ds.numClasses;
      counts.labels++;
    }
  }
  let train: typeof ds.train = { ...ds.train, labels };
  if (spec.features) {
    const mask = pick(n, spec.features, next);
    if (ds.kind === 'image') {
      const per = ds.height * ds.width * ds.channels;
      const images = Uint8Array.from((ds.train as ImageDataset['train']).images);
      const z = new Float64Array(per);
      for (let i = 0; i < n; i++) {
        if (!mask[i]) continue;
        rng.normal(z, 0.5 * 255);
        for (let k = 0; k < per; k++) images[i * per + k] = Math.max(0, Math.min(255, Math.round(images[i * per + k]! + z[k]!)));
        counts.features++;
      }
      train = { ...train, images } as typeof ds.train;
    } else {
      const d = ds.numFeatures;
      const features = Float32Array.from((ds.train as TabularDataset['train']).features);
      const z = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        if (!mask[i]) continue;
        rng.normal(z, 0.5);
        for (let k = 0; k < d; k++) features[i * d + k]! += z[k]!;
        counts.features++;
      }
      train = { ...train, features } as typeof ds.train;
    }
  }
  let byzantine: Uint8Array | undefined;
  if (spec.byzantine) {
    byzantine = pick(n, spec.byzantine.fraction, next);
    for (const b of byzantine) counts.byzantine += b;
  }
  return { data: { ...ds, train }, byzantine, counts };
}

/** Scale of the Byzantine gradients. */
export const BYZANTINE_SCALE = 10;

/**
 * The loss of one physical chunk with Byzantine rows (records `chunk[r]` with mask = 1): their
 * rows of dℓ/dlogits are replaced as described in the file comment; the reported loss and accuracy
 * are unchanged (private diagnostics of the honest computation).
 */
export function byzantineLoss(mask: Uint8Array, mode: ByzantineMode, chunk: Int32Array): ((logits: tf.Tensor, labels: tf.Tensor1D) => LossOutput) | undefined {
  const rows = Float32Array.from(chunk, (i) => (mask[i] ? 1 : 0));
  if (!rows.some((v) => v === 1)) return undefined;
  return (logits, labels) => {
    const l = softmaxCrossEntropy(logits, labels);
    const [n, c] = logits.shape as [number, number];
    const byz = tf.reshape(tf.tensor1d(rows), [n, 1]);
    const attack = mode === 'negate' ? tf.mul(l.dlogits, -BYZANTINE_SCALE) : tf.mul(tf.sub(tf.softmax(logits), tf.oneHot(tf.zeros([n], 'int32'), c)), BYZANTINE_SCALE);
    const dlogits = tf.add(tf.mul(l.dlogits, tf.sub(1, byz)), tf.mul(attack, byz));
    return { ...l, dlogits };
  };
}
