/**
 * dp2-vae: DP²-VAE (Jiang, Zhang, Karami, Chen, Shao & Yu 2022, "DP²-VAE: Differentially Private
 * Pre-trained Variational Autoencoders", arXiv 2208.03409) — a conditional VAE trained with DP-SGD,
 * with the paper's two-phase "pre-training on private data", plus optional public pre-training.
 *
 * Model (vae-model.ts): MLP encoder q(z | x, y) and decoder p(x | z, y), Bernoulli pixels, prior
 * N(0, I); samples are decoded from the prior (z ~ N(0, I), balanced public labels) — the Bernoulli
 * means are written as the images.
 *
 * Mechanism (DP-SGD, Abadi et al. 2016). Step t: a Poisson sample S of the private records (each
 * w.p. q = B/n, from the run's RandomSource); for each example the gradient g_i of its negative
 * ELBO ℓ_i w.r.t. ALL trained parameters (encoder and decoder in phase 1, decoder only in phase 2)
 * is clipped to L2 norm ≤ C; the release is R = Σ_{i∈S} clip_C(g_i) + N(0, σ²I), σ = zC. The
 * reparameterisation noise ε_i is drawn from the RandomSource independently per example, so g_i
 * depends on record i (and public randomness) only. Add/remove sensitivity of the sum: C. Each step
 * is DpEvents.poissonSampled(q, DpEvents.gaussian(z)) — the event of `dplens train`'s gaussian
 * privatizer — recorded with ledger.tryRecord BEFORE S is drawn; a refusal stops the run. z is
 * calibrated data-independently (calibrateNoise, RDP) so the planned T steps spend ε. The update
 * R/(qn), Adam, the samples and the checkpoint are post-processing. Relation: add/remove; n is
 * used only through q (the hyper-parameters, incl. q, are public).
 *
 * DP² ("pre-training on private data", as we read the paper; its method section was not in our
 * reference store, only the abstract: "improved utility via pre-training on private data ... DP²-VAE
 * minimizes the perturbation noise during training"): phase 1 (a share `encoderShare` of the T
 * steps) trains the whole VAE with DP-SGD — the private pre-training; phase 2 freezes the
 * pre-trained encoder and trains only the decoder with DP-SGD. Phase 2 perturbs a vector of half the
 * dimension with the same σ, and the whole clip budget C goes to the decoder's gradient, so the
 * per-coordinate noise-to-signal ratio drops. Both phases use the same event; the composition is
 * the same T-fold Poisson-subsampled Gaussian. `--dp2-encoder-share 1` is plain DP-VAE.
 *
 * Public pre-training (`--public-data`, issue 15): before any private step the VAE is trained
 * WITHOUT noise on the public images for `pretrainSteps` steps, with the label input set to zero
 * (public labels live in another label space, e.g. Fashion-MNIST for MNIST). It reads no private
 * record (test: an all-black private set leaves the pre-trained weights unchanged); the public set
 * is outside the guarantee and named in the ledger header and run.json by the runner.
 *
 * Large batches (issue 15 targets; DPImageBench's DP-SGD methods use B = 4096). The per-example
 * gradients are never materialised (Dense ghost norms), but the activations of a batch are: the
 * clipped sum is computed over chunks of `chunk` examples (default 1,000) and added up — the same
 * sum, since every example is clipped on its own; the reparameterisation noise of the whole batch
 * is drawn first, so a seeded run does not depend on the chunk size. At B = 4,000 this cut the
 * step from 1.14 to 0.71 CPU-s and peak RSS from 659 to 410 MB (`npm run bench:dp2vae`).
 * `temperature` τ scales the latent of the written samples (z ~ N(0, τ²I)): post-processing of the
 * released decoder, no privacy cost; τ < 1 did not raise accuracy in our runs (default 1).
 *
 * What differs from the paper and why.
 * - The DP² schedule above is our reading of the paper (see the caveat); the paper's other
 *   variants (hierarchical VAEs, other priors) are not implemented.
 * - A small MLP VAE (sized for 2 CPU cores) instead of the paper's convolutional networks; far
 *   fewer steps, larger batches and a larger learning rate (minutes, not GPU-hours).
 * - Public pre-training is our addition (the issue's public-data seam); the paper pre-trains on
 *   private data only.
 * - The warm-up curriculum (warmup.ts, DP-FETA style; presets mnist-eps1/eps10 use DP k-means
 *   centroids under 10 % of ε) is our addition: its releases are recorded before they are computed,
 *   the VAE's steps on the central images are post-processing, and z is calibrated on the
 *   composition (calibrateWithWarmup).
 * - Measured (dpimagebench protocol, 2026-12-07): MNIST 82.49 % (ε = 1) / 83.74 % (ε = 10),
 *   Fashion 73.76 % (ε = 1) / 75.07 % (ε = 10); commands in src/generate/README.md. The large-batch
 *   preset (B = 4,000, T = 500) scored the same (82.15 / 73.77 % at ε = 1) for 3× the CPU, and a
 *   run with 1/14 of the noise matched it: this MLP VAE, not the DP noise, is the limit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { calibrateNoise, DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { clippedSum } from '../nn/index.js';
import { readCheckpoint, readCheckpointHeader, writeCheckpoint, type CheckpointLayout } from '../nn/checkpoint.js';
import { addGaussianNoise, pixelRows, poissonGaussianAuditMechanism, poissonSubsample } from './gaussian-release.js';
import { fitDeadline, StepReleaseGate } from './step-gate.js';
import { balancedLabels } from './voting-gan.js';
import { ConditionalVae, ParamAdam, type VaeConfig } from './vae-model.js';
import { calibrateWithWarmup, releaseCentralImages, warmUp, warmupFactsOf, warmupPlan, WARMUP_DEFAULTS, WARMUP_HYPER, type WarmupFacts, type WarmupHyper } from './warmup.js';
import type { GeneratorLimits, GeneratorPlugin, SavedSampler } from './plugin.js';
import type { DpGenerator, FitResult, GaussianReleaseMechanism, GeneratorContext, GeneratorProgress, SampleSet } from './types.js';

export interface Dp2VaeHyper extends WarmupHyper {
  /** Planned private DP-SGD steps T (z calibrated so T steps spend ε). */
  steps: number;
  /** Expected private batch size B (Poisson rate q = B/n). */
  batch: number;
  /** Per-example L2 clip bound C of the whole ELBO gradient. */
  clip: number;
  /** Noise multiplier z (σ = zC); 0 = calibrate to the budget; with --non-private the noise used. */
  noise: number;
  /** Share of the T private steps that train the whole VAE (phase 1); the rest train the decoder only. */
  encoderShare: number;
  lr: number;
  /** Final learning rate as a fraction of lr (linear decay over the planned steps). */
  lrFinal: number;
  /** Hidden width of the one-hidden-layer encoder and decoder. */
  hidden: number;
  zDim: number;
  /** β of the KL term. */
  beta: number;
  labelGain: number;
  /** Non-private steps on --public-data before the private ones (ignored without public data). */
  pretrainSteps: number;
  pretrainBatch: number;
  /** Minutes after which fit() stops when --max-minutes is not given (0 = none). */
  timeCap: number;
  augment: 'none' | 'affine';
  /** Latent temperature τ of the written samples: z ~ N(0, τ²I) (post-processing; 1 = the prior). */
  temperature: number;
  /** Examples per chunk of the per-example gradient computation (0 = the whole batch at once); the clipped sum is the same. */
  chunk: number;
}

const METHOD = 'dp2-vae';
const LAYOUT: CheckpointLayout = { header: 'generator.json', blob: 'generator.bin', format: 'dplens-dp2-vae-1', entriesKey: 'params', blobKey: 'weights' };

/** z such that `steps` Poisson-subsampled Gaussian releases (rate q) spend ≤ ε at δ (DP-SGD calibration). */
export function dp2VaeNoiseMultiplier(q: number, steps: number, epsilon: number, delta: number): number {
  return calibrateNoise({ targetEpsilon: epsilon, delta, sampleRate: q, steps, epsilonTolerance: 0.005 }).noiseMultiplier;
}

/**
 * z of the DP-SGD steps: without warm-up the plain calibration; with it, the smallest z such that
 * the warm-up's releases composed with `h.steps` DP-SGD steps spend ≤ ε (data-independent).
 */
export function dp2VaeNoise(h: Dp2VaeHyper, q: number, facts: WarmupFacts): number {
  if (h.warmup === 'none') return dp2VaeNoiseMultiplier(q, h.steps, facts.epsilon, facts.delta);
  const plan = warmupPlan(h, facts);
  return calibrateWithWarmup({ warmup: plan.event, step: (z) => DpEvents.poissonSampled(q, DpEvents.gaussian(z)), steps: h.steps, epsilon: facts.epsilon, delta: facts.delta, relation: 'add-remove' }).noise;
}

export function vaeConfig(h: Dp2VaeHyper, data: { height: number; width: number; numClasses: number }): VaeConfig {
  return { inputDim: data.height * data.width, numClasses: data.numClasses, hidden: [h.hidden], zDim: h.zDim, labelGain: h.labelGain, outputBias: -2 };
}

/** Images [B, d] in [0, 1] of the given record indices. */
function imageBatch(images: Uint8Array, idx: Int32Array, d: number): tf.Tensor2D {
  return tf.tensor2d(pixelRows(images, idx, d), [idx.length, d]);
}

function normalTensor(rng: RandomSource, rows: number, cols: number): tf.Tensor2D {
  const e = new Float32Array(rows * cols);
  rng.normal(e, 1);
  return tf.tensor2d(e, [rows, cols]);
}

/**
 * One DP-SGD step's pre-noise statistic: Σ_i clip_C(∇ℓ_i) over the trained parameters (encoder +
 * decoder, or decoder only), one tensor per parameter. `eps` is the reparameterisation noise.
 */
export function clippedElboSum(vae: ConditionalVae, x: tf.Tensor2D, labels: Int32Array, eps: tf.Tensor2D, o: { clip: number; beta: number; trainEncoder: boolean }): tf.Tensor[] {
  return tf.tidy(() => {
    const pass = vae.elbo({ x, labels, eps }, o.beta, o.trainEncoder);
    const params = o.trainEncoder ? vae.params() : vae.decoderParams();
    return clippedSum(pass.tape, params, { maxGradNorm: o.clip }).grads;
  });
}

/** The run's release for the mechanism audit (add/remove: an included canary adds C to its coordinate). */
export function dp2VaeMechanism(h: Dp2VaeHyper, facts: { trainCount: number; numClasses?: number; epsilon: number | null; delta: number; steps?: number }): GaussianReleaseMechanism {
  const q = h.batch / facts.trainCount;
  const nonPrivate = facts.epsilon === null;
  // the audit's facts carry no image size: dp2-vae runs on 28×28 single-channel sets (MNIST family)
  const z = nonPrivate || h.noise > 0 ? h.noise : dp2VaeNoise(h, q, { relation: 'add-remove', numClasses: facts.numClasses ?? 10, height: 28, width: 28, channels: 1, epsilon: facts.epsilon!, delta: facts.delta });
  const sigma = z * h.clip;
  return poissonGaussianAuditMechanism({ method: METHOD, dim: 1000, q, sigma, sensitivity: h.clip, releases: facts.steps ?? h.steps, event: nonPrivate ? DpEvents.nonPrivate(`dp2-vae run with --non-private (noise multiplier ${z})`) : DpEvents.poissonSampled(q, DpEvents.gaussian(z)) });
}

class Dp2VaeGenerator implements DpGenerator {
  readonly method = METHOD;
  readonly vae: ConditionalVae;
  private readonly optFull: ParamAdam;
  private readonly optDecoder: ParamAdam;
  private stepsDone = 0;
  private pretrained = false;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly h: Dp2VaeHyper,
    private readonly limits: GeneratorLimits,
  ) {
    const { data } = ctx;
    if (data.channels !== 1) throw new RangeError(`${data.name}: dp2-vae supports single-channel images, got ${data.channels} channels`);
    if (!ctx.nonPrivate && !(Number.isFinite(ctx.budget.epsilon) && ctx.budget.epsilon > 0)) throw new RangeError(`dp2-vae: epsilon must be a finite number > 0, got ${ctx.budget.epsilon}`);
    if (h.batch > data.train.count) throw new RangeError(`dp2-vae: --vae-batch ${h.batch} exceeds the ${data.train.count} training records`);
    // Weight initialisation: public randomness (drawn before any record is read).
    this.vae = new ConditionalVae(vaeConfig(h, data), ctx.random.nextUint32());
    this.optFull = new ParamAdam(this.vae.params(), h.lr);
    this.optDecoder = new ParamAdam(this.vae.decoderParams(), h.lr);
  }

  get steps(): number {
    return this.stepsDone;
  }

  private sampleRate(): number {
    return this.h.batch / this.ctx.data.train.count;
  }

  noiseMultiplier(): number {
    if (this.ctx.nonPrivate || this.h.noise > 0) return this.h.noise;
    return dp2VaeNoise(this.h, this.sampleRate(), warmupFactsOf(this.ctx, 'add-remove'));
  }

  stepEvent(): DpEvent {
    const z = this.noiseMultiplier();
    if (this.ctx.nonPrivate) return DpEvents.nonPrivate(`dp2-vae DP-SGD with noise multiplier ${z} (--non-private)`);
    return DpEvents.poissonSampled(this.sampleRate(), DpEvents.gaussian(z));
  }

  /** Steps of phase 1 (whole VAE); later steps train the decoder only. */
  private encoderSteps(): number {
    return Math.round(this.h.encoderShare * this.h.steps);
  }

  /** One non-private VAE step (mean gradient, Adam) on images [B, d] in [0, 1]: public data or released central images only. */
  private plainStep(opt: ParamAdam, images: Float32Array, labels: Int32Array, noLabels: boolean): void {
    const B = labels.length;
    const params = opt.params;
    const grads = tf.tidy(() => {
      const x = tf.tensor2d(images, [B, images.length / B]);
      const eps = normalTensor(this.ctx.random, B, this.h.zDim);
      const pass = this.vae.elbo({ x, labels, eps, noLabels }, this.h.beta, true);
      const w = tf.fill([B], 1 / B) as tf.Tensor1D;
      const out: tf.Tensor[] = new Array(params.length);
      const pos = new Map(params.map((p, i) => [p.value, i]));
      for (const r of pass.tape.records) r.weightedSum(w).forEach((g, j) => (out[pos.get(r.params[j]!.value)!] = g));
      return out;
    });
    opt.step(grads);
    tf.dispose(grads);
  }

  /** Non-private pre-training on the public set (labels zeroed); touches no private record. */
  pretrainPublic(signal?: AbortSignal): number {
    const pub = this.ctx.publicData?.data;
    if (!pub || this.h.pretrainSteps <= 0) return 0;
    const rng = this.ctx.random;
    const d = pub.height * pub.width;
    const n = pub.train.count;
    const B = Math.min(this.h.pretrainBatch, n);
    const opt = new ParamAdam(this.vae.params(), this.h.lr);
    let done = 0;
    for (let s = 0; s < this.h.pretrainSteps; s++) {
      if (signal?.aborted) break;
      const idx = new Int32Array(B);
      for (let k = 0; k < B; k++) idx[k] = Math.min(n - 1, Math.floor(rng.nextDouble() * n));
      const x = new Float32Array(B * d);
      for (let k = 0; k < B; k++) for (let t = 0; t < d; t++) x[k * d + t] = pub.train.images[idx[k]! * d + t]! / 255;
      this.plainStep(opt, x, new Int32Array(B), true);
      done++;
    }
    opt.dispose();
    return done;
  }

  /**
   * The warm-up curriculum (warmup.ts): releases the DP central images (each release recorded in the
   * ledger before it is computed, under the warm-up share of ε), then trains the whole VAE on them
   * without noise (post-processing). Skipped when the ledger already holds this run's warm-up
   * releases (a resume: never release twice).
   */
  private async warmUpOnCentralImages(signal?: AbortSignal): Promise<void> {
    if (this.h.warmup === 'none') return;
    if (this.ctx.ledger.entries.some((e) => (e.meta as { phase?: string } | undefined)?.phase === 'warm-up')) return;
    const central = await releaseCentralImages(this.ctx, this.h, { method: METHOD, relation: 'add-remove' });
    const opt = new ParamAdam(this.vae.params(), this.h.lr);
    await warmUp(central, { steps: this.h.warmupSteps, batch: this.h.pretrainBatch, rng: this.ctx.random, signal, step: (images, labels) => (this.plainStep(opt, images, labels, false), NaN) });
    opt.dispose();
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const h = this.h;
    const d = data.height * data.width;
    const n = data.train.count;
    const q = this.sampleRate();
    const z = this.noiseMultiplier();
    const sigma = z * h.clip;
    const event = this.stepEvent();
    const maxSteps = Math.min(h.steps, this.limits.maxSteps);
    const gate = new StepReleaseGate(this.ctx, { method: METHOD, event, deadline: fitDeadline(t0, this.limits, h.timeCap), signal: o.signal });
    if (!this.pretrained && this.stepsDone === 0) {
      this.pretrainPublic(o.signal);
      await this.warmUpOnCentralImages(o.signal);
      this.pretrained = true;
      // step 0 progress: the runner checkpoints it, so a resume never redoes the warm-up releases
      o.onProgress?.({ step: 0, epoch: 0, epsilon: ledger.spent(budget.delta), generatorLoss: NaN, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: 0 } });
    }
    const encSteps = this.encoderSteps();
    let stoppedBy: FitResult['stoppedBy'] = 'max-steps';
    while (this.stepsDone < maxSteps) {
      const stop = gate.stopBefore(this.stepsDone);
      if (stop) {
        stoppedBy = stop;
        break;
      }
      const ts = Date.now();
      const trainEncoder = this.stepsDone < encSteps;
      // The release is recorded before the batch is drawn; the ledger is the only budget gate.
      if (!gate.charge(this.stepsDone + 1, { release: `Σ clip_C(∇ELBO_i) + N(0, σ²I) over the ${trainEncoder ? 'encoder and decoder' : 'decoder (encoder frozen)'}, Poisson-sampled batch`, phase: trainEncoder ? 'dp2-pretrain (whole VAE)' : 'dp2-decoder', samplingRate: q, clip: h.clip, sigma, noiseMultiplier: z })) {
        stoppedBy = 'budget';
        break;
      }
      const idx = poissonSubsample(n, q, rng);
      const labels = new Int32Array(idx.length);
      for (let k = 0; k < idx.length; k++) labels[k] = data.train.labels[idx[k]!]!;
      const params = trainEncoder ? this.vae.params() : this.vae.decoderParams();
      // Σ_i clip_C(g_i) over chunks of ≤ h.chunk examples: the same sum (each example is clipped on its
      // own), with memory bounded by the chunk instead of the batch. The reparameterisation noise is
      // drawn for the whole batch first, so the run does not depend on the chunk size.
      let sums: tf.Tensor[] = params.map((p) => tf.zerosLike(p.value));
      const chunk = h.chunk > 0 ? h.chunk : Math.max(1, idx.length);
      const epsAll = new Float32Array(idx.length * h.zDim);
      rng.normal(epsAll, 1);
      for (let s = 0; s < idx.length; s += chunk) {
        const part = idx.subarray(s, Math.min(idx.length, s + chunk));
        const x = imageBatch(data.train.images, part, d);
        const eps = tf.tensor2d(epsAll.subarray(s * h.zDim, (s + part.length) * h.zDim), [part.length, h.zDim]);
        const g = clippedElboSum(this.vae, x, labels.subarray(s, s + part.length), eps, { clip: h.clip, beta: h.beta, trainEncoder });
        const next = sums.map((a, j) => tf.add(a, g[j]!));
        tf.dispose([x, eps, ...g, ...sums]);
        sums = next;
      }
      // + N(0, σ²I) from the RandomSource, then /(qn): post-processing from here on
      const update = sums.map((s) => {
        const v = s.dataSync() as Float32Array;
        const out = new Float32Array(v.length);
        addGaussianNoise(out, sigma, rng);
        const scale = 1 / (q * n);
        for (let k = 0; k < v.length; k++) out[k] = (out[k]! + v[k]!) * scale;
        return tf.tensor(out, s.shape);
      });
      tf.dispose(sums);
      const frac = maxSteps > 1 ? this.stepsDone / (maxSteps - 1) : 0;
      const opt = trainEncoder ? this.optFull : this.optDecoder;
      opt.lr = h.lr * (1 - frac * (1 - h.lrFinal));
      opt.step(update);
      tf.dispose(update);
      this.stepsDone++;
      o.onProgress?.({ step: this.stepsDone, epoch: this.stepsDone * q, epsilon: ledger.spent(budget.delta), generatorLoss: NaN, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: Date.now() - ts } });
      if (this.stepsDone % 10 === 0) await new Promise((res) => setImmediate(res));
    }
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    const lab = labels ?? balancedLabels(this.ctx.random, n, this.vae.config.numClasses);
    return sampleVae(this.vae, n, lab, this.ctx.random, this.ctx.data.height, this.ctx.data.width, this.h.temperature);
  }

  async save(dir: string): Promise<void> {
    const tensors = [...this.vae.snapshot(), ...this.optFull.snapshot('adamFull'), ...this.optDecoder.snapshot('adamDecoder')];
    writeCheckpoint(dir, LAYOUT, { method: METHOD, steps: this.stepsDone, pretrained: this.pretrained, adamFullT: this.optFull.t, adamDecoderT: this.optDecoder.t, height: this.ctx.data.height, width: this.ctx.data.width, temperature: this.h.temperature, config: this.vae.config }, tensors);
  }

  async load(dir: string): Promise<void> {
    const ck = readCheckpoint(dir, LAYOUT);
    const where = `${dir}/${LAYOUT.header}`;
    this.vae.restore(ck.tensors, where);
    this.optFull.restore(ck.tensors, 'adamFull', Number(ck.header.adamFullT ?? 0));
    this.optDecoder.restore(ck.tensors, 'adamDecoder', Number(ck.header.adamDecoderT ?? 0));
    this.stepsDone = Number(ck.header.steps ?? 0);
    this.pretrained = ck.header.pretrained === true;
  }

  dispose(): void {
    this.vae.dispose();
    this.optFull.dispose();
    this.optDecoder.dispose();
  }
}

/**
 * n samples decoded from z ~ N(0, τ²I) (RandomSource; τ = 1 is the prior), Bernoulli means as pixel
 * values. τ < 1 trades diversity for typical, sharper images (post-processing of the trained decoder).
 */
export async function sampleVae(vae: ConditionalVae, n: number, lab: Int32Array, rng: RandomSource, H: number, W: number, temperature = 1): Promise<SampleSet> {
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new RangeError(`sample: latent temperature must be a finite number > 0, got ${temperature}`);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
  if (lab.length !== n) throw new RangeError(`sample: ${lab.length} labels for ${n} samples`);
  const C = vae.config.numClasses;
  for (const c of lab) if (!Number.isInteger(c) || c < 0 || c >= C) throw new RangeError(`sample: label ${c} out of range [0, ${C})`);
  const d = H * W;
  const images = new Uint8Array(n * d);
  for (let s = 0; s < n; s += 2048) {
    const k = Math.min(2048, n - s);
    const z = normalTensor(rng, k, vae.config.zDim);
    const px = tf.tidy(() => tf.round(tf.mul(vae.decode(temperature === 1 ? z : tf.mul(z, temperature), lab.subarray(s, s + k)), 255)));
    const v = await px.data();
    tf.dispose([z, px]);
    for (let i = 0; i < v.length; i++) images[s * d + i] = Math.max(0, Math.min(255, v[i]!));
  }
  return { images, labels: Int32Array.from(lab), count: n, height: H, width: W, channels: 1 };
}

function loadSavedVae(dir: string): { vae: ConditionalVae; steps: number; height: number; width: number; temperature: number } {
  const header = readCheckpointHeader(dir, LAYOUT);
  const config = header.config as VaeConfig;
  const vae = new ConditionalVae(config, 1);
  vae.restore(readCheckpoint(dir, LAYOUT).tensors, `${dir}/${LAYOUT.header}`);
  const side = Math.round(Math.sqrt(config.inputDim));
  return { vae, steps: Number(header.steps ?? 0), height: Number(header.height ?? side), width: Number(header.width ?? side), temperature: Number(header.temperature ?? 1) };
}

const DEFAULTS: Dp2VaeHyper = {
  ...WARMUP_DEFAULTS,
  steps: 1500,
  batch: 600,
  clip: 1,
  noise: 0,
  encoderShare: 0.5,
  lr: 2e-3,
  lrFinal: 0.2,
  hidden: 400,
  zDim: 16,
  beta: 1,
  labelGain: 4,
  pretrainSteps: 300,
  pretrainBatch: 128,
  timeCap: 25,
  augment: 'none',
  chunk: 1000,
  temperature: 1,
};

// Sized so a run fits ≈ 25 minutes on a loaded 2-core machine (≈ 0.15–0.2 CPU-s per step at B = 600–800).
const EPS1: Partial<Dp2VaeHyper> = { steps: 700, batch: 600, warmup: 'kmeans', warmupCentroids: 4, warmupShare: 0.1 };
// DPImageBench-style large batch (B = 4,000, T = 500, 33 epochs; z = 6.2, σ/B = 1.6e-3 vs 2.3e-3 for
// EPS1), ≈ 0.6 CPU-s per step, ≈ 5 CPU-min per run. Measured no better than EPS1 on MNIST ε = 1
// (82.15 vs 82.49 %, dpimagebench protocol): at this model size the DP noise is not the limit (a run
// at z = 0.1 scored the same), so it is a named preset, not the default.
const LARGE_BATCH_EPS1: Partial<Dp2VaeHyper> = { steps: 500, batch: 4000, warmup: 'kmeans', warmupCentroids: 4, warmupShare: 0.1 };
const EPS10: Partial<Dp2VaeHyper> = { steps: 600, batch: 800, warmup: 'kmeans', warmupCentroids: 10, warmupShare: 0.1 };

export const dp2VaePlugin: GeneratorPlugin<Dp2VaeHyper> = {
  name: METHOD,
  description: 'DP²-VAE (Jiang et al. 2022): a conditional VAE trained with DP-SGD (Poisson sampling, per-example clipping of the whole ELBO gradient, Gaussian noise); private pre-training of the whole VAE, then the decoder alone; optional public pre-training',
  relation: 'add-remove',
  treatedAsPublic: ['the hyper-parameters, including the sampling rate q = batch / n (n is used to set q)', 'the class list (labels of generated samples are balanced and public)'],
  hyperParameters: [
    { key: 'steps', flag: 'vae-steps', type: 'integer', min: 1, help: 'dp2-vae: planned private DP-SGD steps T (z calibrated so T steps spend ε)' },
    { key: 'batch', flag: 'vae-batch', type: 'integer', min: 1, help: 'dp2-vae: expected private batch size B (Poisson rate q = B/n)' },
    { key: 'clip', flag: 'vae-clip', type: 'number', min: 0, exclusiveMin: true, help: 'dp2-vae: per-example L2 clip C of the whole ELBO gradient (sensitivity C, add/remove)' },
    { key: 'noise', flag: 'vae-noise', type: 'number', min: 0, help: 'dp2-vae: noise multiplier z (σ = zC); default 0 = calibrate to the budget; with --non-private the noise used' },
    { key: 'encoderShare', flag: 'dp2-encoder-share', type: 'number', min: 0, max: 1, help: 'dp2-vae: share of the private steps that train the whole VAE (DP² pre-training); the rest train the decoder with the encoder frozen (1 = plain DP-VAE)' },
    { key: 'lr', flag: 'vae-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dp2-vae: Adam learning rate' },
    { key: 'lrFinal', flag: 'vae-lr-final', type: 'number', min: 0, max: 1, help: 'dp2-vae: final learning rate as a fraction of --vae-lr (linear decay)' },
    { key: 'hidden', flag: 'vae-hidden', type: 'integer', min: 1, help: 'dp2-vae: hidden width of the MLP encoder and decoder' },
    { key: 'zDim', flag: 'vae-latent', type: 'integer', min: 1, help: 'dp2-vae: latent dimension k' },
    { key: 'beta', flag: 'vae-beta', type: 'number', min: 0, help: 'dp2-vae: weight β of the KL term of the ELBO' },
    { key: 'labelGain', flag: 'vae-label-gain', type: 'number', min: 0, help: 'dp2-vae: scale of the one-hot label input' },
    { key: 'pretrainSteps', flag: 'pretrain-steps', type: 'integer', min: 0, help: 'dp2-vae: non-private steps on --public-data before the private ones (outside the guarantee; ignored without --public-data)' },
    { key: 'pretrainBatch', flag: 'pretrain-batch', type: 'integer', min: 1, help: 'dp2-vae: batch size of the public pre-training' },
    { key: 'timeCap', flag: 'time-cap', type: 'number', min: 0, help: 'dp2-vae: stop after this many minutes when --max-minutes is not given (0 = run all planned steps); ε spent is then below the target' },
    { key: 'temperature', flag: 'vae-temperature', type: 'number', min: 0, exclusiveMin: true, help: 'dp2-vae: latent temperature τ of the samples, z ~ N(0, τ²I) (post-processing, no privacy cost; < 1 = sharper, less diverse)' },
    { key: 'chunk', flag: 'vae-chunk', type: 'integer', min: 0, help: 'dp2-vae: examples per chunk of the per-example gradient computation (memory bound; 0 = whole batch); the clipped sum is the same' },
    { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
    ...WARMUP_HYPER,
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'dp2-vae ε=1: B=600, T=700, warm-up on DP k-means centroids (4 per class, 10 % of ε), half the steps DP² decoder-only', epsilon: 1, hyper: EPS1 },
    'mnist-eps10': { description: 'dp2-vae ε=10: B=800, T=600, warm-up on DP k-means centroids (10 per class, 10 % of ε), half the steps DP² decoder-only', epsilon: 10, hyper: EPS10 },
    'fashion-mnist-eps1': { description: 'dp2-vae ε=1 (MNIST settings)', epsilon: 1, hyper: EPS1 },
    'fashion-mnist-eps10': { description: 'dp2-vae ε=10 (MNIST settings)', epsilon: 10, hyper: EPS10 },
    'large-batch-eps1': { description: 'dp2-vae ε=1, DPImageBench-style large batch: B=4000, T=500 (33 epochs), k-means warm-up as mnist-eps1; ≈ 3× the CPU of mnist-eps1 for the same accuracy in our runs', epsilon: 1, hyper: LARGE_BATCH_EPS1 },
    'no-warmup': { description: 'dp2-vae without the warm-up curriculum (plain DP² schedule, defaults)', epsilon: 1, hyper: {} },
  },
  runFlags: ['steps', 'max-minutes', 'resume', 'non-private', 'public-data'],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, hyper, limits) => new Dp2VaeGenerator(ctx, hyper, limits),
  gaussianMechanism: (h, facts) => dp2VaeMechanism(h, facts),
  loadSampler(dir: string): SavedSampler {
    const s = loadSavedVae(dir);
    return { method: METHOD, steps: s.steps, sample: (n, rng, labels) => sampleVae(s.vae, n, labels ?? balancedLabels(rng, n, s.vae.config.numClasses), rng, s.height, s.width, s.temperature), dispose: () => s.vae.dispose() };
  },
};
