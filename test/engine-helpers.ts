// Helpers for the engine tests: run the same tfjs computation on 'cpu' and 'ort' and compare.
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, initEngine, resetEngineStats } from '../src/engine/index.js';

export type Outputs = tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;

interface Snapshot {
  shape: number[];
  dtype: string;
  values: Float32Array | Int32Array | Uint8Array;
}

function snapshot(f: () => Outputs): Snapshot[] {
  return tf.tidy(() => {
    const r = f();
    const list = r instanceof tf.Tensor ? [r] : Array.isArray(r) ? r : Object.values(r);
    return list.map((t) => ({ shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync() as Float32Array | Int32Array | Uint8Array }));
  });
}

/**
 * Tolerance: |ort - cpu| <= 1e-4·|cpu| + 1e-5·max(1, max|cpu|). The absolute part is scaled by
 * the tensor's magnitude because float32 sums of many terms (matmul, conv, reductions) carry
 * rounding error proportional to the size of the terms, and the two backends sum in different
 * orders; entries near zero after cancellation would otherwise fail a purely relative test.
 */
export function assertClose(name: string, cpu: Snapshot[], ort: Snapshot[]): void {
  assert.equal(ort.length, cpu.length, `${name}: number of outputs`);
  for (let k = 0; k < cpu.length; k++) {
    const a = cpu[k];
    const b = ort[k];
    assert.deepEqual(b.shape, a.shape, `${name}[${k}]: shape`);
    assert.equal(b.dtype, a.dtype, `${name}[${k}]: dtype`);
    let scale = 1;
    for (const v of a.values) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < a.values.length; i++) {
      const x = a.values[i];
      const y = b.values[i];
      if (Number.isNaN(x)) {
        assert.ok(Number.isNaN(y), `${name}[${k}][${i}]: expected NaN, got ${y}`);
        continue;
      }
      if (a.dtype !== 'float32' || !Number.isFinite(x)) {
        assert.equal(y, x, `${name}[${k}][${i}]`);
        continue;
      }
      const tol = 1e-4 * Math.abs(x) + 1e-5 * scale;
      if (!(Math.abs(x - y) <= tol)) assert.fail(`${name}[${k}][${i}]: ort ${y} vs cpu ${x} (tol ${tol.toExponential(2)})`);
    }
  }
}

export interface CompareResult {
  fallbacks: Record<string, number>;
  jsFastPath: Record<string, number>;
  kernelCalls: Record<string, number>;
}

/** Runs `f` on cpu then ort, asserts the outputs agree; returns the ort run's kernel statistics. */
export async function compareBackends(name: string, f: () => Outputs): Promise<CompareResult> {
  await initEngine({ backend: 'cpu' });
  const cpu = snapshot(f);
  await initEngine({ backend: 'ort' });
  resetEngineStats();
  const ort = snapshot(f);
  const s = engineStats();
  assertClose(name, cpu, ort);
  return { fallbacks: s.fallbacks, jsFastPath: s.jsFastPath, kernelCalls: s.kernelCalls };
}

/** Deterministic normal tensor (tfjs random ops run in JS, identical on every backend). */
export function rnd(shape: number[], seed: number, dtype: 'float32' | 'int32' = 'float32'): tf.Tensor {
  const t = tf.randomNormal(shape, 0, 1, 'float32', seed);
  return dtype === 'float32' ? t : tf.cast(tf.mul(t, 10), 'int32');
}
