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
 * (`HostAdam`, bit-identical to tf.train.adam) and dropout masks are drawn in int32 arithmetic
 * (same masks, ~3× less CPU).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageBatch } from '../data/types.js';
import { convBiasRelu, denseBias } from '../engine/index.js';
import { adamScalars, adamStepHost } from '../engine/host/adam.js';
import { mulberry32 } from '../util/prng.js';

export type LayerDef =
  | { kind: 'conv'; filters: number; size: number; stride: number; pad: 'valid' | 'same' }
  | { kind: 'maxpool'; size: number; stride: number }
  | { kind: 'dropout'; rate: number }
  | { kind: 'dense'; units: number };

export interface ClassifierArch {
  /** Stable name used in JSON output and cache keys. */
  name: string;
  /** One line for docs and the report. */
  description: string;
  /** Hidden layers; the final Dense(classes) layer is added by `buildClassifier`. */
  layers: LayerDef[];
  /** Default training recipe (Adam). */
  epochs: number;
  batchSize: number;
  learningRate: number;
}

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
  const keep = 1 / (1 - rate);
  // The mulberry32 stream entirely in int32 arithmetic (same bits as the uint32 form `>>> 0`,
  // which made V8 keep s and t as doubles: 34 vs ~3 ms per spec7 training step, issue 18). The
  // unsigned test u >= threshold is the signed test after flipping both sign bits.
  const threshold = Math.min(Math.floor(rate * 4294967296), 4294967295);
  const thresholdFlipped = (threshold ^ 0x80000000) | 0;
  let s = seed | 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= (t + Math.imul(t ^ (t >>> 7), t | 61)) | 0;
    m[i] = keep * +(((t ^ (t >>> 14) ^ 0x80000000) | 0) >= thresholdFlipped);
  }
  return tf.tensor(m, shape);
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

  /** Runs the layers; with `features` it stops before the final Dense. */
  private run(x: tf.Tensor4D, training: boolean, seed: number, features: boolean): tf.Tensor2D {
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
        if (training && d.rate > 0) y = tf.mul(y, dropoutMask(y.shape, d.rate, seed * 31 + i));
      } else {
        if (y.rank !== 2) y = tf.reshape(y, [y.shape[0]!, -1]);
        y = denseBias(y as tf.Tensor2D, p!.w as tf.Tensor2D, p!.b as tf.Tensor1D, i !== last, training);
      }
    }
    return y as tf.Tensor2D;
  }

  logits(x: tf.Tensor4D, training: boolean, seed = 0): tf.Tensor2D {
    return this.run(x, training, seed, false);
  }

  /** Penultimate activations (input of the final Dense), used as the fidelity feature space. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return this.run(x, false, 0, true);
  }

  /** Copies of the weights (for epoch selection and caching). */
  snapshot(): Float32Array[] {
    return this.vars.map((v) => (v.dataSync() as Float32Array).slice());
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

/** Images as floats in [0, 1], converted once per set (batches are then row copies). */
export interface FloatImages {
  data: Float32Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
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
 * parameters to tf.train.adam; test/engine-host.test.ts), moments kept as plain arrays.
 */
export class HostAdam {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
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
    const s = adamScalars(this.learningRate, this.beta1, this.beta2, this.epsilon, this.accBeta1, this.accBeta2);
    for (const p of vars) {
      const g = grads[p.name];
      if (!g) continue;
      let m = this.m.get(p.name);
      let v = this.v.get(p.name);
      if (!m || !v) {
        m = new Float32Array(p.size);
        v = new Float32Array(p.size);
        this.m.set(p.name, m);
        this.v.set(p.name, v);
      }
      const out = new Float32Array(p.size);
      adamStepHost(p.dataSync() as Float32Array, g.dataSync() as Float32Array, m, v, s, out);
      const t = tf.tensor(out, p.shape, 'float32');
      p.assign(t);
      t.dispose();
    }
    tf.dispose(grads);
    const b1 = Math.fround(this.beta1);
    const b2 = Math.fround(this.beta2);
    this.accBeta1 = Math.fround(this.accBeta1 * b1);
    this.accBeta2 = Math.fround(this.accBeta2 * b2);
    return value;
  }

  dispose(): void {
    this.m.clear();
    this.v.clear();
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
}

/** Trains `net` on `train` (shuffled each epoch from the seeded stream). Returns the epochs run. */
export function trainClassifier(net: Classifier, train: FloatImages, o: TrainOptions): TrainEpoch[] {
  const t0 = o.startedAt ?? Date.now();
  const epochs = o.epochs ?? net.arch.epochs;
  const batch = o.batchSize ?? net.arch.batchSize;
  const lr = o.learningRate ?? (o.optimizer === 'sgd' ? 2e-3 : net.arch.learningRate);
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch size must be a positive integer, got ${batch}`);
  const rnd = mulberry32(o.seed ^ 0x5bd1e995);
  const opt = o.optimizer === 'sgd' ? tf.train.sgd(lr) : new HostAdam(lr);
  const order = new Int32Array(train.count);
  for (let i = 0; i < train.count; i++) order[i] = i;
  const done: TrainEpoch[] = [];
  let dropSeed = (o.seed * 7919) >>> 0;
  const C = net.numClasses;
  try {
    for (let ep = 1; ep <= epochs; ep++) {
      if (o.maxSeconds !== undefined && ep > 1 && (Date.now() - t0) / 1000 > o.maxSeconds) break;
      for (let i = train.count - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      let lossSum = 0;
      let nb = 0;
      for (let s = 0; s < train.count; s += batch) {
        const e = Math.min(train.count, s + batch);
        const ds = (dropSeed += 97);
        const lab = new Int32Array(e - s);
        for (let r = 0; r < lab.length; r++) lab[r] = train.labels[order[s + r]!]!;
        const x = gather(train, order, s, e);
        const y = tf.tidy(() => tf.oneHot(tf.tensor1d(lab, 'int32'), C));
        const f = () => tf.losses.softmaxCrossEntropy(y, net.logits(x, true, ds)) as tf.Scalar;
        const loss = opt instanceof HostAdam ? opt.minimize(f, net.vars) : opt.minimize(f, true, net.vars);
        tf.dispose([x, y]);
        if (loss) {
          lossSum += loss.dataSync()[0]!;
          loss.dispose();
        }
        nb++;
      }
      const r = { epoch: ep, trainLoss: lossSum / nb, seconds: (Date.now() - t0) / 1000 };
      done.push(r);
      o.afterEpoch?.(r);
    }
  } finally {
    opt.dispose();
  }
  return done;
}
