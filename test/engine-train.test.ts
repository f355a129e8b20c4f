// The reference CNN trains on real MNIST with the same loss curve on 'ort' and 'cpu' (same seed,
// same batches) and the 'ort' run has ZERO JS fallbacks. Batch and step counts are small
// because the CPU backend is ~1000x slower than 'ort'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, initEngine, resetEngineStats } from '../src/engine/index.js';
import { makeCnn, makeCnnFused, makeMlp, makeMlpFused, mnistBatch, sgdStep, type RefNet } from '../src/engine/reference-nets.js';
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
  ['reference CNN (fused layers)', makeCnnFused],
  ['MLP 784-512-10 (fused layers)', makeMlpFused],
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
    const fused = name.includes('fused');
    for (const k of fused ? ['_FusedMatMul', 'BatchMatMul', 'DplensReluBackprop', 'Sum'] : ['BatchMatMul', 'Relu', 'Add', 'Sum']) assert.ok((stats.kernelCalls[k] ?? 0) > 0, `${k} ran`);
    if (fused) assert.equal(stats.kernelCalls.Relu ?? 0, 0, 'fused nets run no separate Relu');
    if (name === 'reference CNN (fused layers)') {
      for (const k of ['FusedConv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad']) assert.ok((stats.kernelCalls[k] ?? 0) > 0, `${k} ran natively`);
      // the first conv's input is data: one Conv2DBackpropInput per step (the second conv's)
      assert.equal(stats.kernelCalls.Conv2DBackpropInput, STEPS, 'no input gradient for the data');
    }
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

test('fused reference nets follow the unfused nets\' loss curves on ort', async () => {
  const mnist = loadMnist();
  await initEngine({ backend: 'ort' });
  for (const [plain, fused] of [
    [makeCnn, makeCnnFused],
    [makeMlp, makeMlpFused],
  ] as const) {
    const a = lossCurve(plain, mnist.train.images, mnist.train.labels);
    const b = lossCurve(fused, mnist.train.images, mnist.train.labels);
    for (let i = 0; i < STEPS; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * Math.abs(a[i]) + 1e-5, `step ${i}: unfused ${a[i]} vs fused ${b[i]}`);
  }
});
