/**
 * Helpers shared by the layer files: seeded initialisation, parameter creation, argument checks,
 * per-sample row dot products, the parameter-free base class and parameter-name prefixing.
 * Not part of the public API (layers/index.ts re-exports only setInitSeed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { engineCapabilities } from '../../engine/capabilities.js';
import { lcgStep } from '../../util/prng.js';
import { type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';

// ---------------------------------------------------------------------------------------------
// Initialisation (not DP noise: model init may use tfjs' seeded PRNG)

let initSeed = 12345;
/** Seeds the weight initialiser (each new parameter draws from the next seed). */
export function setInitSeed(seed: number): void {
  initSeed = seed >>> 0;
}
/** Advances the initialiser seed (an LCG step) and returns it: one seed per new parameter. */
export function nextInitSeed(): number {
  initSeed = lcgStep(initSeed);
  return initSeed;
}
export function uniformInit(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextInitSeed());
}
export function param(name: string, init: tf.Tensor): Param {
  return { name, value: tf.variable(init, true, undefined, 'float32') };
}

export type Pair = [number, number];
export function pair(v: number | number[] | undefined, dflt: number, what: string): Pair {
  const p: number[] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 0)) throw new ModelError(`${what} must be a non-negative integer or a pair of them, got ${JSON.stringify(v)}`);
  return p as Pair;
}
export function checkRank(x: tf.Tensor, rank: number, layer: string): void {
  if (x.rank !== rank) throw new ModelError(`${layer} expects a rank-${rank} input, got shape [${x.shape.join(', ')}]`);
}
export function requireCache<T>(v: T | undefined, layer: string): T {
  if (v === undefined) throw new ModelError(`${layer}.backward called without a training forward pass`);
  return v;
}

/**
 * Per-sample Σ a⊙b over each of the n rows of a (and b, same shape), or Σ a² without b.
 * On host-memory backends (dataSync is a free read) a plain loop over the tensors' own buffers (float64 accumulation): the
 * elementwise product would be one more short-lived full-size native output, and such
 * allocations drive V8's external-memory-pressure GCs; elsewhere the tfjs ops.
 */
export function rowDots(a: tf.Tensor, n: number, b?: tf.Tensor): tf.Tensor1D {
  if (!engineCapabilities().hostMemory || a.dtype !== 'float32') {
    const p = b ? tf.mul(a, b) : tf.square(a);
    return tf.sum(tf.reshape(p, [n, -1]), 1) as tf.Tensor1D;
  }
  const x = a.dataSync() as Float32Array;
  const y = b ? (b.dataSync() as Float32Array) : x;
  const m = n ? x.length / n : 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * m;
    for (let j = 0; j < m; j++) s += x[o + j]! * y[o + j]!;
    out[i] = s;
  }
  return tf.tensor1d(out);
}

// ---------------------------------------------------------------------------------------------
// Parameter-free layers

export abstract class Stateless implements Module {
  abstract readonly type: string;
  parameters(): Param[] {
    return [];
  }
  abstract forward(x: tf.Tensor, training: boolean): tf.Tensor;
  abstract backward(dy: tf.Tensor, tape: GradTape): tf.Tensor;
  spec(): LayerSpec {
    return { type: this.type };
  }
}

/** Parameters of a child module, renamed "<prefix>.<name>". */
export function prefixed(prefix: string, ps: Param[]): Param[] {
  return ps.map((p) => ({ name: `${prefix}.${p.name}`, value: p.value }));
}
