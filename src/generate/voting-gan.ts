/**
 * The teacher-voting GAN loop shared by DataLens and G-PATE (spec §2, §6): teachers train on their
 * shards against generated images; per generated sample, every teacher's image gradient is reduced
 * to a private aggregate (TopAgg or G-PATE's Confident-GNMax); the generator regresses onto
 * x + aggregate. Only the aggregate crosses the privacy boundary.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DpEvents, type DpEvent } from '../privacy/index.js';
import { ConditionalGenerator, type GeneratorConfig } from './generator.js';
import { TeacherEnsemble, type TeacherConfig } from './teachers.js';
import { KernelTeacherEnsemble } from './kernel-teachers.js';
import { assignShards, PUBLIC_SHARD_SEED } from './shards.js';
import { noisyAggregate, topAgg, validateTopAggParams, type TopAggParams } from './topagg.js';
import { argmaxStep, backProject, drawProjections, histograms, thresholdStep, validateGpateParams, type GpateParams } from './gpate-agg.js';
import type { DpGenerator, FitResult, GeneratorContext, GeneratorProgress, SampleSet, StopReason } from './types.js';
import { tidyRead } from '../engine/tidy-read.js';

export interface VotingGanOptions {
  teachers: Omit<TeacherConfig, 'batchSize'>;
  generator: Omit<GeneratorConfig, 'numClasses' | 'height' | 'width' | 'bnGroup'>;
  /** Batch flag; the effective teacher batch is min(batchSize, shard size) (spec §2). */
  batchSize: number;
  /**
   * Generated samples (= TopAgg / G-PATE queries) per generator step. Default: the teacher batch,
   * as in the reference. A larger value averages more noised aggregates per generator update and
   * needs fewer steps (so less teacher training) for the same number of queries.
   */
  queryBatch?: number;
  /**
   * Std (pixels) of a Gaussian blur applied to each released direction before the generator
   * regresses on it; 0/undefined = none. Pure post-processing of the noised release (no teacher
   * or private information is used, P7): the Gaussian noise is independent per pixel while the
   * signal is spatially smooth at stroke scale, so a 1-pixel blur cuts the per-pixel noise std
   * about 3.5× at a small loss of sharpness.
   */
  smoothDirection?: number;
  generatorLr: number;
  generatorBeta1: number;
  /** Teacher steps per generator step, and in the first epoch. */
  dStep: number;
  pretrainSteps: number;
  /**
   * 'neural' (default): the trained MLP teachers of the spec. 'kernel': non-parametric kernel
   * teachers (kernel-teachers.ts) that need no training.
   */
  teacherKind?: 'neural' | 'kernel';
  /** Kernel teachers' bandwidth h (Infinity = equal weights over a teacher's class-y records). */
  kernelBandwidth?: number;
  /** Kernel teachers' query assignment ('all' | 'nearest'; see KernelTeacherConfig.assign). */
  kernelAssign?: 'all' | 'nearest';
  /** Caps (the budget normally stops first). */
  maxSteps: number;
  maxMinutes: number;
}

function checkPositiveInt(x: number, what: string): void {
  if (!Number.isInteger(x) || x < 1) throw new RangeError(`${what} must be a positive integer, got ${x}`);
}

/** Separable Gaussian blur (std `s` pixels, zero padding) of n images of h×w, row-major. */
export function smoothImages(src: Float32Array, n: number, h: number, w: number, s: number): Float32Array {
  if (!(s > 0)) return src;
  if (src.length !== n * h * w) throw new RangeError(`smoothImages: expected ${n}×${h}×${w} values, got ${src.length}`);
  const r = Math.max(1, Math.ceil(2 * s));
  const ker = new Float64Array(2 * r + 1);
  let tot = 0;
  for (let i = -r; i <= r; i++) tot += ker[i + r] = Math.exp(-(i * i) / (2 * s * s));
  for (let i = 0; i < ker.length; i++) ker[i]! /= tot;
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let m = 0; m < n; m++) {
    const o = m * h * w;
    for (let yy = 0; yy < h; yy++)
      for (let xx = 0; xx < w; xx++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const x2 = xx + i;
          if (x2 >= 0 && x2 < w) acc += ker[i + r]! * src[o + yy * w + x2]!;
        }
        tmp[o + yy * w + xx] = acc;
      }
    for (let yy = 0; yy < h; yy++)
      for (let xx = 0; xx < w; xx++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const y2 = yy + i;
          if (y2 >= 0 && y2 < h) acc += ker[i + r]! * tmp[o + y2 * w + xx]!;
        }
        out[o + yy * w + xx] = acc;
      }
  }
  return out;
}

/** Uniform(-1, 1) latent codes from the run's RandomSource. */
function latent(rng: GeneratorContext['random'], n: number, zDim: number): tf.Tensor2D {
  const u = new Float32Array(n * zDim);
  rng.uniform(u);
  for (let i = 0; i < u.length; i++) u[i] = 2 * u[i]! - 1;
  return tf.tensor2d(u, [n, zDim]);
}

/** Uniform labels (P8): each drawn independently from the public uniform distribution. */
function uniformLabels(rng: GeneratorContext['random'], n: number, C: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(C - 1, Math.floor(rng.nextDouble() * C));
  return out;
}

/** Balanced labels in random order: n/C of each class (public, data-independent). */
export function balancedLabels(rng: GeneratorContext['random'], n: number, C: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i % C;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(rng.nextDouble() * (i + 1)));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

export abstract class VotingGan implements DpGenerator {
  abstract readonly method: string;
  readonly generator: ConditionalGenerator;
  /** Queries (generated samples) per generator step. */
  readonly B: number;
  /** Rows per teacher batch: min(batch flag, shard size). */
  readonly teacherBatch: number;
  readonly numTeachers: number;
  readonly dim: number;
  readonly numClasses: number;
  protected teachers?: TeacherEnsemble;
  protected kernelTeachers?: KernelTeacherEnsemble;
  protected stepsDone = 0;
  private readonly genOpt: tf.Optimizer;

  constructor(
    protected readonly ctx: GeneratorContext,
    readonly opts: VotingGanOptions,
  ) {
    const { data, budget } = ctx;
    if (!(budget.epsilon > 0) || !Number.isFinite(budget.epsilon)) throw new RangeError(`epsilon must be a finite number > 0, got ${budget.epsilon}`);
    if (!(budget.delta > 0 && budget.delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${budget.delta}`);
    checkPositiveInt(opts.teachers.numTeachers, 'teachers');
    checkPositiveInt(opts.batchSize, 'batch size');
    checkPositiveInt(opts.dStep, 'd-step');
    if (data.channels !== 1) throw new RangeError(`${data.name}: DataLens/G-PATE here support single-channel images, got ${data.channels} channels`);
    if (data.train.count < opts.teachers.numTeachers) throw new RangeError(`${opts.teachers.numTeachers} teachers need at least as many training records; ${data.name} has ${data.train.count}`);
    this.numTeachers = opts.teachers.numTeachers;
    this.dim = data.height * data.width * data.channels;
    this.numClasses = data.numClasses;
    const m = Math.floor(data.train.count / this.numTeachers);
    this.teacherBatch = Math.min(opts.batchSize, m);
    if (opts.queryBatch !== undefined) checkPositiveInt(opts.queryBatch, 'query batch');
    this.B = opts.queryBatch ?? this.teacherBatch;
    const seed = ctx.random.nextUint32();
    this.generator = new ConditionalGenerator({ ...opts.generator, numClasses: data.numClasses, height: data.height, width: data.width, bnGroup: this.B }, seed);
    this.genOpt = tf.train.adam(opts.generatorLr, opts.generatorBeta1, 0.999, 1e-8);
  }

  get steps(): number {
    return this.stepsDone;
  }

  /** The DP event of one generator step at its worst case (what the budget check uses). */
  abstract stepEvent(): DpEvent;

  /**
   * Turns the per-teacher image gradients [N, B, d] into the private aggregate [B, d], recording
   * every release in the ledger before it happens. Returns the aggregate and a loggable summary.
   */
  protected abstract aggregate(grads: Float32Array): { direction: Float32Array; nonZero: number };

  /** The private aggregate from kernel teachers' votes on queries x [B, d], recorded like aggregate(). */
  protected abstract aggregateKernel(x: Float32Array, y: Int32Array): { direction: Float32Array; nonZero: number };

  protected record(event: DpEvent, meta: Record<string, unknown>): void {
    this.ctx.ledger.record({ event, method: this.method, datasetFingerprint: this.ctx.data.fingerprint, meta: { step: this.stepsDone + 1, ...meta } });
  }

  /** G(z_b, c) for every class c: [C·B, d], row c·B + b. Teachers pick their fakes from it. */
  private fakeTable(z: tf.Tensor2D): Float32Array {
    const B = this.teacherBatch;
    const C = this.numClasses;
    const t = tf.tidy(() => {
      const lab = new Int32Array(C * B);
      for (let c = 0; c < C; c++) lab.fill(c, c * B, (c + 1) * B);
      // One batch-norm group over the whole table: every class in it, like a uniformly labelled
      // batch. Groups of B rows would each hold a single class, and normalisation would erase y.
      return this.generator.apply(tf.tile(z, [C, 1]) as tf.Tensor2D, tf.oneHot(tf.tensor1d(lab, 'int32'), C) as tf.Tensor2D, C * B);
    });
    const out = t.dataSync() as Float32Array;
    t.dispose();
    return out;
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const { budget, ledger, random: rng, data } = this.ctx;
    const t0 = Date.now();
    const B = this.B;
    const C = this.numClasses;
    const kernel = this.opts.teacherKind === 'kernel';
    if (kernel && !this.kernelTeachers) {
      const shards = assignShards(data.train.count, this.numTeachers, PUBLIC_SHARD_SEED);
      this.kernelTeachers = new KernelTeacherEnsemble({ numTeachers: this.numTeachers, bandwidth: this.opts.kernelBandwidth ?? Number.POSITIVE_INFINITY, assign: this.opts.kernelAssign }, data, shards);
    } else if (!kernel && !this.teachers) {
      const shards = assignShards(data.train.count, this.numTeachers, PUBLIC_SHARD_SEED);
      this.teachers = new TeacherEnsemble({ ...this.opts.teachers, batchSize: this.teacherBatch }, data, shards, rng.nextUint32());
    }
    const teachers = this.teachers;
    const itersPerEpoch = teachers?.itersPerEpoch ?? 1;
    const event = this.stepEvent();
    let stoppedBy: StopReason = 'max-steps';
    let epoch = 0;
    let teacherSteps = 0;
    outer: for (;;) {
      for (let it = 0; it < itersPerEpoch; it++) {
        if (this.stepsDone >= this.opts.maxSteps) {
          stoppedBy = 'max-steps';
          break outer;
        }
        if ((Date.now() - t0) / 60000 >= this.opts.maxMinutes) {
          stoppedBy = 'max-minutes';
          break outer;
        }
        if (o.signal?.aborted) {
          stoppedBy = 'aborted';
          break outer;
        }
        // Refuse, before any work, a step whose release would exceed the budget (P4).
        if (ledger.epsilonIf(event, budget.delta) > budget.epsilon) {
          stoppedBy = 'budget';
          break outer;
        }
        const zTeach = latent(rng, this.teacherBatch, this.opts.generator.zDim);
        // 1. Teachers: own shards vs. fakes conditioned on their own batch labels (kernel
        //    teachers are non-parametric: nothing to train).
        const ta = Date.now();
        if (teachers) {
          const nD = teacherSteps === 0 && this.opts.pretrainSteps > 0 ? this.opts.pretrainSteps : this.opts.dStep;
          const fakes = teachers.fakeBatch(it, this.fakeTable(zTeach));
          for (let s = 0; s < nD; s++) teachers.trainStep(it, fakes);
          teacherSteps++;
        }
        // 2. Votes on a fresh generated batch with uniform labels (P8).
        const tb = Date.now();
        // The reference reuses the teachers' z for the generator step; with a different query
        // batch size a fresh draw is needed.
        const z = B === this.teacherBatch ? zTeach : latent(rng, B, this.opts.generator.zDim);
        // Kernel teachers: balanced labels in random order (still uniform per query, P8), so that
        // no class has more than ⌈B/C⌉ queries in a step — the joint sensitivity of the step
        // depends on that public count (DataLens.kernelStepSensitivity).
        const yLab = teachers ? uniformLabels(rng, B, C) : balancedLabels(rng, B, C);
        const y = tf.oneHot(tf.tensor1d(yLab, 'int32'), C) as tf.Tensor2D;
        const x = this.generator.apply(z, y);
        let agg: { direction: Float32Array; nonZero: number };
        if (teachers) {
          const grads = teachers.imageGradients(x.dataSync() as Float32Array, yLab);
          agg = this.aggregate(grads);
          grads.fill(0);
        } else {
          agg = this.aggregateKernel(x.dataSync() as Float32Array, yLab);
        }
        // 3. Generator regression onto x̂ = x + aggregate (a function of the noised release only).
        const tc = Date.now();
        const direction = this.opts.smoothDirection ? smoothImages(agg.direction, B, this.ctx.data.height, this.ctx.data.width, this.opts.smoothDirection) : agg.direction;
        const target = tf.add(x, tf.tensor2d(direction, [B, this.dim]));
        const lossT = this.genOpt.minimize(() => tf.sum(tf.square(tf.sub(target, this.generator.apply(z, y)))) as tf.Scalar, true, [...this.generator.vars.values()]);
        const generatorLoss = lossT ? (await lossT.data())[0]! : NaN;
        lossT?.dispose();
        tf.dispose([target, x, y, z, zTeach]);
        const td = Date.now();
        this.stepsDone++;
        o.onProgress?.({
          step: this.stepsDone,
          epoch,
          epsilon: ledger.spent(budget.delta),
          generatorLoss,
          aggregateNonZero: agg.nonZero,
          seconds: (td - t0) / 1000,
          timing: { teacherTrainMs: tb - ta, voteMs: tc - tb, generatorMs: td - tc },
        });
        await new Promise((r) => setImmediate(r));
      }
      epoch++;
    }
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    checkPositiveInt(n, 'sample count');
    const C = this.numClasses;
    const lab = labels ?? balancedLabels(this.ctx.random, n, C);
    if (lab.length !== n) throw new RangeError(`sample: ${lab.length} labels for ${n} samples`);
    for (const l of lab) if (!Number.isInteger(l) || l < 0 || l >= C) throw new RangeError(`sample: label ${l} out of range [0, ${C})`);
    const images = new Uint8Array(n * this.dim);
    // Chunks are a multiple of B so every batch-norm group has exactly B rows, as during training.
    const chunk = this.B * Math.max(1, Math.floor(2048 / this.B));
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const px = tf.tidy(() => {
        const z = latent(this.ctx.random, m, this.opts.generator.zDim);
        const y = tf.oneHot(tf.tensor1d(lab.subarray(s, s + m), 'int32'), C) as tf.Tensor2D;
        return tf.round(tf.mul(this.generator.apply(z, y), 255));
      });
      const v = await px.data();
      px.dispose();
      for (let i = 0; i < v.length; i++) images[s * this.dim + i] = Math.max(0, Math.min(255, v[i]!));
    }
    const d = this.ctx.data;
    return { images, labels: Int32Array.from(lab), count: n, height: d.height, width: d.width, channels: d.channels };
  }

  async save(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const snap = this.generator.snapshot();
    let off = 0;
    const index = snap.map((p) => {
      const e = { name: p.name, shape: p.shape, offset: off };
      off += p.values.length;
      return e;
    });
    const all = new Float32Array(off);
    snap.forEach((p, i) => all.set(p.values, index[i]!.offset));
    writeFileSync(join(dir, 'generator.bin'), new Uint8Array(all.buffer));
    writeFileSync(join(dir, 'generator.json'), JSON.stringify({ format: 'dplens-generator-1', method: this.method, steps: this.stepsDone, config: this.generator.config, params: index }, null, 1));
  }

  async load(dir: string): Promise<void> {
    const meta = JSON.parse(readFileSync(join(dir, 'generator.json'), 'utf8')) as { format: string; steps: number; params: { name: string; shape: number[]; offset: number }[] };
    if (meta.format !== 'dplens-generator-1') throw new Error(`${dir}/generator.json: unknown format ${meta.format}`);
    const buf = readFileSync(join(dir, 'generator.bin'));
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    this.generator.restore(meta.params.map((p) => ({ name: p.name, shape: p.shape, values: all.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1)) })));
    this.stepsDone = meta.steps;
  }

  dispose(): void {
    this.teachers?.dispose();
    this.teachers = undefined;
    this.kernelTeachers?.dispose();
    this.kernelTeachers = undefined;
    this.generator.dispose();
    this.genOpt.dispose();
  }
}

/** DataLens: TopAgg on top-k stochastic-sign votes (spec §2–3). */
export class DataLens extends VotingGan {
  readonly method = 'datalens';
  constructor(
    ctx: GeneratorContext,
    opts: VotingGanOptions,
    readonly topagg: TopAggParams,
  ) {
    super(ctx, opts);
    validateTopAggParams(topagg, this.dim);
  }

  /**
   * Neural teachers: B TopAgg queries per generator step, each with L2 sensitivity 2√k
   * (data-independent, P6). Kernel teachers: one Gaussian release of the whole [B, d] vote block
   * with its joint L2 sensitivity (kernelStepSensitivity), which is much smaller than √B · 2√k.
   */
  stepEvent(): DpEvent {
    if (this.opts.teacherKind === 'kernel') return DpEvents.gaussianWithSensitivity(this.topagg.sigma, this.kernelStepSensitivity());
    return DpEvents.selfComposed(DpEvents.topAgg({ k: this.topagg.k, sigma: this.topagg.sigma, voters: this.numTeachers }), this.B);
  }

  /**
   * Joint L2 sensitivity of one step's vote block [B, d] under kernel teachers, from public facts
   * only (k, B, C, the assignment mode and the shard size m = ⌊n/N⌋; per-step labels are balanced,
   * so a class has at most c = ⌈B/C⌉ queries). Replacing one record (class a → class b) of one
   * teacher changes only that teacher's votes, each query's vote by ≤ 2√k in L2 (≤ k entries ±1
   * before and after), and only on these queries:
   *  - 'all', m = 1: the old record voted on the class-a queries, the new one votes on the class-b
   *    queries: Δ² ≤ k·(n_a + n_b) ≤ 2kc when a ≠ b, and ≤ 4k·n_a ≤ 4kc when a = b → Δ = 2√(kc);
   *  - 'all', m > 1: the teacher's votes on class-a and class-b queries may both change:
   *    Δ² ≤ 4k·(n_a + n_b) ≤ 4k·min(B, 2c);
   *  - 'nearest', m = 1: the record votes on exactly one query (its nearest of its class) before and
   *    after: Δ² ≤ max(4k, k + k) = 4k;
   *  - 'nearest', m > 1: the queries of the old and the new record change: Δ² ≤ 8k.
   * Property-tested in test/generate-kernel-teachers.test.ts.
   */
  kernelStepSensitivity(): number {
    const k = this.topagg.k;
    const m = Math.floor(this.ctx.data.train.count / this.numTeachers);
    const c = Math.ceil(this.B / this.numClasses);
    const nearest = this.opts.kernelAssign === 'nearest';
    const d2 = nearest ? (m === 1 ? 4 * k : 8 * k) : m === 1 ? 4 * k * c : 4 * k * Math.min(this.B, 2 * c);
    return Math.sqrt(d2);
  }

  protected aggregate(g: Float32Array): { direction: Float32Array; nonZero: number } {
    this.record(this.stepEvent(), { queries: this.B, k: this.topagg.k, sigma: this.topagg.sigma, beta: this.topagg.beta });
    const r = topAgg(g, this.numTeachers, this.B, this.dim, this.topagg, this.ctx.random);
    return { direction: r.direction, nonZero: r.nonZeroFraction };
  }

  protected aggregateKernel(x: Float32Array, y: Int32Array): { direction: Float32Array; nonZero: number } {
    const kt = this.kernelTeachers!;
    // Recorded before the votes are even counted, exactly like the neural path.
    this.record(this.stepEvent(), { queries: this.B, k: this.topagg.k, sigma: this.topagg.sigma, beta: this.topagg.beta, teachers: 'kernel', assign: this.opts.kernelAssign ?? 'all', jointSensitivity: this.kernelStepSensitivity() });
    const votes = kt.voteSums(x, y, this.topagg, this.ctx.random);
    const r = noisyAggregate(votes, this.numTeachers, this.B, this.dim, this.topagg, this.ctx.random);
    votes.fill(0);
    return { direction: r.direction, nonZero: r.nonZeroFraction };
  }
}

/** G-PATE: random projection + Confident-GNMax per projected coordinate (spec §6). */
export class Gpate extends VotingGan {
  readonly method = 'gpate';
  constructor(
    ctx: GeneratorContext,
    opts: VotingGanOptions,
    readonly params: GpateParams,
  ) {
    super(ctx, opts);
    validateGpateParams(params);
  }

  private coords(): number {
    return this.B * this.params.projDim;
  }

  /**
   * Coordinates one record can influence in a step. Neural teachers: all B·p. Kernel teachers
   * (balanced labels, ≤ c = ⌈B/C⌉ queries per class): a teacher's votes on a class-a query depend
   * only on its class-a records, so replacing a record of class a by one of class b changes votes
   * on the class-a and class-b queries only — ≤ min(B, 2c)·p coordinates ('all'), ≤ 2p ('nearest'). The other coordinates'
   * outputs have the same distribution on both datasets (zero Rényi divergence), so the step's RDP
   * is the sum over those coordinates only.
   */
  private chargedCoords(): number {
    if (this.opts.teacherKind !== 'kernel') return this.coords();
    // 'nearest': a teacher's vote on query j uses only its records assigned to j, and a replaced
    // record was assigned to one query before and one after → ≤ 2 queries.
    const queries = this.opts.kernelAssign === 'nearest' ? 2 : 2 * Math.ceil(this.B / this.numClasses);
    return Math.min(this.B, queries) * this.params.projDim;
  }

  /**
   * T = thresh·(voters a query can expect, a public number): N for neural teachers; for kernel
   * ones N/C under 'all' (the teachers holding the class) and N/B under 'nearest' (a class's
   * N/C records split among its ≈ B/C queries).
   */
  private thresholdVoters(): number {
    if (this.opts.teacherKind !== 'kernel') return this.numTeachers;
    return this.opts.kernelAssign === 'nearest' ? this.numTeachers / this.B : this.numTeachers / this.numClasses;
  }

  /** Worst case of one step: every projected coordinate pays the threshold test and is answered. */
  stepEvent(): DpEvent {
    return DpEvents.selfComposed(DpEvents.gnmax({ sigma: this.params.sigma2, thresholdSigma: this.params.sigma1, answered: true }), this.chargedCoords());
  }

  protected aggregateKernel(x: Float32Array, y: Int32Array): { direction: Float32Array; nonZero: number } {
    const { B, dim } = this;
    const p = this.params;
    const rng = this.ctx.random;
    const proj = drawProjections(B, dim, p.projDim, rng);
    const hist = this.kernelTeachers!.projectedHistograms(x, y, proj, p.projDim, p.bins, p.clip);
    // Worst case charged up front: every influenceable coordinate pays the threshold test and GNMax
    // (whether answered or not, a record's class is private, so we cannot charge fewer).
    this.record(this.stepEvent(), { part: 'threshold+gnmax', coordinates: this.coords(), charged: this.chargedCoords(), teachers: 'kernel' });
    const answered = thresholdStep(hist, this.thresholdVoters(), p, rng);
    let nAnswered = 0;
    for (const a of answered) nAnswered += a;
    const r = argmaxStep(hist, answered, p, rng);
    hist.fill(0);
    return { direction: backProject(r, proj, B, dim, p.projDim), nonZero: nAnswered / answered.length };
  }

  protected aggregate(grads: Float32Array): { direction: Float32Array; nonZero: number } {
    const { B, dim, numTeachers: N } = this;
    const p = this.params;
    const rng = this.ctx.random;
    const proj = drawProjections(B, dim, p.projDim, rng);
    // u[j, i, :] = g_i[j]ᵀ P_j for every query j and teacher i, as one batched product.
    const projected = tidyRead(() => tf.matMul(tf.transpose(tf.tensor3d(grads, [N, B, dim]), [1, 0, 2]), tf.tensor3d(proj, [B, dim, p.projDim]))) as Float32Array;
    const hist = histograms(projected, B, N, p);
    projected.fill(0);
    // Threshold tests for every coordinate (charged whether answered or not, P6) ...
    this.record(DpEvents.selfComposed(DpEvents.gnmax({ sigma: p.sigma2, thresholdSigma: p.sigma1, answered: false }), this.coords()), { part: 'threshold', coordinates: this.coords() });
    const answered = thresholdStep(hist, N, p, rng);
    let nAnswered = 0;
    for (const a of answered) nAnswered += a;
    // ... then GNMax for the answered ones, recorded before the argmax is drawn.
    if (nAnswered > 0) this.record(DpEvents.selfComposed(DpEvents.gnmax({ sigma: p.sigma2, answered: true }), nAnswered), { part: 'gnmax', coordinates: nAnswered });
    const r = argmaxStep(hist, answered, p, rng);
    hist.fill(0);
    return { direction: backProject(r, proj, B, dim, p.projDim), nonZero: nAnswered / answered.length };
  }
}

/**
 * A generator read back from save(): sampling only (post-processing — no data, no budget needed).
 * Used to draw more synthetic data from a finished run.
 */
export class SavedGenerator {
  private constructor(
    readonly generator: ConditionalGenerator,
    readonly method: string,
    readonly steps: number,
  ) {}

  static load(dir: string): SavedGenerator {
    const meta = JSON.parse(readFileSync(join(dir, 'generator.json'), 'utf8')) as { format: string; method: string; steps: number; config: ConstructorParameters<typeof ConditionalGenerator>[0]; params: { name: string; shape: number[]; offset: number }[] };
    if (meta.format !== 'dplens-generator-1') throw new Error(`${dir}/generator.json: unknown format ${meta.format}`);
    const g = new ConditionalGenerator(meta.config, 0);
    const buf = readFileSync(join(dir, 'generator.bin'));
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    g.restore(meta.params.map((p) => ({ name: p.name, shape: p.shape, values: all.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1)) })));
    return new SavedGenerator(g, meta.method, meta.steps);
  }

  async sample(n: number, rng: GeneratorContext['random'], labels?: Int32Array): Promise<SampleSet> {
    checkPositiveInt(n, 'sample count');
    const c = this.generator.config;
    const C = c.numClasses;
    const d = c.height * c.width;
    const lab = labels ?? balancedLabels(rng, n, C);
    const images = new Uint8Array(n * d);
    const chunk = c.bnGroup * Math.max(1, Math.floor(2048 / c.bnGroup));
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const px = tf.tidy(() => tf.round(tf.mul(this.generator.apply(latent(rng, m, c.zDim), tf.oneHot(tf.tensor1d(lab.subarray(s, s + m), 'int32'), C) as tf.Tensor2D), 255)));
      const v = await px.data();
      px.dispose();
      for (let i = 0; i < v.length; i++) images[s * d + i] = Math.max(0, Math.min(255, v[i]!));
    }
    return { images, labels: Int32Array.from(lab), count: n, height: c.height, width: c.width, channels: 1 };
  }

  dispose(): void {
    this.generator.dispose();
  }
}
