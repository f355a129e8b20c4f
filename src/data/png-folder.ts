import { basename, join } from 'node:path';
import { isFolder, listFolder } from './fs.js';
import { fingerprintSplit } from './mnist.js';
import { readPng, type RawImage } from './png.js';
import { DataError, type ImageDataset, type ImageSplit } from './types.js';
import { validateImageDataset } from './validate.js';

/**
 * A folder of PNG images with one subfolder per class:
 *   root/<class>/*.png                      → split deterministically (below), or
 *   root/train/<class>/*.png + root/test/<class>/*.png → used as given.
 * Class order: subfolder names sorted numerically when all are integers, else lexicographically;
 * the class index is the position in that order. All images must have the same width and height;
 * if any image has colour (r ≠ g ≠ b somewhere) the whole set is loaded as RGB, else as grey.
 * Deterministic split without train/test folders: files of each class sorted by name; every 5th
 * (positions 4, 9, 14, …) goes to test, the rest to train.
 */

const EXT = /\.png$/i;

function listDirs(dir: string): string[] {
  return listFolder(dir).filter((n) => !n.startsWith('.') && isFolder(join(dir, n)));
}

function sortClassNames(names: string[]): string[] {
  if (names.every((n) => /^\d+$/.test(n))) return [...names].sort((a, b) => Number(a) - Number(b));
  return [...names].sort();
}

function listPngs(dir: string): string[] {
  return listFolder(dir)
    .filter((n) => EXT.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** True if `dir` looks like a PNG class folder (subfolders containing .png files). */
export function isPngFolder(dir: string): boolean {
  if (!isFolder(dir)) return false;
  const sub = listDirs(dir);
  const root = sub.includes('train') ? join(dir, 'train') : dir;
  return listDirs(root).some((c) => listFolder(join(root, c)).some((n) => EXT.test(n)));
}

export interface PngFolderOptions {
  name?: string;
  /**
   * Public class list: the class subfolders must be exactly these names, and class k is
   * classNames[k] (default: the folder names, sorted as above).
   */
  classNames?: string[];
}

export function loadPngFolder(dir: string, opts: PngFolderOptions = {}): ImageDataset {
  const top = listDirs(dir);
  const given = top.includes('train') && top.includes('test');
  const trainRoot = given ? join(dir, 'train') : dir;
  const folders = sortClassNames(listDirs(trainRoot));
  if (opts.classNames) {
    const declared = opts.classNames;
    const missing = declared.filter((c) => !folders.includes(c));
    const extra = folders.filter((c) => !declared.includes(c));
    if (missing.length || extra.length) {
      throw new DataError(`${trainRoot}: class subfolders (${folders.join(', ')}) differ from the declared class names (${declared.join(', ')})${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not declared: ${extra.join(', ')}` : ''}`);
    }
  }
  const classNames = opts.classNames ? [...opts.classNames] : folders;
  if (classNames.length < 2) throw new DataError(`${trainRoot}: need at least 2 class subfolders, found ${classNames.length}${classNames.length ? ` (${classNames.join(', ')})` : ''}`);
  if (given) {
    const extra = listDirs(join(dir, 'test')).filter((c) => !classNames.includes(c));
    if (extra.length) throw new DataError(`${join(dir, 'test')}: class folder(s) ${extra.join(', ')} not present in ${trainRoot}`);
  }
  const trainFiles: [string, number][] = [];
  const testFiles: [string, number][] = [];
  classNames.forEach((c, k) => {
    const files = listPngs(join(trainRoot, c));
    if (files.length === 0) throw new DataError(`${join(trainRoot, c)}: empty class: no .png files for class ${k} (${c})`);
    if (given) {
      trainFiles.push(...files.map((f): [string, number] => [f, k]));
      const t = join(dir, 'test', c);
      if (isFolder(t)) testFiles.push(...listPngs(t).map((f): [string, number] => [f, k]));
    } else {
      files.forEach((f, j) => (j % 5 === 4 ? testFiles : trainFiles).push([f, k]));
    }
  });
  // Decode everything as RGB first so we can decide grey vs colour for the whole set.
  const decode = (list: [string, number][]): RawImage[] => list.map(([f]) => readPng(f, 3));
  const trImgs = decode(trainFiles);
  const teImgs = decode(testFiles);
  const first = trImgs[0]!;
  const { width, height } = first;
  const all = [...trImgs.map((im, i) => [im, trainFiles[i]![0]] as const), ...teImgs.map((im, i) => [im, testFiles[i]![0]] as const)];
  for (const [im, f] of all) {
    if (im.width !== width || im.height !== height) throw new DataError(`${f}: shape mismatch: image is ${im.width}×${im.height} but ${trainFiles[0]![0]} is ${width}×${height}`);
  }
  let colour = false;
  outer: for (const [im] of all) {
    const d = im.data;
    for (let p = 0; p < d.length; p += 3) {
      if (d[p] !== d[p + 1] || d[p] !== d[p + 2]) {
        colour = true;
        break outer;
      }
    }
  }
  const channels = colour ? 3 : 1;
  const pack = (imgs: RawImage[], files: [string, number][]): ImageSplit => {
    const per = width * height * channels;
    const images = new Uint8Array(imgs.length * per);
    imgs.forEach((im, i) => {
      if (channels === 3) images.set(im.data, i * per);
      else for (let p = 0; p < per; p++) images[i * per + p] = im.data[3 * p]!;
    });
    return { images, labels: Int32Array.from(files.map(([, k]) => k)), count: imgs.length };
  };
  const train = pack(trImgs, trainFiles);
  const test = pack(teImgs, testFiles);
  return validateImageDataset({
    kind: 'image',
    name: opts.name ?? basename(dir),
    height,
    width,
    channels,
    numClasses: classNames.length,
    classNames,
    train,
    test,
    rawFingerprint: fingerprintSplit(train, [height, width, channels]),
    source: dir,
    disclosure: { numClasses: opts.classNames ? 'declared' : 'folder-names', classNames: opts.classNames ? 'declared' : 'folder-names' },
  });
}
