/**
 * TopAgg-SGD: DataLens's gradient compression and aggregation (Wang et al., CCS 2021, "DataLens:
 * Scalable Privacy Preserving Training via Gradient Compression and Aggregation", TopAgg, used
 * there also as a drop-in for the Gaussian step of DP-SGD) with one example per "teacher".
 *
 * Mechanism, per example i of the Poisson batch:
 *   1. S_i = the k coordinates of its gradient g_i with the largest |g_i[t]| (exactly k, ties by
 *      position; non-finite entries count as 0).
 *   2. Bound b_i = max_t |g_i[t]| (the example's own largest magnitude), capped at --topagg-clip
 *      when given: b_i = min(max|g_i|, c) — the reference code's `max_grad` rule.
 *   3. Stochastic sign vote for t ∈ S_i: +1 with probability ½ + clip(g_i[t]/b_i, −1, 1)/2, else −1
 *      (b_i = 0: a fair coin). Zero elsewhere.
 *   The vote sum V = Σ_i v_i gets Gaussian noise N(0, σ²k) on every coordinate.
 *   Sensitivity (add/remove one example): V changes by exactly one vote vector, k entries of ±1 and
 *   zeros elsewhere, so by L2 norm √k whatever the data, b_i and the coins — sensitivity √k
 *   (DataLens's 2√k is for replace-one). Noise std σ√k ⇒ one step is poissonSampled(q, gaussian(σ)).
 *   Everything after the noise is post-processing.
 *   Optional threshold (library only): a second noisy copy of the same vote sum, std σ₁√k, selects
 *   the coordinates whose |noisy count| ≥ β·(expected batch); the pair of Gaussian releases of one
 *   query is one Gaussian with 1/σ_eff² = 1/σ² + 1/σ₁², event poissonSampled(q, gaussian(σ_eff)).
 *
 * Gradient estimate (post-processing): s·Ṽ/(√k·B), B the expected batch and s = --topagg-scale
 * (default 1.5, the Gaussian's default --clip). Each example then contributes a vector of L2 norm
 * exactly s and the noise has std σ·s/B per coordinate — the same scales as Gaussian DP-SGD with
 * clip C = s, so one learning-rate grid serves both (the TopAgg-SGD study, bench/topagg-study.ts).
 *
 * Differences from the paper / reference code and why:
 * - The first version of this privatizer used a fixed per-coordinate clip c = 0.01 for the sign
 *   probability and c·Ṽ/B as the estimate. Both were defaults problems, not privacy defects: the
 *   estimate's scale c·√k ≈ 0.16 (k = 260 of the reference CNN's 26 010 parameters) made steps
 *   ~10× smaller than Gaussian DP-SGD's at the same learning rate, so lr 0.01–0.05 never left
 *   chance level in one epoch; see src/train/README.md "TopAgg-SGD study".
 * - DataLens thresholds Ṽ at ±βN and releases α·sign (or α·Ṽ/k without threshold); we use the
 *   unthresholded Ṽ scaled as above (an SGD step needs a magnitude; the sign-threshold variant is
 *   post-processing and could be added without changing the accounting).
 * - Per-example gradients are those of DP-SGD (one example = one teacher), not DataLens's image
 *   gradients of a teacher ensemble; accounting is the data-independent Gaussian bound (DataLens's
 *   reported ε is data-independent in effect as well, ../shared/docs/algorithms-datalens-gpate.md §4).
 * Speed: selection, signs and the vote sum run on the host (one quickselect per example over the
 * per-sample gradient rows read once), instead of Abs/TopK/Gather/SegmentSum tensor kernels on an
 * [N, P] concat, which dominated the step (≈5× the Gaussian step).
 * The sign coins need no cryptographic quality (privacy comes from the Gaussian noise alone) but
 * are drawn from the same RandomSource for reproducibility.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import type { GradTape, Param } from '../../nn/index.js';
import { checkSigma, gaussianNoise, type Privatizer, type PrivatizerFactory } from './types.js';

export interface TopAggOptions {
  /** Coordinates kept per example. */
  k: number;
  /**
   * Cap c on the per-example sign bound b_i = min(max_t |g_i[t]|, c). Absent: b_i = max_t |g_i[t]|
   * (the reference code's default). Changes the sign probabilities, never the privacy.
   */
  clip?: number;
  /** L2 norm s of one example's contribution to the gradient estimate (s·votes/√k). Default 1.5. */
  scale?: number;
  /** Noise multiplier σ (noise std σ·√k on the vote sum). */
  noiseMultiplier: number;
  /** Optional noisy threshold: σ₁ and β (fraction of the expected batch). */
  threshold?: { sigma1: number; beta: number };
  /**
   * DataLens's free threshold β: keep only coordinates whose noisy vote count satisfies
   * |Ṽ[t]| ≥ β·(expected batch), zero the rest — post-processing of the released Ṽ, no extra cost.
   */
  voteThreshold?: number;
}

/** Default --topagg-scale: the Gaussian privatizer's default --clip, so learning rates carry over. */
export const TOPAGG_DEFAULT_SCALE = 1.5;

export class TopAggPrivatizer implements Privatizer {
  readonly name = 'topagg';
  constructor(readonly opts: TopAggOptions) {
    if (!(Number.isInteger(opts.k) && opts.k > 0)) throw new RangeError(`topagg k must be a positive integer, got ${opts.k}`);
    if (opts.clip !== undefined && !(opts.clip > 0 && Number.isFinite(opts.clip))) throw new RangeError(`topagg clip must be > 0, got ${opts.clip}`);
    if (opts.scale !== undefined && !(opts.scale > 0 && Number.isFinite(opts.scale))) throw new RangeError(`topagg scale must be > 0, got ${opts.scale}`);
    checkSigma(opts.noiseMultiplier);
    if (opts.threshold && !(opts.threshold.sigma1 > 0 && opts.threshold.beta >= 0)) throw new RangeError('topagg threshold needs sigma1 > 0 and beta >= 0');
    if (opts.voteThreshold !== undefined && !(opts.voteThreshold >= 0 && Number.isFinite(opts.voteThreshold))) throw new RangeError(`topagg vote threshold must be >= 0, got ${opts.voteThreshold}`);
  }
  /** Effective noise multiplier of the step's Gaussian mechanism (vote noise and threshold composed). */
  get noiseMultiplier(): number {
    const s = this.opts.noiseMultiplier;
    const t = this.opts.threshold;
    if (!t || s === 0) return s;
    return 1 / Math.sqrt(1 / (s * s) + 1 / (t.sigma1 * t.sigma1));
  }
  get sensitivity(): number {
    return Math.sqrt(this.opts.k);
  }
  get scale(): number {
    return this.opts.scale ?? TOPAGG_DEFAULT_SCALE;
  }
  stepEvent(q: number): DpEvent {
    if (this.opts.noiseMultiplier === 0) return DpEvents.nonPrivate('TopAgg-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[] {
    const rows = perSampleRows(tape, params);
    const { n, P, data } = rows;
    const sum = topAggVoteSum(data, n, P, Math.min(this.opts.k, P), this.opts.clip, rng);
    const out: tf.Tensor[] = [];
    let off = 0;
    for (const p of params) {
      out.push(tf.tensor(sum.subarray(off, off + p.value.size), p.value.shape, 'float32'));
      off += p.value.size;
    }
    return out;
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const sk = Math.sqrt(this.opts.k);
    const std = this.opts.noiseMultiplier * sk;
    const t = this.opts.threshold;
    return sum.map((s) =>
      tf.tidy(() => {
        let noisy = std > 0 ? tf.add(s, gaussianNoise(s.shape, std, rng)) : s;
        if (t) {
          const sel = tf.add(s, gaussianNoise(s.shape, t.sigma1 * sk, rng));
          noisy = tf.mul(noisy, tf.cast(tf.greaterEqual(tf.abs(sel), t.beta * expectedBatch), 'float32'));
        }
        const beta = this.opts.voteThreshold;
        if (beta) noisy = tf.mul(noisy, tf.cast(tf.greaterEqual(tf.abs(noisy), beta * expectedBatch), 'float32'));
        return tf.mul(noisy, this.scale / (sk * expectedBatch));
      }),
    );
  }
  ledgerMeta(): Record<string, number | string> {
    return {
      noiseMultiplier: this.noiseMultiplier,
      k: this.opts.k,
      topaggScale: this.scale,
      ...(this.opts.clip !== undefined ? { topaggClip: this.opts.clip } : {}),
      ...(this.opts.voteThreshold ? { topaggBeta: this.opts.voteThreshold } : {}),
      ...(this.opts.threshold ? { thresholdSigma1: this.opts.threshold.sigma1, thresholdBeta: this.opts.threshold.beta } : {}),
    };
  }
}

/** Per-sample gradients of one chunk read to the host as rows [n, P] in parameter order. */
function perSampleRows(tape: GradTape, params: Param[]): { n: number; P: number; data: Float32Array } {
  const pos = new Map<tf.Variable, number>();
  const offs: number[] = [];
  let P = 0;
  params.forEach((p, i) => {
    pos.set(p.value, i);
    offs.push(P);
    P += p.value.size;
  });
  const parts: (Float32Array | undefined)[] = new Array(params.length);
  let n = -1;
  for (const r of tape.records) {
    const ps = r.perSample();
    r.params.forEach((p, j) => {
      const i = pos.get(p.value);
      if (i === undefined) throw new RangeError(`parameter ${p.name} produced a gradient record but is not among the model's parameters`);
      const t = ps[j]!;
      if (n < 0) n = t.shape[0]!;
      parts[i] = t.dataSync() as Float32Array;
    });
  }
  const missing = parts.findIndex((x) => x === undefined);
  if (missing >= 0) throw new RangeError(`backward produced no gradient record for parameter ${params[missing]!.name}`);
  n = Math.max(n, 0);
  const data = new Float32Array(n * P);
  parts.forEach((src, i) => {
    const size = params[i]!.value.size;
    for (let e = 0; e < n; e++) data.set(src!.subarray(e * size, (e + 1) * size), e * P + offs[i]!);
  });
  return { n, P, data };
}

/**
 * TopAgg vote sum of n gradient rows of length P (row-major): each row casts exactly k stochastic
 * ±1 votes (see the file comment); returns the sum over rows, length P. Exported for tests.
 */
export function topAggVoteSum(rows: Float32Array, n: number, P: number, k: number, clip: number | undefined, rng: RandomSource): Float32Array {
  if (!(Number.isInteger(k) && k >= 1 && k <= P)) throw new RangeError(`topagg k must be in [1, ${P}], got ${k}`);
  const sum = new Float32Array(P);
  // |g| as float32 and as its bit pattern: for non-negative floats the uint32 order is the float
  // order, so the k-th largest is found by a radix select (histogram of the top 12 bits, then
  // the few candidates of one bucket) instead of a comparison sort or quickselect.
  const mag = new Float32Array(P);
  const bits = new Uint32Array(mag.buffer);
  const hist = new Uint32Array(4096);
  let cand = new Uint32Array(64);
  const coins = new Float32Array(k);
  for (let e = 0; e < n; e++) {
    const row = rows.subarray(e * P, (e + 1) * P);
    let max = 0;
    hist.fill(0);
    for (let t = 0; t < P; t++) {
      const a = Math.abs(row[t]!);
      const m = a < Infinity ? a : 0; // NaN and ±∞ count as 0 (never selected before a finite entry)
      mag[t] = m;
      if (m > max) max = m;
      hist[bits[t]! >>> 20]!++;
    }
    // bucket holding the k-th largest, and how many of the k lie in higher buckets
    let bucket = 4095;
    let higher = 0;
    while (higher + hist[bucket]! < k) higher += hist[bucket--]!;
    const inBucket = hist[bucket]!;
    if (cand.length < inBucket) cand = new Uint32Array(Math.max(inBucket, 2 * cand.length));
    let c = 0;
    for (let t = 0; t < P; t++) if (bits[t]! >>> 20 === bucket) cand[c++] = bits[t]!;
    const sorted = cand.subarray(0, c).sort();
    const thrBits = sorted[c - (k - higher)]!; // (k − higher)-th largest in the bucket
    let above = 0;
    for (let i = c - 1; i >= 0 && sorted[i]! > thrBits; i--) above++;
    let ties = k - higher - above; // entries equal to the threshold, taken in position order
    const b = clip !== undefined ? Math.min(max, clip) : max;
    rng.uniform(coins);
    let v = 0;
    for (let t = 0; t < P && v < k; t++) {
      const w = bits[t]!;
      if (w < thrBits || (w === thrBits && ties-- <= 0)) continue;
      const g = w === 0 ? 0 : row[t]!;
      const r = b > 0 ? Math.max(-1, Math.min(1, g / b)) : 0;
      sum[t] += coins[v++]! < 0.5 + 0.5 * r ? 1 : -1;
    }
  }
  return sum;
}

export const topaggFactory: PrivatizerFactory = {
  name: 'topagg',
  summary: 'TopAgg-SGD: k stochastic sign votes per example, N(0, σ²k) on the vote sum (sensitivity √k)',
  uses: [],
  options: [
    { flag: 'topagg-k', type: 'integer', min: 1, help: 'TopAgg: coordinates kept per example (default 1% of parameters)' },
    { flag: 'topagg-clip', type: 'number', check: (x) => x > 0 || 'must be > 0', help: "TopAgg: cap on the per-example sign bound min(max|g|, c) (default: none, the example's own max |g|)" },
    { flag: 'topagg-scale', type: 'number', check: (x) => x > 0 || 'must be > 0', help: `TopAgg: L2 norm of one example's contribution to the gradient estimate (default ${TOPAGG_DEFAULT_SCALE}, like --clip of gaussian)` },
    { flag: 'topagg-beta', type: 'number', check: (x) => x >= 0 || 'must be >= 0', help: 'TopAgg: keep only coordinates with |noisy vote count| >= beta x expected batch (DataLens threshold; post-processing, free; default 0 = off)' },
    { flag: 'topagg-threshold-sigma1', type: 'number', cli: false, check: (x) => x > 0 || 'must be > 0', help: 'TopAgg: noise multiplier σ₁ of the noisy selection threshold (off by default)' },
    { flag: 'topagg-threshold-beta', type: 'number', cli: false, check: (x) => x >= 0 || 'must be >= 0', help: 'TopAgg: threshold β as a fraction of the expected batch (with σ₁)' },
  ],
  create: (ctx) =>
    new TopAggPrivatizer({
      k: (ctx.options['topagg-k'] as number | undefined) ?? Math.max(1, Math.round(ctx.paramCount * 0.01)),
      clip: ctx.options['topagg-clip'] as number | undefined,
      scale: ctx.options['topagg-scale'] as number | undefined,
      voteThreshold: ctx.options['topagg-beta'] as number | undefined,
      noiseMultiplier: ctx.noiseMultiplier,
      threshold: ctx.options['topagg-threshold-sigma1'] !== undefined ? { sigma1: ctx.options['topagg-threshold-sigma1'] as number, beta: (ctx.options['topagg-threshold-beta'] as number | undefined) ?? 0 } : undefined,
    }),
};
