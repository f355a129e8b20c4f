// Public API of the engine layer: pick the tfjs backend (default in Node: 'ort', tfjs kernels on
// ONNX Runtime) and inspect per-kernel statistics. Nothing above this layer imports
// onnxruntime-node; switching to any other registered tfjs backend is one call:
// `await initEngine({ backend: 'cpu' })`.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node entry registers no gradients; this does (see vendor/README.md).
import './vendor/tfjs-gradients.js';
import { nativeKernelNames, ORT_BACKEND_NAME, registerOrtBackend, resetStats, stats, syncLateCpuKernels } from './backend.js';
import './kernels/math.js';
import './kernels/conv.js';
import './kernels/shape.js';
import { registerFusedGradients } from './gradients.js';
import { defaultThreads, getThreads, runClock, sessionCount, setThreads } from './ort-runtime.js';

export interface InitEngineOptions {
  /** 'ort' (default in Node), 'cpu', or any other registered tfjs backend name. */
  backend?: 'ort' | 'cpu' | (string & {});
  /** ONNX Runtime intra-op threads (default: os.availableParallelism()). */
  threads?: number;
  /** Record per-kernel wall and CPU time in engineStats().kernelTimeMs / kernelCpuMs (off by default: costs ~1 µs/call). */
  timing?: boolean;
}

export interface EngineStats {
  backend: string;
  threads: number;
  /** JS kernel runs where no native path exists for the inputs (should be 0 on hot paths). */
  fallbacks: Record<string, number>;
  /** Last reason recorded per fallback kernel. */
  fallbackReasons: Record<string, string>;
  /** Deliberate JS runs: tiny tensors (a native call costs more), metadata-only kernels, fills. */
  jsFastPath: Record<string, number>;
  kernelCalls: Record<string, number>;
  /** Per-kernel wall time in ms; only filled while timing is on. */
  kernelTimeMs: Record<string, number>;
  /** Part of kernelTimeMs spent inside ONNX Runtime's native run (output copies included). */
  kernelOrtRunMs: Record<string, number>;
  /** Process CPU time (all threads) per kernel in ms; only filled while timing is on. */
  kernelCpuMs: Record<string, number>;
  timing: boolean;
  /** Number of cached ONNX Runtime sessions (one per kernel/attrs/dtype/rank combination). */
  sessions: number;
  nativeKernels: string[];
}

registerOrtBackend();
registerFusedGradients();

/**
 * Initialises tfjs with the requested backend and returns its name. Call once (more calls are
 * cheap) before using tf.
 */
export async function initEngine(opts: InitEngineOptions = {}): Promise<string> {
  const name = opts.backend ?? ORT_BACKEND_NAME;
  if (name === ORT_BACKEND_NAME) syncLateCpuKernels();
  if (opts.threads !== undefined) setEngineThreads(opts.threads);
  if (opts.timing !== undefined) setEngineTiming(opts.timing);
  if (tf.engine().backendName !== name) {
    const registered = Object.keys(tf.engine().registryFactory);
    let ok = false;
    if (registered.includes(name)) ok = await tf.setBackend(name);
    if (!ok) throw new Error(`initEngine: tfjs backend '${name}' is not registered or failed to initialise (registered: ${registered.join(', ')})`);
  }
  await tf.ready();
  return tf.getBackend();
}

let started: Promise<string> | undefined;

/**
 * The one engine starter for entry points (CLI commands, runners, benches, tests): starts the
 * engine once per process with `opts` ('ort' by default, 'cpu' for tfjs' reference backend, any
 * registered name; `threads` for ONNX Runtime). Later calls return the running engine and only act
 * on what they ask for explicitly: another backend switches to it, a thread count is applied.
 */
export function ensureEngine(opts: InitEngineOptions = {}): Promise<string> {
  if (!started) {
    started = initEngine(opts);
    started.catch(() => (started = undefined));
    return started;
  }
  const prev = started;
  const next = prev.then(() => {
    const active = tf.getBackend();
    const backend = opts.backend ?? active;
    if (backend === active && (opts.threads === undefined || opts.threads === getThreads()) && opts.timing === undefined) return active;
    return initEngine({ ...opts, backend });
  });
  started = next.catch(() => prev);
  return next;
}

export function engineStats(): EngineStats {
  return {
    backend: tf.getBackend(),
    threads: getThreads(),
    fallbacks: { ...stats.fallbacks },
    fallbackReasons: { ...stats.fallbackReasons },
    jsFastPath: { ...stats.jsFastPath },
    kernelCalls: { ...stats.kernelCalls },
    kernelTimeMs: { ...stats.kernelTimeMs },
    kernelOrtRunMs: { ...stats.kernelOrtRunMs },
    kernelCpuMs: { ...stats.kernelCpuMs },
    timing: stats.timing,
    sessions: sessionCount(),
    nativeKernels: nativeKernelNames(),
  };
}

export function resetEngineStats(): void {
  resetStats();
}

/** Sets the ONNX Runtime thread count (rebuilds kernel sessions lazily). */
export function setEngineThreads(n: number): void {
  setThreads(n);
}

/** Turns per-kernel timing on or off. */
export function setEngineTiming(on: boolean): void {
  stats.timing = on;
  runClock.on = on;
}

export { defaultThreads };

// Capability queries (use these instead of comparing backend names).
export { declareBackendCapabilities, type EngineCapabilities, engineCapabilities } from './capabilities.js';

/**
 * Size thresholds for the deliberate JS paths (see kernels/common.ts). Exposed for tests and
 * benchmarks, e.g. `engineTuning.jsFastPathElems = 0` forces every call onto the native path.
 */
export { tuning as engineTuning } from './kernels/common.js';

// tf.tidy + dataSync without tidy walking a typed array (tidy-read.ts; no ORT import).
export { tidyRead } from './tidy-read.js';

// Fused conv/dense layers with hand-written backward passes (fused-layers.ts; issue 18).
export { convBiasRelu, type ConvPad, denseBias, reluBackprop } from './fused-layers.js';

// glibc malloc tuning for entry points (multi-MB kernel outputs without page faults; issue 18).
export { GLIBC_MALLOC_TUNABLES, mallocTuningActive, relaunchWithMallocTuning } from './malloc-tuning.js';
