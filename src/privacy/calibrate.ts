/**
 * Noise calibration (dp_accounting's mechanism_calibration): `calibrate` finds the smallest noise
 * parameter of ANY parametrised event family reaching a target (eps, delta); `calibrateNoise` /
 * `calibrateNoiseMultiplier` are thin DP-SGD wrappers over it (Opacus get_noise_multiplier
 * bisection, identical results); `calibrateSteps` is the inverse (how many steps a noise allows).
 */
import type { DpEvent, NeighbouringRelation } from './events.js';
import { DpEvents } from './events.js';
import type { AccountantKind, EpsilonDetails } from './rdp-accountant.js';
import { RdpAccountant } from './rdp-accountant.js';
import { PldAccountant } from './pld.js';
import { makeAccountant } from './accountants.js';
import { DEFAULT_ORDERS, rdpSubsampledGaussian, rdpToEpsilon } from './rdp.js';

/** The target cannot be reached; the message says why (order list, non-private part, noise bound). */
export class CalibrationError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'CalibrationError';
  }
}

export interface GenericCalibrationInput {
  /** Event family: the whole release (all steps) as a function of the noise parameter; epsilon must not increase with it. */
  family: (noise: number) => DpEvent;
  targetEpsilon: number;
  delta: number;
  accountant?: AccountantKind;
  /** Neighbouring relation the accountant prices under (default add-remove). */
  relation?: NeighbouringRelation;
  /** RDP orders (default: Opacus default alphas). */
  orders?: readonly number[];
  /**
   * Search range: the upper end starts at `initial` (default 20, as Opacus) and doubles until the
   * target is met or it exceeds `max` (default 1e6); then bisection between `low` (default 0) and it.
   */
  bounds?: { low?: number; initial?: number; max?: number };
  /** Stop when target - achieved <= this (default 0.01, as Opacus get_noise_multiplier). */
  epsilonTolerance?: number;
}

export interface GenericCalibrationResult {
  noise: number;
  achievedEpsilon: number;
  evaluations: number;
  accountant: AccountantKind;
}

/**
 * Smallest noise parameter (within the tolerance) whose event reaches the target epsilon:
 * exponential search for a feasible upper end, then monotone bisection; the result always
 * satisfies achievedEpsilon <= targetEpsilon. Throws CalibrationError saying WHY when the target is
 * not reachable.
 */
export function calibrate(input: GenericCalibrationInput): GenericCalibrationResult {
  const { family, targetEpsilon, delta } = input;
  if (typeof family !== 'function') throw new RangeError('calibrate needs a family: (noise) => DpEvent');
  if (!(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) throw new RangeError(`target epsilon must be a finite number > 0, got ${targetEpsilon}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const tol = input.epsilonTolerance ?? 0.01;
  if (!(tol > 0)) throw new RangeError(`epsilon tolerance must be > 0, got ${tol}`);
  const kind = input.accountant ?? 'rdp';
  const low0 = input.bounds?.low ?? 0;
  const initial = input.bounds?.initial ?? 20;
  const max = input.bounds?.max ?? MAX_SIGMA;
  if (!(low0 >= 0 && initial > low0 && max >= initial)) throw new RangeError(`calibration bounds must satisfy 0 <= low < initial <= max, got ${JSON.stringify(input.bounds)}`);
  const orders = input.orders ?? DEFAULT_ORDERS;
  let evaluations = 0;
  const relation = input.relation ?? 'add-remove';
  const details = (noise: number): EpsilonDetails => {
    evaluations++;
    return makeAccountant(kind, { relation, orders }).compose(family(noise)).getEpsilonDetails(delta);
  };
  const eps = (noise: number): number => details(noise).epsilon;
  let noiseLow = low0;
  let noiseHigh = initial / 2;
  let epsHigh = Infinity;
  while (epsHigh > targetEpsilon) {
    noiseHigh *= 2;
    const d = details(noiseHigh);
    epsHigh = d.epsilon;
    if (epsHigh > targetEpsilon && noiseHigh > max) throw unreachable(input, kind, orders, noiseHigh, d);
  }
  while (targetEpsilon - epsHigh > tol) {
    const noise = (noiseLow + noiseHigh) / 2;
    const e = eps(noise);
    if (e < targetEpsilon) {
      noiseHigh = noise;
      epsHigh = e;
    } else {
      noiseLow = noise;
    }
  }
  return { noise: noiseHigh, achievedEpsilon: epsHigh, evaluations, accountant: kind };
}

function unreachable(input: GenericCalibrationInput, kind: AccountantKind, orders: readonly number[], noise: number, d: EpsilonDetails): CalibrationError {
  const target = input.targetEpsilon;
  if (!Number.isFinite(d.epsilon)) return new CalibrationError(`target epsilon ${target} is unreachable: the event is not private at any noise (epsilon = infinity at noise ${noise}${d.warnings.length ? `: ${d.warnings.join('; ')}` : ''})`);
  if (kind === 'rdp') {
    const maxOrder = Math.max(...orders);
    // with the optimum at the largest order the limit is the conversion, not the noise: even zero
    // RDP converts to at least about log(1/delta)/(maxOrder - 1) at that order
    if (d.optimalOrder === maxOrder) {
      const floor = rdpToEpsilon([maxOrder], [0], input.delta).epsilon;
      return new CalibrationError(`target epsilon ${target} is below what the RDP conversion can state at delta ${input.delta} with orders up to ${maxOrder} (about ${floor.toPrecision(3)} even for a release with no privacy loss; ${d.epsilon.toPrecision(4)} at noise ${noise}): the limit is the RDP order list, not the noise; use larger orders or the PLD accountant`);
    }
  }
  return new CalibrationError(`target epsilon ${target} is unreachable: epsilon is still ${d.epsilon.toPrecision(4)} at noise ${noise} (search limit ${input.bounds?.max ?? MAX_SIGMA})`);
}

export interface CalibrationInput {
  targetEpsilon: number;
  delta: number;
  sampleRate: number;
  /** Number of steps; or give `epochs` (steps = floor(epochs / sampleRate), as Opacus). */
  steps?: number;
  epochs?: number;
  accountant?: AccountantKind;
  /** Stop when target - achieved <= this (default 0.01, as Opacus get_noise_multiplier). */
  epsilonTolerance?: number;
  /** RDP orders (default: Opacus default alphas). */
  orders?: readonly number[];
}

export interface CalibrationResult {
  noiseMultiplier: number;
  achievedEpsilon: number;
  steps: number;
  accountant: AccountantKind;
  evaluations: number;
}

const MAX_SIGMA = 1e6;

function checkCommon(delta: number, sampleRate: number): void {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sample rate must be in (0, 1], got ${sampleRate}`);
}

/** steps from steps | epochs, validating. */
export function resolveSteps(sampleRate: number, steps?: number, epochs?: number): number {
  if ((steps === undefined) === (epochs === undefined)) throw new RangeError('give exactly one of steps or epochs');
  if (steps !== undefined) {
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
    return steps;
  }
  if (!(epochs! > 0) || !Number.isFinite(epochs)) throw new RangeError(`epochs must be > 0, got ${epochs}`);
  const s = Math.floor(epochs! / sampleRate);
  if (s < 1) throw new RangeError(`epochs ${epochs} at sample rate ${sampleRate} give no step`);
  return s;
}

/** epsilon of `steps` Poisson-subsampled Gaussian steps. */
export function dpsgdEpsilon(o: { noiseMultiplier: number; sampleRate: number; steps: number; delta: number; accountant?: AccountantKind; orders?: readonly number[] }): number {
  checkCommon(o.delta, o.sampleRate);
  if (o.accountant === 'pld') return new PldAccountant().compose(DpEvents.poissonSampled(o.sampleRate, DpEvents.gaussian(o.noiseMultiplier)), o.steps).getEpsilon(o.delta);
  const orders = o.orders ?? DEFAULT_ORDERS;
  const rdp = new Float64Array(orders.length);
  for (let i = 0; i < orders.length; i++) rdp[i] = o.steps * rdpSubsampledGaussian(o.sampleRate, o.noiseMultiplier, orders[i]);
  return rdpToEpsilon(orders, rdp, o.delta).epsilon;
}

/**
 * Noise multiplier for a target (eps, delta): the bisection of Opacus get_noise_multiplier
 * (sigma_high doubled from 20 until eps <= target, then bisected until target - eps <= tolerance);
 * with the RDP accountant it reproduces Opacus exactly. The returned sigma always satisfies
 * achievedEpsilon <= targetEpsilon.
 */
export function calibrateNoise(input: CalibrationInput): CalibrationResult {
  const { targetEpsilon, delta, sampleRate } = input;
  if (!(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) throw new RangeError(`target epsilon must be a finite number > 0, got ${targetEpsilon}`);
  checkCommon(delta, sampleRate);
  const steps = resolveSteps(sampleRate, input.steps, input.epochs);
  const r = calibrate({
    family: (sigma) => DpEvents.selfComposed(DpEvents.poissonSampled(sampleRate, DpEvents.gaussian(sigma)), steps),
    targetEpsilon,
    delta,
    accountant: input.accountant ?? 'rdp',
    relation: 'add-remove',
    orders: input.orders,
    epsilonTolerance: input.epsilonTolerance,
  });
  return { noiseMultiplier: r.noise, achievedEpsilon: r.achievedEpsilon, steps, accountant: r.accountant, evaluations: r.evaluations };
}

/** The agreed API name: the noise multiplier only. */
export function calibrateNoiseMultiplier(input: CalibrationInput): number {
  return calibrateNoise(input).noiseMultiplier;
}

/**
 * Largest number of steps whose epsilon stays <= targetEpsilon for the given noise multiplier
 * (0 if even one step exceeds it). Exponential then binary search (epsilon is monotone in steps).
 */
export function calibrateSteps(o: { noiseMultiplier: number; sampleRate: number; targetEpsilon: number; delta: number; accountant?: AccountantKind; maxSteps?: number }): number {
  checkCommon(o.delta, o.sampleRate);
  if (!(o.targetEpsilon > 0)) throw new RangeError(`target epsilon must be > 0, got ${o.targetEpsilon}`);
  if (!(o.noiseMultiplier > 0)) throw new RangeError(`noise multiplier must be > 0, got ${o.noiseMultiplier}`);
  const maxSteps = o.maxSteps ?? 1e9;
  let epsOf: (t: number) => number;
  if (o.accountant === 'pld') {
    epsOf = (t) => dpsgdEpsilon({ ...o, steps: t, accountant: 'pld' });
  } else {
    const acc = new RdpAccountant();
    const per = acc.rdpOf(DpEvents.poissonSampled(o.sampleRate, DpEvents.gaussian(o.noiseMultiplier)));
    const tmp = new Float64Array(per.length);
    epsOf = (t) => {
      for (let i = 0; i < per.length; i++) tmp[i] = per[i] * t;
      return rdpToEpsilon(acc.orders, tmp, o.delta).epsilon;
    };
  }
  if (epsOf(1) > o.targetEpsilon) return 0;
  let lo = 1;
  let hi = 2;
  while (hi <= maxSteps && epsOf(hi) <= o.targetEpsilon) {
    lo = hi;
    hi *= 2;
  }
  if (hi > maxSteps) {
    if (epsOf(maxSteps) <= o.targetEpsilon) return maxSteps;
    hi = maxSteps;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (epsOf(mid) <= o.targetEpsilon) lo = mid;
    else hi = mid;
  }
  return lo;
}
