/**
 * The declared-data flags (--num-classes, --class-names, --categorical) reach the data spec, and a
 * train run folder releases the CSV encoding only where it must (model.json), listing every data
 * fact it writes in run.json privacy.released with where and status (issue 12 #3).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'dplens-cli-data-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN = join('src', 'cli', 'main.ts');

function dplens(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, DPLENS_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** 240 rows: a numeric age, a numeric-looking zip code (really categorical), a 0/1 label. */
function table(): string {
  let s = 7;
  const r = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const lines = ['age,zip,sick'];
  for (let i = 0; i < 240; i++) {
    const age = Math.round(20 + 60 * r());
    const zip = [10115, 20095, 80331][Math.floor(r() * 3)]!;
    lines.push([age, zip, r() < (age > 50 ? 0.7 : 0.3) ? 'yes' : 'no'].join(','));
  }
  return lines.join('\n') + '\n';
}
const csv = join(dir, 'people.csv');
writeFileSync(csv, table());
const quick = ['--epochs', '0.5', '--batch', '20', '--noise', '1', '--threads', '1', '--json'];

interface Fact {
  what: string;
  where: string[];
  status: string;
}

test('train --class-names --num-classes --categorical: declared facts are public, zip is one-hot, --help documents them', () => {
  const help = dplens('train', '--help');
  assert.equal(help.code, 0);
  for (const f of ['--num-classes', '--class-names', '--categorical']) assert.match(help.stdout, new RegExp(`${f} <v>`));
  assert.match(help.stdout, /--categorical <v>.*\(repeatable\)/);
  const out = join(dir, 'declared');
  const r = dplens('train', '--data', csv, '--label', 'sick', '--num-classes', '2', '--class-names', 'no,yes', '--categorical', 'zip', '--out', out, ...quick);
  assert.equal(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(config.config.classNames, ['no', 'yes']);
  assert.deepEqual(config.config.categorical, ['zip']);
  assert.deepEqual(
    config.derived.columns.map((c: { name: string; kind: string; width: number }) => [c.name, c.kind, c.width]),
    [
      ['age', 'numeric', 1],
      ['zip', 'categorical', 3],
    ],
  );
  const man = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  const released = man.privacy.released as Fact[];
  const names = released.find((f) => f.what.startsWith('class names'))!;
  assert.equal(names.status, 'public-by-assumption');
  assert.deepEqual(names.where, ['model.json']);
  assert.equal(released.find((f) => f.what.startsWith('class count'))!.status, 'public-by-assumption');
  // the label is declared, so the only data-derived encoding facts are age's mean/std and zip's codes
  const encoding = released.filter((f) => f.what.startsWith('CSV encoding of'));
  assert.deepEqual(encoding.map((f) => f.what.match(/'(\w+)'/)![1]).sort(), ['age', 'zip']);
  for (const f of encoding) assert.deepEqual([f.status, f.where], ['outside-guarantee', ['model.json']]);
  // a flag that does not apply to the data: one line, exit 2
  const bad = dplens('train', '--data', 'mnist', '--categorical', 'zip', '--out', join(dir, 'bad'), ...quick);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^dplens train: .*(CSV|columns)/);
});

test('train on a CSV without declarations: config.json holds no means, stds or category lists; run.json lists each fact it writes', () => {
  const out = join(dir, 'derived');
  const r = dplens('train', '--data', csv, '--label', 'sick', '--out', out, ...quick);
  assert.equal(r.code, 0, r.stderr);
  const configText = readFileSync(join(out, 'config.json'), 'utf8');
  const config = JSON.parse(configText);
  for (const c of config.derived.columns) assert.deepEqual(Object.keys(c).sort(), ['kind', 'name', 'offset', 'width']);
  // zip inferred numeric here; the label values are derived from the data
  assert.ok(!/"(mean|std|categories)"/.test(configText), 'encoding statistics in config.json');
  const model = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  assert.ok(model.meta.columns.some((c: { mean?: number }) => typeof c.mean === 'number'), 'model.json keeps the encoding (needed to apply the model)');
  const man = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  const released = man.privacy.released as Fact[];
  const count = released.find((f) => f.what.startsWith('class count'))!;
  assert.equal(count.status, 'outside-guarantee');
  assert.deepEqual(count.where, ['config.json', 'run.json', 'model.json']);
  assert.equal(released.find((f) => f.what.startsWith('class names'))!.status, 'outside-guarantee');
  assert.ok(released.some((f) => f.what.startsWith('CSV schema') && f.where.includes('config.json')));
  const status = Object.fromEntries((man.artifacts as { path: string; status: string }[]).map((a) => [a.path, a.status]));
  assert.equal(status['config.json'], 'outside-guarantee');
  assert.equal(status['model.json'], 'outside-guarantee');
});

test('eval --num-classes / --class-names reach the loader of --data', async () => {
  const { writeNpz } = await import('../src/data/index.js');
  const img = (n: number) => ({ dtype: 'uint8' as const, shape: [n, 28, 28], data: Uint8Array.from({ length: n * 784 }, (_, i) => (i * 37) % 256) });
  const lab = (n: number) => ({ dtype: 'uint8' as const, shape: [n], data: Array.from({ length: n }, (_, i) => i % 3) });
  const data = join(dir, 'three.npz');
  writeNpz(data, { train_images: img(30), train_labels: lab(30), test_images: img(12), test_labels: lab(12) });
  const synth = join(dir, 'syn', 'synthetic.npz');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'syn'));
  writeNpz(synth, { images: img(12), labels: lab(12) });
  const { main } = await import('../src/cli/main.js');
  let stderr = '';
  const io = { out: () => {}, err: (s: string) => void (stderr += s) };
  // declared 2 classes, but the labels go up to 2: the loader refuses, naming the file
  assert.equal(await main(['eval', '--synthetic', synth, '--data', data, '--num-classes', '2', '--epochs', '1', '--quiet'], io), 2);
  assert.match(stderr, /three\.npz/);
  stderr = '';
  assert.equal(await main(['eval', '--synthetic', synth, '--data', data, '--class-names', 'a,,c', '--epochs', '1', '--quiet'], io), 2);
  assert.match(stderr, /--class-names must be a comma-separated list/);
  stderr = '';
  const origWrite = process.stdout.write.bind(process.stdout);
  let stdout = '';
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  try {
    assert.equal(await main(['eval', '--synthetic', synth, '--data', data, '--num-classes', '3', '--class-names', 'a,b,c', '--epochs', '1', '--threads', '1', '--json'], io), 0, stderr);
  } finally {
    process.stdout.write = origWrite;
  }
  const res = JSON.parse(stdout.trim());
  assert.equal(res.testCount, 12);
});
