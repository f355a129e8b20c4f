/**
 * Evaluation classifiers: small CNNs trained only on a synthetic set (or, for the fidelity feature
 * network, on the real training split), described as layer lists so one training loop serves all
 * of them.
 *
 * Why a layer list and not nn/'s Module: evaluation needs no per-sample gradients, so the nets run
 * plain tfjs autodiff over the engine's fused layers (`convBiasRelu` / `denseBias` in
 * engine/fused-layers.ts: FusedConv2D / _FusedMatMul with bias and ReLU inside the kernel, one
 * native call forward, ReLU-backprop fused backward) instead of conv + add + relu as three
 * full-size activations.
 *
 * Speed (the "make it fast" part of issue 14/18): images are converted to float once per set
 * (`toFloatImages`), batches are gathered with row copies (no per-pixel JS loop), evaluation
 * passes run in batches of 1000 without autodiff, weights are snapshotted (not the test set
 * re-evaluated) when a validation split selects the epoch; Adam is one host pass per variable
 * (`HostAdam`, WebAssembly SIMD, bit-identical to tf.train.adam) and dropout masks are drawn per
 * example in int32 arithmetic. Batches are split over the main thread and worker threads
 * (`shards`, evaluate/data-parallel.ts: the same maths up to float summation order).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageBatch } from '../data/types.js';
import { convBiasRelu, denseBias, engineStats, setEngineThreads } from '../engine/index.js';
import { dropoutMaskRowsHost, fillDropoutMask } from '../engine/host/dropout.js';
import { AdamSlot, adamScalars } from '../engine/host/adam.js';
import { mulberry32 } from '../util/prng.js';
import { ShardWorkers } from './data-parallel.js';

// The plain data types live in classifier-types.ts so that data-parallel.ts (imported here)
// can use them without an import cycle.
import type { ClassifierArch, FloatImages, LayerDef } from './classifier-types.js';
export type { ClassifierArch, FloatImages, LayerDef } from './classifier-types.js';

/** The default-protocol network (spec §7): Conv32-MaxPool-Dropout-Conv64-Dropout-Dense64. */
export const SPEC7_CNN: ClassifierArch = {
  name: 'spec7-cnn',
  description: 'Conv(32,3×3,valid)+ReLU → MaxPool 2 → Dropout 0.2 → Conv(64,3×3,valid)+ReLU → Dropout 0.25 → Dense 64+ReLU → Dense C (spec §7)',
  layers: [
    { kind: 'conv', filters: 32, size: 3, stride: 1, pad: 'valid' },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'dropout', rate: 0.2 },
    { kind: 'conv', filters: 64, size: 3, stride: 1, pad: 'valid' },
    { kind: 'dropout', rate: 0.25 },
    { kind: 'dense', units: 64 },
  ],
  epochs: 5,
  batchSize: 128,
  learningRate: 1e-3,
};

/** LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: the classic small-image CNN. */
export const LENET5: ClassifierArch = {
  name: 'lenet5',
  description: 'LeNet-5: Conv(6,5×5,same)+ReLU → MaxPool 2 → Conv(16,5×5,valid)+ReLU → MaxPool 2 → Dense 120 → Dense 84 → Dense C',
  layers: [
    { kind: 'conv', filters: 6, size: 5, stride: 1, pad: 'same' },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'conv', filters: 16, size: 5, stride: 1, pad: 'valid' },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'dense', units: 120 },
    { kind: 'dense', units: 84 },
  ],
  epochs: 8,
  batchSize: 128,
  learningRate: 1e-3,
};

/** An all-convolutional net with strided convs instead of pooling (Springenberg et al. 2015 style). */
export const STRIDED_CNN: ClassifierArch = {
  name: 'strided-cnn',
  description: 'Strided CNN: Conv(32,3×3,stride 2,same)+ReLU → Conv(64,3×3,stride 2,same)+ReLU → Dropout 0.25 → Dense 128 → Dense C',
  layers: [
    { kind: 'conv', filters: 32, size: 3, stride: 2, pad: 'same' },
    { kind: 'conv', filters: 64, size: 3, stride: 2, pad: 'same' },
    { kind: 'dropout', rate: 0.25 },
    { kind: 'dense', units: 128 },
  ],
  epochs: 3,
  batchSize: 128,
  learningRate: 1e-3,
};

/** A small VGG-style net: two same-padded 3×3 conv blocks with pooling (Simonyan & Zisserman 2015, scaled down). */
export const VGG_SMALL: ClassifierArch = {
  name: 'vgg-small',
  description: 'small VGG-style CNN: Conv(16,3×3,same)+ReLU → MaxPool 2 → Conv(32,3×3,same)+ReLU → MaxPool 2 → Dropout 0.25 → Dense 128 → Dense C',
  layers: [
    { kind: 'conv', filters: 16, size: 3, stride: 1, pad: 'same' },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'conv', filters: 32, size: 3, stride: 1, pad: 'same' },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'dropout', rate: 0.25 },
    { kind: 'dense', units: 128 },
  ],
  epochs: 3,
  batchSize: 128,
  learningRate: 1e-3,
};

/** Architectures by name. */
export const CLASSIFIER_ARCHS: Record<string, ClassifierArch> = {
  [SPEC7_CNN.name]: SPEC7_CNN,
  [LENET5.name]: LENET5,
  [STRIDED_CNN.name]: STRIDED_CNN,
  [VGG_SMALL.name]: VGG_SMALL,
};

type Param = { w: tf.Variable; b: tf.Variable };
/**
 * Inverted-dropout mask (0 or 1/(1 − rate)) from a seeded 32-bit generator in one JS pass:
 * tfjs's `dropout` draws with its slower seeded generator and then runs four tensor ops.
 */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  const n = shape.reduce((a, c) => a * c, 1);
  const m = new Float32Array(n);
  fillDropoutMask(m, 0, n, rate, seed);
  return tf.tensor(m, shape);
}

/**
 * Dropout mask drawn per example: row r (the example at position `row0 + r` of the whole batch)
 * gets its own mulberry32 stream, seeded from (seed, row0 + r). A batch split into shards
 * (data-parallel training, evaluate/data-parallel.ts) therefore draws exactly the masks of the
 * unsplit batch, and the result does not depend on the split.
 */
export function dropoutMaskRows(shape: number[], rate: number, seed: number, row0 = 0): tf.Tensor {
  const n = shape.reduce((a, c) => a * c, 1);
  return tf.tensor(dropoutMaskRowsHost(n, shape[0] ?? 1, rate, seed, row0), shape);
}

/** A built classifier: variables plus forward passes. */
export class Classifier {
  readonly vars: tf.Variable[] = [];
  private readonly params: (Param | undefined)[] = [];
  private readonly defs: LayerDef[];
  private readonly h: number;
  private readonly w: number;
  private readonly c: number;

  constructor(
    readonly arch: ClassifierArch,
    shape: { height: number; width: number; channels: number },
    readonly numClasses: number,
    seed: number,
  ) {
    this.h = shape.height;
    this.w = shape.width;
    this.c = shape.channels;
    this.defs = [...arch.layers, { kind: 'dense', units: numClasses }];
    const rnd = mulberry32(seed);
    let [h, w, c] = [this.h, this.w, this.c];
    let flat = -1;
    for (const d of this.defs) {
      if (d.kind === 'conv') {
        if (flat >= 0) throw new RangeError(`${arch.name}: conv after dense`);
        [h, w] = d.pad === 'same' ? [Math.ceil(h / d.stride), Math.ceil(w / d.stride)] : [Math.floor((h - d.size) / d.stride) + 1, Math.floor((w - d.size) / d.stride) + 1];
        if (h < 1 || w < 1) throw new RangeError(`${arch.name} needs larger images than ${this.h}×${this.w}`);
        this.params.push(this.make([d.size, d.size, c, d.filters], d.size * d.size * c, d.size * d.size * d.filters, d.filters, rnd));
        c = d.filters;
      } else if (d.kind === 'maxpool') {
        [h, w] = [Math.floor((h - d.size) / d.stride) + 1, Math.floor((w - d.size) / d.stride) + 1];
        if (h < 1 || w < 1) throw new RangeError(`${arch.name} needs larger images than ${this.h}×${this.w}`);
        this.params.push(undefined);
      } else if (d.kind === 'dense') {
        const fanIn = flat >= 0 ? flat : h * w * c;
        this.params.push(this.make([fanIn, d.units], fanIn, d.units, d.units, rnd));
        flat = d.units;
      } else this.params.push(undefined);
    }
  }

  /** Glorot-uniform weights (the Keras default), zero bias, from the seeded stream. */
  private make(shape: number[], fanIn: number, fanOut: number, units: number, rnd: () => number): Param {
    const lim = Math.sqrt(6 / (fanIn + fanOut));
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (2 * rnd() - 1) * lim;
    const w = tf.variable(tf.tensor(v, shape), true);
    const b = tf.variable(tf.zeros([units]), true);
    this.vars.push(w, b);
    return { w, b };
  }

  /**
   * Runs the layers; with `features` it stops before the final Dense. `row0`: position of x's
   * first example in the whole training batch (dropout masks are drawn per example).
   */
  private run(x: tf.Tensor4D, training: boolean, seed: number, features: boolean, row0 = 0): tf.Tensor2D {
    let y: tf.Tensor = x;
    const last = this.defs.length - 1;
    for (let i = 0; i < this.defs.length; i++) {
      const d = this.defs[i]!;
      const p = this.params[i];
      if (features && i === last) break;
      if (d.kind === 'conv') {
        y = convBiasRelu(y as tf.Tensor4D, p!.w as tf.Tensor4D, p!.b as tf.Tensor1D, d.stride, d.pad, training, i === 0);
      } else if (d.kind === 'maxpool') {
        y = tf.maxPool(y as tf.Tensor4D, d.size, d.stride, 'valid');
      } else if (d.kind === 'dropout') {
        if (training && d.rate > 0) y = tf.mul(y, dropoutMaskRows(y.shape, d.rate, seed * 31 + i, row0));
      } else {
        if (y.rank !== 2) y = tf.reshape(y, [y.shape[0]!, -1]);
        y = denseBias(y as tf.Tensor2D, p!.w as tf.Tensor2D, p!.b as tf.Tensor1D, i !== last, training);
      }
    }
    return y as tf.Tensor2D;
  }

  logits(x: tf.Tensor4D, training: boolean, seed = 0, row0 = 0): tf.Tensor2D {
    return this.run(x, training, seed, false, row0);
  }

  /** Penultimate activations (input of the final Dense), used as the fidelity feature space. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return this.run(x, false, 0, true);
  }

  /** Copies of the weights (for epoch selection and caching). */
  snapshot(): Float32Array[] {
    return this.vars.map((v) => (v.dataSync() as Float32Array).slice());
  }

  /** Number of trainable values (all variables). */
  paramCount(): number {
    return this.vars.reduce((a, v) => a + v.size, 0);
  }

  /** Sets all variables from one array holding them concatenated in `vars` order. */
  setWeights(flat: Float32Array): void {
    let off = 0;
    for (const v of this.vars) {
      const t = tf.tensor(flat.slice(off, off + v.size), v.shape, 'float32');
      v.assign(t);
      t.dispose();
      off += v.size;
    }
  }

  restore(weights: readonly Float32Array[]): void {
    if (weights.length !== this.vars.length) throw new RangeError(`${this.arch.name}: ${weights.length} weight tensors for ${this.vars.length} variables`);
    this.vars.forEach((v, i) => {
      const w = weights[i]!;
      if (w.length !== v.size) throw new RangeError(`${this.arch.name}: weight ${i} has ${w.length} values, expected ${v.size}`);
      const t = tf.tensor(w, v.shape);
      v.assign(t);
      t.dispose();
    });
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
  }
}


export function toFloatImages(s: ImageBatch, index?: ArrayLike<number>): FloatImages {
  const per = s.height * s.width * s.channels;
  const count = index ? index.length : s.count;
  const data = new Float32Array(count * per);
  const labels = new Int32Array(count);
  const inv = 1 / 255;
  for (let r = 0; r < count; r++) {
    const src = (index ? index[r]! : r) * per;
    const dst = r * per;
    for (let t = 0; t < per; t++) data[dst + t] = s.images[src + t]! * inv;
    labels[r] = s.labels[index ? index[r]! : r]!;
  }
  return { data, labels, count, height: s.height, width: s.width, channels: s.channels };
}

function gather(s: FloatImages, order: Int32Array | undefined, start: number, end: number): tf.Tensor4D {
  const per = s.height * s.width * s.channels;
  const n = end - start;
  if (!order) return tf.tensor4d(s.data.subarray(start * per, end * per), [n, s.height, s.width, s.channels]);
  const x = new Float32Array(n * per);
  for (let r = 0; r < n; r++) {
    const src = order[start + r]! * per;
    x.set(s.data.subarray(src, src + per), r * per);
  }
  return tf.tensor4d(x, [n, s.height, s.width, s.channels]);
}

/** Accuracy of `net` on a set (no autodiff, batches of 1000). */
export function accuracyOf(net: Classifier, s: FloatImages, batch = 1000): number {
  let correct = 0;
  for (let st = 0; st < s.count; st += batch) {
    const e = Math.min(s.count, st + batch);
    const p = tf.tidy(() => tf.argMax(net.logits(gather(s, undefined, st, e), false), 1).dataSync());
    for (let i = 0; i < p.length; i++) if (p[i] === s.labels[st + i]) correct++;
  }
  return correct / s.count;
}

/** Penultimate features of every image of `s` ([count × dim], row-major). */
export function featuresOf(net: Classifier, s: FloatImages, batch = 1000): { data: Float32Array; dim: number } {
  let out: Float32Array | undefined;
  let dim = 0;
  for (let st = 0; st < s.count; st += batch) {
    const e = Math.min(s.count, st + batch);
    const f = tf.tidy(() => net.features(gather(s, undefined, st, e)));
    dim = f.shape[1];
    out ??= new Float32Array(s.count * dim);
    out.set(f.dataSync() as Float32Array, st * dim);
    f.dispose();
  }
  return { data: out ?? new Float32Array(0), dim };
}

/**
 * Adam with the update of each variable as one host pass (engine/host/adam.ts) instead of tfjs'
 * 13 tensor ops per variable: the same float32 arithmetic in the same order (bit-identical
 * parameters to tf.train.adam; test/engine-host.test.ts), moments in an AdamSlot per variable
 * (WebAssembly SIMD where available).
 */
export class HostAdam {
  private readonly slots = new Map<string, AdamSlot>();
  private accBeta1: number;
  private accBeta2: number;

  constructor(
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = tf.backend().epsilon(),
  ) {
    this.accBeta1 = Math.fround(beta1);
    this.accBeta2 = Math.fround(beta2);
  }

  /** One step on `f`'s scalar value; returns it (caller disposes), as Optimizer.minimize(f, true). */
  minimize(f: () => tf.Scalar, vars: tf.Variable[]): tf.Scalar {
    const { value, grads } = tf.variableGrads(f, vars);
    this.applyGradients(
      vars,
      vars.map((p) => grads[p.name]?.dataSync() as Float32Array | undefined),
    );
    tf.dispose(grads);
    return value;
  }

  /** One step with the given gradients (`grads[k]` for `vars[k]`; undefined: no gradient). */
  applyGradients(vars: readonly tf.Variable[], grads: readonly (Float32Array | undefined)[]): void {
    const s = adamScalars(this.learningRate, this.beta1, this.beta2, this.epsilon, this.accBeta1, this.accBeta2);
    for (let k = 0; k < vars.length; k++) {
      const p = vars[k]!;
      const g = grads[k];
      if (!g) continue;
      let slot = this.slots.get(p.name);
      if (!slot) {
        slot = new AdamSlot(p.size);
        this.slots.set(p.name, slot);
      }
      const out = new Float32Array(p.size);
      slot.step(p.dataSync() as Float32Array, g, s, out);
      const t = tf.tensor(out, p.shape, 'float32');
      p.assign(t);
      t.dispose();
    }
    const b1 = Math.fround(this.beta1);
    const b2 = Math.fround(this.beta2);
    this.accBeta1 = Math.fround(this.accBeta1 * b1);
    this.accBeta2 = Math.fround(this.accBeta2 * b2);
  }

  dispose(): void {
    this.slots.clear();
  }
}

export interface TrainEpoch {
  epoch: number;
  trainLoss: number;
  /** Seconds since the start of training. */
  seconds: number;
}

export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  optimizer?: 'adam' | 'sgd';
  seed: number;
  /** Start no new epoch after this many seconds (counted from `startedAt`). */
  maxSeconds?: number;
  startedAt?: number;
  /** Called after each epoch with the net in its end-of-epoch state. */
  afterEpoch?: (e: TrainEpoch) => void;
  /**
   * Shards per batch for data-parallel training (Adam only; evaluate/data-parallel.ts): the main
   * thread plus `shards − 1` worker threads, each on its share of the batch's examples (at least
   * one example per shard is needed for a shard to do work). 1 trains on the main thread only.
   * Same results up to float summation order. Default: `defaultShards()`.
   */
  shards?: number;
}

/**
 * Default shard count (see TrainOptions.shards): DPLENS_EVAL_SHARDS=N, else 1. Data parallelism
 * is opt-in because it did not pay on the 2-core workspace: the eval step is memory-bound (two
 * concurrent b 64 shards take 95–106 ms each vs 53–76 ms alone, while a compute-bound GEMM scales
 * 1.74×), and the per-step barrier and the worker's start-up (~2 s under tsx) eat the ~1.3× that
 * a second core gives: 12k × 1 epoch took 16.9–17.6 s with 2 shards vs 12.5–13.1 s serial at
 * load ≈ 6 (engine/README.md, issue 18).
 */
export function defaultShards(): number {
  const env = process.env.DPLENS_EVAL_SHARDS;
  if (env === undefined || env === '') return 1;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`DPLENS_EVAL_SHARDS must be a positive integer, got '${env}'`);
  return n;
}

/**
 * Loss and gradients of rows [from, to) of the batch order[s..e): the loss is the shard's summed
 * cross-entropy divided by the whole batch size e − s, so that the shards' losses and gradients
 * add up to those of the batch mean. Dropout masks are drawn per example (`dropoutMaskRows`,
 * position from − s onwards in the batch), so they do not depend on how the batch is split.
 * Gradients in `net.vars` order.
 */
export function shardGradients(net: Classifier, train: FloatImages, order: Int32Array, s: number, e: number, from: number, to: number, dropSeed: number): { loss: number; grads: Float32Array[] } {
  const lab = new Int32Array(to - from);
  for (let r = 0; r < lab.length; r++) lab[r] = train.labels[order[from + r]!]!;
  const x = gather(train, order, from, to);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(lab, 'int32'), net.numClasses));
  const invB = 1 / (e - s);
  const f = () => tf.mul(tf.losses.softmaxCrossEntropy(y, net.logits(x, true, dropSeed, from - s), undefined, undefined, tf.Reduction.SUM), invB) as tf.Scalar;
  const { value, grads } = tf.variableGrads(f, net.vars);
  const out = net.vars.map((v) => {
    const g = grads[v.name];
    return g ? (g.dataSync() as Float32Array) : new Float32Array(v.size);
  });
  const loss = value.dataSync()[0]!;
  tf.dispose([x, y, value, grads]);
  return { loss, grads: out };
}

/** Trains `net` on `train` (shuffled each epoch from the seeded stream). Returns the epochs run. */
export function trainClassifier(net: Classifier, train: FloatImages, o: TrainOptions): TrainEpoch[] {
  const t0 = o.startedAt ?? Date.now();
  const epochs = o.epochs ?? net.arch.epochs;
  const batch = o.batchSize ?? net.arch.batchSize;
  const lr = o.learningRate ?? (o.optimizer === 'sgd' ? 2e-3 : net.arch.learningRate);
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch size must be a positive integer, got ${batch}`);
  const shards = o.optimizer === 'sgd' ? 1 : (o.shards ?? defaultShards());
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a positive integer, got ${shards}`);
  const rnd = mulberry32(o.seed ^ 0x5bd1e995);
  const opt = o.optimizer === 'sgd' ? tf.train.sgd(lr) : new HostAdam(lr);
  const order = new Int32Array(train.count);
  for (let i = 0; i < train.count; i++) order[i] = i;
  const done: TrainEpoch[] = [];
  let dropSeed = (o.seed * 7919) >>> 0;
  const threadsBefore = engineStats().threads;
  const group =
    shards > 1
      ? ShardWorkers.start({ arch: net.arch, shape: { height: train.height, width: train.width, channels: train.channels }, numClasses: net.numClasses, backend: tf.getBackend(), paramCount: net.paramCount() }, train, shards - 1)
      : undefined;
  // One core per shard: the main thread's kernels run on 1-thread sessions while workers train.
  if (group) setEngineThreads(1);
  const sum = new Float32Array(group ? net.paramCount() : 0);
  try {
    for (let ep = 1; ep <= epochs; ep++) {
      if (o.maxSeconds !== undefined && ep > 1 && (Date.now() - t0) / 1000 > o.maxSeconds) break;
      for (let i = train.count - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      group?.setOrder(order);
      let lossSum = 0;
      let nb = 0;
      for (let s = 0; s < train.count; s += batch) {
        const e = Math.min(train.count, s + batch);
        const ds = (dropSeed += 97);
        if (!group) {
          const r = shardGradients(net, train, order, s, e, s, e, ds);
          if (opt instanceof HostAdam) opt.applyGradients(net.vars, r.grads);
          else {
            const named: tf.NamedTensorMap = {};
            net.vars.forEach((v, k) => (named[v.name] = tf.tensor(r.grads[k]!, v.shape, 'float32')));
            opt.applyGradients(named);
            tf.dispose(Object.values(named));
          }
          lossSum += r.loss;
        } else {
          const k = group.size + 1;
          const bounds = Array.from({ length: k + 1 }, (_, j) => s + Math.round(((e - s) * j) / k));
          group.begin(
            net.vars.map((v) => v.dataSync() as Float32Array),
            s,
            e,
            bounds,
            ds,
          );
          const mine = bounds[1]! > s ? shardGradients(net, train, order, s, e, s, bounds[1]!, ds) : undefined;
          let loss = mine?.loss ?? 0;
          let off = 0;
          for (let v = 0; v < net.vars.length; v++) {
            const n = net.vars[v]!.size;
            if (mine) sum.set(mine.grads[v]!, off);
            else sum.fill(0, off, off + n);
            off += n;
          }
          for (const w of group.collect()) {
            loss += w.loss;
            for (let i = 0; i < sum.length; i++) sum[i] += w.grads[i]!;
          }
          off = 0;
          const gs = net.vars.map((v) => sum.subarray(off, (off += v.size)));
          (opt as HostAdam).applyGradients(net.vars, gs);
          lossSum += loss;
        }
        nb++;
      }
      const r = { epoch: ep, trainLoss: lossSum / nb, seconds: (Date.now() - t0) / 1000 };
      done.push(r);
      if (group) setEngineThreads(threadsBefore);
      try {
        o.afterEpoch?.(r);
      } finally {
        if (group) setEngineThreads(1);
      }
    }
  } finally {
    opt.dispose();
    if (group) {
      group.close();
      setEngineThreads(threadsBefore);
    }
  }
  return done;
}
