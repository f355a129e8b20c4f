/**
 * Privacy loss distribution (PLD) accountant: numerically tight (eps, delta) for compositions of
 * (Poisson-subsampled) Gaussian and Laplace mechanisms, randomized response, TopAgg / GNMax
 * (via their dominating Gaussians), comparable to dp_accounting's PLD and Opacus's PRV accountants.
 *
 * Method.
 *  1. Each basic mechanism is reduced to a dominating pair (A, B) per neighbouring direction
 *     ('remove': A = (1-q) N0 + q N1, B = N0; 'add': A = N0, B = (1-q) N0 + q N1; symmetric
 *     mechanisms are equal in both). Its privacy loss L = log(A/B)(o), o ~ A, is discretised on the
 *     grid h*Z with the pessimistic "connect-the-dots" rule (Doroshenko, Ghazi, Kamath, Kumar &
 *     Manurangsi 2022): the A-mass of every interval (ih, (i+1)h] is split between its two ends so
 *     that both the A-mass and the B-mass (= sum e^{-l} A-mass) are preserved. The resulting PLD
 *     dominates the true one (its hockey-stick curve is the linear-in-e^eps interpolation of the
 *     true curve at the grid points, which is >= the true convex curve), so composing these gives an
 *     UPPER bound on delta(eps). Mass beyond the truncation of the noise (|z| > 11 standard
 *     deviations, < 2e-28) is put at +infinity (upper side) or on the lowest grid point (lower side),
 *     both pessimistic.
 *  2. Composition: all events of one direction are convolved in one FFT window: the window
 *     [lo, hi] is chosen by a Chernoff bound on the composed loss (tail mass <= tau = 1e-5 * delta
 *     on each side), every PMF is FFT'd once (both directions packed as real and imaginary parts of
 *     one complex transform), self-composition x N is a per-frequency complex power computed by
 *     repeated squaring, and one inverse FFT gives the composed PMFs.
 *  3. delta(eps) = P_inf + sum_l p(l) (1 - e^{eps - l})_+ + 2 tau (aliasing/truncation bound);
 *     eps(delta) is solved exactly between grid points; the reported eps is the max over the two
 *     directions.
 *
 * Error. The result is an upper bound on the true eps except for floating-point rounding of the
 * FFT (about 1e-13 absolute in delta). Its looseness comes from the connect-the-dots spread, which
 * raises the mean of each composed loss by at most h^2/8 and its variance by at most h^2/4 per
 * composition; the automatic grid keeps the variance bound within 1% of the composed variance
 * (so eps is at most ~0.5% loose from discretisation) and h <= 1e-4 unless the window is very
 * wide. Against Opacus's PRV estimate the 20 reference cases agree to <= 0.002 absolute.
 */
import type { AccountingRelation, DpEvent } from './events.js';
import { assertNever, describeEvent, hasDataDependentStatistics, lowerEvent } from './events.js';
import { getFft, nextPow2 } from './fft.js';
import { erfc, logAdd } from './special.js';
import type { Accountant, AccountantRelationOptions, EpsilonDetails } from './rdp-accountant.js';
import { AccountingError, checkRelation, resolveRelation } from './rdp-accountant.js';

export interface PldAccountantOptions extends AccountantRelationOptions {
  /**
   * Grid interval h of the privacy loss. Default: automatic (start at 1e-4; refined while the
   * connect-the-dots variance inflation bound count*h^2/4 exceeds 1% of the composed loss
   * variance, window up to 2^20 points; coarsened when the window would exceed 2^18 points while
   * the bound stays <= 0.1%).
   * An explicit h is only coarsened if the window would exceed 2^22 points (with a warning).
   */
  valueDiscretizationInterval?: number;
}

type Component = { type: 'sg'; q: number; z: number } | { type: 'sl'; q: number; b: number } | { type: 'rr'; eps: number; k: number } | { type: 'inf'; reason: string };

type Direction = 'remove' | 'add';

interface DiscretePld {
  /** probs[i] is the A-mass at loss (offset + i) * h. */
  offset: number;
  probs: Float64Array;
  infMass: number;
}

const TRUNC_SD = 11; // tail of each noise beyond 11 sd: < 2e-28
const MAX_FFT = 1 << 22;
/** With the automatic grid, windows above this size get a coarser h (see composeAll). */
const AUTO_FFT = 1 << 18;
/** Largest window the automatic grid refines to. */
const REFINE_FFT = 1 << 20;

/** Variance of a discrete PLD's finite part, in grid units^2. */
function pmfVariance(d: DiscretePld): number {
  let m0 = 0;
  let m1 = 0;
  let m2 = 0;
  for (let i = 0; i < d.probs.length; i++) {
    const p = d.probs[i];
    m0 += p;
    m1 += p * i;
    m2 += p * i * i;
  }
  if (m0 <= 0) return 0;
  const mean = m1 / m0;
  return Math.max(0, m2 / m0 - mean * mean);
}

/**
 * Adds the components of the LOWERED event `e` (with multiplicity) to `out`. Exhaustive: throws
 * for what PLD cannot price (never prices an unknown kind as 0).
 */
function collect(e: DpEvent, mult: number, out: Map<string, { comp: Component; count: number }>, notes: Set<string>): void {
  const add = (comp: Component, c = mult): void => {
    if (c === 0) return;
    const key = JSON.stringify(comp);
    const cur = out.get(key);
    if (cur) cur.count += c;
    else out.set(key, { comp, count: c });
  };
  switch (e.kind) {
    case 'noOp':
      return;
    case 'unsupported':
      throw new AccountingError(`PLD accountant cannot price an unsupported event: ${e.reason}`);
    case 'ptr':
      throw new AccountingError(`PLD accountant cannot price ${describeEvent(e)}; use the RDP accountant (privacy/ptr.ts)`);
    case 'metricDp':
      throw new AccountingError(`PLD accountant refuses ${describeEvent(e)}: metric DP is not (epsilon, delta)-DP and is never converted; it is composed by the metric-DP tally (privacy/metric-dp.ts)`);
    case 'nonPrivate':
      notes.add(`non-private release composed (${e.reason}): epsilon is infinite`);
      return add({ type: 'inf', reason: e.reason });
    case 'gaussian':
      return e.noiseMultiplier === 0 ? add({ type: 'inf', reason: 'Gaussian with zero noise' }) : add({ type: 'sg', q: 1, z: e.noiseMultiplier });
    case 'laplace':
      return e.noiseMultiplier === 0 ? add({ type: 'inf', reason: 'Laplace with zero noise' }) : add({ type: 'sl', q: 1, b: e.noiseMultiplier });
    case 'randomizedResponse':
      if (e.epsilon === 0) return;
      return e.epsilon === Infinity ? add({ type: 'inf', reason: 'randomized response with eps = inf' }) : add({ type: 'rr', eps: e.epsilon, k: e.numCategories });
    case 'selfComposed':
      return collect(e.event, mult * e.count, out, notes);
    case 'composed':
      for (const s of e.events) collect(s, mult, out, notes);
      return;
    case 'poissonSampled': {
      const q = e.samplingProbability;
      const inner = e.event;
      if (q === 0 || inner.kind === 'noOp') return;
      if (q === 1) return collect(inner, mult, out, notes);
      if (inner.kind === 'gaussian') return inner.noiseMultiplier === 0 ? add({ type: 'inf', reason: 'subsampled Gaussian with zero noise' }) : add({ type: 'sg', q, z: inner.noiseMultiplier });
      if (inner.kind === 'laplace') return inner.noiseMultiplier === 0 ? add({ type: 'inf', reason: 'subsampled Laplace with zero noise' }) : add({ type: 'sl', q, b: inner.noiseMultiplier });
      if (inner.kind === 'nonPrivate') return collect(inner, mult, out, notes);
      throw new AccountingError(`PLD accountant cannot price Poisson-subsampled ${describeEvent(inner)} (only Gaussian and Laplace)`);
    }
    case 'sampledWithoutReplacement':
      if (e.sampleSize === 0 || e.event.kind === 'noOp') return;
      if (e.sampleSize === e.sourceDatasetSize) return collect(e.event, mult, out, notes);
      throw new AccountingError('PLD accountant does not support sampling without replacement; use the RDP accountant');
    case 'topAgg':
    case 'gnmax':
      // composite events are lowered once, in lowerEvent (events.ts), before collect is called
      throw new AccountingError(`internal: composite event ${describeEvent(e)} reached the PLD pricer without lowering`);
    default:
      return assertNever(e, 'event kind');
  }
}

// ---- base noise distributions of the statistic s = log(N1/N0)(x) ----
interface Base {
  sLo: number;
  sHi: number;
  /** fills cdf[j] = P_j(s <= v), sf[j] = P_j(s > v) for j = 0 (centre 0) and 1 (centre = sensitivity) */
  eval(v: number, out: Float64Array): void;
}

function gaussianBase(z: number): Base {
  const mu = 1 / (2 * z * z);
  const sd = 1 / z;
  const tail = (y: number, out: Float64Array, o: number): void => {
    // standard normal at y: cdf and sf, each from one erfc with full relative accuracy
    const e = 0.5 * erfc(Math.abs(y) / Math.SQRT2);
    if (y > 0) {
      out[o] = 1 - e;
      out[o + 1] = e;
    } else {
      out[o] = e;
      out[o + 1] = 1 - e;
    }
  };
  return {
    sLo: -mu - TRUNC_SD * sd,
    sHi: mu + TRUNC_SD * sd,
    eval(v, out) {
      if (v === -Infinity) {
        out[0] = 0; out[1] = 1; out[2] = 0; out[3] = 1;
        return;
      }
      if (v === Infinity) {
        out[0] = 1; out[1] = 0; out[2] = 1; out[3] = 0;
        return;
      }
      tail((v + mu) / sd, out, 0);
      tail((v - mu) / sd, out, 2);
    },
  };
}

function laplaceBase(b: number): Base {
  // s = (|x| - |x-1|)/b in [-1/b, 1/b], atoms at both ends
  return {
    sLo: -1 / b,
    sHi: 1 / b,
    eval(v, out) {
      if (v < -1 / b) {
        out[0] = 0; out[1] = 1; out[2] = 0; out[3] = 1;
        return;
      }
      if (v >= 1 / b) {
        out[0] = 1; out[1] = 0; out[2] = 1; out[3] = 0;
        return;
      }
      const w = (b * v + 1) / 2; // x threshold in [0, 1)
      const s0 = 0.5 * Math.exp(-w / b); // Lap(0,b): P(x > w)
      out[0] = 1 - s0;
      out[1] = s0;
      const c1 = 0.5 * Math.exp((w - 1) / b); // Lap(1,b): P(x <= w)
      out[2] = c1;
      out[3] = 1 - c1;
    },
  };
}

function massBetween(lo: Float64Array, hi: Float64Array, o: number): number {
  // P(lo < s <= hi) from cdf/sf pairs at both ends, using the side with less cancellation
  const m = lo[o + 1] < 0.5 ? lo[o + 1] - hi[o + 1] : hi[o] - lo[o];
  return m > 0 ? m : 0;
}

/** Connect-the-dots discretisation of a Poisson-subsampled base mechanism in one direction. */
function discretiseSubsampled(base: Base, q: number, dir: Direction, h: number): DiscretePld {
  const lq = Math.log(q);
  // s threshold for "A-side loss <= t" (remove) / "> t" (add): g(t) = log(expm1(t) + q) - log q
  const g = (t: number): number => {
    if (q === 1) return t;
    const x = Math.expm1(t) + q;
    return x > 0 ? Math.log(x) - lq : -Infinity;
  };
  // remove-direction loss log(1 - q + q e^s), in log space (q = 1: exactly s)
  const l1q = Math.log1p(-q);
  const lossOfS = (s: number): number => (q === 1 ? s : logAdd(l1q, lq + s));
  const tLo = dir === 'remove' ? lossOfS(base.sLo) : -lossOfS(base.sHi);
  const tHi = dir === 'remove' ? lossOfS(base.sHi) : -lossOfS(base.sLo);
  const iLo = Math.floor(tLo / h);
  let iHi = Math.ceil(tHi / h);
  if (iHi <= iLo) iHi = iLo + 1;
  const n = iHi - iLo + 1;
  if (n > 50_000_000) throw new AccountingError(`PLD discretisation too fine (${n} points); increase valueDiscretizationInterval`);
  const probs = new Float64Array(n);
  // cdf/sf of both bases at the s-threshold of each grid point
  let prev = new Float64Array(4);
  let cur = new Float64Array(4);
  const sAt = (i: number): number => (dir === 'remove' ? g(i * h) : g(-i * h));
  base.eval(sAt(iLo), prev);
  // A-mass with loss <= t_iLo goes to the lowest point (pessimistic)
  if (dir === 'remove') probs[0] += (1 - q) * prev[0] + q * prev[2];
  else probs[0] += prev[1]; // add: loss <= t  <=>  s >= g(-t); A = N0
  const expm1h = Math.expm1(-h);
  for (let i = iLo; i < iHi; i++) {
    base.eval(sAt(i + 1), cur);
    let a: number;
    let bm: number;
    if (dir === 'remove') {
      const m0 = massBetween(prev, cur, 0);
      const m1 = massBetween(prev, cur, 2);
      a = (1 - q) * m0 + q * m1;
      bm = m0;
    } else {
      // s in [g(-t_{i+1}), g(-t_i)): cur is the lower s end
      const m0 = massBetween(cur, prev, 0);
      const m1 = massBetween(cur, prev, 2);
      a = m0;
      bm = (1 - q) * m0 + q * m1;
    }
    if (a > 0) {
      const t1 = i * h;
      // upper-end share u from a e^{-t1} - u (e^{-t1} - e^{-t2}) = bm, i.e. u = (bm e^{t1} - a)/expm1(-h),
      // with bm e^{t1} formed in log space (B-mass underflow for huge losses gives u = a: pessimistic)
      const r = bm > 0 ? Math.exp(Math.log(bm) + t1) : 0;
      let u = (r - a) / expm1h;
      if (!(u >= 0)) u = 0;
      if (u > a) u = a;
      probs[i - iLo + 1] += u;
      probs[i - iLo] += a - u;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  // A-mass with loss > t_iHi -> +infinity
  const infMass = dir === 'remove' ? (1 - q) * prev[1] + q * prev[3] : prev[0];
  return { offset: iLo, probs, infMass };
}

function discretiseRR(eps: number, k: number, h: number): DiscretePld {
  const den = Math.exp(eps) + k - 1;
  const p = Math.exp(eps) / den;
  const r = 1 / den;
  const atoms: [number, number][] = [
    [eps, p],
    [-eps, r],
  ];
  if (k > 2) atoms.push([0, (k - 2) * r]);
  const iLo = Math.floor(-eps / h);
  const iHi = Math.ceil(eps / h);
  const probs = new Float64Array(iHi - iLo + 1);
  for (const [l, a] of atoms) {
    const i = Math.floor(l / h);
    const t1 = i * h;
    const t2 = (i + 1) * h;
    if (l === t1) {
      probs[i - iLo] += a;
      continue;
    }
    // preserve A-mass a and B-mass a e^{-l}: u = a (e^{t1-l} - 1) / (e^{-h} - 1)
    void t2;
    const u = Math.min(a, Math.max(0, (a * Math.expm1(t1 - l)) / Math.expm1(-h)));
    probs[i - iLo + 1] += u;
    probs[i - iLo] += a - u;
  }
  return { offset: iLo, probs, infMass: 0 };
}

const pldCache = new Map<string, DiscretePld>();
/** Drops the per-process discretisation cache (benchmarks use it to time cold computations). */
export function clearPldCache(): void {
  pldCache.clear();
}
function discretise(comp: Component, dir: Direction, h: number): DiscretePld {
  const symmetric = comp.type === 'rr' || comp.type === 'inf' || comp.q === 1;
  const key = `${JSON.stringify(comp)}|${symmetric ? 'sym' : dir}|${h}`;
  let d = pldCache.get(key);
  if (d) return d;
  switch (comp.type) {
    case 'inf':
      d = { offset: 0, probs: new Float64Array(1), infMass: 1 };
      break;
    case 'rr':
      d = discretiseRR(comp.eps, comp.k, h);
      break;
    case 'sg':
      d = discretiseSubsampled(gaussianBase(comp.z), comp.q, symmetric ? 'remove' : dir, h);
      break;
    case 'sl':
      d = discretiseSubsampled(laplaceBase(comp.b), comp.q, symmetric ? 'remove' : dir, h);
      break;
  }
  if (pldCache.size > 64) pldCache.clear();
  pldCache.set(key, d);
  return d;
}

const LAMBDAS = (() => {
  const out: number[] = [];
  for (let k = -4; k <= 14; k++) out.push(2 ** k, -(2 ** k));
  return out;
})();

const mgfCache = new WeakMap<DiscretePld, Float64Array>();
/**
 * log E[e^{lambda L}] over the finite part, for each lambda in LAMBDAS. On the grid,
 * e^{lambda l_i} is geometric in i, so each sum is a Horner evaluation with ratio x = e^{-|lambda| h} < 1
 * (no exp per point, no overflow).
 */
function logMgf(d: DiscretePld, h: number): Float64Array {
  let v = mgfCache.get(d);
  if (v) return v;
  v = new Float64Array(LAMBDAS.length);
  const p = d.probs;
  // Horner over the non-zero span [first, last]: every partial sum then ends on a positive term,
  // so the result cannot underflow to 0 (terms that underflow on the way are negligible)
  let first = 0;
  let last = p.length - 1;
  while (first < last && !(p[first] > 0)) first++;
  while (last > first && !(p[last] > 0)) last--;
  for (let j = 0; j < LAMBDAS.length; j++) {
    const lam = LAMBDAS[j];
    const x = Math.exp(-Math.abs(lam) * h);
    let acc = 0;
    if (lam > 0) {
      for (let i = first; i <= last; i++) acc = acc * x + p[i];
      v[j] = lam * h * (d.offset + last) + Math.log(acc);
    } else {
      for (let i = last; i >= first; i--) acc = acc * x + p[i];
      v[j] = lam * h * (d.offset + first) + Math.log(acc);
    }
  }
  mgfCache.set(d, v);
  return v;
}

/** Complex power (re, im)^n by repeated squaring. */
function cpow(re: number, im: number, n: number, out: Float64Array): void {
  let rr = 1;
  let ri = 0;
  let br = re;
  let bi = im;
  while (n > 0) {
    if (n & 1) {
      const t = rr * br - ri * bi;
      ri = rr * bi + ri * br;
      rr = t;
    }
    n = Math.floor(n / 2);
    if (n > 0) {
      const t = br * br - bi * bi;
      bi = 2 * br * bi;
      br = t;
    }
  }
  out[0] = rr;
  out[1] = ri;
}

interface Composed {
  lo: number;
  probs: Float64Array;
  infMass: number;
  h: number;
}

/**
 * eps such that delta(eps) <= delta for one composed PLD (delta(eps) includes infMass and `err`).
 * Scans from the top keeping s1 = sum_{j>=k} p_j and s2 = sum_{j>=k} p_j e^{l_k - l_j} (scaled to
 * the current point, so nothing under- or overflows even for losses in the thousands); on
 * [l_{k-1}, l_k] delta(eps) = s1 - e^{eps - l_k} s2 is solved exactly.
 */
function epsilonFromPld(c: Composed, delta: number, err: number): number {
  const target = delta - err - c.infMass;
  if (target <= 0) return Infinity;
  const p = c.probs;
  const h = c.h;
  const eh = Math.exp(-h);
  let s1 = 0;
  let s2 = 0;
  for (let k = p.length - 1; k >= 0; k--) {
    const pk = p[k] > 0 ? p[k] : 0;
    const lk = (c.lo + k) * h;
    s2 = s2 * eh + pk; // rescale from l_{k+1} to l_k
    s1 += pk;
    // delta at eps = l_{k-1}, support {j >= k}
    const dPrev = s1 - eh * s2;
    if (dPrev > target) {
      if (s2 <= 0) return Math.max(0, lk - h);
      const eps = lk + Math.log((s1 - target) / s2);
      return Math.max(0, Math.min(Math.max(eps, lk - h), lk));
    }
    if (k === 0) {
      // delta is already below target under the whole support
      return s1 > target && s2 > 0 ? Math.max(0, lk + Math.log((s1 - target) / s2)) : 0;
    }
  }
  return 0;
}

/** delta(eps) for one composed PLD. */
function deltaFromPld(c: Composed, eps: number): number {
  let d = c.infMass;
  for (let k = 0; k < c.probs.length; k++) {
    const l = (c.lo + k) * c.h;
    if (l > eps && c.probs[k] > 0) d += c.probs[k] * -Math.expm1(eps - l);
  }
  return Math.min(1, d);
}

/** Loss range [tLo, tHi] of one component's discretisation (before rounding to the grid). */
function componentRange(comp: Component): number {
  if (comp.type === 'inf') return 0;
  if (comp.type === 'rr') return 2 * comp.eps;
  const base = comp.type === 'sg' ? gaussianBase(comp.z) : laplaceBase(comp.b);
  const l1q = Math.log1p(-comp.q);
  const lq = Math.log(comp.q);
  const loss = (s: number): number => (comp.q === 1 ? s : logAdd(l1q, lq + s));
  return loss(base.sHi) - loss(base.sLo);
}

function composeAll(entries: { comp: Component; count: number }[], h0: number, tau: number, auto: boolean): { remove: Composed; add: Composed; h: number } {
  let h = h0;
  if (auto) {
    // very wide single-step losses (tiny noise): start on a grid of at most 2^20 points per step
    const widest = Math.max(...entries.map((e) => componentRange(e.comp)));
    if (widest / h > REFINE_FFT) h = widest / REFINE_FFT;
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const dirs: Direction[] = ['remove', 'add'];
    const pl = dirs.map((dir) => entries.map((e) => discretise(e.comp, dir, h)));
    const windows = dirs.map((_, di) => {
      // Chernoff window on the composed finite loss
      let offSum = 0;
      let topSum = 0;
      const K = new Float64Array(LAMBDAS.length);
      entries.forEach((e, j) => {
        const d = pl[di][j];
        offSum += e.count * d.offset;
        topSum += e.count * (d.offset + d.probs.length - 1);
        const m = logMgf(d, h);
        for (let i = 0; i < K.length; i++) K[i] += e.count * m[i];
      });
      let tHi = Infinity;
      let tLo = -Infinity;
      const lt = Math.log(tau);
      for (let i = 0; i < LAMBDAS.length; i++) {
        const lam = LAMBDAS[i];
        const t = (K[i] - lt) / lam;
        if (lam > 0) tHi = Math.min(tHi, t);
        else tLo = Math.max(tLo, t);
      }
      const lo = Math.max(offSum, Math.floor(tLo / h) - 1);
      const hi = Math.min(topSum, Math.ceil(tHi / h) + 1);
      return { lo, hi: Math.max(hi, lo), offSum };
    });
    const span = Math.max(...windows.map((w) => w.hi - w.lo + 1));
    const M = nextPow2(span);
    if (auto && attempt < 6) {
      // Grid choice: the connect-the-dots spread inflates the composed variance by at most
      // count*h^2/4. Refine h while that bound exceeds 1% of the composed variance (window up to
      // 2^20 points); coarsen h for very wide windows while it stays <= 0.1%.
      let cnt = 0;
      let varTot = Infinity;
      for (let di = 0; di < 2; di++) {
        let v = 0;
        entries.forEach((e, j) => {
          v += e.count * pmfVariance(pl[di][j]) * h * h;
        });
        varTot = Math.min(varTot, v);
      }
      for (const e of entries) cnt += e.count;
      const hFine = Math.sqrt((0.04 * varTot) / cnt);
      if (h > 2 * hFine && varTot > 0) {
        const hNew = Math.max(hFine, (h * span) / REFINE_FFT);
        if (hNew < h / 1.5) {
          h = hNew;
          continue;
        }
      }
      if (M > AUTO_FFT) {
        const hNew = Math.min((h * M) / AUTO_FFT, Math.sqrt((0.004 * varTot) / cnt));
        if (hNew > h * 1.01) {
          h = hNew;
          continue;
        }
      }
    }
    if (M > MAX_FFT) {
      h *= Math.ceil((M / MAX_FFT) * 1.05 * 100) / 100 + 0.01;
      continue;
    }
    if (process.env.DPLENS_PLD_DEBUG) process.stderr.write(`pld: h=${h} M=${M} windows=${JSON.stringify(windows)} sizes=${pl.map((x) => x.map((d) => d.probs.length)).join(',')}\n`);
    const fft = getFft(M);
    const accRe = [new Float64Array(M).fill(1), new Float64Array(M).fill(1)];
    const accIm = [new Float64Array(M), new Float64Array(M)];
    const re = new Float64Array(M);
    const im = new Float64Array(M);
    const tmp = new Float64Array(2);
    const infLog = [0, 0];
    entries.forEach((e, j) => {
      re.fill(0);
      im.fill(0);
      const dR = pl[0][j];
      const dA = pl[1][j];
      infLog[0] += e.count * Math.log1p(-Math.min(dR.infMass, 1));
      infLog[1] += e.count * Math.log1p(-Math.min(dA.infMass, 1));
      for (let i = 0, k = 0; i < dR.probs.length; i++, k = k + 1 === M ? 0 : k + 1) re[k] += dR.probs[i];
      for (let i = 0, k = 0; i < dA.probs.length; i++, k = k + 1 === M ? 0 : k + 1) im[k] += dA.probs[i];
      fft.transform(re, im);
      for (let k = 0; k < M; k++) {
        const mk = (M - k) & (M - 1);
        const xr = re[k];
        const xi = im[k];
        const yr = re[mk];
        const yi = im[mk];
        // separate the two real transforms
        const aR = (xr + yr) / 2;
        const aI = (xi - yi) / 2;
        const bR = (xi + yi) / 2;
        const bI = -(xr - yr) / 2;
        cpow(aR, aI, e.count, tmp);
        let r0 = accRe[0][k];
        let i0 = accIm[0][k];
        accRe[0][k] = r0 * tmp[0] - i0 * tmp[1];
        accIm[0][k] = r0 * tmp[1] + i0 * tmp[0];
        cpow(bR, bI, e.count, tmp);
        r0 = accRe[1][k];
        i0 = accIm[1][k];
        accRe[1][k] = r0 * tmp[0] - i0 * tmp[1];
        accIm[1][k] = r0 * tmp[1] + i0 * tmp[0];
      }
    });
    // Z = A + i B, inverse -> re = composed remove, im = composed add
    for (let k = 0; k < M; k++) {
      re[k] = accRe[0][k] - accIm[1][k];
      im[k] = accIm[0][k] + accRe[1][k];
    }
    fft.transform(re, im, true);
    const out = windows.map((w, di) => {
      const len = w.hi - w.lo + 1;
      const probs = new Float64Array(len);
      const src = di === 0 ? re : im;
      for (let n = 0; n < len; n++) {
        const pos = (((w.lo + n - w.offSum) % M) + M) % M;
        probs[n] = src[pos] > 0 ? src[pos] : 0;
      }
      return { lo: w.lo, probs, infMass: -Math.expm1(infLog[di]), h };
    });
    return { remove: out[0], add: out[1], h };
  }
  throw new AccountingError('PLD accountant: composition window too large even after coarsening the grid');
}

export class PldAccountant implements Accountant {
  readonly kind = 'pld' as const;
  readonly relation: AccountingRelation;
  readonly valueDiscretizationInterval: number;
  /** Default grid: h = 1e-4, coarsened for very wide windows while keeping the variance inflation <= 0.1%. */
  private readonly autoGrid: boolean;
  private readonly comps = new Map<string, { comp: Component; count: number }>();
  private readonly notes = new Set<string>();
  private memo: { delta: number; details: EpsilonDetails; version: number } | undefined;
  private version = 0;

  constructor(opts: PldAccountantOptions = {}) {
    this.relation = resolveRelation(opts.relation);
    this.autoGrid = opts.valueDiscretizationInterval === undefined;
    const h = opts.valueDiscretizationInterval ?? 1e-4;
    if (!(h > 0 && h < 1)) throw new RangeError(`valueDiscretizationInterval must be in (0, 1), got ${h}`);
    this.valueDiscretizationInterval = h;
  }

  /** Relation check + lowering + collection of one event's components (validates before anything is mutated). */
  private components(event: DpEvent, count: number, notes: Set<string>): Map<string, { comp: Component; count: number }> {
    checkRelation('pld', this.relation, event);
    if (hasDataDependentStatistics(event)) notes.add('GNMax data-dependent statistics were ignored (data-independent bounds used)');
    const tmp = new Map<string, { comp: Component; count: number }>();
    collect(lowerEvent(event), count, tmp, notes);
    return tmp;
  }

  supports(event: DpEvent): boolean {
    try {
      this.components(event, 1, new Set());
      return true;
    } catch (e) {
      if (e instanceof AccountingError || (e as Error).name === 'DpEventError') return false;
      throw e;
    }
  }

  compose(event: DpEvent, count = 1): this {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    const tmp = this.components(event, count, this.notes);
    for (const [k, v] of tmp) {
      const cur = this.comps.get(k);
      if (cur) cur.count += v.count;
      else this.comps.set(k, { ...v });
    }
    this.version++;
    return this;
  }

  getEpsilon(delta: number): number {
    return this.getEpsilonDetails(delta).epsilon;
  }

  getEpsilonDetails(delta: number): EpsilonDetails {
    if (this.memo && this.memo.version === this.version && this.memo.delta === delta) return this.memo.details;
    const details = this.evaluate([...this.comps.values()], delta);
    this.memo = { delta, details, version: this.version };
    return details;
  }

  epsilonIf(event: DpEvent, delta: number, count = 1): number {
    const m = new Map<string, { comp: Component; count: number }>();
    for (const [k, v] of this.comps) m.set(k, { ...v });
    for (const [k, v] of this.components(event, count, new Set())) {
      const cur = m.get(k);
      if (cur) cur.count += v.count;
      else m.set(k, v);
    }
    return this.evaluate([...m.values()], delta).epsilon;
  }

  /** delta(eps) (max over directions). */
  getDelta(epsilon: number): number {
    const entries = [...this.comps.values()].filter((e) => e.count > 0);
    if (entries.length === 0) return 0;
    if (entries.some((e) => e.comp.type === 'inf')) return 1;
    const tau = 1e-15;
    const c = composeAll(entries, this.valueDiscretizationInterval, tau, this.autoGrid);
    return Math.min(1, Math.max(deltaFromPld(c.remove, epsilon), deltaFromPld(c.add, epsilon)) + 2 * tau);
  }

  private evaluate(all: { comp: Component; count: number }[], delta: number): EpsilonDetails {
    if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
    const warnings = [...this.notes];
    const entries = all.filter((e) => e.count > 0);
    if (entries.length === 0) return { epsilon: 0, warnings, accountant: 'pld', delta };
    if (entries.some((e) => e.comp.type === 'inf')) return { epsilon: Infinity, warnings, accountant: 'pld', delta };
    const tau = Math.min(1e-12, delta * 1e-5);
    const c = composeAll(entries, this.valueDiscretizationInterval, tau, this.autoGrid);
    if (!this.autoGrid && c.h !== this.valueDiscretizationInterval) warnings.push(`PLD grid coarsened to h=${c.h.toPrecision(3)} to fit the composition window`);
    const eps = Math.max(epsilonFromPld(c.remove, delta, 2 * tau), epsilonFromPld(c.add, delta, 2 * tau));
    return { epsilon: eps, warnings, accountant: 'pld', delta };
  }
}
