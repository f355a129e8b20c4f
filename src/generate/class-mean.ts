/**
 * class-mean: a DP baseline generator — a few DP k-means centroids per class, sampled with affine
 * jitter. It tells users how much of a generator's utility a trivial private baseline already gives,
 * and it is the proof of the plugin seam: this file plus one line in registry.ts.
 *
 * Mechanism. Every record x (pixels in [0, 1]) is clipped to L2 norm ≤ R. Release 0 holds, per class
 * c, the sum of its clipped records and R·(its count); each later release (a Lloyd iteration) holds
 * the same per (class, cell), a record belonging to the cell of its class whose current centroid is
 * nearest (centroids are earlier releases: public). Each release is ONE Gaussian vector
 * (sums ⧺ R·counts) + N(0, σ²I). Under replace-one (n public) one record moves from (class a, cell
 * k) to (class b, cell k'): different cells change two sums by ≤ R each and two scaled counts by R
 * each, Δ² ≤ 4R²; the same cell changes one sum by ‖x − x'‖ ≤ 2R and no count — so Δ₂ = 2R either
 * way, and each release is DpEvents.gaussianWithSensitivity(σ, 2R). σ is the smallest that fits
 * T + 1 releases into the budget (RDP accountant of the privacy core). Centroid = noisy sum / noisy
 * count; the centroids, noisy counts and every sample are post-processing.
 */
import { DpEvents, RdpAccountant, type DpEvent, type RandomSource } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { readJsonState, saveJsonState } from './json-state.js';
import { smoothImages } from './voting-gan.js';
import type { GeneratorPlugin, SavedSampler } from './plugin.js';
import type { DpGenerator, FitResult, GeneratorContext, GeneratorProgress, SampleSet } from './types.js';

export interface ClassMeanHyper {
  /** Centroids (cells) per class, K. */
  centroids: number;
  /** Lloyd iterations after the class-mean release (T; T + 1 releases in all). */
  iterations: number;
  /** L2 clip bound R of a record (pixels in [0, 1]; MNIST's median norm is 8.9). */
  clip: number;
  /** Gaussian blur std (pixels) of each released centroid: post-processing against the noise. */
  smooth: number;
  /** Cells whose noisy count is below this are not sampled. */
  minCount: number;
  /**
   * Largest per-pixel noise std allowed on a sampled centroid: a cell is sampled only when its
   * noisy count is ≥ σ / maxNoise (σ is public, so this is post-processing).
   */
  maxNoise: number;
  /** Max weight of a second centroid of the same class mixed into a sample (0 = none). */
  mix: number;
  /** Rescale each released centroid so its brightest pixel is 1 (post-processing: clipping and averaging dim the strokes). */
  normalize: boolean;
  /** 'affine': small random affine maps of every written sample (a public prior, augment.ts; applied by the synth runner). */
  augment: 'none' | 'affine';
}

const FORMAT = 'dplens-class-mean-1';

interface ClassMeanState {
  format: string;
  numClasses: number;
  height: number;
  width: number;
  centroids: number;
  /** [C·K, d] in [0, 1]. */
  means: number[][];
  /** Noisy counts [C·K] (post-processing of the releases; ≤ 0 = not sampled). */
  counts: number[];
  /** Noise std σ of the releases (public). */
  sigma: number;
  steps: number;
  hyper: ClassMeanHyper;
}

/** Smallest noise multiplier z such that `releases` Gaussian releases of multiplier z spend ≤ ε at δ. */
export function classMeanNoiseMultiplier(releases: number, epsilon: number, delta: number): number {
  const eps = (z: number) => new RdpAccountant().compose(DpEvents.gaussian(z), releases).getEpsilon(delta);
  let lo = 1e-3;
  let hi = 1;
  while (eps(hi) > epsilon) hi *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (eps(mid) > epsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}

class ClassMeanGenerator implements DpGenerator {
  readonly method = 'class-mean';
  private state?: ClassMeanState;
  private stepsDone = 0;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly h: ClassMeanHyper,
  ) {
    if (!Number.isInteger(h.centroids) || h.centroids < 1) throw new RangeError(`class-mean: centroids must be a positive integer, got ${h.centroids}`);
    if (!Number.isInteger(h.iterations) || h.iterations < 0) throw new RangeError(`class-mean: iterations must be an integer >= 0, got ${h.iterations}`);
    if (!(h.clip > 0)) throw new RangeError(`class-mean: clip must be > 0, got ${h.clip}`);
    if (ctx.data.channels !== 1) throw new RangeError(`${ctx.data.name}: class-mean supports single-channel images, got ${ctx.data.channels} channels`);
  }

  get steps(): number {
    return this.stepsDone;
  }

  private releases(): number {
    return this.h.iterations + 1;
  }

  /** The event of one release at the calibrated noise. */
  stepEvent(): DpEvent {
    const { epsilon, delta } = this.ctx.budget;
    const z = classMeanNoiseMultiplier(this.releases(), epsilon, delta);
    return DpEvents.gaussianWithSensitivity(z * 2 * this.h.clip, 2 * this.h.clip);
  }

  async fit(o: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal } = {}): Promise<FitResult> {
    const t0 = Date.now();
    const { data, ledger, budget, random: rng } = this.ctx;
    const { height: H, width: W, numClasses: C } = data;
    const d = H * W;
    const n = data.train.count;
    const R = this.h.clip;
    const event = this.stepEvent();
    const sigma = (event as { sigma: number }).sigma;
    const fingerprint = this.ctx.datasetFingerprint ?? keyedFingerprint(data.rawFingerprint);
    // Clipping scale per record: min(1, R/‖x‖) (private; kept only during fit).
    const scale = new Float32Array(n);
    const img = data.train.images;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let t = 0; t < d; t++) {
        const v = img[i * d + t]! / 255;
        s += v * v;
      }
      scale[i] = s > R * R ? R / Math.sqrt(s) : 1;
    }
    let K = 1;
    let means: Float32Array = new Float32Array(0);
    let counts = new Float64Array(0);
    let stoppedBy: FitResult['stoppedBy'] = 'max-steps';
    for (let r = 0; r < this.releases(); r++) {
      if (o.signal?.aborted) {
        stoppedBy = 'aborted';
        break;
      }
      const cells = r === 0 ? 1 : this.h.centroids;
      // Recorded before the release is computed; the ledger is the only budget gate.
      const ok = ledger.tryRecord({ event, method: this.method, datasetFingerprint: fingerprint, meta: { step: r + 1, release: r === 0 ? 'class sums and counts' : `Lloyd iteration ${r}: per-cell sums and counts`, cells: C * cells, clip: R, sigma } });
      if (!ok.ok) {
        stoppedBy = 'budget';
        break;
      }
      const sums = new Float64Array(C * cells * d);
      const cnt = new Float64Array(C * cells);
      for (let i = 0; i < n; i++) {
        const c = data.train.labels[i]!;
        const k = r === 0 ? 0 : nearestCell(img, i * d, d, means, c * K, K);
        const cell = c * cells + k;
        const sc = scale[i]! / 255;
        const off = cell * d;
        for (let t = 0; t < d; t++) sums[off + t]! += img[i * d + t]! * sc;
        cnt[cell]!++;
      }
      // The release: sums ⧺ R·counts + N(0, σ²) per coordinate.
      const noise = new Float64Array(sums.length + cnt.length);
      rng.normal(noise, sigma);
      for (let j = 0; j < sums.length; j++) sums[j]! += noise[j]!;
      for (let j = 0; j < cnt.length; j++) cnt[j] = (R * cnt[j]! + noise[sums.length + j]!) / R;
      // Post-processing of the release only from here on.
      K = cells;
      means = new Float32Array(C * K * d);
      counts = cnt;
      for (let cell = 0; cell < C * K; cell++) {
        const denom = Math.max(cnt[cell]!, 1);
        for (let t = 0; t < d; t++) means[cell * d + t] = Math.min(1, Math.max(0, sums[cell * d + t]! / denom));
      }
      if (r === 0 && this.h.centroids > 1) {
        // Split each class mean into K public perturbations of it (fresh public randomness).
        const split = new Float32Array(C * this.h.centroids * d);
        const pert = new Float32Array(d);
        for (let cell = 0; cell < C * this.h.centroids; cell++) {
          const c = Math.floor(cell / this.h.centroids);
          rng.normal(pert, 0.15);
          const sm = smoothImages(pert, 1, H, W, 1.5);
          for (let t = 0; t < d; t++) split[cell * d + t] = Math.min(1, Math.max(0, means[c * d + t]! + 3 * sm[t]!));
        }
        means = split;
        K = this.h.centroids;
        counts = new Float64Array(C * K).fill(Infinity);
      }
      this.stepsDone = r + 1;
      o.onProgress?.({ step: this.stepsDone, epoch: 0, epsilon: ledger.spent(budget.delta), generatorLoss: NaN, aggregateNonZero: 1, seconds: (Date.now() - t0) / 1000, timing: { teacherTrainMs: 0, voteMs: 0, generatorMs: 0 } });
      await new Promise((res) => setImmediate(res));
    }
    scale.fill(0);
    if (this.stepsDone > 0) {
      const smoothed = this.h.smooth > 0 ? smoothImages(means, C * K, H, W, this.h.smooth) : means;
      if (this.h.normalize)
        for (let cell = 0; cell < C * K; cell++) {
          let mx = 0;
          for (let t = 0; t < d; t++) mx = Math.max(mx, smoothed[cell * d + t]!);
          if (mx > 0.05) for (let t = 0; t < d; t++) smoothed[cell * d + t] = Math.min(1, Math.max(0, smoothed[cell * d + t]! / mx));
        }
      this.state = { format: FORMAT, numClasses: C, height: H, width: W, centroids: K, means: [], counts: Array.from(counts, (c) => (Number.isFinite(c) ? c : 1)), sigma, steps: this.stepsDone, hyper: this.h };
      for (let cell = 0; cell < C * K; cell++) this.state.means.push(Array.from(smoothed.subarray(cell * d, (cell + 1) * d), (v) => Math.round(v * 1e4) / 1e4));
    }
    return { steps: this.stepsDone, epsilon: ledger.spent(budget.delta), delta: budget.delta, stoppedBy, seconds: (Date.now() - t0) / 1000 };
  }

  async sample(n: number, labels?: Int32Array): Promise<SampleSet> {
    if (!this.state) throw new Error('class-mean: sample() before fit() or load()');
    return sampleState(this.state, n, this.ctx.random, labels);
  }

  async save(dir: string): Promise<void> {
    if (!this.state) throw new Error('class-mean: nothing to save before fit()');
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

/** Index (0..K-1) of the cell of class c (cells base..base+K-1) whose centroid is nearest to record at img[off..]. */
function nearestCell(img: Uint8Array, off: number, d: number, means: Float32Array, base: number, K: number): number {
  let best = 0;
  let bd = Infinity;
  for (let k = 0; k < K; k++) {
    const m = (base + k) * d;
    let s = 0;
    for (let t = 0; t < d; t++) {
      const u = img[off + t]! / 255 - means[m + t]!;
      s += u * u;
    }
    if (s < bd) [bd, best] = [s, k];
  }
  return best;
}

function readState(dir: string): ClassMeanState {
  return readJsonState<ClassMeanState>(dir, 'class-mean', FORMAT);
}

/** Balanced labels; per sample a cell ∝ its noisy count (cells below minCount skipped), an optional same-class mix, affine jitter. */
function sampleState(s: ClassMeanState, n: number, rng: RandomSource, labels?: Int32Array): SampleSet {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample count must be a positive integer, got ${n}`);
  const { numClasses: C, centroids: K, height: H, width: W } = s;
  const d = H * W;
  const lab = labels ?? Int32Array.from({ length: n }, (_, i) => i % C);
  if (lab.length !== n) throw new RangeError(`sample: ${lab.length} labels for ${n} samples`);
  const floor = Math.max(s.hyper.minCount, s.hyper.maxNoise > 0 ? s.sigma / s.hyper.maxNoise : 0);
  const weights = s.counts.map((c) => (c >= floor ? c : 0));
  const pick = (c: number): number => {
    let tot = 0;
    for (let k = 0; k < K; k++) tot += weights[c * K + k]!;
    if (!(tot > 0)) return c * K + Math.min(K - 1, Math.floor(rng.nextDouble() * K));
    let u = rng.nextDouble() * tot;
    for (let k = 0; k < K; k++) if ((u -= weights[c * K + k]!) < 0) return c * K + k;
    return c * K + K - 1;
  };
  const images = new Uint8Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = lab[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new RangeError(`sample: label ${c} out of range [0, ${C})`);
    const a = s.means[pick(c)]!;
    const lam = s.hyper.mix > 0 ? rng.nextDouble() * s.hyper.mix : 0;
    const b = lam > 0 ? s.means[pick(c)]! : a;
    for (let t = 0; t < d; t++) images[i * d + t] = Math.max(0, Math.min(255, Math.round(255 * ((1 - lam) * a[t]! + lam * b[t]!))));
  }
  return { images, labels: Int32Array.from(lab), count: n, height: H, width: W, channels: 1 };
}

const DEFAULTS: ClassMeanHyper = { centroids: 4, iterations: 2, clip: 9, smooth: 0.7, minCount: 100, maxNoise: 0.1, mix: 0.4, normalize: true, augment: 'affine' };

export const classMeanPlugin: GeneratorPlugin<ClassMeanHyper> = {
  name: 'class-mean',
  description: 'DP class-mean baseline: a few DP k-means centroids per class (Gaussian-noised per-cell sums and counts of L2-clipped records), sampled with affine jitter',
  relation: 'replace-one',
  treatedAsPublic: ['n, the number of training records (the noise is calibrated to replace-one neighbours)', 'the class list (its size C sets the cells)'],
  hyperParameters: [
    { key: 'centroids', flag: 'centroids', type: 'integer', min: 1, help: 'class-mean: DP k-means centroids per class (preset: 4 at ε=1, 20 at ε=10)' },
    { key: 'iterations', flag: 'iterations', type: 'integer', min: 0, help: 'class-mean: Lloyd iterations after the class-mean release (each one a Gaussian release)' },
    { key: 'clip', flag: 'l2-clip', type: 'number', min: 0, exclusiveMin: true, help: 'class-mean: L2 clip bound R of a record, pixels in [0, 1] (default 9); sensitivity 2R' },
    { key: 'smooth', flag: 'smooth', type: 'number', min: 0, help: 'class-mean: Gaussian blur std (pixels) of each released centroid (post-processing; default 0.7)' },
    { key: 'minCount', flag: 'min-count', type: 'number', min: 0, help: 'class-mean: cells with a noisy count below this are not sampled (default 100)' },
    { key: 'maxNoise', flag: 'max-noise', type: 'number', min: 0, help: 'class-mean: sample only centroids whose per-pixel noise std (σ / noisy count) is at most this (default 0.1; 0 = no limit)' },
    { key: 'normalize', flag: 'no-normalize', type: 'boolean', whenSet: false, help: 'class-mean: keep the centroids\' brightness (default: rescale each so its brightest pixel is 1; post-processing)' },
    { key: 'mix', flag: 'mix', type: 'number', min: 0, max: 1, help: 'class-mean: max weight of a second same-class centroid mixed into a sample (default 0.4)' },
    { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (public prior, no privacy cost) or none (default: preset)' },
  ],
  defaults: DEFAULTS,
  presets: {
    'mnist-eps1': { description: 'class-mean ε=1: 4 centroids per class, 2 Lloyd iterations (3 Gaussian releases), R=9, affine jitter', epsilon: 1, hyper: {} },
    'mnist-eps10': { description: 'class-mean ε=10: 20 centroids per class, 4 Lloyd iterations (5 Gaussian releases), R=9, affine jitter', epsilon: 10, hyper: { centroids: 20, iterations: 4, smooth: 0.5 } },
    'fashion-mnist-eps1': { description: 'class-mean ε=1 without affine jitter (upright clothing)', epsilon: 1, hyper: { augment: 'none' } },
    'fashion-mnist-eps10': { description: 'class-mean ε=10 without affine jitter', epsilon: 10, hyper: { centroids: 20, iterations: 4, smooth: 0.5, augment: 'none' } },
  },
  runFlags: [],
  defaultPreset: (data, epsilon) => `${data === 'fashion-mnist' ? 'fashion-mnist' : 'mnist'}-${epsilon < Math.sqrt(10) ? 'eps1' : 'eps10'}`,
  create: (ctx, hyper) => new ClassMeanGenerator(ctx, hyper),
  loadSampler(dir: string): SavedSampler {
    const s = readState(dir);
    return { method: 'class-mean', steps: s.steps, sample: async (n, rng, labels) => sampleState(s, n, rng, labels), dispose: () => undefined };
  },
};
