/**
 * dp-kernel: a multi-scale kernel mean embedding released once, and a conditional generator trained
 * long against it — dplens's "beyond the papers" generator (issue 14 item 2).
 *
 * Starting point: DP-Kernel (Jiang, Sun & Yu, "Functional Rényi Differential Privacy for Generative
 * Modeling", NeurIPS 2023; DPImageBench configs/DP-Kernel: a sum of Gaussian kernels with length
 * scales 1, 2, 4, 8, 16, a BigGAN generator, 200k steps on a GPU). The released object there is the
 * private kernel mean embedding plus a Gaussian-process sample path. With random Fourier features a
 * GP sample path with covariance K is exactly φ(·)ᵀξ, ξ ~ N(0, I), so the noisy RFF sum released by
 * mean-embedding.ts is that functional mechanism for the RFF kernel, released ONCE: every generator
 * step afterwards is post-processing, so the generator can train as long as the wall-time allows
 * without any further privacy cost.
 *
 * Mechanism and sensitivity: identical to dp-merf (mean-embedding.ts): per-class sums of a unit-norm
 * feature map and the class counts, Δ₂ = √2 under replace-one (n public), σ = z·√2 from the RDP
 * accountant for one Gaussian release, recorded in the ledger before the statistic is computed.
 * Property-tested (one record and its class changed) in test/generate-dp-merf.test.ts.
 *
 * What differs from DP-Kernel and why:
 *  - RFF instead of the exact kernel: the exact functional mechanism needs the private data at every
 *    step (DP-Kernel evaluates the embedding at each generated batch with fresh noise and composes);
 *    one RFF release costs one Gaussian and nothing afterwards.
 *  - Length scales: a geometric ladder of `scales` Gaussian kernels between `bandwidthMin` and
 *    `bandwidthMax` (pixels in [0, 1]), equal weights; the very narrow scales of the paper (ℓ = 1, 2)
 *    have RFF estimates dominated by Monte-Carlo error at affordable D, so the ladder starts higher.
 *  - Generator: dplens's small DCGAN-style ConditionalGenerator (CPU budget), not BigGAN.
 *  - Samples are post-processed with small random affine maps (augment.ts, public prior).
 *  - Training length: DP-Kernel trains 200k GPU steps; here 3,000 steps with a 22-minute time cap
 *    (`--time-cap`, default preset ≤ 30 min on the 2-core box); stopping early costs no ε.
 * Hyper-parameters were chosen from a handful of runs (see src/generate/README.md, dp-kernel section,
 * for the data they were tuned on).
 */
import { SavedGenerator } from './voting-gan.js';
import { MEAN_EMBEDDING_FLAGS } from './dp-merf.js';
import { MeanEmbeddingGenerator, meanEmbeddingHyper, mechanismFor, type FeatureBlock, type MeanEmbeddingHyper } from './mean-embedding.js';
import type { GeneratorPlugin, SavedSampler } from './plugin.js';

export interface DpKernelHyper {
  /** Random features in all (D = 2·Σ F_b), split evenly over the scales. */
  features: number;
  bandwidthMin: number;
  bandwidthMax: number;
  scales: number;
  arch: 'mlp' | 'dcgan';
  zDim: number;
  perClass: number;
  iterations: number;
  lr: number;
  augment: 'none' | 'affine';
  /** Minutes after which generator training stops when --max-minutes is not given (0 = none): post-processing, no ε cost. */
  timeCap: number;
}

/**
 * 3,000 generator steps take ≈ 0.4 s CPU each here (12,000 features, 200 samples per step, dcgan;
 * measured 2026-12-07 on the shared 2-core box: 175 steps = 68 s user CPU), i.e. ≈ 20 min on a quiet
 * machine and hours on a loaded one. The 22-minute time cap (counted from the start of fit(), release
 * included) keeps the default run ≤ 30 min end to end whatever the load: sampling, augmenting and
 * writing 60,000 images took 6 min at `nice -n 15` under load ≈ 12 (MNIST ε = 1, `--max-minutes 12`:
 * 1,076 s wall in all, 267 generator steps).
 */
const DEFAULTS: DpKernelHyper = { features: 12000, bandwidthMin: 4, bandwidthMax: 12, scales: 3, arch: 'dcgan', zDim: 32, perClass: 20, iterations: 3000, lr: 0.003, augment: 'affine', timeCap: 22 };

/** The feature blocks: `scales` length scales, geometric from bandwidthMax down to bandwidthMin, equal weights. */
export function kernelBlocks(h: Pick<DpKernelHyper, 'features' | 'bandwidthMin' | 'bandwidthMax' | 'scales'>): FeatureBlock[] {
  if (!Number.isInteger(h.scales) || h.scales < 1) throw new RangeError(`dp-kernel: scales must be a positive integer, got ${h.scales}`);
  if (!(h.bandwidthMin > 0 && h.bandwidthMax >= h.bandwidthMin)) throw new RangeError(`dp-kernel: need 0 < bandwidth-min ≤ bandwidth-max, got ${h.bandwidthMin}, ${h.bandwidthMax}`);
  const per = Math.floor(h.features / 2 / h.scales);
  if (per < 1) throw new RangeError(`dp-kernel: ${h.features} features are too few for ${h.scales} scales`);
  return Array.from({ length: h.scales }, (_, b) => ({
    bandwidth: h.scales === 1 ? h.bandwidthMax : h.bandwidthMax * Math.pow(h.bandwidthMin / h.bandwidthMax, b / (h.scales - 1)),
    frequencies: per,
    weight: 1,
  }));
}

export function kernelEmbeddingHyper(h: DpKernelHyper): MeanEmbeddingHyper {
  return meanEmbeddingHyper(kernelBlocks(h), [256, 512], h);
}

export const dpKernelPlugin: GeneratorPlugin<DpKernelHyper> = {
  name: 'dp-kernel',
  description: 'multi-scale kernel mean embedding (after DP-Kernel): one Gaussian release of per-class multi-scale random-feature kernel mean embeddings (sums and counts); a conditional DCGAN-style generator trained long against it',
  relation: 'replace-one',
  treatedAsPublic: ['n, the number of training records (replace-one neighbours)', 'the class list (its size C sets the embedding blocks)', 'the random frequencies (drawn from public randomness, independent of the data)'],
  hyperParameters: [
    { key: 'features', flag: 'rff-features', type: 'integer', min: 2, help: 'dp-kernel: random Fourier features in all, split evenly over the scales' },
    { key: 'bandwidthMin', flag: 'bandwidth-min', type: 'number', min: 0, exclusiveMin: true, help: 'dp-kernel: smallest Gaussian kernel length scale (pixels in [0, 1])' },
    { key: 'bandwidthMax', flag: 'bandwidth-max', type: 'number', min: 0, exclusiveMin: true, help: 'dp-kernel: largest Gaussian kernel length scale (pixels in [0, 1])' },
    { key: 'scales', flag: 'kernel-scales', type: 'integer', min: 1, help: 'dp-kernel: number of length scales (geometric between min and max)' },
    ...MEAN_EMBEDDING_FLAGS,
    { key: 'timeCap', flag: 'time-cap', type: 'number', min: 0, help: 'stop after this many minutes when --max-minutes is not given (0 = none; default: the preset). dp-kernel (default 22): generator training after the one release, no ε lost; DP-SGD methods: ε spent is then below the target' },
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'dp-kernel ε=1: 12,000 RFF over ℓ = 12, 6.9, 4; dcgan generator, 3,000 steps or 22 min (time cap), affine jitter', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'dp-kernel ε=10: as ε=1', epsilon: 10, hyper: {} },
    'fashion-mnist-eps1': { description: 'dp-kernel ε=1 on Fashion-MNIST, no affine jitter (upright clothing)', epsilon: 1, hyper: { augment: 'none' } },
    'fashion-mnist-eps10': { description: 'dp-kernel ε=10 on Fashion-MNIST, no affine jitter', epsilon: 10, hyper: { augment: 'none' } },
  },
  runFlags: ['steps', 'max-minutes', 'non-private'],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, h, limits) => new MeanEmbeddingGenerator('dp-kernel', ctx, kernelEmbeddingHyper(h), limits),
  loadSampler(dir: string): SavedSampler {
    return SavedGenerator.load(dir);
  },
  gaussianMechanism: (h, facts) => mechanismFor('dp-kernel', kernelBlocks(h), facts.numClasses, facts.epsilon === null ? null : { epsilon: facts.epsilon, delta: facts.delta }),
};
