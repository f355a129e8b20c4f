import type { NpyArray } from './npy.js';
import { DataError, type DataDisclosure, type DataFactSource, type ImageDataset, type ImageSplit } from './types.js';

/**
 * Checks an image split's internal consistency: byte count = count·H·W·C, label count = count,
 * labels integral in [0, numClasses). `where` names the file (and array) in messages.
 */
export function validateImageSplit(split: ImageSplit, shape: { height: number; width: number; channels: number }, numClasses: number, where: string): void {
  const per = shape.height * shape.width * shape.channels;
  if (!Number.isInteger(split.count) || split.count < 0) throw new DataError(`${where}: invalid image count ${split.count}`);
  if (split.images.length !== split.count * per) {
    throw new DataError(`${where}: shape mismatch: ${split.count} images of ${shape.height}×${shape.width}×${shape.channels} need ${split.count * per} bytes, got ${split.images.length}`);
  }
  if (split.labels.length !== split.count) throw new DataError(`${where}: count mismatch: ${split.labels.length} labels for ${split.count} images`);
  for (let i = 0; i < split.labels.length; i++) {
    const y = split.labels[i]!;
    if (y < 0 || y >= numClasses) throw new DataError(`${where}: label ${y} at index ${i} out of range [0, ${numClasses})`);
  }
}

/** Public class facts a caller may declare (DatasetSpec `numClasses` / `classNames`). */
export interface DeclaredClasses {
  numClasses?: number;
  classNames?: readonly string[];
}

/**
 * The class count and names of a labelled image set: the declared ones when given (public input),
 * else `derive()` (e.g. max training label + 1), marked 'derived-from-data' because a run that
 * writes it releases a fact about the private labels outside the DP guarantee.
 */
export function resolveClasses(where: string, declared: DeclaredClasses, derive: () => number): { numClasses: number; classNames?: string[]; disclosure: DataDisclosure } {
  const { numClasses, classNames } = declared;
  if (numClasses !== undefined && !(Number.isInteger(numClasses) && numClasses >= 2)) throw new DataError(`${where}: numClasses must be an integer ≥ 2, got ${numClasses}`);
  if (classNames !== undefined) {
    if (classNames.length < 2) throw new DataError(`${where}: need at least 2 class names, got ${classNames.length}`);
    if (new Set(classNames).size !== classNames.length) throw new DataError(`${where}: duplicate class names in ${classNames.join(', ')}`);
    if (numClasses !== undefined && numClasses !== classNames.length) throw new DataError(`${where}: numClasses ${numClasses} but ${classNames.length} class names given`);
  }
  if (numClasses !== undefined || classNames !== undefined) {
    return {
      numClasses: numClasses ?? classNames!.length,
      ...(classNames ? { classNames: [...classNames] } : {}),
      disclosure: { numClasses: 'declared', ...(classNames ? { classNames: 'declared' as const } : {}) },
    };
  }
  return { numClasses: derive(), disclosure: { numClasses: 'derived-from-data' } };
}

/** Disclosure of a built-in set: the class list is fixed by the set, public. */
export function builtinDisclosure(withNames = true): DataDisclosure {
  return { numClasses: 'builtin', ...(withNames ? { classNames: 'builtin' as DataFactSource } : {}) };
}

/** Per-class example counts. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const c = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) c[labels[i]!]!++;
  return c;
}

/** Every class must have at least one training example (an empty class cannot be learnt or sampled). */
export function checkNoEmptyClasses(labels: ArrayLike<number>, numClasses: number, where: string, classNames?: string[]): void {
  const counts = classCounts(labels, numClasses);
  const empty = counts.map((n, k) => (n === 0 ? k : -1)).filter((k) => k >= 0);
  if (empty.length > 0) {
    const names = empty.map((k) => (classNames?.[k] !== undefined ? `${k} (${classNames[k]})` : String(k)));
    throw new DataError(`${where}: empty classes: no training examples for class${empty.length > 1 ? 'es' : ''} ${names.join(', ')} of ${numClasses}`);
  }
}

/** Full check of a loaded dataset; every loader calls it before returning. */
export function validateImageDataset(d: ImageDataset): ImageDataset {
  const shape = { height: d.height, width: d.width, channels: d.channels };
  if (![d.height, d.width].every((v) => Number.isInteger(v) && v > 0)) throw new DataError(`${d.source}: invalid image size ${d.height}×${d.width}`);
  if (d.channels !== 1 && d.channels !== 3) throw new DataError(`${d.source}: images must have 1 or 3 channels, got ${d.channels}`);
  if (!Number.isInteger(d.numClasses) || d.numClasses < 2) throw new DataError(`${d.source}: need at least 2 classes, found ${d.numClasses}`);
  if (d.train.count === 0) throw new DataError(`${d.source}: the training split is empty`);
  validateImageSplit(d.train, shape, d.numClasses, `${d.source} (train)`);
  validateImageSplit(d.test, shape, d.numClasses, `${d.source} (test)`);
  if (d.val) validateImageSplit(d.val, shape, d.numClasses, `${d.source} (val)`);
  checkNoEmptyClasses(d.train.labels, d.numClasses, d.source, d.classNames);
  return d;
}

/**
 * Converts an image array of any numeric dtype to raw bytes. Integers must lie in [0, 255].
 * Floats must be finite; if the whole array lies in [0, 1] it is scaled by 255, otherwise it must
 * lie in [0, 255]; values are rounded to the nearest byte.
 */
export function imageArrayToBytes(a: NpyArray, where: string): Uint8Array {
  if (a.dtype === 'uint8') return a.data as Uint8Array;
  const n = a.data.length;
  const out = new Uint8Array(n);
  if (a.dtype === 'float32' || a.dtype === 'float64') {
    const d = a.data as Float64Array;
    let max = -Infinity;
    let min = Infinity;
    for (let k = 0; k < n; k++) {
      const v = d[k]!;
      if (!Number.isFinite(v)) throw new DataError(`${where}: ${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Inf' : '-Inf'} pixel value at flat index ${k}`);
      if (v > max) max = v;
      if (v < min) min = v;
    }
    if (min < 0 || max > 255) throw new DataError(`${where}: float pixel values span [${min}, ${max}]; expected [0, 1] or [0, 255]`);
    const s = max <= 1 ? 255 : 1;
    for (let k = 0; k < n; k++) out[k] = Math.round(d[k]! * s);
    return out;
  }
  const d = a.data as ArrayLike<number | bigint>;
  for (let k = 0; k < n; k++) {
    const v = Number(d[k]!);
    if (v < 0 || v > 255) throw new DataError(`${where}: pixel value ${v} at flat index ${k} outside [0, 255]`);
    out[k] = v;
  }
  return out;
}

/**
 * JSON-ready description of a dataset (no pixel data) for local inspection and tests. No runner
 * writes it to a run folder: its per-class training counts are private statistics.
 */
export interface DatasetSummary {
  name: string;
  source: string;
  shape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  disclosure?: DataDisclosure;
  train: { count: number; classCounts: number[] };
  test: { count: number; classCounts: number[] };
  val?: { count: number; classCounts: number[] };
}

/**
 * JSON-ready summary. It holds NO fingerprint (the dataset's is a plain hash: a runner adds the
 * keyed one), and the per-class training counts are facts about the private data: a released
 * summary is outside the DP guarantee unless the proof treats them as public.
 */
export function summarizeDataset(d: ImageDataset): DatasetSummary {
  const split = (s: ImageSplit) => ({ count: s.count, classCounts: classCounts(s.labels, d.numClasses) });
  return {
    name: d.name,
    source: d.source,
    shape: [d.height, d.width, d.channels],
    numClasses: d.numClasses,
    ...(d.classNames ? { classNames: d.classNames } : {}),
    ...(d.disclosure ? { disclosure: d.disclosure } : {}),
    train: split(d.train),
    test: split(d.test),
    ...(d.val ? { val: split(d.val) } : {}),
  };
}
