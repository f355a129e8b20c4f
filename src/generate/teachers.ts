/**
 * The teacher ensemble as ONE batched computation: N conditional discriminators, each trained only
 * on its own disjoint shard, stored as stacked arrays [N, ...] and trained / queried together with
 * batched matrix products — never one teacher at a time.
 *
 * Architecture (documented deviation from the spec's DCGAN discriminator, §5): a conditional MLP
 *   h = LeakyReLU_0.2( x·W1x + W1y[y] + b1 ),   logit = h·w2h + w2y[y] + b2
 * with x the pixels in [0,1] and y the label. Convolutional teachers would need a grouped
 * convolution over N = 4000 teachers; an MLP keeps every teacher's heavy work inside three batched
 * MatMuls per step ([N, M, d]·[N, d, H] forward, [N, d, M]·[N, M, H] for the weight gradient,
 * [N, B, H]·[N, H, d] for the image gradient), all in the engine's fast non-transposed form.
 * The rest (biases, activations, loss derivative, Adam) is O(N·M·H) or O(#params) and runs as fused
 * loops over typed arrays: op-by-op tensor arithmetic over 10⁷–10⁸ parameters costs more than the
 * MatMuls. Gradients are derived by hand (a two-layer MLP) and checked against finite differences
 * in the tests.
 *
 * Independence (pitfall P3): every parameter and Adam moment has a leading teacher axis and each
 * teacher's update reads only its own slice; no normalisation statistics are shared (the teachers
 * have no batch norm, so none exist). Nothing here (losses, gradients, parameters) is logged or
 * written (P9); the only output is the per-teacher image-gradient block handed to an aggregator.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../data/types.js';
import type { ShardAssignment } from './shards.js';
import { mulberry32 } from '../util/prng.js';

export interface TeacherConfig {
  numTeachers: number;
  /** Hidden units per teacher. */
  hidden: number;
  /**
   * Output layer per class, logit = h·w2[y] + b[y] (D(x, y) = head_y(h(x))), instead of one shared
   * head. With a shared head the label reaches the image gradient only through hidden-unit biases,
   * so every class gets nearly the same "look real" direction and the generator collapses to the
   * mean digit.
   */
  perClassHead?: boolean;
  /**
   * Adds C linear class units: logit += x·v[y]. Their image gradient is v[y], which training on the
   * shard turns into (real class-y images − class-y fakes): the per-class direction the generator
   * needs. Stored as C extra columns of the first-layer matrix, so they cost no extra MatMul.
   */
  classLinear?: boolean;
  /**
   * Teacher optimiser (default Adam, as the reference). Plain SGD keeps the weights proportional to
   * the accumulated gradients, so a teacher's image gradient is largest on the pixels its real
   * examples light up — the magnitudes top-k selection needs (Adam's per-weight normalisation
   * flattens them, and top-k then picks nearly at random). Stateless, so trivially per-teacher.
   */
  optimizer?: 'adam' | 'sgd';
  /** Learning rate / Adam β1 (reference: Adam 1e-3, 0.5). */
  lr: number;
  beta1: number;
  /** Std of the N(0, std²) weight initialisation (reference 0.02). */
  initStd: number;
  /**
   * Number of distinct initialisations: teacher i starts from init (i mod initSlots); undefined or
   * 0 = every teacher its own. The reference code keeps 50 teachers in memory ("batch_teachers")
   * and loads the SAME saved initial weights into every group of 50 (save_d(…, −1) / load_d), so
   * its 4,000 teachers start from 50 inits. The init is data-independent (public), so sharing it
   * costs no privacy; training (and the Adam state) stays per teacher (P3).
   */
  initSlots?: number;
  /** Teacher batch size per step: min(this, shard size). */
  batchSize: number;
}

const LEAK = 0.2;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;

/** One stacked parameter with its Adam moments. */
class Param {
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly g: Float32Array;
  constructor(readonly w: Float32Array) {
    this.m = new Float32Array(w.length);
    this.v = new Float32Array(w.length);
    this.g = new Float32Array(w.length);
  }
  /** Plain SGD step (elementwise, so again per teacher). */
  sgd(lr: number): void {
    const { w, g } = this;
    for (let i = 0; i < w.length; i++) w[i]! -= lr * g[i]!;
  }
  /** Elementwise Adam: teacher i's slice only ever sees teacher i's gradient. */
  adam(lr: number, b1: number, t: number): void {
    const { w, m, v, g } = this;
    const c1 = 1 - Math.pow(b1, t);
    const c2 = 1 - Math.pow(BETA2, t);
    const step = (lr * Math.sqrt(c2)) / c1;
    const eps = ADAM_EPS * Math.sqrt(c2);
    for (let i = 0; i < w.length; i++) {
      const gi = g[i]!;
      const mi = b1 * m[i]! + (1 - b1) * gi;
      const vi = BETA2 * v[i]! + (1 - BETA2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i]! -= (step * mi) / (Math.sqrt(vi) + eps);
    }
  }
}

function gaussianInit(n: number, std: number, rnd: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = Math.max(rnd(), 1e-12);
    const r = std * Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * rnd();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

export class TeacherEnsemble {
  readonly numTeachers: number;
  readonly dim: number;
  readonly numClasses: number;
  readonly hidden: number;
  /** Columns of the first-layer matrix: hidden units, then (classLinear) C linear class units. */
  readonly units: number;
  readonly perClassHead: boolean;
  readonly classLinear: boolean;
  readonly shardSize: number;
  readonly batchSize: number;
  readonly itersPerEpoch: number;
  /** Shard pixels in [0,1], teacher-major [N, m, d], and labels [N, m]. Private. */
  private readonly shardX: Float32Array;
  private readonly shardY: Int32Array;
  private readonly w1x: Param;
  private readonly w1y: Param;
  private readonly b1: Param;
  private readonly w2h: Param;
  private readonly w2y: Param;
  private readonly b2: Param;
  private readonly params: Param[];
  private t = 0;

  constructor(
    readonly config: TeacherConfig,
    data: ImageDataset,
    shards: ShardAssignment,
    initSeed: number,
  ) {
    const N = config.numTeachers;
    if (shards.numTeachers !== N) throw new RangeError(`TeacherEnsemble: shard assignment is for ${shards.numTeachers} teachers, config says ${N}`);
    const minHidden = config.classLinear ? 0 : 1;
    if (!Number.isInteger(config.hidden) || config.hidden < minHidden) throw new RangeError(`TeacherEnsemble: hidden must be an integer >= ${minHidden}, got ${config.hidden}`);
    this.numTeachers = N;
    this.dim = data.height * data.width * data.channels;
    this.numClasses = data.numClasses;
    this.hidden = config.hidden;
    this.perClassHead = config.perClassHead ?? false;
    this.classLinear = config.classLinear ?? false;
    this.units = config.hidden + (this.classLinear ? data.numClasses : 0);
    this.shardSize = shards.shardSize;
    this.batchSize = Math.max(1, Math.min(config.batchSize, shards.shardSize));
    this.itersPerEpoch = Math.max(1, Math.floor(shards.shardSize / this.batchSize));
    const d = this.dim;
    const m = shards.shardSize;
    this.shardX = new Float32Array(N * m * d);
    this.shardY = new Int32Array(N * m);
    const img = data.train.images;
    for (let r = 0; r < N * m; r++) {
      const rec = shards.members[r]!;
      const src = rec * d;
      const dst = r * d;
      for (let t = 0; t < d; t++) this.shardX[dst + t] = img[src + t]! / 255;
      this.shardY[r] = data.train.labels[rec]!;
    }
    const H = config.hidden;
    const C = this.numClasses;
    const rnd = mulberry32(initSeed);
    const s = config.initStd;
    const slots = config.initSlots && config.initSlots > 0 ? Math.min(config.initSlots, N) : N;
    if (!Number.isInteger(slots)) throw new RangeError(`TeacherEnsemble: initSlots must be an integer, got ${config.initSlots}`);
    // Draw `slots` teachers' worth of each parameter and tile them over the N teachers (i mod slots).
    const init = (per: number): Float32Array => {
      const base = gaussianInit(slots * per, s, rnd);
      if (slots === N) return base;
      const out = new Float32Array(N * per);
      for (let i = 0; i < N; i++) out.set(base.subarray((i % slots) * per, (i % slots + 1) * per), i * per);
      return out;
    };
    this.w1x = new Param(init(d * this.units));
    this.w1y = new Param(init(C * H));
    this.b1 = new Param(new Float32Array(N * H));
    this.w2h = new Param(init((this.perClassHead ? C : 1) * H));
    this.w2y = new Param(init(C));
    this.b2 = new Param(new Float32Array(N));
    this.params = [this.w1x, this.w1y, this.b1, this.w2h, this.w2y, this.b2];
  }

  /** Labels of the real rows of batch `iter` (teacher-major [N, B]): the fakes are conditioned on them. */
  batchLabels(iter: number): Int32Array {
    const N = this.numTeachers;
    const B = this.batchSize;
    const m = this.shardSize;
    const start = (iter % this.itersPerEpoch) * B;
    const out = new Int32Array(N * B);
    for (let i = 0; i < N; i++) for (let b = 0; b < B; b++) out[i * B + b] = this.shardY[i * m + start + b]!;
    return out;
  }

  /**
   * Given pre-activations P = x·W1x ([N, M, H], M rows per teacher) and labels, completes the
   * forward pass and returns dL/dh ([N, M, H]) for per-row targets (1 = real, 0 = fake), the loss of
   * teacher i being (1/B)·Σ_rows BCE(logit, target). Also accumulates the gradients of the small
   * parameters (w1y, b1, w2h, w2y, b2) when `accumulate` is set.
   */
  private backwardFromPreact(P: Float32Array, labels: Int32Array, targets: Uint8Array | null, M: number, B: number, accumulate: boolean): Float32Array {
    const N = this.numTeachers;
    const H = this.hidden;
    const U = this.units;
    const C = this.numClasses;
    const { w1y, b1, w2h, w2y, b2 } = this;
    const dh = new Float32Array(N * M * U);
    const a = new Float32Array(H);
    for (let i = 0; i < N; i++) {
      for (let r = 0; r < M; r++) {
        const row = i * M + r;
        const y = labels[row]!;
        const po = row * U;
        const wy = (i * C + y) * H;
        // Output weights of this row's head: per class, or the teacher's single shared head.
        const ho = this.perClassHead ? wy : i * H;
        let logit = b2.w[i]! + w2y.w[i * C + y]!;
        if (this.classLinear) logit += P[po + H + y]!;
        for (let h = 0; h < H; h++) {
          const z = P[po + h]! + w1y.w[wy + h]! + b1.w[i * H + h]!;
          const act = z > 0 ? z : LEAK * z;
          a[h] = act;
          logit += act * w2h.w[ho + h]!;
          // Stash the activation slope in dh for now.
          dh[po + h] = z > 0 ? 1 : LEAK;
        }
        const target = targets ? targets[r]! : 1;
        const dl = (1 / (1 + Math.exp(-logit)) - target) / B;
        for (let h = 0; h < H; h++) {
          const d = dl * w2h.w[ho + h]! * dh[po + h]!;
          dh[po + h] = d;
          if (accumulate) {
            w1y.g[wy + h]! += d;
            b1.g[i * H + h]! += d;
            w2h.g[ho + h]! += dl * a[h]!;
          }
        }
        // Linear class units: only column H + y enters the logit (the others stay 0 in dh).
        if (this.classLinear) dh[po + H + y] = dl;
        if (accumulate) {
          w2y.g[i * C + y]! += dl;
          b2.g[i]! += dl;
        }
      }
    }
    return dh;
  }

  /** Rows [N, B, d] and their transpose [N, d, B] (the engine's fast layout for the weight gradient). */
  private static layouts(N: number, B: number, d: number, fill: (i: number, r: number, dst: Float32Array, off: number) => void): { X: Float32Array; XT: Float32Array } {
    const X = new Float32Array(N * B * d);
    for (let i = 0; i < N; i++) for (let r = 0; r < B; r++) fill(i, r, X, (i * B + r) * d);
    const XT = new Float32Array(N * d * B);
    for (let i = 0; i < N; i++) {
      const xo = i * B * d;
      const to = i * d * B;
      for (let t = 0; t < d; t++) for (let r = 0; r < B; r++) XT[to + t * B + r] = X[xo + r * d + t]!;
    }
    return { X, XT };
  }

  private realCache?: { iter: number; X: Float32Array; XT: Float32Array; labels: Int32Array };

  /** Real batch `iter` of every shard (cached: with m = B it is the whole shard every step). */
  private realBatch(iter: number): { X: Float32Array; XT: Float32Array; labels: Int32Array } {
    const it = iter % this.itersPerEpoch;
    if (this.realCache?.iter === it) return this.realCache;
    const { numTeachers: N, batchSize: B, dim: d, shardSize: m } = this;
    const start = it * B;
    const { X, XT } = TeacherEnsemble.layouts(N, B, d, (i, r, dst, off) => dst.set(this.shardX.subarray((i * m + start + r) * d, (i * m + start + r + 1) * d), off));
    this.realCache = { iter: it, X, XT, labels: this.batchLabels(iter) };
    return this.realCache;
  }

  /**
   * The fakes of one generator step for every teacher. fakeTable: [C·B, d] generated images, row
   * c·B + b = G(z_b, c); teacher i's fake row b is G(z_b, Y_i[b]) — conditioned on its own real batch
   * labels (spec §2). Build once per generator step; reuse for its d-steps.
   */
  fakeBatch(iter: number, fakeTable: Float32Array): { X: Float32Array; XT: Float32Array; labels: Int32Array } {
    const { numTeachers: N, batchSize: B, dim: d, numClasses: C } = this;
    if (fakeTable.length !== C * B * d) throw new RangeError(`fakeBatch: fake table must hold ${C}×${B} images of ${d} pixels, got ${fakeTable.length} values`);
    const labels = this.realBatch(iter).labels;
    const { X, XT } = TeacherEnsemble.layouts(N, B, d, (i, r, dst, off) => {
      const y = labels[i * B + r]!;
      dst.set(fakeTable.subarray((y * B + r) * d, (y * B + r + 1) * d), off);
    });
    return { X, XT, labels };
  }

  /** One Adam step for every teacher on L_D^i = mean_b BCE(D_i(X_i), 1) + mean_b BCE(D_i(fake_i), 0). */
  trainStep(iter: number, fake: { X: Float32Array; XT: Float32Array; labels: Int32Array }): void {
    const { numTeachers: N, batchSize: B, dim: d, units: H } = this;
    if (fake.X.length !== N * B * d) throw new RangeError(`trainStep: fakes must be ${N}×${B}×${d}, got ${fake.X.length} values`);
    const real = this.realBatch(iter);
    for (const p of this.params) p.g.fill(0);
    const ones = new Uint8Array(B).fill(1);
    const zeros = new Uint8Array(B);
    const W = tf.tensor3d(this.w1x.w, [N, d, H]);
    const grad = (batch: { X: Float32Array; XT: Float32Array; labels: Int32Array }, targets: Uint8Array): Float32Array => {
      const Pt = tf.matMul(tf.tensor3d(batch.X, [N, B, d]), W);
      const P = Pt.dataSync() as Float32Array;
      const dh = this.backwardFromPreact(P, batch.labels, targets, B, B, true);
      tf.dispose(Pt);
      const gt = tf.tidy(() => tf.matMul(tf.tensor3d(batch.XT, [N, d, B]), tf.tensor3d(dh, [N, B, H])));
      const g = gt.dataSync() as Float32Array;
      gt.dispose();
      return g;
    };
    const gr = grad(real, ones);
    const gf = grad(fake, zeros);
    W.dispose();
    const gw = this.w1x.g;
    for (let j = 0; j < gw.length; j++) gw[j] = gr[j]! + gf[j]!;
    this.t++;
    if (this.config.optimizer === 'sgd') for (const p of this.params) p.sgd(this.config.lr);
    else for (const p of this.params) p.adam(this.config.lr, this.config.beta1, this.t);
  }

  /**
   * Per-teacher image gradients Γ_i = −∂L_G^i/∂x with L_G^i = (1/B) Σ_b BCE(D_i(x_b, y_b), 1), for one
   * shared generated batch x [B, d] with labels y [B]. Returns [N, B, d] (teacher-major).
   * Private intermediate (P9): the caller aggregates it and drops it.
   */
  imageGradients(x: Float32Array, y: Int32Array): Float32Array {
    const N = this.numTeachers;
    const B = y.length;
    const d = this.dim;
    const H = this.units;
    if (x.length !== B * d) throw new RangeError(`imageGradients: expected ${B}×${d} pixels, got ${x.length}`);
    const Pt = tf.tidy(() => tf.matMul(tf.tensor2d(x, [B, d]), tf.tensor3d(this.w1x.w, [N, d, H])));
    const P = Pt.dataSync() as Float32Array;
    const labels = new Int32Array(N * B);
    for (let i = 0; i < N; i++) labels.set(y, i * B);
    const dh = this.backwardFromPreact(P, labels, null, B, B, false);
    Pt.dispose();
    // dx_i = dh_i · W1x_iᵀ: transpose W1x once in JS so the engine sees a plain batched MatMul.
    const WT = new Float32Array(N * H * d);
    const W = this.w1x.w;
    for (let i = 0; i < N; i++) {
      const o = i * d * H;
      for (let t = 0; t < d; t++) for (let h = 0; h < H; h++) WT[o + h * d + t] = W[o + t * H + h]!;
    }
    const G = tf.tidy(() => tf.neg(tf.matMul(tf.tensor3d(dh, [N, B, H]), tf.tensor3d(WT, [N, H, d]))));
    const out = G.dataSync() as Float32Array;
    G.dispose();
    return out;
  }

  /** Teacher logits for rows x [N, M, d] with labels [N, M] (tests and diagnostics inside the boundary). */
  logits(x: Float32Array, labels: Int32Array, M: number): Float32Array {
    const N = this.numTeachers;
    const d = this.dim;
    const H = this.hidden;
    const U = this.units;
    const C = this.numClasses;
    const Pt = tf.tidy(() => tf.matMul(tf.tensor3d(x, [N, M, d]), tf.tensor3d(this.w1x.w, [N, d, U])));
    const P = Pt.dataSync() as Float32Array;
    Pt.dispose();
    const out = new Float32Array(N * M);
    for (let i = 0; i < N; i++) {
      for (let r = 0; r < M; r++) {
        const row = i * M + r;
        const y = labels[row]!;
        const ho = this.perClassHead ? (i * C + y) * H : i * H;
        let l = this.b2.w[i]! + this.w2y.w[i * C + y]!;
        if (this.classLinear) l += P[row * U + H + y]!;
        for (let h = 0; h < H; h++) {
          const z = P[row * U + h]! + this.w1y.w[(i * C + y) * H + h]! + this.b1.w[i * H + h]!;
          l += (z > 0 ? z : LEAK * z) * this.w2h.w[ho + h]!;
        }
        out[row] = l;
      }
    }
    return out;
  }

  /** Bytes held by the ensemble (params + gradients + Adam moments + shard data). */
  memoryBytes(): number {
    let n = 0;
    for (const p of this.params) n += p.w.length * 4;
    return 4 * (n + this.shardX.length + this.shardY.length);
  }

  dispose(): void {
    // Typed arrays only: overwrite the private shard copy so it does not linger in memory.
    this.shardX.fill(0);
    this.shardY.fill(0);
    this.realCache = undefined;
  }
}
