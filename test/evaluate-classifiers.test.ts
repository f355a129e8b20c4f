/**
 * Evaluation classifiers (evaluate/classifiers.ts): the hand-written backward of the fused
 * conv/dense layers equals tfjs autodiff of the plain ops; dropout masks keep the expected share.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { Classifier, LENET5, STRIDED_CNN, dropoutMask, type ClassifierArch } from '../src/evaluate/index.js';
import { mulberry32 } from '../src/util/prng.js';

before(async () => {
  await ensureEngine();
});

/** The same network written with plain, unfused tfjs ops (autodiff reference). */
function plainLogits(arch: ClassifierArch, vars: tf.Variable[], x: tf.Tensor4D): tf.Tensor2D {
  let y: tf.Tensor = x;
  let k = 0;
  const layers = [...arch.layers, { kind: 'dense' as const, units: 10 }];
  layers.forEach((d, i) => {
    if (d.kind === 'conv') {
      y = tf.relu(tf.add(tf.conv2d(y as tf.Tensor4D, vars[k] as tf.Tensor4D, d.stride, d.pad), vars[k + 1]!));
      k += 2;
    } else if (d.kind === 'maxpool') y = tf.maxPool(y as tf.Tensor4D, d.size, d.stride, 'valid');
    else if (d.kind === 'dense') {
      if (y.rank !== 2) y = tf.reshape(y, [y.shape[0]!, -1]);
      y = tf.add(tf.matMul(y as tf.Tensor2D, vars[k] as tf.Tensor2D), vars[k + 1]!);
      if (i !== layers.length - 1) y = tf.relu(y);
      k += 2;
    }
  });
  return y as tf.Tensor2D;
}

test('fused conv/dense layers: forward and gradients equal plain tfjs autodiff', () => {
  // STRIDED_CNN without its dropout (dropout masks differ by construction)
  const strided = { ...STRIDED_CNN, layers: STRIDED_CNN.layers.filter((l) => l.kind !== 'dropout') };
  for (const arch of [LENET5, strided]) {
    const net = new Classifier(arch, { height: 28, width: 28, channels: 1 }, 10, 7);
    const r = mulberry32(3);
    const x = tf.tensor4d(Float32Array.from({ length: 6 * 784 }, () => r()), [6, 28, 28, 1]);
    const coef = tf.tensor2d(Float32Array.from({ length: 60 }, () => r() - 0.5), [6, 10]);
    const ours = tf.variableGrads(() => tf.sum(tf.mul(net.logits(x, true, 1), coef)) as tf.Scalar, net.vars);
    const ref = tf.variableGrads(() => tf.sum(tf.mul(plainLogits(arch, net.vars, x), coef)) as tf.Scalar, net.vars);
    assert.ok(Math.abs(ours.value.dataSync()[0]! - ref.value.dataSync()[0]!) < 1e-4, arch.name);
    for (const v of net.vars) {
      const a = ours.grads[v.name]!.dataSync();
      const b = ref.grads[v.name]!.dataSync();
      let maxAbs = 0;
      let maxRef = 0;
      for (let i = 0; i < a.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
        maxRef = Math.max(maxRef, Math.abs(b[i]!));
      }
      assert.ok(maxAbs <= 1e-4 * Math.max(1, maxRef), `${arch.name} ${v.name}: max |Δgrad| ${maxAbs} (max |grad| ${maxRef})`);
    }
    tf.dispose([x, coef, ours.value, ref.value, ...Object.values(ours.grads), ...Object.values(ref.grads)]);
    net.dispose();
  }
});

test('dropout masks keep about (1 − rate) of the activations, scaled by 1/(1 − rate), seeded', () => {
  const m = dropoutMask([100, 1000], 0.25, 9);
  const v = m.dataSync();
  let kept = 0;
  for (const x of v) {
    if (x !== 0) {
      kept++;
      assert.ok(Math.abs(x - 4 / 3) < 1e-6);
    }
  }
  assert.ok(Math.abs(kept / v.length - 0.75) < 0.01, `kept ${kept / v.length}`);
  assert.deepEqual(Array.from(dropoutMask([100], 0.25, 9).dataSync()), Array.from(v.subarray(0, 100)));
  assert.notDeepEqual(Array.from(dropoutMask([100], 0.25, 10).dataSync()), Array.from(v.subarray(0, 100)));
  m.dispose();
});
