/**
 * Rényi DP of propose-test-release (PTR) with a Gaussian release, after Wang, Mahloujifar, Wang,
 * Jia & Mittal, "Rényi Differential Privacy of Propose-Test-Release and Applications to Private and
 * Robust Machine Learning" (NeurIPS 2022). The mechanism priced here (one PTR round):
 *
 *   γ(D)   distance to instability: an integer-valued function with add/remove sensitivity 1 such
 *          that γ(D) ≥ 1 implies that the local sensitivity of f at D is ≤ β (the proposed bound),
 *          capped at kMax (min(γ, kMax) keeps sensitivity 1);
 *   test   pass iff γ(D) + Lap(1/ε_t) > T;
 *   release  f(D) + N(0, σ²β²·I) on pass, ⊥ otherwise;
 *   f      has global L2 sensitivity GS = ρ·β (bounded — the paper's "PTR with bounded global
 *          sensitivity" setting; dplens projects the robust aggregate onto a ball of radius C,
 *          so GS = 2C).
 *
 * RDP bound (derived here along the paper's argument; the paper's text was not available offline,
 * so the closed form below is this file's own derivation, checked against an independent Python
 * evaluation in test/privacy-ptr.test.ts, not against the paper's printed numbers). For neighbours
 * D, D' the output is a mixture of ⊥ (probability 1 − p) and a Gaussian (probability p), so
 *   exp((α−1)·D_α) = (1−p)^α (1−p')^{1−α} + p^α p'^{1−α} · exp((α−1)·α‖Δ‖²/(2σ²β²)).
 * p = S(T − γ), p' = S(T − γ') with S the Laplace(1/ε_t) survival function and |γ − γ'| ≤ 1.
 * ‖Δ‖ = ‖f(D) − f(D')‖ ≤ min(LS(D), LS(D')) ≤ β unless γ(D) = γ(D') = 0, and ≤ GS always.
 * Hence ε_PTR(α) = max over integer γ ∈ [0, kMax], γ' ∈ {γ−1, γ, γ+1} ∩ [0, kMax] of the
 * expression with ‖Δ‖ = β, and of the (0, 0) case with ‖Δ‖ = GS (p = p' = S(T), the "bad" event
 * whose probability PTR's δ pays for in the (ε, δ) analysis). Every pair is enumerated, so this
 * is the exact maximum of the bound, not an approximation.
 *
 * Subsampling: Poisson sampling at rate q is priced with the general Poisson-subsampled RDP upper
 * bound of Zhu & Wang 2019 ("Poisson subsampled Rényi DP", Theorem 6, integer α; non-integer
 * orders use the bound at ⌈α⌉, valid because RDP is non-decreasing in α). The paper derives a
 * tighter PTR-specific amplification bound; using the general one over-states ε (never under-).
 *
 * (ε, δ)-PTR comparison (`ptrApproxDpEpsilon`): per round the test is (ε_t, 0)-DP, the release is
 * an (ε_G, δ_G)-DP Gaussian (ε_G from its RDP curve) and the test passes a bad dataset with
 * probability δ_fail = S(T); Poisson amplification (ln(1 + q(e^ε − 1)), qδ) and the advanced
 * composition theorem (Dwork, Rothblum & Vadhan 2010) over the rounds, with δ split in halves.
 */
import { logAdd, logComb } from './special.js';
import { rdpGaussian, rdpToEpsilon } from './rdp.js';

export interface PtrParams {
  /** ε of the Laplace noise on the distance to instability (scale 1/ε_t). */
  testEpsilon: number;
  /** Threshold T of the test (pass iff γ + Lap > T). */
  threshold: number;
  /** Noise multiplier: release noise std / proposed local-sensitivity bound β. */
  noiseMultiplier: number;
  /** Global sensitivity of the released statistic divided by β (ρ = GS/β ≥ 1). */
  gsRatio: number;
  /** Cap of the computed distance to instability. */
  kMax: number;
}

/** log P[Lap(1/ε) > u]. */
export function logLaplaceSurvival(u: number, eps: number): number {
  return u >= 0 ? Math.log(0.5) - eps * u : Math.log1p(-0.5 * Math.exp(eps * u));
}

/** log of P[Lap(1/ε) ≤ u]. */
function logLaplaceCdf(u: number, eps: number): number {
  return u < 0 ? Math.log(0.5) + eps * u : Math.log1p(-0.5 * Math.exp(-eps * u));
}

/** Threshold T with P[Lap(1/ε) > T] = δ (the usual PTR choice: a bad dataset passes w.p. δ). */
export function ptrThreshold(testEpsilon: number, delta: number): number {
  return Math.log(1 / (2 * delta)) / testEpsilon;
}

/** Rényi divergence of order α between the two-point PTR outputs (log-space). */
function mixtureRdp(alpha: number, logP: number, logQ: number, log1mP: number, log1mQ: number, gaussRdp: number): number {
  const a = alpha * log1mP + (1 - alpha) * log1mQ;
  const b = alpha * logP + (1 - alpha) * logQ + (alpha - 1) * gaussRdp;
  return logAdd(a, b) / (alpha - 1);
}

export function checkPtrParams(p: PtrParams): void {
  if (!(p.testEpsilon > 0 && Number.isFinite(p.testEpsilon))) throw new RangeError(`PTR test epsilon must be a finite number > 0, got ${p.testEpsilon}`);
  if (!Number.isFinite(p.threshold)) throw new RangeError(`PTR threshold must be finite, got ${p.threshold}`);
  if (!(p.noiseMultiplier >= 0 && Number.isFinite(p.noiseMultiplier))) throw new RangeError(`PTR noise multiplier must be a finite number >= 0, got ${p.noiseMultiplier}`);
  if (!(p.gsRatio >= 1 && Number.isFinite(p.gsRatio))) throw new RangeError(`PTR global-sensitivity ratio must be >= 1, got ${p.gsRatio}`);
  if (!(Number.isInteger(p.kMax) && p.kMax >= 1)) throw new RangeError(`PTR kMax must be an integer >= 1, got ${p.kMax}`);
}

/** ε_PTR(α): RDP of one (unsampled) PTR round, α > 1. */
export function rdpPtr(p: PtrParams, alpha: number): number {
  if (!(alpha > 1)) throw new RangeError(`RDP order must be > 1, got ${alpha}`);
  if (p.noiseMultiplier === 0) return Infinity;
  const e = p.testEpsilon;
  const good = (alpha * 1) / (2 * p.noiseMultiplier ** 2);
  const bad = (alpha * p.gsRatio ** 2) / (2 * p.noiseMultiplier ** 2);
  const lp = (g: number): [number, number] => [logLaplaceSurvival(p.threshold - g, e), logLaplaceCdf(p.threshold - g, e)];
  let best = mixtureRdp(alpha, ...pair(lp(0), lp(0)), bad);
  for (let g = 0; g <= p.kMax; g++) {
    for (const h of [g - 1, g, g + 1]) {
      if (h < 0 || h > p.kMax) continue;
      const v = mixtureRdp(alpha, ...pair(lp(g), lp(h)), good);
      if (v > best) best = v;
    }
  }
  return best;
}

function pair(a: [number, number], b: [number, number]): [number, number, number, number] {
  return [a[0], b[0], a[1], b[1]];
}

/**
 * Zhu & Wang 2019, Theorem 6: RDP at integer order α ≥ 2 of Poisson subsampling at rate q of a
 * mechanism with RDP curve ε(·) (add/remove neighbours).
 */
export function rdpPoissonSubsampledGeneral(q: number, rdp: (order: number) => number, alpha: number): number {
  if (!(Number.isInteger(alpha) && alpha >= 2)) throw new RangeError(`the general Poisson subsampling bound needs an integer order >= 2, got ${alpha}`);
  if (q === 0) return 0;
  if (q === 1) return rdp(alpha);
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  let s = (alpha - 1) * l1q + Math.log(alpha * q - q + 1);
  s = logAdd(s, logComb(alpha, 2) + 2 * lq + (alpha - 2) * l1q + rdp(2));
  for (let l = 3; l <= alpha; l++) s = logAdd(s, Math.log(3) + logComb(alpha, l) + (alpha - l) * l1q + l * lq + (l - 1) * rdp(l));
  return s / (alpha - 1);
}

/** RDP at order α (any α > 1) of one Poisson-subsampled PTR round. */
export function rdpSubsampledPtr(q: number, p: PtrParams, alpha: number): number {
  if (p.noiseMultiplier === 0 && q > 0) return Infinity;
  const a = Math.max(2, Math.ceil(alpha));
  const bound = rdpPoissonSubsampledGeneral(q, (o) => rdpPtr(p, o), a);
  return q === 1 ? rdpPtr(p, alpha) : bound;
}

/**
 * The (ε, δ)-PTR comparison bound for `rounds` Poisson-subsampled rounds (see file comment).
 * Returns Infinity when δ is too small to cover the test's failure probability.
 */
export function ptrApproxDpEpsilon(q: number, p: PtrParams, rounds: number, delta: number): number {
  if (p.noiseMultiplier === 0) return Infinity;
  const deltaFail = Math.exp(logLaplaceSurvival(p.threshold, p.testEpsilon));
  const dPrime = delta / 2;
  const perRound = delta / 2 / (rounds * q);
  const deltaG = Math.min(0.5, perRound - deltaFail);
  if (!(deltaG > 0)) return Infinity;
  const orders = Array.from({ length: 200 }, (_, i) => 1.05 + i * 0.5);
  const epsG = rdpToEpsilon(orders, orders.map((o) => rdpGaussian(p.noiseMultiplier, o)), deltaG).epsilon;
  const eps0 = p.testEpsilon + epsG;
  const eps1 = Math.log1p(q * Math.expm1(eps0));
  const adv = Math.sqrt(2 * rounds * Math.log(1 / dPrime)) * eps1 + rounds * eps1 * Math.expm1(eps1);
  return Math.min(rounds * eps1, adv);
}
