import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, loadAnyDataset, loadCsvDataset, loadTabularDataset, parseCsv } from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-csv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function csvFile(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

function expectDataError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

// 10 rows: rows 4 and 9 (0-based) form the test split with the default testEvery = 5.
const PEOPLE = [
  'age,city,"income, k$",outcome',
  '30,Paris,50,yes',
  '40,Lyon,60,no',
  '50,"Paris",70,yes',
  '20,Nice,40,no',
  '35,Lyon,55,yes', // test
  '45,Paris,65,no',
  '25,"Ni""ce",45,yes',
  '55,Lyon,75,no',
  '60,Paris,80,yes',
  '33,Rome,52,no', // test: unseen city → all-zero one-hot
].join('\r\n');

test('CSV: schema inference, label column by name, standardisation and one-hot from the training split', () => {
  const d = loadAnyDataset({ path: csvFile('people.csv', PEOPLE + '\r\n'), labelColumn: 'outcome' });
  assert.equal(d.kind, 'tabular');
  if (d.kind !== 'tabular') return;
  assert.equal(d.name, 'people');
  assert.deepEqual(d.classNames, ['no', 'yes']);
  assert.equal(d.train.count, 8);
  assert.equal(d.test.count, 2);
  assert.deepEqual(
    d.columns.map((c) => [c.name, c.kind, c.offset, c.width]),
    [
      ['age', 'numeric', 0, 1],
      ['city', 'categorical', 1, 4],
      ['income, k$', 'numeric', 5, 1],
    ],
  );
  const city = d.columns[1]!;
  assert.ok(city.kind === 'categorical');
  assert.deepEqual(city.categories, ['Lyon', 'Ni"ce', 'Nice', 'Paris']);
  const age = d.columns[0]!;
  assert.ok(age.kind === 'numeric');
  const trainAges = [30, 40, 50, 20, 45, 25, 55, 60];
  const mean = trainAges.reduce((a, b) => a + b) / 8;
  const std = Math.sqrt(trainAges.reduce((a, b) => a + (b - mean) ** 2, 0) / 8);
  assert.ok(Math.abs(age.mean - mean) < 1e-12 && Math.abs(age.std - std) < 1e-12);
  assert.equal(d.numFeatures, 6);
  // Row 0: age 30, Paris, 50, yes.
  const f0 = Array.from(d.train.features.subarray(0, 6));
  assert.ok(Math.abs(f0[0]! - (30 - mean) / std) < 1e-6);
  assert.deepEqual(f0.slice(1, 5), [0, 0, 0, 1]);
  assert.equal(d.train.labels[0], 1);
  // Test row 2 (Rome) is unseen: all-zero one-hot; its label 'no' → 0.
  assert.deepEqual(Array.from(d.test.features.subarray(6 + 1, 6 + 5)), [0, 0, 0, 0]);
  assert.deepEqual(Array.from(d.test.labels), [1, 0]);
  // Standardised training features have mean 0, std 1.
  let s = 0;
  let ss = 0;
  for (let i = 0; i < 8; i++) {
    s += d.train.features[i * 6]!;
    ss += d.train.features[i * 6]! ** 2;
  }
  assert.ok(Math.abs(s / 8) < 1e-6 && Math.abs(ss / 8 - 1) < 1e-5);
  assert.match(d.rawFingerprint, /^[0-9a-f]{64}$/);
  assert.equal(loadTabularDataset({ path: join(dir, 'people.csv'), labelColumn: 'outcome' }).rawFingerprint, d.rawFingerprint);
});

test('CSV: overrides (numeric codes as categorical, ignore a column), default label column, separate test file', () => {
  const text = ['id,zip,x,label', '1,75001,0.5,0', '2,69001,1.5,1', '3,75001,2.5,0', '4,69001,3.5,1'].join('\n');
  const train = csvFile('train.csv', text);
  const test = csvFile('test.csv', ['id,zip,x,label', '5,75001,1e0,1'].join('\n'));
  const d = loadCsvDataset(train, { columns: { zip: 'categorical', id: 'ignore' }, testPath: test });
  assert.equal(d.labelColumn, 'label');
  assert.deepEqual(d.classNames, ['0', '1']);
  assert.deepEqual(
    d.columns.map((c) => [c.name, c.kind, c.width]),
    [
      ['zip', 'categorical', 2],
      ['x', 'numeric', 1],
    ],
  );
  assert.equal(d.train.count, 4);
  assert.equal(d.test.count, 1);
  assert.deepEqual(Array.from(d.test.features.subarray(0, 2)), [0, 1]); // '75001' is the second sorted category
  // Inference without overrides: zip and id are numeric.
  const inferred = loadCsvDataset(train, { testPath: test });
  assert.deepEqual(
    inferred.columns.map((c) => c.kind),
    ['numeric', 'numeric', 'numeric'],
  );
  // Different schema → different fingerprint.
  assert.notEqual(inferred.rawFingerprint, d.rawFingerprint);
  // Last column is the label when no label/class/target/y column exists; TSV by extension.
  const tsv = csvFile('t.tsv', 'a\tb\tkind\n1\tu\tcat\n2\tv\tdog\n3\tu\tcat\n');
  const t = loadTabularDataset({ path: tsv });
  assert.equal(t.labelColumn, 'kind');
  assert.deepEqual(t.classNames, ['cat', 'dog']);
  assert.deepEqual(parseCsv('a,b\n\n1,"x\ny"\n', 'q.csv').rows, [['1', 'x\ny']]);
});

test('CSV errors name the file, the line and the column', () => {
  expectDataError(() => loadCsvDataset(csvFile('arity.csv', 'a,b,label\n1,2,x\n3,4,y\n5,6\n7,8,x\n')), /arity\.csv: line 4: wrong number of fields: 2, expected 3/);
  // Line numbers count physical lines, including newlines inside quoted fields.
  expectDataError(() => loadCsvDataset(csvFile('arity2.csv', 'a,b,label\n1,"two\nlines",x\n3,4,y,extra\n')), /arity2\.csv: line 4: wrong number of fields: 4, expected 3/);
  expectDataError(() => loadCsvDataset(csvFile('nan.csv', 'a,b,label\n1,2,x\n3,NaN,y\n5,6,x\n')), /nan\.csv: line 3, column 'b': NaN is not allowed/);
  expectDataError(() => loadCsvDataset(csvFile('inf.csv', 'a,b,label\n1,2,x\n3,-inf,y\n5,6,x\n')), /inf\.csv: line 3, column 'b': Inf is not allowed/);
  expectDataError(() => loadCsvDataset(csvFile('ovf.csv', 'a,b,label\n1,2,x\n3,1e999,y\n5,6,x\n')), /ovf\.csv: line 3, column 'b': Inf is not allowed/);
  expectDataError(() => loadCsvDataset(csvFile('missing.csv', 'a,b,label\n1,,x\n3,4,y\n')), /missing\.csv: line 2, column 'b': missing numeric value/);
  expectDataError(() => loadCsvDataset(csvFile('forced.csv', 'a,b,label\n1,abc,x\n3,4,y\n'), { columns: { b: 'numeric' } }), /forced\.csv: line 2, column 'b': 'abc' is not a number/);
  expectDataError(() => loadCsvDataset(csvFile('one.csv', 'a,label\n1,x\n2,x\n3,x\n')), /one\.csv: label column 'label' has 1 distinct value\(s\) in the training split; need at least 2 classes/);
  expectDataError(() => loadCsvDataset(csvFile('nolabel.csv', 'a,b\n1,x\n'), { labelColumn: 'y' }), /nolabel\.csv: label column 'y' not in header \(a, b\)/);
  expectDataError(() => loadCsvDataset(csvFile('unseen.csv', 'a,label\n1,x\n2,y\n3,x\n4,y\n5,z\n')), /unseen\.csv: line 6: label 'z' in the test split does not occur in the training split \(classes: x, y\)/);
  expectDataError(() => loadCsvDataset(csvFile('quote.csv', 'a,label\n1,"x\n')), /quote\.csv: line 2: unterminated quoted field/);
  expectDataError(() => loadCsvDataset(csvFile('dup.csv', 'a,a,label\n1,2,x\n')), /dup\.csv: duplicate column name 'a' in header/);
  expectDataError(() => loadCsvDataset(csvFile('empty.csv', '\n\n')), /empty\.csv: empty CSV file/);
  expectDataError(() => loadCsvDataset(csvFile('hdr.csv', 'a,label\n1,x\n'), { testPath: csvFile('hdr2.csv', 'a,lbl\n1,x\n') }), /hdr2\.csv: header \(a, lbl\) differs from .*hdr\.csv \(a, label\)/);
});
