/**
 * User-level DP federated averaging (McMahan et al., ICLR 2018) with client-side clipping and the
 * DISTRIBUTED DISCRETE GAUSSIAN mechanism of Kairouz, Liu & Steinke, "The Distributed Discrete
 * Gaussian Mechanism for Federated Learning with Secure Aggregation" (ICML 2021), summed by secure
 * aggregation (secagg.ts) so the server only ever sees the noisy sum.
 *
 * Per round, each client u: trains the broadcast model on its own data (local SGD), takes the
 * update Δ_u = w_u − w, clips it to ‖Δ_u‖₂ <= c, scales by 1/γ (γ = c / 2^scaleBits), rounds each
 * coordinate at random to an integer (unbiased), adds i.i.d. discrete Gaussian noise N_Z(0, σ²)
 * per coordinate (exact sampler, CKS 2020, from the client's RandomSource) and sends the result
 * into secure aggregation mod 2^32. The server decodes Σ_u (two's complement), multiplies by γ and
 * divides by the public survivor count, and moves the model by that average.
 *
 * Privacy (user level, REPLACE-ONE: the clients are fixed and public, one client's whole dataset
 * is replaced by any other): the rounded, clipped vector has ‖q_u‖₂ <= c/γ + √d (each coordinate
 * moves by < 1 when rounded), so replacing one client moves the sum by at most
 * Δ₂ = 2 (c/γ + √d). The sum carries the noise of every survivor, at least t (the secure-
 * aggregation threshold; fewer survivors abort the round before anything is revealed). By
 * Kairouz et al. Prop. 14 (third bound, σ >= 1/2), the sum of n i.i.d. N_Z(0, σ²) with
 * L2 sensitivity Δ₂ is (α, α/2 · (Δ₂/(√n σ) + τ√d)²)-RDP for every α, τ = 10 Σ_{k=1}^{n−1}
 * exp(−2π²σ² k/(k+1)): exactly the RDP curve of a Gaussian with noise multiplier
 * z = 1/(Δ₂/(√n σ) + τ√d), which is the event recorded (RDP accountant only: the bound says
 * nothing about the PLD of the sum). Rounds compose; there is no client sampling and no
 * amplification is claimed. Wrap-around mod 2^32 is post-processing (it only hurts utility;
 * the scale leaves headroom for n clients' clipped updates plus 12 standard deviations of noise).
 *
 * Differs from the paper: no random rotation / flattening before rounding (it reduces the
 * modular-clipping error, not the privacy cost) and the unconditional rounding bound c/γ + √d
 * instead of their conditional one (no extra δ); softmax regression on raw pixels as the model.
 */
import { calibrate, DpEvents, discreteGaussianRational, doubleToRational, randomInt, type DpEvent, type RandomSource } from '../privacy/index.js';
import { dequantize } from './quantize.js';

/** Softmax regression on flattened [0,1] pixels: weights (classes × features) then biases. */
export interface LinearModel {
  features: number;
  classes: number;
  /** classes·features weights followed by classes biases. */
  params: Float64Array;
}

export function newModel(features: number, classes: number): LinearModel {
  return { features, classes, params: new Float64Array(classes * features + classes) };
}

export interface LabeledVectors {
  /** count × features, values in [0, 1]. */
  x: Float32Array;
  labels: Int32Array;
  count: number;
}

export function imagesToVectors(images: Uint8Array, labels: Int32Array, count: number, features: number): LabeledVectors {
  const x = new Float32Array(count * features);
  for (let i = 0; i < count * features; i++) x[i] = images[i]! / 255;
  return { x, labels: labels.slice(0, count), count };
}

function logits(m: LinearModel, p: Float64Array, x: Float32Array, off: number, out: Float64Array): void {
  const { features: f, classes: k } = m;
  for (let c = 0; c < k; c++) {
    let s = p[k * f + c]!;
    const w = c * f;
    for (let j = 0; j < f; j++) s += p[w + j]! * x[off + j]!;
    out[c] = s;
  }
}

function softmaxInPlace(z: Float64Array): void {
  let mx = -Infinity;
  for (const v of z) if (v > mx) mx = v;
  let s = 0;
  for (let i = 0; i < z.length; i++) s += z[i] = Math.exp(z[i]! - mx);
  for (let i = 0; i < z.length; i++) z[i]! /= s;
}

export function accuracy(m: LinearModel, data: LabeledVectors): number {
  const z = new Float64Array(m.classes);
  let ok = 0;
  for (let i = 0; i < data.count; i++) {
    logits(m, m.params, data.x, i * m.features, z);
    let best = 0;
    for (let c = 1; c < m.classes; c++) if (z[c]! > z[best]!) best = c;
    if (best === data.labels[i]) ok++;
  }
  return data.count ? ok / data.count : 0;
}

export interface LocalTraining {
  epochs: number;
  batch: number;
  lr: number;
}

/** Local SGD from `start` on the client's data; returns the update w_local − start. */
export function localUpdate(m: LinearModel, start: Float64Array, data: LabeledVectors, o: LocalTraining, rng: RandomSource): Float64Array {
  const { features: f, classes: k } = m;
  const p = new Float64Array(start);
  const g = new Float64Array(p.length);
  const z = new Float64Array(k);
  const order = Array.from({ length: data.count }, (_, i) => i);
  for (let e = 0; e < o.epochs; e++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = randomInt(rng, i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let b0 = 0; b0 < order.length; b0 += o.batch) {
      const end = Math.min(order.length, b0 + o.batch);
      g.fill(0);
      for (let q = b0; q < end; q++) {
        const i = order[q]!;
        logits(m, p, data.x, i * f, z);
        softmaxInPlace(z);
        z[data.labels[i]!]! -= 1;
        for (let c = 0; c < k; c++) {
          const d = z[c]!;
          if (d === 0) continue;
          const w = c * f;
          for (let j = 0; j < f; j++) g[w + j]! += d * data.x[i * f + j]!;
          g[k * f + c]! += d;
        }
      }
      const step = o.lr / (end - b0);
      for (let j = 0; j < p.length; j++) p[j]! -= step * g[j]!;
    }
  }
  for (let j = 0; j < p.length; j++) p[j]! -= start[j]!;
  return p;
}

// ---------------------------------------------------------------- DDG encoding + accounting ----

export interface DdgParams {
  /** L2 clipping norm c of each client's update. */
  clip: number;
  /** γ = clip / 2^scaleBits: the quantisation step. */
  scaleBits: number;
  /** Discrete Gaussian std per coordinate per client, in quantised units (>= 1/2). */
  sigma: number;
  /** Dimension d. */
  dim: number;
}

export function gammaOf(p: Pick<DdgParams, 'clip' | 'scaleBits'>): number {
  return p.clip / 2 ** p.scaleBits;
}

/** Δ₂ of the summed, rounded vectors under replace-one: 2 (c/γ + √d). */
export function ddgSensitivity(p: Pick<DdgParams, 'scaleBits' | 'dim'>): number {
  return 2 * (2 ** p.scaleBits + Math.sqrt(p.dim));
}

/** τ of Kairouz et al. Prop. 14 for n summands. */
export function ddgTau(sigma: number, n: number): number {
  let tau = 0;
  for (let k = 1; k < n; k++) tau += Math.exp((-2 * Math.PI ** 2 * sigma ** 2 * k) / (k + 1));
  return 10 * tau;
}

/** Gaussian-equivalent noise multiplier of one round: the sum of >= `minNoisy` clients' noise. */
export function ddgNoiseMultiplier(p: DdgParams, minNoisy: number): number {
  if (!(p.sigma >= 0.5)) throw new RangeError(`discrete Gaussian sigma must be >= 1/2 for the DDG bound, got ${p.sigma}`);
  if (!(Number.isInteger(minNoisy) && minNoisy >= 1)) throw new RangeError(`minNoisy must be a positive integer, got ${minNoisy}`);
  const eps = ddgSensitivity(p) / (Math.sqrt(minNoisy) * p.sigma) + ddgTau(p.sigma, minNoisy) * Math.sqrt(p.dim);
  return 1 / eps;
}

/** The event one round's release costs (a Gaussian with the same RDP curve; see the file comment). */
export function ddgRoundEvent(p: DdgParams, minNoisy: number): DpEvent {
  return DpEvents.gaussian(ddgNoiseMultiplier(p, minNoisy));
}

/** σ (quantised units) so that one round has Gaussian-equivalent noise multiplier `z` (τ ≈ 0 for σ >= 1). */
export function sigmaForMultiplier(z: number, p: Pick<DdgParams, 'scaleBits' | 'dim'>, minNoisy: number): number {
  return Math.max(0.5, (z * ddgSensitivity(p)) / Math.sqrt(minNoisy));
}

/** Smallest per-round noise multiplier so that `rounds` rounds cost at most `epsilon` at `delta` (replace-one RDP). */
export function calibrateRounds(epsilon: number, delta: number, rounds: number): { noiseMultiplier: number; epsilon: number } {
  const r = calibrate({ family: (z) => DpEvents.selfComposed(DpEvents.gaussian(z), rounds), targetEpsilon: epsilon, delta, accountant: 'rdp', relation: 'replace-one' });
  return { noiseMultiplier: r.noise, epsilon: r.achievedEpsilon };
}

/** Client side, before noise: clip to ‖·‖₂ <= c, scale by 1/γ, randomized rounding (‖result‖₂ < c/γ + √d). */
export function clipAndRound(update: Float64Array, p: DdgParams, rng: RandomSource): Int32Array {
  if (update.length !== p.dim) throw new RangeError(`update has ${update.length} entries, expected ${p.dim}`);
  let norm = 0;
  for (const v of update) norm += v * v;
  norm = Math.sqrt(norm);
  const inv = (norm > p.clip ? p.clip / norm : 1) / gammaOf(p);
  const out = new Int32Array(p.dim);
  for (let i = 0; i < p.dim; i++) {
    const v = update[i]! * inv;
    const f = Math.floor(v);
    out[i] = f + (rng.nextDouble() < v - f ? 1 : 0);
  }
  return out;
}

/** Client side: clipAndRound, + N_Z(0, σ²) per coordinate (exact sampler), as uint32 (mod 2^32). */
export function encodeClientUpdate(update: Float64Array, p: DdgParams, rng: RandomSource): Uint32Array {
  const q = clipAndRound(update, p, rng);
  const r = doubleToRational(p.sigma * p.sigma);
  const out = new Uint32Array(p.dim);
  for (let i = 0; i < p.dim; i++) out[i] = q[i]! + Number(discreteGaussianRational(rng, r.num, r.den));
  return out;
}

/** Server side: the average real-valued update from the aggregated sum of `survivors` clients. */
export function decodeAverage(sum: Uint32Array, p: Pick<DdgParams, 'clip' | 'scaleBits'>, survivors: number): Float64Array {
  const avg = dequantize(sum, 1 / gammaOf(p));
  for (let i = 0; i < avg.length; i++) avg[i]! /= survivors;
  return avg;
}

/** Largest scaleBits such that n clipped updates plus 12 std of the summed noise stay inside ±2^31. */
export function maxScaleBits(n: number, dim: number, noiseMultiplier: number, minNoisy: number): number {
  for (let bits = 24; bits >= 4; bits--) {
    const p = { scaleBits: bits, dim };
    const sigma = sigmaForMultiplier(noiseMultiplier, p, minNoisy);
    const worst = n * (2 ** bits + 1) + 12 * Math.sqrt(n) * sigma;
    if (worst < 2 ** 31) return bits;
  }
  throw new RangeError(`no quantisation scale leaves headroom for ${n} clients with noise multiplier ${noiseMultiplier}; use fewer clients or less noise`);
}
