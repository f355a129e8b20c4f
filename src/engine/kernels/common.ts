// Shared plumbing for ORT kernels: run a cached graph on tfjs tensors and wrap the outputs.
import type { DataType, TensorInfo, backend_util } from '@tensorflow/tfjs-core';
import type { OrtBackend } from '../backend.js';
import { feed, GraphBuilder, sizeOf } from '../graph.js';
import { runGraph, type OptLevel, type OrtIn } from '../ort-runtime.js';

/**
 * Tuning knobs, measured on 2 cores:
 * - below `jsFastPathElems` output elements an elementwise op runs the JS kernel (a native call
 *   costs ~8-15 µs fixed);
 * - elementwise and data-movement kernels below `singleThreadElems` (i.e. practically all) use a
 *   1-thread session: they are memory-bound, a second thread barely helps (ReLU on 800k floats:
 *   0.43 ms on 1 thread, 0.59 ms on 2), and waking a pool thread on a busy machine can stall the
 *   call for milliseconds (median 53 ms for that ReLU at load 11 on 2 cores, vs 0.74 ms);
 * - matmul/conv below `singleThreadFlops` use 1 thread, larger ones the configured count.
 */
export const tuning = {
  jsFastPathElems: 1024,
  singleThreadElems: 1 << 22,
  singleThreadFlops: 4e6,
  /**
   * MaxPoolGrad (~25 elementwise ops) from this many input elements on uses the configured
   * thread count: enough work per call for a second thread to pay off on a quiet machine (6.2 vs
   * 10.4 ms for the reference CNN's first pool at batch 240).
   */
  maxPoolGradSingleThreadElems: 65536,
  /**
   * MaxPoolGrad as one host pass (host/pool.ts, WebAssembly SIMD where it applies) instead of the
   * elementwise ONNX graph, which reads x once per window offset and materialises masks and
   * padded copies (issue 18: 2.8 vs 7.5 ms CPU on the reference CNN's first pool, batch 256).
   * false selects the graph (kept for comparison and tests).
   */
  hostMaxPoolGrad: true,
  /** Forward convs on MLAS's NCHWc kernels where the shapes allow (see conv.ts). */
  nchwcConv: true,
};

export function inputsOf(backend: OrtBackend, ts: readonly TensorInfo[], feedDims?: readonly (readonly number[] | undefined)[]): OrtIn[] {
  return ts.map((t, i) => {
    const f = feed(t, backend.values(t));
    const d = feedDims?.[i];
    return d ? { ...f, dims: d } : f;
  });
}

/** Session choices for one kernel call. */
export interface RunOpts {
  /** 1-thread session (small or memory-bound work). */
  singleThread: boolean;
  /** ONNX Runtime optimisation level (default 'extended'; see OptLevel). */
  optLevel?: OptLevel;
  /**
   * Dims to feed instead of a tensor's own shape (same element count), e.g. a batch-1 3-D matmul
   * operand viewed as 2-D. The graph's inputs must be declared with the fed rank.
   */
  feedDims?: readonly (readonly number[] | undefined)[];
}

/** The graph factory runGraph caches under a key: a fresh GraphBuilder filled by `build`. */
export function graphOf(build: (g: GraphBuilder) => void): () => ReturnType<GraphBuilder['build']> {
  return () => {
    const g = new GraphBuilder();
    build(g);
    return g.build();
  };
}

/** Runs graph `key` (built by `build`) on tensors `ts`; returns the outputs as tfjs tensors. */
export function runOnTensors(
  backend: OrtBackend,
  key: string,
  build: (g: GraphBuilder) => void,
  ts: readonly TensorInfo[],
  outDtypes: readonly DataType[],
  run: boolean | RunOpts,
  outShapes?: readonly (readonly number[])[],
): TensorInfo[] {
  const opts: RunOpts = typeof run === 'boolean' ? { singleThread: run } : run;
  const outs = runGraph(
    key,
    graphOf(build),
    inputsOf(backend, ts, opts.feedDims),
    opts.singleThread,
    opts.optLevel,
  );
  return outs.map((o, i) => {
    const shape = outShapes?.[i] ?? o.dims;
    if (outShapes && sizeOf(shape) !== o.data.length) {
      throw new Error(`engine: native kernel ${key} produced ${o.data.length} values for expected shape [${shape.join(',')}]`);
    }
    return backend.makeTensorInfo(shape as number[], outDtypes[i], o.data as backend_util.BackendValues);
  });
}

export function anyEmpty(ts: readonly TensorInfo[]): boolean {
  return ts.some((t) => t.shape.includes(0));
}
