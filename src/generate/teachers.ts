/**
 * The teacher ensemble as ONE batched computation: N conditional discriminators, each trained only
 * on its own disjoint shard, stored as stacked tensors [N, ...] and trained / queried together with
 * batched matrix products — never one teacher at a time.
 *
 * Architecture (documented deviation from the spec's DCGAN discriminator, §5): a conditional MLP
 *   h = LeakyReLU_0.2( Norm( x·W1x + y·W1y + b1 ) ),   logit = [h, y]·W2 + b2
 * with x the 784 pixels in [0,1] and y the one-hot label. Convolutional teachers would need a
 * grouped-convolution kernel for all N teachers at once; an MLP keeps every teacher's work inside
 * two batched MatMuls (fast on the engine) at a per-teacher cost small enough for N = 4000 with
 * m = 15 records each.
 *
 * Independence (pitfall P3): every parameter, Adam moment and normalisation statistic has a leading
 * teacher axis. Adam is elementwise, so the optimiser state of teacher i sees only teacher i's
 * gradient; the summed loss Σ_i L_i gives each teacher exactly its own gradient. 'batch'
 * normalisation uses statistics over the teacher's own batch (axis 1), never across teachers, and
 * keeps no running averages.
 *
 * Nothing computed here (losses, gradients, parameters) is logged or written (P9); the only output
 * that leaves this module is the per-teacher image-gradient block handed to an aggregator.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../data/types.js';
import type { ShardAssignment } from './shards.js';

export interface TeacherConfig {
  numTeachers: number;
  /** Hidden units per teacher. */
  hidden: number;
  /** 'batch': per-teacher batch statistics (training mode, as in the reference); 'none'. */
  norm: 'batch' | 'none';
  /** Adam learning rate / β1 (reference: 1e-3, 0.5). */
  lr: number;
  beta1: number;
  /** Std of the N(0, std²) weight initialisation (reference 0.02). */
  initStd: number;
  /** Teacher batch size per step: min(this, shard size). */
  batchSize: number;
}

const LEAK = 0.2;
const BN_EPS = 1e-5;

export class TeacherEnsemble {
  readonly numTeachers: number;
  readonly dim: number;
  readonly numClasses: number;
  readonly shardSize: number;
  readonly batchSize: number;
  readonly itersPerEpoch: number;
  /** Real shard rows per teacher, [N, m, d] in [0,1]; and their one-hot labels [N, m, C]. */
  private readonly realX: tf.Tensor3D;
  private readonly realY: tf.Tensor3D;
  /** Labels of the shard rows (teacher-major), used to condition the fakes on real labels (spec §2). */
  private readonly realLabels: Int32Array;
  private readonly vars: tf.Variable[];
  private readonly w1x: tf.Variable;
  private readonly w1y: tf.Variable;
  private readonly b1: tf.Variable;
  private readonly gamma?: tf.Variable;
  private readonly betaBn?: tf.Variable;
  private readonly w2h: tf.Variable;
  private readonly w2y: tf.Variable;
  private readonly b2: tf.Variable;
  private readonly optimizer: tf.Optimizer;
  private disposed = false;

  constructor(
    readonly config: TeacherConfig,
    data: ImageDataset,
    shards: ShardAssignment,
    initSeed: number,
  ) {
    const N = config.numTeachers;
    if (shards.numTeachers !== N) throw new RangeError(`TeacherEnsemble: shard assignment is for ${shards.numTeachers} teachers, config says ${N}`);
    if (!Number.isInteger(config.hidden) || config.hidden < 1) throw new RangeError(`TeacherEnsemble: hidden must be a positive integer, got ${config.hidden}`);
    this.numTeachers = N;
    this.dim = data.height * data.width * data.channels;
    this.numClasses = data.numClasses;
    this.shardSize = shards.shardSize;
    this.batchSize = Math.max(1, Math.min(config.batchSize, shards.shardSize));
    this.itersPerEpoch = Math.max(1, Math.floor(shards.shardSize / this.batchSize));
    const d = this.dim;
    const C = this.numClasses;
    const m = shards.shardSize;
    // Gather every teacher's shard once into a [N, m, d] block (the private data never leaves it).
    const xs = new Float32Array(N * m * d);
    const ys = new Float32Array(N * m * C);
    this.realLabels = new Int32Array(N * m);
    const img = data.train.images;
    for (let r = 0; r < N * m; r++) {
      const rec = shards.members[r]!;
      const src = rec * d;
      const dst = r * d;
      for (let t = 0; t < d; t++) xs[dst + t] = img[src + t]! / 255;
      const lab = data.train.labels[rec]!;
      this.realLabels[r] = lab;
      ys[r * C + lab] = 1;
    }
    this.realX = tf.tensor3d(xs, [N, m, d]);
    this.realY = tf.tensor3d(ys, [N, m, C]);
    const H = config.hidden;
    const s = config.initStd;
    let seed = initSeed >>> 0;
    const nextSeed = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    this.w1x = tf.variable(tf.randomNormal([N, d, H], 0, s, 'float32', nextSeed()), true, 'teacher_w1x');
    this.w1y = tf.variable(tf.randomNormal([N, C, H], 0, s, 'float32', nextSeed()), true, 'teacher_w1y');
    this.b1 = tf.variable(tf.zeros([N, 1, H]), true, 'teacher_b1');
    this.w2h = tf.variable(tf.randomNormal([N, H, 1], 0, s, 'float32', nextSeed()), true, 'teacher_w2h');
    this.w2y = tf.variable(tf.randomNormal([N, C, 1], 0, s, 'float32', nextSeed()), true, 'teacher_w2y');
    this.b2 = tf.variable(tf.zeros([N, 1, 1]), true, 'teacher_b2');
    this.vars = [this.w1x, this.w1y, this.b1, this.w2h, this.w2y, this.b2];
    if (config.norm === 'batch') {
      this.gamma = tf.variable(tf.ones([N, 1, H]), true, 'teacher_bn_gamma');
      this.betaBn = tf.variable(tf.zeros([N, 1, H]), true, 'teacher_bn_beta');
      this.vars.push(this.gamma, this.betaBn);
    }
    this.optimizer = tf.train.adam(config.lr, config.beta1, 0.999, 1e-8);
  }

  /** Labels of the real rows of batch `iter` (teacher-major [N, B]): the fakes are conditioned on them. */
  batchLabels(iter: number): Int32Array {
    const N = this.numTeachers;
    const B = this.batchSize;
    const m = this.shardSize;
    const start = (iter % this.itersPerEpoch) * B;
    const out = new Int32Array(N * B);
    for (let i = 0; i < N; i++) for (let b = 0; b < B; b++) out[i * B + b] = this.realLabels[i * m + start + b]!;
    return out;
  }

  /** Pre-activation of the hidden layer for inputs x [N, M, d] or shared x [M, d]. */
  private preact(x: tf.Tensor, y: tf.Tensor): tf.Tensor3D {
    return tf.add(tf.add(tf.matMul(x as tf.Tensor3D, this.w1x), tf.matMul(y as tf.Tensor3D, this.w1y)), this.b1) as tf.Tensor3D;
  }

  /** Logits [N, M, 1] from the hidden pre-activation h [N, M, H] and labels y ([N, M, C] or shared [M, C]). */
  private head(h: tf.Tensor3D, y: tf.Tensor): tf.Tensor3D {
    let z: tf.Tensor = h;
    if (this.gamma && this.betaBn) {
      // Per-teacher batch statistics over the teacher's own batch (axis 1) — never across teachers.
      const { mean, variance } = tf.moments(z, [1], true);
      z = tf.add(tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, BN_EPS))), this.gamma), this.betaBn);
    }
    z = tf.leakyRelu(z, LEAK);
    return tf.add(tf.add(tf.matMul(z as tf.Tensor3D, this.w2h), tf.matMul(y as tf.Tensor3D, this.w2y)), this.b2) as tf.Tensor3D;
  }

  /**
   * One Adam step for every teacher on L_D^i = mean_b BCE(D_i(X_i), 1) + mean_b BCE(D_i(fake_i), 0).
   * fake: [N, B, d] generated images conditioned on the teachers' own batch labels.
   */
  trainStep(iter: number, fake: tf.Tensor3D): void {
    const N = this.numTeachers;
    const B = this.batchSize;
    if (fake.shape[0] !== N || fake.shape[1] !== B || fake.shape[2] !== this.dim) throw new RangeError(`trainStep: fakes must be [${N}, ${B}, ${this.dim}], got [${fake.shape.join(', ')}]`);
    const start = (iter % this.itersPerEpoch) * B;
    tf.tidy(() => {
      const x = B === this.shardSize ? this.realX : tf.slice(this.realX, [0, start, 0], [N, B, this.dim]);
      const y = B === this.shardSize ? this.realY : tf.slice(this.realY, [0, start, 0], [N, B, this.numClasses]);
      this.optimizer.minimize(
        () => {
          const real = this.head(this.preact(x, y), y);
          const fk = this.head(this.preact(fake, y), y);
          // BCE(l, 1) = softplus(−l), BCE(l, 0) = softplus(l); mean over each teacher's batch, sum over teachers.
          const lossReal = tf.sum(tf.softplus(tf.neg(real)));
          const lossFake = tf.sum(tf.softplus(fk));
          return tf.div(tf.add(lossReal, lossFake), B) as tf.Scalar;
        },
        false,
        this.vars,
      );
    });
  }

  /**
   * Per-teacher image gradients Γ_i = −∂L_G^i/∂x with L_G^i = (1/B) Σ_b BCE(D_i(x_b, y_b), 1), for one
   * shared generated batch x [B, d] with labels y [B, C]. Returns [N, B, d] (teacher-major) as a
   * tensor; the caller moves it to the aggregator and disposes it. Private intermediate (P9).
   */
  imageGradients(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor3D {
    const B = x.shape[0];
    return tf.tidy(() => {
      // h = x·W1x broadcast over teachers; differentiate the loss w.r.t. h, then dx_i = dh_i · W1x_iᵀ.
      // That avoids materialising N copies of x and gives each teacher its own gradient exactly.
      const h = this.preact(x, y);
      const lossOfH = (hh: tf.Tensor) => tf.div(tf.sum(tf.softplus(tf.neg(this.head(hh as tf.Tensor3D, y)))), B) as tf.Scalar;
      const [dh] = tf.grads(lossOfH)([h]);
      return tf.neg(tf.matMul(dh as tf.Tensor3D, this.w1x, false, true)) as tf.Tensor3D;
    });
  }

  /** Approximate bytes held by the ensemble (params + Adam moments + shard data). */
  memoryBytes(): number {
    let n = 0;
    for (const v of this.vars) n += v.size * 3;
    return 4 * (n + this.realX.size + this.realY.size);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.optimizer.dispose();
    for (const v of this.vars) v.dispose();
    this.realX.dispose();
    this.realY.dispose();
  }
}
