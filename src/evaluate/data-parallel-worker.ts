/**
 * Worker thread of the evaluation classifiers' data-parallel training (see data-parallel.ts):
 * builds its own engine (1-thread ONNX Runtime sessions) and a net of the same architecture,
 * then for each step copies the shared weights into its variables, computes the loss and
 * gradients of its shard of the batch and writes them to its shared gradient buffer.
 */
import { workerData } from 'node:worker_threads';
import { ensureEngine } from '../engine/index.js';
import { Classifier, shardGradients, type FloatImages } from './classifiers.js';
import { CTRL, type ShardWorkerData } from './data-parallel.js';

const d = workerData as ShardWorkerData;
const ctrl = new Int32Array(d.ctrl);
const doneAt = CTRL.doneAt + 3 * d.index;

function fail(e: unknown, startUp: boolean): void {
  const msg = new TextEncoder().encode(`${(e as Error)?.message ?? String(e)}`.slice(0, 2000));
  const err = new Uint8Array(d.error);
  err.fill(0);
  err.set(msg.subarray(0, err.length - 1));
  if (startUp) Atomics.store(ctrl, CTRL.ready, -1000);
  Atomics.store(ctrl, doneAt, -1);
  Atomics.notify(ctrl, CTRL.ready);
  Atomics.notify(ctrl, doneAt);
}

let net: Classifier;
let train: FloatImages;
try {
  await ensureEngine({ backend: d.backend, threads: 1 });
  net = new Classifier(d.arch, d.shape, d.numClasses, 0);
  train = { data: new Float32Array(d.images), labels: new Int32Array(d.labels), count: d.count, ...d.shape };
  Atomics.add(ctrl, CTRL.ready, 1);
  Atomics.notify(ctrl, CTRL.ready);
} catch (e) {
  fail(e, true);
  process.exit(1);
}

const order = new Int32Array(d.order);
const weights = new Float32Array(d.weights);
const grads = new Float32Array(d.grads);
const losses = new Float64Array(d.loss);
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, CTRL.gen, seen);
  seen = Atomics.load(ctrl, CTRL.gen);
  if (ctrl[CTRL.cmd] !== 1) break;
  try {
    const from = ctrl[doneAt + 1]!;
    const to = ctrl[doneAt + 2]!;
    if (to > from) {
      net.setWeights(weights);
      const r = shardGradients(net, train, order, ctrl[CTRL.s]!, ctrl[CTRL.e]!, from, to, ctrl[CTRL.seed]!);
      let off = 0;
      for (const g of r.grads) {
        grads.set(g, off);
        off += g.length;
      }
      losses[d.index] = r.loss;
    } else {
      grads.fill(0);
      losses[d.index] = 0;
    }
    Atomics.store(ctrl, doneAt, seen);
    Atomics.notify(ctrl, doneAt);
  } catch (e) {
    fail(e, false);
    break;
  }
}
process.exit(0);
