import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { statOrUndefined } from './fs.js';
import { fingerprintSplit } from './mnist.js';
import { readNpz, requireArray, toInt32Array, type NpyArray } from './npy.js';
import { DataError, type ImageBatch, type ImageDataset, type ImageSplit } from './types.js';
import { builtinDisclosure, imageArrayToBytes, resolveClasses, validateImageDataset, type DeclaredClasses } from './validate.js';

/**
 * Image datasets stored as .npz. Recognised key layouts, first match wins:
 *  - MedMNIST: train_images, train_labels, test_images, test_labels, optional val_images/val_labels;
 *  - Keras:    x_train, y_train, x_test, y_test;
 *  - dplens synthetic output: images, labels (train only; the test split is empty).
 * Images (N,H,W) or (N,H,W,C) with C ∈ {1,3}, any integer dtype in [0,255] or float in [0,1]/[0,255].
 * Labels (N) or (N,1), integers; numClasses = max label + 1 unless given.
 */

interface Layout {
  train: [string, string];
  test?: [string, string];
  val?: [string, string];
}

const LAYOUTS: Layout[] = [
  { train: ['train_images', 'train_labels'], test: ['test_images', 'test_labels'], val: ['val_images', 'val_labels'] },
  { train: ['x_train', 'y_train'], test: ['x_test', 'y_test'] },
  { train: ['images', 'labels'] },
];

interface RawSplit {
  images: Uint8Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

function splitFromArrays(file: string, im: NpyArray, lb: NpyArray, imName: string, lbName: string): RawSplit {
  const where = `${file}:${imName}`;
  const s = im.shape;
  let channels: number;
  if (s.length === 3) channels = 1;
  else if (s.length === 4 && (s[3] === 1 || s[3] === 3)) channels = s[3]!;
  else throw new DataError(`${where}: shape mismatch: expected images of shape (N, H, W) or (N, H, W, C) with C = 1 or 3, got (${s.join(', ')})`);
  const lbShape = lb.shape;
  if (!(lbShape.length === 1 || (lbShape.length === 2 && lbShape[1] === 1))) {
    throw new DataError(`${file}:${lbName}: shape mismatch: expected labels of shape (N) or (N, 1), got (${lbShape.join(', ')})`);
  }
  if (lbShape[0] !== s[0]) throw new DataError(`${file}:${lbName}: count mismatch: ${lbShape[0]} labels for ${s[0]} images in ${imName}`);
  const labels = toInt32Array(lb, `${file}:${lbName}`);
  return { images: imageArrayToBytes(im, where), labels, count: s[0]!, height: s[1]!, width: s[2]!, channels };
}

export interface NpzDatasetOptions extends DeclaredClasses {
  name?: string;
}

/** Loads a MedMNIST/Keras/dplens-style .npz of images and labels. */
export function loadNpzDataset(file: string, opts: NpzDatasetOptions = {}): ImageDataset {
  const arrays = readNpz(file);
  const layout = LAYOUTS.find((l) => l.train[0] in arrays || l.train[1] in arrays);
  if (!layout) {
    throw new DataError(`${file}: missing arrays: expected train_images/train_labels (MedMNIST), x_train/y_train (Keras) or images/labels; archive holds: ${Object.keys(arrays).sort().join(', ')}`);
  }
  const get = (pair: [string, string]): RawSplit => splitFromArrays(file, requireArray(arrays, pair[0], file), requireArray(arrays, pair[1], file), pair[0], pair[1]);
  const train = get(layout.train);
  const test = layout.test ? get(layout.test) : undefined;
  const val = layout.val && (layout.val[0] in arrays || layout.val[1] in arrays) ? get(layout.val) : undefined;
  for (const [nm, sp] of [['test', test], ['val', val]] as const) {
    if (sp && (sp.height !== train.height || sp.width !== train.width || sp.channels !== train.channels)) {
      throw new DataError(`${file}: shape mismatch: train images are ${train.height}×${train.width}×${train.channels} but ${nm} images are ${sp.height}×${sp.width}×${sp.channels}`);
    }
  }
  const classes = resolveClasses(file, opts, () => {
    let maxLabel = -1;
    for (const y of train.labels) if (y > maxLabel) maxLabel = y;
    return Math.max(2, maxLabel + 1);
  });
  const numClasses = classes.numClasses;
  const asSplit = (r: RawSplit): ImageSplit => ({ images: r.images, labels: r.labels, count: r.count });
  const trainSplit = asSplit(train);
  const empty: ImageSplit = { images: new Uint8Array(0), labels: new Int32Array(0), count: 0 };
  return validateImageDataset({
    kind: 'image',
    name: opts.name ?? basename(file).replace(/\.npz$/i, ''),
    height: train.height,
    width: train.width,
    channels: train.channels,
    numClasses,
    ...(classes.classNames ? { classNames: classes.classNames } : {}),
    train: trainSplit,
    test: test ? asSplit(test) : empty,
    ...(val ? { val: asSplit(val) } : {}),
    rawFingerprint: fingerprintSplit(trainSplit, [train.height, train.width, train.channels]),
    source: file,
    disclosure: classes.disclosure,
  });
}

/** Repository root (this file is src/data/*.ts or dist/data/*.js). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Where `--data pneumonia` looks, in order. */
export function pneumoniaCandidates(): string[] {
  const rel = join('..', 'shared', 'data', 'pneumoniamnist.npz');
  const c = [resolve(repoRoot(), rel), resolve(process.cwd(), rel), resolve(process.cwd(), 'shared', 'data', 'pneumoniamnist.npz')];
  return [...new Set(c)];
}

/** The pneumonia npz path if present, else undefined. */
export function findPneumoniaNpz(): string | undefined {
  return pneumoniaCandidates().find((p) => statOrUndefined(p) !== undefined);
}

export const PNEUMONIA_CLASSES = ['normal', 'pneumonia'] as const;

/**
 * PneumoniaMNIST subset (2,428 train / 270 val / 468 test chest X-rays, 28×28 grey, 0 = normal,
 * 1 = pneumonia) from ../shared/data/pneumoniamnist.npz, or from `path`.
 */
export function loadPneumonia(path?: string): ImageDataset {
  const file = path ?? findPneumoniaNpz();
  if (!file) {
    throw new DataError(`pneumonia: pneumoniamnist.npz not found (looked in ${pneumoniaCandidates().join(', ')}); pass --data-path <file.npz>`);
  }
  return { ...loadNpzDataset(file, { name: 'pneumonia', classNames: [...PNEUMONIA_CLASSES] }), disclosure: builtinDisclosure() };
}

/**
 * Reads one images/labels pair from an .npz (default keys `images`/`labels`, as written by
 * `dplens synth`), with the same checks as the dataset loaders (shape, count, NaN/Inf, range),
 * and labels checked against `numClasses` when given. Unlike loadNpzDataset, classes may be
 * empty (a generator may emit few or no samples of a class). `expect` checks H, W, C.
 */
export function readImageNpz(
  file: string,
  opts: { imagesKey?: string; labelsKey?: string; numClasses?: number; expect?: { height?: number; width?: number; channels?: number } } = {},
): ImageBatch {
  const arrays = readNpz(file);
  const ik = opts.imagesKey ?? 'images';
  const lk = opts.labelsKey ?? 'labels';
  const s = splitFromArrays(file, requireArray(arrays, ik, file), requireArray(arrays, lk, file), ik, lk);
  const e = opts.expect ?? {};
  for (const dim of ['height', 'width', 'channels'] as const) {
    if (e[dim] !== undefined && e[dim] !== s[dim]) {
      throw new DataError(`${file}:${ik}: shape mismatch: images are ${s.height}×${s.width}×${s.channels} (H×W×C), expected ${e.height ?? s.height}×${e.width ?? s.width}×${e.channels ?? s.channels}`);
    }
  }
  const k = opts.numClasses;
  for (let i = 0; i < s.labels.length; i++) {
    const y = s.labels[i]!;
    if (y < 0 || (k !== undefined && y >= k)) throw new DataError(`${file}:${lk}: label ${y} at index ${i} out of range [0, ${k ?? '∞'})`);
  }
  return s;
}
