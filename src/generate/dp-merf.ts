/**
 * dp-merf: DP-MERF (Harder, Adamczewski & Park, "DP-MERF: Differentially Private Mean Embeddings
 * with Random Features for Practical Privacy-Preserving Data Generation", AISTATS 2021; authors' code
 * github.com/ParkLabML/DP-MERF).
 *
 * Method. Random Fourier features φ (Gaussian kernel, length scale ℓ, D features, ‖φ(x)‖ = 1) of the
 * images; the class-conditional mean embedding Σ_i φ(x_i) ⊗ y_i is released ONCE with Gaussian noise;
 * a conditional generator G(z, y) is then trained to minimise ‖released embedding − embedding of
 * G's samples‖² (the RFF approximation of the MMD), which is post-processing of the release.
 *
 * Mechanism and sensitivity (mean-embedding.ts): released r = Σ_i e_{y_i} ⊗ [φ(x_i)/√2, 1/√2] +
 * N(0, σ² I). Under replace-one with n public, one record changes r by the difference of two unit
 * vectors with a non-negative inner product, so Δ₂ = √2 (≤ the 2·max‖φ(x) ⊗ y‖ = 2 of the paper's
 * 2/n on the mean; we release sums and noisy counts instead of means with n). σ = z·√2, z the
 * smallest multiplier the RDP accountant allows for one Gaussian release at (ε, δ); the release is
 * recorded in the ledger (DpEvents.gaussianWithSensitivity) before the statistic is computed.
 *
 * What differs from the paper and why:
 *  - Class sizes: the paper assumes uniform (public) class proportions or releases them separately;
 *    we release per-class counts inside the same vector (no extra cost, Δ stays √2) and match each
 *    class's noisy mean feature (sum / noisy count) instead of the joint embedding weighted by n_c/n.
 *  - Generator: dplens's ConditionalGenerator (mlp 200-500 with batch norm, or the small dcgan);
 *    the paper's MNIST generator is a small conv net (ConvCondGen) — similar size.
 *  - Training length is capped for the ≤ 2 min target on 2 CPU cores (the paper trains 5 epochs of
 *    n/batch steps); more iterations cost no privacy (--iterations).
 *  - Hermite features (DP-HP) are not implemented: with RFF at ε ≥ 1 the release is not the bottleneck
 *    (the noise norm is ~10 % of the signal at ε = 1), the kernel's resolution is.
 */
import { SavedGenerator } from './voting-gan.js';
import { MeanEmbeddingGenerator, meanEmbeddingHyper, mechanismFor, type MeanEmbeddingHyper } from './mean-embedding.js';
import type { GeneratorPlugin, HyperParamSpec, SavedSampler } from './plugin.js';

export interface DpMerfHyper {
  /** Random features D (D/2 frequencies). */
  features: number;
  /** Gaussian kernel length scale ℓ (pixels in [0, 1]). */
  bandwidth: number;
  arch: 'mlp' | 'dcgan';
  zDim: number;
  perClass: number;
  iterations: number;
  lr: number;
  augment: 'none' | 'affine';
}

/** Hyper-parameter flags shared (same meaning) by dp-merf and dp-kernel. */
export const MEAN_EMBEDDING_FLAGS: readonly HyperParamSpec[] = [
  { key: 'arch', flag: 'generator-arch', type: 'choice', choices: ['mlp', 'dcgan'], help: 'dp-merf/dp-kernel: generator network (mlp 200-500 with batch norm, or the small dcgan); post-processing' },
  { key: 'zDim', flag: 'z-dim', type: 'integer', min: 1, help: 'dp-merf/dp-kernel: generator code dimension' },
  { key: 'perClass', flag: 'per-class', type: 'integer', min: 1, help: 'dp-merf/dp-kernel: generated samples per class per generator step' },
  { key: 'iterations', flag: 'gen-iterations', type: 'integer', min: 1, help: 'dp-merf/dp-kernel: generator steps against the released embedding (post-processing, no privacy cost)' },
  { key: 'lr', flag: 'gen-lr', type: 'number', min: 0, exclusiveMin: true, help: 'dp-merf/dp-kernel: generator Adam learning rate (decays linearly)' },
  { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
];

const DEFAULTS: DpMerfHyper = { features: 10000, bandwidth: 10, arch: 'mlp', zDim: 5, perClass: 20, iterations: 800, lr: 0.01, augment: 'none' };

export function merfEmbeddingHyper(h: DpMerfHyper): MeanEmbeddingHyper {
  if (!Number.isInteger(h.features) || h.features < 2 || h.features % 2 !== 0) throw new RangeError(`dp-merf: features must be an even integer ≥ 2, got ${h.features}`);
  return meanEmbeddingHyper([{ bandwidth: h.bandwidth, frequencies: h.features / 2, weight: 1 }], [200, 500], h);
}

export const dpMerfPlugin: GeneratorPlugin<DpMerfHyper> = {
  name: 'dp-merf',
  description: 'DP-MERF: one Gaussian release of the per-class random Fourier feature sums and counts; a conditional generator trained to match it (RFF-MMD)',
  relation: 'replace-one',
  treatedAsPublic: ['n, the number of training records (replace-one neighbours)', 'the class list (its size C sets the embedding blocks)', 'the random frequencies (drawn from public randomness, independent of the data)'],
  hyperParameters: [
    { key: 'features', flag: 'rff-features', type: 'integer', min: 2, help: 'dp-merf/dp-kernel: random Fourier features D in all (even; D/2 frequencies; DP-MERF paper 10,000)' },
    { key: 'bandwidth', flag: 'rff-bandwidth', type: 'number', min: 0, exclusiveMin: true, help: 'dp-merf: Gaussian kernel length scale ℓ, pixels in [0, 1] (paper: ℓ² ≈ 105–127 on MNIST)' },
    ...MEAN_EMBEDDING_FLAGS,
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'DP-MERF ε=1: 10,000 RFF, ℓ=10, mlp generator, 800 steps', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'DP-MERF ε=10: as ε=1 (the release is not the bottleneck)', epsilon: 10, hyper: {} },
    'fashion-mnist-eps1': { description: 'DP-MERF ε=1 on Fashion-MNIST', epsilon: 1, hyper: {} },
    'fashion-mnist-eps10': { description: 'DP-MERF ε=10 on Fashion-MNIST', epsilon: 10, hyper: {} },
  },
  runFlags: ['steps', 'max-minutes', 'non-private'],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, h, limits) => new MeanEmbeddingGenerator('dp-merf', ctx, merfEmbeddingHyper(h), limits),
  loadSampler(dir: string): SavedSampler {
    return SavedGenerator.load(dir);
  },
  gaussianMechanism: (h, facts) => mechanismFor('dp-merf', merfEmbeddingHyper(h).blocks, facts.numClasses, facts.epsilon === null ? null : { epsilon: facts.epsilon, delta: facts.delta }),
};
