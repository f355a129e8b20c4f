/**
 * Shared machinery of the mean-embedding generators (dp-merf.ts, dp-kernel.ts): a unit-norm random
 * Fourier feature map, the ONE Gaussian release of the per-class feature sums and counts, and a
 * conditional generator (ConditionalGenerator, tfjs on the engine) trained against the released
 * embedding. Everything after the release is post-processing.
 *
 * Feature map. K blocks; block b has F_b frequencies ω ~ N(0, ℓ_b⁻² I) (public randomness) on the
 * pixels in [0, 1] and weight w_b, Σ w_b² = 1:
 *   φ(x) = [ w_b/√F_b · cos(ω_{b,j}·x), w_b/√F_b · sin(ω_{b,j}·x) ]_{b, j},   ‖φ(x)‖ = 1 exactly,
 * so ⟨φ(x), φ(x')⟩ = Σ_b w_b² k̂_b(x, x') estimates a mixture of Gaussian kernels (Rahimi & Recht).
 *
 * Release. With ψ(x, y) = e_y ⊗ [φ(x)/√2, 1/√2] (unit norm), the released vector is
 *   r = Σ_i ψ(x_i, y_i) + N(0, σ² I),  length C·(D + 1), D = 2 Σ F_b,
 * i.e. per class c the feature sum and the record count, both scaled by 1/√2.
 * Sensitivity under replace-one (n public): replacing (x, y) by (x', y') changes r's mean by
 * ψ(x', y') − ψ(x, y). Both are unit vectors with ⟨ψ, ψ'⟩ ≥ 0: 0 when y ≠ y' (disjoint blocks), and
 * (⟨φ(x), φ(x')⟩ + 1)/2 ≥ 0 when y = y' (Cauchy–Schwarz: ⟨φ, φ'⟩ ≥ −1). Hence
 *   ‖ψ' − ψ‖² = 2 − 2⟨ψ, ψ'⟩ ≤ 2,   Δ₂ = √2
 * (the plain 2·max‖φ ⊗ y‖ bound would give 2; the count coordinate costs nothing extra and makes the
 * class sizes part of the same release). σ = z·√2 with z the smallest noise multiplier the RDP
 * accountant allows for one Gaussian release at (ε, δ). Property-tested in
 * test/generate-dp-merf.test.ts with one record and its class changed.
 *
 * Training target per class c: t_c = (noisy feature sum)/(noisy count) (post-processing). Loss per
 * step: Σ_c ‖t_c − mean_{i: y_i = c} φ(G(z_i, c))‖², balanced labels (public), Adam.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { writeCheckpoint, type CheckpointLayout } from '../nn/checkpoint.js';
import { classMeanNoiseMultiplier } from './class-mean.js';
import { ConditionalGenerator, type GeneratorConfig } from './generator.js';
import { balancedLabels, GENERATOR_CHECKPOINT_FORMAT, SavedGenerator } from './voting-gan.js';
import type { GeneratorLimits } from './plugin.js';
import type { DpGenerator, FitResult, GaussianReleaseMechanism, GeneratorContext, GeneratorProgress, SampleSet } from './types.js';
import { addGaussianNoise as addReleaseNoise } from './gaussian-release.js';
import { fitDeadline } from './step-gate.js';

/** Sensitivity Δ₂ of the release under replace-one (see the header). */
export const EMBEDDING_SENSITIVITY = Math.SQRT2;

export interface FeatureBlock {
  /** Gaussian kernel length scale ℓ (pixels in [0, 1]). */
  bandwidth: number;
  /** Frequencies F (2F features). */
  frequencies: number;
  /** Weight w (normalised so Σ w² = 1). */
  weight: number;
}

/** The public random feature map: frequency matrix [d, F] (already divided by ℓ_b) and per-column scale. */
export class RffMap {
  readonly dim: number;
  readonly frequencies: number;
  /** ω / ℓ, [d, F] row-major. */
  readonly omega: Float32Array;
  /** w_b / √F_b per frequency column. */
  readonly scale: Float32Array;

  constructor(dim: number, blocks: readonly FeatureBlock[], rng: RandomSource) {
    if (blocks.length === 0) throw new RangeError('feature map: at least one block');
    const wsum = Math.sqrt(blocks.reduce((s, b) => s + b.weight * b.weight, 0));
    if (!(wsum > 0)) throw new RangeError('feature map: block weights must not all be 0');
    this.dim = dim;
    this.frequencies = blocks.reduce((s, b) => s + b.frequencies, 0);
    const F = this.frequencies;
    this.omega = new Float32Array(dim * F);
    this.scale = new Float32Array(F);
    const col = new Float32Array(dim);
    let j = 0;
    for (const b of blocks) {
      if (!(b.bandwidth > 0) || !Number.isInteger(b.frequencies) || b.frequencies < 1) throw new RangeError(`feature map: bad block ${JSON.stringify(b)}`);
      for (let f = 0; f < b.frequencies; f++, j++) {
        rng.normal(col, 1 / b.bandwidth);
        for (let t = 0; t < dim; t++) this.omega[t * F + j] = col[t]!;
        this.scale[j] = b.weight / wsum / Math.sqrt(b.frequencies);
      }
    }
  }

  /** Features D = 2F. */
  get features(): number {
    return 2 * this.frequencies;
  }

  /** φ(x) for x [M, d] (differentiable): [M, 2F]. */
  apply(x: tf.Tensor2D, omega: tf.Tensor2D, scale: tf.Tensor1D): tf.Tensor2D {
    const p = tf.matMul(x, omega);
    return tf.concat([tf.mul(tf.cos(p), scale), tf.mul(tf.sin(p), scale)], 1) as tf.Tensor2D;
  }
}

/**
 * The pre-noise statistic: per class c, [Σ_{y_i = c} φ(x_i)/√2, n_c/√2] — length C·(D + 1).
 * Pure function of the records (used by the release and by the sensitivity test).
 */
export function embeddingSums(images: Uint8Array, labels: Int32Array, count: number, numClasses: number, map: RffMap, chunk = 1000): Float64Array {
  const d = map.dim;
  const D = map.features;
  const out = new Float64Array(numClasses * (D + 1));
  const omega = tf.tensor2d(map.omega, [d, map.frequencies]);
  const scale = tf.tensor1d(map.scale);
  try {
    for (let s = 0; s < count; s += chunk) {
      const m = Math.min(chunk, count - s);
      const px = new Float32Array(m * d);
      for (let i = 0; i < m * d; i++) px[i] = images[s * d + i]! / 255;
      const lab = labels.subarray(s, s + m);
      const sums = tf.tidy(() => {
        const phi = map.apply(tf.tensor2d(px, [m, d]), omega, scale);
        const oh = tf.oneHot(tf.tensor1d(Int32Array.from(lab), 'int32'), numClasses);
        return tf.matMul(tf.cast(oh, 'float32'), phi, true); // [C, D]
      });
      const v = sums.dataSync();
      sums.dispose();
      px.fill(0);
      for (let c = 0; c < numClasses; c++) for (let k = 0; k < D; k++) out[c * (D + 1) + k]! += v[c * D + k]! / Math.SQRT2;
      for (const y of lab) {
        if (!(y >= 0 && y < numClasses)) throw new RangeError(`label ${y} out of range [0, ${numClasses})`);
        out[y * (D + 1) + D]! += 1 / Math.SQRT2;
      }
    }
  } finally {
    omega.dispose();
    scale.dispose();
  }
  return out;
}


/** σ of the one release at (ε, δ): z·Δ₂ with z from the RDP accountant; 0 for a non-private run. */
export function releaseSigma(budget: { epsilon: number; delta: number } | null): number {
  if (budget === null || !Number.isFinite(budget.epsilon)) return 0;
  return classMeanNoiseMultiplier(1, budget.epsilon, budget.delta) * EMBEDDING_SENSITIVITY;
}

export type { GaussianReleaseMechanism } from './types.js';

/**
 * The MeanEmbeddingHyper of a plugin: its feature blocks and mlp widths, plus the generator settings
 * every mean-embedding plugin shares (dp-merf, dp-kernel).
 */
export function meanEmbeddingHyper(blocks: FeatureBlock[], hidden: number[], h: Pick<MeanEmbeddingHyper, 'arch' | 'zDim' | 'perClass' | 'iterations' | 'lr' | 'augment'> & { timeCap?: number }): MeanEmbeddingHyper {
  return { blocks, arch: h.arch, hidden, fc: 256, channels: 32, zDim: h.zDim, perClass: h.perClass, iterations: h.iterations, lr: h.lr, lrEnd: 0.1, labelGain: 1, outputBias: -2, augment: h.augment, timeCap: h.timeCap ?? 0 };
}

export interface MeanEmbeddingHyper {
  /** Feature blocks, encoded as hyper-parameters by the plugins. */
  blocks: FeatureBlock[];
  arch: 'mlp' | 'dcgan';
  /** mlp hidden widths. */
  hidden: number[];
  /** dcgan fc width / channels. */
  fc: number;
  channels: number;
  zDim: number;
  /** Generated samples per class per step. */
  perClass: number;
  iterations: number;
  lr: number;
  /** Multiply lr by this over the run (linear decay to lr·lrEnd). */
  lrEnd: number;
  labelGain: number;
  outputBias: number;
  augment: 'none' | 'affine';
  /**
   * Minutes after which generator training stops when --max-minutes is not given (0 = none). The
   * steps after the one release are post-processing, so stopping early costs no ε; it only bounds
   * the wall time of a default run on a loaded machine (issue 14: every default preset ≤ 30 min).
   */
  timeCap: number;
}

export function mechanismFor(method: string, blocks: readonly FeatureBlock[], numClasses: number, budget: { epsilon: number; delta: number } | null): GaussianReleaseMechanism {
  const F = blocks.reduce((s, b) => s + b.frequencies, 0);
  const sigma = releaseSigma(budget);
  return {
    method,
    dim: numClasses * (2 * F + 1),
    releases: 1,
    sigma,
    l2Sensitivity: EMBEDDING_SENSITIVITY,
    event: sigma > 0 ? DpEvents.gaussianWithSensitivity(sigma, EMBEDDING_SENSITIVITY) : DpEvents.nonPrivate(`${method} run with --non-private (σ = 0)`),
    addNoise: (r, rng) => addReleaseNoise(r, sigma, rng),
  };
}

const CHECKPOINT: CheckpointLayout = { header: 'generator.json', blob: 'generator.bin', format: GENERATOR_CHECKPOINT_FORMAT, entriesKey: 'params', blobKey: 'weights' };

function uniformLatent(rng: RandomSource, n: number, zDim: number): tf.Tensor2D {
  const u = new Float32Array(n * zDim);
  rng.uniform(u);
  for (let i = 0; i < u.length; i++) u[i] = 2 * u[i]! - 1;
  return tf.tensor2d(u, [n, zDim]);
}

/** One release of the mean embedding, then a generator trained against it (post-processing). */
export class MeanEmbeddingGenerator implements DpGenerator {
  readonly generator: ConditionalGenerator;
  private iters = 0;
  /** Set by fit(): the per-class target t_c (post-processing of the release). */
  private target?: Float32Array;

  constructor(
    readonly method: string,
    private readonly ctx: GeneratorContext,
    private readonly h: MeanEmbeddingHyper,
    private readonly limits: GeneratorLimits,
  ) {
    const { data } = ctx;
    if (data.channels !== 1) throw new RangeError(`${data.name}: ${method} supports single-channel images, got ${data.channels} channels`);
    if (!ctx.nonPrivate && (!(ctx.budget.epsilon > 0) || !Number.isFinite(ctx.budget.epsilon))) throw new RangeError(`epsilon must be a finite number > 0, got ${ctx.budget.epsilon}`);
    const C = data.numClasses;
    const cfg: GeneratorConfig = { arch: h.arch, zDim: h.zDim, numClasses: C, height: data.height, width: data.width, fc: h.fc, channels: h.channels, hidden: h.hidden, bnGroup: C * h.perClass, labelGain: h.labelGain, outputBias: h.outputBias };
    this.generator = new ConditionalGenerator(cfg, ctx.random.nextUint32());
  }

  get steps(): number {
    return this.iters;
  }

  mechanism(): GaussianReleaseMechanism {
    return mechanismFor(this.method, this.h.blocks, this.ctx.data.numClasses, this.ctx.nonPrivate ? null : this.ctx.budget);
  }

  stepEvent(): DpEvent {
    return this.mechanism().event;
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const C = data.numClasses;
    const d = data.height * data.width;
    const map = new RffMap(d, this.h.blocks, rng);
    const D = map.features;
    const mech = this.mechanism();
    const fingerprint = this.ctx.datasetFingerprint ?? keyedFingerprint(data.rawFingerprint);
    const meta = { release: 'per-class random-feature sums and counts (one Gaussian release)', features: D, classes: C, sigma: mech.sigma, l2Sensitivity: EMBEDDING_SENSITIVITY, relation: 'replace-one' };
    // Recorded BEFORE the statistic is computed; the ledger is the only budget gate.
    const ok = ledger.tryRecord({ event: mech.event, method: this.method, datasetFingerprint: fingerprint, meta });
    if (!ok.ok) return { steps: 0, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy: 'budget', seconds: (Date.now() - t0) / 1000 };
    const r = embeddingSums(data.train.images, data.train.labels, data.train.count, C, map);
    mech.addNoise(r, rng);
    // Post-processing of the release only from here on.
    const target = new Float32Array(C * D);
    for (let c = 0; c < C; c++) {
      const cnt = Math.max(r[c * (D + 1) + D]!, 1 / Math.SQRT2);
      for (let k = 0; k < D; k++) target[c * D + k] = r[c * (D + 1) + k]! / cnt;
    }
    this.target = target;
    await this.train(map, target, t0, o);
    return { steps: this.iters, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy: o.signal?.aborted ? 'aborted' : this.stopReason, seconds: (Date.now() - t0) / 1000 };
  }

  private stopReason: FitResult['stoppedBy'] = 'max-steps';

  private async train(map: RffMap, target: Float32Array, t0: number, o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal }): Promise<void> {
    const { data, ledger, budget, random: rng } = this.ctx;
    const C = data.numClasses;
    const h = this.h;
    const B = C * h.perClass;
    const T = tf.tensor2d(target, [C, map.features]);
    const omega = tf.tensor2d(map.omega, [map.dim, map.frequencies]);
    const scale = tf.tensor1d(map.scale);
    const opt = tf.train.adam(h.lr, 0.5, 0.999, 1e-8);
    // tfjs reads the learning rate field at every step: a linear decay without a new optimiser
    const setLr = (v: number) => ((opt as unknown as { learningRate: number }).learningRate = v);
    const vars = [...this.generator.vars.values()];
    const total = Math.min(h.iterations, this.limits.maxSteps);
    // --max-minutes, else the preset's time cap (measured from the start of fit(): release included)
    const deadline = fitDeadline(t0, this.limits, h.timeCap);
    this.stopReason = 'max-steps';
    try {
      let last = NaN;
      for (let it = 0; it < total; it++) {
        if (o.signal?.aborted) break;
        // at least one step: the release is already spent, and a run with no step has nothing to sample
        if (it > 0 && Date.now() > deadline) {
          this.stopReason = 'max-minutes';
          break;
        }
        setLr(h.lr * (1 - (1 - h.lrEnd) * (it / Math.max(1, total - 1))));
        const lab = balancedLabels(rng, B, C);
        const loss: tf.Scalar | null = tf.tidy(() => {
          const z = uniformLatent(rng, B, h.zDim);
          const oh = tf.oneHot(tf.tensor1d(lab, 'int32'), C) as tf.Tensor2D;
          const ohf = tf.cast(oh, 'float32') as tf.Tensor2D;
          const avg = tf.mul(ohf, C / B) as tf.Tensor2D;
          return opt.minimize(() => {
            const phi = map.apply(this.generator.apply(z, ohf), omega, scale);
            return tf.sum(tf.square(tf.sub(T, tf.matMul(avg, phi, true)))) as tf.Scalar;
          }, true, vars) ?? tf.scalar(NaN);
        });
        this.iters = it + 1;
        if (loss && (it % 25 === 0 || it === total - 1)) {
          last = (await loss.data())[0]!;
          o.onProgress?.({ step: this.iters, epoch: 0, epsilon: ledger.spent(budget.delta), generatorLoss: last, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: 0 } });
          await new Promise((res) => setImmediate(res));
        }
        loss?.dispose();
      }
    } finally {
      T.dispose();
      omega.dispose();
      scale.dispose();
      opt.dispose();
    }
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
    const C = this.ctx.data.numClasses;
    const d = this.ctx.data.height * this.ctx.data.width;
    const lab = labels ?? balancedLabels(this.ctx.random, n, C);
    const B = this.generator.config.bnGroup;
    const chunk = B * Math.max(1, Math.floor(2048 / B));
    const images = new Uint8Array(n * d);
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const px = tf.tidy(() => tf.round(tf.mul(this.generator.apply(uniformLatent(this.ctx.random, m, this.generator.config.zDim), tf.oneHot(tf.tensor1d(lab.subarray(s, s + m), 'int32'), C) as tf.Tensor2D), 255)));
      const v = await px.data();
      px.dispose();
      for (let i = 0; i < v.length; i++) images[s * d + i] = Math.max(0, Math.min(255, v[i]!));
    }
    return { images, labels: Int32Array.from(lab), count: n, height: this.ctx.data.height, width: this.ctx.data.width, channels: 1 };
  }

  async save(dir: string): Promise<void> {
    const snap = this.generator.snapshot();
    const values = snap.reduce((n, p) => n + p.values.length, 0);
    writeCheckpoint(dir, CHECKPOINT, { method: this.method, steps: this.iters, values, config: this.generator.config }, snap.map((p) => ({ shape: p.shape, data: p.values, labels: { name: p.name } })));
  }

  async load(dir: string): Promise<void> {
    const g = SavedGenerator.load(dir);
    try {
      this.generator.restore(g.generator.snapshot());
      this.iters = g.steps;
    } finally {
      g.dispose();
    }
  }

  /** The released target (post-processing), for tests. */
  releasedTarget(): Float32Array | undefined {
    return this.target;
  }

  dispose(): void {
    this.generator.dispose();
  }
}
