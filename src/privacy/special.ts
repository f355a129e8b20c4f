/**
 * Special functions in double precision with full relative accuracy in the tails, which the
 * accountants need (log erfc at large arguments, log-sum-exp, log-binomials).
 */

const SQRT_PI = Math.sqrt(Math.PI);
const LN2 = Math.LN2;

/** erf(x) for |x| < ~3 via the all-positive series erf(x) = 2/sqrt(pi) e^{-x^2} sum (2x^2)^n x / (2n+1)!!. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 0; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x2) * sum;
}

/** erfcx(x) = e^{x^2} erfc(x) for x >= 2 via the Laplace continued fraction (modified Lentz). */
function erfcxCf(x: number): number {
  // erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
  const tiny = 1e-300;
  let f = x;
  let C = x;
  let D = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    D = x + a * D;
    if (D === 0) D = tiny;
    C = x + a / C;
    if (C === 0) C = tiny;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 / (SQRT_PI * f);
}

const CF_SWITCH = 2.5;

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  if (x < CF_SWITCH) return erfSeries(x);
  return 1 - erfc(x);
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < CF_SWITCH) return 1 - erfSeries(x);
  if (x > 27.3) return 0;
  return Math.exp(-x * x) * erfcxCf(x);
}

/** log(erfc(x)), accurate for large positive x (where erfc underflows). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < CF_SWITCH) return Math.log(erfc(x));
  return -x * x + Math.log(erfcxCf(x));
}

/** Standard normal CDF. */
export function normCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}
/** Standard normal survival function 1 - Phi(z), accurate in the upper tail. */
export function normSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}
/** log Phi(z) (scipy.special.log_ndtr). */
export function logNormCdf(z: number): number {
  return logErfc(-z / Math.SQRT2) - LN2;
}
/** log(1 - Phi(z)) (scipy.stats.norm.logsf). */
export function logNormSf(z: number): number {
  return logErfc(z / Math.SQRT2) - LN2;
}

/** log(e^a + e^b). */
export function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/** log(e^a - e^b), a >= b (Opacus _log_sub). */
export function logSub(a: number, b: number): number {
  if (a < b) throw new RangeError(`logSub: result would be negative (a=${a} < b=${b})`);
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = a - b;
  // log(expm1(d)) with overflow guard
  return (d > 700 ? d : Math.log(Math.expm1(d))) + b;
}

/** log(1 - e^x) for x <= 0, stable on both ends. */
export function log1mExp(x: number): number {
  if (x > 0) throw new RangeError(`log1mExp needs x <= 0, got ${x}`);
  return x > -LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x));
}

export function logSumExp(xs: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < xs.length; i++) if (xs[i] > m) m = xs[i];
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += Math.exp(xs[i] - m);
  return m + Math.log(s);
}

/** Lanczos log-gamma (g=7, n=9), relative accuracy ~1e-15 for x > 0. */
const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** log C(n, k) for integer n >= k >= 0, exact summation (n is small in all accountant uses). */
export function logComb(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  if (k > n - k) k = n - k;
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}
