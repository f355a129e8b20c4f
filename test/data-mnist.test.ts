import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadMnist, parseIdx, DataError } from '../src/data/index.js';

test('MNIST loads 60k/10k with valid labels and a stable fingerprint', () => {
  const d = loadMnist();
  assert.equal(d.train.count, 60000);
  assert.equal(d.test.count, 10000);
  assert.equal(d.train.images.length, 60000 * 784);
  const counts = new Array(10).fill(0);
  for (const l of d.train.labels) counts[l]++;
  assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  assert.match(d.rawFingerprint, /^[0-9a-f]{64}$/);
  assert.equal(loadMnist().rawFingerprint, d.rawFingerprint);
});

test('IDX parser rejects wrong magic and truncated files with a message naming the file', () => {
  assert.throws(() => parseIdx(new Uint8Array([1, 2, 8, 1, 0, 0, 0, 1, 5]), 'x.idx'), (e: Error) => e instanceof DataError && /x\.idx: wrong magic/.test(e.message));
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 9, 5]), 'y.idx'), /y\.idx: truncated file/);
});
