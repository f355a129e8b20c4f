import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNpz } from '../src/data/index.js';

// End to end: a bad --data input reaches the user as exit code 2 and ONE line naming the file.
const dir = mkdtempSync(join(tmpdir(), 'dplens-data-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const main = join('src', 'cli', 'main.ts');
const hasTrain = existsSync(join('src', 'cli', 'commands', 'train.ts'));

function train(data: string, extra: string[] = []): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'train', '--data', data, ...extra, '--noise', '1', '--epochs', '0.01', '--out', join(dir, 'run'), '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function expectOneLine(r: { status: number | null; stderr: string; stdout: string }, re: RegExp): void {
  assert.equal(r.status, 2, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0]!, re);
  assert.equal(r.stdout, '');
}

test('dplens train: bad --data inputs exit 2 with one line that names the file', { skip: hasTrain ? false : 'src/cli/commands/train.ts not present' }, () => {
  expectOneLine(train(join(dir, 'missing.npz')), /^dplens train: .*missing\.npz: --data is neither a built-in dataset/);
  const corrupt = join(dir, 'corrupt.npz');
  writeFileSync(corrupt, 'definitely not a zip');
  expectOneLine(train(corrupt), /^dplens train: .*corrupt\.npz: not a zip\/\.npz archive \(wrong magic number/);
  const gap = join(dir, 'gap.npz');
  writeNpz(gap, {
    train_images: { dtype: 'uint8', shape: [4, 2, 2], data: new Uint8Array(16) },
    train_labels: { dtype: 'uint8', shape: [4], data: [0, 2, 0, 2] },
    test_images: { dtype: 'uint8', shape: [1, 2, 2], data: new Uint8Array(4) },
    test_labels: { dtype: 'uint8', shape: [1], data: [0] },
  });
  expectOneLine(train(gap), /^dplens train: .*gap\.npz: empty classes: no training examples for class 1 of 3$/);
  const idx = join(dir, 'idx');
  mkdirSync(idx);
  writeFileSync(join(idx, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]));
  writeFileSync(join(idx, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 9, 0, 1, 0, 1, 0, 1, 0, 1, 0]));
  writeFileSync(join(idx, 't10k-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]));
  writeFileSync(join(idx, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]));
  expectOneLine(train(idx), /^dplens train: .*train-images-idx3-ubyte: truncated file: header promises 9×28×28 = 7056 bytes of data, found 3$/);
  expectOneLine(train('mnist', ['--data-path', join(dir, 'nowhere')]), /^dplens train: .*nowhere: --data-path does not exist$/);
});
