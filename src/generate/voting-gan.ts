/**
 * The teacher-voting GAN loop shared by DataLens and G-PATE (spec §2, §6): teachers train on their
 * shards against generated images; per generated sample, every teacher's image gradient is reduced
 * to a private aggregate (TopAgg or G-PATE's Confident-GNMax); the generator regresses onto
 * x + aggregate. Only the aggregate crosses the privacy boundary.
 *
 * One loop (VotingGan) for every pair of a teacher ensemble (VotingTeachers: neural MLPs or kernel
 * teachers) and an aggregator (VoteAggregator: TopAgg or G-PATE); the ledger is the only budget gate.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, type DpEvent } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { ConditionalGenerator, type GeneratorConfig } from './generator.js';
import { TeacherEnsemble, type TeacherConfig } from './teachers.js';
import { KernelTeacherEnsemble } from './kernel-teachers.js';
import { assignShards, PUBLIC_SHARD_SEED } from './shards.js';
import { noisyAggregate, validateTopAggParams, voteSums, type TopAggParams } from './topagg.js';
import { argmaxStep, backProject, drawProjections, histograms, thresholdStep, validateGpateParams, type GpateParams } from './gpate-agg.js';
import type { DpGenerator, FitResult, GeneratorContext, GeneratorProgress, SampleSet, StopReason } from './types.js';
import { tidyRead } from '../engine/tidy-read.js';
import { type CheckpointLayout, readCheckpoint, writeCheckpoint } from '../nn/checkpoint.js';

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

/**
 * One 1-D pass of a separable blur over one image at offset `o`: for each of `lines` lines of
 * `len` pixels (pixel stride `step`, line stride `lineStride`),
 * convolve with `ker` (radius r, zero padding).
 */
function blurPass(src: Float32Array, dst: Float32Array, o: number, lines: number, len: number, step: number, lineStride: number, ker: Float64Array, r: number): void {
  for (let a = 0; a < lines; a++)
    for (let b = 0; b < len; b++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) {
        const b2 = b + i;
        if (b2 >= 0 && b2 < len) acc += ker[i + r]! * src[o + a * lineStride + b2 * step]!;
      }
      dst[o + a * lineStride + b * step] = acc;
    }
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
    blurPass(src, tmp, o, h, w, 1, w, ker, r); // along rows (x): h lines of w pixels
    blurPass(tmp, out, o, w, h, w, 1, ker, r); // along columns (y): w lines of h pixels, strides swapped
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

/** Public facts about a step's teachers and queries: the only inputs a sensitivity may use. */
export interface VotingFacts {
  kind: 'neural' | 'kernel';
  numTeachers: number;
  /** Records per shard m = ⌊n/N⌋ (n and N are public under replace-one). */
  shardSize: number;
  /** Kernel teachers' query assignment. */
  assign: 'all' | 'nearest';
  /** Queries per generator step. */
  queries: number;
  numClasses: number;
  dim: number;
}

/**
 * One step's public facts from the options and public data facts (n, C, image size): m = ⌊n/N⌋,
 * teacher batch min(batch, m), B = queryBatch ?? teacher batch. The one derivation: VotingGan's
 * constructor and the audit's mechanism replay (votingStepFacts) both call it.
 */
export function votingFacts(
  opts: Pick<VotingGanOptions, 'teachers' | 'batchSize' | 'queryBatch' | 'teacherKind' | 'kernelAssign'>,
  data: { trainCount: number; numClasses: number; height: number; width: number; channels: number },
): VotingFacts {
  const numTeachers = opts.teachers.numTeachers;
  const m = Math.floor(data.trainCount / numTeachers);
  return {
    kind: opts.teacherKind === 'kernel' ? 'kernel' : 'neural',
    numTeachers,
    shardSize: m,
    assign: opts.kernelAssign ?? 'all',
    queries: opts.queryBatch ?? Math.min(opts.batchSize, m),
    numClasses: data.numClasses,
    dim: data.height * data.width * data.channels,
  };
}

/**
 * A teacher ensemble as the voting loop sees it: optional training against generated images and
 * the two vote primitives the aggregators need. Vote sums and histograms are private
 * intermediates: the aggregator noises them and drops them.
 */
export interface VotingTeachers {
  readonly itersPerEpoch: number;
  /** Query labels of a step: uniform (neural) or balanced (kernel: the joint sensitivity needs ≤ ⌈B/C⌉ per class). */
  queryLabels(rng: GeneratorContext['random'], B: number, C: number): Int32Array;
  /** One generator step's teacher training (no-op for non-parametric teachers). */
  train(iter: number, fakeTable: () => Float32Array, first: boolean): void;
  /** Un-noised TopAgg vote sums [B, d]. */
  topAggVotes(x: Float32Array, y: Int32Array, p: TopAggParams, rng: GeneratorContext['random']): Int32Array;
  /** Un-noised G-PATE histograms [B, p, bins] under projections proj [B, d, p]. */
  projectedHistograms(x: Float32Array, y: Int32Array, proj: Float32Array, p: GpateParams): Int32Array;
  dispose(): void;
}

class NeuralVoters implements VotingTeachers {
  constructor(
    private readonly t: TeacherEnsemble,
    private readonly opts: VotingGanOptions,
  ) {}
  get itersPerEpoch(): number {
    return this.t.itersPerEpoch;
  }
  queryLabels(rng: GeneratorContext['random'], B: number, C: number): Int32Array {
    return uniformLabels(rng, B, C);
  }
  train(iter: number, fakeTable: () => Float32Array, first: boolean): void {
    const nD = first && this.opts.pretrainSteps > 0 ? this.opts.pretrainSteps : this.opts.dStep;
    const fakes = this.t.fakeBatch(iter, fakeTable());
    for (let s = 0; s < nD; s++) this.t.trainStep(iter, fakes);
  }
  topAggVotes(x: Float32Array, y: Int32Array, p: TopAggParams, rng: GeneratorContext['random']): Int32Array {
    const g = this.t.imageGradients(x, y);
    const v = voteSums(g, this.t.numTeachers, y.length, this.t.dim, p, rng);
    g.fill(0);
    return v;
  }
  projectedHistograms(x: Float32Array, y: Int32Array, proj: Float32Array, p: GpateParams): Int32Array {
    const g = this.t.imageGradients(x, y);
    const N = this.t.numTeachers;
    const B = y.length;
    const dim = this.t.dim;
    // u[j, i, :] = g_i[j]ᵀ P_j for every query j and teacher i, as one batched product.
    const projected = tidyRead(() => tf.matMul(tf.transpose(tf.tensor3d(g, [N, B, dim]), [1, 0, 2]), tf.tensor3d(proj, [B, dim, p.projDim]))) as Float32Array;
    g.fill(0);
    const h = histograms(projected, B, N, p);
    projected.fill(0);
    return h;
  }
  dispose(): void {
    this.t.dispose();
  }
}

class KernelVoters implements VotingTeachers {
  readonly itersPerEpoch = 1;
  constructor(private readonly t: KernelTeacherEnsemble) {}
  queryLabels(rng: GeneratorContext['random'], B: number, C: number): Int32Array {
    return balancedLabels(rng, B, C);
  }
  train(): void {
    // Non-parametric: nothing to train.
  }
  topAggVotes(x: Float32Array, y: Int32Array, p: TopAggParams, rng: GeneratorContext['random']): Int32Array {
    return this.t.voteSums(x, y, p, rng);
  }
  projectedHistograms(x: Float32Array, y: Int32Array, proj: Float32Array, p: GpateParams): Int32Array {
    return this.t.projectedHistograms(x, y, proj, p.projDim, p.bins, p.clip);
  }
  dispose(): void {
    this.t.dispose();
  }
}

/**
 * Records a release through the ledger, the only budget gate: true when recorded, false when the
 * ledger refuses it (the step then stops unapplied).
 */
export type ChargeFn = (event: DpEvent, meta: Record<string, unknown>) => boolean;

/**
 * A private aggregator: turns one step's teacher votes on queries (x, y) into the noised
 * direction [B, d]. `stepEvent` is the step's data-independent worst case, from public facts.
 * `aggregate` charges through `charge` before any noised value exists and returns undefined when
 * the ledger refused (nothing was released).
 */
export interface VoteAggregator {
  readonly method: string;
  stepEvent(f: VotingFacts): DpEvent;
  aggregate(t: VotingTeachers, x: Float32Array, y: Int32Array, f: VotingFacts, rng: GeneratorContext['random'], charge: ChargeFn): { direction: Float32Array; nonZero: number } | undefined;
}

/**
 * Joint L2 sensitivity of one step's TopAgg vote block [B, d] under kernel teachers, from public
 * facts only (k, B, C, the assignment mode and the shard size m = ⌊n/N⌋; per-step labels are
 * balanced, so a class has at most c = ⌈B/C⌉ queries). Replacing one record (class a → class b) of
 * one teacher changes only that teacher's votes, each query's vote by ≤ 2√k in L2 (≤ k entries ±1
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
export function kernelTopAggSensitivity(k: number, f: VotingFacts): number {
  const m = f.shardSize;
  const c = Math.ceil(f.queries / f.numClasses);
  const nearest = f.assign === 'nearest';
  const d2 = nearest ? (m === 1 ? 4 * k : 8 * k) : m === 1 ? 4 * k * c : 4 * k * Math.min(f.queries, 2 * c);
  return Math.sqrt(d2);
}

/** DataLens TopAgg (spec §2–3). */
export class TopAggAggregator implements VoteAggregator {
  readonly method = 'datalens';
  constructor(readonly params: TopAggParams) {}
  /**
   * Neural teachers: B TopAgg queries per generator step, each with L2 sensitivity 2√k
   * (data-independent, P6). Kernel teachers: one Gaussian release of the whole [B, d] vote block
   * with its joint L2 sensitivity (kernelTopAggSensitivity), much smaller than √B · 2√k.
   */
  stepEvent(f: VotingFacts): DpEvent {
    if (f.kind === 'kernel') return DpEvents.gaussianWithSensitivity(this.params.sigma, kernelTopAggSensitivity(this.params.k, f));
    return DpEvents.selfComposed(DpEvents.topAgg({ k: this.params.k, sigma: this.params.sigma, voters: f.numTeachers }), f.queries);
  }
  aggregate(t: VotingTeachers, x: Float32Array, y: Int32Array, f: VotingFacts, rng: GeneratorContext['random'], charge: ChargeFn): { direction: Float32Array; nonZero: number } | undefined {
    const p = this.params;
    const meta: Record<string, unknown> = { queries: f.queries, k: p.k, sigma: p.sigma, beta: p.beta };
    if (f.kind === 'kernel') Object.assign(meta, { teachers: 'kernel', assign: f.assign, jointSensitivity: kernelTopAggSensitivity(p.k, f) });
    // Recorded before the votes are even counted.
    if (!charge(this.stepEvent(f), meta)) return undefined;
    const votes = t.topAggVotes(x, y, p, rng);
    const r = noisyAggregate(votes, f.numTeachers, f.queries, f.dim, p, rng);
    votes.fill(0);
    return { direction: r.direction, nonZero: r.nonZeroFraction };
  }
}

/** G-PATE's charging rule for GNMax. */
export type GpateCharge = 'worst-case' | 'answered-data-dependent';

/** G-PATE: random projection + Confident-GNMax per projected coordinate (spec §6). */
export class GpateAggregator implements VoteAggregator {
  readonly method = 'gpate';
  constructor(
    readonly params: GpateParams,
    /**
     * 'worst-case' (default): every coordinate pays the threshold test and GNMax, answered or
     * not — data-independent. 'answered-data-dependent' (neural teachers only; explicit opt-in):
     * GNMax only for the coordinates whose noisy threshold test passed — the number of answered
     * coordinates depends on the data, so the stopping point is a data-dependent odometer; the
     * ledger entries and the report label it so (issue 12 #9).
     */
    readonly charge: GpateCharge = 'worst-case',
  ) {}

  /**
   * Coordinates one record can influence in a step. Neural teachers: all B·p. Kernel teachers
   * (balanced labels, ≤ c = ⌈B/C⌉ queries per class): a teacher's votes on a class-a query depend
   * only on its class-a records, so replacing a record of class a by one of class b changes votes
   * on the class-a and class-b queries only — ≤ min(B, 2c)·p coordinates ('all'), ≤ 2p ('nearest').
   * The other coordinates' outputs have the same distribution on both datasets (zero Rényi
   * divergence), so the step's RDP is the sum over those coordinates only.
   */
  chargedCoords(f: VotingFacts): number {
    const coords = f.queries * this.params.projDim;
    if (f.kind !== 'kernel') return coords;
    const queries = f.assign === 'nearest' ? 2 : 2 * Math.ceil(f.queries / f.numClasses);
    return Math.min(f.queries, queries) * this.params.projDim;
  }

  /**
   * T = thresh·(voters a query can expect, a public number): N for neural teachers; for kernel
   * ones N/C under 'all' (the teachers holding the class) and N/B under 'nearest'.
   */
  thresholdVoters(f: VotingFacts): number {
    if (f.kind !== 'kernel') return f.numTeachers;
    return f.assign === 'nearest' ? f.numTeachers / f.queries : f.numTeachers / f.numClasses;
  }

  /** Worst case of one step: every influenceable coordinate pays the threshold test and is answered. */
  stepEvent(f: VotingFacts): DpEvent {
    return DpEvents.selfComposed(DpEvents.gnmax({ sigma: this.params.sigma2, thresholdSigma: this.params.sigma1, answered: true }), this.chargedCoords(f));
  }

  aggregate(t: VotingTeachers, x: Float32Array, y: Int32Array, f: VotingFacts, rng: GeneratorContext['random'], charge: ChargeFn): { direction: Float32Array; nonZero: number } | undefined {
    const p = this.params;
    const coords = f.queries * p.projDim;
    if (f.kind === 'kernel') {
      if (!charge(this.stepEvent(f), { part: 'threshold+gnmax', coordinates: coords, charged: this.chargedCoords(f), teachers: 'kernel' })) return undefined;
    } else {
      // Threshold tests for every coordinate, then GNMax: for every coordinate by default (the
      // data-independent worst case), or only the answered ones under the explicit option.
      if (!charge(DpEvents.selfComposed(DpEvents.gnmax({ sigma: p.sigma2, thresholdSigma: p.sigma1, answered: false }), coords), { part: 'threshold', coordinates: coords })) return undefined;
      if (this.charge === 'worst-case' && !charge(DpEvents.selfComposed(DpEvents.gnmax({ sigma: p.sigma2, answered: true }), coords), { part: 'gnmax', coordinates: coords, accounting: 'data-independent (every coordinate charged as answered)' })) return undefined;
    }
    const proj = drawProjections(f.queries, f.dim, p.projDim, rng);
    const hist = t.projectedHistograms(x, y, proj, p);
    const answered = thresholdStep(hist, this.thresholdVoters(f), p, rng);
    let nAnswered = 0;
    for (const a of answered) nAnswered += a;
    if (f.kind !== 'kernel' && this.charge === 'answered-data-dependent' && nAnswered > 0) {
      // Recorded before the argmax is drawn; a refusal stops the step with nothing applied.
      if (!charge(DpEvents.selfComposed(DpEvents.gnmax({ sigma: p.sigma2, answered: true }), nAnswered), { part: 'gnmax', coordinates: nAnswered, accounting: 'data-dependent (answered coordinates only; opt-in)' })) {
        hist.fill(0);
        return undefined;
      }
    }
    const r = argmaxStep(hist, answered, p, rng);
    hist.fill(0);
    return { direction: backProject(r, proj, f.queries, f.dim, p.projDim), nonZero: nAnswered / answered.length };
  }
}

export const GENERATOR_CHECKPOINT_FORMAT = 'dplens-generator-1';

/**
 * The voting GAN: one loop for every (teacher ensemble, aggregator) pair. Teachers are built on
 * the first fit() from the options (neural MLPs or kernel teachers); the aggregator is given.
 */
export class VotingGan implements DpGenerator {
  readonly method: string;
  readonly generator: ConditionalGenerator;
  /** Queries (generated samples) per generator step. */
  readonly B: number;
  /** Rows per teacher batch: min(batch flag, shard size). */
  readonly teacherBatch: number;
  readonly numTeachers: number;
  readonly dim: number;
  readonly numClasses: number;
  readonly facts: VotingFacts;
  protected teachers?: VotingTeachers;
  protected stepsDone = 0;
  private readonly genOpt: tf.Optimizer;
  private fingerprint?: string;

  constructor(
    protected readonly ctx: GeneratorContext,
    readonly opts: VotingGanOptions,
    readonly aggregator: VoteAggregator,
  ) {
    const { data, budget } = ctx;
    this.method = aggregator.method;
    if (!ctx.nonPrivate && (!(budget.epsilon > 0) || !Number.isFinite(budget.epsilon))) throw new RangeError(`epsilon must be a finite number > 0, got ${budget.epsilon}`);
    if (!(budget.delta > 0 && budget.delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${budget.delta}`);
    checkPositiveInt(opts.teachers.numTeachers, 'teachers');
    checkPositiveInt(opts.batchSize, 'batch size');
    checkPositiveInt(opts.dStep, 'd-step');
    if (data.channels !== 1) throw new RangeError(`${data.name}: DataLens/G-PATE here support single-channel images, got ${data.channels} channels`);
    if (data.train.count < opts.teachers.numTeachers) throw new RangeError(`${opts.teachers.numTeachers} teachers need at least as many training records; ${data.name} has ${data.train.count}`);
    if (opts.queryBatch !== undefined) checkPositiveInt(opts.queryBatch, 'query batch');
    this.facts = votingFacts(opts, { trainCount: data.train.count, numClasses: data.numClasses, height: data.height, width: data.width, channels: data.channels });
    this.numTeachers = this.facts.numTeachers;
    this.dim = this.facts.dim;
    this.numClasses = this.facts.numClasses;
    this.teacherBatch = Math.min(opts.batchSize, this.facts.shardSize);
    this.B = this.facts.queries;
    const seed = ctx.random.nextUint32();
    this.generator = new ConditionalGenerator({ ...opts.generator, numClasses: data.numClasses, height: data.height, width: data.width, bnGroup: this.B }, seed);
    this.genOpt = tf.train.adam(opts.generatorLr, opts.generatorBeta1, 0.999, 1e-8);
  }

  get steps(): number {
    return this.stepsDone;
  }

  /** The DP event of one generator step at its worst case. */
  stepEvent(): DpEvent {
    return this.aggregator.stepEvent(this.facts);
  }

  /**
   * Records one release through the ledger, the only budget gate. A ledger without a budget of its
   * own (a library caller that passed one in ctx only) is held to ctx.budget.
   */
  protected charge(event: DpEvent, meta: Record<string, unknown>): boolean {
    const { ledger, budget } = this.ctx;
    this.fingerprint ??= this.ctx.datasetFingerprint ?? keyedFingerprint(this.ctx.data.rawFingerprint);
    const input = { event, method: this.method, datasetFingerprint: this.fingerprint, meta: { step: this.stepsDone + 1, ...meta } };
    if (this.ctx.nonPrivate) {
      // An explicitly non-private run: one nonPrivate entry (ε = ∞) says it all; no budget to gate.
      if (!ledger.entries.some((e) => e.event.kind === 'nonPrivate')) ledger.record({ ...input, event: DpEvents.nonPrivate(`${this.method} run with --non-private (step event would be ${event.kind})`) });
      return true;
    }
    if (!ledger.header.budget && ledger.epsilonIf(event, budget.delta) > budget.epsilon) return false;
    return ledger.tryRecord(input).ok;
  }

  private buildTeachers(): VotingTeachers {
    const { data, random: rng } = this.ctx;
    const shards = assignShards(data.train.count, this.numTeachers, PUBLIC_SHARD_SEED);
    if (this.facts.kind === 'kernel') return new KernelVoters(new KernelTeacherEnsemble({ numTeachers: this.numTeachers, bandwidth: this.opts.kernelBandwidth ?? Number.POSITIVE_INFINITY, assign: this.opts.kernelAssign }, data, shards));
    return new NeuralVoters(new TeacherEnsemble({ ...this.opts.teachers, batchSize: this.teacherBatch }, data, shards, rng.nextUint32()), this.opts);
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
    const { budget, ledger, random: rng } = this.ctx;
    const t0 = Date.now();
    const B = this.B;
    const C = this.numClasses;
    this.teachers ??= this.buildTeachers();
    const teachers = this.teachers;
    let stoppedBy: StopReason = 'max-steps';
    let epoch = 0;
    let teacherSteps = 0;
    outer: for (;;) {
      for (let it = 0; it < teachers.itersPerEpoch; it++) {
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
        const zTeach = latent(rng, this.teacherBatch, this.opts.generator.zDim);
        // 1. Teachers: own shards vs. fakes conditioned on their own batch labels.
        const ta = Date.now();
        teachers.train(it, () => this.fakeTable(zTeach), teacherSteps === 0);
        teacherSteps++;
        // 2. Votes on a fresh generated batch (uniform labels, P8).
        const tb = Date.now();
        // The reference reuses the teachers' z for the generator step; with a different query
        // batch size a fresh draw is needed.
        const z = B === this.teacherBatch ? zTeach : latent(rng, B, this.opts.generator.zDim);
        const yLab = teachers.queryLabels(rng, B, C);
        const y = tf.oneHot(tf.tensor1d(yLab, 'int32'), C) as tf.Tensor2D;
        const x = this.generator.apply(z, y);
        // The aggregator records the step through the ledger (the only budget gate) before any
        // noised value exists; a refusal ends the fit with the step unapplied.
        const agg = this.aggregator.aggregate(teachers, x.dataSync() as Float32Array, yLab, this.facts, rng, (e, m) => this.charge(e, m));
        if (!agg) {
          tf.dispose([x, y, z, zTeach]);
          stoppedBy = 'budget';
          break outer;
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

  /** Writes the generator (never the teachers, P9); each file atomically, the index last, so a kill leaves the previous checkpoint. */
  async save(dir: string): Promise<void> {
    const snap = this.generator.snapshot();
    const values = snap.reduce((n, p) => n + p.values.length, 0);
    // nn/checkpoint: generator.bin then generator.json, each atomically
    writeCheckpoint(dir, GENERATOR_CHECKPOINT, { method: this.method, steps: this.stepsDone, values, config: this.generator.config }, snap.map((p) => ({ shape: p.shape, data: p.values, labels: { name: p.name } })));
  }

  async load(dir: string): Promise<void> {
    const { meta, params } = readGeneratorCheckpoint(dir);
    this.generator.restore(params);
    this.stepsDone = meta.steps;
  }

  dispose(): void {
    this.teachers?.dispose();
    this.teachers = undefined;
    this.generator.dispose();
    this.genOpt.dispose();
  }
}

interface CheckpointMeta {
  format: string;
  method: string;
  steps: number;
  config: ConstructorParameters<typeof ConditionalGenerator>[0];
}

const GENERATOR_CHECKPOINT: CheckpointLayout = { header: 'generator.json', blob: 'generator.bin', format: GENERATOR_CHECKPOINT_FORMAT, entriesKey: 'params', blobKey: 'weights' };

/** Header and named parameter tensors of a generator checkpoint, from one checked read of both files. */
function readGeneratorCheckpoint(dir: string): { meta: CheckpointMeta; params: { name: string; shape: number[]; values: Float32Array }[] } {
  const { header, tensors } = readCheckpoint(dir, GENERATOR_CHECKPOINT);
  return { meta: header as unknown as CheckpointMeta, params: tensors.map((t) => ({ name: String(t.entry.name), shape: t.entry.shape, values: t.data })) };
}

/** DataLens: the voting GAN with the TopAgg aggregator (kept as a class for callers and tests). */
export class DataLens extends VotingGan {
  constructor(
    ctx: GeneratorContext,
    opts: VotingGanOptions,
    readonly topagg: TopAggParams,
  ) {
    super(ctx, opts, new TopAggAggregator(topagg));
    validateTopAggParams(topagg, this.dim);
  }
  kernelStepSensitivity(): number {
    return kernelTopAggSensitivity(this.topagg.k, this.facts);
  }
}

/** G-PATE: the voting GAN with the Confident-GNMax aggregator. */
export class Gpate extends VotingGan {
  constructor(
    ctx: GeneratorContext,
    opts: VotingGanOptions,
    readonly params: GpateParams,
    charge: GpateCharge = 'worst-case',
  ) {
    validateGpateParams(params);
    if (charge === 'answered-data-dependent' && opts.teacherKind === 'kernel') throw new RangeError('G-PATE: the data-dependent GNMax charge applies to neural teachers only (kernel teachers are charged per influenceable coordinate)');
    super(ctx, opts, new GpateAggregator(params, charge));
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
    const { meta, params } = readGeneratorCheckpoint(dir);
    const g = new ConditionalGenerator(meta.config, 0);
    g.restore(params);
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
