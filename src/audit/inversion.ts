/**
 * Gradient inversion: given the gradient a client shared for ONE training example of the reference
 * CNN, reconstruct the example and measure how close it is (PSNR, SSIM).
 *
 * Two attacks:
 *  - 'layerwise' (default; inversion-layerwise.ts): reads the label, the fc1 input and the conv2
 *    input off the gradient in closed form (iDLG label, dense-layer ratio, a null-space solve on the
 *    conv2 weight gradient), then fits the pixels to the recovered conv1 features. Recovers MNIST
 *    digits at 30–45 dB PSNR (fresh model; 23–27 dB after one epoch of training) in seconds.
 *  - 'gradient-matching' (DLG, Zhu et al. 2019; "Inverting Gradients", Geiping et al. 2020):
 *    optimise a dummy image and soft label so that their gradient matches the shared one (cosine
 *    distance, Adam with signed steps, TV prior). Kept as the generic baseline; on this ReLU/max-pool
 *    network it stalls at ≈ 10–13 dB.
 *
 * The DP variant shares the DP-SGD release for that example instead: the gradient clipped to L2
 * norm C plus N(0, σ²C²) noise per coordinate (what one DP-SGD step with that single example in
 * the batch releases). The noise comes from the privacy core's RandomSource.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureAuditGradients } from './autodiff.js';
import { invertGradientLayerwise } from './inversion-layerwise.js';
import { refCnnFeatures, refCnnGradient, refCnnLogits, refCnnShapes, softCrossEntropy } from './refcnn.js';
import { loadModel } from '../nn/index.js';
import { xorshift32 } from '../util/prng.js';

/** Anything with the privacy core's `normal(out, std)` (secureRandom() / seededRandom(seed)). */
export interface NormalSource {
  normal(out: Float32Array | Float64Array, std?: number): void;
}

export interface InversionOptions {
  /** 'layerwise' (analytic read-out + feature fit; default) or 'gradient-matching' (DLG-style). */
  method?: 'layerwise' | 'gradient-matching';
  /** Restarts of the optimisation ('layerwise' only; default 2), ranked by the attack's own loss. */
  restarts?: number;
  /** 'layerwise' only: steps of the final exact-gradient-matching refinement (default 600, 0 = off). */
  refineIterations?: number;
  /** Adam iterations (default 1500 per restart for 'layerwise', 600 for 'gradient-matching'). */
  iterations?: number;
  /** Adam learning rate (default 0.02 'layerwise', 0.1 'gradient-matching'; cosine-decayed to 1%). */
  learningRate?: number;
  /** Weight of the total-variation prior (default 0 'layerwise', 1e-2 'gradient-matching'). */
  tvWeight?: number;
  /**
   * Weight of the feature-matching term (default 1): for one example, the first dense layer's
   * gradient is the outer product of its input h and its output gradient δ (and ∂b = δ), so h is
   * read off the shared gradient (h = ∂W·∂b/‖∂b‖², as in R-GAP / Fowl et al.) and the dummy's
   * features are pulled towards it. 0 gives plain gradient matching.
   */
  featureWeight?: number;
  /**
   * Gradient distance: 'cosine' over all parameters (Geiping et al.), 'layer-cosine' = mean of
   * per-tensor cosine distances (gives the small first-layer gradients, which carry most spatial
   * detail, equal weight), or 'l2' (DLG). Default 'layer-cosine'.
   */
  matching?: 'cosine' | 'layer-cosine' | 'l2';
  /** Seed of the dummy-image initialisation (attack randomness, not DP noise). */
  seed?: number;
  /** Called every 50 iterations with the matching loss. */
  onProgress?: (iteration: number, loss: number) => void;
}

export interface InversionResult {
  /** Reconstruction in [0, 1], H×W×C row-major. */
  reconstruction: Float32Array;
  /** Label the attack ends with (argmax of the optimised soft label). */
  label: number;
  /** The attack's own final loss ('gradient-matching': 1 − cosine similarity; 'layerwise': relative feature residual). */
  matchLoss: number;
  method: 'layerwise' | 'gradient-matching';
  /** 'layerwise': relative residual of the recovered conv2 input in the conv2-gradient subspace (≈1e-7 exact, ≈1 on noise). */
  subspaceResidual?: number;
  iterations: number;
  seconds: number;
}

/** Clip the whole gradient to L2 norm ≤ clip and add N(0, (σ·clip)²) to every coordinate. */
export function privatizeGradient(grad: tf.Tensor[], clip: number, noiseMultiplier: number, rng: NormalSource | undefined): tf.Tensor[] {
  if (!(clip > 0)) throw new RangeError(`clip must be > 0, got ${clip}`);
  if (!(noiseMultiplier >= 0)) throw new RangeError(`noise multiplier must be ≥ 0, got ${noiseMultiplier}`);
  if (noiseMultiplier > 0 && !rng) throw new Error('privatizeGradient: a RandomSource is required when noise > 0');
  let sq = 0;
  const arrays = grad.map((g) => g.dataSync() as Float32Array);
  for (const a of arrays) for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  const scale = Math.min(1, clip / Math.max(Math.sqrt(sq), 1e-12));
  return grad.map((g, j) => {
    const out = new Float32Array(arrays[j]!.length);
    if (noiseMultiplier > 0) rng!.normal(out, noiseMultiplier * clip);
    const a = arrays[j]!;
    for (let i = 0; i < a.length; i++) out[i]! += a[i]! * scale;
    return tf.tensor(out, g.shape);
  });
}

/** Gradient inversion of one example's shared gradient under the reference CNN (params fixed). */
export function invertGradient(params: tf.Tensor[], sharedGrad: tf.Tensor[], shape: { height: number; width: number; channels: number; classes: number }, opts: InversionOptions = {}): InversionResult {
  const method = opts.method ?? 'layerwise';
  if (params.length !== 8 || sharedGrad.length !== 8) throw new RangeError(`gradient inversion supports the reference CNN (8 parameter tensors); got ${params.length} parameters and ${sharedGrad.length} gradients`);
  sharedGrad.forEach((g, i) => {
    if (g.shape.join(',') !== params[i]!.shape.join(',')) throw new RangeError(`shared gradient ${i} has shape [${g.shape}], parameter has [${params[i]!.shape}]`);
  });
  if (method === 'layerwise') {
    const r = invertGradientLayerwise(
      params.map((t) => t.dataSync()),
      sharedGrad.map((t) => t.dataSync()),
      shape,
      { iterations: opts.iterations, restarts: opts.restarts, refineIterations: opts.refineIterations, learningRate: opts.learningRate, tvWeight: opts.tvWeight, seed: opts.seed, onProgress: opts.onProgress },
    );
    return { reconstruction: r.reconstruction, label: r.label, matchLoss: r.matchLoss, method, subspaceResidual: r.subspaceResidual, iterations: r.iterations, seconds: r.seconds };
  }
  if (method !== 'gradient-matching') throw new RangeError(`unknown inversion method "${String(method)}" (layerwise, gradient-matching)`);
  return invertGradientMatching(params, sharedGrad, shape, opts);
}

/** The "inverting gradients" attack (DLG-style gradient matching) on the reference CNN. */
function invertGradientMatching(params: tf.Tensor[], sharedGrad: tf.Tensor[], shape: { height: number; width: number; channels: number; classes: number }, opts: InversionOptions): InversionResult {
  ensureAuditGradients();
  const t0 = Date.now();
  const iterations = opts.iterations ?? 600;
  const lr0 = opts.learningRate ?? 0.1;
  const tvWeight = opts.tvWeight ?? 1e-2;
  const { height: H, width: W, channels: C, classes: K } = shape;
  // iDLG label inference: for cross-entropy, ∂L/∂b of the last layer is softmax − onehot, whose only
  // negative entry is the true label. Used to initialise the soft label (then optimised jointly).
  const lastBias = sharedGrad[sharedGrad.length - 1]!.dataSync();
  let guess = 0;
  for (let k = 1; k < K; k++) if (lastBias[k]! < lastBias[guess]!) guess = k;
  const rnd = xorshift32((opts.seed ?? 1) >>> 0);
  const init = new Float32Array(H * W * C);
  for (let i = 0; i < init.length; i++) init[i] = rnd();
  const x = tf.variable(tf.tensor4d(init, [1, H, W, C]), true, 'inversion_x');
  const labelInit = new Float32Array(K);
  labelInit[guess] = 4;
  const yLogits = tf.variable(tf.tensor2d(labelInit, [1, K]), true, 'inversion_y');
  const targetNorm = Math.sqrt(sharedGrad.reduce((acc, g) => acc + (tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]!) as number), 0));
  const target = sharedGrad.map((g) => tf.keep(tf.div(g, Math.max(targetNorm, 1e-12))));
  const featureWeight = opts.featureWeight ?? 1;
  const fc1 = sharedGrad.length - 4; // fc1.weight, fc1.bias, fc2.weight, fc2.bias are the last four
  const hStar = tf.keep(
    tf.tidy(() => {
      const dW = sharedGrad[fc1]! as tf.Tensor2D;
      const db = tf.reshape(sharedGrad[fc1 + 1]!, [-1, 1]);
      const h = tf.reshape(tf.div(tf.matMul(dW, db), tf.add(tf.sum(tf.square(db)), 1e-20)), [1, -1]);
      return tf.div(h, tf.add(tf.norm(h), 1e-12));
    }),
  );
  const opt = tf.train.adam(lr0);
  let matchLoss = NaN;
  try {
    for (let it = 0; it < iterations; it++) {
      // cosine learning-rate decay to 1% (stabilises the final image)
      (opt as unknown as { learningRate: number }).learningRate = lr0 * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * it) / iterations)));
      const lossVal = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const soft = tf.div(tf.exp(yLogits), tf.sum(tf.exp(yLogits))) as tf.Tensor2D;
          const g = refCnnGradient(params, x as unknown as tf.Tensor4D, soft);
          const matching = opts.matching ?? 'layer-cosine';
          let cosLoss: tf.Tensor;
          if (matching === 'layer-cosine') {
            let acc: tf.Tensor = tf.scalar(0);
            for (let j = 0; j < g.length; j++) {
              const dot = tf.sum(tf.mul(g[j]!, target[j]!));
              const den = tf.sqrt(tf.add(tf.mul(tf.sum(tf.square(g[j]!)), tf.sum(tf.square(target[j]!))), 1e-30));
              acc = tf.add(acc, tf.sub(1, tf.div(dot, den)));
            }
            cosLoss = tf.div(acc, g.length);
          } else {
            let dot: tf.Tensor = tf.scalar(0);
            let nrm: tf.Tensor = tf.scalar(0);
            for (let j = 0; j < g.length; j++) {
              dot = tf.add(dot, tf.sum(tf.mul(g[j]!, target[j]!)));
              nrm = tf.add(nrm, tf.sum(tf.square(g[j]!)));
            }
            // target is unit-norm: ‖g/‖g*‖ − t‖² = ‖g‖²/‖g*‖² − 2⟨g, t⟩/‖g*‖ + 1
            cosLoss =
              matching === 'cosine'
                ? tf.sub(1, tf.div(dot, tf.sqrt(tf.add(nrm, 1e-20))))
                : tf.add(tf.sub(tf.div(nrm, targetNorm * targetNorm), tf.mul(2 / targetNorm, dot)), 1);
          }
          const dh = tf.sub(tf.slice(x, [0, 1, 0, 0], [1, H - 1, W, C]), tf.slice(x, [0, 0, 0, 0], [1, H - 1, W, C]));
          const dw = tf.sub(tf.slice(x, [0, 0, 1, 0], [1, H, W - 1, C]), tf.slice(x, [0, 0, 0, 0], [1, H, W - 1, C]));
          const tv = tf.div(tf.add(tf.sum(tf.abs(dh)), tf.sum(tf.abs(dw))), H * W * C);
          let loss = tf.add(cosLoss, tf.mul(tvWeight, tv));
          if (featureWeight > 0) {
            const h = refCnnFeatures(params, x as unknown as tf.Tensor4D);
            const hn = tf.div(h, tf.sqrt(tf.add(tf.sum(tf.square(h)), 1e-20)));
            loss = tf.add(loss, tf.mul(featureWeight, tf.sum(tf.square(tf.sub(hn, hStar)))));
          }
          return loss as tf.Scalar;
        }, [x, yLogits]);
        // signed gradients (Geiping et al.): robust to the badly scaled second-order gradient
        const signed: Record<string, tf.Tensor> = {};
        for (const [k, v] of Object.entries(grads)) signed[k] = tf.sign(v);
        opt.applyGradients(signed as unknown as Parameters<typeof opt.applyGradients>[0]);
        x.assign(tf.clipByValue(x, 0, 1));
        return value.dataSync()[0]!;
      });
      matchLoss = lossVal;
      if (opts.onProgress && (it % 50 === 0 || it === iterations - 1)) opts.onProgress(it, lossVal);
    }
    const reconstruction = x.dataSync().slice() as Float32Array;
    const label = tf.tidy(() => tf.argMax(yLogits, 1).dataSync()[0]!);
    return { reconstruction, label, matchLoss, method: 'gradient-matching', iterations, seconds: (Date.now() - t0) / 1000 };
  } finally {
    x.dispose();
    yLogits.dispose();
    opt.dispose();
    target.forEach((t) => t.dispose());
    hStar.dispose();
  }
}

/** Peak signal-to-noise ratio (dB) of two images in [0, 1]. */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) throw new RangeError(`psnr: images differ in size (${a.length} vs ${b.length})`);
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10(1 / mse);
}

/** Structural similarity (Wang et al. 2004: 11×11 Gaussian window σ 1.5, K1 0.01, K2 0.03, range 1), mean over channels. */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, height: number, width: number, channels = 1): number {
  if (a.length !== height * width * channels || b.length !== a.length) throw new RangeError('ssim: image sizes do not match height×width×channels');
  const r = 5;
  const win: number[] = [];
  let ws = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp(-(i * i) / (2 * 1.5 * 1.5));
    win.push(v);
    ws += v;
  }
  for (let i = 0; i < win.length; i++) win[i]! /= ws;
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  // separable Gaussian filter, "valid" region only (as in the reference implementation)
  const filt = (img: Float64Array): Float64Array => {
    const oh = height - 2 * r;
    const ow = width - 2 * r;
    const tmp = new Float64Array(height * ow);
    for (let y = 0; y < height; y++) for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let k = 0; k < win.length; k++) s += win[k]! * img[y * width + x + k]!;
      tmp[y * ow + x] = s;
    }
    const out = new Float64Array(oh * ow);
    for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let k = 0; k < win.length; k++) s += win[k]! * tmp[(y + k) * ow + x]!;
      out[y * ow + x] = s;
    }
    return out;
  };
  let total = 0;
  for (let c = 0; c < channels; c++) {
    const A = new Float64Array(height * width);
    const B = new Float64Array(height * width);
    for (let i = 0; i < height * width; i++) {
      A[i] = a[i * channels + c]!;
      B[i] = b[i * channels + c]!;
    }
    const AA = A.map((v) => v * v);
    const BB = B.map((v) => v * v);
    const AB = A.map((v, i) => v * B[i]!);
    const muA = filt(A);
    const muB = filt(B);
    const sAA = filt(AA);
    const sBB = filt(BB);
    const sAB = filt(AB);
    let sum = 0;
    for (let i = 0; i < muA.length; i++) {
      const ma = muA[i]!;
      const mb = muB[i]!;
      const va = sAA[i]! - ma * ma;
      const vb = sBB[i]! - mb * mb;
      const cov = sAB[i]! - ma * mb;
      sum += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
    }
    total += sum / muA.length;
  }
  return total / channels;
}

/** Convenience: true gradient of one example (pixels in [0, 1], H×W×C) under the reference CNN. */
export function exampleGradient(params: tf.Tensor[], pixels: Float32Array, label: number, shape: { height: number; width: number; channels: number; classes: number }): tf.Tensor[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(pixels, [1, shape.height, shape.width, shape.channels]);
    const y = tf.cast(tf.oneHot(tf.tensor1d([label], 'int32'), shape.classes), 'float32') as tf.Tensor2D;
    return refCnnGradient(params, x, y);
  });
}

/** Predicted class of one image (sanity checks, reports). */
export function predict(params: tf.Tensor[], pixels: Float32Array, shape: { height: number; width: number; channels: number }): number {
  return tf.tidy(() => tf.argMax(refCnnLogits(params, tf.tensor4d(pixels, [1, shape.height, shape.width, shape.channels])), 1).dataSync()[0]!);
}

export { softCrossEntropy };

/** Parameters of the reference CNN from a `dplens train` run folder (model.json + weights). */
export async function loadRefCnnParams(dir: string): Promise<tf.Tensor[]> {
  await Promise.resolve(); // kept async: callers await it
  const { model, inputShape } = loadModel(dir);
  const [h, w, c] = inputShape as [number, number, number];
  const ps = model.parameters().map((p) => p.value as tf.Tensor);
  const want = refCnnShapes(h, w, c, ps[ps.length - 1]!.shape[0]!);
  const ok = ps.length === want.length && ps.every((p, i) => p.shape.join(',') === want[i]!.shape.join(','));
  if (!ok) throw new Error(`${dir}: gradient inversion supports the reference CNN only; the model's parameter shapes are ${ps.map((p) => `[${p.shape}]`).join(' ')}`);
  return ps;
}

export interface InversionRun {
  index: number;
  split: 'train' | 'test';
  method: 'layerwise' | 'gradient-matching';
  label: number;
  inferredLabel: number;
  noise: number;
  clip: number | null;
  psnr: number;
  ssim: number;
  /**
   * PSNR of the best flat image (every pixel at the truth's mean intensity): the most an image with
   * no spatial information about the example can score (an all-black image scores less).
   */
  flatPsnr: number;
  matchLoss: number;
  subspaceResidual?: number;
  iterations: number;
  seconds: number;
  truth: Float32Array;
  reconstruction: Float32Array;
}

/**
 * End to end: the gradient of training example `index` of `ds` under `params` (optionally clipped to
 * `clip` and noised with σ = `noise` by `rng`, as one DP-SGD step would release it), inverted.
 */
export function runInversion(
  params: tf.Tensor[],
  ds: { height: number; width: number; channels: number; numClasses: number; train: { images: Uint8Array; labels: Int32Array; count: number }; test?: { images: Uint8Array; labels: Int32Array; count: number } },
  o: { index: number; split?: 'train' | 'test'; noise?: number; clip?: number; rng?: NormalSource } & InversionOptions,
): InversionRun {
  const { height, width, channels, numClasses } = ds;
  const split = o.split ?? 'train';
  const part = split === 'test' ? ds.test : ds.train;
  if (!part) throw new RangeError(`dataset has no ${split} split`);
  if (!(Number.isInteger(o.index) && o.index >= 0 && o.index < part.count)) throw new RangeError(`index must be in [0, ${part.count}), got ${o.index}`);
  const per = height * width * channels;
  const truth = new Float32Array(per);
  for (let i = 0; i < per; i++) truth[i] = part.images[o.index * per + i]! / 255;
  const label = part.labels[o.index]!;
  const shape = { height, width, channels, classes: numClasses };
  const g = exampleGradient(params, truth, label, shape);
  const noise = o.noise ?? 0;
  const shared = o.clip !== undefined || noise > 0 ? privatizeGradient(g, o.clip ?? 1, noise, o.rng) : g;
  const r = invertGradient(params, shared, shape, o);
  if (shared !== g) shared.forEach((t) => t.dispose());
  g.forEach((t) => t.dispose());
  return {
    index: o.index,
    split,
    method: r.method,
    label,
    inferredLabel: r.label,
    noise,
    clip: o.clip ?? null,
    psnr: psnr(truth, r.reconstruction),
    ssim: ssim(truth, r.reconstruction, height, width, channels),
    flatPsnr: psnr(truth, new Float32Array(per).fill(truth.reduce((acc, v) => acc + v, 0) / per)),
    matchLoss: r.matchLoss,
    ...(r.subspaceResidual !== undefined ? { subspaceResidual: r.subspaceResidual } : {}),
    iterations: r.iterations,
    seconds: r.seconds,
    truth,
    reconstruction: r.reconstruction,
  };
}
