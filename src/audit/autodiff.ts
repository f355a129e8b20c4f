/**
 * Gradients (first and second order) for the tfjs kernels the gradient-inversion attack uses.
 *
 * `@tensorflow/tfjs-core` on its own registers no gradients (the union package `@tensorflow/tfjs`
 * does, which we do not depend on), so `tf.grad` fails with "gradient function not found". The
 * attack needs a *gradient of a gradient* (match ∇θ L(x̂) to a target, optimise x̂), so every
 * kernel on the path — including those emitted by the first backward pass — needs a gradient.
 * The formulas follow tfjs-core's own gradient definitions; we register only kernels that have no
 * gradient yet, so a full registration done elsewhere (e.g. by the engine) always wins.
 */
import * as tf from '@tensorflow/tfjs-core';

type Saved = tf.Tensor[];
type Attrs = Record<string, unknown>;
type GradFn = (dy: tf.Tensor, saved: Saved, attrs: Attrs) => Record<string, () => tf.Tensor>;

function reduceTo(res: tf.Tensor, shape: number[], outShape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, outShape);
  if (axes.length > 0) res = tf.sum(res, axes);
  return tf.reshape(res, shape);
}

function bcast(a: tf.Tensor, b: tf.Tensor): number[] {
  return tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
}

const f32 = (t: tf.Tensor): tf.Tensor => tf.cast(t, 'float32');

const GRADS: Record<string, { inputsToSave?: string[]; outputsToSave?: boolean[]; fn: GradFn }> = {
  Add: { inputsToSave: ['a', 'b'], fn: (dy, [a, b]) => ({ a: () => reduceTo(dy, a!.shape, bcast(a!, b!)), b: () => reduceTo(dy, b!.shape, bcast(a!, b!)) }) },
  Sub: { inputsToSave: ['a', 'b'], fn: (dy, [a, b]) => ({ a: () => reduceTo(dy, a!.shape, bcast(a!, b!)), b: () => tf.neg(reduceTo(dy, b!.shape, bcast(a!, b!))) }) },
  Multiply: {
    inputsToSave: ['a', 'b'],
    fn: (dy, [a, b]) => ({ a: () => reduceTo(tf.mul(dy, f32(b!)), a!.shape, bcast(a!, b!)), b: () => reduceTo(tf.mul(dy, f32(a!)), b!.shape, bcast(a!, b!)) }),
  },
  RealDiv: {
    inputsToSave: ['a', 'b'],
    fn: (dy, [a, b]) => ({
      a: () => reduceTo(tf.div(dy, f32(b!)), a!.shape, bcast(a!, b!)),
      b: () => tf.neg(tf.div(reduceTo(tf.mul(dy, f32(a!)), b!.shape, bcast(a!, b!)), f32(tf.square(b!)))),
    }),
  },
  Neg: { fn: (dy) => ({ x: () => tf.neg(dy) }) },
  Identity: { fn: (dy) => ({ x: () => f32(dy) }) },
  Cast: { fn: (dy) => ({ x: () => tf.clone(dy) }) },
  Reshape: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.reshape(dy, x!.shape) }) },
  Sum: {
    inputsToSave: ['x'],
    fn: (dy, [x], attrs) => {
      const shape = x!.shape.slice();
      const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x!.shape);
      for (const a of axes) shape[a] = 1;
      return { x: () => tf.mul(tf.reshape(dy, shape), tf.ones(x!.shape, 'float32')) };
    },
  },
  BatchMatMul: {
    inputsToSave: ['a', 'b'],
    fn: (dy, [a, b], attrs) => {
      const tA = attrs.transposeA as boolean;
      const tB = attrs.transposeB as boolean;
      if (!tA && !tB) return { a: () => tf.matMul(dy, b!, false, true), b: () => tf.matMul(a!, dy, true, false) };
      if (!tA && tB) return { a: () => tf.matMul(dy, b!, false, false), b: () => tf.matMul(dy, a!, true, false) };
      if (tA && !tB) return { a: () => tf.matMul(b!, dy, false, true), b: () => tf.matMul(a!, dy, false, false) };
      return { a: () => tf.matMul(b!, dy, true, true), b: () => tf.matMul(dy, a!, true, true) };
    },
  },
  Relu: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.mul(dy, tf.step(f32(x!))) }) },
  Step: { fn: (dy) => ({ x: () => tf.zerosLike(dy) }) },
  Maximum: {
    inputsToSave: ['a', 'b'],
    fn: (dy, [a, b]) => ({ a: () => tf.mul(dy, f32(tf.greaterEqual(a!, b!))), b: () => tf.mul(dy, f32(tf.less(a!, b!))) }),
  },
  Square: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.mul(dy, tf.mul(f32(x!), 2)) }) },
  Sqrt: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.div(dy, tf.mul(tf.sqrt(f32(x!)), 2)) }) },
  Exp: { outputsToSave: [true], fn: (dy, [y]) => ({ x: () => tf.mul(dy, y!) }) },
  Log: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.div(dy, f32(x!)) }) },
  Abs: { inputsToSave: ['x'], fn: (dy, [x]) => ({ x: () => tf.mul(dy, tf.sign(f32(x!))) }) },
  Sign: { fn: (dy) => ({ x: () => tf.zerosLike(dy) }) },
  // comparisons are piecewise constant: zero gradient (they only build masks)
  GreaterEqual: { inputsToSave: ['a', 'b'], fn: (_dy, [a, b]) => ({ a: () => tf.zerosLike(a!), b: () => tf.zerosLike(b!) }) },
  Less: { inputsToSave: ['a', 'b'], fn: (_dy, [a, b]) => ({ a: () => tf.zerosLike(a!), b: () => tf.zerosLike(b!) }) },
  Slice: {
    inputsToSave: ['x'],
    fn: (dy, [x], attrs) => {
      const begin = attrs.begin as number[];
      const size = attrs.size as number[];
      const pads: [number, number][] = x!.shape.map((d, i) => [begin[i]!, d - begin[i]! - (size[i] === -1 ? d - begin[i]! : size[i]!)]);
      return { x: () => tf.pad(dy, pads) };
    },
  },
  PadV2: {
    inputsToSave: ['x'],
    fn: (dy, [x], attrs) => {
      const paddings = attrs.paddings as [number, number][];
      return { x: () => tf.slice(dy, paddings.map((p) => p[0]), x!.shape) };
    },
  },
  // Conv2D and its two backward kernels: each is linear in each input, so the gradient of one is
  // another of the three (the backward kernels' gradients are what second-order attacks need).
  Conv2D: {
    inputsToSave: ['x', 'filter'],
    fn: (dy, [x, filter], attrs) => ({
      x: () => tf.conv2dTranspose(dy as tf.Tensor4D, filter as tf.Tensor4D, x!.shape as [number, number, number, number], attrs.strides as [number, number], attrs.pad as 'valid'),
      filter: () => conv2dBackpropFilter(x!, dy, filter!.shape, attrs),
    }),
  },
  Conv2DBackpropFilter: {
    inputsToSave: ['x', 'dy'],
    fn: (g, [x, dy], attrs) => ({
      x: () => tf.conv2dTranspose(dy as tf.Tensor4D, g as tf.Tensor4D, x!.shape as [number, number, number, number], attrs.strides as [number, number], attrs.pad as 'valid'),
      dy: () => tf.conv2d(x as tf.Tensor4D, g as tf.Tensor4D, attrs.strides as [number, number], attrs.pad as 'valid'),
    }),
  },
  Conv2DBackpropInput: {
    inputsToSave: ['dy', 'filter'],
    fn: (g, [dy, filter], attrs) => ({
      dy: () => tf.conv2d(g as tf.Tensor4D, filter as tf.Tensor4D, attrs.strides as [number, number], attrs.pad as 'valid'),
      filter: () => conv2dBackpropFilter(g, dy!, filter!.shape, attrs),
    }),
  },
  Transpose: {
    fn: (dy, _saved, attrs) => {
      const perm = attrs.perm as number[];
      const undo = perm.map((_, i) => perm.indexOf(i));
      return { x: () => tf.transpose(dy, undo) };
    },
  },
};

/** Conv2DBackpropFilter through the public kernel API (tfjs-core exports no op for it). */
function conv2dBackpropFilter(x: tf.Tensor, dy: tf.Tensor, filterShape: number[], attrs: Attrs): tf.Tensor {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides: attrs.strides,
    pad: attrs.pad,
    dataFormat: 'NHWC',
    dimRoundingMode: attrs.dimRoundingMode,
    filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

let registered = false;

/** Registers the gradients above for kernels that have none yet (idempotent). */
export function ensureAuditGradients(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, g] of Object.entries(GRADS)) {
    if (tf.getGradient(kernelName) !== undefined) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: g.inputsToSave,
      outputsToSave: g.outputsToSave,
      gradFunc: (dy, saved, attrs) => g.fn(dy as tf.Tensor, saved, attrs as unknown as Attrs),
    });
  }
}
