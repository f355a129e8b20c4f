// Forward convolutions on MLAS's NCHWc kernels (com.microsoft.nchwc ops fed a blocked filter
// built in the graph): values against the tfjs CPU backend and against the plain NCHW Conv path,
// for the shapes that select each NCHWc form (one channel, fewer channels than a block, whole
// blocks) and output channel counts that are not a block multiple.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, engineTuning, initEngine } from '../src/engine/index.js';
import { nchwcBlockSize, nchwcCounters } from '../src/engine/kernels/conv.js';
import { compareBackends, rnd } from './engine-helpers.js';

const saved = { fast: engineTuning.jsFastPathElems, nchwc: engineTuning.nchwcConv };
before(async () => {
  await initEngine({ backend: 'ort' });
  engineTuning.jsFastPathElems = 0;
});
after(() => {
  engineTuning.jsFastPathElems = saved.fast;
  engineTuning.nchwcConv = saved.nchwc;
});

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
const cases: { name: string; x: number[]; w: number[]; stride: number; pad: Pad; dilation?: number }[] = [
  { name: 'ref conv1: 1 channel, 8x8 s2 pad 3', x: [3, 28, 28, 1], w: [8, 8, 1, 16], stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
  { name: 'ref conv2: 16 channels, 4x4 s2 valid', x: [3, 13, 13, 16], w: [4, 4, 16, 32], stride: 2, pad: 'valid' },
  { name: '3 channels, 5 outputs, same', x: [2, 9, 11, 3], w: [3, 3, 3, 5], stride: 1, pad: 'same' },
  { name: '8 channels, 17 outputs, s2 same', x: [2, 10, 9, 8], w: [3, 2, 8, 17], stride: 2, pad: 'same' },
  { name: '32 channels, 20 outputs, dilation 2', x: [2, 12, 12, 32], w: [3, 3, 32, 20], stride: 1, pad: 'valid', dilation: 2 },
  { name: '16 channels, 1x1', x: [2, 5, 5, 16], w: [1, 1, 16, 16], stride: 1, pad: 'valid' },
  { name: '20 channels (no NCHWc form)', x: [2, 7, 7, 20], w: [3, 3, 20, 8], stride: 1, pad: 'same' },
];

test('NCHWc forward conv matches the CPU backend and the plain Conv path', async () => {
  if (nchwcBlockSize() === null) return; // no nchwc kernels on this CPU: the plain path is covered elsewhere
  for (const c of cases) {
    const f = () => tf.conv2d(rnd(c.x, 1) as tf.Tensor4D, rnd(c.w, 2) as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dilation ?? 1);
    engineTuning.nchwcConv = true;
    const before = nchwcCounters.Conv2D;
    const r = await compareBackends(`nchwc ${c.name}`, f);
    assert.deepEqual(r.fallbacks, {}, c.name);
    const usedNchwc = nchwcCounters.Conv2D > before;
    if (c.x[3] % (nchwcBlockSize() as number) === 0 || c.x[3] < (nchwcBlockSize() as number)) assert.ok(usedNchwc, `${c.name}: expected the nchwc path`);
    else assert.ok(!usedNchwc, `${c.name}: no NCHWc form expected`);
    const fast = f().dataSync();
    engineTuning.nchwcConv = false;
    const plain = f().dataSync();
    engineTuning.nchwcConv = true;
    // Same tolerance as assertClose: 1e-4 relative to the output's scale (sums of many terms
    // in a different order), so near-cancelling outputs are not held to a relative bound.
    let scale = 1;
    for (const v of plain) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < plain.length; i++) worst = Math.max(worst, Math.abs(fast[i] - plain[i]) / scale);
    assert.ok(worst < 1e-4, `${c.name}: nchwc vs plain error ${worst} of scale ${scale}`);
  }
  assert.equal(nchwcCounters.rejected, 0, 'no shape above should be rejected by the nchwc kernels');
});

test('NCHWc fused conv: per-channel bias and ReLU inside the conv kernel, other biases/activations after it', async () => {
  if (nchwcBlockSize() === null) return;
  const variants: { name: string; bias?: number[]; activation: 'relu' | 'relu6' | 'linear' | 'sigmoid' }[] = [
    { name: 'bias [12] + relu', bias: [12], activation: 'relu' },
    { name: 'bias [1,1,12] + relu', bias: [1, 1, 12], activation: 'relu' },
    { name: 'no bias + relu', activation: 'relu' },
    { name: 'bias [12] + relu6', bias: [12], activation: 'relu6' },
    { name: 'bias [9,9,12] + relu', bias: [9, 9, 12], activation: 'relu' },
    { name: 'bias [1] + sigmoid', bias: [1], activation: 'sigmoid' },
    { name: 'bias [9,1] (per row, not per channel) + relu', bias: [9, 1], activation: 'relu' },
  ];
  for (const v of variants) {
    const before = nchwcCounters.Conv2D;
    const r = await compareBackends(`nchwc fused ${v.name}`, () =>
      tf.fused.conv2d({ x: rnd([2, 9, 9, 16], 1) as tf.Tensor4D, filter: rnd([3, 3, 16, 12], 2) as tf.Tensor4D, strides: 1, pad: 'same', bias: v.bias ? rnd(v.bias, 3) : undefined, activation: v.activation }),
    );
    assert.deepEqual(r.fallbacks, {}, v.name);
    assert.ok(nchwcCounters.Conv2D > before, `${v.name}: nchwc path`);
  }
});

type Shape4 = [number, number, number, number];
function outShape(x: number[], w: number[], stride: number | [number, number], pad: Pad): number[] {
  return tf.conv2d(tf.zeros(x as Shape4) as tf.Tensor4D, tf.zeros(w as Shape4) as tf.Tensor4D, stride, pad).shape.slice();
}

test('NCHWc input gradient (phase-decomposed conv) matches the CPU backend and ConvTranspose', async () => {
  if (nchwcBlockSize() === null) return;
  const grads: { name: string; x: number[]; w: number[]; stride: number | [number, number]; pad: Pad }[] = [
    { name: 'ref conv2: 16->32, 4x4 s2 valid (13x13 input: last row unused)', x: [3, 13, 13, 16], w: [4, 4, 16, 32], stride: 2, pad: 'valid' },
    { name: '3->16, 3x3 s1 same', x: [2, 9, 8, 3], w: [3, 3, 3, 16], stride: 1, pad: 'same' },
    { name: '5->8 (NCHW form), 5x3 s(3,2) same', x: [2, 11, 10, 5], w: [5, 3, 5, 8], stride: [3, 2], pad: 'same' },
    { name: '8->32, 8x8 s2 pad 3', x: [2, 20, 20, 8], w: [8, 8, 8, 32], stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
    { name: '4->16, 3x3 s2 explicit asymmetric pads', x: [2, 9, 9, 4], w: [3, 3, 4, 16], stride: 2, pad: [[0, 0], [2, 0], [1, 2], [0, 0]] },
    { name: '2->1 output channel (NCHW form), 2x2 s2', x: [2, 8, 7, 2], w: [2, 2, 2, 1], stride: 2, pad: 'valid' },
  ];
  for (const c of grads) {
    const f = () => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, rnd(c.w, 2) as tf.Tensor4D, c.stride, c.pad), rnd(outShape(c.x, c.w, c.stride, c.pad), 3))))(rnd(c.x, 1));
    engineTuning.nchwcConv = true;
    const before = nchwcCounters.Conv2DBackpropInput;
    const r = await compareBackends(`nchwc dx ${c.name}`, f);
    assert.deepEqual(r.fallbacks, {}, c.name);
    assert.ok((r.kernelCalls.Conv2DBackpropInput ?? 0) > 0, `${c.name}: Conv2DBackpropInput ran`);
    assert.ok(nchwcCounters.Conv2DBackpropInput > before, `${c.name}: expected the nchwc path`);
    const fast = f().dataSync();
    engineTuning.nchwcConv = false;
    const plain = f().dataSync();
    engineTuning.nchwcConv = true;
    let scale = 1;
    for (const v of plain) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(fast[i] - plain[i]) <= 1e-4 * scale, `${c.name}[${i}]: ${fast[i]} vs ${plain[i]}`);
  }
  assert.equal(nchwcCounters.rejected, 0);
});

test('NCHWc filter gradient (batch as padded input channels) matches the CPU backend and the plain path', async () => {
  if (nchwcBlockSize() === null) return;
  const grads: { name: string; x: number[]; w: number[]; stride: number | [number, number]; pad: Pad }[] = [
    { name: 'batch 3, 8->16, 8x8 s2 pad 3', x: [3, 28, 28, 8], w: [8, 8, 8, 16], stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
    { name: 'ref conv2: batch 32, 16->32, 4x4 s2 valid', x: [32, 13, 13, 16], w: [4, 4, 16, 32], stride: 2, pad: 'valid' },
    { name: 'batch 17, 12->5, 3x3 s1 same', x: [17, 9, 8, 12], w: [3, 3, 12, 5], stride: 1, pad: 'same' },
    { name: 'batch 2, 9->8, 5x3 s(3,2) same', x: [2, 11, 10, 9], w: [5, 3, 9, 8], stride: [3, 2], pad: 'same' },
    { name: 'batch 1, 8->20, 3x3 s2 asymmetric pads', x: [1, 9, 9, 8], w: [3, 3, 8, 20], stride: 2, pad: [[0, 0], [2, 0], [1, 2], [0, 0]] },
    { name: 'ref conv1 shape (1 channel: plain path)', x: [3, 28, 28, 1], w: [8, 8, 1, 16], stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
  ];
  for (const c of grads) {
    const f = () => tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(rnd(c.x, 1) as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad), rnd(outShape(c.x, c.w, c.stride, c.pad), 3))))(rnd(c.w, 2));
    engineTuning.nchwcConv = true;
    const before = nchwcCounters.Conv2DBackpropFilter;
    const r = await compareBackends(`nchwc dW ${c.name}`, f);
    assert.deepEqual(r.fallbacks, {}, c.name);
    assert.ok((r.kernelCalls.Conv2DBackpropFilter ?? 0) > 0, `${c.name}: Conv2DBackpropFilter ran`);
    assert.equal(nchwcCounters.Conv2DBackpropFilter > before, c.x[3] >= 8, `${c.name}: nchwc path iff >= 8 input channels`);
    const fast = f().dataSync();
    engineTuning.nchwcConv = false;
    const plain = f().dataSync();
    engineTuning.nchwcConv = true;
    let scale = 1;
    for (const v of plain) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(fast[i] - plain[i]) <= 1e-4 * scale, `${c.name}[${i}]: ${fast[i]} vs ${plain[i]}`);
  }
  assert.equal(nchwcCounters.rejected, 0);
});

test('NCHWc filter gradient: one session serves every batch size (pad fed per call)', async () => {
  if (nchwcBlockSize() === null) return;
  const grad = (n: number) => () =>
    tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(rnd([n, 9, 9, 16], 1) as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), rnd([n, 4, 4, 8], 3))))(rnd([3, 3, 16, 8], 2));
  await compareBackends('nchwc dW batch 3', grad(3));
  const sessions = engineStats().sessions;
  for (const n of [5, 17, 40]) {
    const r = await compareBackends(`nchwc dW batch ${n}`, grad(n));
    assert.deepEqual(r.fallbacks, {});
  }
  assert.equal(engineStats().sessions, sessions, 'no new sessions for other batch sizes');
  // A whole number of blocks (16) uses one more session, without the Pad copies.
  await compareBackends('nchwc dW batch 16', grad(16));
  await compareBackends('nchwc dW batch 32', grad(32));
  assert.ok(engineStats().sessions <= sessions + 1);
});
