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
}

const DEFAULTS: DpKernelHyper = { features: 12000, bandwidthMin: 4, bandwidthMax: 12, scales: 3, arch: 'dcgan', zDim: 32, perClass: 20, iterations: 3000, lr: 0.003, augment: 'affine' };

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
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'dp-kernel ε=1: 12,000 RFF over ℓ = 12, 6.9, 4; dcgan generator, 3,000 steps, affine jitter', epsilon: 1, hyper: {} },
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
