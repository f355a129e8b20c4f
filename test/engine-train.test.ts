// The reference CNN trains on real MNIST with the same loss curve on 'ort' and 'cpu' (same seed,
// same batches) and the 'ort' run has ZERO JS fallbacks. Batch and step counts are small
// because the CPU backend is ~1000x slower than 'ort'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, initEngine, resetEngineStats } from '../src/engine/index.js';
import { makeCnn, makeMlp, mnistBatch, sgdStep, type RefNet } from '../src/engine/reference-nets.js';
import { loadMnist } from '../src/data/index.js';

const BATCH = 24;
const STEPS = 4;
const LR = 0.1;

function lossCurve(make: (seed: number) => RefNet, images: Uint8Array, labels: Int32Array): number[] {
  const net = make(7);
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const x = mnistBatch(images, s * BATCH, BATCH);
    const y = tf.tensor1d(labels.subarray(s * BATCH, (s + 1) * BATCH), 'int32');
    losses.push(sgdStep(net, x, y, LR));
    x.dispose();
    y.dispose();
  }
  for (const p of net.params) p.dispose();
  return losses;
}

for (const [name, make] of [
  ['reference CNN', makeCnn],
  ['MLP 784-512-10', makeMlp],
] as const) {
  test(`${name}: same MNIST loss curve on ort and cpu, zero fallbacks on ort`, async () => {
    const mnist = loadMnist();
    await initEngine({ backend: 'cpu' });
    const cpu = lossCurve(make, mnist.train.images, mnist.train.labels);
    await initEngine({ backend: 'ort' });
    resetEngineStats();
    const ort = lossCurve(make, mnist.train.images, mnist.train.labels);
    const stats = engineStats();
    assert.deepEqual(stats.fallbacks, {}, `fallbacks on the hot path: ${JSON.stringify(stats.fallbackReasons)}`);
    for (const k of ['BatchMatMul', 'Relu', 'Add', 'Sum']) assert.ok((stats.kernelCalls[k] ?? 0) > 0, `${k} ran`);
    if (name === 'reference CNN') {
      for (const k of ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad']) assert.ok((stats.kernelCalls[k] ?? 0) > 0, `${k} ran natively`);
    }
    // It learns (loss at chance level is ln 10 ~ 2.30) ...
    assert.ok(cpu.every((l) => Number.isFinite(l) && l > 0 && l < 5), `cpu losses ${cpu}`);
    assert.ok(cpu[STEPS - 1] < cpu[0], `loss decreases: ${cpu}`);
    // ... and both backends follow the same curve within float32 tolerance.
    for (let i = 0; i < STEPS; i++) {
      assert.ok(Math.abs(ort[i] - cpu[i]) <= 1e-4 * Math.abs(cpu[i]) + 1e-5, `step ${i}: ort ${ort[i]} vs cpu ${cpu[i]}`);
    }
  });
}
