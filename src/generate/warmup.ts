/**
 * Warm-up curriculum for DP-SGD generators, in the spirit of DP-FETA (Li, Gong, Li, Zhao, Hou &
 * Wang, "From Easy to Hard: Building a Shortcut for Differentially Private Image Synthesis",
 * IEEE S&P 2025; code: github.com/SunnierLee/DP-FETA). A small share of the budget releases DP
 * "central images" (per-class means, or a few DP k-means centroids per class); the generator is
 * warmed up on them (post-processing: no privacy cost); DP-SGD then spends the rest of the budget.
 * Generator-agnostic: a plugin spreads WARMUP_HYPER / WARMUP_DEFAULTS into its hyper-parameters,
 * calls `releaseCentralImages` first, trains on `centralImageBatch` batches, and calibrates its
 * DP-SGD noise with `calibrateWithWarmup` so that warm-up ∘ T steps ≤ (ε, δ).
 *
 * Mechanism. Every record x (pixels in [0, 1]) is average-pooled by `warmupDownsample` (DP-FETA
 * pools 2×: fewer coordinates, the same signal) and clipped to L2 norm ≤ R. One release is ONE
 * Gaussian vector: per cell (class c, or class c × k-means cell k), the sum of its clipped records
 * and R·(its record count), + N(0, σ²I). Sensitivity of that vector, by the generator's relation:
 *  - add/remove (DP-SGD generators): one record enters or leaves one cell: its sum moves by ≤ R and
 *    its scaled count by R: Δ₂ = √2·R. n is NOT needed (the mean is noisy sum / noisy count);
 *  - replace-one (n public): the record moves from cell a to cell b: two sums by ≤ R and two counts
 *    by R (Δ² ≤ 4R²), or within one cell one sum by ‖x − x'‖ ≤ 2R: Δ₂ = 2R.
 * With `warmupSampleRate` q < 1 each release is computed on its own Poisson sample of the records
 * (DP-FETA: q = 0.1, several mean images per class), priced as a Poisson-subsampled Gaussian —
 * analysed under add/remove only, so q < 1 is refused for replace-one generators.
 * k-means: release 0 is the class means; they are split into K public perturbations (fresh
 * randomness, no data), and each of `warmupIterations` Lloyd iterations is one more release whose
 * cells are assigned by the nearest earlier (public) centroid of the record's class.
 *
 * σ from the share (data-independent): the smallest noise multiplier z such that the whole warm-up
 * (all its releases) spends ≤ share·ε at δ under the ledger's accountant. The DP-SGD noise is then
 * calibrated on the COMPOSITION warm-up ∘ T steps ≤ ε (`calibrateWithWarmup`, generic `calibrate`),
 * so DP-SGD gets everything the warm-up did not use (RDP composition is sub-additive in ε: DP-SGD
 * effectively gets more than (1 − share)·ε).
 *
 * What differs from DP-FETA and why: DP-FETA divides each noisy class sum by the public expected
 * batch count B/C (balanced classes assumed, n public) and clips nothing (a pooled 14×14 image in
 * [0, 1] has norm ≤ 14); we release noisy counts too (the relation is add/remove as DP-SGD's, no
 * balance assumption) and clip at R (MNIST's pooled median norm is ≈ 4.5, so R ≈ 5 costs ~3× less
 * noise than 14). DP-FETA's post-processing (median blur + sharpening) is replaced by bilinear
 * upsampling and an optional Gaussian blur; DP-FETA's "mode" images (noisy per-pixel histograms) are
 * not implemented; k-means centroids (after class-mean.ts) are our addition. DP-FETA warms up a
 * diffusion model; here the generator is whatever calls this module.
 */
import { calibrate, CalibrationError, DEFAULT_ORDERS, DpEvents, keyedFingerprint, makeAccountant, type AccountantKind, type DpEvent, type NeighbouringRelation, type RandomSource } from '../privacy/index.js';
import { augmentAffine } from './augment.js';
import type { HyperParamSpec } from './plugin.js';
import type { GeneratorContext } from './types.js';

export type WarmupKind = 'none' | 'class-means' | 'kmeans';
export const WARMUP_KINDS: readonly WarmupKind[] = ['none', 'class-means', 'kmeans'];

/** The warm-up hyper-parameters; a generator's hyper type extends this (keys are shared by every generator). */
export interface WarmupHyper {
  /** Which central images: none | class-means (DP-FETA mean images) | kmeans (DP k-means centroids per class). */
  warmup: WarmupKind;
  /** Fraction of ε the warm-up alone may spend at δ (σ of the central images is calibrated to it). */
  warmupShare: number;
  /** class-means: central images per class (each from its own Poisson sample; 1 with q = 1); kmeans: centroids per class K. */
  warmupCentroids: number;
  /** kmeans: Lloyd iterations after the class-mean release (each one Gaussian release). */
  warmupIterations: number;
  /** Poisson rate q of the records each release sees (1 = all records, no sampling; < 1 needs add/remove). */
  warmupSampleRate: number;
  /** L2 clip bound R of a (pooled) record, pixels in [0, 1]. */
  warmupClip: number;
  /** Average-pooling factor before the release (DP-FETA: 2); images are upsampled back (bilinear). */
  warmupDownsample: number;
  /** Generator warm-up steps on the central images (the generator's own loop; post-processing). */
  warmupSteps: number;
}

export const WARMUP_DEFAULTS: WarmupHyper = {
  warmup: 'none',
  warmupShare: 0.1,
  warmupCentroids: 1,
  warmupIterations: 2,
  warmupSampleRate: 1,
  warmupClip: 5,
  warmupDownsample: 2,
  warmupSteps: 200,
};

/** Flags of the warm-up hyper-parameters; spread into a plugin's `hyperParameters`. */
export const WARMUP_HYPER: readonly HyperParamSpec[] = [
  { key: 'warmup', flag: 'warmup', type: 'choice', choices: WARMUP_KINDS, help: 'warm-up curriculum (DP-FETA): none, class-means (DP mean images per class) or kmeans (DP k-means centroids per class), released under --warmup-share of ε before DP-SGD' },
  { key: 'warmupShare', flag: 'warmup-share', type: 'number', min: 0, exclusiveMin: true, max: 0.9, help: 'warm-up: fraction of ε the central images may spend (default 0.1); DP-SGD is calibrated for the rest (composed)' },
  { key: 'warmupCentroids', flag: 'warmup-centroids', type: 'integer', min: 1, help: 'warm-up: central images per class (class-means: one per Poisson sample; kmeans: K centroids)' },
  { key: 'warmupIterations', flag: 'warmup-iterations', type: 'integer', min: 0, help: 'warm-up kmeans: Lloyd iterations after the class-mean release (each a Gaussian release)' },
  { key: 'warmupSampleRate', flag: 'warmup-sample-rate', type: 'number', min: 0, exclusiveMin: true, max: 1, help: 'warm-up: Poisson rate of the records each release sees (default 1 = all; DP-FETA uses 0.1 with 5 images per class)' },
  { key: 'warmupClip', flag: 'warmup-clip', type: 'number', min: 0, exclusiveMin: true, help: 'warm-up: L2 clip bound R of a pooled record, pixels in [0, 1] (default 5); sensitivity √2·R (add/remove)' },
  { key: 'warmupDownsample', flag: 'warmup-downsample', type: 'integer', min: 1, max: 4, help: 'warm-up: average-pooling factor before the release (default 2, as DP-FETA); upsampled back after' },
  { key: 'warmupSteps', flag: 'warmup-steps', type: 'integer', min: 0, help: 'warm-up: generator steps on the central images before DP-SGD (post-processing, no privacy cost)' },
];

/** Public facts the warm-up's event may depend on (never the records). */
export interface WarmupFacts {
  /** The generator's neighbouring relation (its ledger's). */
  relation: NeighbouringRelation;
  numClasses: number;
  height: number;
  width: number;
  channels: number;
  /** The run's whole budget (ε = Infinity: a non-private run, σ = 0, recorded as DpEvents.nonPrivate). */
  epsilon: number;
  delta: number;
  /** Accountant the share is priced with (default rdp, as the ledgers). */
  accountant?: AccountantKind;
}

/** Everything about the warm-up's releases that follows from the spec and public facts. */
export interface WarmupPlan {
  kind: WarmupKind;
  /** Gaussian releases (0 for 'none'). */
  releases: number;
  /** Cells of each release (C, or C·K for Lloyd iterations). */
  cells: number[];
  /** Pooled geometry of a released image. */
  pooledHeight: number;
  pooledWidth: number;
  clip: number;
  /** Δ₂ of one release under `relation`. */
  l2Sensitivity: number;
  /** z = σ / Δ₂ (0 for a non-private run). */
  noiseMultiplier: number;
  /** σ, the noise std per coordinate of the released vector. */
  sigma: number;
  sampleRate: number;
  relation: NeighbouringRelation;
  /** The event of ONE release (recorded per release in the ledger). */
  releaseEvent: DpEvent;
  /** The event of the whole warm-up (what `calibrateWithWarmup` composes with DP-SGD). */
  event: DpEvent;
  /**
   * ε of the whole warm-up alone at δ (≤ share·ε), priced with SHARE_ORDERS (RDP orders up to 4096:
   * the default orders cannot state ε below ≈ 0.1 at δ = 1e-5); 0 for 'none', Infinity when non-private.
   */
  epsilon: number;
}

/** Validates the warm-up hyper-parameters against the public facts (RangeError naming the flag). */
export function validateWarmup(h: WarmupHyper, f: Pick<WarmupFacts, 'relation' | 'height' | 'width'>): void {
  if (!WARMUP_KINDS.includes(h.warmup)) throw new RangeError(`--warmup must be ${WARMUP_KINDS.join(' or ')}, got "${String(h.warmup)}"`);
  if (h.warmup === 'none') return;
  if (!(h.warmupShare > 0 && h.warmupShare < 1)) throw new RangeError(`--warmup-share must be in (0, 1), got ${h.warmupShare}`);
  if (!Number.isInteger(h.warmupCentroids) || h.warmupCentroids < 1) throw new RangeError(`--warmup-centroids must be a positive integer, got ${h.warmupCentroids}`);
  if (!Number.isInteger(h.warmupIterations) || h.warmupIterations < 0) throw new RangeError(`--warmup-iterations must be an integer >= 0, got ${h.warmupIterations}`);
  if (!(h.warmupSampleRate > 0 && h.warmupSampleRate <= 1)) throw new RangeError(`--warmup-sample-rate must be in (0, 1], got ${h.warmupSampleRate}`);
  if (h.warmupSampleRate < 1 && f.relation !== 'add-remove') throw new RangeError(`--warmup-sample-rate ${h.warmupSampleRate} (Poisson sampling) is only analysed under add/remove; this generator proves ${f.relation}: use --warmup-sample-rate 1`);
  if (!(h.warmupClip > 0) || !Number.isFinite(h.warmupClip)) throw new RangeError(`--warmup-clip must be a finite number > 0, got ${h.warmupClip}`);
  if (!Number.isInteger(h.warmupDownsample) || h.warmupDownsample < 1 || h.warmupDownsample > Math.min(f.height, f.width)) throw new RangeError(`--warmup-downsample must be an integer in [1, ${Math.min(f.height, f.width)}], got ${h.warmupDownsample}`);
  if (!Number.isInteger(h.warmupSteps) || h.warmupSteps < 0) throw new RangeError(`--warmup-steps must be an integer >= 0, got ${h.warmupSteps}`);
}

/** Δ₂ of one release (sums ⧺ R·counts over cells) under `relation` (see the file comment). */
export function warmupSensitivity(clip: number, relation: NeighbouringRelation): number {
  return relation === 'add-remove' ? Math.SQRT2 * clip : 2 * clip;
}

/** k-means initialisation: std and blur (pooled pixels) of the public perturbations splitting a class mean. */
const SPLIT_STD = 0.2;
const SPLIT_BLUR = 1;

/** RDP orders used to price the warm-up ALONE against its share (the defaults plus larger ones). */
export const SHARE_ORDERS: readonly number[] = [...DEFAULT_ORDERS, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024, 2048, 4096];

function releaseEventAt(z: number, delta2: number, q: number): DpEvent {
  const g = DpEvents.gaussianWithSensitivity(z * delta2, delta2);
  return q < 1 ? DpEvents.poissonSampled(q, g) : g;
}

/** The warm-up's releases, noise and events from the spec and public facts only (data-independent). */
export function warmupPlan(h: WarmupHyper, f: WarmupFacts): WarmupPlan {
  validateWarmup(h, f);
  const ds = h.warmupDownsample;
  const ph = Math.ceil(f.height / ds);
  const pw = Math.ceil(f.width / ds);
  const base = { kind: h.warmup, pooledHeight: ph, pooledWidth: pw, clip: h.warmupClip, sampleRate: h.warmupSampleRate, relation: f.relation };
  if (h.warmup === 'none') return { ...base, releases: 0, cells: [], l2Sensitivity: 0, noiseMultiplier: 0, sigma: 0, releaseEvent: DpEvents.noOp(), event: DpEvents.noOp(), epsilon: 0 };
  const C = f.numClasses;
  const releases = h.warmup === 'class-means' ? h.warmupCentroids : 1 + h.warmupIterations;
  const cells = Array.from({ length: releases }, (_, r) => (h.warmup === 'kmeans' && r > 0 ? C * h.warmupCentroids : C));
  const d2 = warmupSensitivity(h.warmupClip, f.relation);
  if (!Number.isFinite(f.epsilon)) {
    const ev = DpEvents.nonPrivate('warm-up central images released without noise (non-private run)');
    return { ...base, releases, cells, l2Sensitivity: d2, noiseMultiplier: 0, sigma: 0, releaseEvent: ev, event: DpEvents.selfComposed(ev, releases), epsilon: Infinity };
  }
  if (!(f.epsilon > 0)) throw new RangeError(`warm-up: the budget ε must be > 0, got ${f.epsilon}`);
  const target = h.warmupShare * f.epsilon;
  const q = h.warmupSampleRate;
  let r: ReturnType<typeof calibrate>;
  try {
    r = calibrate({
    family: (z) => DpEvents.selfComposed(releaseEventAt(z, d2, q), releases),
    targetEpsilon: target,
    delta: f.delta,
    accountant: f.accountant ?? 'rdp',
    relation: f.relation,
    // A small share alone (e.g. 0.1 at δ = 1e-5) is below what orders ≤ 63 can state; larger orders
    // only serve to choose σ here (the ledger prices the composition, where the default orders suffice).
    orders: SHARE_ORDERS,
    epsilonTolerance: 1e-3 * target,
  });
  } catch (e) {
    if (e instanceof CalibrationError) throw new CalibrationError(`--warmup-share ${h.warmupShare} of ε = ${f.epsilon} (${target.toPrecision(3)}) cannot be reached by the warm-up's ${releases} release(s) at δ = ${f.delta}: raise --warmup-share (${e.message})`);
    throw e;
  }
  const z = r.noise;
  const releaseEvent = releaseEventAt(z, d2, q);
  return { ...base, releases, cells, l2Sensitivity: d2, noiseMultiplier: z, sigma: z * d2, releaseEvent, event: DpEvents.selfComposed(releaseEvent, releases), epsilon: r.achievedEpsilon };
}

/** The DpEvent the whole warm-up costs (data-independent); DpEvents.noOp() for 'none'. */
export function warmupEvent(h: WarmupHyper, f: WarmupFacts): DpEvent {
  return warmupPlan(h, f).event;
}

/** Warm-up facts of a generator context (relation from its ledger unless given). */
export function warmupFactsOf(ctx: GeneratorContext, relation?: NeighbouringRelation): WarmupFacts {
  const rel = relation ?? ctx.ledger.relation;
  if (rel !== 'add-remove' && rel !== 'replace-one') throw new RangeError(`warm-up: the ledger's relation is ${rel}; pass the generator's relation`);
  const { data, budget } = ctx;
  return { relation: rel, numClasses: data.numClasses, height: data.height, width: data.width, channels: data.channels, epsilon: ctx.nonPrivate ? Infinity : budget.epsilon, delta: budget.delta, accountant: ctx.ledger.accountantKind };
}

/** Central images: labelled images in [0, 1] at the data's full resolution (post-processing of the releases). */
export interface CentralImages {
  /** count × height × width × channels, in [0, 1] (the dataset's NHWC layout). */
  images: Float32Array;
  labels: Int32Array;
  /** Noisy record count of each image's cell (post-processing; ≥ 0). Use as sampling weights. */
  weights: Float64Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  /** Releases recorded and made (< plan.releases only when the ledger refused one). */
  releases: number;
  stoppedBy: 'done' | 'budget';
  plan: WarmupPlan;
}

export interface ReleaseCentralOptions {
  /** Ledger method name (the generator's, e.g. 'dp-gan'). */
  method: string;
  /** The generator's relation (default: its ledger's). */
  relation?: NeighbouringRelation;
  /** Gaussian blur std (pixels, full resolution) of the central images (post-processing; default 0). */
  smooth?: number;
  /** Cells whose noisy count is below this are dropped (the class's largest cell is always kept; default 20). */
  minCount?: number;
  /** Extra ledger meta of every warm-up entry. */
  meta?: Record<string, unknown>;
}

/**
 * Releases the central images of `h` (nothing for 'none'): each release is recorded with
 * ctx.ledger.tryRecord BEFORE it is computed; noise from ctx.random. Stops at the first release
 * the ledger refuses (stoppedBy 'budget'; the images of the releases made so far are returned,
 * or none). Everything after the noise is post-processing.
 */
export async function releaseCentralImages(ctx: GeneratorContext, h: WarmupHyper, o: ReleaseCentralOptions): Promise<CentralImages> {
  const facts = warmupFactsOf(ctx, o.relation);
  const plan = warmupPlan(h, facts);
  const { data, ledger, random: rng } = ctx;
  const { height: H, width: W, channels: CH, numClasses: C } = data;
  const empty = (releases: number, stoppedBy: CentralImages['stoppedBy']): CentralImages => ({ images: new Float32Array(0), labels: new Int32Array(0), weights: new Float64Array(0), count: 0, height: H, width: W, channels: CH, releases, stoppedBy, plan });
  if (plan.kind === 'none') return empty(0, 'done');
  const fingerprint = ctx.datasetFingerprint ?? keyedFingerprint(data.rawFingerprint);
  const ds = h.warmupDownsample;
  const { pooledHeight: ph, pooledWidth: pw } = plan;
  const d = ph * pw * CH;
  const n = data.train.count;
  const R = plan.clip;
  // Pooled, clipped records (private; zeroed before returning).
  const pooled = clippedPooledRecords(data.train.images, n, H, W, CH, ds, R);
  const labels = data.train.labels;
  const outMeans: Float32Array[] = [];
  const outLabels: number[] = [];
  const outWeights: number[] = [];
  let K = 1;
  let centroids = new Float32Array(0); // kmeans: [C·K, d] pooled, public (earlier releases)
  let released = 0;
  let stoppedBy: CentralImages['stoppedBy'] = 'done';
  for (let r = 0; r < plan.releases; r++) {
    const cells = plan.cells[r]!;
    const ok = ledger.tryRecord({
      event: plan.releaseEvent,
      method: o.method,
      datasetFingerprint: fingerprint,
      meta: { ...o.meta, phase: 'warm-up', warmup: plan.kind, release: r + 1, of: plan.releases, cells, clip: R, sigma: plan.sigma, sampleRate: plan.sampleRate, pooled: `${ph}x${pw}`, statistic: r > 0 && plan.kind === 'kmeans' ? `Lloyd iteration ${r}: per-cell clipped sums and R·counts` : 'per-class clipped sums and R·counts' },
    });
    if (!ok.ok) {
      stoppedBy = 'budget';
      break;
    }
    released++;
    const kCells = cells / C;
    const q = plan.sampleRate;
    const include = q < 1 ? Uint8Array.from({ length: n }, () => (rng.nextDouble() < q ? 1 : 0)) : undefined;
    // The release: sums ⧺ R·counts + N(0, σ²) per coordinate.
    const v = releaseStatistic(pooled, labels, n, d, C, R, kCells > 1 ? { centroids, perClass: K } : undefined, include);
    if (plan.sigma > 0) {
      const noise = new Float64Array(v.length);
      rng.normal(noise, plan.sigma);
      for (let j = 0; j < v.length; j++) v[j]! += noise[j]!;
    }
    const sums = v.subarray(0, cells * d);
    const cnt = Float64Array.from(v.subarray(cells * d), (x) => x / R);
    // Post-processing of the release only from here on.
    const means = new Float32Array(cells * d);
    for (let cell = 0; cell < cells; cell++) {
      const denom = Math.max(cnt[cell]!, 1);
      for (let t = 0; t < d; t++) means[cell * d + t] = Math.min(1, Math.max(0, sums[cell * d + t]! / denom));
    }
    if (plan.kind === 'class-means') {
      for (let c = 0; c < C; c++) {
        outMeans.push(means.slice(c * d, (c + 1) * d));
        outLabels.push(c);
        outWeights.push(Math.max(0, cnt[c]!));
      }
    } else {
      K = kCells;
      centroids = means;
      outMeans.length = 0;
      outLabels.length = 0;
      outWeights.length = 0;
      for (let cell = 0; cell < cells; cell++) {
        outMeans.push(means.slice(cell * d, (cell + 1) * d));
        outLabels.push(Math.floor(cell / K));
        outWeights.push(Math.max(0, cnt[cell]!));
      }
      if (r === 0 && h.warmupCentroids > 1 && plan.releases > 1) {
        // Split each class mean into K public perturbations (fresh randomness, no data).
        const Kn = h.warmupCentroids;
        // Smooth perturbations (blurred white noise, std ≈ SPLIT_STD per pixel) differ in stroke
        // position and thickness, which is what separates the modes of a class.
        const split = new Float32Array(C * Kn * d);
        const raw = new Float32Array(C * Kn * d);
        rng.normal(raw, 1);
        const pert = blurNhwc(raw, C * Kn, ph, pw, CH, SPLIT_BLUR);
        let ss = 0;
        for (const v of pert) ss += v * v;
        const gain = SPLIT_STD / Math.sqrt(ss / Math.max(1, pert.length));
        for (let cell = 0; cell < C * Kn; cell++) {
          const c = Math.floor(cell / Kn);
          for (let t = 0; t < d; t++) split[cell * d + t] = Math.min(1, Math.max(0, centroids[c * d + t]! + gain * pert[cell * d + t]!));
        }
        centroids = split;
        K = Kn;
      }
    }
    await new Promise((res) => setImmediate(res));
  }
  pooled.fill(0);
  if (outMeans.length === 0) return empty(released, stoppedBy);
  // Drop cells with too few (noisy) records, keeping each class's largest.
  const minCount = o.minCount ?? 20;
  const keep: number[] = [];
  for (let c = 0; c < C; c++) {
    const idx = outLabels.map((l, j) => (l === c ? j : -1)).filter((j) => j >= 0);
    if (idx.length === 0) continue;
    const best = idx.reduce((a, b) => (outWeights[b]! > outWeights[a]! ? b : a));
    for (const j of idx) if (j === best || outWeights[j]! >= minCount) keep.push(j);
  }
  const m = keep.length;
  const images = new Float32Array(m * H * W * CH);
  for (let j = 0; j < m; j++) images.set(upsample(outMeans[keep[j]!]!, ph, pw, H, W, CH), j * H * W * CH);
  const smooth = o.smooth ?? 0;
  const out = smooth > 0 ? blurNhwc(images, m, H, W, CH, smooth) : images;
  return { images: out, labels: Int32Array.from(keep, (j) => outLabels[j]!), weights: Float64Array.from(keep, (j) => outWeights[j]!), count: m, height: H, width: W, channels: CH, releases: released, stoppedBy, plan };
}

/** Pooled records (`poolRecords`), each clipped to L2 norm ≤ R. */
export function clippedPooledRecords(img: Uint8Array, n: number, H: number, W: number, CH: number, ds: number, R: number): Float32Array {
  const pooled = poolRecords(img, n, H, W, CH, ds);
  const d = pooled.length / Math.max(1, n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += pooled[i * d + t]! ** 2;
    if (s > R * R) {
      const sc = R / Math.sqrt(s);
      for (let t = 0; t < d; t++) pooled[i * d + t]! *= sc;
    }
  }
  return pooled;
}

/**
 * The vector one warm-up release noises (before noise): per cell, the sum of its records ⧺ R·(its
 * count). Cells: one per class, or with `kmeans` K per class, a record going to the nearest
 * (public) centroid of its own class. `include` (Poisson sample) selects records. Records must be
 * clipped to ‖·‖ ≤ R (clippedPooledRecords): that is what bounds the sensitivity.
 */
export function releaseStatistic(records: Float32Array, labels: Int32Array, n: number, d: number, numClasses: number, R: number, kmeans?: { centroids: Float32Array; perClass: number }, include?: Uint8Array): Float64Array {
  const K = kmeans ? kmeans.perClass : 1;
  const cells = numClasses * K;
  const v = new Float64Array(cells * d + cells);
  for (let i = 0; i < n; i++) {
    if (include && !include[i]) continue;
    const c = labels[i]!;
    if (!(c >= 0 && c < numClasses)) throw new RangeError(`warm-up: label ${c} of record ${i} out of range [0, ${numClasses})`);
    const cell = c * K + (kmeans && K > 1 ? nearest(records, i * d, d, kmeans.centroids, c * K, K) : 0);
    const off = cell * d;
    for (let t = 0; t < d; t++) v[off + t]! += records[i * d + t]!;
    v[cells * d + cell]! += R;
  }
  return v;
}

/** Average-pools n uint8 NHWC images by `ds` (partial edge blocks averaged over their pixels) into [0, 1] floats. */
export function poolRecords(img: Uint8Array, n: number, H: number, W: number, CH: number, ds: number): Float32Array {
  const ph = Math.ceil(H / ds);
  const pw = Math.ceil(W / ds);
  const d = ph * pw * CH;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const src = i * H * W * CH;
    for (let y = 0; y < ph; y++)
      for (let x = 0; x < pw; x++) {
        const y1 = Math.min(H, (y + 1) * ds);
        const x1 = Math.min(W, (x + 1) * ds);
        const cnt = (y1 - y * ds) * (x1 - x * ds);
        for (let ch = 0; ch < CH; ch++) {
          let s = 0;
          for (let yy = y * ds; yy < y1; yy++) for (let xx = x * ds; xx < x1; xx++) s += img[src + (yy * W + xx) * CH + ch]!;
          out[i * d + (y * pw + x) * CH + ch] = s / (255 * cnt);
        }
      }
  }
  return out;
}

/** Bilinear upsampling of one ph×pw×CH image to H×W×CH (pixel centres aligned, as F.interpolate with align_corners=False). */
export function upsample(src: Float32Array, ph: number, pw: number, H: number, W: number, CH: number): Float32Array {
  if (ph === H && pw === W) return src.slice();
  const out = new Float32Array(H * W * CH);
  const sy = ph / H;
  const sx = pw / W;
  for (let y = 0; y < H; y++) {
    const fy = Math.min(ph - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(ph - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(pw - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(pw - 1, x0 + 1);
      const wx = fx - x0;
      for (let ch = 0; ch < CH; ch++) {
        const a = src[(y0 * pw + x0) * CH + ch]!;
        const b = src[(y0 * pw + x1) * CH + ch]!;
        const c = src[(y1 * pw + x0) * CH + ch]!;
        const e = src[(y1 * pw + x1) * CH + ch]!;
        out[(y * W + x) * CH + ch] = (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * c + wx * e);
      }
    }
  }
  return out;
}

/** Separable Gaussian blur (std s pixels, zero padding) of n NHWC images. */
function blurNhwc(src: Float32Array, n: number, H: number, W: number, CH: number, s: number): Float32Array {
  const r = Math.max(1, Math.ceil(2 * s));
  const ker = new Float64Array(2 * r + 1);
  let tot = 0;
  for (let i = -r; i <= r; i++) tot += ker[i + r] = Math.exp(-(i * i) / (2 * s * s));
  for (let i = 0; i < ker.length; i++) ker[i]! /= tot;
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  const px = H * W * CH;
  for (let m = 0; m < n; m++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let ch = 0; ch < CH; ch++) {
          let a = 0;
          for (let i = -r; i <= r; i++) if (x + i >= 0 && x + i < W) a += ker[i + r]! * src[m * px + (y * W + x + i) * CH + ch]!;
          tmp[m * px + (y * W + x) * CH + ch] = a;
        }
  for (let m = 0; m < n; m++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let ch = 0; ch < CH; ch++) {
          let a = 0;
          for (let i = -r; i <= r; i++) if (y + i >= 0 && y + i < H) a += ker[i + r]! * tmp[m * px + ((y + i) * W + x) * CH + ch]!;
          out[m * px + (y * W + x) * CH + ch] = a;
        }
  return out;
}

/** Index (0..K-1) of the nearest of the K centroids cents[base..base+K-1] (rows of d) to rec[off..off+d]. */
function nearest(rec: Float32Array, off: number, d: number, cents: Float32Array, base: number, K: number): number {
  let best = 0;
  let bd = Infinity;
  for (let k = 0; k < K; k++) {
    const m = (base + k) * d;
    let s = 0;
    for (let t = 0; t < d; t++) {
      const u = rec[off + t]! - cents[m + t]!;
      s += u * u;
    }
    if (s < bd) [bd, best] = [s, k];
  }
  return best;
}

export interface WarmupCalibrationInput {
  /** The warm-up's event (`warmupEvent` / `plan.event`; noOp for none). */
  warmup: DpEvent;
  /** One DP-SGD step as a function of its noise multiplier, e.g. `dpsgdStepFamily(q)`. */
  step: (noise: number) => DpEvent;
  /** DP-SGD steps T. */
  steps: number;
  epsilon: number;
  delta: number;
  relation: NeighbouringRelation;
  accountant?: AccountantKind;
  /** Stop when target − achieved ≤ this (default 0.002·ε). */
  epsilonTolerance?: number;
}

export interface WarmupCalibration {
  /** The DP-SGD noise multiplier: warm-up ∘ T steps at it spends `achievedEpsilon` ≤ ε. */
  noise: number;
  achievedEpsilon: number;
  /** ε of the warm-up alone at δ. */
  warmupEpsilon: number;
  /** ε of the T DP-SGD steps alone at δ (for the report; the composition is what counts). */
  dpsgdEpsilon: number;
}

/** One Poisson-sampled Gaussian DP-SGD step of rate q, as a family of its noise multiplier. */
export function dpsgdStepFamily(sampleRate: number): (noise: number) => DpEvent {
  return (z) => DpEvents.poissonSampled(sampleRate, DpEvents.gaussian(z));
}

/**
 * The smallest DP-SGD noise multiplier such that the warm-up composed with `steps` DP-SGD steps
 * spends ≤ (ε, δ) (generic `calibrate` over the composed event). Throws CalibrationError when the
 * warm-up alone leaves nothing.
 */
export function calibrateWithWarmup(o: WarmupCalibrationInput): WarmupCalibration {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new RangeError(`DP-SGD steps must be a positive integer, got ${o.steps}`);
  const accountant = o.accountant ?? 'rdp';
  const epsOf = (e: DpEvent) => makeAccountant(accountant, { relation: o.relation }).compose(e).getEpsilon(o.delta);
  const warmupEpsilon = epsOf(o.warmup);
  if (!(warmupEpsilon < o.epsilon)) throw new CalibrationError(`the warm-up alone spends ε = ${warmupEpsilon.toPrecision(4)} of the budget ${o.epsilon}: lower --warmup-share`);
  const r = calibrate({
    family: (z) => DpEvents.composed([o.warmup, DpEvents.selfComposed(o.step(z), o.steps)]),
    targetEpsilon: o.epsilon,
    delta: o.delta,
    accountant,
    relation: o.relation,
    epsilonTolerance: o.epsilonTolerance ?? 2e-3 * o.epsilon,
  });
  return { noise: r.noise, achievedEpsilon: r.achievedEpsilon, warmupEpsilon, dpsgdEpsilon: epsOf(DpEvents.selfComposed(o.step(r.noise), o.steps)) };
}

/** JSON form of central images for a generator's checkpoint (a resumed run must NOT release them again). */
export interface CentralImagesJson {
  format: 'dplens-central-images-1';
  height: number;
  width: number;
  channels: number;
  labels: number[];
  weights: number[];
  /** Rounded to 1e-4 (post-processing). */
  images: number[];
  releases: number;
  stoppedBy: CentralImages['stoppedBy'];
}

export function centralImagesToJson(c: CentralImages): CentralImagesJson {
  return { format: 'dplens-central-images-1', height: c.height, width: c.width, channels: c.channels, labels: Array.from(c.labels), weights: Array.from(c.weights), images: Array.from(c.images, (v) => Math.round(v * 1e4) / 1e4), releases: c.releases, stoppedBy: c.stoppedBy };
}

/** Central images read back from a checkpoint; `plan` is recomputed from the hyper-parameters and public facts. */
export function centralImagesFromJson(j: CentralImagesJson, plan: WarmupPlan): CentralImages {
  if (j?.format !== 'dplens-central-images-1') throw new Error(`central images: unknown format ${String(j?.format)}`);
  const count = j.labels.length;
  if (j.images.length !== count * j.height * j.width * j.channels || j.weights.length !== count) throw new Error('central images: inconsistent lengths');
  return { images: Float32Array.from(j.images), labels: Int32Array.from(j.labels), weights: Float64Array.from(j.weights), count, height: j.height, width: j.width, channels: j.channels, releases: j.releases, stoppedBy: j.stoppedBy, plan };
}

export interface CentralBatchOptions {
  /** Labels of the batch (default: balanced, random order). */
  labels?: Int32Array;
  /** Small random affine maps (public prior, augment.ts; single-channel only; default true). */
  augment?: boolean;
  /** Max weight of a second same-class central image mixed in (default 0.3; 0 = none). */
  mix?: number;
}

/**
 * A batch of warm-up training images drawn from the central images (post-processing: public
 * randomness and the released images only): per label, a central image of that class ∝ its
 * weight, optionally mixed with another and affinely jittered. NHWC floats in [0, 1].
 */
export function centralImageBatch(central: CentralImages, n: number, rng: RandomSource, o: CentralBatchOptions = {}): { images: Float32Array; labels: Int32Array } {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`central batch size must be a positive integer, got ${n}`);
  if (central.count === 0) throw new RangeError('central image batch: no central images (warm-up none or refused by the budget)');
  const { height: H, width: W, channels: CH } = central;
  const px = H * W * CH;
  const numClasses = Math.max(...central.labels) + 1;
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  central.labels.forEach((l, j) => byClass[l]!.push(j));
  const lab = o.labels ?? balancedRandomLabels(rng, n, numClasses);
  if (lab.length !== n) throw new RangeError(`central batch: ${lab.length} labels for ${n} images`);
  const pick = (c: number): number => {
    const idx = byClass[c];
    if (!idx || idx.length === 0) throw new RangeError(`central batch: no central image of class ${c}`);
    let tot = 0;
    for (const j of idx) tot += central.weights[j]!;
    if (!(tot > 0)) return idx[Math.min(idx.length - 1, Math.floor(rng.nextDouble() * idx.length))]!;
    let u = rng.nextDouble() * tot;
    for (const j of idx) if ((u -= central.weights[j]!) < 0) return j;
    return idx[idx.length - 1]!;
  };
  const mix = o.mix ?? 0.3;
  const images = new Float32Array(n * px);
  for (let i = 0; i < n; i++) {
    const a = pick(lab[i]!);
    const lam = mix > 0 ? rng.nextDouble() * mix : 0;
    const b = lam > 0 ? pick(lab[i]!) : a;
    for (let t = 0; t < px; t++) images[i * px + t] = (1 - lam) * central.images[a * px + t]! + lam * central.images[b * px + t]!;
  }
  if ((o.augment ?? true) && CH === 1) {
    const u8 = Uint8Array.from(images, (v) => Math.round(255 * Math.min(1, Math.max(0, v))));
    augmentAffine(u8, n, H, W, rng);
    for (let t = 0; t < u8.length; t++) images[t] = u8[t]! / 255;
  }
  return { images, labels: Int32Array.from(lab) };
}

function balancedRandomLabels(rng: RandomSource, n: number, C: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i % C;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(rng.nextDouble() * (i + 1)));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

export interface WarmUpLoopOptions {
  /** Warm-up steps (WarmupHyper.warmupSteps). */
  steps: number;
  /** Images per step. */
  batch: number;
  /** Public randomness of the run (ctx.random). */
  rng: RandomSource;
  /** One training step of the caller's model on a batch of central images (its own loss); returns the loss. */
  step: (images: Float32Array, labels: Int32Array, stepIndex: number) => number;
  signal?: AbortSignal;
  batchOptions?: Omit<CentralBatchOptions, 'labels'>;
}

/**
 * The generic warm-up loop: `steps` calls of the caller's training step on `centralImageBatch`
 * batches. Post-processing of the released central images: it never sees ctx.data, so it can run
 * any number of steps at no privacy cost. Returns the steps done and the mean loss of the last 10.
 */
export async function warmUp(central: CentralImages, o: WarmUpLoopOptions): Promise<{ steps: number; loss: number }> {
  if (!Number.isInteger(o.steps) || o.steps < 0) throw new RangeError(`warm-up steps must be an integer >= 0, got ${o.steps}`);
  if (central.count === 0 || o.steps === 0) return { steps: 0, loss: NaN };
  const last: number[] = [];
  let done = 0;
  for (let s = 0; s < o.steps; s++) {
    if (o.signal?.aborted) break;
    const b = centralImageBatch(central, o.batch, o.rng, o.batchOptions);
    last.push(o.step(b.images, b.labels, s));
    if (last.length > 10) last.shift();
    done++;
    if (s % 10 === 9) await new Promise((res) => setImmediate(res));
  }
  return { steps: done, loss: last.length ? last.reduce((a, b) => a + b, 0) / last.length : NaN };
}
