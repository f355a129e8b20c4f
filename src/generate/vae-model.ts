/**
 * A small conditional VAE for 28×28 images built from src/nn modules, so that its per-sample
 * gradients (ghost norms, clipped sums) come from the same GradTape machinery as DP-SGD.
 *
 * Encoder q(z | x, y): MLP on x ⧺ g·onehot(y) → (μ, log σ²) ∈ ℝ^{2k}. Decoder p(x | z, y): MLP on
 * z ⧺ g·onehot(y) → Bernoulli logits per pixel (pixels in [0, 1] as the Bernoulli mean, the usual
 * MNIST VAE likelihood). Per-example loss (negative ELBO, β-weighted KL):
 *   ℓ_i = Σ_pixels BCE(x, σ(logits)) + β · ½ Σ_k (μ² + e^{lv} − lv − 1),
 * z = μ + e^{lv/2} ⊙ ε with ε ~ N(0, I) drawn by the caller from the run's RandomSource.
 * Every op is row-wise, so row i of every gradient record depends on example i only: the
 * per-sample gradients are exact (checked against a per-example loop in the tests).
 *
 * `backwardElbo` chains the two modules by hand: the decoder's backward gives ∂ℓ/∂(z ⧺ y); its z
 * part plus the KL term gives ∂ℓ/∂μ and ∂ℓ/∂lv (reparameterisation), which go into the encoder's
 * backward — both modules push their records onto ONE tape, so clipping the tape clips each
 * example's whole ELBO gradient (encoder + decoder) to one norm. With the encoder frozen (the
 * DP² decoder phase) only the decoder's records are pushed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dense, ELU, GradTape, Sequential, setInitSeed, type Module, type Param } from '../nn/index.js';
import type { CheckpointTensor } from '../nn/checkpoint.js';

export interface VaeConfig {
  /** Pixels per image (H·W, one channel). */
  inputDim: number;
  numClasses: number;
  /** Hidden widths of the encoder (the decoder uses them reversed). */
  hidden: number[];
  /** Latent dimension k. */
  zDim: number;
  /** g: scale of the one-hot label fed to both networks. */
  labelGain: number;
  /** Initial decoder output bias (a data-independent "dark background" prior on the logits). */
  outputBias: number;
}

function mlp(sizes: number[], seed: number): Sequential {
  setInitSeed(seed);
  const layers: Module[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    layers.push(new Dense({ inFeatures: sizes[i]!, outFeatures: sizes[i + 1]! }));
    if (i + 2 < sizes.length) layers.push(new ELU());
  }
  return new Sequential(layers);
}

export interface ElboBatch {
  /** Images [B, d] in [0, 1]. */
  x: tf.Tensor2D;
  /** Labels [B]. */
  labels: Int32Array;
  /** Reparameterisation noise ε [B, k] (from the run's RandomSource). */
  eps: tf.Tensor2D;
  /**
   * Labels fed as zeros (public pre-training on data with another label space: the label pathways
   * get no gradient from it).
   */
  noLabels?: boolean;
}

export interface ElboPass {
  tape: GradTape;
  /** Σ_i ℓ_i (scalar; depends on the batch — never reported for private batches). */
  lossSum: tf.Scalar;
  /** Per-example loss [B]. */
  perExample: tf.Tensor1D;
}

export class ConditionalVae {
  readonly encoder: Sequential;
  readonly decoder: Sequential;

  constructor(
    readonly config: VaeConfig,
    seed: number,
  ) {
    const { inputDim: d, numClasses: C, hidden, zDim: k } = config;
    this.encoder = mlp([d + C, ...hidden, 2 * k], seed >>> 0);
    this.decoder = mlp([k + C, ...[...hidden].reverse(), d], (seed ^ 0x5bd1e995) >>> 0);
    const last = this.decoder.layers[this.decoder.layers.length - 1] as Dense;
    tf.tidy(() => last.bias!.value.assign(tf.fill([d], config.outputBias)));
  }

  encoderParams(): Param[] {
    return this.encoder.parameters().map((p) => ({ name: `encoder.${p.name}`, value: p.value }));
  }
  decoderParams(): Param[] {
    return this.decoder.parameters().map((p) => ({ name: `decoder.${p.name}`, value: p.value }));
  }
  params(): Param[] {
    return [...this.encoderParams(), ...this.decoderParams()];
  }

  private labelInput(labels: Int32Array, zero: boolean): tf.Tensor2D {
    const C = this.config.numClasses;
    if (zero) return tf.zeros([labels.length, C]);
    return tf.mul(tf.oneHot(tf.tensor1d(labels, 'int32'), C), this.config.labelGain) as tf.Tensor2D;
  }

  /**
   * Forward and backward of Σ_i ℓ_i with per-sample gradient records on one tape (call inside
   * tf.tidy). With `trainEncoder` false the encoder runs in inference mode and pushes no record.
   */
  elbo(b: ElboBatch, beta: number, trainEncoder: boolean): ElboPass {
    const k = this.config.zDim;
    const n = b.labels.length;
    const y = this.labelInput(b.labels, b.noLabels === true);
    const h = this.encoder.forward(tf.concat([b.x, y], 1), trainEncoder) as tf.Tensor2D;
    const mu = tf.slice(h, [0, 0], [n, k]);
    const lv = tf.slice(h, [0, k], [n, k]);
    const std = tf.exp(tf.mul(lv, 0.5));
    const z = tf.add(mu, tf.mul(std, b.eps));
    const logits = this.decoder.forward(tf.concat([z, y], 1), true) as tf.Tensor2D;
    // BCE with logits: softplus(l) − x·l (stable), summed over pixels
    const rec = tf.sum(tf.sub(tf.softplus(logits), tf.mul(b.x, logits)), 1);
    const kl = tf.mul(tf.sum(tf.sub(tf.sub(tf.add(tf.square(mu), tf.exp(lv)), lv), 1), 1), 0.5);
    const perExample = tf.add(rec, tf.mul(kl, beta)) as tf.Tensor1D;
    const tape = new GradTape();
    const dlogits = tf.sub(tf.sigmoid(logits), b.x);
    const dIn = this.decoder.backward(dlogits, tape, trainEncoder);
    if (trainEncoder) {
      const dz = tf.slice(dIn, [0, 0], [n, k]);
      const dmu = tf.add(dz, tf.mul(mu, beta));
      const dlv = tf.add(tf.mul(tf.mul(dz, b.eps), tf.mul(std, 0.5)), tf.mul(tf.sub(tf.exp(lv), 1), 0.5 * beta));
      this.encoder.backward(tf.concat([dmu, dlv], 1), tape, false);
    }
    return { tape, lossSum: tf.sum(perExample) as tf.Scalar, perExample };
  }

  /** Decoded Bernoulli means in [0, 1] for latent codes z [n, k] and labels (inference). */
  decode(z: tf.Tensor2D, labels: Int32Array): tf.Tensor2D {
    return tf.tidy(() => tf.sigmoid(this.decoder.forward(tf.concat([z, this.labelInput(labels, false)], 1), false)) as tf.Tensor2D);
  }

  /** Parameter tensors for a checkpoint (labels: name). */
  snapshot(): CheckpointTensor[] {
    return this.params().map((p) => ({ shape: [...p.value.shape], data: p.value.dataSync() as Float32Array, labels: { name: p.name } }));
  }

  /** Restores parameters written by snapshot(); every parameter must be present with its shape. */
  restore(tensors: { entry: { shape: number[]; [k: string]: unknown }; data: Float32Array }[], where: string): void {
    const byName = new Map(tensors.map((t) => [String(t.entry.name), t]));
    for (const p of this.params()) {
      const t = byName.get(p.name);
      if (!t) throw new RangeError(`${where}: parameter ${p.name} missing`);
      if (!tf.util.arraysEqual(t.entry.shape, p.value.shape)) throw new RangeError(`${where}: parameter ${p.name} has shape [${t.entry.shape.join(', ')}], expected [${p.value.shape.join(', ')}]`);
      p.value.assign(tf.tensor(t.data, p.value.shape));
    }
  }

  dispose(): void {
    for (const p of this.params()) p.value.dispose();
  }
}

/**
 * Adam over a parameter list (generate/ may not import train/; this is the same update as
 * train/optim.ts's Adam), with its moments exposed for exact resume.
 */
export class ParamAdam {
  private m: tf.Variable[];
  private v: tf.Variable[];
  t = 0;
  constructor(
    readonly params: Param[],
    public lr: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => tf.variable(tf.zerosLike(p.value), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p.value), false));
  }

  step(grads: tf.Tensor[]): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[i]!;
        const m = this.m[i]!;
        const v = this.v[i]!;
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        p.value.assign(tf.sub(p.value, tf.mul(tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.eps)), this.lr)));
      });
    });
  }

  /** Moments for a checkpoint (labels: slot, name). */
  snapshot(prefix: string): CheckpointTensor[] {
    return this.params.flatMap((p, i) => [
      { shape: [...p.value.shape], data: this.m[i]!.dataSync() as Float32Array, labels: { name: `${prefix}.m.${p.name}` } },
      { shape: [...p.value.shape], data: this.v[i]!.dataSync() as Float32Array, labels: { name: `${prefix}.v.${p.name}` } },
    ]);
  }

  restore(tensors: { entry: { shape: number[]; [k: string]: unknown }; data: Float32Array }[], prefix: string, t: number): void {
    const byName = new Map(tensors.map((x) => [String(x.entry.name), x]));
    this.params.forEach((p, i) => {
      const m = byName.get(`${prefix}.m.${p.name}`);
      const v = byName.get(`${prefix}.v.${p.name}`);
      if (m) this.m[i]!.assign(tf.tensor(m.data, p.value.shape));
      if (v) this.v[i]!.assign(tf.tensor(v.data, p.value.shape));
    });
    this.t = t;
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}
