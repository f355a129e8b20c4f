// Host kernels of issue 18: the one-pass Adam update (engine/host/adam.ts, used by the eval
// classifiers through HostAdam) against tfjs' own AdamOptimizer, bit for bit, on both backends;
// the MaxPoolGrad host pass (engine/host/pool.ts): WebAssembly SIMD = JS bit for bit, and the
// kernel against the tfjs CPU backend where the SIMD form applies (channels a multiple of 4).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineTuning, initEngine } from '../src/engine/index.js';
import { maxPoolGradHost, poolTuning } from '../src/engine/host/pool.js';
import { simdAvailable } from '../src/engine/host/simd.js';
import { AdamSlot, adamScalars, adamStepHost } from '../src/engine/host/adam.js';
import { dropoutMaskRowsHost, dropoutRowSeed, fillDropoutMask } from '../src/engine/host/dropout.js';
import { dropoutMask, HostAdam } from '../src/evaluate/classifiers.js';
import { compareBackends } from './engine-helpers.js';

/** Parameters after `steps` steps of a small quadratic-plus-ReLU loss with the given optimizer. */
function run(kind: 'tfjs' | 'host', steps: number): Float32Array[] {
  const w = tf.variable(tf.randomNormal([37, 5], 0, 1, 'float32', 3), true, `w-${kind}`);
  const b = tf.variable(tf.randomNormal([5], 0, 1, 'float32', 4), true, `b-${kind}`);
  const x = tf.randomNormal([16, 37], 0, 1, 'float32', 5);
  const f = () => tf.mean(tf.square(tf.relu(tf.add(tf.matMul(x, w), b)))) as tf.Scalar;
  const lr = 0.01;
  if (kind === 'tfjs') {
    const opt = tf.train.adam(lr);
    for (let i = 0; i < steps; i++) opt.minimize(f, true, [w, b])?.dispose();
    opt.dispose();
  } else {
    const opt = new HostAdam(lr);
    for (let i = 0; i < steps; i++) tf.dispose(opt.minimize(f, [w, b]));
  }
  const out = [w.dataSync() as Float32Array, b.dataSync() as Float32Array].map((a) => a.slice());
  tf.dispose([w, b, x]);
  return out;
}

describe('host Adam', () => {
  for (const backend of ['ort', 'cpu'] as const) {
    test(`bit-identical to tf.train.adam after 7 steps (${backend})`, async () => {
      await initEngine({ backend });
      const a = run('tfjs', 7);
      const h = run('host', 7);
      for (let k = 0; k < a.length; k++) {
        assert.equal(h[k].length, a[k].length);
        for (let i = 0; i < a[k].length; i++) assert.ok(Object.is(h[k][i], a[k][i]), `param ${k}[${i}]: host ${h[k][i]} vs tfjs ${a[k][i]}`);
      }
      // and it actually moved
      const start = tf.tidy(() => tf.randomNormal([37, 5], 0, 1, 'float32', 3).dataSync());
      assert.notEqual(h[0][0], start[0]);
    });
  }
  test('WebAssembly SIMD step (AdamSlot) = JS loop, bit for bit (n mod 4 ≠ 0, tiny, huge and zero values, 5 steps)', (t) => {
    if (!simdAvailable()) return t.skip('WebAssembly SIMD not available');
    const n = 1003;
    let seed = 9;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) | 0) >>> 0) / 4294967296;
    const vals = () => Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? 0 : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 16 - 10)));
    const slot = new AdamSlot(n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    let pSimd = vals();
    let pJs = pSimd.slice();
    let acc1 = Math.fround(0.9);
    let acc2 = Math.fround(0.999);
    for (let step = 0; step < 5; step++) {
      const g = vals();
      const s = adamScalars(1e-3, 0.9, 0.999, 1e-7, acc1, acc2);
      const outSimd = new Float32Array(n);
      const outJs = new Float32Array(n);
      slot.step(pSimd, g, s, outSimd);
      adamStepHost(pJs, g, m, v, s, outJs);
      for (let i = 0; i < n; i++) assert.ok(Object.is(outSimd[i], outJs[i]), `step ${step} [${i}]: simd ${outSimd[i]} vs js ${outJs[i]}`);
      pSimd = outSimd;
      pJs = outJs;
      acc1 = Math.fround(acc1 * Math.fround(0.9));
      acc2 = Math.fround(acc2 * Math.fround(0.999));
    }
  });
  test('restores the ort backend', async () => {
    await initEngine({ backend: 'ort' });
  });
});

describe('host MaxPoolGrad', () => {
  // ties (zeros, small integers), −0 next to +0, and NaN windows (they route nothing)
  function data(len: number, seed: number): Float32Array {
    let s = seed;
    return Float32Array.from({ length: len }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const r = s / 2 ** 32;
      return r < 0.3 ? 0 : r < 0.35 ? -0 : r < 0.37 ? NaN : Math.round((r - 0.5) * 6);
    });
  }

  test('WebAssembly SIMD pass = JS pass, bit for bit (ties, ±0, NaN, strides 1 and 2, 2×2 and 3×3)', (t) => {
    if (!simdAvailable()) return t.skip('no WebAssembly SIMD here');
    const saved = poolTuning.maxPoolGrad;
    try {
      for (const [n, h, w, c, k, st] of [
        [3, 9, 8, 4, 2, 1],
        [2, 9, 8, 8, 3, 2],
        [2, 7, 7, 12, 2, 2],
      ]) {
        const x = data(n * h * w * c, 7 + c);
        const ho = Math.floor((h - k) / st) + 1;
        const wo = Math.floor((w - k) / st) + 1;
        const y = new Float32Array(n * ho * wo * c);
        let o = 0;
        for (let b = 0; b < n; b++)
          for (let i = 0; i < ho; i++)
            for (let j = 0; j < wo; j++)
              for (let ch = 0; ch < c; ch++) {
                let m = -Infinity;
                for (let a = 0; a < k; a++)
                  for (let bb = 0; bb < k; bb++) {
                    const v = x[((b * h + i * st + a) * w + j * st + bb) * c + ch];
                    if (v > m) m = v; // tfjs' first maximum; NaN never wins
                  }
                y[o++] = m;
              }
        const dy = data(y.length, 3).map((v) => v + 0.25);
        const g = { n, h, w, c, ho, wo, kh: k, kw: k, sh: st, sw: st, pt: 0, pl: 0 };
        poolTuning.maxPoolGrad = 'js';
        const js = maxPoolGradHost(x, y, dy, g);
        poolTuning.maxPoolGrad = 'auto';
        const simd = maxPoolGradHost(x, y, dy, g);
        for (let i = 0; i < js.length; i++) assert.ok(Object.is(simd[i], js[i]), `${[n, h, w, c, k, st]}: dx[${i}] simd ${simd[i]} vs js ${js[i]}`);
      }
    } finally {
      poolTuning.maxPoolGrad = saved;
    }
  });

  test('MaxPoolGrad kernel on the SIMD path matches the tfjs CPU backend', async () => {
    const savedFast = engineTuning.jsFastPathElems;
    engineTuning.jsFastPathElems = 0;
    try {
      for (const [size, stride] of [
        [2, 1],
        [2, 2],
        [3, 2],
      ] as const) {
        const x = () => tf.relu(tf.round(tf.randomNormal([2, 9, 8, 8], 0, 1.5, 'float32', 11)));
        const r = await compareBackends(`maxPoolGrad simd ${size} ${stride}`, () =>
          tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(v as tf.Tensor4D, size, stride, 'valid'), tf.randomNormal(tf.maxPool(x() as tf.Tensor4D, size, stride, 'valid').shape, 0, 1, 'float32', 5))))(x()),
        );
        assert.deepEqual(r.fallbacks, {});
        assert.ok((r.kernelCalls.MaxPoolGrad ?? 0) > 0);
      }
    } finally {
      engineTuning.jsFastPathElems = savedFast;
    }
  });
});

describe('eval classifier dropout mask', () => {
  // The mask before issue 18 (uint32 mulberry32 with `>>> 0`), kept here as the reference.
  function referenceMask(n: number, rate: number, seed: number): Float32Array {
    const m = new Float32Array(n);
    const keep = 1 / (1 - rate);
    const threshold = Math.floor(rate * 4294967296);
    let s = seed >>> 0;
    for (let i = 0; i < n; i++) {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      m[i] = ((t ^ (t >>> 14)) >>> 0) >= threshold ? keep : 0;
    }
    return m;
  }

  test('per-example masks: WebAssembly SIMD (four row streams per vector) = JS streams, bit for bit', (t) => {
    if (!simdAvailable()) return t.skip('WebAssembly SIMD not available');
    for (const [rows, per, rate, seed, row0] of [
      [128, 5408, 0.2, 12345, 0],
      [7, 13, 0.25, -5, 3],
      [9, 1, 0.5, 2 ** 31 + 5, 64],
      [4, 100, 0, 3, 0],
      [5, 50, 0.999, 4294967295, 1],
    ]) {
      const got = dropoutMaskRowsHost(rows * per, rows, rate, seed, row0);
      const want = new Float32Array(rows * per);
      for (let r = 0; r < rows; r++) fillDropoutMask(want, r * per, (r + 1) * per, rate, dropoutRowSeed(seed, row0 + r));
      for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `rows ${rows} rate ${rate} [${i}]: ${got[i]} vs ${want[i]}`);
    }
  });

  test('int32 form draws the same mask as the uint32 form (rates 0 … 0.999, negative and ≥ 2³¹ seeds)', () => {
    for (const [n, rate, seed] of [
      [20000, 0.2, 7],
      [20000, 0.25, 123456789],
      [5000, 0.5, -5],
      [5000, 0, 3],
      [5000, 0.999, 4294967295],
      [777, 0.1, 2 ** 31 + 5],
    ]) {
      const got = tf.tidy(() => dropoutMask([n], rate, seed).dataSync());
      const want = referenceMask(n, rate, seed);
      for (let i = 0; i < n; i++) assert.ok(Object.is(got[i], want[i]), `rate ${rate} seed ${seed} [${i}]: ${got[i]} vs ${want[i]}`);
    }
  });
});
