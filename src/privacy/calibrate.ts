/**
 * Noise calibration for (Poisson-subsampled) Gaussian training: the noise multiplier reaching a
 * target (eps, delta), and the inverse (how many steps a noise level allows).
 */
import { DpEvents } from './events.js';
import type { AccountantKind } from './rdp-accountant.js';
import { RdpAccountant } from './rdp-accountant.js';
import { PldAccountant } from './pld.js';
import { DEFAULT_ORDERS, rdpSubsampledGaussian, rdpToEpsilon } from './rdp.js';

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
  const tol = input.epsilonTolerance ?? 0.01;
  if (!(tol > 0)) throw new RangeError(`epsilon tolerance must be > 0, got ${tol}`);
  const kind = input.accountant ?? 'rdp';
  let evaluations = 0;
  const eps = (sigma: number): number => {
    evaluations++;
    return dpsgdEpsilon({ noiseMultiplier: sigma, sampleRate, steps, delta, accountant: kind, orders: input.orders });
  };
  let sigmaLow = 0;
  let sigmaHigh = 10;
  let epsHigh = Infinity;
  while (epsHigh > targetEpsilon) {
    sigmaHigh *= 2;
    epsHigh = eps(sigmaHigh);
    if (sigmaHigh > MAX_SIGMA) throw new RangeError(`target epsilon ${targetEpsilon} is unreachable (needs noise multiplier > ${MAX_SIGMA})`);
  }
  while (targetEpsilon - epsHigh > tol) {
    const sigma = (sigmaLow + sigmaHigh) / 2;
    const e = eps(sigma);
    if (e < targetEpsilon) {
      sigmaHigh = sigma;
      epsHigh = e;
    } else {
      sigmaLow = sigma;
    }
  }
  return { noiseMultiplier: sigmaHigh, achievedEpsilon: epsHigh, steps, accountant: kind, evaluations };
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
