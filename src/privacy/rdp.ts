/**
 * Rényi-DP analysis (data-independent). Ports of the Opacus / tf-privacy analysis with the same
 * numerics (log space), plus RDP of Laplace, randomized response, sampling without replacement,
 * and the RDP -> (eps, delta) conversions.
 *
 * References:
 *  - Mironov 2017, "Rényi differential privacy" (Gaussian, Laplace, classic conversion).
 *  - Mironov, Talwar & Zhang 2019, "Rényi DP of the sampled Gaussian mechanism" (integer and
 *    fractional orders; Opacus `_compute_log_a_for_int_alpha` / `_compute_log_a_for_frac_alpha`).
 *  - Wang, Balle & Kasiviswanathan 2019, "Subsampled Rényi DP and analytical moments accountant"
 *    (Theorem 9: sampling without replacement, replace-one adjacency; Corollary 10 interpolation).
 *  - Balle, Barthe, Gaboardi, Hsu & Sato 2020, Thm 21 (the conversion Opacus get_privacy_spent uses).
 */
import { logAdd, logComb, logErfc, logSub } from './special.js';

/** Opacus default orders: 1.1..10.9 step 0.1, then 12..63. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10), ...Array.from({ length: 52 }, (_, i) => 12 + i)]);

function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  const s2 = 2 * sigma * sigma;
  for (let i = 0; i <= alpha; i++) {
    const logCoef = logComb(alpha, i) + i * lq + (alpha - i) * l1q;
    logA = logAdd(logA, logCoef + (i * i - i) / s2);
  }
  return logA;
}

function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  const s2 = 2 * sigma * sigma;
  const sqrt2s = Math.SQRT2 * sigma;
  let coef = 1; // generalised binomial C(alpha, i), built incrementally
  for (let i = 0; ; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i;
    const logCoef = Math.log(Math.abs(coef));
    const j = alpha - i;
    const logT0 = logCoef + i * lq + j * l1q;
    const logT1 = logCoef + j * lq + i * l1q;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2s);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2s);
    const logS0 = logT0 + (i * i - i) / s2 + logE0;
    const logS1 = logT1 + (j * j - j) / s2 + logE1;
    if (coef > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100000) throw new Error(`subsampled Gaussian RDP series did not converge (q=${q}, sigma=${sigma}, alpha=${alpha})`);
  }
  return logAdd(logA0, logA1);
}

/** Per-step RDP of the Poisson-subsampled Gaussian (sensitivity 1, noise multiplier sigma) at order alpha. */
export function rdpSubsampledGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  if (alpha <= 1) throw new RangeError(`RDP order must be > 1, got ${alpha}`);
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** RDP of the plain Gaussian mechanism with noise multiplier z (std / L2 sensitivity). */
export function rdpGaussian(z: number, alpha: number): number {
  if (z === 0) return Infinity;
  return alpha / (2 * z * z);
}

/** RDP of the Laplace mechanism with b = scale / L1 sensitivity (Mironov 2017, Table II). */
export function rdpLaplace(b: number, alpha: number): number {
  if (b === 0) return Infinity;
  if (alpha === Infinity) return 1 / b;
  if (alpha === 1) return 1 / b + Math.exp(-1 / b) - 1;
  // (1/(a-1)) log( a/(2a-1) e^{(a-1)/b} + (a-1)/(2a-1) e^{-a/b} ), in log space
  const t1 = Math.log(alpha / (2 * alpha - 1)) + (alpha - 1) / b;
  const t2 = Math.log((alpha - 1) / (2 * alpha - 1)) - alpha / b;
  return logAdd(t1, t2) / (alpha - 1);
}

/**
 * Exact RDP of k-ary randomized response with parameter eps: the worst pair of output
 * distributions is P = (p, r, r, ...), Q = (r, p, r, ...), p = e^eps/(e^eps+k-1), r = 1/(e^eps+k-1).
 */
export function rdpRandomizedResponse(eps: number, k: number, alpha: number): number {
  if (eps === Infinity) return Infinity;
  if (eps === 0) return 0;
  if (alpha === Infinity) return eps;
  const logDen = Math.log(Math.exp(eps) + k - 1);
  const lp = eps - logDen;
  const lr = -logDen;
  let s = logAdd(alpha * lp + (1 - alpha) * lr, alpha * lr + (1 - alpha) * lp);
  if (k > 2) s = logAdd(s, Math.log(k - 2) + lr);
  return Math.max(0, s / (alpha - 1));
}

/**
 * Sampling without replacement (m of n, replace-one adjacency): Wang, Balle & Kasiviswanathan
 * 2019 Theorem 9 for integer orders, Corollary 10 (linear interpolation of the cumulant
 * (alpha-1)*RDP) for fractional orders. `inner(j)` is the inner mechanism's RDP at integer j >= 2,
 * `innerInf` its RDP at infinity (Infinity for Gaussian).
 */
export function rdpSampledWithoutReplacement(gamma: number, inner: (j: number) => number, innerInf: number, alpha: number): number {
  if (gamma === 0) return 0;
  if (alpha === Infinity) return Infinity;
  if (alpha <= 1) throw new RangeError(`RDP order must be > 1, got ${alpha}`);
  // (gamma = 1 means no subsampling; accountants price the inner event directly in that case)
  if (gamma === 1 && Number.isInteger(alpha)) return inner(alpha);
  if (!Number.isInteger(alpha)) {
    const af = Math.floor(alpha);
    const ac = Math.ceil(alpha);
    const x = af === 1 ? 0 : cumulantWor(gamma, inner, innerInf, af);
    const y = cumulantWor(gamma, inner, innerInf, ac);
    const t = alpha - af;
    return ((1 - t) * x + t * y) / (alpha - 1);
  }
  return cumulantWor(gamma, inner, innerInf, alpha) / (alpha - 1);
}

/** log of the Theorem 9 moment bound, i.e. (alpha-1) * RDP(alpha), integer alpha >= 2. */
function cumulantWor(gamma: number, inner: (j: number) => number, innerInf: number, alpha: number): number {
  const lg = Math.log(gamma);
  const e2 = inner(2);
  if (e2 === Infinity) return Infinity;
  // min(2, (e^{eps_inf} - 1)^j) in log space
  const logExpInfM1 = innerInf === Infinity ? Infinity : innerInf > 50 ? innerInf : Math.log(Math.expm1(innerInf));
  const logMin2 = (j: number): number => Math.min(Math.LN2, j * logExpInfM1);
  // j = 2 term: gamma^2 C(a,2) min(4 (e^{e2} - 1), e^{e2} min(2, (e^{eInf}-1)^2))
  const logE2m1 = e2 > 50 ? e2 : Math.log(Math.expm1(e2));
  let logA = 0; // the leading 1
  const t2 = 2 * lg + logComb(alpha, 2) + Math.min(Math.log(4) + logE2m1, e2 + logMin2(2));
  logA = logAdd(logA, t2);
  for (let j = 3; j <= alpha; j++) {
    const ej = inner(j);
    if (ej === Infinity) return Infinity;
    const tj = j * lg + logComb(alpha, j) + (j - 1) * ej + logMin2(j);
    logA = logAdd(logA, tj);
  }
  return logA;
}

export interface EpsilonResult {
  epsilon: number;
  optimalOrder: number;
  warnings: string[];
}

/**
 * RDP -> (eps, delta). 'balle2020' (default) is Opacus get_privacy_spent / Balle et al. 2020 Thm 21:
 * eps = min_a rdp(a) - (log delta + log a)/(a-1) + log((a-1)/a). 'classic' is Mironov 2017:
 * eps = min_a rdp(a) + log(1/delta)/(a-1) (what DataLens / G-PATE report).
 */
export function rdpToEpsilon(orders: ArrayLike<number>, rdp: ArrayLike<number>, delta: number, conversion: 'balle2020' | 'classic' = 'balle2020'): EpsilonResult {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length) throw new RangeError('orders and rdp differ in length');
  const logDelta = Math.log(delta);
  let best = Infinity;
  let bestIdx = -1;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const r = rdp[i];
    if (Number.isNaN(r)) continue;
    const eps = conversion === 'classic' ? r - logDelta / (a - 1) : r - (logDelta + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (eps < best) {
      best = eps;
      bestIdx = i;
    }
  }
  const warnings: string[] = [];
  if (bestIdx < 0) return { epsilon: Infinity, optimalOrder: NaN, warnings: ['epsilon is infinite at every order (a non-private or noiseless release was composed)'] };
  if (orders.length > 1 && (bestIdx === 0 || bestIdx === orders.length - 1)) {
    warnings.push(`optimal RDP order is the ${bestIdx === 0 ? 'smallest' : 'largest'} order (${orders[bestIdx]}); a wider order list could give a tighter bound`);
  }
  return { epsilon: Math.max(0, best), optimalOrder: orders[bestIdx], warnings };
}
