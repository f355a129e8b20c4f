// Native data-movement and misc kernels: Pad, Concat, Pack, Slice, StridedSlice, Gather,
// GatherNd, Tile, Reverse, Split, Unpack, OneHot, TopK, Cumsum, Select, AddN, BatchNorm, Einsum.
// Per-call values such as slice starts or tile counts are fed as int64 inputs rather than baked
// into the model, so changing them (e.g. slicing successive mini-batches) reuses the session.
import * as tf from '@tensorflow/tfjs-core';
import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { defineKernel, JS_FAST, type OrtBackend } from '../backend.js';
import { attr, feed, GraphBuilder, sizeOf } from '../graph.js';
import { runGraph, type OrtIn } from '../ort-runtime.js';
import { graphOf, runOnTensors, tuning } from './common.js';

const DATA_DTYPES: readonly DataType[] = ['float32', 'int32', 'bool'];
/** ONNX Slice clamps ends; this stands for "past the start" with negative steps. */
const BEFORE_START = -(2 ** 53);

function i64(values: readonly number[]): OrtIn {
  const a = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) a[i] = BigInt(values[i]);
  return { type: 'int64', data: a, dims: [values.length] };
}

/** Runs a graph whose inputs are tensors followed by extra int64 vectors. */
function runMixed(
  backend: OrtBackend,
  key: string,
  build: (g: GraphBuilder) => void,
  ts: readonly TensorInfo[],
  extra: readonly number[][],
  outDtypes: readonly DataType[],
  outShapes: readonly (readonly number[])[],
): TensorInfo[] {
  const inputs = [...ts.map((t) => feed(t, backend.values(t))), ...extra.map(i64)];
  const n = sizeOf(outShapes[0]);
  const outs = runGraph(
    key,
    graphOf(build),
    inputs,
    n < tuning.singleThreadElems,
  );
  return outs.map((o, i) => backend.makeTensorInfo(outShapes[i] as number[], outDtypes[i], o.data as tf.backend_util.BackendValues));
}

function small(shape: readonly number[]): boolean {
  return sizeOf(shape) <= tuning.jsFastPathElems;
}

defineKernel('PadV2', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype) || x.dtype === 'bool') return `dtype ${x.dtype}`;
  const paddings = attrs.paddings as [number, number][];
  const value = Number(attrs.constantValue ?? 0);
  const shape = x.shape.map((d, i) => d + paddings[i][0] + paddings[i][1]);
  if (small(shape) || sizeOf(x.shape) === 0) return JS_FAST;
  const pads = [...paddings.map((p) => p[0]), ...paddings.map((p) => p[1])];
  return runMixed(
    backend,
    `Pad|${x.dtype}|${x.shape.length}|${value}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const ip = g.input('int64', [pads.length]);
      g.output(g.op('Pad', [ix, ip, g.constOf(x.dtype, [value], [])], { mode: attr.string('constant') }), x.dtype);
    },
    [x],
    [pads],
    [x.dtype],
    [shape],
  )[0];
});

defineKernel('MirrorPad', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return `dtype ${x.dtype}`;
  if (attrs.mode !== 'reflect') return `mode ${String(attrs.mode)} (ONNX has reflect only)`;
  const paddings = attrs.paddings as [number, number][];
  const shape = x.shape.map((d, i) => d + paddings[i][0] + paddings[i][1]);
  if (small(shape)) return JS_FAST;
  const pads = [...paddings.map((p) => p[0]), ...paddings.map((p) => p[1])];
  return runMixed(
    backend,
    `MirrorPad|${x.dtype}|${x.shape.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const ip = g.input('int64', [pads.length]);
      g.output(g.op('Pad', [ix, ip], { mode: attr.string('reflect') }), x.dtype);
    },
    [x],
    [pads],
    [x.dtype],
    [shape],
  )[0];
});

function concatLike(name: 'Concat' | 'Pack') {
  return ({ inputs, attrs, backend }: { inputs: Record<string, TensorInfo>; attrs: tf.NamedAttrMap; backend: OrtBackend }) => {
    const ts = Object.values(inputs);
    if (ts.length < 2) return JS_FAST;
    const dtype = ts[0].dtype;
    if (!DATA_DTYPES.includes(dtype) || ts.some((t) => t.dtype !== dtype)) return `dtype ${dtype}`;
    const rank = ts[0].shape.length;
    if (name === 'Concat' && ts.some((t) => sizeOf(t.shape) === 0)) return JS_FAST;
    const axisIn = Number(attrs.axis ?? 0);
    let shape: number[];
    let axis: number;
    if (name === 'Concat') {
      axis = tf.util.parseAxisParam(axisIn, ts[0].shape)[0];
      shape = ts[0].shape.slice();
      shape[axis] = ts.reduce((s, t) => s + t.shape[axis], 0);
    } else {
      axis = axisIn < 0 ? axisIn + rank + 1 : axisIn;
      shape = ts[0].shape.slice();
      shape.splice(axis, 0, ts.length);
      if (ts.some((t) => !tf.util.arraysEqual(t.shape, ts[0].shape))) return 'pack of different shapes';
    }
    if (small(shape)) return JS_FAST;
    return runOnTensors(
      backend,
      `${name}|${dtype}|${ts.length}|${rank}|${axis}`,
      (g) => {
        let ins = ts.map(() => g.input(dtype, rank));
        if (name === 'Pack') ins = ins.map((i) => g.op('Unsqueeze', [i, g.constI64([axis])]));
        g.output(g.op('Concat', ins, { axis: attr.int(axis) }), dtype);
      },
      ts,
      [dtype],
      sizeOf(shape) < tuning.singleThreadElems,
      [shape],
    )[0];
  };
}

defineKernel('Concat', concatLike('Concat'));
defineKernel('Pack', concatLike('Pack'));

function nativeSlice(backend: OrtBackend, x: TensorInfo, begin: number[], ends: number[], steps: number[], outShape: number[]): TensorInfo {
  return runMixed(
    backend,
    `Slice|${x.dtype}|${x.shape.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const r = x.shape.length;
      const s = g.input('int64', [r]);
      const e = g.input('int64', [r]);
      const st = g.input('int64', [r]);
      const y = g.op('Slice', [ix, s, e, g.constI64(Array.from({ length: r }, (_, i) => i)), st]);
      g.output(g.op('Reshape', [y, g.input('int64', ['r'])]), x.dtype);
    },
    [x],
    [begin, ends, steps, outShape],
    [x.dtype],
    [outShape],
  )[0];
}

defineKernel('Slice', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
  // Contiguous slices are a subarray copy in the CPU kernel: nothing to gain natively.
  if (small(size) || tf.slice_util.isSliceContinous(x.shape, begin, size)) return JS_FAST;
  return nativeSlice(
    backend,
    x,
    begin,
    begin.map((b, i) => b + size[i]),
    begin.map(() => 1),
    size,
  );
});

defineKernel('StridedSlice', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  const info = tf.slice_util.sliceInfo(
    x.shape,
    attrs.begin as number[],
    attrs.end as number[],
    attrs.strides as number[],
    Number(attrs.beginMask ?? 0),
    Number(attrs.endMask ?? 0),
    Number(attrs.ellipsisMask ?? 0),
    Number(attrs.newAxisMask ?? 0),
    Number(attrs.shrinkAxisMask ?? 0),
  );
  if (info.isIdentity || info.sliceDim0 || info.isSimpleSlice) return JS_FAST;
  const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
  if (small(size) || sizeOf(size) === 0) return JS_FAST;
  const ends = info.begin.map((b, i) => {
    const e = b + size[i] * info.strides[i];
    return e < 0 ? BEFORE_START : e;
  });
  return nativeSlice(backend, x, info.begin, ends, info.strides, info.finalShape);
});

defineKernel('Reverse', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  if (small(x.shape)) return JS_FAST;
  const dims = tf.util.parseAxisParam(attrs.dims as number | number[], x.shape);
  const begin = x.shape.map((d, i) => (dims.includes(i) ? d - 1 : 0));
  const ends = x.shape.map((d, i) => (dims.includes(i) ? BEFORE_START : d));
  const steps = x.shape.map((_, i) => (dims.includes(i) ? -1 : 1));
  return nativeSlice(backend, x, begin, ends, steps, x.shape.slice());
});

defineKernel('GatherV2', ({ inputs, attrs, backend }) => {
  const { x, indices } = inputs;
  if (!DATA_DTYPES.includes(x.dtype) || indices.dtype !== 'int32') return `dtype ${x.dtype}/${indices.dtype}`;
  if (Number(attrs.batchDims ?? 0) !== 0) return 'batchDims != 0';
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  if (small(shape) || sizeOf(x.shape) === 0) return JS_FAST;
  // tfjs rejects out-of-range indices; ONNX would wrap negative ones: check as the CPU kernel does.
  const idx = backend.values(indices) as Int32Array;
  const limit = x.shape[axis];
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= limit) return JS_FAST; // the CPU kernel raises its own error
  }
  return runOnTensors(
    backend,
    `Gather|${x.dtype}|${x.shape.length}|${indices.shape.length}|${axis}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const ii = g.input('int32', indices.shape.length);
      g.output(g.op('Gather', [ix, ii], { axis: attr.int(axis) }), x.dtype);
    },
    [x, indices],
    [x.dtype],
    sizeOf(shape) < tuning.singleThreadElems,
    [shape],
  )[0];
});

defineKernel('GatherNd', ({ inputs, backend }) => {
  const { params, indices } = inputs;
  if (!DATA_DTYPES.includes(params.dtype) || indices.dtype !== 'int32') return `dtype ${params.dtype}/${indices.dtype}`;
  const depth = indices.shape[indices.shape.length - 1];
  if (depth > params.shape.length || depth === 0) return 'index depth';
  const shape = [...indices.shape.slice(0, -1), ...params.shape.slice(depth)];
  if (small(shape) || sizeOf(params.shape) === 0) return JS_FAST;
  const idx = backend.values(indices) as Int32Array;
  for (let i = 0; i < idx.length; i++) {
    const d = i % depth;
    if (idx[i] < 0 || idx[i] >= params.shape[d]) return JS_FAST; // CPU kernel reports the error
  }
  return runOnTensors(
    backend,
    `GatherNd|${params.dtype}|${params.shape.length}|${indices.shape.length}`,
    (g) => {
      const ip = g.input(params.dtype, params.shape.length);
      const ii = g.input('int32', indices.shape.length);
      g.output(g.op('GatherND', [ip, g.op('Cast', [ii], { to: attr.int(7) })]), params.dtype);
    },
    [params, indices],
    [params.dtype],
    sizeOf(shape) < tuning.singleThreadElems,
    [shape],
  )[0];
});

defineKernel('Tile', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  const reps = attrs.reps as number[];
  const shape = x.shape.map((d, i) => d * reps[i]);
  if (small(shape) || sizeOf(shape) === 0) return JS_FAST;
  return runMixed(
    backend,
    `Tile|${x.dtype}|${x.shape.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      g.output(g.op('Tile', [ix, g.input('int64', [reps.length])]), x.dtype);
    },
    [x],
    [reps],
    [x.dtype],
    [shape],
  )[0];
});

defineKernel('SplitV', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits as number | number[], axis);
  if (small(x.shape) || sizes.some((s) => s === 0)) return JS_FAST;
  const shapes = sizes.map((s) => {
    const sh = x.shape.slice();
    sh[axis] = s;
    return sh;
  });
  return runMixed(
    backend,
    `Split|${x.dtype}|${x.shape.length}|${axis}|${sizes.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const outs = g.opN('Split', [ix, g.input('int64', [sizes.length])], sizes.length, { axis: attr.int(axis) });
      for (const o of outs) g.output(o, x.dtype);
    },
    [x],
    [sizes],
    sizes.map(() => x.dtype),
    shapes,
  );
});

defineKernel('Unpack', ({ inputs, attrs, backend }) => {
  const x = inputs.value;
  if (!DATA_DTYPES.includes(x.dtype)) return `dtype ${x.dtype}`;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const n = x.shape[axis];
  if (small(x.shape) || n < 2) return JS_FAST;
  const shape = x.shape.filter((_, i) => i !== axis);
  return runOnTensors(
    backend,
    `Unpack|${x.dtype}|${x.shape.length}|${axis}|${n}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const outs = g.opN('Split', [ix], n, { axis: attr.int(axis), num_outputs: attr.int(n) });
      for (const o of outs) g.output(g.op('Squeeze', [o, g.constI64([axis])]), x.dtype);
    },
    [x],
    Array.from({ length: n }, () => x.dtype),
    sizeOf(x.shape) < tuning.singleThreadElems,
    Array.from({ length: n }, () => shape),
  );
});

defineKernel('OneHot', ({ inputs, attrs, backend }) => {
  const indices = inputs.indices;
  if (indices.dtype !== 'int32') return `dtype ${indices.dtype}`;
  const depth = Number(attrs.depth);
  const dtype = (attrs.dtype as DataType | undefined) ?? 'int32';
  if (dtype !== 'float32' && dtype !== 'int32') return `dtype ${dtype}`;
  const shape = [...indices.shape, depth];
  if (small(shape) || depth === 0) return JS_FAST;
  const on = Number(attrs.onValue ?? 1);
  const off = Number(attrs.offValue ?? 0);
  return runOnTensors(
    backend,
    `OneHot|${indices.shape.length}|${depth}|${dtype}|${on}|${off}`,
    (g) => {
      const ii = g.input('int32', indices.shape.length);
      // tfjs gives all-off rows for any out-of-range index; ONNX wraps negative ones.
      const safe = g.op('Where', [g.op('Less', [ii, g.constOf('int32', [0])]), g.constOf('int32', [depth]), ii]);
      // ORT's CPU OneHot is registered for (int64 indices, float values, int64 depth).
      const idx64 = g.op('Cast', [safe], { to: attr.int(7) });
      const y = g.op('OneHot', [idx64, g.constI64([depth], []), g.constF32([off, on], [2])], { axis: attr.int(-1) });
      g.output(dtype === 'float32' ? y : g.op('Cast', [y], { to: attr.int(6) }), dtype);
    },
    [indices],
    [dtype],
    sizeOf(shape) < tuning.singleThreadElems,
    [shape],
  )[0];
});

defineKernel('TopK', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return `dtype ${x.dtype}`;
  const k = Number(attrs.k);
  if (attrs.sorted === false) return 'sorted=false (CPU order is implementation-defined)';
  const shape = [...x.shape.slice(0, -1), k];
  if (small(x.shape) || k === 0) return JS_FAST;
  return runMixed(
    backend,
    `TopK|${x.dtype}|${x.shape.length}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      const [v, i] = g.opN('TopK', [ix, g.input('int64', [1])], 2, { axis: attr.int(-1), largest: attr.int(1), sorted: attr.int(1) });
      g.output(v, x.dtype);
      g.output(g.op('Cast', [i], { to: attr.int(6) }), 'int32');
    },
    [x],
    [[k]],
    [x.dtype, 'int32'],
    [shape, shape],
  );
});

defineKernel('Cumsum', ({ inputs, attrs, backend }) => {
  const x = inputs.x;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return `dtype ${x.dtype}`;
  if (small(x.shape)) return JS_FAST;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const exclusive = Boolean(attrs.exclusive);
  const reverse = Boolean(attrs.reverse);
  return runOnTensors(
    backend,
    `Cumsum|${x.dtype}|${x.shape.length}|${axis}|${exclusive}|${reverse}`,
    (g) => {
      const ix = g.input(x.dtype, x.shape.length);
      g.output(g.op('CumSum', [ix, g.constI64([axis], [])], { exclusive: attr.int(exclusive ? 1 : 0), reverse: attr.int(reverse ? 1 : 0) }), x.dtype);
    },
    [x],
    [x.dtype],
    sizeOf(x.shape) < tuning.singleThreadElems,
    [x.shape],
  )[0];
});

defineKernel('Select', ({ inputs, backend }) => {
  const { condition, t, e } = inputs;
  if (!DATA_DTYPES.includes(t.dtype) || t.dtype !== e.dtype || condition.dtype !== 'bool') return `dtype ${t.dtype}`;
  if (!tf.util.arraysEqual(t.shape, e.shape)) return 'shape mismatch';
  if (small(t.shape)) return JS_FAST;
  const cr = condition.shape.length;
  const tr = t.shape.length;
  // tfjs: a rank-1 condition selects along the first axis; ONNX broadcasting aligns trailing axes.
  const lead = cr === 1 && tr > 1;
  return runOnTensors(
    backend,
    `Select|${t.dtype}|${cr}|${tr}`,
    (g) => {
      let ic = g.input('bool', cr);
      const it = g.input(t.dtype, tr);
      const ie = g.input(t.dtype, tr);
      if (lead) ic = g.op('Reshape', [ic, g.constI64([-1, ...new Array<number>(tr - 1).fill(1)])]);
      g.output(g.op('Where', [ic, it, ie]), t.dtype);
    },
    [condition, t, e],
    [t.dtype],
    sizeOf(t.shape) < tuning.singleThreadElems,
    [t.shape],
  )[0];
});

defineKernel('AddN', ({ inputs, backend }) => {
  const ts = Object.values(inputs);
  const dtype = ts[0].dtype;
  if ((dtype !== 'float32' && dtype !== 'int32') || ts.some((t) => t.dtype !== dtype)) return `dtype ${dtype}`;
  if (ts.length < 2 || small(ts[0].shape)) return JS_FAST;
  return runOnTensors(
    backend,
    `AddN|${dtype}|${ts.length}|${ts[0].shape.length}`,
    (g) => {
      const ins = ts.map((t) => g.input(dtype, t.shape.length));
      g.output(g.op('Sum', ins), dtype);
    },
    ts,
    [dtype],
    sizeOf(ts[0].shape) < tuning.singleThreadElems,
    [ts[0].shape],
  )[0];
});

defineKernel('FusedBatchNorm', ({ inputs, attrs, backend }) => {
  const { x, mean, variance } = inputs;
  const offset = inputs.offset as TensorInfo | undefined;
  const scale = inputs.scale as TensorInfo | undefined;
  const ts = [x, mean, variance, ...(offset ? [offset] : []), ...(scale ? [scale] : [])];
  if (ts.some((t) => t.dtype !== 'float32')) return 'dtype';
  if (small(x.shape)) return JS_FAST;
  const eps = Number(attrs.varianceEpsilon ?? 0.001);
  return runOnTensors(
    backend,
    `BatchNorm|${ts.map((t) => t.shape.length).join(',')}|${offset ? 1 : 0}|${scale ? 1 : 0}|${eps}`,
    (g) => {
      const ix = g.input('float32', x.shape.length);
      const im = g.input('float32', mean.shape.length);
      const iv = g.input('float32', variance.shape.length);
      const io = offset ? g.input('float32', offset.shape.length) : undefined;
      const is = scale ? g.input('float32', scale.shape.length) : undefined;
      let inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [iv, g.constF32([eps])])])]);
      if (is) inv = g.op('Mul', [inv, is]);
      let y = g.op('Mul', [g.op('Sub', [ix, im]), inv]);
      if (io) y = g.op('Add', [y, io]);
      g.output(y, 'float32');
    },
    ts,
    ['float32'],
    sizeOf(x.shape) < tuning.singleThreadElems,
    [x.shape],
  )[0];
});

defineKernel('Einsum', ({ inputs, attrs, backend }) => {
  const ts = Object.values(inputs);
  if (ts.some((t) => t.dtype !== 'float32')) return 'dtype';
  const equation = String(attrs.equation);
  return runOnTensors(
    backend,
    `Einsum|${equation}|${ts.map((t) => t.shape.length).join(',')}`,
    (g) => {
      const ins = ts.map((t) => g.input('float32', t.shape.length));
      g.output(g.op('Einsum', ins, { equation: attr.string(equation) }), 'float32');
    },
    ts,
    ['float32'],
    false,
  )[0];
});

// UnsortedSegmentSum: the CPU kernel loops over segments (O(segments·n·d)); natively it is one
// ScatterND(add) into zeros. tfjs ignores ids outside [0, numSegments); ScatterND would reject
// them, so those inputs take the (counted) CPU path.
defineKernel('UnsortedSegmentSum', ({ inputs, attrs, backend }) => {
  const { x, segmentIds } = inputs;
  const numSegments = Number(attrs.numSegments);
  if (x.dtype !== 'float32' || segmentIds.dtype !== 'int32') return `dtype ${x.dtype}/${segmentIds.dtype}`;
  if (segmentIds.shape.length !== 1 || segmentIds.shape[0] !== x.shape[0]) return 'segmentIds must be 1-D over the first axis';
  const shape = [numSegments, ...x.shape.slice(1)];
  if (sizeOf(x.shape) === 0 || numSegments === 0) return JS_FAST;
  const ids = backend.values(segmentIds) as Int32Array;
  for (let i = 0; i < ids.length; i++) if (ids[i] < 0 || ids[i] >= numSegments) return 'segment id out of range';
  if (small(x.shape) && small(shape)) return JS_FAST;
  return runMixed(
    backend,
    `UnsortedSegmentSum|${x.shape.length}`,
    (g) => {
      const ix = g.input('float32', x.shape.length);
      const ii = g.input('int32', 1);
      const outShape = g.input('int64', [x.shape.length]);
      const zeros = g.op('ConstantOfShape', [outShape], { value: attr.tensor({ name: 'zero', type: 1, dims: [1], values: [0] }) });
      const idx = g.op('Unsqueeze', [g.op('Cast', [ii], { to: attr.int(7) }), g.constI64([1])]);
      g.output(g.op('ScatterND', [zeros, idx, ix], { reduction: attr.string('add') }), 'float32');
    },
    [x, segmentIds],
    [shape],
    ['float32'],
    [shape],
  )[0];
});

function boolReduce(name: 'All' | 'Any', onnxOp: string): void {
  defineKernel(name, ({ inputs, attrs, backend }) => {
    const x = inputs.x;
    if (x.dtype !== 'bool') return `dtype ${x.dtype}`;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
    const keepDims = Boolean(attrs.keepDims);
    if (axes.length === 0 || small(x.shape)) return JS_FAST;
    const shape: number[] = [];
    x.shape.forEach((d, i) => {
      if (!axes.includes(i)) shape.push(d);
      else if (keepDims) shape.push(1);
    });
    return runOnTensors(
      backend,
      `${name}|${x.shape.length}|${axes.join(',')}|${keepDims}`,
      (g) => {
        const ix = g.op('Cast', [g.input('bool', x.shape.length)], { to: attr.int(6) });
        const r = g.op(onnxOp, [ix, g.constI64(axes)], { keepdims: attr.int(keepDims ? 1 : 0) });
        g.output(g.op('Cast', [r], { to: attr.int(9) }), 'bool');
      },
      [x],
      ['bool'],
      sizeOf(x.shape) < tuning.singleThreadElems,
      [shape],
    )[0];
  });
}

boolReduce('All', 'ReduceMin');
boolReduce('Any', 'ReduceMax');
