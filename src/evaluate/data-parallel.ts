/**
 * Synchronous data parallelism for the evaluation classifiers (issue 18: use both cores).
 *
 * The training step of `trainClassifier` is split by examples: the batch's rows are cut into
 * shards, the main thread computes the loss and gradients of shard 0 while each worker thread
 * (its own tfjs engine, its own 1-thread ONNX Runtime sessions) computes those of its shard, the
 * gradients are summed on the main thread, and one Adam step is applied there. The maths is the
 * unsplit step's up to float summation order: each shard's loss is its summed cross-entropy over
 * the whole batch size (so the shards add up to the batch mean), and dropout masks are drawn per
 * example from (seed, position in the batch) (`dropoutMaskRows`), so no mask depends on the split.
 *
 * Why threads and not ONNX Runtime's own pool: with 2-thread sessions only the large conv and
 * matmul kernels use the second core (the eval CNN ran at ~1.3 of 2 cores); the host kernels
 * (MaxPoolGrad, Adam, dropout masks), the memory-bound 1-thread kernels and tfjs' autodiff
 * bookkeeping are single-threaded. Shards keep both cores busy for the whole step, and a worker
 * never waits on a thread-pool hand-off inside a kernel.
 *
 * Everything crosses threads through SharedArrayBuffers, synchronously (`Atomics.wait` works on
 * Node's main thread), so `trainClassifier` stays a synchronous function:
 *   - the training images and labels (copied once), the epoch's order;
 *   - the weights, written by the main thread before each step;
 *   - one gradient buffer and one loss slot per worker;
 *   - a control block (step generation, batch bounds, dropout seed, done flags).
 * A worker that fails to start or does not come up within `READY_TIMEOUT_MS` is terminated and
 * the caller trains serially (same results up to float summation order; `shardWorkerStats`); an
 * error inside a worker during training is re-thrown on the main thread.
 */
import { Worker } from 'node:worker_threads';
import type { ClassifierArch, FloatImages } from './classifier-types.js';

const READY_TIMEOUT_MS = 120_000;
const STEP_TIMEOUT_MS = 600_000;

/** Control block layout (Int32Array indices). */
export const CTRL = {
  /** generation of the last command (bumped by the main thread) */
  gen: 0,
  /** command: 1 = step, 2 = exit */
  cmd: 1,
  /** batch start, batch end (indices into order) */
  s: 2,
  e: 3,
  /** dropout seed of the step */
  seed: 4,
  /** 1 once the worker has built its engine and net; −1 on a start-up error */
  ready: 5,
  /** size of the block; per worker w: done generation at `doneAt + 3w`, shard start, shard end */
  doneAt: 8,
} as const;

export interface ShardWorkerData {
  index: number;
  arch: ClassifierArch;
  shape: { height: number; width: number; channels: number };
  numClasses: number;
  backend: string;
  ctrl: SharedArrayBuffer;
  images: SharedArrayBuffer;
  labels: SharedArrayBuffer;
  order: SharedArrayBuffer;
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  loss: SharedArrayBuffer;
  error: SharedArrayBuffer;
  count: number;
}

export interface ShardResult {
  loss: number;
  /** gradients of all variables, concatenated in `net.vars` order (a view: copy or use before the next step) */
  grads: Float32Array;
}

function sharedCopy<T extends Float32Array | Int32Array>(src: T, make: (b: SharedArrayBuffer) => T): { sab: SharedArrayBuffer; view: T } {
  const sab = new SharedArrayBuffer(src.byteLength);
  const view = make(sab);
  view.set(src);
  return { sab, view };
}

/**
 * The worker's start-up script: imports the worker module and, if that fails (before the module
 * can report anything itself), writes the error to the shared block so that `start` falls back at
 * once instead of waiting for the time-out. Under tsx (tests, `node --import tsx`) a worker does
 * not inherit the main thread's loader hooks, so tsx's ESM hooks are registered first.
 */
function bootstrap(url: URL, viaTsx: boolean): string {
  const load = viaTsx
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`
    : `import(${JSON.stringify(url.href)})`;
  return `const { workerData } = require('node:worker_threads');
${load}.catch((e) => {
  const err = new Uint8Array(workerData.error);
  err.set(new TextEncoder().encode(String((e && e.stack) || e)).subarray(0, err.length - 1));
  const c = new Int32Array(workerData.ctrl);
  Atomics.store(c, ${CTRL.ready}, -1000);
  Atomics.notify(c, ${CTRL.ready});
});`;
}

/** The worker module next to this one, with this module's extension (.ts under tsx, .js built). */
function workerEntry(): { url: URL; viaTsx: boolean } {
  const here = import.meta.url;
  const viaTsx = /\.ts$/.test(new URL(here).pathname);
  return { url: new URL(`./data-parallel-worker.${viaTsx ? 'ts' : 'js'}`, here), viaTsx };
}

/**
 * Worker groups started, and start-ups that failed or timed out (training then runs serially,
 * with the same results up to float summation order), for tests and benches.
 */
export const shardWorkerStats: { started: number; failed: number; lastError: string | null } = { started: 0, failed: 0, lastError: null };

/** A group of worker threads that compute the gradients of shards 1 … k of each batch. */
export class ShardWorkers {
  private readonly ctrl: Int32Array;
  private readonly order: Int32Array;
  private readonly weights: Float32Array;
  private readonly grads: Float32Array[];
  private readonly losses: Float64Array;
  private readonly error: Uint8Array;
  private gen = 0;
  private closed = false;

  private constructor(
    private readonly workers: Worker[],
    bufs: { ctrl: SharedArrayBuffer; order: SharedArrayBuffer; weights: SharedArrayBuffer; grads: SharedArrayBuffer[]; loss: SharedArrayBuffer; error: SharedArrayBuffer },
  ) {
    this.ctrl = new Int32Array(bufs.ctrl);
    this.order = new Int32Array(bufs.order);
    this.weights = new Float32Array(bufs.weights);
    this.grads = bufs.grads.map((b) => new Float32Array(b));
    this.losses = new Float64Array(bufs.loss);
    this.error = new Uint8Array(bufs.error);
  }

  /** Number of worker threads (shards 1 … size). */
  get size(): number {
    return this.workers.length;
  }

  /**
   * Starts `count` workers for a net of `arch` on `train`; blocks until they are ready. Returns
   * undefined (after terminating them) when they do not come up in time: train serially then.
   */
  static start(o: { arch: ClassifierArch; shape: { height: number; width: number; channels: number }; numClasses: number; backend: string; paramCount: number }, train: FloatImages, count: number): ShardWorkers | undefined {
    const ctrlSab = new SharedArrayBuffer(4 * (CTRL.doneAt + 3 * count));
    const images = sharedCopy(train.data, (b) => new Float32Array(b));
    const labels = sharedCopy(train.labels, (b) => new Int32Array(b));
    const order = new SharedArrayBuffer(4 * train.count);
    const weights = new SharedArrayBuffer(4 * o.paramCount);
    const grads = Array.from({ length: count }, () => new SharedArrayBuffer(4 * o.paramCount));
    const loss = new SharedArrayBuffer(8 * count);
    const error = new SharedArrayBuffer(2048);
    const { url, viaTsx } = workerEntry();
    const workers: Worker[] = [];
    const ctrl = new Int32Array(ctrlSab);
    for (let w = 0; w < count; w++) {
      const workerData: ShardWorkerData = {
        index: w,
        arch: o.arch,
        shape: o.shape,
        numClasses: o.numClasses,
        backend: o.backend,
        ctrl: ctrlSab,
        images: images.sab,
        labels: labels.sab,
        order,
        weights,
        grads: grads[w]!,
        loss,
        error,
        count: train.count,
      };
      const worker = new Worker(bootstrap(url, viaTsx), { eval: true, workerData });
      worker.unref();
      workers.push(worker);
    }
    const group = new ShardWorkers(workers, { ctrl: ctrlSab, order, weights, grads, loss, error });
    // Wait until every worker reports ready (ctrl[ready] counts them) or one reports an error.
    const t0 = Date.now();
    for (;;) {
      const r = Atomics.load(ctrl, CTRL.ready);
      if (r < 0) {
        shardWorkerStats.failed++;
        shardWorkerStats.lastError = group.errorMessage().split('\n')[0]!;
        group.close();
        return undefined;
      }
      if (r >= count) {
        shardWorkerStats.started++;
        return group;
      }
      const left = READY_TIMEOUT_MS - (Date.now() - t0);
      if (left <= 0) {
        shardWorkerStats.failed++;
        shardWorkerStats.lastError = `no answer within ${READY_TIMEOUT_MS / 1000} s`;
        group.close();
        return undefined;
      }
      Atomics.wait(ctrl, CTRL.ready, r, Math.min(left, 1000));
    }
  }

  /** The epoch's example order (indices into the training set). */
  setOrder(order: Int32Array): void {
    this.order.set(order);
  }

  /**
   * Starts one step: the current weights (`net.vars` order, concatenated), batch [s, e) of the
   * order, worker w computing rows [bounds[w + 1], bounds[w + 2]) (bounds[0] = s: shard 0 is the
   * main thread's), dropout seed `seed`.
   */
  begin(weights: readonly Float32Array[], s: number, e: number, bounds: readonly number[], seed: number): void {
    let off = 0;
    for (const w of weights) {
      this.weights.set(w, off);
      off += w.length;
    }
    const c = this.ctrl;
    c[CTRL.s] = s;
    c[CTRL.e] = e;
    c[CTRL.seed] = seed | 0;
    c[CTRL.cmd] = 1;
    for (let w = 0; w < this.workers.length; w++) {
      c[CTRL.doneAt + 3 * w + 1] = bounds[w + 1]!;
      c[CTRL.doneAt + 3 * w + 2] = bounds[w + 2]!;
    }
    this.gen++;
    Atomics.store(c, CTRL.gen, this.gen);
    Atomics.notify(c, CTRL.gen);
  }

  /** Waits for every worker's shard of the step begun last; their losses and gradients. */
  collect(): ShardResult[] {
    const c = this.ctrl;
    const out: ShardResult[] = [];
    for (let w = 0; w < this.workers.length; w++) {
      const at = CTRL.doneAt + 3 * w;
      const t0 = Date.now();
      for (;;) {
        const d = Atomics.load(c, at);
        if (d === this.gen) break;
        if (d < 0) throw new Error(`evaluation data-parallel worker ${w + 1} failed: ${this.errorMessage()}`);
        if (Date.now() - t0 > STEP_TIMEOUT_MS) throw new Error(`evaluation data-parallel worker ${w + 1} did not answer within ${STEP_TIMEOUT_MS / 1000} s`);
        Atomics.wait(c, at, d, 1000);
      }
      out.push({ loss: this.losses[w]!, grads: this.grads[w]! });
    }
    return out;
  }

  private errorMessage(): string {
    const n = this.error.indexOf(0);
    return new TextDecoder().decode(this.error.slice(0, n < 0 ? this.error.length : n)) || 'unknown error';
  }

  /** Stops the workers (they exit at their next wait). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.ctrl;
    c[CTRL.cmd] = 2;
    this.gen++;
    Atomics.store(c, CTRL.gen, this.gen);
    Atomics.notify(c, CTRL.gen);
    for (const w of this.workers) void w.terminate();
  }
}
