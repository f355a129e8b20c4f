/**
 * Issue 12 (data layer) and issue 13 item 6: what a loaded dataset lets a run release, silent CSV
 * results, errors that name the file, and the one loader entry / one image-batch type.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as data from '../src/data/index.js';
import { DataError, encodePng, loadCsvDataset, loadDataset, loadMnist, readImageNpz, readNpz, readPng, summarizeDataset, writeNpz, writePngGrid, type ImageBatch } from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-data-release-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function expectDataError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    assert.equal(e.message.split('\n').length, 1, 'one line');
    return true;
  });
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** A small npz of 3 classes (labels 0..2), 4×4 grey. */
function smallNpz(name: string): string {
  const f = join(dir, name);
  const n = 9;
  writeNpz(f, {
    train_images: { dtype: 'uint8', shape: [n, 4, 4], data: Uint8Array.from({ length: n * 16 }, (_, k) => k % 256) },
    train_labels: { dtype: 'int64', shape: [n], data: Array.from({ length: n }, (_, i) => i % 3) },
    test_images: { dtype: 'uint8', shape: [3, 4, 4], data: new Uint8Array(48) },
    test_labels: { dtype: 'uint8', shape: [3], data: [0, 1, 2] },
  });
  return f;
}

// ------------------------------------------------------------------------- #2 raw fingerprint

test('#2: the plain SHA-256 is named rawFingerprint (internal); no `fingerprint` field and none in the released summary', () => {
  const d = loadDataset({ path: smallNpz('fp.npz') });
  assert.match(d.rawFingerprint, /^[0-9a-f]{64}$/);
  assert.equal('fingerprint' in d, false, 'a field named plain `fingerprint` invites releasing the plain hash');
  const sum = JSON.parse(JSON.stringify(summarizeDataset(d))) as Record<string, unknown>;
  assert.equal(JSON.stringify(sum).includes(d.rawFingerprint), false, 'the summary (for config.json) must not carry the plain hash');
  const t = loadCsvDataset(file('fp.csv', 'a,label\n1,x\n2,y\n3,x\n4,y\n'));
  assert.match(t.rawFingerprint, /^[0-9a-f]{64}$/);
  assert.equal('fingerprint' in t, false);
});

// ------------------------------------------------------------------------- #3 class list, schema, statistics

test('#3: npz/idx class count is derived-from-data unless declared; declared numClasses/classNames are public input', () => {
  const f = smallNpz('classes.npz');
  const derived = loadDataset({ path: f });
  assert.equal(derived.numClasses, 3);
  assert.deepEqual(derived.disclosure, { numClasses: 'derived-from-data' });
  const facts = data.disclosedFacts(derived);
  assert.deepEqual(facts.map((x) => [x.what, x.status]), [['class count (3)', 'outside-guarantee']]);
  // The same for an idx folder: written from the npz's arrays.
  const idx = join(dir, 'idx3');
  mkdirSync(idx);
  const hdr = (magic: number, dims: number[]) => Buffer.concat([Buffer.from([0, 0, 8, magic]), ...dims.map((v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; })]);
  writeFileSync(join(idx, 'train-images-idx3-ubyte'), Buffer.concat([hdr(3, [derived.train.count, 4, 4]), derived.train.images]));
  writeFileSync(join(idx, 'train-labels-idx1-ubyte'), Buffer.concat([hdr(1, [derived.train.count]), Uint8Array.from(derived.train.labels)]));
  writeFileSync(join(idx, 't10k-images-idx3-ubyte'), Buffer.concat([hdr(3, [derived.test.count, 4, 4]), derived.test.images]));
  writeFileSync(join(idx, 't10k-labels-idx1-ubyte'), Buffer.concat([hdr(1, [derived.test.count]), Uint8Array.from(derived.test.labels)]));
  assert.deepEqual(loadDataset({ path: idx }).disclosure, { numClasses: 'derived-from-data' });
  const idxDeclared = loadDataset({ path: idx, classNames: ['u', 'v', 'w'] });
  assert.deepEqual([idxDeclared.numClasses, idxDeclared.classNames, idxDeclared.disclosure], [3, ['u', 'v', 'w'], { numClasses: 'declared', classNames: 'declared' }]);
});

test('#3: declared class facts are marked declared, built-ins builtin, and mismatches are errors', () => {
  const f = smallNpz('classes2.npz');
  expectDataError(() => loadDataset({ path: f, numClasses: 4 }), /classes2\.npz: empty classes: no training examples for class 3 of 4/);
  const d = loadDataset({ path: f, classNames: ['cat', 'dog', 'eel'] });
  assert.equal(d.numClasses, 3);
  assert.deepEqual(d.classNames, ['cat', 'dog', 'eel']);
  assert.deepEqual(d.disclosure, { numClasses: 'declared', classNames: 'declared' });
  assert.ok(data.disclosedFacts(d).every((x) => x.status === 'public-by-assumption'));
  expectDataError(() => loadDataset({ path: f, numClasses: 2, classNames: ['a', 'b', 'c'] }), /classes2\.npz: numClasses 2 but 3 class names given/);
  expectDataError(() => loadDataset({ path: f, numClasses: 2 }), /classes2\.npz \(train\): label 2 at index 2 out of range \[0, 2\)/);
  const m = loadMnist();
  assert.deepEqual(m.disclosure, { numClasses: 'builtin', classNames: 'builtin' });
  expectDataError(() => loadDataset({ name: 'mnist', numClasses: 5 }), /mnist: has 10 classes, but numClasses 5 was given/);
});

test('#3: PNG folder classes are folder names unless declared; declared names must match the folders', () => {
  const root = join(dir, 'pngs');
  for (const c of ['b', 'a']) {
    mkdirSync(join(root, c), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, c, `${i}.png`), encodePng(new Uint8Array(4).fill(c === 'a' ? 10 : 200), { width: 2, height: 2, channels: 1 }));
  }
  const d = loadDataset({ path: root });
  assert.deepEqual(d.classNames, ['a', 'b']);
  assert.deepEqual(d.disclosure, { numClasses: 'folder-names', classNames: 'folder-names' });
  const declared = loadDataset({ path: root, classNames: ['b', 'a'] });
  assert.deepEqual(declared.classNames, ['b', 'a']);
  assert.equal(declared.train.labels[0], declared.train.images[0] === 200 ? 0 : 1);
  assert.deepEqual(declared.disclosure, { numClasses: 'declared', classNames: 'declared' });
  expectDataError(() => loadDataset({ path: root, classNames: ['a', 'c'] }), /pngs: class subfolders \(a, b\) differ from the declared class names \(a, c\); missing: c; not declared: b/);
});

test('#3: CSV schema and statistics are marked derived-from-data with what they reveal; publicColumns leaves them out', () => {
  // 'city' has a category that occurs in exactly one training record ('Zermatt').
  const f = file('stats.csv', ['age,city,label', '30,Paris,yes', '40,Lyon,no', '50,Paris,yes', '20,Zermatt,no', '35,Lyon,yes', '45,Paris,no', '25,Lyon,yes'].join('\n'));
  const d = loadCsvDataset(f, { testEvery: 100 });
  assert.equal(d.disclosure?.schema, 'derived-from-data');
  assert.equal(d.disclosure?.numClasses, 'derived-from-data');
  const stats = d.disclosure?.statistics ?? [];
  assert.deepEqual(stats.map((s) => s.column), ['age', 'city', 'label']);
  assert.match(stats[1]!.reveals, /1 value\(s\) occur in exactly one record/);
  const facts = data.disclosedFacts(d);
  assert.ok(facts.some((x) => x.status === 'outside-guarantee' && /CSV encoding of 'city': category list \(3 distinct values/.test(x.what)));
  assert.ok(facts.some((x) => x.status === 'outside-guarantee' && /^CSV schema/.test(x.what)));
  // By default nothing data-derived goes into released files: the singleton category is absent.
  const pub = data.publicColumns(d);
  assert.equal(JSON.stringify(pub).includes('Zermatt'), false);
  assert.deepEqual(pub.map((c) => [c.name, c.kind, c.offset, c.width]), [['age', 'numeric', 0, 1], ['city', 'categorical', 1, 3]]);
  assert.equal(JSON.stringify(pub).includes('mean'), false);
});

test('#3: a CSV with every encoding and the class list declared is data-independent (public schema, no statistics)', () => {
  const f = file('declared.csv', ['age,city,label', '30,Paris,yes', '40,Lyon,no', '50,Paris,yes', '20,Lyon,no'].join('\n'));
  const d = loadCsvDataset(f, { testEvery: 100, classNames: ['no', 'yes'], columns: { age: { kind: 'numeric', min: 0, max: 100 }, city: { kind: 'categorical', categories: ['Lyon', 'Paris', 'Nice'] } } });
  assert.deepEqual(d.disclosure, { numClasses: 'declared', classNames: 'declared', schema: 'declared', statistics: [] });
  assert.ok(data.disclosedFacts(d).every((x) => x.status === 'public-by-assumption'));
  assert.deepEqual(d.columns.map((c) => c.width), [1, 3]);
  assert.ok(Math.abs(d.train.features[0]! - (30 - 50) / 50) < 1e-6, 'age 30 in [0, 100] → −0.4');
  assert.deepEqual(data.publicColumns(d), d.columns);
  expectDataError(
    () => loadCsvDataset(f, { testEvery: 100, columns: { age: { kind: 'numeric', min: 0, max: 45 } } }),
    /declared\.csv: line 4, column 'age': 50 is outside the declared range \[0, 45\]/,
  );
  expectDataError(
    () => loadCsvDataset(f, { testEvery: 100, columns: { city: { kind: 'categorical', categories: ['Paris'] } } }),
    /declared\.csv: line 3, column 'city': 'Lyon' is not one of the declared categories \(Paris\)/,
  );
  expectDataError(() => loadCsvDataset(f, { testEvery: 100, classNames: ['yes', 'maybe'] }), /declared\.csv: line 3: label 'no' is not one of the declared class names \(yes, maybe\)/);
});

// ------------------------------------------------------------------------- silent results

test('silent result: one "abc" in a mostly numeric CSV column is an error naming file, line, column and value', () => {
  const rows = ['x,y,label'];
  for (let i = 0; i < 20; i++) rows.push(`${i},${i % 3},${i % 2 ? 'a' : 'b'}`);
  rows[8] = '7,abc,a';
  const f = file('typo.csv', rows.join('\n'));
  expectDataError(() => loadCsvDataset(f), /typo\.csv: line 9, column 'y': 'abc' is not a number, but 19 of 20 cells of 'y' are numbers; .*columns: \{ 'y': 'categorical' \}, CLI --categorical y/);
  // The explicit choice is accepted.
  const d = loadCsvDataset(f, { columns: { y: 'categorical' } });
  assert.equal(d.columns.find((c) => c.name === 'y')?.kind, 'categorical');
  // A genuinely categorical column with a few numeric-looking values stays categorical.
  const cat = loadCsvDataset(file('cat.csv', 'size,label\nS,a\nM,b\nL,a\n10,b\nS,a\nM,b\n'));
  assert.equal(cat.columns[0]!.kind, 'categorical');
});

// ------------------------------------------------------------------------- errors naming the file

test('errors name the file: truncated / non-PNG, unwritable outputs (no raw EEXIST/ENOTDIR), dangling links, corrupt npz/npy', () => {
  const png = encodePng(new Uint8Array(16 * 16).fill(7), { width: 16, height: 16, channels: 1 });
  const cut = file('cut.png', '');
  writeFileSync(cut, png.subarray(0, png.length - 30));
  expectDataError(() => readPng(cut), /cut\.png: cannot decode PNG: truncated file/);
  const notPng = file('not.png', 'hello world');
  expectDataError(() => readPng(notPng), /not\.png: cannot decode PNG: wrong magic number 0x68656c6c6f20776f .*not a PNG file/);
  // Writing below a regular file: a one-line DataError naming the target, nothing left behind.
  const blocker = file('blocker', 'x');
  expectDataError(() => writeNpz(join(blocker, 'sub', 'a.npz'), { a: { dtype: 'uint8', shape: [1], data: [1] } }), /blocker\/sub\/a\.npz: cannot write \((EEXIST|ENOTDIR): /);
  expectDataError(() => writePngGrid(join(blocker, 'g.png'), new Uint8Array(4), [0], { height: 2, width: 2, channels: 1, numClasses: 1, perClass: 1 }), /blocker\/g\.png: cannot write \((EEXIST|ENOTDIR): /);
  // A dangling symbolic link inside a PNG class folder tree is not a raw ENOENT.
  const root = join(dir, 'dangling');
  mkdirSync(join(root, 'a'), { recursive: true });
  mkdirSync(join(root, 'b'), { recursive: true });
  writeFileSync(join(root, 'a', '0.png'), png);
  writeFileSync(join(root, 'b', '0.png'), png);
  symlinkSync(join(dir, 'nowhere'), join(root, 'c'));
  symlinkSync(join(dir, 'nowhere.png'), join(root, 'b', '1.png'));
  expectDataError(() => loadDataset({ path: root }), /dangling\/b\/1\.png: cannot read \(ENOENT\)/);
  expectDataError(() => readNpz(join(dir, 'missing.npz')), /missing\.npz: cannot read \(ENOENT\)/);
  const good = smallNpz('corrupt.npz');
  const bytes = readFileSync(good);
  writeFileSync(good, bytes.subarray(0, bytes.length - 40));
  expectDataError(() => readNpz(good), /corrupt\.npz: corrupt zip\/\.npz archive/);
  expectDataError(() => data.readNpy(file('bad.npy', 'NUMPY!')), /bad\.npy: (wrong magic number|truncated)/);
});

// ------------------------------------------------------------------------- issue 13 item 6

test('one loader entry: loadDataset takes a --data value or a spec, `expect` picks images/tables, CSV options on images are errors', () => {
  const m = loadDataset('mnist');
  assert.equal(m.name, 'mnist');
  assert.equal(m.rawFingerprint, loadMnist().rawFingerprint);
  const csv = file('entry.csv', 'a,label\n1,x\n2,y\n3,x\n4,y\n5,x\n');
  const any = loadDataset({ path: csv, expect: 'any' });
  assert.equal(any.kind, 'tabular');
  assert.equal(loadDataset({ path: csv, expect: 'tabular' }).labelColumn, 'label');
  expectDataError(() => loadDataset({ path: csv }), /entry\.csv: this is a table \(CSV\), but an image dataset is needed here/);
  expectDataError(() => loadDataset({ path: csv, expect: 'tabular', numClasses: 2 }), /entry\.csv: a CSV's classes are label texts; declare them with classNames/);
  const npz = smallNpz('entry.npz');
  expectDataError(() => loadDataset({ path: npz, expect: 'any', labelColumn: 'y' }), /label column 'y' given, but .*entry\.npz is an image dataset/);
  expectDataError(() => loadDataset({ path: npz, expect: 'any', testEvery: 3, delimiter: ';' }), /entry\.npz: delimiter, testEvery only apply to CSV tables, but this is an npz of images/);
  expectDataError(() => loadDataset({ path: npz, expect: 'tabular' }), /entry\.npz: this is an image dataset, but a CSV table is needed here/);
});

test('one image-batch type: readImageNpz returns ImageBatch; data/ imports nothing from other project folders but util/', () => {
  const f = join(dir, 'synthetic.npz');
  writeNpz(f, { images: { dtype: 'uint8', shape: [2, 2, 2], data: new Uint8Array(8) }, labels: { dtype: 'int32', shape: [2], data: [0, 1] } });
  const b: ImageBatch = readImageNpz(f, { numClasses: 2 });
  assert.deepEqual([b.count, b.height, b.width, b.channels], [2, 2, 2, 1]);
  const srcDir = join(import.meta.dirname, '..', 'src', 'data');
  for (const name of readdirSync(srcDir).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(join(srcDir, name), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']*)'/g)) {
      assert.ok(m[1]!.startsWith('./') || m[1]!.startsWith('../util/'), `src/data/${name} imports ${m[1]} (data/ is the ground floor: only ./ and ../util/)`);
    }
  }
});
