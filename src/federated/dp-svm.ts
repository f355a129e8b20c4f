/**
 * DP-SVM averaging with ONE secure summation (issue 17 item 4; the seed paper's "1,000 users × 50
 * points" protocol): each party trains a strongly convex, smooth, Lipschitz linear model on its own
 * records, perturbs it with its share of the output-perturbation noise, and one secure-aggregation
 * round (secagg.ts) gives the server only the noisy SUM, which it divides by the public survivor
 * count. Output perturbation as in Chaudhuri, Monteleoni & Sarwate (JMLR 2011) and the "bolt-on"
 * analysis of Wu et al. (SIGMOD 2017), with the noise distributed over the parties like DP-FedAvg's
 * (Kairouz, Liu & Steinke, ICML 2021).
 *
 * Model: one-vs-rest L2-regularised logistic regression on features x with ‖x‖₂ <= 1 (a bias
 * coordinate is included in x), per class k: F_k(w) = (1/n) Σ_i log(1 + exp(−y_ik w·x_i)) + λ/2 ‖w‖²,
 * y_ik = ±1. The loss is L = 1 Lipschitz and β = 1/4 smooth in w; F_k is λ-strongly convex.
 * Local training is deterministic FULL-BATCH gradient descent from w₀ = 0 with step η = 1/(β + λ),
 * T iterations (no convergence assumption is needed for the bound below).
 *
 * Sensitivity (replace-one of ONE record of ONE party, the party's n public): write the step as
 * w ↦ (1 − ηλ) [w − η/(1 − ηλ) ∇G(w)], G the average loss. With η/(1 − ηλ) = 1/β <= 2/β the
 * bracket is non-expansive (gradient step on a convex β-smooth function), so the map is a
 * (1 − ηλ)-contraction. On neighbouring datasets the two maps differ, at any w, by
 * (η/n) ‖∇ℓ(w; z) − ∇ℓ(w; z')‖ <= 2ηL/n. Hence δ_{t+1} <= (1 − ηλ) δ_t + 2ηL/n, δ₀ = 0, so
 * ‖w_T − w'_T‖ <= 2L/(nλ) (1 − (1 − ηλ)^T) <= 2L/(nλ) per class (Chaudhuri's bound for the exact
 * minimiser is the limit). All K one-vs-rest models can move (the label and x both change):
 * Δ_party = √K · 2L/(nλ) (1 − (1 − ηλ)^T). The other parties' models do not change, so the SUM of
 * the models has the same L2 sensitivity; the average has Δ_party / m (m survivors, public).
 * ‖w_t‖ <= L/λ per class for every t (induction: ‖w_{t+1}‖ <= (1 − ηλ)L/λ + ηL), so clipping to
 * c = √K L/λ is a no-op that bounds each party's contribution for quantisation.
 *
 * Distributed noise: each party scales by 1/γ (γ = c/2^scaleBits), rounds at random (unbiased) and
 * adds i.i.d. discrete Gaussian N_Z(0, σ²) per coordinate (dpfedavg.ts's encoding). For a fixed
 * outcome of the rounding coins the rounded vectors of neighbours differ by < Δ_party/γ + 2√d
 * (each coordinate moves by < 1 when rounded); RDP is jointly quasi-convex, so the mixture over
 * coins keeps the bound: Δ_q = Δ_party/γ + 2√d. The sum carries the noise of >= t survivors (t the
 * secure-aggregation threshold: fewer abort the round before anything is unmasked); by Kairouz et
 * al. Prop. 14 (third bound) it is exactly as private as a Gaussian with noise multiplier
 * z = 1/(Δ_q/(√t σ) + τ√d) — the event recorded in the server's ledger, once, before unmasking.
 *
 * Guarantee: record-level (ε, δ)-DP, REPLACE-ONE of one record of one party; public: the parties,
 * their number, each party's record count n, the survivor count, λ, T and the feature map (trained
 * on public data only). Not user-level DP.
 *
 * Differs from the paper: logistic loss (smooth, as bolt-on needs) instead of a smoothed hinge;
 * full-batch GD instead of permutation SGD (the bound above is simpler and holds for any T);
 * distributed discrete Gaussian shares through Bonawitz secure aggregation instead of a trusted
 * summation; features from a small CNN trained on a different public dataset instead of SimCLR.
 */
import { DpEvents, type DpEvent, type RandomSource } from '../privacy/index.js';
import { ddgTau, decodeAverage, encodeClientUpdate, type DdgParams } from './dpfedavg.js';

/** Labeled feature vectors, rows with ‖x‖₂ <= 1 (bias coordinate included). */
export interface SvmData {
  x: Float64Array;
  labels: Int32Array;
  count: number;
  dim: number;
}

export interface SvmTraining {
  /** L2 regularisation λ > 0 (strong convexity). */
  lambda: number;
  /** Full-batch GD iterations T. */
  iterations: number;
}

/** Logistic loss: Lipschitz and smoothness constants for ‖x‖ <= 1. */
export const LOGISTIC_L = 1;
export const LOGISTIC_BETA = 0.25;

export function stepSize(lambda: number): number {
  return 1 / (LOGISTIC_BETA + lambda);
}

/**
 * Rows of `f` (count × dim) to SVM inputs: x = [(f − c)/‖f − c‖, 1]/√2 (unit norm, bias included),
 * c a PUBLIC centre (e.g. the mean feature of the public dataset; none = 0). Zero rows become [0, 1]/√2.
 */
export function normaliseFeatures(f: ArrayLike<number>, labels: ArrayLike<number>, count: number, dim: number, centre?: ArrayLike<number>): SvmData {
  const D = dim + 1;
  const x = new Float64Array(count * D);
  const s = Math.SQRT1_2;
  for (let i = 0; i < count; i++) {
    let nrm = 0;
    for (let j = 0; j < dim; j++) nrm += (f[i * dim + j]! - (centre?.[j] ?? 0)) ** 2;
    nrm = Math.sqrt(nrm);
    const inv = nrm > 0 ? s / nrm : 0;
    for (let j = 0; j < dim; j++) x[i * D + j] = (f[i * dim + j]! - (centre?.[j] ?? 0)) * inv;
    x[i * D + dim] = s;
  }
  return { x, labels: Int32Array.from(labels as ArrayLike<number>).subarray(0, count), count, dim: D };
}

/** One party's one-vs-rest models (classes × dim, row-major) by full-batch GD from 0. */
export function trainLocalSvm(d: SvmData, classes: number, o: SvmTraining): Float64Array {
  if (!(o.lambda > 0)) throw new RangeError(`lambda must be > 0, got ${o.lambda}`);
  const D = d.dim;
  const w = new Float64Array(classes * D);
  const g = new Float64Array(classes * D);
  const eta = stepSize(o.lambda);
  const shrink = 1 - eta * o.lambda;
  const n = d.count;
  for (let t = 0; t < o.iterations; t++) {
    g.fill(0);
    for (let i = 0; i < n; i++) {
      const xi = i * D;
      const yi = d.labels[i]!;
      for (let k = 0; k < classes; k++) {
        const wk = k * D;
        let m = 0;
        for (let j = 0; j < D; j++) m += w[wk + j]! * d.x[xi + j]!;
        const y = yi === k ? 1 : -1;
        // ∇ log(1 + e^{−y m}) = −y σ(−y m) x
        const c = -y / (1 + Math.exp(y * m));
        for (let j = 0; j < D; j++) g[wk + j]! += c * d.x[xi + j]!;
      }
    }
    const a = eta / n;
    for (let j = 0; j < w.length; j++) w[j] = shrink * w[j]! - a * g[j]!;
  }
  return w;
}

/** Argmax over the one-vs-rest scores. */
export function svmAccuracy(w: ArrayLike<number>, classes: number, d: SvmData): number {
  let ok = 0;
  const D = d.dim;
  for (let i = 0; i < d.count; i++) {
    let best = -Infinity;
    let arg = -1;
    for (let k = 0; k < classes; k++) {
      let m = 0;
      for (let j = 0; j < D; j++) m += w[k * D + j]! * d.x[i * D + j]!;
      if (m > best) {
        best = m;
        arg = k;
      }
    }
    if (arg === d.labels[i]) ok++;
  }
  return d.count ? ok / d.count : 0;
}

/** L2 sensitivity of one party's model (and of the sum over parties) under replace-one of one record. */
export function partySensitivity(n: number, classes: number, o: SvmTraining): number {
  const eta = stepSize(o.lambda);
  return ((Math.sqrt(classes) * 2 * LOGISTIC_L) / (n * o.lambda)) * (1 - (1 - eta * o.lambda) ** o.iterations);
}

/** Norm bound of one party's model (all classes): √K L/λ; used as the clip (a no-op) for quantisation. */
export function modelNormBound(classes: number, lambda: number): number {
  return (Math.sqrt(classes) * LOGISTIC_L) / lambda;
}

export interface SvmNoiseParams extends DdgParams {
  /** Δ_party in model units. */
  sensitivity: number;
}

/** Δ_q = Δ_party/γ + 2√d in quantised units. */
export function quantisedSensitivity(p: Pick<SvmNoiseParams, 'sensitivity' | 'clip' | 'scaleBits' | 'dim'>): number {
  return (p.sensitivity * 2 ** p.scaleBits) / p.clip + 2 * Math.sqrt(p.dim);
}

/** Gaussian-equivalent noise multiplier of the sum of >= minNoisy parties (Kairouz et al. Prop. 14). */
export function svmNoiseMultiplier(p: SvmNoiseParams, minNoisy: number): number {
  if (!(p.sigma >= 0.5)) throw new RangeError(`discrete Gaussian sigma must be >= 1/2, got ${p.sigma}`);
  return 1 / (quantisedSensitivity(p) / (Math.sqrt(minNoisy) * p.sigma) + ddgTau(p.sigma, minNoisy) * Math.sqrt(p.dim));
}

export function svmReleaseEvent(p: SvmNoiseParams, minNoisy: number): DpEvent {
  return DpEvents.gaussian(svmNoiseMultiplier(p, minNoisy));
}

/**
 * Per-party σ (quantised units) and scaleBits so that the sum of >= minNoisy parties has noise
 * multiplier >= z, keeping n parties' models plus 12 std of the summed noise inside ±2^31.
 */
export function svmNoisePlan(z: number, o: { parties: number; minNoisy: number; dim: number; sensitivity: number; clip: number }): SvmNoiseParams {
  for (let bits = 24; bits >= 2; bits--) {
    const base = { sensitivity: o.sensitivity, clip: o.clip, scaleBits: bits, dim: o.dim };
    let sigma = Math.max(0.5, (z * quantisedSensitivity(base)) / Math.sqrt(o.minNoisy));
    while (svmNoiseMultiplier({ ...base, sigma }, o.minNoisy) < z) sigma *= 1.0001;
    const worst = o.parties * (2 ** bits + 1) + 12 * Math.sqrt(o.parties) * sigma;
    if (worst < 2 ** 31) return { ...base, sigma };
  }
  throw new RangeError(`no quantisation scale leaves headroom for ${o.parties} parties at noise multiplier ${z}`);
}

/** One party's secure-aggregation input: its trained model, rounded, plus its discrete Gaussian share. */
export function encodeSvmShare(model: Float64Array, p: SvmNoiseParams, rng: RandomSource): Uint32Array {
  return encodeClientUpdate(model, p, rng);
}

/** Server: the averaged model from the unmasked sum of `survivors` shares. */
export function decodeSvmAverage(sum: Uint32Array, p: Pick<SvmNoiseParams, 'clip' | 'scaleBits'>, survivors: number): Float64Array {
  return decodeAverage(sum, p, survivors);
}
