/**
 * dpmi stages 1 and 2: the public generator (a convolutional autoencoder trained on the public data only) and the
 * per-record inversion of private images into its latent space. See dpmi.ts for the method and
 * the privacy argument; this file holds no DP mechanism.
 *
 * Stage 1 reads only the public images and public randomness (`trainPublicAutoencoder`). Stage 2
 * (`PublicAutoencoder.invert`) maps each image x to a latent z(x) = argmin_z BCE(dec(z), x) + λ/2‖z‖²,
 * started at the encoder output enc(x) and refined by Adam on z. Every operation is row-wise: the loss
 * is a sum of per-record terms, Adam's moments are per coordinate, and the chunking never mixes a
 * record's value into another's — so z(x) depends on x and the public autoencoder only (a test checks that
 * a record's latent does not change when the other records of its chunk change).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RandomSource } from '../privacy/index.js';

export interface PublicAutoencoderConfig {
  height: number;
  width: number;
  /** Channels c of the (H/4)×(W/4) latent map (latent dimension k = HW·c/16). */
  latentChannels: number;
  /** Channels w of the first conv layer (the second has 2w). */
  width0: number;
}

export interface PublicTrainOptions {
  epochs: number;
  batch: number;
  lr: number;
  /** Weight of the L2 penalty on the latent code (keeps latents at a scale the DP-GAN can match). */
  latentPenalty: number;
  /** Stop early at this wall-clock time (ms since epoch). */
  deadline?: number;
  onEpoch?: (epoch: number, meanLoss: number) => void;
}

export interface InversionOptions {
  /** Adam steps on z after the encoder initialisation (0 = encoder mean only). */
  steps: number;
  lr: number;
  /** λ of the Gaussian prior term λ/2‖z‖². */
  reg: number;
  /** Latents are clamped to [−clamp, clamp] (row-wise). */
  clamp: number;
  /** Records per chunk (memory only; the result does not depend on it). */
  chunk?: number;
}

interface NamedVar {
  name: string;
  v: tf.Variable;
}

/**
 * The public generator: a small convolutional autoencoder on [0, 1] images of H×W (H, W
 * divisible by 4). The latent is a (H/4)×(W/4)×c map (k = HW·c/16 numbers): local features, so a
 * decoder trained on one image family still draws the strokes of another (an MLP VAE trained on
 * Fashion-MNIST decoded every MNIST digit as a garment — see dpmi.ts).
 *   encoder: conv3×3 1→w relu, avgpool 2, conv3×3 w→2w relu, avgpool 2, conv3×3 2w→c
 *   decoder: conv3×3 c→2w relu, upsample 2, conv3×3 2w→w relu, upsample 2, conv3×3 w→1 (pixel logits)
 */
export class PublicAutoencoder {
  readonly enc: NamedVar[];
  readonly dec: NamedVar[];
  readonly latentDim: number;
  private readonly lh: number;
  private readonly lw: number;

  constructor(
    readonly config: PublicAutoencoderConfig,
    rng: RandomSource,
  ) {
    const { height: H, width: W, latentChannels: c, width0: w } = config;
    if (H % 4 !== 0 || W % 4 !== 0) throw new RangeError(`dpmi: the public generator needs image sides divisible by 4, got ${H}×${W}`);
    this.lh = H / 4;
    this.lw = W / 4;
    this.latentDim = this.lh * this.lw * c;
    const conv = (name: string, cin: number, cout: number): NamedVar[] => {
      const fan = 9 * cin;
      const k = new Float32Array(9 * cin * cout);
      rng.uniform(k);
      const b = Math.sqrt(6 / fan);
      for (let i = 0; i < k.length; i++) k[i] = (2 * k[i]! - 1) * b;
      return [
        { name: `${name}.kernel`, v: tf.variable(tf.tensor4d(k, [3, 3, cin, cout]), true) },
        { name: `${name}.bias`, v: tf.variable(tf.zeros([cout]), true) },
      ];
    };
    this.enc = [...conv('enc0', 1, w), ...conv('enc1', w, 2 * w), ...conv('enc2', 2 * w, c)];
    this.dec = [...conv('dec0', c, 2 * w), ...conv('dec1', 2 * w, w), ...conv('dec2', w, 1)];
  }

  private static conv(x: tf.Tensor4D, p: NamedVar[], i: number): tf.Tensor4D {
    return tf.add(tf.conv2d(x, p[2 * i]!.v as tf.Tensor4D, 1, 'same'), p[2 * i + 1]!.v) as tf.Tensor4D;
  }

  /** Latents [N, k] of images [N, d] in [0, 1]. */
  encode(x: tf.Tensor2D): tf.Tensor2D {
    const { height: H, width: W } = this.config;
    const n = x.shape[0];
    let h = tf.relu(PublicAutoencoder.conv(tf.reshape(x, [n, H, W, 1]) as tf.Tensor4D, this.enc, 0)) as tf.Tensor4D;
    h = tf.avgPool(h, 2, 2, 'valid');
    h = tf.relu(PublicAutoencoder.conv(h, this.enc, 1)) as tf.Tensor4D;
    h = tf.avgPool(h, 2, 2, 'valid');
    return tf.reshape(PublicAutoencoder.conv(h, this.enc, 2), [n, this.latentDim]) as tf.Tensor2D;
  }

  /** Pixel logits [N, d] of latents z [N, k] (differentiable by tfjs autodiff). */
  decodeLogits(z: tf.Tensor2D): tf.Tensor2D {
    const { height: H, width: W, latentChannels: c } = this.config;
    const n = z.shape[0];
    let h = tf.relu(PublicAutoencoder.conv(tf.reshape(z, [n, this.lh, this.lw, c]) as tf.Tensor4D, this.dec, 0)) as tf.Tensor4D;
    h = upsample2(h);
    h = tf.relu(PublicAutoencoder.conv(h, this.dec, 1)) as tf.Tensor4D;
    h = upsample2(h);
    return tf.reshape(PublicAutoencoder.conv(h, this.dec, 2), [n, H * W]) as tf.Tensor2D;
  }

  /** Images in [0, 1] of latents [N·k] (host arrays). */
  decode(z: Float32Array, n: number): Float32Array {
    const out = tf.tidy(() => tf.sigmoid(this.decodeLogits(tf.tensor2d(z, [n, this.latentDim]))));
    const v = out.dataSync() as Float32Array;
    out.dispose();
    return v;
  }

  /**
   * Per-record inversion (stage 2): rows of `images` (uint8, [n, d]) → latents [n, k]. Each row's
   * result depends on that row and the autoencoder only.
   */
  invert(images: Uint8Array, n: number, o: InversionOptions): Float32Array {
    const d = this.config.height * this.config.width;
    const k = this.latentDim;
    const out = new Float32Array(n * k);
    const chunk = o.chunk ?? 1000;
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const x = tf.tidy(() => tf.div(tf.cast(tf.tensor2d(images.subarray(s * d, (s + m) * d), [m, d], 'int32'), 'float32'), 255) as tf.Tensor2D);
      let z = tf.tidy(() => this.encode(x));
      let mAdam = tf.zerosLike(z);
      let vAdam = tf.zerosLike(z);
      const lossOf = (zz: tf.Tensor2D) => tf.add(bceSum(this.decodeLogits(zz), x), tf.mul(o.reg / 2, tf.sum(tf.square(zz)))) as tf.Scalar;
      const grad = tf.grad((zz: tf.Tensor) => lossOf(zz as tf.Tensor2D));
      for (let t = 1; t <= o.steps; t++) {
        const [z2, m2, v2] = tf.tidy(() => {
          const g = grad(z);
          const mm = tf.add(tf.mul(0.9, mAdam), tf.mul(0.1, g));
          const vv = tf.add(tf.mul(0.999, vAdam), tf.mul(0.001, tf.square(g)));
          const step = tf.div(tf.div(mm, 1 - 0.9 ** t), tf.add(tf.sqrt(tf.div(vv, 1 - 0.999 ** t)), 1e-8));
          return [tf.sub(z, tf.mul(o.lr, step)), mm, vv];
        });
        z.dispose();
        mAdam.dispose();
        vAdam.dispose();
        z = z2 as tf.Tensor2D;
        mAdam = m2 as tf.Tensor2D;
        vAdam = v2 as tf.Tensor2D;
      }
      const zc = tf.tidy(() => tf.clipByValue(z, -o.clamp, o.clamp));
      out.set(zc.dataSync() as Float32Array, s * k);
      for (const t of [x, z, mAdam, vAdam, zc]) t.dispose();
    }
    return out;
  }

  /** Mean per-image BCE (nats) of reconstructing `images` from `latents` (a diagnostic). */
  reconstructionLoss(images: Uint8Array, latents: Float32Array, n: number): number {
    const d = this.config.height * this.config.width;
    const r = tf.tidy(() => bceSum(this.decodeLogits(tf.tensor2d(latents, [n, this.latentDim])), tf.div(tf.cast(tf.tensor2d(images.subarray(0, n * d), [n, d], 'int32'), 'float32'), 255) as tf.Tensor2D));
    const v = r.dataSync()[0]!;
    r.dispose();
    return v / n;
  }

  /** Weights of encoder then decoder (for checkpoints). */
  snapshot(): { name: string; shape: number[]; values: Float32Array }[] {
    return [...this.enc, ...this.dec].map((p) => ({ name: p.name, shape: [...p.v.shape], values: p.v.dataSync() as Float32Array }));
  }

  restore(s: { name: string; values: ArrayLike<number> }[]): void {
    for (const p of [...this.enc, ...this.dec]) {
      const e = s.find((x) => x.name === p.name);
      if (!e || e.values.length !== p.v.size) throw new RangeError(`public generator checkpoint: parameter ${p.name} missing or of the wrong size`);
      p.v.assign(tf.tensor(Float32Array.from(e.values), p.v.shape));
    }
  }

  dispose(): void {
    for (const p of [...this.enc, ...this.dec]) p.v.dispose();
  }
}

/** Nearest-neighbour 2× upsampling of NHWC maps (reshape + rank-4 tile: tfjs differentiates tile up to rank 4). */
function upsample2(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const wide = tf.reshape(tf.tile(tf.reshape(x, [n * h, w, 1, c]), [1, 1, 2, 1]), [n, h, 1, 2 * w * c]);
  return tf.reshape(tf.tile(wide, [1, 1, 2, 1]), [n, 2 * h, 2 * w, c]) as tf.Tensor4D;
}

/** Σ over rows and pixels of the binary cross-entropy of logits against targets in [0, 1]. */
function bceSum(logits: tf.Tensor2D, x: tf.Tensor2D): tf.Scalar {
  // softplus(l) − x·l = −[x log σ(l) + (1 − x) log(1 − σ(l))]
  return tf.sum(tf.sub(tf.softplus(logits), tf.mul(x, logits))) as tf.Scalar;
}

/**
 * Stage 1: trains the VAE on the public images only (shuffling and reparameterisation noise from
 * `rng`). Returns the mean loss of the last epoch. Nothing private is an argument.
 */
export function trainPublicAutoencoder(vae: PublicAutoencoder, images: Uint8Array, n: number, o: PublicTrainOptions, rng: RandomSource): number {
  const d = vae.config.height * vae.config.width;
  const opt = tf.train.adam(o.lr, 0.9, 0.999, 1e-8);
  const vars = [...vae.enc, ...vae.dec].map((p) => p.v);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const xb = new Float32Array(o.batch * d);
  let last = NaN;
  for (let e = 0; e < o.epochs; e++) {
    if (o.deadline !== undefined && Date.now() > o.deadline) break;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(rng.nextDouble() * (i + 1)));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    let sum = 0;
    let seen = 0;
    for (let s = 0; s + o.batch <= n; s += o.batch) {
      for (let b = 0; b < o.batch; b++) {
        const r = order[s + b]!;
        for (let t = 0; t < d; t++) xb[b * d + t] = images[r * d + t]! / 255;
      }
      const lossT = tf.tidy(() => {
        const x = tf.tensor2d(xb, [o.batch, d]);
        const { value, grads } = tf.variableGrads(() => {
          const z = vae.encode(x);
          const rec = bceSum(vae.decodeLogits(z), x);
          return tf.div(tf.add(rec, tf.mul(o.latentPenalty, tf.sum(tf.square(z)))), o.batch) as tf.Scalar;
        }, vars);
        opt.applyGradients(grads as tf.NamedTensorMap as Parameters<tf.AdamOptimizer['applyGradients']>[0]);
        return value;
      });
      sum += lossT.dataSync()[0]!;
      lossT.dispose();
      seen++;
      if (o.deadline !== undefined && Date.now() > o.deadline) break;
    }
    last = seen ? sum / seen : NaN;
    o.onEpoch?.(e + 1, last);
  }
  opt.dispose();
  return last;
}
