/**
 * Mechanism-level white-box audit of psg (private set generation, src/generate/psg.ts). Its only
 * contact with the private data is DP-SGD releases: a Poisson sample at rate q, per-sample
 * gradients clipped to C, summed, N(0, σ²C²) added, divided by the public expected batch q·n. The
 * run's own release (`psgRelease`: q, σ, C rebuilt from the run's hyper-parameters, n and budget;
 * `releaseNoisyGradient`: its noise code) is replayed for the steps the ledger charged with m
 * Dirac gradient canaries, as the DP-SGD audit (dpsgd.ts) does inside training:
 *
 * - canary j's clipped gradient is C·e_{k_j} on its own coordinate k_j of the ConvNet's parameter
 *   vector (the release's length); S_j ~ Bernoulli(½) says whether it is in the dataset; an included
 *   canary enters each step's Poisson sample independently with probability q, exactly like a record,
 *   so the run's add/remove claim covers it;
 * - the background (every other record's clipped gradient sum) is known to the white-box adversary
 *   and put at 0 by the auditor (any fixed background gives the same released noise around it);
 * - score: the spike log-likelihood ratio of the canary's series d_t = released[k_j]·(q·n)/C
 *   (spikeLlrScore, q ≤ 0.05) or its sum (larger q); guesses from canaryAuditPlan (public facts).
 *
 * The Gaussian guarantee holds for any clipped gradients, so this audits the release code and its
 * accounting (σ = 0 or a σ smaller than charged is caught); the clipping (sensitivity ≤ C) is
 * property-tested in test/generate-psg.test.ts. No record of the private data is read: no ε.
 */
import { releaseNoisyGradient, type PsgRelease } from '../generate/psg.js';
import { RdpAccountant, type RandomSource } from '../privacy/index.js';
import { canaryAuditPlan, spikeLlrScore, type CanaryAuditPlan } from './dpsgd.js';

export interface PsgReplay {
  scores: number[];
  included: boolean[];
  plan: CanaryAuditPlan;
  /** ε of the replayed steps (RDP accountant, the release's own event). */
  replayEpsilon(delta: number): number;
  declaredNoise: number;
}

/** Replays `steps` psg releases with m Dirac gradient canaries (see the header). `release` defaults to the run's noise code. */
export function replayPsgRelease(o: {
  release: PsgRelease;
  /** Length of one release (ConvNet parameter count). */
  dim: number;
  steps: number;
  m: number;
  rng: RandomSource;
  noise: RandomSource;
  noiseCode?: typeof releaseNoisyGradient;
}): PsgReplay {
  const { release: r, dim, steps, m } = o;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (dim < m) throw new RangeError(`psg audit: the release has ${dim} coordinates, fewer than the ${m} canaries`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`psg audit: the run made no step (steps = ${steps})`);
  const included = Array.from({ length: m }, () => o.rng.nextDouble() < 0.5);
  // distinct random coordinates (partial Fisher–Yates)
  const perm = Int32Array.from({ length: dim }, (_, i) => i);
  for (let j = 0; j < m; j++) {
    const k = j + Math.floor(o.rng.nextDouble() * (dim - j));
    [perm[j], perm[k]] = [perm[k]!, perm[j]!];
  }
  const coord = perm.subarray(0, m);
  const plan = canaryAuditPlan({ m, sampleRate: r.sampleRate, steps, noiseMultiplier: r.noiseMultiplier });
  const series = Array.from({ length: m }, () => new Float64Array(steps));
  const noiseCode = o.noiseCode ?? releaseNoisyGradient;
  for (let t = 0; t < steps; t++) {
    const sums = new Float32Array(dim);
    for (let j = 0; j < m; j++) if (included[j] && o.rng.nextDouble() < r.sampleRate) sums[coord[j]!]! += r.clip;
    const out = noiseCode([sums], r.noiseMultiplier * r.clip, r.expectedBatch, o.noise)[0]!;
    for (let j = 0; j < m; j++) series[j]![t] = (out[coord[j]!]! * r.expectedBatch) / r.clip;
  }
  const scores = series.map((s) => (plan.statistic === 'spike-llr' ? spikeLlrScore(s, r.sampleRate) : s.reduce((a, b) => a + b, 0)));
  return {
    scores: scores.map((s) => (Number.isFinite(s) ? s : Number.MAX_VALUE)),
    included,
    plan,
    replayEpsilon: (delta: number) => new RdpAccountant().compose(r.event, steps).getEpsilon(delta),
    declaredNoise: r.noiseMultiplier,
  };
}
