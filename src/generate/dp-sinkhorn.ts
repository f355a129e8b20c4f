/**
 * dp-sinkhorn: DP-Sinkhorn (Cao, Bie, Vahdat, Fidler & Kreis, NeurIPS 2021, "Don't Generate Me:
 * Training Differentially Private Generative Models with Sinkhorn Divergence"; authors' code
 * nv-tlabs/DP-Sinkhorn_code, sinkhorn_poisson.py and src/rdp/privacy.py).
 *
 * Method. A class-conditional generator G(z, y) is trained to minimise an entropic-OT (Sinkhorn)
 * loss between a generated batch X (B_g samples, balanced public labels) and a Poisson-sampled real
 * batch Y, on joint samples (image ⧺ L·onehot(label)) with the cost ‖x − y‖² + w‖x − y‖₁ (the
 * paper's "l1+l2" cost for MNIST, w its mixture fraction m; L = 15 its embed multiplier, so mass
 * stays within a class). Bias-variance technique (paper §3.3, code `--debias_ratio`): the loss is
 *   L = 2·OT_ε(X, Y) − OT_ε(X, X̃),   X̃ = X[λB_g:] ⧺ X',
 * where X' are λB_g fresh generated samples (same labels as X[:λB_g]): λ = 0 is the biased
 * (same-sample) self term, λ = 1 a fully independent one; the paper uses λ = 0.2.
 *
 * Privacy. The generator's only contact with the private data is ∂L/∂X, the gradient with respect
 * to the generated images (the transport plan's pull, Σ_j π_ij ∇c(x_i, y_j), sinkhorn.ts). Each
 * step releases
 *   R(S) = clip_C(∂L/∂X) + N(0, σ²I),  σ = z·2C,
 * where S is the Poisson sample (each record w.p. q = B/n) and clip_C scales the whole B_g×d
 * matrix to L2 norm ≤ C (the paper's sanitize_img_grads_hook). Sensitivity (add/remove, the
 * paper's argument): for any batch S and record x, both clip_C(∂L/∂X)(S) and (S ∪ {x}) have norm
 * ≤ C, so they differ by ≤ 2C — no per-record decomposition is needed (the plan couples all real
 * samples, so none exists). X, X' and the labels are drawn from public randomness before S is
 * used. Each step is therefore the Poisson-subsampled Gaussian mechanism
 * DpEvents.poissonSampled(q, gaussianWithSensitivity(2Cz, 2C)) under add/remove, priced by the
 * RDP accountant; z is calibrated so the planned steps spend ε. Each step is recorded with
 * ledger.tryRecord BEFORE S is drawn; a refusal stops the run. The gradient w.r.t. X' is clipped
 * to C (as the paper) and is data-independent. Everything after the release (the backward pass
 * through G, Adam, sampling, the written images) is post-processing.
 *
 * What differs from the paper and why.
 * - The generated batch has a fixed public size B_g; the paper's code generates as many samples as
 *   the Poisson batch holds, so the shape of its release reveals |S| (not covered by its analysis).
 *   An empty S contributes a zero cross term.
 * - Far fewer steps (the paper: lr 1e-5 for up to hundreds of epochs on a GPU; here ≤ 30 minutes
 *   on 2 CPU cores), hence a larger learning rate and batch sizes chosen so z stays ≈ 1 for the
 *   steps that fit (presets below; tuned on MNIST, a public setting).
 * - An MLP / small DCGAN generator from generator.ts instead of the paper's conv_cond network;
 *   optional affine augmentation of the written samples (public prior, post-processing).
 * - Sinkhorn: our log-domain solver with ε-scaling run to convergence (the paper uses geomloss's
 *   tensorized ε-scaling); same value and envelope gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import { calibrateNoise, DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { addGaussianNoise as addStepNoise, pixelRows, poissonGaussianAuditMechanism, poissonSubsample } from './gaussian-release.js';
import { fitDeadline, StepReleaseGate } from './step-gate.js';

export { poissonSubsample };
import { writeCheckpoint } from '../nn/checkpoint.js';
import { ConditionalGenerator, type GeneratorArch } from './generator.js';
import { balancedLabels, GENERATOR_CHECKPOINT_FORMAT, SavedGenerator, smoothImages } from './voting-gan.js';
import { accumulateOtGradient, pairwiseCost, sinkhorn, type CostSpec } from './sinkhorn.js';
import type { GeneratorLimits, GeneratorPlugin, SavedSampler } from './plugin.js';
import type { GaussianReleaseMechanism } from './types.js';
import type { DpGenerator, FitResult, GeneratorContext, GeneratorProgress, SampleSet } from './types.js';

export interface DpSinkhornHyper {
  /** Generator steps T (each one release); z is calibrated so T steps spend ε. */
  steps: number;
  /** Expected real batch size B (Poisson sampling rate q = B/n). */
  batch: number;
  /** Generated samples per step B_g (public). */
  genBatch: number;
  /** Clip bound C of ∂L/∂X (whole matrix; sensitivity 2C). */
  clip: number;
  /** Noise multiplier z (σ = 2Cz); 0 = calibrate to the budget. */
  noise: number;
  /** λ: fraction of fresh samples in the self term (0 = biased, 1 = independent). */
  debiasRatio: number;
  /** Entropic regularisation ε of the Sinkhorn loss. */
  sinkhornEps: number;
  /** Sinkhorn iterations at the target ε after ε-scaling (at most; stops at marginal error 1e-4). */
  sinkhornIters: number;
  cost: 'l2' | 'l1+l2';
  /** w of the L1 term in 'l1+l2'. */
  l1Weight: number;
  /** L: scale of the one-hot label appended to each sample. */
  labelScale: number;
  lr: number;
  beta1: number;
  arch: GeneratorArch;
  zDim: number;
  /** Learning rate decays linearly to lr·lrFinal over the run (1 = constant). */
  lrFinal: number;
  /**
   * Gaussian blur std (pixels) applied to the released noisy gradient of each generated image
   * before the backward pass (post-processing, no privacy cost; 0 = off): the transport pull is
   * spatially smooth, the noise white, so this raises the per-step signal-to-noise ratio.
   */
  smoothGradient: number;
  /** Minutes after which fit() stops when --max-minutes is not given (0 = none): the default presets stay ≤ 30 min. */
  timeCap: number;
  augment: 'none' | 'affine';
}

const METHOD = 'dp-sinkhorn';

/** The noise multiplier z such that `steps` Poisson-subsampled Gaussian releases (rate q) spend ≤ ε at δ. */
export function dpSinkhornNoiseMultiplier(q: number, steps: number, epsilon: number, delta: number): number {
  return calibrateNoise({ targetEpsilon: epsilon, delta, sampleRate: q, steps, epsilonTolerance: 0.005 }).noiseMultiplier;
}

export interface SinkhornStepInput {
  /** Generated images X [B_g×d] in [0, 1] and labels. */
  x: Float32Array;
  xLabels: Int32Array;
  /** Fresh generated images X' [m×d] (m = round(λ·B_g)); labels are xLabels[0..m). */
  xFresh: Float32Array;
  /** Real batch [|S|×d] in [0, 1] and labels (may be empty). */
  real: Float32Array;
  realLabels: Int32Array;
  d: number;
  cost: CostSpec;
  sinkhornEps: number;
  /** Sinkhorn iterations at the target ε after ε-scaling (geomloss-style: a few, not to convergence). */
  sinkhornIters?: number;
}

/**
 * ∂L/∂X and ∂L/∂X' of L = 2·OT_ε(X, Y) − OT_ε(X, X[m:] ⧺ X') (before clipping), and the loss.
 * The pre-noise statistic of a step is clip_C of the first.
 */
export function sinkhornLossGradient(s: SinkhornStepInput): { gx: Float64Array; gFresh: Float64Array; loss: number } {
  const { x, xLabels, xFresh, real, realLabels, d, cost } = s;
  const B = xLabels.length;
  const m = xFresh.length / d;
  const nReal = realLabels.length;
  const gx = new Float64Array(B * d);
  const gFresh = new Float64Array(m * d);
  let loss = 0;
  if (nReal > 0) {
    const C = pairwiseCost(x, xLabels, B, real, realLabels, nReal, d, cost);
    const r = sinkhorn(C, B, nReal, { epsilon: s.sinkhornEps, maxIter: s.sinkhornIters ?? 100, tol: 1e-4 });
    accumulateOtGradient(r.plan, x, B, real, nReal, d, cost, 2, gx);
    loss += 2 * r.value;
  }
  // X̃ = X[m:] ⧺ X' (labels xLabels[m:] ⧺ xLabels[:m]); its gradient goes to X rows m.. and to X'
  const xt = new Float32Array(B * d);
  xt.set(x.subarray(m * d));
  xt.set(xFresh, (B - m) * d);
  const lt = new Int32Array(B);
  lt.set(xLabels.subarray(m));
  lt.set(xLabels.subarray(0, m), B - m);
  const C2 = pairwiseCost(x, xLabels, B, xt, lt, B, d, cost);
  const r2 = sinkhorn(C2, B, B, { epsilon: s.sinkhornEps, maxIter: s.sinkhornIters ?? 100, tol: 1e-4 });
  const gt = new Float64Array(B * d);
  accumulateOtGradient(r2.plan, x, B, xt, B, d, cost, -1, gx, gt);
  loss -= r2.value;
  for (let k = 0; k < (B - m) * d; k++) gx[m * d + k]! += gt[k]!;
  gFresh.set(gt.subarray((B - m) * d));
  return { gx, gFresh, loss };
}


/** Coordinates of one release the mechanism audit replays (coordinates are i.i.d.; ≥ the default 1000 canaries). */
const AUDIT_COORDINATES = 1000;

/**
 * The run's release for the mechanism audit (src/audit/gaussian-release-audit.ts), from its
 * hyper-parameters and public facts only: steps releases of σ = 2Cz noise, sensitivity 2C, each
 * record in a step's batch w.p. q. The replay gives canary j the value +Δ/2 (in) or −Δ/2 (out) on
 * its coordinate; addNoise maps that to the add/remove pair this mechanism is charged for — "in"
 * contributes Δ when the run's own Poisson sampler (poissonSubsample) puts it in the step's batch,
 * "out" contributes nothing — then adds the run's own noise (addStepNoise).
 */
export function dpSinkhornMechanism(h: DpSinkhornHyper, facts: { trainCount: number; epsilon: number | null; delta: number; steps?: number }): GaussianReleaseMechanism {
  const q = h.batch / facts.trainCount;
  const nonPrivate = facts.epsilon === null;
  const z = nonPrivate || h.noise > 0 ? h.noise : dpSinkhornNoiseMultiplier(q, h.steps, facts.epsilon!, facts.delta);
  const sensitivity = 2 * h.clip;
  const sigma = sensitivity * z;
  return poissonGaussianAuditMechanism({ method: METHOD, dim: AUDIT_COORDINATES, q, sigma, sensitivity: sensitivity, releases: facts.steps ?? h.steps, event: nonPrivate ? DpEvents.nonPrivate(`dp-sinkhorn run with --non-private (noise multiplier ${z})`) : DpEvents.poissonSampled(q, DpEvents.gaussianWithSensitivity(sigma, sensitivity)) });
}

/** Scales v in place to L2 norm ≤ c; returns the norm before clipping. */
export function clipL2(v: Float64Array, c: number): number {
  let s = 0;
  for (let k = 0; k < v.length; k++) s += v[k]! * v[k]!;
  const norm = Math.sqrt(s);
  if (norm > c) {
    const f = c / norm;
    for (let k = 0; k < v.length; k++) v[k]! *= f;
  }
  return norm;
}

class DpSinkhornGenerator implements DpGenerator {
  readonly method = METHOD;
  readonly generator: ConditionalGenerator;
  private readonly opt: tf.AdamOptimizer;
  private stepsDone = 0;
  private readonly fresh: number;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly h: DpSinkhornHyper,
    private readonly limits: GeneratorLimits,
  ) {
    const { data } = ctx;
    if (data.channels !== 1) throw new RangeError(`${data.name}: dp-sinkhorn supports single-channel images, got ${data.channels} channels`);
    if (!ctx.nonPrivate && !(Number.isFinite(ctx.budget.epsilon) && ctx.budget.epsilon > 0)) throw new RangeError(`dp-sinkhorn: epsilon must be a finite number > 0, got ${ctx.budget.epsilon}`);
    if (h.batch > data.train.count) throw new RangeError(`dp-sinkhorn: --batch ${h.batch} exceeds the ${data.train.count} training records`);
    this.fresh = Math.round(h.debiasRatio * h.genBatch);
    const seed = ctx.random.nextUint32();
    this.generator = new ConditionalGenerator(
      { arch: h.arch, zDim: h.zDim, numClasses: data.numClasses, height: data.height, width: data.width, fc: 256, channels: 32, hidden: [256, 512], bnGroup: h.genBatch + this.fresh, labelGain: 4, outputBias: -2 },
      seed,
    );
    this.opt = tf.train.adam(h.lr, h.beta1, 0.999, 1e-8);
  }

  get steps(): number {
    return this.stepsDone;
  }

  private sampleRate(): number {
    return this.h.batch / this.ctx.data.train.count;
  }

  /** z: the hyper-parameter, or calibrated so `steps` releases spend the budget (0 for a non-private run). */
  noiseMultiplier(): number {
    if (this.ctx.nonPrivate) return this.h.noise;
    if (this.h.noise > 0) return this.h.noise;
    return dpSinkhornNoiseMultiplier(this.sampleRate(), this.h.steps, this.ctx.budget.epsilon, this.ctx.budget.delta);
  }

  stepEvent(): DpEvent {
    const z = this.noiseMultiplier();
    if (this.ctx.nonPrivate) return DpEvents.nonPrivate(`dp-sinkhorn with noise multiplier ${z} (--non-private)`);
    return DpEvents.poissonSampled(this.sampleRate(), DpEvents.gaussianWithSensitivity(2 * this.h.clip * z, 2 * this.h.clip));
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const { numClasses: C, height: H, width: W } = data;
    const d = H * W;
    const n = data.train.count;
    const h = this.h;
    const q = this.sampleRate();
    const z = this.noiseMultiplier();
    const sigma = 2 * h.clip * z;
    const event = this.stepEvent();
    const cost: CostSpec = { kind: h.cost, l1Weight: h.l1Weight, labelScale: h.labelScale };
    const Bg = h.genBatch;
    const m = this.fresh;
    const maxSteps = Math.min(h.steps, this.limits.maxSteps);
    // --max-minutes, else the preset's time cap (the plan's T may not fit a loaded machine)
    const gate = new StepReleaseGate(this.ctx, { method: METHOD, event, deadline: fitDeadline(t0, this.limits, h.timeCap), signal: o.signal });
    const vars = [...this.generator.vars.values()];
    let stoppedBy: FitResult['stoppedBy'] = 'max-steps';
    let loss = NaN;
    while (this.stepsDone < maxSteps) {
      const stop = gate.stopBefore(this.stepsDone);
      if (stop) {
        stoppedBy = stop;
        break;
      }
      const ts = Date.now();
      // public randomness first: latent codes and balanced labels of X and X'
      const labels = balancedLabels(rng, Bg, C);
      const allLabels = new Int32Array(Bg + m);
      allLabels.set(labels);
      allLabels.set(labels.subarray(0, m), Bg);
      const zs = new Float32Array((Bg + m) * h.zDim);
      rng.uniform(zs);
      for (let k = 0; k < zs.length; k++) zs[k] = 2 * zs[k]! - 1;
      const zT = tf.tensor2d(zs, [Bg + m, h.zDim]);
      const yT = tf.tidy(() => tf.oneHot(tf.tensor1d(allLabels, 'int32'), C) as tf.Tensor2D);
      const gen = tf.tidy(() => this.generator.apply(zT, yT, Bg + m));
      const xs = gen.dataSync() as Float32Array;
      gen.dispose();
      // The release is recorded before any record is read; the ledger is the only budget gate.
      if (!gate.charge(this.stepsDone + 1, { release: 'clip_C(∂L/∂X) + N(0, σ²I) of the Sinkhorn loss, Poisson-sampled real batch', samplingRate: q, clip: h.clip, sigma, noiseMultiplier: z, genBatch: Bg })) {
        zT.dispose();
        yT.dispose();
        stoppedBy = 'budget';
        break;
      }
      // private: the Poisson sample and its gradient statistic
      const idx = poissonSubsample(n, q, rng);
      const real = pixelRows(data.train.images, idx, d);
      const realLabels = Int32Array.from(idx, (i) => data.train.labels[i]!);
      const r = sinkhornLossGradient({ x: xs.subarray(0, Bg * d), xLabels: labels, xFresh: xs.subarray(Bg * d), real, realLabels, d, cost, sinkhornEps: h.sinkhornEps, sinkhornIters: h.sinkhornIters });
      real.fill(0);
      clipL2(r.gx, h.clip);
      addStepNoise(r.gx, sigma, rng);
      // post-processing of the release (and of the data-independent X' gradient, clipped as the paper)
      clipL2(r.gFresh, h.clip);
      loss = r.loss;
      const cot = new Float32Array((Bg + m) * d);
      for (let k = 0; k < Bg * d; k++) cot[k] = r.gx[k]!;
      if (h.smoothGradient > 0) cot.set(smoothImages(cot.subarray(0, Bg * d), Bg, H, W, h.smoothGradient));
      for (let k = 0; k < m * d; k++) cot[Bg * d + k] = r.gFresh[k]!;
      const frac = maxSteps > 1 ? this.stepsDone / (maxSteps - 1) : 0;
      // linear decay (tfjs Adam reads learningRate at every step; the field is protected in its typings)
      (this.opt as unknown as { learningRate: number }).learningRate = h.lr * (1 - frac * (1 - h.lrFinal));
      tf.tidy(() => {
        const cotT = tf.tensor2d(cot, [Bg + m, d]);
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(this.generator.apply(zT, yT, Bg + m), cotT)) as tf.Scalar, vars);
        this.opt.applyGradients(grads as tf.NamedTensorMap as Parameters<tf.AdamOptimizer['applyGradients']>[0]);
      });
      zT.dispose();
      yT.dispose();
      this.stepsDone++;
      o.onProgress?.({ step: this.stepsDone, epoch: this.stepsDone * q, epsilon: ledger.spent(budget.delta), generatorLoss: NaN, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: Date.now() - ts } });
      if (this.stepsDone % 20 === 0) await new Promise((res) => setImmediate(res));
    }
    void loss; // the loss depends on the private batch: never reported (P9)
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    const g = this.generator;
    const c = g.config;
    const lab = labels ?? balancedLabels(this.ctx.random, n, c.numClasses);
    return sampleGenerator(g, n, lab, this.ctx.random);
  }

  async save(dir: string): Promise<void> {
    const snap = this.generator.snapshot();
    const values = snap.reduce((s, p) => s + p.values.length, 0);
    writeCheckpoint(dir, { header: 'generator.json', blob: 'generator.bin', format: GENERATOR_CHECKPOINT_FORMAT, entriesKey: 'params', blobKey: 'weights' }, { method: METHOD, steps: this.stepsDone, values, config: this.generator.config }, snap.map((p) => ({ shape: p.shape, data: p.values, labels: { name: p.name } })));
  }

  async load(dir: string): Promise<void> {
    const s = SavedGenerator.load(dir);
    this.generator.restore(s.generator.snapshot());
    this.stepsDone = s.steps;
    s.dispose();
  }

  dispose(): void {
    this.generator.dispose();
    this.opt.dispose();
  }
}

/** n samples of G with labels `lab` (batch-norm groups of the training size, as SavedGenerator). */
async function sampleGenerator(g: ConditionalGenerator, n: number, lab: Int32Array, rng: RandomSource): Promise<SampleSet> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
  const c = g.config;
  const d = c.height * c.width;
  const images = new Uint8Array(n * d);
  const chunk = c.bnGroup * Math.max(1, Math.floor(2048 / c.bnGroup));
  for (let s = 0; s < n; s += chunk) {
    const k = Math.min(chunk, n - s);
    const u = new Float32Array(k * c.zDim);
    rng.uniform(u);
    for (let i = 0; i < u.length; i++) u[i] = 2 * u[i]! - 1;
    const px = tf.tidy(() => tf.round(tf.mul(g.apply(tf.tensor2d(u, [k, c.zDim]), tf.oneHot(tf.tensor1d(lab.subarray(s, s + k), 'int32'), c.numClasses) as tf.Tensor2D), 255)));
    const v = await px.data();
    px.dispose();
    for (let i = 0; i < v.length; i++) images[s * d + i] = Math.max(0, Math.min(255, v[i]!));
  }
  return { images, labels: Int32Array.from(lab), count: n, height: c.height, width: c.width, channels: 1 };
}

const DEFAULTS: DpSinkhornHyper = {
  // ε is nearly flat in T at these z (z = 0.93 / 0.46 for 20,000 steps at ε = 1 / 10 vs 0.84 / 0.39
  // for 2,000), so the plan is long and the time cap ends the run; a step costs ≈ 0.08 s CPU
  steps: 20000,
  batch: 50,
  genBatch: 20,
  clip: 0.5,
  noise: 0,
  debiasRatio: 0.2,
  sinkhornEps: 0.05,
  sinkhornIters: 10,
  cost: 'l1+l2',
  l1Weight: 1,
  labelScale: 15,
  lr: 5e-4,
  beta1: 0.9,
  arch: 'mlp',
  zDim: 16,
  lrFinal: 0.1,
  smoothGradient: 1.5,
  timeCap: 25,
  augment: 'none',
};

export const dpSinkhornPlugin: GeneratorPlugin<DpSinkhornHyper> = {
  name: METHOD,
  description: 'DP-Sinkhorn (Cao et al. 2021): a conditional generator trained on a Sinkhorn loss whose only contact with the data is the clipped, Gaussian-noised gradient w.r.t. the generated images (Poisson-sampled real batches)',
  relation: 'add-remove',
  treatedAsPublic: ['the hyper-parameters, including the sampling rate q = batch / n (n is used to set q)', 'the class list (labels of generated samples are balanced and public)'],
  hyperParameters: [
    { key: 'steps', flag: 'generator-steps', type: 'integer', min: 1, help: 'dp-sinkhorn: planned generator steps T (each a Poisson-subsampled Gaussian release; z calibrated so T steps spend ε)' },
    { key: 'batch', flag: 'real-batch', type: 'integer', min: 1, help: 'dp-sinkhorn: expected real batch size B (Poisson sampling rate q = B/n)' },
    { key: 'genBatch', flag: 'gen-batch', type: 'integer', min: 2, help: 'dp-sinkhorn: generated samples per step (public, fixed)' },
    { key: 'clip', flag: 'grad-clip', type: 'number', min: 0, exclusiveMin: true, help: 'dp-sinkhorn: L2 clip C of the gradient w.r.t. the generated batch (sensitivity 2C; paper 0.5)' },
    { key: 'noise', flag: 'noise-multiplier', type: 'number', min: 0, help: 'dp-sinkhorn: noise multiplier z (σ = 2Cz); default 0 = calibrate to the budget; with --non-private the noise used' },
    { key: 'debiasRatio', flag: 'debias-ratio', type: 'number', min: 0, max: 1, help: 'dp-sinkhorn: λ, fraction of fresh samples in the self term of the loss (0 biased, 1 debiased; paper 0.2)' },
    { key: 'sinkhornEps', flag: 'sinkhorn-eps', type: 'number', min: 0, exclusiveMin: true, help: 'dp-sinkhorn: entropic regularisation ε of the Sinkhorn loss (paper 0.05)' },
    { key: 'sinkhornIters', flag: 'sinkhorn-iters', type: 'integer', min: 0, help: 'dp-sinkhorn: Sinkhorn iterations at the target ε after ε-scaling, at most (default 10, as geomloss stops after its annealing)' },
    { key: 'cost', flag: 'cost', type: 'choice', choices: ['l2', 'l1+l2'], help: 'dp-sinkhorn: ground cost ‖x−y‖² or ‖x−y‖² + w‖x−y‖₁ (paper MNIST: l1+l2)' },
    { key: 'l1Weight', flag: 'l1-weight', type: 'number', min: 0, help: 'dp-sinkhorn: w of the L1 term (paper m = 1 or 3)' },
    { key: 'labelScale', flag: 'label-scale', type: 'number', min: 0, help: 'dp-sinkhorn: scale of the one-hot label in the cost (paper 15)' },
    { key: 'lr', flag: 'generator-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dp-sinkhorn: generator Adam learning rate' },
    { key: 'beta1', flag: 'generator-beta1', type: 'number', min: 0, max: 1, help: 'dp-sinkhorn: Adam β1' },
    { key: 'lrFinal', flag: 'lr-final', type: 'number', min: 0, max: 1, help: 'dp-sinkhorn: final learning rate as a fraction of --lr (linear decay; 1 = constant)' },
    { key: 'smoothGradient', flag: 'smooth-gradient', type: 'number', min: 0, help: 'dp-sinkhorn: Gaussian blur std (pixels) of the released noisy image gradient (post-processing; 0 = off, as the paper)' },
    { key: 'timeCap', flag: 'time-cap', type: 'number', min: 0, help: 'dp-sinkhorn: stop after this many minutes when --max-minutes is not given (default 25; 0 = run all planned steps); ε spent is then below the target' },
    { key: 'arch', flag: 'generator-arch', type: 'choice', choices: ['mlp', 'dcgan'], help: 'dp-sinkhorn: generator architecture' },
    { key: 'zDim', flag: 'z-dim', type: 'integer', min: 1, help: 'dp-sinkhorn: latent dimension' },
    { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'dp-sinkhorn ε=1 (MNIST-tuned)', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'dp-sinkhorn ε=10 (MNIST-tuned)', epsilon: 10, hyper: {} },
    'fashion-mnist-eps1': { description: 'dp-sinkhorn ε=1 (MNIST settings)', epsilon: 1, hyper: {} },
    'fashion-mnist-eps10': { description: 'dp-sinkhorn ε=10 (MNIST settings)', epsilon: 10, hyper: {} },
    paper: { description: 'the authors\' MNIST command (B=50, C=0.5, z=1.1, l1+l2 m=1, λ=0.2, ε_s=0.05, lr 1e-5, no gradient smoothing): needs ~10⁵ steps', epsilon: 10, hyper: { noise: 1.1, lr: 1e-5, lrFinal: 1, steps: 100000, genBatch: 50, smoothGradient: 0, timeCap: 0 } },
  },
  runFlags: ['max-minutes', 'steps', 'non-private'],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, hyper, limits) => new DpSinkhornGenerator(ctx, hyper, limits),
  gaussianMechanism: (h, facts) => dpSinkhornMechanism(h, facts),
  loadSampler(dir: string): SavedSampler {
    const s = SavedGenerator.load(dir);
    return { method: METHOD, steps: s.steps, sample: (n, rng, labels) => sampleGenerator(s.generator, n, labels ?? balancedLabels(rng, n, s.generator.config.numClasses), rng), dispose: () => s.dispose() };
  },
};
