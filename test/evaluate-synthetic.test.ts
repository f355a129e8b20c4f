import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/generate/index.js';
import { evaluateSynthetic } from '../src/evaluate/index.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const take = (s: ImageDataset['train'], n: number, off = 0) => ({ images: s.images.subarray(off * 784, (off + n) * 784), labels: s.labels.subarray(off, off + n), count: n, height: 28, width: 28, channels: 1 });

test('the evaluation CNN learns from good data and reports final-epoch and best-epoch accuracy separately', async () => {
  const epochs: number[] = [];
  const r = await evaluateSynthetic({ synthetic: take(mnist.train, 1024), realTest: take(mnist.test, 500), epochs: 2, batchSize: 64, seed: 3, onEpoch: (e) => epochs.push(e.testAccuracy) });
  assert.equal(r.epochs, 2);
  assert.equal(r.testAccuracy, epochs[1]);
  assert.equal(r.bestEpochTestAccuracy, Math.max(...epochs));
  assert.ok(r.testAccuracy > 0.6, `real MNIST as "synthetic" should give > 60%, got ${r.testAccuracy}`);
  assert.equal(r.protocol, 'default');
  assert.match(r.protocolDescription, /optimistic/);
});

test('labels carry the signal: shuffled labels give chance-level accuracy', async () => {
  const s = take(mnist.train, 512);
  const labels = Int32Array.from(s.labels, (_, i) => (i * 7 + 3) % 10);
  const r = await evaluateSynthetic({ synthetic: { ...s, labels }, realTest: take(mnist.test, 500), epochs: 1, batchSize: 64, seed: 3 });
  assert.ok(r.testAccuracy < 0.3, `accuracy with meaningless labels ${r.testAccuracy}`);
});

test('bad inputs are rejected with clear messages', async () => {
  const s = take(mnist.train, 10);
  await assert.rejects(evaluateSynthetic({ synthetic: { ...s, count: 11 }, realTest: s }), /need 8624 bytes/);
  await assert.rejects(evaluateSynthetic({ synthetic: { ...s, labels: Int32Array.from(s.labels, () => 12) }, realTest: s }), /label 12 at index 0 out of range/);
  await assert.rejects(evaluateSynthetic({ synthetic: { ...s, height: 14, width: 56 }, realTest: s }), /14×56×1 but the real test images are 28×28×1/);
  await assert.rejects(evaluateSynthetic({ synthetic: s, realTest: s, epochs: 0 }), /epochs must be/);
});
