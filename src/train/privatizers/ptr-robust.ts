/**
 * PTR-robust DP-SGD (Wang, Mahloujifar, Wang, Jia & Mittal, NeurIPS 2022, "Rényi Differential
 * Privacy of Propose-Test-Release and Applications to Private and Robust Machine Learning"):
 * each step aggregates the clipped per-sample gradients of the Poisson batch with a robust,
 * coordinate-wise statistic and releases it with propose-test-release, so Byzantine examples
 * (see train/corrupt.ts) move the update less while the release stays private.
 *
 * Aggregators (`--ptr-trim τ`; the coordinate-wise median and trimmed mean of Yin et al. 2018, the
 * robust aggregators of the paper's robust-SGD experiments):
 *   τ = 0.5   coordinate-wise median v_⌈n/2⌉ (lower median), projected onto the L2 ball of radius
 *             R = r·β (`--ptr-radius r`, default 1) so that its global sensitivity is 2R;
 *   τ < 0.5   coordinate-wise trimmed mean over the batch padded with 2t public zeros,
 *             t = ⌊τB⌋ (B = expected batch, public): sort the n + 2t values, keep ranks
 *             t+1..n+t, divide their sum by B. The padding puts 0 between the cut points, so
 *             adding/removing x changes coordinate j of the sum by clamp(x_j, lo_j, hi_j) with
 *             lo_j ≤ 0 ≤ hi_j, hence by at most |x_j|: global L2 sensitivity ≤ C/B (the same as
 *             the mean). Optional projection with `--ptr-radius`.
 * Mechanism per step (β = `--ptr-beta`·C/B, the proposed bound on the local sensitivity):
 *   1. clip each per-sample gradient to L2 ≤ C (every coordinate then lies in [−C, C]);
 *   2. per coordinate sort the values v₁ ≤ … ≤ v_N (N = n, or n + 2t with the padding; indices
 *      < 1 read −C, > N read +C) and bound the local sensitivity at distance k:
 *        median:       a_{k,j} = v_{m+k+1} − v_{m−k−1}, m = ⌈n/2⌉;
 *        trimmed mean: a_{k,j} = max(|v_{t−k−1}|, |v_{t+k+1}|, |v_{N−t−k}|, |v_{N−t+k+1}|)/B;
 *      U_k = min(‖a_{k,·}‖₂, GS), γ = min{k : U_k > β} capped at kMax;
 *   3. test γ + Lap(1/ε_t) > T = ln(1/(2δ_t))/ε_t; on failure the step releases ⊥ (zero update);
 *   4. on pass release agg + N(0, σ²β²·I).
 * Proof sketch (add/remove one record x; interlacing of order statistics v'ᵢ ∈ [v_{i−1}, vᵢ] on
 * adding, [vᵢ, v_{i+1}] on removing; m' ∈ {m, m ± 1}):
 *   - LS(D) ≤ U₀(D): a neighbour's median lies in [v_{m−1}, v_{m+1}]; for the trimmed sum adding x
 *     adds clamp(x_j, v_t, v_{N−t+1}) and removing x removes clamp(x_j, v_{t+1}, v_{N−t}), each of
 *     magnitude ≤ a_{0,j}·B; and LS ≤ GS;
 *   - U_k(D') ≤ U_{k+1}(D) for neighbours (each order statistic of D' in a level-k window lies
 *     between order statistics of D in the level-(k+1) window; min with GS keeps the order), so γ
 *     has sensitivity 1 and γ ≥ 1 implies LS ≤ β — the two facts PTR needs. The projection is
 *     1-Lipschitz (LS and GS only shrink).
 * Accounting: poissonSampled(q, ptr{ε_t, T, σ, ρ = GS/β, kMax}), priced by the RDP accountant with
 * privacy/ptr.ts (this repo's derivation of the paper's RDP analysis plus the general Poisson
 * amplification bound — not the paper's tighter PTR-specific amplification); the (ε, δ)-PTR bound
 * `ptrApproxDpEpsilon` is printed next to it by the train runner (JSON key `ptr.epsilonApproxDp`).
 * The RDP bound is small only when ρ = GS/β is small relative to σ (the "bad" event — both
 * neighbours unstable — costs α·ρ²/(2σ²) with probability δ_t), which is why the aggregates are
 * given a bounded global sensitivity. σ = 0 → nonPrivate.
 * Honest notes: for the padded trimmed mean GS = C/B already, so with β ≥ C/B (default) the test
 * always passes and the mechanism is a Gaussian release of a robust statistic plus a test that
 * costs a little; PTR only buys something for statistics whose typical local sensitivity is far
 * below their global one (the median). The failed-test step is a zero update; β is a fixed
 * proposal (not adaptive). Cost: the whole logical batch's per-sample gradients are materialised.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type PtrEvent, ptrThreshold, type RandomSource } from '../../privacy/index.js';
import type { GradTape, Param } from '../../nn/index.js';
import { clippedRows } from './compress.js';
import { checkSigma, type Privatizer, type PrivatizerFactory } from './types.js';

export interface PtrRobustOptions {
  /** Per-sample L2 clip C. */
  clip: number;
  noiseMultiplier: number;
  /** Expected (public) batch size B. */
  expectedBatch: number;
  /** 0.5 = coordinate-wise median, [0, 0.5) = zero-padded trimmed mean cutting ⌊τB⌋ values per side. */
  trim: number;
  /** Proposed local-sensitivity bound β in units of C/B. */
  beta: number;
  /** Projection radius R in units of β (undefined: median 1, trimmed mean none). */
  radius?: number;
  /** ε of the Laplace test. */
  testEpsilon: number;
  /** Probability δ_t that a dataset with LS > β passes the test. */
  testDelta: number;
}

/** Result of the robust aggregation of one batch, before the test and the noise. */
export interface RobustAggregate {
  /** Aggregate (mean scale), length P, not yet projected. */
  value: Float32Array;
  /** U_k for k = 0..kMax. */
  levels: Float64Array;
  /** Distance to instability γ (capped at kMax). */
  gamma: number;
}

/**
 * Coordinate-wise median / padded trimmed mean of n rows of length P (row-major, values in [−C, C])
 * and the distance to instability for bound β (see file comment). Exported for the property tests.
 */
export function robustAggregate(rows: Float32Array, n: number, P: number, o: { clip: number; trim: number; expectedBatch: number; beta: number; kMax: number; globalSensitivity: number }): RobustAggregate {
  const C = o.clip;
  const K = o.kMax;
  const median = o.trim >= 0.5;
  const t = median ? 0 : Math.floor(o.trim * o.expectedBatch);
  const N = n + 2 * t; // trimmed mean: 2t public zeros
  const value = new Float32Array(P);
  const u2 = new Float64Array(K + 1);
  const col = new Float32Array(N);
  const m = Math.ceil(n / 2);
  // 1-indexed order statistic with the domain bounds outside [1, N]
  const at = (i: number): number => (i < 1 ? -C : i > N ? C : col[i - 1]!);
  for (let j = 0; j < P; j++) {
    for (let i = 0; i < n; i++) col[i] = rows[i * P + j]!;
    col.fill(0, n);
    col.sort();
    if (median) {
      value[j] = n === 0 ? 0 : at(m);
      for (let k = 0; k <= K; k++) {
        const a = at(m + k + 1) - at(m - k - 1);
        u2[k] += a * a;
      }
    } else {
      let s = 0;
      for (let i = t + 1; i <= N - t; i++) s += at(i);
      value[j] = s / o.expectedBatch;
      for (let k = 0; k <= K; k++) {
        const a = Math.max(Math.abs(at(t - k - 1)), Math.abs(at(t + k + 1)), Math.abs(at(N - t - k)), Math.abs(at(N - t + k + 1))) / o.expectedBatch;
        u2[k] += a * a;
      }
    }
  }
  const levels = u2.map((x) => Math.min(Math.sqrt(x), o.globalSensitivity));
  let gamma = K;
  for (let k = 0; k <= K; k++) {
    if (levels[k]! > o.beta) {
      gamma = k;
      break;
    }
  }
  return { value, levels, gamma };
}

/** A Laplace(0, b) draw from the RandomSource (inverse CDF of one uniform). */
function laplace(rng: RandomSource, b: number): number {
  const u = new Float64Array(1);
  do rng.uniform(u);
  while (u[0] === 0);
  const x = u[0]! - 0.5;
  return -b * Math.sign(x) * Math.log(1 - 2 * Math.abs(x));
}

export class PtrRobustPrivatizer implements Privatizer {
  readonly name = 'ptr-robust';
  private rows: Float32Array[] = [];
  private count = 0;
  /** Steps whose test passed / ran (released: a failed test releases ⊥, i.e. a zero update). */
  passed = 0;
  tested = 0;
  readonly threshold: number;
  readonly kMax: number;
  /** β, the projection radius (Infinity = none) and the global sensitivity, all in gradient (mean) units. */
  readonly beta: number;
  readonly radius: number;
  readonly globalSensitivity: number;
  constructor(readonly opts: PtrRobustOptions) {
    checkSigma(opts.noiseMultiplier);
    if (!(opts.clip > 0 && Number.isFinite(opts.clip))) throw new RangeError(`ptr-robust clip must be a positive finite number, got ${opts.clip}`);
    if (!(opts.expectedBatch > 0)) throw new RangeError(`ptr-robust needs the expected batch size, got ${opts.expectedBatch}`);
    if (!(opts.trim >= 0 && opts.trim <= 0.5)) throw new RangeError(`--ptr-trim must be in [0, 0.5], got ${opts.trim}`);
    if (!(opts.beta > 0 && Number.isFinite(opts.beta))) throw new RangeError(`--ptr-beta must be a finite number > 0, got ${opts.beta}`);
    if (opts.radius !== undefined && !(opts.radius > 0 && Number.isFinite(opts.radius))) throw new RangeError(`--ptr-radius must be a finite number > 0, got ${opts.radius}`);
    if (!(opts.testEpsilon > 0)) throw new RangeError(`--ptr-test-epsilon must be > 0, got ${opts.testEpsilon}`);
    if (!(opts.testDelta > 0 && opts.testDelta < 0.5)) throw new RangeError(`--ptr-test-delta must be in (0, 0.5), got ${opts.testDelta}`);
    this.threshold = ptrThreshold(opts.testEpsilon, opts.testDelta);
    this.kMax = Math.ceil(this.threshold + 10 / opts.testEpsilon);
    this.beta = (opts.beta * opts.clip) / opts.expectedBatch;
    const median = opts.trim >= 0.5;
    const r = opts.radius ?? (median ? 1 : undefined);
    this.radius = r === undefined ? Infinity : r * this.beta;
    // median: only the projection bounds it; padded trimmed mean: C/B (file comment)
    this.globalSensitivity = Math.min(2 * this.radius, median ? Infinity : opts.clip / opts.expectedBatch);
  }
  /** Canaries enter the sum like one more clipped example (scale C, divided by the batch). */
  get sensitivity(): number {
    return this.opts.clip;
  }
  event(): PtrEvent {
    return DpEvents.ptr({ testEpsilon: this.opts.testEpsilon, threshold: this.threshold, noiseMultiplier: this.opts.noiseMultiplier, gsRatio: Math.max(1, this.globalSensitivity / this.beta), kMax: this.kMax });
  }
  stepEvent(q: number): DpEvent {
    if (this.opts.noiseMultiplier === 0) return DpEvents.nonPrivate('PTR-robust DP-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, this.event());
  }
  chunkSum(tape: GradTape, params: Param[]): tf.Tensor[] {
    const rows = clippedRows(tape, params, this.opts.clip);
    this.rows.push(rows.dataSync() as Float32Array);
    this.count += rows.shape[0];
    rows.dispose();
    return params.map((p) => tf.zeros(p.value.shape));
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    if (expectedBatch !== this.opts.expectedBatch) throw new RangeError(`ptr-robust was built for expected batch ${this.opts.expectedBatch}, the trainer uses ${expectedBatch}`);
    const P = sum.reduce((s, x) => s + x.size, 0);
    const n = this.count;
    const all = new Float32Array(n * P);
    let off = 0;
    for (const r of this.rows) {
      all.set(r, off);
      off += r.length;
    }
    this.rows = [];
    this.count = 0;
    const agg = robustAggregate(all, n, P, { clip: this.opts.clip, trim: this.opts.trim, expectedBatch, beta: this.beta, kMax: this.kMax, globalSensitivity: this.globalSensitivity });
    this.tested++;
    const pass = agg.gamma + laplace(rng, 1 / this.opts.testEpsilon) > this.threshold;
    const out = new Float32Array(P);
    if (pass) {
      this.passed++;
      let nn = 0;
      for (const v of agg.value) nn += v * v;
      const scale = Math.sqrt(nn) > this.radius ? this.radius / Math.sqrt(nn) : 1;
      const std = this.opts.noiseMultiplier * this.beta;
      if (std > 0) rng.normal(out, std);
      for (let j = 0; j < P; j++) out[j] += agg.value[j]! * scale;
    }
    off = 0;
    return sum.map((s) => {
      const part = out.subarray(off, off + s.size);
      off += s.size;
      // canaries (gradient audit) were added to `sum` at the clip scale; they enter like one more example
      return tf.tidy(() => (pass ? tf.add(tf.tensor(part, s.shape, 'float32'), tf.div(s, expectedBatch)) : tf.zerosLike(s)));
    });
  }
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.opts.noiseMultiplier, aggregator: this.opts.trim >= 0.5 ? 'median' : 'trimmed-mean', trim: this.opts.trim, beta: this.beta, ...(Number.isFinite(this.radius) ? { radius: this.radius } : {}), globalSensitivity: this.globalSensitivity, testEpsilon: this.opts.testEpsilon, testDelta: this.opts.testDelta, threshold: this.threshold, kMax: this.kMax };
  }
}

export const ptrRobustFactory: PrivatizerFactory = {
  name: 'ptr-robust',
  summary: 'PTR-robust: coordinate-wise median / trimmed mean of clipped per-sample gradients, released by propose-test-release (RDP of Wang et al. 2022)',
  uses: ['clip'],
  options: [
    { flag: 'ptr-trim', type: 'number', check: (x) => (x >= 0 && x <= 0.5) || 'must be in [0, 0.5]', help: 'PTR: 0.5 = coordinate-wise median, τ < 0.5 = zero-padded trimmed mean cutting ⌊τ·batch⌋ per side (default 0.1)' },
    { flag: 'ptr-beta', type: 'number', check: (x) => x > 0 || 'must be > 0', help: 'PTR: proposed local-sensitivity bound β in units of clip/batch (default 1 for the trimmed mean, 20 for the median)' },
    { flag: 'ptr-radius', type: 'number', check: (x) => x > 0 || 'must be > 0', help: 'PTR: project the aggregate onto an L2 ball of radius r·β (global sensitivity ≤ 2rβ; default 1 for the median, none for the trimmed mean)' },
    { flag: 'ptr-test-epsilon', type: 'number', check: (x) => x > 0 || 'must be > 0', help: 'PTR: ε of the Laplace test on the distance to instability (default 1)' },
    { flag: 'ptr-test-delta', type: 'number', check: (x) => (x > 0 && x < 0.5) || 'must be in (0, 0.5)', help: 'PTR: probability that an unstable batch passes the test (default 1e-7)' },
  ],
  create: (ctx) => {
    if (ctx.expectedBatch === undefined) throw new RangeError('ptr-robust needs the expected batch size (PrivatizerBuildContext.expectedBatch)');
    const trim = (ctx.options['ptr-trim'] as number | undefined) ?? 0.1;
    return new PtrRobustPrivatizer({
      clip: ctx.clip,
      noiseMultiplier: ctx.noiseMultiplier,
      expectedBatch: ctx.expectedBatch,
      trim,
      beta: (ctx.options['ptr-beta'] as number | undefined) ?? (trim >= 0.5 ? 20 : 1),
      radius: ctx.options['ptr-radius'] as number | undefined,
      testEpsilon: (ctx.options['ptr-test-epsilon'] as number | undefined) ?? 1,
      testDelta: (ctx.options['ptr-test-delta'] as number | undefined) ?? 1e-7,
    });
  },
};
