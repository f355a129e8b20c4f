/**
 * CSV tables end to end through the CLI: `dplens train --data table.csv --label COLUMN` trains an
 * MLP with DP-SGD on the encoded features (standardised numerics, one-hot categoricals), and bad
 * tables or flags exit 2 with one line that names the problem.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'dplens-csv-train-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN = join('src', 'cli', 'main.ts');

function dplens(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, DPLENS_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A patient table shaped like real clinical data: three numeric columns, three categorical ones and
 * a text label drawn from a logistic model of the features (so the label is learnable, not
 * determined). Deterministic (LCG), 1,500 rows.
 */
function patientsCsv(rows: number): { text: string; sickShare: number } {
  let s = 12345;
  const r = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const gauss = (): number => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const lines = ['age,bmi,systolic,sex,smoker,region,outcome'];
  let sick = 0;
  for (let i = 0; i < rows; i++) {
    const age = Math.round(20 + 60 * r());
    const bmi = +(22 + 5 * gauss()).toFixed(1);
    const sys = Math.round(120 + 15 * gauss());
    const sex = r() < 0.5 ? 'F' : 'M';
    const smoker = r() < 0.3 ? 'yes' : 'no';
    const region = ['north', 'south', 'east', 'west'][Math.floor(r() * 4)]!;
    const z = 0.08 * (age - 50) + 0.2 * (bmi - 22) + 0.04 * (sys - 120) + (smoker === 'yes' ? 1.5 : 0) + (region === 'south' ? 0.7 : 0) - 0.3;
    const y = r() < 1 / (1 + Math.exp(-z)) ? 'sick' : 'healthy';
    if (y === 'sick') sick++;
    lines.push([age, bmi, sys, sex, smoker, region, y].join(','));
  }
  return { text: lines.join('\n') + '\n', sickShare: sick / rows };
}

const { text, sickShare } = patientsCsv(1500);
const csv = join(dir, 'patients.csv');
writeFileSync(csv, text);

test('dplens train --data table.csv --label COLUMN: DP-SGD MLP beats the majority class within the budget', () => {
  const out = join(dir, 'run');
  const r = dplens('train', '--data', csv, '--label', 'outcome', '--epochs', '4', '--batch', '50', '--target-epsilon', '3', '--lr', '0.1', '--out', out, '--threads', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim()) as { epsilon: number; testAccuracy: number; steps: number };
  assert.ok(res.epsilon > 0 && res.epsilon <= 3 * (1 + 1e-9), `epsilon ${res.epsilon}`);
  const majority = Math.max(sickShare, 1 - sickShare);
  // 300 test rows: the standard error of an accuracy near 0.8 is ~0.023; the features explain far
  // more than the majority rate, so a model that learned nothing fails this.
  assert.ok(res.testAccuracy > majority + 0.08, `test accuracy ${res.testAccuracy} vs majority ${majority}`);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.config.model, 'mlp');
  assert.equal(config.derived.labelColumn, 'outcome');
  assert.deepEqual(
    config.derived.columns.map((c: { name: string; kind: string; width: number }) => [c.name, c.kind, c.width]),
    [
      ['age', 'numeric', 1],
      ['bmi', 'numeric', 1],
      ['systolic', 'numeric', 1],
      ['sex', 'categorical', 2],
      ['smoker', 'categorical', 2],
      ['region', 'categorical', 4],
    ],
  );
  assert.match(config.derived.encodingNote, /not covered by epsilon/);
  assert.deepEqual(config.dataset.shape, [11]);
  assert.deepEqual(config.command.slice(0, 5), ['dplens', 'train', '--data', csv, '--label']);
  const model = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  assert.deepEqual(model.inputShape, [11]);
  assert.deepEqual(model.meta.classNames, ['healthy', 'sick']);
  // the ledger accounts for every DP-SGD step (entries are runs of self-composed steps), with the
  // table's fingerprint
  const entries = readFileSync(join(out, 'ledger.jsonl'), 'utf8').trim().split('\n').slice(1).map((l) => JSON.parse(l));
  assert.equal(entries.reduce((n: number, e: { event: { count: number } }) => n + e.event.count, 0), res.steps);
  for (const e of entries) assert.equal(e.datasetFingerprint, config.dataset.fingerprint);
});

test('dplens train on a CSV: bad tables and flags exit 2 with one line naming the problem', async () => {
  const oneLine = (r: { code: number | null; stderr: string; stdout: string }, re: RegExp): void => {
    assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^\(node:\d+\)|--trace-warnings/.test(l));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, re);
    assert.equal(r.stdout, '');
  };
  const args = ['--noise', '1', '--epochs', '0.1', '--batch', '10', '--out', join(dir, 'bad'), '--json'];
  const arity = join(dir, 'arity.csv');
  const lines = text.split('\n');
  lines[7] = lines[7]! + ',extra';
  writeFileSync(arity, lines.slice(0, 60).join('\n') + '\n');
  oneLine(dplens('train', '--data', arity, '--label', 'outcome', ...args), /^dplens train: .*arity\.csv: line 8: wrong number of fields: 8, expected 7/);
  const nan = join(dir, 'nan.csv');
  const nl = text.split('\n');
  nl[5] = nl[5]!.replace(/^\d+,/, 'NaN,');
  writeFileSync(nan, nl.slice(0, 60).join('\n') + '\n');
  oneLine(dplens('train', '--data', nan, '--label', 'outcome', ...args), /^dplens train: .*nan\.csv: line 6.*age.*NaN is not allowed/);
  oneLine(dplens('train', '--data', csv, '--label', 'diagnosis', ...args), /^dplens train: .*patients\.csv: label column 'diagnosis' not in header/);
  oneLine(dplens('train', '--data', csv, '--label', 'outcome', '--model', 'cnn', ...args), /^dplens train: .*patients\.csv is a table \(CSV\): use model mlp/);
  const { writeNpz } = await import('../src/data/index.js');
  const npz = join(dir, 'images.npz');
  writeNpz(npz, { images: { dtype: 'uint8', shape: [20, 4, 4], data: new Uint8Array(320) }, labels: { dtype: 'uint8', shape: [20], data: Array.from({ length: 20 }, (_, i) => i % 2) } });
  oneLine(dplens('train', '--data', npz, '--label', 'outcome', ...args), /^dplens train: label column 'outcome' given, but .*images\.npz is an image dataset/);
});
