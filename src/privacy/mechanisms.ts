/**
 * Noise mechanisms. Every sampler takes a RandomSource (secure by default at the call sites).
 *
 * Floating-point attack (Mironov 2012) — which mechanism uses what:
 *  - `snappingLaplace` (scalar real-valued Laplace releases): Mironov's snapping mechanism
 *    (clamp, exact-uniform log, round to a power-of-two grid Lambda >= lambda, clamp).
 *  - `discreteGaussian` / `discreteLaplace` (integer counts, e.g. histograms, vote counts):
 *    exact samplers of Canonne, Kamath & Steinke 2020 using only integer/BigInt arithmetic, so
 *    the output distribution is exactly the discrete Gaussian / Laplace.
 *  - `gaussianRelease` (scalar / low-dimensional real releases): the value is rounded to a grid
 *    of width `granularity`, noised with the exact discrete Gaussian on that grid; the rounding adds
 *    `granularity` to the sensitivity, which the returned event accounts for.
 *  - `addGaussianNoise` (bulk gradient noise in DP-SGD, TopAgg vote vectors): plain floating-point
 *    Gaussian from the ziggurat, as Opacus does outside its secure_mode. These are
 *    high-dimensional releases whose values are not published directly; the attack on
 *    low-order bits is not mitigated there, and we say so in the README.
 */
import type { RandomSource } from './random.js';
import { randomInt, uniformOpen } from './random.js';
import type { DpEvent } from './events.js';
import { DpEvents } from './events.js';

export class MechanismError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MechanismError';
  }
}

function finitePositive(x: number, what: string): void {
  if (!(x > 0) || !Number.isFinite(x)) throw new MechanismError(`${what} must be a finite number > 0, got ${x}`);
}

// ---------------------------------------------------------------- continuous (bulk) ----

/** values += N(0, std^2) elementwise (bulk float noise; see header on the floating-point attack). */
export function addGaussianNoise(values: Float32Array | Float64Array, std: number, rng: RandomSource): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new MechanismError(`std must be finite and >= 0, got ${std}`);
  const noise = values instanceof Float32Array ? new Float32Array(values.length) : new Float64Array(values.length);
  rng.normal(noise, std);
  for (let i = 0; i < values.length; i++) values[i] += noise[i];
}

/** One standard normal (Box–Muller on 53-bit uniforms), for scalar uses in samplers. */
export function standardNormal(rng: RandomSource): number {
  const u = uniformOpen(rng);
  const v = rng.nextDouble();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Laplace(0, scale) samples into `out` (bulk, float). */
export function laplaceNoise(out: Float32Array | Float64Array, scale: number, rng: RandomSource): void {
  if (!(scale >= 0) || !Number.isFinite(scale)) throw new MechanismError(`scale must be finite and >= 0, got ${scale}`);
  for (let i = 0; i < out.length; i++) {
    const u = uniformOpen(rng);
    const s = rng.nextUint32() & 1 ? 1 : -1;
    out[i] = -s * scale * Math.log(u);
  }
}

// ---------------------------------------------------------------- exact uniform & snapping ----

/**
 * Uniform double in (0, 1) where every double is drawn with probability equal to the length of
 * the interval it represents (Mironov's U*): geometric exponent from a stream of random bits,
 * then 52 random mantissa bits.
 */
export function exactUniform(rng: RandomSource): number {
  let exp = -1;
  for (;;) {
    const w = rng.nextUint32();
    if (w === 0) {
      exp -= 32;
      if (exp < -1074) return Number.MIN_VALUE;
      continue;
    }
    exp -= Math.clz32(w);
    break;
  }
  const hi = rng.nextUint32() >>> 12; // 20 bits
  const lo = rng.nextUint32(); // 32 bits
  const mant = 1 + (hi * 4294967296 + lo) / 4503599627370496;
  const u = mant * 2 ** exp;
  return u > 0 && u < 1 ? u : Number.MIN_VALUE;
}

/**
 * Mironov's snapping mechanism for a real value with L1 sensitivity `sensitivity`, Laplace scale
 * `scale` (lambda = scale / sensitivity) and clamping bound B: returns the release and its epsilon
 * ((1 + 2^-49 B) / lambda, Mironov 2012 Thm 1, valid for lambda < B < 2^46 lambda after
 * normalising sensitivity to 1).
 */
export function snappingLaplace(value: number, o: { scale: number; sensitivity?: number; bound: number }, rng: RandomSource): { value: number; epsilon: number; event: DpEvent } {
  const sens = o.sensitivity ?? 1;
  finitePositive(sens, 'sensitivity');
  finitePositive(o.scale, 'scale');
  finitePositive(o.bound, 'bound');
  if (!Number.isFinite(value)) throw new MechanismError(`value must be finite, got ${value}`);
  // normalise to sensitivity 1
  const x = value / sens;
  const B = o.bound / sens;
  const lambda = o.scale / sens;
  if (!(lambda < B && B < 2 ** 46 * lambda)) throw new MechanismError(`snapping needs scale < bound < 2^46 scale (in sensitivity units), got lambda=${lambda}, B=${B}`);
  const clamp = (v: number): number => Math.min(B, Math.max(-B, v));
  const Lambda = 2 ** Math.ceil(Math.log2(lambda));
  const sign = rng.nextUint32() & 1 ? 1 : -1;
  const noisy = clamp(x) + sign * lambda * Math.log(exactUniform(rng));
  const snapped = Math.round(noisy / Lambda) * Lambda;
  const out = clamp(snapped) * sens;
  const epsilon = (1 + 2 ** -49 * B) / lambda;
  return { value: out, epsilon, event: DpEvents.pureDp(epsilon) };
}

// ---------------------------------------------------------------- exact discrete samplers ----

/** Exact rational p = num/den as BigInts (den > 0). */
interface Rational {
  num: bigint;
  den: bigint;
}

/** Exact rational value of a finite double. */
export function doubleToRational(x: number): Rational {
  if (!Number.isFinite(x)) throw new MechanismError(`not finite: ${x}`);
  if (x === 0) return { num: 0n, den: 1n };
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const bits = buf.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (expBits === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = expBits - 1075;
  }
  if (exp >= 0) return { num: sign * mant * (1n << BigInt(exp)), den: 1n };
  return { num: sign * mant, den: 1n << BigInt(-exp) };
}

/** Uniform BigInt in [0, n). */
function randomBigBelow(rng: RandomSource, n: bigint): bigint {
  if (n <= 0n) throw new MechanismError('randomBigBelow needs n > 0');
  if (n <= 4294967296n) return BigInt(randomInt(rng, Number(n)));
  const bits = n.toString(2).length;
  const words = Math.ceil(bits / 32);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    let r = 0n;
    for (let i = 0; i < words; i++) r = (r << 32n) | BigInt(rng.nextUint32());
    r &= mask;
    if (r < n) return r;
  }
}

/** Bernoulli(num/den), exact. */
function bernoulliRational(rng: RandomSource, num: bigint, den: bigint): boolean {
  if (num <= 0n) return false;
  if (num >= den) return true;
  return randomBigBelow(rng, den) < num;
}

/** Bernoulli(exp(-num/den)), exact (CKS 2020 Algorithm 1). */
function bernoulliExpNeg(rng: RandomSource, num: bigint, den: bigint): boolean {
  if (num < 0n) throw new MechanismError('bernoulliExpNeg needs gamma >= 0');
  // gamma > 1: product of floor(gamma) Bernoulli(e^-1) and one Bernoulli(e^-(gamma - floor))
  while (num > den) {
    if (!bernoulliExpNegLe1(rng, 1n, 1n)) return false;
    num -= den;
  }
  return bernoulliExpNegLe1(rng, num, den);
}

function bernoulliExpNegLe1(rng: RandomSource, num: bigint, den: bigint): boolean {
  let k = 1n;
  for (;;) {
    if (!bernoulliRational(rng, num, den * k)) break;
    k++;
  }
  return k % 2n === 1n;
}

/**
 * Exact discrete Laplace with scale scaleNum/scaleDen (P(y) ∝ exp(-|y| scaleDen / scaleNum)),
 * CKS 2020 Algorithm 2 (their t = scaleNum, s = scaleDen).
 */
export function discreteLaplaceRational(rng: RandomSource, scaleNum: bigint, scaleDen: bigint): bigint {
  const t = scaleNum;
  const s = scaleDen;
  if (s <= 0n || t <= 0n) throw new MechanismError('discrete Laplace needs a positive rational scale');
  for (;;) {
    const u = randomBigBelow(rng, t);
    if (!bernoulliExpNeg(rng, u, t)) continue;
    let v = 0n;
    while (bernoulliExpNeg(rng, 1n, 1n)) v++;
    const x = u + t * v;
    const y = x / s;
    const b = rng.nextUint32() & 1;
    if (b === 1 && y === 0n) continue;
    return b === 1 ? -y : y;
  }
}

/** Exact discrete Laplace sample with (real) scale b: P(y) ∝ exp(-|y|/b). */
export function discreteLaplace(rng: RandomSource, scale: number): number {
  finitePositive(scale, 'discrete Laplace scale');
  const r = doubleToRational(scale);
  return Number(discreteLaplaceRational(rng, r.num, r.den));
}

/** Exact discrete Gaussian with variance sigma2 = num/den: P(y) ∝ exp(-y^2 / (2 sigma2)), CKS 2020 Algorithm 3. */
export function discreteGaussianRational(rng: RandomSource, num: bigint, den: bigint): bigint {
  if (num <= 0n || den <= 0n) throw new MechanismError('discrete Gaussian needs sigma^2 > 0');
  // t = floor(sigma) + 1
  let t = 1n;
  {
    // integer sqrt of floor(num/den), then floor(sigma) + 1
    const q = num / den;
    let r = BigInt(Math.floor(Math.sqrt(Number(q))));
    while (r * r > q) r--;
    while ((r + 1n) * (r + 1n) * den <= num) r++;
    t = r + 1n;
  }
  for (;;) {
    const y = discreteLaplaceRational(rng, t, 1n); // scale t
    const ay = y < 0n ? -y : y;
    // gamma = (|y| - sigma2/t)^2 / (2 sigma2) = (|y| den t - num)^2 / (2 num den t^2)
    const a = ay * den * t - num;
    if (bernoulliExpNeg(rng, a * a, 2n * num * den * t * t)) return y;
  }
}

/** Exact discrete Gaussian sample with std sigma (P(y) ∝ exp(-y^2/(2 sigma^2))). */
export function discreteGaussian(rng: RandomSource, sigma: number): number {
  finitePositive(sigma, 'discrete Gaussian sigma');
  const r = doubleToRational(sigma * sigma);
  return Number(discreteGaussianRational(rng, r.num, r.den));
}

/** Integer counts + exact discrete Gaussian noise (e.g. vote histograms). */
export function addDiscreteGaussianNoise(counts: Int32Array | number[], sigma: number, rng: RandomSource): void {
  finitePositive(sigma, 'sigma');
  const r = doubleToRational(sigma * sigma);
  for (let i = 0; i < counts.length; i++) counts[i] += Number(discreteGaussianRational(rng, r.num, r.den));
}

/**
 * Scalar/low-dimensional real release with Gaussian noise, immune to the floating-point attack:
 * round each value to the grid granularity*Z, add granularity * DiscreteGaussian(sigma/granularity).
 * Rounding can move neighbouring values apart by up to `granularity` per coordinate, so the event
 * uses L2 sensitivity sensitivity + granularity*sqrt(d).
 */
export function gaussianRelease(values: number[] | Float64Array, o: { sigma: number; l2Sensitivity: number; granularity?: number }, rng: RandomSource): { values: Float64Array; event: DpEvent } {
  finitePositive(o.sigma, 'sigma');
  finitePositive(o.l2Sensitivity, 'l2Sensitivity');
  const g = o.granularity ?? 2 ** Math.floor(Math.log2(o.sigma / 1000));
  finitePositive(g, 'granularity');
  const out = new Float64Array(values.length);
  const r = doubleToRational((o.sigma / g) ** 2);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new MechanismError(`value ${i} is not finite`);
    out[i] = (Math.round(values[i] / g) + Number(discreteGaussianRational(rng, r.num, r.den))) * g;
  }
  const sens = o.l2Sensitivity + g * Math.sqrt(values.length);
  return { values: out, event: DpEvents.gaussianWithSensitivity(o.sigma, sens) };
}

// ---------------------------------------------------------------- selection mechanisms ----

/**
 * Exponential mechanism: index i with probability ∝ exp(epsilon * score_i / (2 * sensitivity)).
 * epsilon-DP (pure); the event is DpEvents.pureDp(epsilon). Sampling by inverse CDF on
 * log-sum-exp-normalised weights with a 53-bit uniform.
 */
export function exponentialMechanism(scores: ArrayLike<number>, epsilon: number, sensitivity: number, rng: RandomSource): { index: number; event: DpEvent } {
  finitePositive(epsilon, 'epsilon');
  finitePositive(sensitivity, 'sensitivity');
  const n = scores.length;
  if (n === 0) throw new MechanismError('exponential mechanism needs at least one candidate');
  const logits = new Float64Array(n);
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(scores[i])) throw new MechanismError(`score ${i} is not finite`);
    logits[i] = (epsilon * scores[i]) / (2 * sensitivity);
    if (logits[i] > m) m = logits[i];
  }
  let total = 0;
  for (let i = 0; i < n; i++) total += Math.exp(logits[i] - m);
  let u = rng.nextDouble() * total;
  for (let i = 0; i < n; i++) {
    u -= Math.exp(logits[i] - m);
    if (u < 0) return { index: i, event: DpEvents.pureDp(epsilon) };
  }
  return { index: n - 1, event: DpEvents.pureDp(epsilon) };
}

/**
 * Report-noisy-max with exponential noise (Ding et al. 2021; equivalent in privacy to the
 * exponential mechanism and epsilon-DP): argmax_i score_i + Exp(scale 2 sensitivity / epsilon).
 */
export function reportNoisyMax(scores: ArrayLike<number>, epsilon: number, sensitivity: number, rng: RandomSource): { index: number; event: DpEvent } {
  finitePositive(epsilon, 'epsilon');
  finitePositive(sensitivity, 'sensitivity');
  if (scores.length === 0) throw new MechanismError('report-noisy-max needs at least one candidate');
  const scale = (2 * sensitivity) / epsilon;
  let best = -Infinity;
  let idx = 0;
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i] - scale * Math.log(uniformOpen(rng));
    if (v > best) {
      best = v;
      idx = i;
    }
  }
  return { index: idx, event: DpEvents.pureDp(epsilon) };
}

/** k-ary randomized response on value in [0, k): keep with prob e^eps/(e^eps+k-1), else a uniform other value. */
export function randomizedResponse(value: number, k: number, epsilon: number, rng: RandomSource): { value: number; event: DpEvent } {
  if (!Number.isInteger(k) || k < 2) throw new MechanismError(`randomized response needs k >= 2 categories, got ${k}`);
  if (!Number.isInteger(value) || value < 0 || value >= k) throw new MechanismError(`value must be an integer in [0, ${k}), got ${value}`);
  if (!(epsilon >= 0)) throw new MechanismError(`epsilon must be >= 0, got ${epsilon}`);
  const pKeep = Math.exp(epsilon) / (Math.exp(epsilon) + k - 1);
  let out = value;
  if (!(rng.nextDouble() < pKeep)) {
    const r = randomInt(rng, k - 1);
    out = r >= value ? r + 1 : r;
  }
  return { value: out, event: DpEvents.randomizedResponse(epsilon, k) };
}

// ---------------------------------------------------------------- von Mises–Fisher ----

/** Gamma(shape, 1) (Marsaglia & Tsang 2000). */
export function gammaSample(shape: number, rng: RandomSource): number {
  finitePositive(shape, 'gamma shape');
  if (shape < 1) return gammaSample(shape + 1, rng) * Math.pow(uniformOpen(rng), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = standardNormal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = uniformOpen(rng);
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export function betaSample(a: number, b: number, rng: RandomSource): number {
  const x = gammaSample(a, rng);
  const y = gammaSample(b, rng);
  return x / (x + y);
}

/**
 * von Mises–Fisher sample on S^{d-1} with mean direction `mu` (normalised here) and concentration
 * kappa (Wood 1994). As a mechanism on unit vectors it is epsilon-DP with
 * epsilon = kappa * max ||mu - mu'||_2 <= 2 kappa (Weggenmann & Kerschbaum 2021); `vmfEvent` gives it.
 */
export function vonMisesFisher(mu: ArrayLike<number>, kappa: number, rng: RandomSource): Float64Array {
  const d = mu.length;
  if (d < 2) throw new MechanismError('VMF needs dimension >= 2');
  if (!(kappa >= 0) || !Number.isFinite(kappa)) throw new MechanismError(`kappa must be finite and >= 0, got ${kappa}`);
  let norm = 0;
  for (let i = 0; i < d; i++) norm += mu[i] * mu[i];
  norm = Math.sqrt(norm);
  if (!(norm > 0) || !Number.isFinite(norm)) throw new MechanismError('VMF mean direction must be a finite non-zero vector');
  // w = component along mu
  const w = vmfSampleW(d, kappa, rng);
  // uniform direction orthogonal to e1
  const v = new Float64Array(d);
  let vn = 0;
  while (vn === 0) {
    vn = 0;
    for (let i = 1; i < d; i++) {
      v[i] = standardNormal(rng);
      vn += v[i] * v[i];
    }
  }
  vn = Math.sqrt(vn);
  const s = Math.sqrt(Math.max(0, 1 - w * w));
  const x = new Float64Array(d);
  x[0] = w;
  for (let i = 1; i < d; i++) x[i] = (s * v[i]) / vn;
  // Householder reflection mapping e1 to mu/|mu|: H = I - 2 u u^T, u = (e1 - m)/|e1 - m|
  const m = new Float64Array(d);
  for (let i = 0; i < d; i++) m[i] = mu[i] / norm;
  const u = new Float64Array(d);
  u[0] = 1 - m[0];
  let un = u[0] * u[0];
  for (let i = 1; i < d; i++) {
    u[i] = -m[i];
    un += u[i] * u[i];
  }
  if (un < 1e-30) return x; // mu is e1
  let dot = 0;
  for (let i = 0; i < d; i++) dot += u[i] * x[i];
  const f = (2 * dot) / un;
  for (let i = 0; i < d; i++) x[i] -= f * u[i];
  return x;
}

/**
 * The component w = ⟨X, mu⟩ of a VMF(mu, kappa) sample on S^{d-1} (Wood 1994 rejection sampler);
 * the rest of X is uniform on the orthogonal sphere scaled by √(1 − w²). Shared by
 * `vonMisesFisher` and the bulk VMF privatizer (train/privatizers/vmf.ts).
 */
export function vmfSampleW(d: number, kappa: number, rng: RandomSource): number {
  if (kappa === 0) return 2 * betaSample((d - 1) / 2, (d - 1) / 2, rng) - 1;
  const b = (d - 1) / (2 * kappa + Math.sqrt(4 * kappa * kappa + (d - 1) * (d - 1)));
  const x0 = (1 - b) / (1 + b);
  const c = kappa * x0 + (d - 1) * Math.log(1 - x0 * x0);
  for (;;) {
    const z = betaSample((d - 1) / 2, (d - 1) / 2, rng);
    const w = (1 - (1 + b) * z) / (1 - (1 - b) * z);
    const u = uniformOpen(rng);
    if (kappa * w + (d - 1) * Math.log(1 - x0 * w) - c >= Math.log(u)) return w;
  }
}

/** DP event of one VMF release of a unit vector (pure epsilon = kappa * maxDistance, maxDistance <= 2). */
export function vmfEvent(kappa: number, maxDistance = 2): DpEvent {
  return DpEvents.pureDp(kappa * maxDistance);
}

/** E[mu . X] for VMF on S^2 (d = 3): coth(kappa) - 1/kappa (used by the tests). */
export function vmfMeanResultantLength3(kappa: number): number {
  return 1 / Math.tanh(kappa) - 1 / kappa;
}
