// Synchronous access to ONNX Runtime through onnxruntime-node's internal native binding.
//
// tfjs kernels must return synchronously, but the public `InferenceSession.run` of
// onnxruntime-node is async (it defers with setImmediate). The native object behind it is
// synchronous, so we use it directly. It is internal API: the version is pinned in
// package.json and `checkBinding()` (covered by test/engine-binding.test.ts) fails loudly if
// its shape changes.
import { createRequire } from 'node:module';
import os from 'node:os';
import { encodeModel, type OnnxGraph } from './onnx-proto.js';

const require = createRequire(import.meta.url);

/** The onnxruntime-node version whose internal binding this module was written against. */
export const PINNED_ORT_VERSION = '1.30.0';

export type OrtDType = 'float32' | 'int32' | 'bool' | 'uint8' | 'int64' | 'float64' | 'int8';
export type OrtData = Float32Array | Int32Array | Uint8Array | BigInt64Array | Float64Array | Int8Array;

export interface OrtIn {
  type: OrtDType;
  data: OrtData;
  dims: readonly number[];
}

export interface OrtOut {
  type: string;
  data: OrtData;
  dims: readonly number[];
}

interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, null>, options: object): Record<string, OrtOut>;
  dispose(): void;
  readonly inputMetadata: { name: string }[];
  readonly outputMetadata: { name: string }[];
}

interface BindingModule {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
}

let bindingModule: BindingModule | undefined;

/** Loads the native binding and verifies the internal API this engine depends on. */
export function checkBinding(): BindingModule {
  if (bindingModule) return bindingModule;
  let version: string | undefined;
  try {
    version = (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    version = undefined;
  }
  const mod = require('onnxruntime-node/dist/binding') as Partial<BindingModule>;
  const problems: string[] = [];
  if (typeof mod.initOrt !== 'function') problems.push('initOrt() missing');
  const ctor = mod.binding?.InferenceSession;
  if (typeof ctor !== 'function') problems.push('binding.InferenceSession constructor missing');
  else {
    for (const m of ['loadModel', 'run', 'dispose'] as const) {
      if (typeof (ctor.prototype as Record<string, unknown>)[m] !== 'function') problems.push(`InferenceSession.prototype.${m} missing`);
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `dplens engine: the internal onnxruntime-node binding API changed (found version ${version ?? 'unknown'}, ` +
        `written for ${PINNED_ORT_VERSION}): ${problems.join('; ')}. Pin onnxruntime-node to ${PINNED_ORT_VERSION}.`,
    );
  }
  (mod as BindingModule).initOrt();
  bindingModule = mod as BindingModule;
  return bindingModule;
}

export function defaultThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

let threads = defaultThreads();

interface CachedSession {
  session: NativeSession;
  inputNames: string[];
  outputNames: string[];
  fetches: Record<string, null>;
}

const sessions = new Map<string, CachedSession>();
const RUN_OPTIONS = {};

/**
 * Profiling clock: while `on`, the wall time spent inside the native `run` (ONNX Runtime's own
 * work plus the binding's output copies) is added to `ms`, so a kernel's time can be split into
 * the ORT run and the JS around it (feeds, tensor wrapping, host kernels). Off by default.
 */
export const runClock = { on: false, ms: 0 };

export function getThreads(): number {
  return threads;
}

/**
 * Sets the intra-op thread count of the multi-thread (matmul/conv) sessions. Sessions are cached
 * per thread count, so switching back and forth (e.g. 1 thread per data-parallel worker during
 * evaluation training, then the full count again) rebuilds nothing.
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`engine threads must be a positive integer, got ${n}`);
  threads = n;
}

export function clearSessions(): void {
  for (const s of sessions.values()) s.session.dispose();
  sessions.clear();
}

export function sessionCount(): number {
  return sessions.size;
}

/** ONNX Runtime rejected a kernel model (e.g. no CPU implementation for a type combination). */
export class SessionBuildError extends Error {
  override name = 'SessionBuildError';
}

const failedKeys = new Map<string, string>();

/**
 * ONNX Runtime graph optimisation level of a kernel session. 'extended' (default) keeps the
 * node fusions without layout changes; 'all' adds the NCHWc layout transformer, which pays off
 * for pooling (MLAS's blocked-layout kernels, the NHWC↔NCHW transposes folded into its
 * reorders: 3× faster on the reference CNN's first pool) but made a transposed conv with a
 * single input channel 6× slower (27 vs 4.3 ms).
 */
export type OptLevel = 'extended' | 'all';

function createSession(graph: OnnxGraph, nThreads: number, optLevel: OptLevel): CachedSession {
  const { binding } = checkBinding();
  const bytes = encodeModel(graph);
  const session = new binding.InferenceSession();
  try {
    loadInto(session, bytes, nThreads, optLevel);
  } catch (e) {
    throw new SessionBuildError((e as Error).message);
  }
  const inputNames = graph.inputs.map((v) => v.name);
  const outputNames = graph.outputs.map((v) => v.name);
  const fetches: Record<string, null> = {};
  for (const n of outputNames) fetches[n] = null;
  return { session, inputNames, outputNames, fetches };
}

/**
 * Spin-waiting for the multi-thread (matmul/conv) sessions only; 1-thread sessions have no pool
 * threads to spin. Off by default (see loadInto); DPLENS_ORT_SPIN=1 turns it on for measurements.
 */
export const spinTuning = { multiThread: process.env.DPLENS_ORT_SPIN === '1' };

function loadInto(session: NativeSession, bytes: Uint8Array, nThreads: number, optLevel: OptLevel): void {
  const spin = nThreads > 1 && spinTuning.multiThread ? '1' : '0';
  session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: nThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: optLevel,
    executionMode: 'sequential',
    // Every session owns a thread pool; spinning pools across hundreds of kernel sessions
    // burn the CPU (engine-notes.md: 18 s vs 1.3 s wall on a small benchmark).
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: '0' } } },
  });
}

/**
 * Runs the cached model `key` (built once by `build`) on `inputs` (matched to graph inputs by
 * position) and returns its outputs in graph order. `singleThread` selects a 1-thread session
 * for small problems where thread hand-off costs more than it saves.
 */
export function runGraph(key: string, build: () => OnnxGraph, inputs: readonly OrtIn[], singleThread = false, optLevel: OptLevel = 'extended'): OrtOut[] {
  const nThreads = singleThread ? 1 : threads;
  const fullKey = `${key}#${nThreads}${optLevel === 'all' ? '#all' : ''}`;
  let s = sessions.get(fullKey);
  if (!s) {
    const failed = failedKeys.get(fullKey);
    if (failed !== undefined) throw new SessionBuildError(failed);
    try {
      s = createSession(build(), nThreads, optLevel);
    } catch (e) {
      if (e instanceof SessionBuildError) failedKeys.set(fullKey, e.message);
      throw e;
    }
    sessions.set(fullKey, s);
  }
  const feeds: Record<string, unknown> = {};
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i];
    feeds[s.inputNames[i]] = { type: x.type, data: x.data, dims: x.dims, location: 'cpu' };
  }
  let res: Record<string, OrtOut>;
  if (runClock.on) {
    const t0 = performance.now();
    res = s.session.run(feeds, s.fetches, RUN_OPTIONS);
    runClock.ms += performance.now() - t0;
  } else res = s.session.run(feeds, s.fetches, RUN_OPTIONS);
  const outs: OrtOut[] = new Array(s.outputNames.length);
  for (let i = 0; i < s.outputNames.length; i++) outs[i] = res[s.outputNames[i]];
  return outs;
}
