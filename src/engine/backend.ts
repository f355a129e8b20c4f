// The 'ort' tfjs backend: tensors live in the tfjs CPU backend's data store (OrtBackend
// subclasses MathBackendCPU), every CPU kernel is registered for 'ort' as the baseline, and the
// hot kernels are overridden by versions that run a cached ONNX model on ONNX Runtime.
//
// Accounting: every kernel call is counted in `kernelCalls`. A call that runs a JS
// implementation is counted either in `fallbacks` (a missing native path: what the hot-path
// tests assert to be zero) or in `jsFastPath` (a deliberate JS path: tensors too small for a
// native call to pay off, metadata-only kernels like Reshape, and fills).
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { Values } from './graph.js';
import { runClock, SessionBuildError } from './ort-runtime.js';
import { declareBackendCapabilities } from './capabilities.js';

export const ORT_BACKEND_NAME = 'ort';

export class OrtBackend extends MathBackendCPU {
  constructor() {
    super();
    // MathBackendCPU prints a "install tfjs-node" banner on first write; that advice does not
    // apply to this backend.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** Values of a tensor in the shared CPU data store (no copy). */
  values(t: TensorInfo): Values {
    return this.data.get(t.dataId).values as Values;
  }
}

export interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  attrs: NamedAttrMap;
  backend: OrtBackend;
}

/** Returned by an ORT kernel that chose the deliberate JS path (tiny tensors, empty tensors). */
export const JS_FAST = Symbol('jsFastPath');
/** An ORT kernel returns a string (the reason) to fall back to the CPU kernel; counted. */
export type KernelResult = TensorInfo | TensorInfo[] | string | typeof JS_FAST;
export type OrtKernel = (args: KernelArgs) => KernelResult;

const ortKernels = new Map<string, OrtKernel>();

export function defineKernel(name: string, k: OrtKernel): void {
  ortKernels.set(name, k);
}

/** Kernels whose CPU implementation is metadata-only or a plain fill: JS is the right place. */
const JS_BY_DESIGN = new Set<string>(['Reshape', 'Identity', 'Fill', 'ZerosLike', 'OnesLike', 'Range', 'LinSpace', 'Complex', 'Real', 'Imag']);

export interface EngineStatsData {
  fallbacks: Record<string, number>;
  fallbackReasons: Record<string, string>;
  jsFastPath: Record<string, number>;
  kernelCalls: Record<string, number>;
  kernelTimeMs: Record<string, number>;
  /** Part of kernelTimeMs spent inside ONNX Runtime's native run (timing on only). */
  kernelOrtRunMs: Record<string, number>;
  /**
   * Process CPU time (user + system, all threads) per kernel while timing is on: on a shared
   * machine far less sensitive to other people's load than wall time.
   */
  kernelCpuMs: Record<string, number>;
}

export const stats: EngineStatsData & { timing: boolean } = {
  fallbacks: {},
  fallbackReasons: {},
  jsFastPath: {},
  kernelCalls: {},
  kernelTimeMs: {},
  kernelOrtRunMs: {},
  kernelCpuMs: {},
  timing: false,
};

export function resetStats(): void {
  stats.fallbacks = {};
  stats.fallbackReasons = {};
  stats.jsFastPath = {};
  stats.kernelCalls = {};
  stats.kernelTimeMs = {};
  stats.kernelOrtRunMs = {};
  stats.kernelCpuMs = {};
}

function inc(rec: Record<string, number>, name: string): void {
  rec[name] = (rec[name] ?? 0) + 1;
}

function wrap(name: string, cpu: KernelFunc | undefined, ort: OrtKernel | undefined): KernelFunc {
  const cpuOrThrow: KernelFunc =
    cpu ??
    (() => {
      throw new Error(`engine: kernel ${name} has no native implementation for these inputs and no CPU fallback`);
    });
  const run = (args: KernelArgs): TensorInfo | TensorInfo[] => {
    inc(stats.kernelCalls, name);
    if (ort) {
      let r: KernelResult;
      try {
        r = ort(args);
      } catch (e) {
        // A model ONNX Runtime cannot build is a missing native path, not a user error.
        if (!(e instanceof SessionBuildError)) throw e;
        r = `ONNX Runtime rejected the kernel model: ${e.message}`;
      }
      if (typeof r === 'string') {
        inc(stats.fallbacks, name);
        stats.fallbackReasons[name] = r;
        return cpuOrThrow(args as never);
      }
      if (r === JS_FAST) {
        inc(stats.jsFastPath, name);
        return cpuOrThrow(args as never);
      }
      return r;
    }
    if (JS_BY_DESIGN.has(name)) inc(stats.jsFastPath, name);
    else {
      inc(stats.fallbacks, name);
      stats.fallbackReasons[name] = 'no native kernel';
    }
    return cpuOrThrow(args as never);
  };
  return ((args: KernelArgs) => {
    if (!stats.timing) return run(args);
    // Nested kernel calls (a kernel calling another through tfjs) are timed in both.
    const r0 = runClock.ms;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    try {
      return run(args);
    } finally {
      stats.kernelTimeMs[name] = (stats.kernelTimeMs[name] ?? 0) + (performance.now() - t0);
      const c = process.cpuUsage(c0);
      stats.kernelCpuMs[name] = (stats.kernelCpuMs[name] ?? 0) + (c.user + c.system) / 1000;
      stats.kernelOrtRunMs[name] = (stats.kernelOrtRunMs[name] ?? 0) + (runClock.ms - r0);
    }
  }) as unknown as KernelFunc;
}

let registered = false;

/** Registers the 'ort' backend and its kernels with tfjs (idempotent). */
export function registerOrtBackend(): void {
  if (registered) return;
  registered = true;
  const cpuConfigs = new Map<string, KernelConfig>();
  for (const c of tf.getKernelsForBackend('cpu')) cpuConfigs.set(c.kernelName, c);
  const names = new Set<string>([...cpuConfigs.keys(), ...ortKernels.keys()]);
  for (const name of names) {
    const c = cpuConfigs.get(name);
    tf.registerKernel({
      kernelName: name,
      backendName: ORT_BACKEND_NAME,
      kernelFunc: wrap(name, c?.kernelFunc, ortKernels.get(name)),
      setupFunc: c?.setupFunc,
      disposeFunc: c?.disposeFunc,
    });
  }
  declareBackendCapabilities(ORT_BACKEND_NAME, { hostMemory: true, nativeConvBackpropInput: true, fusedReluBackprop: true, onnxRuntime: true });
  // Priority above 'cpu' (1) so that a bare `tf.ready()` in Node picks 'ort'.
  tf.registerBackend(ORT_BACKEND_NAME, () => new OrtBackend(), 3);
}

/**
 * Registers for 'ort' any CPU kernel added after the engine was imported (e.g. a custom kernel a
 * model registers for 'cpu'), so it also runs on 'ort' (counted as a fallback).
 */
export function syncLateCpuKernels(): void {
  for (const c of tf.getKernelsForBackend('cpu')) {
    if (tf.getKernel(c.kernelName, ORT_BACKEND_NAME) !== undefined) continue;
    tf.registerKernel({ ...c, backendName: ORT_BACKEND_NAME, kernelFunc: wrap(c.kernelName, c.kernelFunc, ortKernels.get(c.kernelName)) });
  }
}

/** Names of kernels with a native ONNX Runtime implementation. */
export function nativeKernelNames(): string[] {
  return [...ortKernels.keys()].sort();
}
