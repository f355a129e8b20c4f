// Native matmul, elementwise, reduction and layout kernels.
import * as tf from '@tensorflow/tfjs-core';
import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { defineKernel, JS_FAST, type KernelArgs, type KernelResult } from '../backend.js';
import { attr, sizeOf, type GraphBuilder } from '../graph.js';
import { anyEmpty, runOnTensors, tuning } from './common.js';

const FLOAT: readonly DataType[] = ['float32'];
const NUMERIC: readonly DataType[] = ['float32', 'int32'];

// ---------------------------------------------------------------- activations (shared with conv)

/** Appends a tfjs fused activation to `x`. `alpha` is the graph name of the prelu weights. */
export function applyActivation(g: GraphBuilder, x: string, activation: string, leakyAlpha: number, alpha?: string): string {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return g.op('Relu', [x]);
    case 'relu6':
      return g.op('Clip', [x, g.constF32([0]), g.constF32([6])]);
    case 'elu':
      return g.op('Elu', [x], { alpha: attr.float(1) });
    case 'sigmoid':
      return g.op('Sigmoid', [x]);
    case 'leakyrelu':
      return g.op('LeakyRelu', [x], { alpha: attr.float(leakyAlpha) });
    case 'prelu': {
      if (!alpha) throw new Error('engine: prelu activation needs preluActivationWeights');
      return g.op('Where', [g.op('Less', [x, g.constF32([0])]), g.op('Mul', [x, alpha]), x]);
    }
    default:
      throw new Error(`engine: unknown fused activation '${activation}'`);
  }
}

export const SUPPORTED_ACTIVATIONS = new Set(['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu']);

// ---------------------------------------------------------------- matmul

function matmulShape(a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean): { shape: number[]; flops: number } | string {
  if (a.shape.length < 2 || b.shape.length < 2) return 'rank < 2';
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = tA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = tA ? a.shape[ar - 2] : a.shape[ar - 1];
  const k2 = tB ? b.shape[br - 1] : b.shape[br - 2];
  const n = tB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== k2) return `inner dims ${k} vs ${k2}`;
  const batchA = sizeOf(a.shape.slice(0, -2));
  const batchB = sizeOf(b.shape.slice(0, -2));
  // The tfjs CPU kernel pairs flattened batch indices modulo each side's batch size, which is
  // numpy broadcasting only when the batch sizes are equal or one side has a single batch.
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return `batch ${batchA} vs ${batchB}: tfjs CPU batch pairing is not numpy broadcasting`;
  const batch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, m, n];
  return { shape, flops: 2 * sizeOf(shape) * k };
}

function matmulKernel(fused: boolean) {
  return ({ inputs, attrs, backend }: KernelArgs): KernelResult => {
    const { a, b } = inputs;
    const bias = fused ? (inputs.bias as TensorInfo | undefined) : undefined;
    const prelu = fused ? (inputs.preluActivationWeights as TensorInfo | undefined) : undefined;
    const tA = Boolean(attrs.transposeA);
    const tB = Boolean(attrs.transposeB);
    const activation = fused ? String(attrs.activation ?? 'linear') : 'linear';
    const leakyAlpha = Number(attrs.leakyreluAlpha ?? 0.2);
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return `dtype ${a.dtype}x${b.dtype}`;
    if (!SUPPORTED_ACTIVATIONS.has(activation)) return `activation ${activation}`;
    const info = matmulShape(a, b, tA, tB);
    if (typeof info === 'string') return info;
    const ts = [a, b];
    if (bias) ts.push(bias);
    if (prelu) ts.push(prelu);
    if (anyEmpty(ts) || sizeOf(info.shape) === 0) return JS_FAST;
    const key = `MatMul|${a.shape.length}|${b.shape.length}|${tA}|${tB}|${bias ? bias.shape.length : -1}|${activation}|${activation === 'leakyrelu' ? leakyAlpha : ''}|${prelu ? prelu.shape.length : -1}`;
    return runOnTensors(
      backend,
      key,
      (g) => {
        const ia = g.input('float32', a.shape.length);
        const ib = g.input('float32', b.shape.length);
        let y: string;
        if (!tA && !tB) y = g.op('MatMul', [ia, ib]);
        else if (a.shape.length === 2 && b.shape.length === 2) {
          // 2-D: the transposes are free inside the GEMM call.
          y = g.op('FusedMatMul', [ia, ib], { transA: attr.int(tA ? 1 : 0), transB: attr.int(tB ? 1 : 0), alpha: attr.float(1) }, 'com.microsoft');
        } else {
          // Batched: ORT's FusedMatMul was 2-3x slower than an explicit Transpose + MatMul here
          // (e.g. 244 x [196x64]ᵀ·[196x16]: 7.4 vs 3.2 ms).
          const lastTwo = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
          y = g.op('MatMul', [tA ? g.transpose(ia, lastTwo(a.shape.length)) : ia, tB ? g.transpose(ib, lastTwo(b.shape.length)) : ib]);
        }
        if (bias) y = g.op('Add', [y, g.input('float32', bias.shape.length)]);
        const al = prelu ? g.input('float32', prelu.shape.length) : undefined;
        g.output(applyActivation(g, y, activation, leakyAlpha, al), 'float32');
      },
      ts,
      ['float32'],
      info.flops < tuning.singleThreadFlops,
      [info.shape],
    )[0];
  };
}

defineKernel('BatchMatMul', matmulKernel(false));
defineKernel('_FusedMatMul', matmulKernel(true));

// ---------------------------------------------------------------- binary elementwise

type BinaryBuild = (g: GraphBuilder, a: string, b: string, dtype: DataType) => string;

function binary(name: string, dtypes: readonly DataType[], build: BinaryBuild, outDtype?: DataType, names: [string, string] = ['a', 'b'], intDivisor = false): void {
  defineKernel(name, ({ inputs, backend }) => {
    const a = inputs[names[0]];
    const b = inputs[names[1]];
    if (a.dtype !== b.dtype) return `mixed dtypes ${a.dtype}/${b.dtype}`;
    if (!dtypes.includes(a.dtype)) return `dtype ${a.dtype}`;
    // Integer division by zero would trap in native code; tfjs gives 0 there: keep it in JS.
    if (intDivisor && a.dtype === 'int32' && (backend.values(b) as Int32Array).includes(0)) return 'int32 division by zero';
    const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = sizeOf(shape);
    if (n <= tuning.jsFastPathElems || anyEmpty([a, b])) return JS_FAST;
    const key = `${name}|${a.dtype}|${a.shape.length}|${b.shape.length}`;
    const od = outDtype ?? a.dtype;
    return runOnTensors(
      backend,
      key,
      (g) => {
        const ia = g.input(a.dtype, a.shape.length);
        const ib = g.input(b.dtype, b.shape.length);
        g.output(build(g, ia, ib, a.dtype), od);
      },
      [a, b],
      [od],
      n < tuning.singleThreadElems,
      [shape],
    )[0];
  });
}

const simple =
  (op: string): BinaryBuild =>
  (g, a, b) =>
    g.op(op, [a, b]);

binary('Add', NUMERIC, simple('Add'));
binary('Sub', NUMERIC, simple('Sub'));
binary('Multiply', NUMERIC, simple('Mul'));
binary('RealDiv', FLOAT, simple('Div'));
binary('Maximum', NUMERIC, simple('Max'));
binary('Minimum', NUMERIC, simple('Min'));
binary('Pow', FLOAT, simple('Pow'));
binary('SquaredDifference', FLOAT, (g, a, b) => {
  const d = g.op('Sub', [a, b]);
  return g.op('Mul', [d, d]);
});
// FloorDiv (tfjs returns int32 for any input dtype). int32: (a − mod(a, b)) / b is exact, with
// mod taking the divisor's sign. Float inputs stay on the CPU kernel: tfjs maps ±Inf/NaN
// quotients to 0 when storing int32, ONNX Cast leaves them undefined.
binary('FloorDiv', ['int32'], (g, a, b) => g.op('Div', [g.op('Sub', [a, g.op('Mod', [a, b], { fmod: attr.int(0) })]), b]), 'int32', undefined, true);
// tfjs mod takes the divisor's sign: ONNX Mod(fmod=0) for int32; for floats C fmod, shifted by b
// where a non-zero remainder's sign differs from the divisor's.
binary(
  'Mod',
  NUMERIC,
  (g, a, b, dt) => {
    if (dt === 'int32') return g.op('Mod', [a, b], { fmod: attr.int(0) });
    const r = g.op('Mod', [a, b], { fmod: attr.int(1) });
    const zero = g.constF32([0]);
    const differ = g.op('And', [g.op('Not', [g.op('Equal', [r, zero])]), g.op('Xor', [g.op('Less', [r, zero]), g.op('Less', [b, zero])])]);
    return g.op('Where', [differ, g.op('Add', [r, b]), r]);
  },
  undefined,
  undefined,
  true,
);
binary('Prelu', FLOAT, (g, x, al) => g.op('Where', [g.op('Less', [x, g.constF32([0])]), g.op('Mul', [x, al]), x]), undefined, ['x', 'alpha']);
binary('Equal', ['float32', 'int32', 'bool'], simple('Equal'), 'bool');
binary('NotEqual', ['float32', 'int32', 'bool'], (g, a, b) => g.op('Not', [g.op('Equal', [a, b])]), 'bool');
binary('Greater', NUMERIC, simple('Greater'), 'bool');
binary('GreaterEqual', NUMERIC, simple('GreaterOrEqual'), 'bool');
binary('Less', NUMERIC, simple('Less'), 'bool');
binary('LessEqual', NUMERIC, simple('LessOrEqual'), 'bool');
binary('LogicalAnd', ['bool'], simple('And'), 'bool');
binary('LogicalOr', ['bool'], simple('Or'), 'bool');
binary('LogicalXor', ['bool'], simple('Xor'), 'bool');
// tfjs EluGrad(dy, y): y >= 0 ? dy : dy * (y + 1)
defineKernel('EluGrad', ({ inputs, backend }) => {
  const { dy, y } = inputs;
  if (dy.dtype !== 'float32' || y.dtype !== 'float32') return `dtype ${dy.dtype}`;
  if (!tf.util.arraysEqual(dy.shape, y.shape)) return 'shape mismatch';
  const n = sizeOf(dy.shape);
  if (n <= tuning.jsFastPathElems) return JS_FAST;
  return runOnTensors(
    backend,
    `EluGrad|${dy.shape.length}`,
    (g) => {
      const idy = g.input('float32', dy.shape.length);
      const iy = g.input('float32', y.shape.length);
      const pos = g.op('GreaterOrEqual', [iy, g.constF32([0])]);
      g.output(g.op('Where', [pos, idy, g.op('Mul', [idy, g.op('Add', [iy, g.constF32([1])])])]), 'float32');
    },
    [dy, y],
    ['float32'],
    n < tuning.singleThreadElems,
    [dy.shape],
  )[0];
});

// ---------------------------------------------------------------- unary elementwise

type UnaryBuild = (g: GraphBuilder, x: string, attrs: tf.NamedAttrMap) => string;

function unary(name: string, dtypes: readonly DataType[], build: UnaryBuild, attrKey?: (attrs: tf.NamedAttrMap) => string, outDtype?: DataType): void {
  defineKernel(name, ({ inputs, attrs, backend }) => {
    const x = inputs.x;
    if (!dtypes.includes(x.dtype)) return `dtype ${x.dtype}`;
    const n = sizeOf(x.shape);
    if (n <= tuning.jsFastPathElems) return JS_FAST;
    const od = outDtype ?? x.dtype;
    const key = `${name}|${x.dtype}|${x.shape.length}|${attrKey ? attrKey(attrs) : ''}`;
    return runOnTensors(
      backend,
      key,
      (g) => {
        const ix = g.input(x.dtype, x.shape.length);
        g.output(build(g, ix, attrs), od);
      },
      [x],
      [od],
      n < tuning.singleThreadElems,
      [x.shape],
    )[0];
  });
}

const u =
  (op: string): UnaryBuild =>
  (g, x) =>
    g.op(op, [x]);

unary('Relu', FLOAT, u('Relu'));
unary('Relu6', FLOAT, (g, x) => g.op('Clip', [x, g.constF32([0]), g.constF32([6])]));
unary('LeakyRelu', FLOAT, (g, x, a) => g.op('LeakyRelu', [x], { alpha: attr.float(Number(a.alpha)) }), (a) => String(a.alpha));
unary('Sigmoid', FLOAT, u('Sigmoid'));
unary('Tanh', FLOAT, u('Tanh'));
unary('Elu', FLOAT, (g, x) => g.op('Elu', [x], { alpha: attr.float(1) }));
unary('Selu', FLOAT, u('Selu'));
unary('Exp', FLOAT, u('Exp'));
unary('Log', FLOAT, u('Log'));
unary('Sqrt', FLOAT, u('Sqrt'));
unary('Rsqrt', FLOAT, (g, x) => g.op('Reciprocal', [g.op('Sqrt', [x])]));
unary('Reciprocal', FLOAT, u('Reciprocal'));
unary('Square', FLOAT, (g, x) => g.op('Mul', [x, x]));
unary('Abs', NUMERIC, u('Abs'));
unary('Neg', NUMERIC, u('Neg'));
// tfjs sign maps NaN to 0; ONNX Sign keeps NaN.
unary('Sign', FLOAT, (g, x) => g.op('Where', [g.op('IsNaN', [x]), g.constF32([0]), g.op('Sign', [x])]));
unary('Floor', FLOAT, u('Floor'));
unary('Ceil', FLOAT, u('Ceil'));
unary('Round', FLOAT, u('Round'));
unary('Sin', FLOAT, u('Sin'));
unary('Cos', FLOAT, u('Cos'));
unary('Softplus', FLOAT, u('Softplus'));
// tfjs's CPU Erf is a polynomial approximation (|error| < 1.5e-7); ONNX Erf is exact to float.
unary('Erf', FLOAT, u('Erf'));
// ONNX has no Log1p/Expm1. log(1 + x) loses all precision for tiny x, so use the classic exact
// corrections: log1p(x) = log(u)·x/(u − 1) with u = 1 + x (x itself when u == 1), and
// expm1(x) = (u − 1)·x/log(u) with u = e^x (x when u == 1, −1 when u − 1 == −1).
unary('Log1p', FLOAT, (g, x) => {
  const u = g.op('Add', [x, g.constF32([1])]);
  const d = g.op('Sub', [u, g.constF32([1])]);
  const r = g.op('Where', [g.op('Equal', [d, g.constF32([0])]), x, g.op('Mul', [g.op('Log', [u]), g.op('Div', [x, d])])]);
  return g.op('Where', [g.op('IsInf', [x]), g.op('Log', [u]), r]);
});
unary('Expm1', FLOAT, (g, x) => {
  const u = g.op('Exp', [x]);
  const d = g.op('Sub', [u, g.constF32([1])]);
  const r = g.op('Where', [g.op('Equal', [d, g.constF32([0])]), x, g.op('Div', [g.op('Mul', [d, x]), g.op('Log', [u])])]);
  const big = g.op('Where', [g.op('IsInf', [u]), u, r]);
  return g.op('Where', [g.op('Equal', [d, g.constF32([-1])]), d, big]);
});
for (const op of ['Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh']) unary(op, FLOAT, u(op));
// tfjs Step: NaN stays NaN, x > 0 -> 1, else alpha.
unary(
  'Step',
  FLOAT,
  (g, x, a) => {
    const s = g.op('Where', [g.op('Greater', [x, g.constF32([0])]), g.constF32([1]), g.constF32([Number(a.alpha ?? 0)])]);
    return g.op('Where', [g.op('IsNaN', [x]), x, s]);
  },
  (a) => String(a.alpha ?? 0),
);
unary('IsNan', FLOAT, u('IsNaN'), undefined, 'bool');
unary('IsInf', FLOAT, u('IsInf'), undefined, 'bool');
unary('IsFinite', FLOAT, (g, x) => g.op('Not', [g.op('Or', [g.op('IsNaN', [x]), g.op('IsInf', [x])])]), undefined, 'bool');
unary('LogicalNot', ['bool'], u('Not'));
unary(
  'ClipByValue',
  FLOAT,
  (g, x, a) => g.op('Clip', [x, g.constF32([Number(a.clipValueMin)]), g.constF32([Number(a.clipValueMax)])]),
  (a) => `${a.clipValueMin}|${a.clipValueMax}`,
);

// ---------------------------------------------------------------- reductions

function reduceShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
      if (keepDims) out.push(1);
    } else out.push(shape[i]);
  }
  return out;
}

function reduction(name: string, onnxOp: string, dtypes: readonly DataType[]): void {
  defineKernel(name, ({ inputs, attrs, backend }) => {
    const x = inputs.x;
    if (!dtypes.includes(x.dtype)) return `dtype ${x.dtype}`;
    // Max names its axis attribute reductionIndices; the other reductions call it axis.
    const axisAttr = (name === 'Max' ? attrs.reductionIndices : attrs.axis) as number | number[];
    const axes = tf.util.parseAxisParam(axisAttr, x.shape).sort((p, q) => p - q);
    const keepDims = Boolean(attrs.keepDims);
    const n = sizeOf(x.shape);
    if (axes.length === 0 || n <= tuning.jsFastPathElems || n === 0) return JS_FAST;
    const shape = reduceShape(x.shape, axes, keepDims);
    return runOnTensors(
      backend,
      `${name}|${x.dtype}|${x.shape.length}|${axes.join(',')}|${keepDims}`,
      (g) => {
        const ix = g.input(x.dtype, x.shape.length);
        g.output(g.op(onnxOp, [ix, g.constI64(axes)], { keepdims: attr.int(keepDims ? 1 : 0) }), x.dtype);
      },
      [x],
      [x.dtype],
      n < tuning.singleThreadElems,
      [shape],
    )[0];
  });
}

reduction('Sum', 'ReduceSum', NUMERIC);
reduction('Mean', 'ReduceMean', FLOAT);
reduction('Max', 'ReduceMax', NUMERIC);
reduction('Min', 'ReduceMin', NUMERIC);
reduction('Prod', 'ReduceProd', NUMERIC);

function argReduce(name: string, onnxOp: string): void {
  defineKernel(name, ({ inputs, attrs, backend }) => {
    const x = inputs.x;
    if (!NUMERIC.includes(x.dtype)) return `dtype ${x.dtype}`;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
    if (axes.length !== 1) return `axis ${String(attrs.axis)}`;
    const n = sizeOf(x.shape);
    if (n <= tuning.jsFastPathElems) return JS_FAST;
    const shape = reduceShape(x.shape, axes, false);
    return runOnTensors(
      backend,
      `${name}|${x.dtype}|${x.shape.length}|${axes[0]}`,
      (g) => {
        const ix = g.input(x.dtype, x.shape.length);
        const idx = g.op(onnxOp, [ix], { axis: attr.int(axes[0]), keepdims: attr.int(0), select_last_index: attr.int(0) });
        g.output(g.op('Cast', [idx], { to: attr.int(6) }), 'int32');
      },
      [x],
      ['int32'],
      n < tuning.singleThreadElems,
      [shape],
    )[0];
  });
}

argReduce('ArgMax', 'ArgMax');
argReduce('ArgMin', 'ArgMin');

// ---------------------------------------------------------------- softmax

function softmaxKernel(name: string, onnxOp: string): void {
  defineKernel(name, ({ inputs, attrs, backend }) => {
    const x = inputs.logits;
    if (x.dtype !== 'float32') return `dtype ${x.dtype}`;
    const rank = x.shape.length;
    const dim = Number(attrs.dim ?? -1);
    const axis = dim < 0 ? dim + rank : dim;
    const n = sizeOf(x.shape);
    if (n <= tuning.jsFastPathElems) return JS_FAST;
    return runOnTensors(
      backend,
      `${name}|${rank}|${axis}`,
      (g) => {
        const ix = g.input('float32', rank);
        g.output(g.op(onnxOp, [ix], { axis: attr.int(axis) }), 'float32');
      },
      [x],
      ['float32'],
      n < tuning.singleThreadElems,
      [x.shape],
    )[0];
  });
}

softmaxKernel('Softmax', 'Softmax');
softmaxKernel('LogSoftmax', 'LogSoftmax');

// ---------------------------------------------------------------- layout

defineKernel('Transpose', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  const perm = attrs.perm as number[];
  if (x.dtype === 'string' || x.dtype === 'complex64') return `dtype ${x.dtype}`;
  const n = sizeOf(x.shape);
  if (n <= tuning.jsFastPathElems) return JS_FAST;
  const shape = perm.map((p) => x.shape[p]);
  return runOnTensors(
    backend,
    `Transpose|${x.dtype}|${perm.join(',')}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      g.output(g.transpose(ix, perm), x.dtype);
    },
    [x],
    [x.dtype],
    n < tuning.singleThreadElems,
    [shape],
  )[0];
});

// Cast: same-dtype casts are a refcount bump in the CPU kernel (no copy), so they stay in JS.
// Real conversions run natively. (float->int32 of NaN/out-of-range values is undefined in
// ONNX; tfjs gives 0 / wraps. Training code never casts such values.)
defineKernel('Cast', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  const to = attrs.dtype as DataType;
  if (to === x.dtype) return JS_FAST;
  const ok = ['float32', 'int32', 'bool'];
  if (!ok.includes(x.dtype) || !ok.includes(to)) return `cast ${x.dtype}->${to}`;
  const n = sizeOf(x.shape);
  if (n <= tuning.jsFastPathElems) return JS_FAST;
  const code = to === 'float32' ? 1 : to === 'int32' ? 6 : 9;
  return runOnTensors(
    backend,
    `Cast|${x.dtype}|${to}|${x.shape.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      g.output(g.op('Cast', [ix], { to: attr.int(code) }), to);
    },
    [x],
    [to],
    n < tuning.singleThreadElems,
    [x.shape],
  )[0];
});
