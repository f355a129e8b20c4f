/**
 * dpmi stage 3: the low-dimensional conditional GAN over latent codes (see dpmi.ts for the
 * method and the privacy proof). Discriminator D(z, y) and generator G(u, y) are small MLPs
 * (src/nn modules); the label enters as a one-hot concatenated to the input.
 *
 * The only private quantity is the per-example gradient of D's real-data loss term
 * ℓ(z_i, y_i) = softplus(−D(z_i, y_i)), computed in one backward pass by src/nn/persample.ts and
 * clipped per example (`realClippedSum`). The fake term softplus(D(G(u, y), y)), G's loss and the
 * optimiser states are functions of D's and G's current parameters and public randomness only.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dense, LeakyReLU, Sequential, setInitSeed } from '../nn/layers/index.js';
import { clippedSum, forwardBackward, type LossOutput } from '../nn/persample.js';
import type { Param } from '../nn/module.js';

export interface LatentGanConfig {
  /** Latent dimension k of the public generator (D's input besides the label, G's output). */
  latentDim: number;
  numClasses: number;
  /** Hidden width of both MLPs. */
  hidden: number;
  /** Dimension of G's Gaussian input u. */
  zDim: number;
  /** Scale of the one-hot label in both inputs (public; > 1 lets label pathways move faster). */
  labelGain?: number;
}

/** Real-data loss of D on logits [N, 1]: Σ softplus(−l), d/dl = −σ(−l). Row i depends only on example i. */
export function realDataLoss(logits: tf.Tensor): LossOutput {
  const l = tf.reshape(logits, [-1]);
  return { lossSum: tf.sum(tf.softplus(tf.neg(l))) as tf.Scalar, dlogits: tf.reshape(tf.neg(tf.sigmoid(tf.neg(l))), logits.shape), correct: tf.scalar(0) };
}

/** [N, k + C] input rows: latent ⧺ gain · one-hot label. */
export function conditionRows(latents: tf.Tensor2D, labels: Int32Array, numClasses: number, gain = 1): tf.Tensor2D {
  return tf.concat([latents, tf.mul(gain, tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), 'float32'))], 1) as tf.Tensor2D;
}

export class LatentGan {
  readonly disc: Sequential;
  readonly gen: Sequential;

  constructor(
    readonly config: LatentGanConfig,
    initSeed: number,
  ) {
    const { latentDim: k, numClasses: C, hidden: h, zDim } = config;
    setInitSeed(initSeed);
    this.disc = new Sequential([new Dense({ inFeatures: k + C, outFeatures: h }), new LeakyReLU(0.2), new Dense({ inFeatures: h, outFeatures: h }), new LeakyReLU(0.2), new Dense({ inFeatures: h, outFeatures: 1 })]);
    this.gen = new Sequential([new Dense({ inFeatures: zDim + C, outFeatures: h }), new LeakyReLU(0.2), new Dense({ inFeatures: h, outFeatures: h }), new LeakyReLU(0.2), new Dense({ inFeatures: h, outFeatures: k })]);
  }

  /**
   * Σ_i clip_C(∇_θD ℓ(z_i, y_i)) over the rows of `real` ([N, k + C], the batch), one tensor per D
   * parameter (order of disc.parameters()), and the per-example norms before clipping. Call in tidy.
   */
  realClippedSum(real: tf.Tensor2D, clip: number): { grads: tf.Tensor[]; norms: tf.Tensor1D } {
    const fb = forwardBackward(this.disc, real, tf.zeros([real.shape[0]], 'int32') as tf.Tensor1D, (logits) => realDataLoss(logits));
    return clippedSum(fb.tape, this.disc.parameters(), { maxGradNorm: clip });
  }

  /** D's input rows for latents and labels. */
  discRows(latents: tf.Tensor2D, labels: Int32Array): tf.Tensor2D {
    return conditionRows(latents, labels, this.config.numClasses, this.config.labelGain);
  }

  /** G(u, y) [N, k] (inference path, differentiable by tfjs autodiff). */
  generate(u: tf.Tensor2D, labels: Int32Array): tf.Tensor2D {
    return this.gen.forward(conditionRows(u, labels, this.config.numClasses, this.config.labelGain), false) as tf.Tensor2D;
  }

  /** ∇_θD of the mean fake-data loss softplus(D(x, y)) over generated rows `fake` (public). Call in tidy. */
  fakeGradient(fake: tf.Tensor2D): tf.Tensor[] {
    const params = this.disc.parameters();
    const { grads } = tf.variableGrads(() => tf.mean(tf.softplus(this.disc.forward(fake, false))) as tf.Scalar, params.map((p) => p.value));
    return params.map((p) => grads[p.value.name]!);
  }

  /** ∇_θG of the non-saturating generator loss mean softplus(−D(G(u, y), y)). Call in tidy. */
  generatorGradient(u: tf.Tensor2D, labels: Int32Array): tf.Tensor[] {
    const params = this.gen.parameters();
    const { grads } = tf.variableGrads(() => {
      const x = conditionRows(this.generate(u, labels), labels, this.config.numClasses, this.config.labelGain);
      return tf.mean(tf.softplus(tf.neg(this.disc.forward(x, false)))) as tf.Scalar;
    }, params.map((p) => p.value));
    return params.map((p) => grads[p.value.name]!);
  }

  dispose(): void {
    for (const p of [...this.disc.parameters(), ...this.gen.parameters()]) p.value.dispose();
  }
}

/** Adam on a list of parameters, with its state exposed for checkpoints (resume continues it). */
export class ParamAdam {
  t = 0;
  readonly m: tf.Variable[];
  readonly v: tf.Variable[];

  constructor(
    readonly params: Param[],
    readonly lr: number,
    readonly beta1 = 0.5,
    readonly beta2 = 0.999,
  ) {
    this.m = params.map((p) => tf.variable(tf.zerosLike(p.value), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p.value), false));
  }

  step(grads: tf.Tensor[]): void {
    this.t++;
    const { beta1: b1, beta2: b2, lr, t } = this;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[i]!;
        const m = tf.add(tf.mul(b1, this.m[i]!), tf.mul(1 - b1, g));
        const v = tf.add(tf.mul(b2, this.v[i]!), tf.mul(1 - b2, tf.square(g)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
        p.value.assign(tf.sub(p.value, tf.mul(lr, tf.div(tf.div(m, 1 - b1 ** t), tf.add(tf.sqrt(tf.div(v, 1 - b2 ** t)), 1e-8)))));
      });
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
