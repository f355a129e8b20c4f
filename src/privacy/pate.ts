/**
 * PATE data-dependent RDP analysis (Papernot et al. 2018, "Scalable private learning with PATE"),
 * a line-by-line port of pate_core.py as shipped with DataLens / G-PATE.
 *
 * DATA-DEPENDENT: these bounds are functions of the true (private) vote counts. Publishing an
 * epsilon computed from them is itself a privacy leak unless it is sanitised (smooth sensitivity,
 * PATE 2018 Section 4). The default accountants never use this module; only an RdpAccountant
 * constructed with `{ dataDependent: true }` does, and it then carries a warning on every result.
 */
import { log1mExp, logNormSf, logSumExp } from './special.js';

/** Union bound on log Pr[GNMax(counts, sigma) != argmax counts] (Prop. 7), capped at log(1 - 1/n). */
export function computeLogqGaussian(counts: ArrayLike<number>, sigma: number): number {
  const n = counts.length;
  if (n < 2) throw new RangeError('computeLogqGaussian needs at least 2 counts');
  let idxMax = 0;
  for (let i = 1; i < n; i++) if (counts[i] > counts[idxMax]) idxMax = i; // first maximum, as np.argmax
  const scale = Math.sqrt(2 * sigma * sigma);
  const terms: number[] = [];
  for (let i = 0; i < n; i++) if (i !== idxMax) terms.push(logNormSf((counts[idxMax] - counts[i]) / scale));
  const logq = logSumExp(terms);
  return Math.min(logq, Math.log(1 - 1 / n));
}

/** Data-independent GNMax RDP: alpha / sigma^2 (sensitivity sqrt(2) of the histogram). */
export function rdpDataIndependentGaussian(sigma: number, orders: ArrayLike<number>): Float64Array {
  const out = new Float64Array(orders.length);
  for (let i = 0; i < orders.length; i++) out[i] = orders[i] / (sigma * sigma);
  return out;
}

/**
 * Data-dependent RDP of GNMax given log q (Theorem 6 with Prop. 10's choice of higher orders),
 * min'd with the data-independent bound. As in the reference, whether the data-dependent branch is
 * taken depends on the whole order list (np.any(mask)).
 */
export function rdpGaussianDataDependent(logq: number, sigma: number, orders: ArrayLike<number>): Float64Array {
  if (logq > 0 || sigma < 0) throw new RangeError(`rdpGaussianDataDependent: bad inputs logq=${logq}, sigma=${sigma}`);
  for (let i = 0; i < orders.length; i++) if (!(orders[i] > 1)) throw new RangeError('orders must be > 1');
  const ret = new Float64Array(orders.length);
  if (logq === -Infinity) return ret;
  const variance = sigma * sigma;
  for (let i = 0; i < orders.length; i++) ret[i] = orders[i] / variance;
  const muHi2 = Math.sqrt(variance * -logq);
  const muHi1 = muHi2 + 1;
  const mask: boolean[] = [];
  let any = false;
  for (let i = 0; i < orders.length; i++) {
    mask.push(muHi1 > orders[i] && muHi2 > 1);
    any ||= mask[i];
  }
  const rdpHi1 = muHi1 / variance;
  const rdpHi2 = muHi2 / variance;
  const logA2 = (muHi2 - 1) * rdpHi2;
  if (any && logq <= logA2 - muHi2 * (Math.log(1 + 1 / (muHi1 - 1)) + Math.log(1 + 1 / (muHi2 - 1))) && -logq > rdpHi2) {
    const log1q = log1mExp(logq);
    const inner = log1mExp((logq + rdpHi2) * (1 - 1 / muHi2));
    for (let i = 0; i < orders.length; i++) {
      if (!mask[i]) continue;
      const o = orders[i];
      const logA = (o - 1) * (log1q - inner);
      const logB = (o - 1) * (rdpHi1 - logq / (muHi1 - 1));
      const a = log1q + logA;
      const b = logq + logB;
      const m = Math.max(a, b);
      const logS = m + Math.log(Math.exp(a - m) + Math.exp(b - m));
      ret[i] = Math.min(ret[i], logS / (o - 1));
    }
  }
  return ret;
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** log Pr[max(counts) + N(0, sigma^2) >= threshold] on the (rounded) true max count. */
export function computeLogprAnswered(threshold: number, sigma: number, counts: ArrayLike<number>): number {
  let mx = -Infinity;
  for (let i = 0; i < counts.length; i++) mx = Math.max(mx, counts[i]);
  return logNormSf((threshold - roundHalfEven(mx)) / sigma);
}

/** RDP of the threshold test (sensitivity 1, hence sqrt(2) sigma in the GNMax bound). */
export function computeRdpThreshold(logPrAnswered: number, sigma: number, orders: ArrayLike<number>): Float64Array {
  const logq = Math.min(logPrAnswered, log1mExp(logPrAnswered));
  return rdpGaussianDataDependent(logq, Math.SQRT2 * sigma, orders);
}
