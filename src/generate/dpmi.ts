/**
 * dpmi: DPMI, "Differentially Private Generative Adversarial Networks with Model Inversion"
 * (D. Chen, S. S. Cheung, C.-N. Chuah, S. Ozonoff, IEEE WIFS 2021, arXiv:2201.03139). Private
 * images are mapped into the latent space of a generator trained on PUBLIC data (model
 * inversion), a low-dimensional DP-GAN is trained on those latents, and samples are the public
 * generator's decoding of the DP-GAN's outputs.
 *
 * Stages (files dpmi-public.ts, dpmi-gan.ts):
 *  1. Public generator, outside the guarantee: a small convolutional autoencoder trained on
 *     `--public-data` only (the first `public-samples` public training images; shuffling and
 *     initialisation from the run's RandomSource). Its decoder is the public generator. It runs
 *     before any private record is read and takes no private argument (test: an all-black private
 *     set gives the same decoder weights). `--public-data` is required: DPMI has no generator
 *     without it.
 *  2. Inversion, per record: z(x) = argmin_z BCE(dec(z), x) + λ/2‖z‖², started at the encoder
 *     output, `invert-steps` Adam steps on z, clamped, scaled by a public constant (the RMS of
 *     the encodings of public images). Every operation is row-wise, so z(x) is a fixed function
 *     of the one record x and of public objects.
 *  3. Conditional latent DP-GAN: D(z, y), G(u, y) MLPs. Each discriminator step is one DP-SGD
 *     release: every record is in the batch independently with probability q = real-batch / n
 *     (Poisson), the gradient of its real-data loss softplus(−D(z_i, y_i)) is clipped to L2 norm
 *     ≤ C (per example, src/nn/persample.ts), summed, N(0, σ²C²I) is added, and the result is
 *     divided by the public expected batch size q·n. The fake-data term ∇ mean softplus(D(G(u),
 *     y)) is added without noise: it depends on D's current parameters (earlier releases), G and
 *     public randomness only. G is updated every `disc-per-gen` D steps from D alone
 *     (post-processing).
 *
 * Privacy proof. Under add/remove of one private record (x, y), the latent data set {(z(x_i),
 * y_i)} gains or loses exactly the one row (z(x), y) — stage 2 is per-record pre-processing with a
 * public map, so it is inside the DP-SGD sampling unit (as the paper argues: the DP-GAN protects
 * the latent codes, each a function of one record). The clipped sum then moves by at most C, so a
 * step is the Poisson-subsampled Gaussian mechanism with noise multiplier z = σ/C:
 * DpEvents.poissonSampled(q, gaussian(z)), relation add-remove (n and q public). z is calibrated
 * data-independently (src/privacy/calibrate.ts, RDP) so that the planned `disc-steps` T steps
 * spend ≤ ε; each step is recorded with ledger.tryRecord BEFORE its batch is sampled, and a
 * refused step ends the run. G, D, the samples and every checkpoint are post-processing; the
 * latents are never written (a resumed run recomputes them). Stage 1 touches only public data, so
 * it costs nothing — but the public set is released outside the guarantee (named in run.json).
 * Caveat shared with every batched DP-SGD implementation: float rounding of batched kernels may
 * depend on other rows of a chunk; the proof treats the arithmetic as exact.
 *
 * What differs from the paper and why:
 *  - The paper's public generators are large image GANs (inverted by optimisation) for CIFAR-10 /
 *    SVHN / faces. Here the public generator is a convolutional autoencoder with a 7×7×c latent map
 *    (k = 49c; 98 by default), trained in well under a CPU minute. A first MLP VAE (latent 32/64)
 *    trained on Fashion-MNIST decoded every MNIST digit as a garment (inversion BCE 184/169 nats);
 *    the local conv decoder reconstructs digits it never saw (BCE 87 nats with 10 steps).
 *    The encoder gives the inversion a starting point (amortised inversion), as GAN-inversion
 *    practice does; the paper only optimises.
 *  - The latent DP-GAN is a conditional MLP GAN (non-saturating loss, Adam β1 = 0.5); the paper's
 *    is unconditional per data set. Labels are part of the private record (one-hot input of D).
 *  - Only the real-data term is clipped and noised (the fake term is data-independent), which is
 *    the tighter form of DP-GAN's discriminator step; Opacus-style code clips the sum of both.
 *  - Honest pairing: public Fashion-MNIST for private MNIST and vice versa (no other public data on
 *    this machine); the paper's public data are a different, larger natural-image family.
 *  - CPU schedule (2 shared cores): the public generator sees 8,000 public images once, the
 *    inversion makes 1 refinement step (10 steps: inversion BCE 129 → 87 nats per MNIST test image
 *    with a 5,000-image public fit; each step costs about one decoder pass over the private set),
 *    and the DP-GAN plans 1,000 discriminator steps (n_D = 1, label gain 4, D lr 2e-3, G lr 5e-4).
 *    Non-private sanity runs (5,000 MNIST records, 3,000 public images): n_D = 2, lr 1e-3, gain 1,
 *    400 steps drew one blob for every class; n_D = 1, lr 2e-3 for both, gain 4, 800 steps drew one
 *    shape per class (mode collapse, also in the first full ε = 1 run); G lr 5e-4 (two time-scale
 *    updates) kept several shapes per class. The GAN is far from converged at these step counts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { calibrateNoise, DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { readCheckpoint, writeCheckpoint, type CheckpointLayout } from '../nn/checkpoint.js';
import { addGaussianNoise as addReleaseNoise, poissonGaussianAuditMechanism, poissonSubsample } from './gaussian-release.js';
import { fitDeadline, StepReleaseGate } from './step-gate.js';
import { balancedLabels } from './voting-gan.js';
import { LatentGan, ParamAdam } from './dpmi-gan.js';
import { PublicAutoencoder, trainPublicAutoencoder } from './dpmi-public.js';
import type { GeneratorLimits, GeneratorPlugin, SavedSampler } from './plugin.js';
import type { DpGenerator, FitResult, GaussianReleaseMechanism, GeneratorContext, GeneratorProgress, SampleSet, StopReason } from './types.js';

export interface DpmiHyper {
  /** Public images used to train the public generator (the first ones of its train split). */
  publicSamples: number;
  /** Epochs over them. */
  publicEpochs: number;
  /** Channels c of the 7×7 latent map (latent dimension 49c on 28×28 images). */
  latentChannels: number;
  /** First conv width w of the autoencoder. */
  aeWidth: number;
  /** Adam steps of the per-record inversion after the encoder start (0 = encoder only). */
  invertSteps: number;
  invertLr: number;
  /** Planned DP-SGD discriminator steps T (σ is calibrated for them). */
  discSteps: number;
  /** Discriminator steps per generator step (n_D). */
  discPerGen: number;
  /** Expected real batch size B (q = B / n). */
  batch: number;
  /** Generated rows per step for D's fake term and G's step (public). */
  fakeBatch: number;
  /** Per-example L2 clip C of D's real-loss gradient. */
  clip: number;
  /** Noise multiplier σ/C: 0 = calibrate to the budget; with --non-private the noise used. */
  noise: number;
  discLr: number;
  genLr: number;
  /** Hidden width of the latent GAN's MLPs. */
  hidden: number;
  /** Dimension of G's Gaussian input. */
  zDim: number;
  /** Scale of the one-hot label in D's and G's inputs (public). */
  labelGain: number;
  /** Stop after this many minutes when --max-minutes is not given (0 = none). */
  timeCap: number;
  augment: 'none' | 'affine';
}

const METHOD = 'dpmi';
const FORMAT = 'dplens-dpmi-1';
const LAYOUT: CheckpointLayout = { header: 'generator.json', blob: 'generator.bin', format: FORMAT, entriesKey: 'params', blobKey: 'weights' };
/** Inversion: λ of the prior term and the clamp of raw latents (public constants). */
const INVERT_REG = 0.01;
const INVERT_CLAMP = 6;
const PUBLIC_BATCH = 64;
const PUBLIC_LR = 2e-3;
const PUBLIC_LATENT_PENALTY = 1e-3;

/** z such that `steps` Poisson-subsampled Gaussian steps at rate q spend ≤ ε at δ (RDP, data-independent). */
export function dpmiNoiseMultiplier(q: number, steps: number, epsilon: number, delta: number): number {
  return calibrateNoise({ targetEpsilon: epsilon, delta, sampleRate: q, steps, epsilonTolerance: 0.005 }).noiseMultiplier;
}


const AUDIT_COORDINATES = 1000;

/**
 * The discriminator's DP-SGD release rebuilt from hyper-parameters and public facts (for `dplens
 * audit`): each canary coordinate is a record's clipped contribution (C/2 when the run's Poisson
 * sampler includes it), plus the run's noise code at σ = zC.
 */
export function dpmiMechanism(h: DpmiHyper, facts: { trainCount: number; numClasses: number; epsilon: number | null; delta: number; steps?: number }): GaussianReleaseMechanism {
  const q = h.batch / facts.trainCount;
  const nonPrivate = facts.epsilon === null;
  const z = nonPrivate || h.noise > 0 ? h.noise : dpmiNoiseMultiplier(q, h.discSteps, facts.epsilon!, facts.delta);
  const C = h.clip;
  const sigma = z * C;
  return poissonGaussianAuditMechanism({ method: METHOD, dim: AUDIT_COORDINATES, q, sigma, sensitivity: C, releases: facts.steps ?? h.discSteps, event: nonPrivate ? DpEvents.nonPrivate(`dpmi run with --non-private (noise multiplier ${z})`) : DpEvents.poissonSampled(q, DpEvents.gaussianWithSensitivity(sigma, C)) });
}

interface DpmiHeader {
  method: string;
  steps: number;
  /** Stage 1 done: the autoencoder weights in the checkpoint are the trained public generator. */
  publicReady: boolean;
  latentScale: number;
  height: number;
  width: number;
  numClasses: number;
  hyper: DpmiHyper;
  adamT: { disc: number; gen: number };
}

/** Sampler state shared by the live generator and loadSampler. */
function sampleFrom(ae: PublicAutoencoder, gan: LatentGan, latentScale: number, n: number, lab: Int32Array, rng: RandomSource): SampleSet {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
  if (lab.length !== n) throw new RangeError(`sample: ${lab.length} labels for ${n} samples`);
  const { height: H, width: W } = ae.config;
  const d = H * W;
  const images = new Uint8Array(n * d);
  const chunk = 1000;
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    const u = new Float32Array(m * gan.config.zDim);
    rng.normal(u, 1);
    const px = tf.tidy(() => tf.round(tf.mul(tf.sigmoid(ae.decodeLogits(tf.div(gan.generate(tf.tensor2d(u, [m, gan.config.zDim]), lab.subarray(s, s + m)), latentScale) as tf.Tensor2D)), 255)));
    const v = px.dataSync();
    px.dispose();
    for (let i = 0; i < v.length; i++) images[s * d + i] = v[i]!;
  }
  return { images, labels: Int32Array.from(lab), count: n, height: H, width: W, channels: 1 };
}

class DpmiGenerator implements DpGenerator {
  readonly method = METHOD;
  readonly ae: PublicAutoencoder;
  readonly gan: LatentGan;
  readonly discOpt: ParamAdam;
  readonly genOpt: ParamAdam;
  private stepsDone = 0;
  private publicReady = false;
  private latentScale = 1;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly h: DpmiHyper,
    private readonly limits: GeneratorLimits,
  ) {
    const { data } = ctx;
    if (!ctx.publicData) throw new RangeError('dpmi needs --public-data (its generator is trained on public data only), e.g. --public-data fashion-mnist for mnist, mnist for fashion-mnist');
    if (data.channels !== 1) throw new RangeError(`${data.name}: dpmi supports single-channel images, got ${data.channels} channels`);
    if (data.height % 4 !== 0 || data.width % 4 !== 0) throw new RangeError(`${data.name}: dpmi needs image sides divisible by 4, got ${data.height}×${data.width}`);
    if (!ctx.nonPrivate && !(Number.isFinite(ctx.budget.epsilon) && ctx.budget.epsilon > 0)) throw new RangeError(`dpmi: epsilon must be a finite number > 0, got ${ctx.budget.epsilon}`);
    if (h.batch > data.train.count) throw new RangeError(`dpmi: --real-batch ${h.batch} exceeds the ${data.train.count} training records`);
    this.ae = new PublicAutoencoder({ height: data.height, width: data.width, latentChannels: h.latentChannels, width0: h.aeWidth }, ctx.random);
    this.gan = new LatentGan({ latentDim: this.ae.latentDim, numClasses: data.numClasses, hidden: h.hidden, zDim: h.zDim, labelGain: h.labelGain }, ctx.random.nextUint32());
    this.discOpt = new ParamAdam(this.gan.disc.parameters(), h.discLr);
    this.genOpt = new ParamAdam(this.gan.gen.parameters(), h.genLr);
  }

  get steps(): number {
    return this.stepsDone;
  }

  sampleRate(): number {
    return this.h.batch / this.ctx.data.train.count;
  }

  noiseMultiplier(): number {
    if (this.ctx.nonPrivate || this.h.noise > 0) return this.h.noise;
    return dpmiNoiseMultiplier(this.sampleRate(), this.h.discSteps, this.ctx.budget.epsilon, this.ctx.budget.delta);
  }

  stepEvent(): DpEvent {
    const z = this.noiseMultiplier();
    if (this.ctx.nonPrivate) return DpEvents.nonPrivate(`dpmi with noise multiplier ${z} (--non-private)`);
    return DpEvents.poissonSampled(this.sampleRate(), DpEvents.gaussian(z));
  }

  /** Stage 1 (public data only). */
  private trainPublic(deadline: number): void {
    const pub = this.ctx.publicData!.data;
    const n = Math.min(this.h.publicSamples, pub.train.count);
    trainPublicAutoencoder(this.ae, pub.train.images, n, { epochs: this.h.publicEpochs, batch: Math.min(PUBLIC_BATCH, n), lr: PUBLIC_LR, latentPenalty: PUBLIC_LATENT_PENALTY, deadline }, this.ctx.random);
    // public scale: RMS of the encodings of (up to) 2000 public images
    const m = Math.min(2000, n);
    const z = this.ae.invert(pub.train.images, m, { steps: 0, lr: 0, reg: 0, clamp: INVERT_CLAMP });
    let s = 0;
    for (let i = 0; i < z.length; i++) s += z[i]! * z[i]!;
    this.latentScale = 1 / Math.max(1e-3, Math.sqrt(s / z.length));
    this.publicReady = true;
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const h = this.h;
    const n = data.train.count;
    const C = data.numClasses;
    const k = this.ae.latentDim;
    const deadline = fitDeadline(t0, this.limits, h.timeCap);
    if (!this.publicReady) this.trainPublic(deadline);
    // Stage 2: per-record inversion of the private images (never written anywhere).
    const latents = this.ae.invert(data.train.images, n, { steps: h.invertSteps, lr: h.invertLr, reg: INVERT_REG, clamp: INVERT_CLAMP });
    for (let i = 0; i < latents.length; i++) latents[i]! *= this.latentScale;
    const q = this.sampleRate();
    const z = this.noiseMultiplier();
    const sigma = z * h.clip;
    const event = this.stepEvent();
    const gate = new StepReleaseGate(this.ctx, { method: METHOD, event, deadline, signal: o.signal });
    const maxSteps = Math.min(h.discSteps, this.limits.maxSteps);
    const dParams = this.gan.disc.parameters();
    const expectedBatch = q * n;
    let stoppedBy: StopReason = 'max-steps';
    try {
      while (this.stepsDone < maxSteps) {
        const stop = gate.stopBefore(this.stepsDone);
        if (stop) {
          stoppedBy = stop;
          break;
        }
        const ts = Date.now();
        // Recorded before the batch is sampled; the ledger is the only budget gate.
        if (!gate.charge(this.stepsDone + 1, { release: 'DP-SGD discriminator gradient over inverted latents (Poisson sample, per-example clip of the real-data loss gradient, Gaussian noise)', sampleRate: q, clip: h.clip, noiseMultiplier: z, latentDim: k })) {
          stoppedBy = 'budget';
          break;
        }
        // private: the Poisson sample and its clipped gradient sum
        const idx = poissonSubsample(n, q, rng);
        const realLat = new Float32Array(idx.length * k);
        const realLab = new Int32Array(idx.length);
        for (let j = 0; j < idx.length; j++) {
          const i = idx[j]!;
          realLab[j] = data.train.labels[i]!;
          realLat.set(latents.subarray(i * k, (i + 1) * k), j * k);
        }
        const summed: Float32Array[] = idx.length
          ? tf.tidy(() => this.gan.realClippedSum(this.gan.discRows(tf.tensor2d(realLat, [idx.length, k]), realLab), h.clip).grads).map((g) => {
              const v = g.dataSync() as Float32Array;
              g.dispose();
              return Float32Array.from(v);
            })
          : dParams.map((p) => new Float32Array(p.value.size));
        realLat.fill(0);
        // the release: (Σ clip(g_i) + N(0, σ²C²I)) / (q·n)
        for (const g of summed) {
          addReleaseNoise(g, sigma, rng);
          for (let t = 0; t < g.length; t++) g[t]! /= expectedBatch;
        }
        // post-processing: + the data-independent fake term, D's Adam step, G's step every n_D
        const fakeLab = balancedLabels(rng, h.fakeBatch, C);
        const u = new Float32Array(h.fakeBatch * h.zDim);
        rng.normal(u, 1);
        tf.tidy(() => {
          const uT = tf.tensor2d(u, [h.fakeBatch, h.zDim]);
          const fake = this.gan.discRows(this.gan.generate(uT, fakeLab), fakeLab);
          const gf = this.gan.fakeGradient(fake);
          this.discOpt.step(dParams.map((p, j) => tf.add(tf.reshape(tf.tensor1d(summed[j]!), p.value.shape), gf[j]!)));
        });
        if ((this.stepsDone + 1) % h.discPerGen === 0) {
          const gl = balancedLabels(rng, h.fakeBatch, C);
          const u2 = new Float32Array(h.fakeBatch * h.zDim);
          rng.normal(u2, 1);
          tf.tidy(() => this.genOpt.step(this.gan.generatorGradient(tf.tensor2d(u2, [h.fakeBatch, h.zDim]), gl)));
        }
        this.stepsDone++;
        o.onProgress?.({ step: this.stepsDone, epoch: this.stepsDone * q, epsilon: ledger.spent(budget.delta), generatorLoss: NaN, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: Date.now() - ts } });
        if (this.stepsDone % 20 === 0) await new Promise((res) => setImmediate(res));
      }
    } finally {
      latents.fill(0);
    }
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    const lab = labels ?? balancedLabels(this.ctx.random, n, this.ctx.data.numClasses);
    return sampleFrom(this.ae, this.gan, this.latentScale, n, lab, this.ctx.random);
  }

  async save(dir: string): Promise<void> {
    const { data } = this.ctx;
    const header: DpmiHeader = { method: METHOD, steps: this.stepsDone, publicReady: this.publicReady, latentScale: this.latentScale, height: data.height, width: data.width, numClasses: data.numClasses, hyper: this.h, adamT: { disc: this.discOpt.t, gen: this.genOpt.t } };
    const tensors = [
      ...this.ae.snapshot().map((p) => ({ shape: p.shape, data: p.values, labels: { name: `ae.${p.name}` } })),
      ...namedValues('disc', this.gan.disc.parameters().map((p) => p.value)),
      ...namedValues('gen', this.gan.gen.parameters().map((p) => p.value)),
      ...namedValues('discAdam.m', this.discOpt.m),
      ...namedValues('discAdam.v', this.discOpt.v),
      ...namedValues('genAdam.m', this.genOpt.m),
      ...namedValues('genAdam.v', this.genOpt.v),
    ];
    writeCheckpoint(dir, LAYOUT, { ...header }, tensors);
  }

  async load(dir: string): Promise<void> {
    const r = readSaved(dir);
    this.ae.restore(r.ae);
    assignAll(r.get, 'disc', this.gan.disc.parameters().map((p) => p.value));
    assignAll(r.get, 'gen', this.gan.gen.parameters().map((p) => p.value));
    assignAll(r.get, 'discAdam.m', this.discOpt.m);
    assignAll(r.get, 'discAdam.v', this.discOpt.v);
    assignAll(r.get, 'genAdam.m', this.genOpt.m);
    assignAll(r.get, 'genAdam.v', this.genOpt.v);
    this.discOpt.t = r.header.adamT.disc;
    this.genOpt.t = r.header.adamT.gen;
    this.stepsDone = r.header.steps;
    this.publicReady = r.header.publicReady;
    this.latentScale = r.header.latentScale;
  }

  dispose(): void {
    this.ae.dispose();
    this.gan.dispose();
    this.discOpt.dispose();
    this.genOpt.dispose();
  }
}

function namedValues(prefix: string, vars: tf.Variable[]): { shape: number[]; data: Float32Array; labels: { name: string } }[] {
  return vars.map((v, i) => ({ shape: [...v.shape], data: v.dataSync() as Float32Array, labels: { name: `${prefix}.${i}` } }));
}

function assignAll(get: (name: string) => Float32Array, prefix: string, vars: tf.Variable[]): void {
  vars.forEach((v, i) => {
    const a = get(`${prefix}.${i}`);
    if (a.length !== v.size) throw new RangeError(`dpmi checkpoint: ${prefix}.${i} has ${a.length} values, expected ${v.size}`);
    v.assign(tf.tensor(Float32Array.from(a), v.shape));
  });
}

function readSaved(dir: string): { header: DpmiHeader; ae: { name: string; values: Float32Array }[]; get: (name: string) => Float32Array } {
  const ck = readCheckpoint(dir, LAYOUT);
  const header = ck.header as unknown as DpmiHeader;
  const byName = new Map<string, Float32Array>();
  for (const t of ck.tensors) byName.set(String(t.entry.name), t.data);
  const ae = [...byName.entries()].filter(([k]) => k.startsWith('ae.')).map(([k, v]) => ({ name: k.slice(3), values: v }));
  const get = (name: string): Float32Array => {
    const v = byName.get(name);
    if (!v) throw new RangeError(`${dir}/generator.json: dpmi checkpoint lacks tensor ${name}`);
    return v;
  };
  return { header, ae, get };
}

/** A saved dpmi generator for sampling only (public decoder + latent G; D and optimiser states unused). */
function loadDpmiSampler(dir: string): SavedSampler {
  const r = readSaved(dir);
  const h = r.header;
  // weights are overwritten from the checkpoint, so the init randomness is irrelevant
  const init: RandomSource = { kind: 'seeded', seed: 0, nextDouble: () => 0.5, nextUint32: () => 1, uniform: (o) => o.fill(0.5), normal: (o) => o.fill(0) };
  const ae = new PublicAutoencoder({ height: h.height, width: h.width, latentChannels: h.hyper.latentChannels, width0: h.hyper.aeWidth }, init);
  ae.restore(r.ae);
  const gan = new LatentGan({ latentDim: ae.latentDim, numClasses: h.numClasses, hidden: h.hyper.hidden, zDim: h.hyper.zDim, labelGain: h.hyper.labelGain }, 1);
  assignAll(r.get, 'gen', gan.gen.parameters().map((p) => p.value));
  return {
    method: METHOD,
    steps: h.steps,
    sample: async (n, rng, labels) => sampleFrom(ae, gan, h.latentScale, n, labels ?? balancedLabels(rng, n, h.numClasses), rng),
    dispose: () => {
      ae.dispose();
      gan.dispose();
    },
  };
}

const DEFAULTS: DpmiHyper = {
  publicSamples: 8000,
  publicEpochs: 1,
  latentChannels: 2,
  aeWidth: 8,
  invertSteps: 1,
  invertLr: 0.05,
  discSteps: 1000,
  discPerGen: 1,
  batch: 256,
  fakeBatch: 256,
  clip: 1,
  noise: 0,
  discLr: 2e-3,
  genLr: 5e-4,
  hidden: 128,
  zDim: 32,
  labelGain: 4,
  timeCap: 50,
  augment: 'none',
};

export const dpmiPlugin: GeneratorPlugin<DpmiHyper> = {
  name: METHOD,
  description: 'DPMI (Chen et al. 2021): private images inverted into the latent space of a generator trained on public data (--public-data, required), a low-dimensional conditional DP-GAN (discriminator trained by DP-SGD) over those latents, samples decoded by the public generator',
  relation: 'add-remove',
  treatedAsPublic: ['the hyper-parameters, including the sampling rate q = real-batch / n (n is used to set q)', 'the class list (labels of generated samples are balanced and public)', 'the public pre-training data (--public-data) and the public generator trained on it'],
  hyperParameters: [
    { key: 'publicSamples', flag: 'public-samples', type: 'integer', min: 1, help: 'dpmi: public images (first of the public train split) the public generator is trained on' },
    { key: 'publicEpochs', flag: 'public-epochs', type: 'integer', min: 1, help: 'dpmi: epochs of public-generator training (public data only, no privacy cost)' },
    { key: 'latentChannels', flag: 'latent-channels', type: 'integer', min: 1, help: 'dpmi: channels c of the (H/4)×(W/4) latent map of the public generator (latent dimension 49c on 28×28)' },
    { key: 'aeWidth', flag: 'ae-width', type: 'integer', min: 1, help: 'dpmi: first conv width of the public autoencoder' },
    { key: 'invertSteps', flag: 'invert-steps', type: 'integer', min: 0, help: 'dpmi: Adam steps of the per-record inversion after the encoder start (0 = encoder only)' },
    { key: 'invertLr', flag: 'invert-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dpmi: learning rate of the inversion' },
    { key: 'discSteps', flag: 'disc-steps', type: 'integer', min: 1, help: 'dpmi: planned DP-SGD discriminator steps T (σ calibrated so T steps spend ε)' },
    { key: 'discPerGen', flag: 'disc-per-gen', type: 'integer', min: 1, help: 'dpmi: discriminator steps per generator step (n_D)' },
    { key: 'batch', flag: 'real-batch', type: 'integer', min: 1, help: 'dpmi: expected real batch size B (Poisson sampling rate q = B/n)' },
    { key: 'fakeBatch', flag: 'gen-batch', type: 'integer', min: 2, help: 'dpmi: generated samples per step (public, fixed)' },
    { key: 'clip', flag: 'disc-clip', type: 'number', min: 0, exclusiveMin: true, help: 'dpmi: per-example L2 clip C of the discriminator\'s real-data gradient (sensitivity C, add/remove)' },
    { key: 'noise', flag: 'noise-multiplier', type: 'number', min: 0, help: 'dpmi: noise multiplier z (σ = zC); default 0 = calibrate to the budget; with --non-private the noise used' },
    { key: 'discLr', flag: 'disc-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dpmi: discriminator Adam learning rate (β1 = 0.5)' },
    { key: 'genLr', flag: 'generator-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dpmi: generator Adam learning rate (β1 = 0.5)' },
    { key: 'hidden', flag: 'gan-hidden', type: 'integer', min: 1, help: 'dpmi: hidden width of the latent GAN\'s MLPs' },
    { key: 'zDim', flag: 'z-dim', type: 'integer', min: 1, help: 'dpmi: dimension of the latent generator\'s Gaussian input' },
    { key: 'labelGain', flag: 'gan-label-gain', type: 'number', min: 0, help: 'dpmi: scale of the one-hot label in the latent GAN\'s inputs (public; default 4)' },
    { key: 'timeCap', flag: 'time-cap', type: 'number', min: 0, help: 'dpmi: stop after this many minutes when --max-minutes is not given (default 50; 0 = all planned steps); ε spent is then below the target' },
    { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'dpmi ε=1 (public Fashion-MNIST generator, 1000 DP-SGD discriminator steps of B=256)', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'dpmi ε=10 (as ε=1, less noise)', epsilon: 10, hyper: {} },
    'fashion-mnist-eps1': { description: 'dpmi ε=1 (public MNIST generator; MNIST settings)', epsilon: 1, hyper: {} },
    'fashion-mnist-eps10': { description: 'dpmi ε=10 (public MNIST generator; MNIST settings)', epsilon: 10, hyper: {} },
  },
  runFlags: ['steps', 'max-minutes', 'resume', 'public-data', 'non-private'],
  requiresPublicData: 'its generator is trained on public data only; e.g. --public-data fashion-mnist for mnist, mnist for fashion-mnist',
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, hyper, limits) => new DpmiGenerator(ctx, hyper, limits),
  gaussianMechanism: (h, facts) => dpmiMechanism(h, facts),
  loadSampler: (dir) => loadDpmiSampler(dir),
};
