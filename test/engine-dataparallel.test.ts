// Data-parallel training of the evaluation classifiers (issue 18, evaluate/data-parallel.ts):
// per-example dropout masks do not depend on the split, and training on the main thread plus a
// worker thread follows the serial loss curve and weights up to float summation order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, ensureEngine } from '../src/engine/index.js';
import { loadMnist } from '../src/data/index.js';
import { Classifier, SPEC7_CNN, dropoutMaskRows, toFloatImages, trainClassifier } from '../src/evaluate/classifiers.js';
import { shardWorkerStats } from '../src/evaluate/data-parallel.js';

test('per-example dropout masks: a batch cut into shards draws the unsplit batch mask', () => {
  const whole = tf.tidy(() => dropoutMaskRows([10, 3, 4, 5], 0.25, 77, 0).dataSync());
  const a = tf.tidy(() => dropoutMaskRows([4, 3, 4, 5], 0.25, 77, 0).dataSync());
  const b = tf.tidy(() => dropoutMaskRows([6, 3, 4, 5], 0.25, 77, 4).dataSync());
  assert.deepEqual(Array.from(whole), [...a, ...b]);
  let kept = 0;
  const big = tf.tidy(() => dropoutMaskRows([200, 500], 0.2, 5).dataSync());
  for (const v of big) if (v !== 0) kept++;
  assert.ok(Math.abs(kept / big.length - 0.8) < 0.01, `kept ${kept / big.length}`);
  const other = tf.tidy(() => dropoutMaskRows([10, 3, 4, 5], 0.25, 78, 0).dataSync());
  assert.notDeepEqual(Array.from(other), Array.from(whole));
});

test('spec7 CNN on 768 MNIST images: main thread + 1 worker = serial training (loss curve, weights), zero fallbacks', async () => {
  await ensureEngine({ backend: 'ort' });
  const threads = engineStats().threads;
  const m = loadMnist();
  const n = 768;
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  const train = toFloatImages({ ...m.train, height: 28, width: 28, channels: 1 }, idx);
  const runWith = (shards: number) => {
    const net = new Classifier(SPEC7_CNN, train, 10, 3);
    const curve = trainClassifier(net, train, { seed: 3, epochs: 2, batchSize: 128, shards }).map((e) => e.trainLoss);
    const w = net.snapshot();
    net.dispose();
    return { curve, w };
  };
  const serial = runWith(1);
  const before = engineStats().fallbacks;
  const started = shardWorkerStats.started;
  const parallel = runWith(2);
  assert.equal(shardWorkerStats.started, started + 1, 'the worker group started (no serial fallback)');
  assert.equal(engineStats().threads, threads, 'thread count restored after parallel training');
  assert.deepEqual(engineStats().fallbacks, before, 'no new fallbacks');
  assert.equal(parallel.curve.length, 2);
  for (let i = 0; i < serial.curve.length; i++) {
    assert.ok(Math.abs(serial.curve[i]! - parallel.curve[i]!) <= 1e-4 * Math.abs(serial.curve[i]!), `epoch ${i + 1}: ${serial.curve[i]} vs ${parallel.curve[i]}`);
  }
  assert.ok(serial.curve[1]! < serial.curve[0]!, 'loss decreases');
  let maxAbs = 0;
  let maxRef = 0;
  serial.w.forEach((a, k) => {
    const b = parallel.w[k]!;
    for (let i = 0; i < a.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
      maxRef = Math.max(maxRef, Math.abs(a[i]!));
    }
  });
  assert.ok(maxAbs <= 1e-3 * maxRef, `max |Δw| ${maxAbs} (max |w| ${maxRef})`);
});
