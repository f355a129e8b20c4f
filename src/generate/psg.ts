/**
 * psg: private set generation (Chen, Kerkouche & Fritz, "Private Set Generation with
 * Discriminative Information", NeurIPS 2022; authors' code DingfanChen/Private-Set, main.py and
 * main_prior.py). A small labelled synthetic set S (`--images-per-class` m per class) is optimised
 * so that the gradient of a classifier on S matches the DP-SGD gradient of the private data.
 *
 * Algorithm (as main.py): for each of `iterations` rounds a fresh ConvNet θ is drawn (public
 * randomness); `outer-loop` times: `batch-loop` DP-SGD releases g̃ at the current θ, each followed by
 * one optimiser step on S (or on a generator's weights, `--generator-prior`) that lowers the
 * gradient-matching distance D(∇θ L(S), g̃) (the DC "gm" distance: Σ over weight tensors and output
 * units of 1 − cos); between outer loops θ trains `inner-loop` epochs on S (post-processing).
 *
 * Mechanism and proof. Each release is one DP-SGD step: a Poisson sample (every record independently
 * with probability q = batch-real / n), per-sample gradients of the cross-entropy (src/nn/persample.ts),
 * each clipped to L2 norm ≤ C, summed, plus N(0, σ²C²I), divided by the public expected batch size
 * q·n. Under add/remove of one record the clipped sum changes by one clipped gradient, ‖Δ‖₂ ≤ C
 * (property test in test/generate-psg.test.ts), so a step is the Poisson-subsampled Gaussian
 * mechanism with noise multiplier σ: DpEvents.poissonSampled(q, gaussian(σ)), add/remove relation
 * (n and q are public). σ is calibrated by the RDP accountant so that all T = iterations ×
 * outer-loop × batch-loop steps spend ≤ ε (data-independent). Each step is recorded with
 * ledger.tryRecord BEFORE its gradient is computed; a refused step stops the run. θ, S, the
 * generator and every sample depend on the data only through the released g̃ (post-processing).
 *
 * What differs from the paper and why:
 *  - ConvNet of width 16 (paper: 128) with instance norm, ReLU, 2×2 average pooling, depth 3, on
 *    28×28 inputs: 2 CPU cores instead of a GPU. Presets: 10 × 2 × 2 = 40 DP-SGD steps instead of
 *    the paper's ≈ 10⁵ (≈ 1.3 s CPU per step at width 16, batch 256, 10 images per class; the
 *    MNIST ε = 1 preset took 24 min wall here under load average ≈ 35).
 *  - S starts blank (black + N(0, 0.2²) jitter; `--img-init noise` = the paper's N(0, 1)): with
 *    few steps, noise-initialised images stay noise (MNIST ε = 10, 40 steps: samples.png is noise).
 *  - The images are optimised with Adam (lr 0.1) by default: the CPU schedule (40 steps) makes
 *    ~100× fewer image updates than the paper, and with the paper's SGD (lr 0.1, momentum 0.5) the
 *    pixels moved ≈ 0.002 per step (measured mean |∇| ≈ 0.01): S would stay noise. `--img-optimizer sgd
 *    --lr-img 0.1` is the paper's setting.
 *  - The synthetic-side gradient and its gradient w.r.t. S are computed with tfjs autodiff
 *    (second order). Convolutions there are written as im2col (a convolution with a fixed one-hot
 *    filter) + matMul, because tfjs registers no gradient for Conv2DBackpropFilter; the private side
 *    uses the nn modules (same weights, same function; a test checks the two gradients agree).
 *  - `--generator-prior`: S = G(z) for fixed Gaussian codes z with a small MLP generator G
 *    (paper: a DCGAN-style conv generator); the matching gradient updates G's weights.
 *  - The written synthetic.npz (60,000 images by default) draws images uniformly from S of the
 *    requested class; with `--augment affine` (presets) the runner applies small random affine maps
 *    (augment.ts: public prior, post-processing). The paper evaluates on S itself.
 *  - Input normalisation uses the published per-dataset constants of the authors' code (MNIST
 *    0.1307/0.3081, Fashion-MNIST 0.2860/0.3530; 0.5/0.5 otherwise): public numbers, not computed here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { calibrateNoiseMultiplier, DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { AvgPool2d, Conv2d, Dense, Flatten, InstanceNorm, ReLU, Sequential, setInitSeed } from '../nn/layers/index.js';
import { clippedSum, forwardBackward } from '../nn/persample.js';
import type { Param } from '../nn/module.js';
import { readJsonState, saveJsonState } from './json-state.js';
import type { GeneratorPlugin, GeneratorLimits, SavedSampler } from './plugin.js';
import type { DpGenerator, FitResult, GeneratorContext, GeneratorProgress, SampleSet, StopReason } from './types.js';

export interface PsgHyper {
  /** Synthetic images per class (paper: 1, 10, 50). */
  imagesPerClass: number;
  /** Network re-initialisations (the paper's `iteration`). */
  iterations: number;
  /** Matching rounds per network (each followed by inner training but the last). */
  outerLoop: number;
  /** DP-SGD releases per matching round (the paper's `batch_loop`). */
  batchLoop: number;
  /** Epochs of network training on S between matching rounds. */
  innerLoop: number;
  /** Expected Poisson batch size of the private data (q = batchReal / n). */
  batchReal: number;
  /** Per-sample L2 clip bound C. */
  clip: number;
  /** Learning rate of S (or of the generator's weights with a prior). */
  lrImg: number;
  /** Initial S: 'noise' N(0, 1) in normalised space (the paper's), or 'blank' black images plus N(0, 0.2²) jitter (public; strokes are drawn by the matching). */
  init: 'noise' | 'blank';
  /** Optimiser of S / the generator: 'sgd' (momentum 0.5, the paper's) or 'adam' (β = 0.5, 0.999; default: the CPU schedule makes ~100× fewer updates than the paper, and Adam's per-pixel step does not depend on the gradient's scale). */
  optimizer: 'sgd' | 'adam';
  /** Learning rate of the network's inner training (SGD). */
  lrNet: number;
  /** ConvNet width (channels per conv layer). */
  width: number;
  /** Parameterise S = G(z) with a small MLP generator (the paper's generator prior). */
  generatorPrior: boolean;
  /** 'affine': small random affine maps of every written sample (public prior, augment.ts; applied by the synth runner). */
  augment: 'none' | 'affine';
}

const FORMAT = 'dplens-psg-1';
const DEPTH = 3;
const LATENT = 32;
const GEN_HIDDEN = 256;

/** Published normalisation constants of the authors' code (public, never computed from the records). */
function normalisation(name: string): [number, number] {
  if (name === 'mnist') return [0.1307, 0.3081];
  if (name === 'fashion-mnist') return [0.286, 0.353];
  return [0.5, 0.5];
}

interface PsgState {
  format: string;
  numClasses: number;
  height: number;
  width: number;
  imagesPerClass: number;
  /** [C·m][H·W] pixels in [0, 1]; image k has label floor(k / m). */
  images: number[][];
  steps: number;
  noiseMultiplier: number;
  hyper: PsgHyper;
}

// ---------------------------------------------------------------------------------------------
// The ConvNet: nn modules (private side, per-sample gradients) and the same function in plain,
// twice-differentiable tfjs ops (synthetic side).

/** The paper's ConvNet: DEPTH × [conv 3×3 (same) → instance norm (affine) → ReLU → avg-pool 2] → dense. */
export function buildConvNet(channels: number, height: number, width: number, classes: number, w: number): Sequential {
  const layers = [];
  let c = channels;
  let h = height;
  let wd = width;
  for (let d = 0; d < DEPTH; d++) {
    layers.push(new Conv2d({ inChannels: c, outChannels: w, kernel: 3, padding: 1 }), new InstanceNorm({ channels: w, affine: true }), new ReLU(), new AvgPool2d({ kernel: 2, stride: 2 }));
    c = w;
    h = Math.floor(h / 2);
    wd = Math.floor(wd / 2);
  }
  layers.push(new Flatten(), new Dense({ inFeatures: h * wd * c, outFeatures: classes }));
  return new Sequential(layers);
}

const onehotCache = new Map<number, tf.Tensor4D>();
/** Fixed one-hot filter turning a 3×3 'same' convolution into im2col patches (row (a·3+b)·ci+c, as Conv2d's weight layout). */
function unfoldFilter(ci: number): tf.Tensor4D {
  let f = onehotCache.get(ci);
  if (!f) {
    const K = 9 * ci;
    const buf = new Float32Array(9 * ci * K);
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < ci; c++) buf[((a * 3 + b) * ci + c) * K + (a * 3 + b) * ci + c] = 1;
    f = tf.keep(tf.tensor4d(buf, [3, 3, ci, K]));
    onehotCache.set(ci, f);
  }
  return f;
}

/**
 * Logits of the ConvNet with parameters `p` (the order of buildConvNet(...).parameters():
 * per block conv weight, conv bias, norm gamma, norm beta; then dense weight, dense bias) on x [N, H, W, C].
 * Only ops whose gradients tfjs can differentiate again (second order).
 */
export function convNetLogits(p: tf.Tensor[], x: tf.Tensor4D): tf.Tensor2D {
  let h: tf.Tensor4D = x;
  for (let d = 0; d < DEPTH; d++) {
    const [wt, b, gamma, beta] = p.slice(4 * d, 4 * d + 4) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const [n, H, W, ci] = h.shape;
    const co = wt.shape[3]!;
    const patches = tf.conv2d(h, unfoldFilter(ci), 1, 'same');
    const y = tf.add(tf.matMul(tf.reshape(patches, [n * H * W, 9 * ci]), tf.reshape(wt, [9 * ci, co])), b);
    const y4 = tf.reshape(y, [n, H, W, co]);
    const mean = tf.mean(y4, [1, 2], true);
    const cen = tf.sub(y4, mean);
    const v = tf.mean(tf.square(cen), [1, 2], true);
    const norm = tf.add(tf.mul(tf.div(cen, tf.sqrt(tf.add(v, 1e-5))), gamma), beta);
    const r = tf.relu(norm);
    const H2 = Math.floor(H / 2);
    const W2 = Math.floor(W / 2);
    const crop = H2 * 2 === H && W2 * 2 === W ? r : tf.slice(r, [0, 0, 0, 0], [n, H2 * 2, W2 * 2, co]);
    h = tf.mean(tf.reshape(crop, [n, H2, 2, W2, 2, co]), [2, 4]) as tf.Tensor4D;
  }
  const [n] = h.shape;
  const flat = tf.reshape(h, [n, -1]);
  return tf.add(tf.matMul(flat, p[4 * DEPTH]!), p[4 * DEPTH + 1]!) as tf.Tensor2D;
}

/**
 * exp whose gradient is computed from its input. tfjs's own Exp gradient multiplies by the SAVED
 * output, a copy the outer tape does not see, so second-order gradients through it are wrong
 * (measured: 10× off against finite differences); this one is differentiable twice.
 */
const expTwice = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  (args[1] as tf.GradSaveFunc)([x]);
  return { value: tf.exp(x), gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.mul(dy as tf.Tensor, tf.exp(saved[0]!)) };
}) as (x: tf.Tensor) => tf.Tensor;

/** Mean cross-entropy of logits [N, C] with one-hot labels (max shift taken as a constant). */
function meanCrossEntropy(logits: tf.Tensor2D, onehot: tf.Tensor2D): tf.Scalar {
  const host = logits.dataSync();
  const [n, c] = logits.shape;
  const mx = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, host[i * c + j]!);
    mx[i] = m;
  }
  const shifted = tf.sub(logits, tf.tensor2d(mx, [n, 1]));
  const lse = tf.log(tf.sum(expTwice(shifted), 1));
  const picked = tf.sum(tf.mul(shifted, onehot), 1);
  return tf.mean(tf.sub(lse, picked)) as tf.Scalar;
}

/** Gradients of the mean cross-entropy of (x, onehot) w.r.t. the parameters (differentiable in x). */
export function synthGradients(p: tf.Tensor[], x: tf.Tensor4D, onehot: tf.Tensor2D): tf.Tensor[] {
  return tf.grads((...ps: tf.Tensor[]) => meanCrossEntropy(convNetLogits(ps, x), onehot))(p);
}

/**
 * The DC "gm" distance (Zhao et al. 2021, as the authors' match_loss): Σ over weight tensors (conv,
 * dense; biases and norm parameters count 0) and output units o of 1 − ⟨gs_o, gr_o⟩ / (‖gs_o‖‖gr_o‖ + 1e-6).
 */
export function matchDistance(gs: tf.Tensor[], gr: tf.Tensor[]): tf.Scalar {
  let total: tf.Tensor = tf.scalar(0);
  for (let i = 0; i < gs.length; i++) {
    if (gs[i]!.rank < 2) continue;
    const co = gs[i]!.shape[gs[i]!.rank - 1]!;
    const a = tf.reshape(gs[i]!, [-1, co]);
    const b = tf.reshape(gr[i]!, [-1, co]);
    const dot = tf.sum(tf.mul(a, b), 0);
    const na = tf.sqrt(tf.add(tf.sum(tf.square(a), 0), 1e-12));
    const nb = tf.sqrt(tf.sum(tf.square(b), 0));
    total = tf.add(total, tf.sum(tf.sub(1, tf.div(dot, tf.add(tf.mul(na, nb), 1e-6)))));
  }
  return total as tf.Scalar;
}

// ---------------------------------------------------------------------------------------------
// One DP-SGD release (the only contact with the private records).

/** Indices of a Poisson sample: each of n records independently with probability q (from rng). */
export function poissonSample(n: number, q: number, rng: RandomSource): Int32Array {
  const u = new Float64Array(n);
  rng.uniform(u);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (u[i]! < q) out.push(i);
  u.fill(0);
  return Int32Array.from(out);
}

/** Σ_i clip_C(∇θ CE(x_i, y_i)) over the given records as host arrays in parameter order (no noise). */
export function clippedGradientSum(model: Sequential, images: Uint8Array, labels: Int32Array, idx: Int32Array, dims: { height: number; width: number; channels: number }, norm: [number, number], clip: number): Float32Array[] {
  const params = model.parameters();
  if (idx.length === 0) return params.map((p) => new Float32Array(p.value.size));
  const d = dims.height * dims.width * dims.channels;
  const buf = new Float32Array(idx.length * d);
  const lab = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    for (let t = 0; t < d; t++) buf[k * d + t] = (images[i * d + t]! / 255 - norm[0]) / norm[1];
    lab[k] = labels[i]!;
  }
  const grads = tf.tidy(() => {
    const x = tf.tensor4d(buf, [idx.length, dims.height, dims.width, dims.channels]);
    const fb = forwardBackward(model, x, tf.tensor1d(lab, 'int32'));
    return clippedSum(fb.tape, params, { maxGradNorm: clip }).grads;
  });
  buf.fill(0);
  const out = grads.map((g) => g.dataSync() as Float32Array);
  tf.dispose(grads);
  return out.map((a) => Float32Array.from(a));
}

/** Parameters of the ConvNet (the length of one release). */
export function convNetParamCount(channels: number, height: number, width: number, classes: number, w: number): number {
  let c = channels;
  let h = height;
  let wd = width;
  let total = 0;
  for (let d = 0; d < DEPTH; d++) {
    total += 9 * c * w + w + 2 * w;
    c = w;
    h = Math.floor(h / 2);
    wd = Math.floor(wd / 2);
  }
  return total + h * wd * c * classes + classes;
}

/** One step's release as the run makes it, from hyper-parameters, public facts (n) and the budget only (the audit replays it). */
export interface PsgRelease {
  sampleRate: number;
  noiseMultiplier: number;
  clip: number;
  /** Public expected batch q·n the noisy sum is divided by. */
  expectedBatch: number;
  /** Planned steps T (σ is calibrated for them). */
  plannedSteps: number;
  event: DpEvent;
}

export function psgRelease(h: Pick<PsgHyper, 'iterations' | 'outerLoop' | 'batchLoop' | 'batchReal' | 'clip'>, trainCount: number, budget: { epsilon: number; delta: number }): PsgRelease {
  const plannedSteps = h.iterations * h.outerLoop * h.batchLoop;
  const sampleRate = h.batchReal / trainCount;
  const noiseMultiplier = psgNoiseMultiplier(plannedSteps, sampleRate, budget.epsilon, budget.delta);
  return { sampleRate, noiseMultiplier, clip: h.clip, expectedBatch: sampleRate * trainCount, plannedSteps, event: DpEvents.poissonSampled(sampleRate, DpEvents.gaussian(noiseMultiplier)) };
}

/**
 * The release of one step: (Σ clipped + N(0, σ²)) / (expected batch), per coordinate, noise from rng.
 * Wipes `sums` (private). The mechanism audit replays exactly this function with canary gradients.
 */
export function releaseNoisyGradient(sums: Float32Array[], sigma: number, expectedBatch: number, rng: RandomSource): Float32Array[] {
  return sums.map((s) => {
    const out = new Float32Array(s.length);
    if (sigma > 0) rng.normal(out, sigma);
    for (let t = 0; t < s.length; t++) out[t] = (s[t]! + out[t]!) / expectedBatch;
    s.fill(0);
    return out;
  });
}

/** Smallest noise multiplier for T Poisson-subsampled Gaussian steps at rate q within (ε, δ) (RDP, add/remove). */
export function psgNoiseMultiplier(steps: number, sampleRate: number, epsilon: number, delta: number): number {
  return calibrateNoiseMultiplier({ targetEpsilon: epsilon, delta, sampleRate, steps, accountant: 'rdp' });
}

// ---------------------------------------------------------------------------------------------
// Generator prior: S = G(z), G a small MLP on fixed latent codes.

interface GeneratorPrior {
  z: tf.Tensor2D;
  vars: tf.Variable[];
}

function makePrior(count: number, d: number, rng: RandomSource): GeneratorPrior {
  const gauss = (shape: number[], std: number): tf.Tensor => {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    rng.normal(a, std);
    return tf.tensor(a, shape);
  };
  const z = tf.keep(gauss([count, LATENT], 1)) as tf.Tensor2D;
  const vars = [
    tf.variable(gauss([LATENT, GEN_HIDDEN], 1 / Math.sqrt(LATENT))),
    tf.variable(tf.zeros([GEN_HIDDEN])),
    tf.variable(gauss([GEN_HIDDEN, d], 1 / Math.sqrt(GEN_HIDDEN))),
    tf.variable(tf.zeros([d])),
  ];
  return { z, vars };
}

/** Normalised images of the prior, [count, H, W, C]: pixels in [0, 1] (sigmoid) mapped by the normalisation. */
function priorImages(g: GeneratorPrior, vars: tf.Tensor[], shape: [number, number, number, number], norm: [number, number]): tf.Tensor4D {
  const h = tf.relu(tf.add(tf.matMul(g.z, vars[0] as tf.Tensor2D), vars[1]!));
  const px = tf.sigmoid(tf.add(tf.matMul(h, vars[2] as tf.Tensor2D), vars[3]!));
  return tf.reshape(tf.div(tf.sub(px, norm[0]), norm[1]), shape) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------------------------

class PsgGenerator implements DpGenerator {
  readonly method = 'psg';
  private state?: PsgState;
  private stepsDone = 0;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly h: PsgHyper,
    private readonly limits: GeneratorLimits,
  ) {
    for (const k of ['imagesPerClass', 'iterations', 'outerLoop', 'batchLoop', 'batchReal', 'width'] as const)
      if (!Number.isInteger(h[k]) || h[k] < 1) throw new RangeError(`psg: ${k} must be a positive integer, got ${h[k]}`);
    if (!Number.isInteger(h.innerLoop) || h.innerLoop < 0) throw new RangeError(`psg: innerLoop must be an integer >= 0, got ${h.innerLoop}`);
    if (!(h.clip > 0)) throw new RangeError(`psg: clip must be > 0, got ${h.clip}`);
    if (ctx.data.channels !== 1) throw new RangeError(`${ctx.data.name}: psg supports single-channel images, got ${ctx.data.channels} channels`);
    if (h.batchReal > ctx.data.train.count) throw new RangeError(`psg: --batch-real ${h.batchReal} exceeds the ${ctx.data.train.count} training records`);
  }

  get steps(): number {
    return this.stepsDone;
  }

  private release(): PsgRelease {
    return (this.cachedRelease ??= psgRelease(this.h, this.ctx.data.train.count, this.ctx.budget));
  }
  private cachedRelease?: PsgRelease;

  /** One DP-SGD step: Poisson-subsampled Gaussian, add/remove, sensitivity C. */
  stepEvent(): DpEvent {
    return this.release().event;
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const { height: H, width: W, channels: Ch, numClasses: C } = data;
    const d = H * W * Ch;
    const n = data.train.count;
    const m = this.h.imagesPerClass;
    const M = C * m;
    const rel = this.release();
    const q = rel.sampleRate;
    const z = rel.noiseMultiplier;
    const sigma = z * rel.clip;
    const expectedBatch = rel.expectedBatch;
    const norm = normalisation(data.name);
    const fingerprint = this.ctx.datasetFingerprint ?? keyedFingerprint(data.rawFingerprint);
    const event = rel.event;
    const deadline = Number.isFinite(this.limits.maxMinutes) ? t0 + this.limits.maxMinutes * 60_000 : Infinity;
    const labelsSyn = Int32Array.from({ length: M }, (_, k) => Math.floor(k / m));
    const onehot = tf.keep(tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labelsSyn, 'int32'), C), 'float32'))) as tf.Tensor2D;
    const shape: [number, number, number, number] = [M, H, W, Ch];
    // S starts from N(0, 1) in normalised space (as the authors' code) or blank (public either way).
    const init = new Float32Array(M * d);
    rng.normal(init, this.h.init === 'noise' ? 1 : 0.2);
    if (this.h.init === 'blank') for (let t = 0; t < init.length; t++) init[t]! += -norm[0] / norm[1];
    const prior = this.h.generatorPrior ? makePrior(M, d, rng) : undefined;
    // The optimised variables: S itself, or the generator's weights.
    const xSyn = tf.variable(tf.tensor4d(init, shape));
    const vars = prior ? prior.vars : [xSyn];
    const opt = new ImageOptimizer(vars, this.h.optimizer, this.h.lrImg);
    let stoppedBy: StopReason = 'max-steps';
    let lastLoss = NaN;
    outer: for (let it = 0; it < this.h.iterations; it++) {
      setInitSeed(rng.nextUint32());
      const net = buildConvNet(Ch, H, W, C, this.h.width);
      const params: Param[] = net.parameters();
      try {
        for (let ol = 0; ol < this.h.outerLoop; ol++) {
          for (let bl = 0; bl < this.h.batchLoop; bl++) {
            if (o.signal?.aborted) {
              stoppedBy = 'aborted';
              break outer;
            }
            if (this.stepsDone >= this.limits.maxSteps) {
              stoppedBy = 'max-steps';
              break outer;
            }
            if (Date.now() > deadline) {
              stoppedBy = 'max-minutes';
              break outer;
            }
            // Recorded before the private gradient is computed; the ledger is the only budget gate.
            {
              const ok = ledger.tryRecord({ event, method: this.method, datasetFingerprint: fingerprint, meta: { step: this.stepsDone + 1, release: 'DP-SGD gradient (Poisson sample, per-sample clip, Gaussian noise) of a fresh ConvNet', sampleRate: q, clip: this.h.clip, noiseMultiplier: z, iteration: it } });
              if (!ok.ok) {
                stoppedBy = 'budget';
                break outer;
              }
            }
            const idx = poissonSample(n, q, rng);
            const sums = clippedGradientSum(net, data.train.images, data.train.labels, idx, { height: H, width: W, channels: Ch }, norm, this.h.clip);
            // The release: (Σ clipped + N(0, σ²C²)) / (q·n). Everything below is post-processing.
            const released = releaseNoisyGradient(sums, sigma, expectedBatch, rng).map((g, j) => tf.tensor(g, params[j]!.value.shape));
            this.stepsDone++;
            const pv = params.map((p) => p.value as tf.Tensor);
            const { value, grads } = tf.variableGrads(() => matchDistance(synthGradients(pv, prior ? priorImages(prior, prior.vars, shape, norm) : xSyn, onehot), released), vars);
            lastLoss = value.dataSync()[0]!;
            opt.step(vars.map((v) => grads[v.name]!));
            tf.dispose([value, ...Object.values(grads), ...released]);
            o.onProgress?.({ step: this.stepsDone, epoch: it, epsilon: ledger.spent(budget.delta), generatorLoss: lastLoss, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: 0 } });
            await new Promise((res) => setImmediate(res));
          }
          if (ol === this.h.outerLoop - 1) break;
          // Train θ on S (post-processing): full-batch SGD, `innerLoop` epochs (S ≤ 256 images = one batch, as the paper's batch_train).
          const xs = prior ? tf.tidy(() => priorImages(prior, prior.vars, shape, norm)) : tf.clone(xSyn);
          for (let e = 0; e < this.h.innerLoop; e++) {
            tf.tidy(() => {
              const pv = params.map((p) => p.value as tf.Tensor);
              const g = tf.grads((...ps: tf.Tensor[]) => meanCrossEntropy(convNetLogits(ps, xs), onehot))(pv);
              params.forEach((p, j) => p.value.assign(tf.sub(p.value, tf.mul(g[j]!, this.h.lrNet))));
            });
          }
          xs.dispose();
        }
      } finally {
        params.forEach((p) => p.value.dispose());
      }
    }
    const final = prior ? tf.tidy(() => priorImages(prior, prior.vars, shape, norm)) : xSyn;
    const px = final.dataSync();
    const images: number[][] = [];
    for (let k = 0; k < M; k++) images.push(Array.from(px.subarray(k * d, (k + 1) * d), (v) => Math.round(Math.min(1, Math.max(0, v * norm[1] + norm[0])) * 1e4) / 1e4));
    if (prior) {
      final.dispose();
      tf.dispose([prior.z, ...prior.vars]);
    }
    opt.dispose();
    tf.dispose([xSyn, onehot]);
    if (this.stepsDone > 0) this.state = { format: FORMAT, numClasses: C, height: H, width: W, imagesPerClass: m, images, steps: this.stepsDone, noiseMultiplier: z, hyper: this.h };
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  /** The optimised set S: [C·m] images in [0, 1] with labels floor(k / m). */
  syntheticSet(): SampleSet {
    if (!this.state) throw new Error('psg: syntheticSet() before fit() or load()');
    const s = this.state;
    const d = s.height * s.width;
    const images = new Uint8Array(s.images.length * d);
    s.images.forEach((im, k) => im.forEach((v, t) => (images[k * d + t] = Math.round(255 * v))));
    return { images, labels: Int32Array.from({ length: s.images.length }, (_, k) => Math.floor(k / s.imagesPerClass)), count: s.images.length, height: s.height, width: s.width, channels: 1 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    if (!this.state) throw new Error('psg: sample() before fit() or load()');
    return sampleState(this.state, n, this.ctx.random, labels);
  }

  async save(dir: string): Promise<void> {
    if (!this.state) throw new Error('psg: nothing to save before fit()');
    saveJsonState(dir, this.state);
  }

  async load(dir: string): Promise<void> {
    this.state = readState(dir);
    this.stepsDone = this.state.steps;
  }

  dispose(): void {
    this.state = undefined;
  }
}

/** SGD with momentum 0.5 (torch convention: buf = μ·buf + g; x −= lr·buf) or Adam (β1 0.5, β2 0.999) over the given variables. */
class ImageOptimizer {
  private readonly m: tf.Tensor[];
  private readonly v: tf.Tensor[];
  private t = 0;
  constructor(
    private readonly vars: tf.Variable[],
    private readonly kind: 'sgd' | 'adam',
    private readonly lr: number,
  ) {
    this.m = vars.map((x) => tf.keep(tf.zerosLike(x)));
    this.v = kind === 'adam' ? vars.map((x) => tf.keep(tf.zerosLike(x))) : [];
  }
  step(grads: tf.Tensor[]): void {
    this.t++;
    const t = this.t;
    tf.tidy(() => {
      this.vars.forEach((x, j) => {
        const g = grads[j]!;
        if (this.kind === 'sgd') {
          const buf = tf.add(tf.mul(this.m[j]!, 0.5), g);
          x.assign(tf.sub(x, tf.mul(buf, this.lr)));
          this.m[j]!.dispose();
          this.m[j] = tf.keep(buf);
          return;
        }
        const b1 = 0.5;
        const b2 = 0.999;
        const m = tf.add(tf.mul(this.m[j]!, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[j]!, b2), tf.mul(tf.square(g), 1 - b2));
        x.assign(tf.sub(x, tf.mul(tf.div(tf.div(m, 1 - b1 ** t), tf.add(tf.sqrt(tf.div(v, 1 - b2 ** t)), 1e-8)), this.lr)));
        this.m[j]!.dispose();
        this.v[j]!.dispose();
        this.m[j] = tf.keep(m);
        this.v[j] = tf.keep(v);
      });
    });
  }
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

function readState(dir: string): PsgState {
  return readJsonState<PsgState>(dir, 'psg', FORMAT);
}

/** n samples: balanced labels (or the given ones); each an image of its class drawn uniformly from S. */
function sampleState(s: PsgState, n: number, rng: RandomSource, labels?: Int32Array): SampleSet {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
  const { numClasses: C, imagesPerClass: m, height: H, width: W } = s;
  const d = H * W;
  const lab = labels ?? Int32Array.from({ length: n }, (_, i) => i % C);
  if (lab.length !== n) throw new RangeError(`sample: ${lab.length} labels for ${n} samples`);
  const images = new Uint8Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = lab[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new RangeError(`sample: label ${c} out of range [0, ${C})`);
    const a = s.images[c * m + Math.min(m - 1, Math.floor(rng.nextDouble() * m))]!;
    for (let t = 0; t < d; t++) images[i * d + t] = Math.round(255 * a[t]!);
  }
  return { images, labels: Int32Array.from(lab), count: n, height: H, width: W, channels: 1 };
}

const DEFAULTS: PsgHyper = { imagesPerClass: 10, iterations: 10, outerLoop: 2, batchLoop: 2, innerLoop: 5, batchReal: 256, clip: 0.1, lrImg: 0.1, optimizer: 'adam', init: 'blank', lrNet: 0.01, width: 16, generatorPrior: false, augment: 'affine' };

export const psgPlugin: GeneratorPlugin<PsgHyper> = {
  name: 'psg',
  description: 'private set generation (Chen et al. 2022): a small labelled synthetic set optimised so that ConvNet gradients on it match DP-SGD gradients of the private data',
  relation: 'add-remove',
  treatedAsPublic: ['n, the number of training records (the sampling rate q = batch-real / n)', 'the class list', 'the normalisation constants of the authors\' code'],
  hyperParameters: [
    { key: 'imagesPerClass', flag: 'images-per-class', type: 'integer', min: 1, help: 'psg: synthetic images per class (paper: 1, 10, 50; default 10)' },
    { key: 'iterations', flag: 'iterations', type: 'integer', min: 1, help: 'psg: network re-initialisations (DP-SGD steps = iterations × outer-loop × batch-loop)' },
    { key: 'outerLoop', flag: 'outer-loop', type: 'integer', min: 1, help: 'psg: matching rounds per network' },
    { key: 'batchLoop', flag: 'batch-loop', type: 'integer', min: 1, help: 'psg: DP-SGD releases per matching round' },
    { key: 'innerLoop', flag: 'inner-loop', type: 'integer', min: 0, help: 'psg: epochs of network training on the synthetic set between matching rounds' },
    { key: 'batchReal', flag: 'batch-real', type: 'integer', min: 1, help: 'psg: expected Poisson batch of private records per step (q = batch-real / n; default 256)' },
    { key: 'clip', flag: 'l2-clip', type: 'number', min: 0, exclusiveMin: true, help: 'psg: per-sample gradient L2 clip bound C (default 0.1, as the paper)' },
    { key: 'lrImg', flag: 'lr-img', type: 'number', min: 0, exclusiveMin: true, help: 'psg: learning rate of the synthetic images (or of the generator prior; default 0.1)' },
    { key: 'init', flag: 'img-init', type: 'choice', choices: ['blank', 'noise'], help: 'psg: initial synthetic images: blank (black + small jitter, default) or noise (N(0, 1), the paper\'s)' },
    { key: 'optimizer', flag: 'img-optimizer', type: 'choice', choices: ['adam', 'sgd'], help: 'psg: optimiser of the synthetic images: adam (default) or sgd with momentum 0.5 (the paper\'s)' },
    { key: 'lrNet', flag: 'lr-net', type: 'number', min: 0, exclusiveMin: true, help: 'psg: learning rate of the network trained on the synthetic set' },
    { key: 'width', flag: 'net-width', type: 'integer', min: 1, help: 'psg: ConvNet width (paper 128; default 16 for CPU)' },
    { key: 'generatorPrior', flag: 'generator-prior', type: 'boolean', whenSet: true, help: 'psg: parameterise the set by a small MLP generator on fixed latent codes (the paper\'s generator prior)' },
    { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'psg ε=1: 10 images per class, 10 × 2 × 2 = 40 DP-SGD steps at q = 256/n, C = 0.1, blank init, Adam 0.1 on the images, affine jitter', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'psg ε=10: as ε=1 (σ smaller)', epsilon: 10, hyper: {} },
    'fashion-mnist-eps1': { description: 'psg ε=1 on Fashion-MNIST, no affine jitter (upright clothing)', epsilon: 1, hyper: { augment: 'none' } },
    'fashion-mnist-eps10': { description: 'psg ε=10 on Fashion-MNIST, no affine jitter', epsilon: 10, hyper: { augment: 'none' } },
  },
  runFlags: ['steps', 'max-minutes'],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, hyper, limits) => new PsgGenerator(ctx, hyper, limits),
  loadSampler(dir: string): SavedSampler {
    const s = readState(dir);
    return { method: 'psg', steps: s.steps, sample: async (n, rng, labels) => sampleState(s, n, rng, labels), dispose: () => undefined };
  },
};

export { PsgGenerator };
