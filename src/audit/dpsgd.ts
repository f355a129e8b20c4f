/**
 * One-run audit of DP-SGD (Steinke, Nasr & Jagielski 2023) with gradient-space canaries.
 *
 * Threat model (white box, the one DP-SGD's analysis assumes): the adversary sees every noisy
 * gradient sum the run releases and may insert examples whose clipped gradient is any vector of
 * norm ≤ C. We insert m "Dirac" canaries: canary j's clipped gradient is C·e_{k_j} for a distinct
 * random coordinate k_j. Each canary is included in the private dataset independently with
 * probability ½ (the secret S_j); an included canary then behaves exactly like one more training
 * example — it enters each step's Poisson batch independently with the run's sampling rate q —
 * so the run's claimed (ε, δ) covers it. After every step the adversary reads
 * ⟨noisy sum, e_{k_j}⟩/C =: d_t. Each inclusion adds exactly 1 to d_t; the rest is noise plus the
 * other examples' gradient along that coordinate, which drifts slowly over training. Two scores:
 *  - 'sum' Σ_t d_t: the most powerful when the Gaussian noise dominates (σ ≳ 0.5);
 *  - 'sq-diff' Σ_t min((d_t − d_{t−1})², 1.5): inclusions make d_t jump by ±1 between steps while the
 *    other examples' slow drift cancels (jumps much larger than a canary’s unit step are capped: they come from the data); far more
 *    powerful when there is little or no noise.
 * The statistic is chosen from the run's *declared* σ before training (public information), so
 * the test stays valid. The scores and S feed the one-run bound in stats.ts.
 *
 * The inclusion bits reported per step by the trainer are the auditor's secret and are never used
 * for scoring; only S (for counting correct guesses) is.
 */
import { type RandomSource, secureRandom, seededRandom } from '../privacy/index.js';
import type { GradientCanaries } from '../train/index.js';
import { attackMetrics, type GuessStrategy, oneRunAudit, type OneRunAuditResult } from './stats.js';

export interface GradientCanarySet {
  /** The hook to hand to runTraining / PrivateTrainer. */
  hook: GradientCanaries;
  /** Secret inclusion bits S_j. */
  readonly included: boolean[];
  /** Coordinates k_j (filled when the trainer asks for directions). */
  readonly coordinates: number[];
  /** Current scores (sum over steps of ⟨noisy sum, e_k⟩/C). */
  scores(): number[];
  /** Steps observed. */
  steps(): number;
}

/**
 * m Dirac canaries with secret inclusion bits drawn from `rng`; included canaries are sampled at
 * every step with probability `sampleRate` (the run's Poisson rate), excluded ones never.
 */
export type CanaryStatistic = 'sum' | 'sq-diff';

/** The score statistic for a run that declares noise multiplier σ (see the header comment). */
export function statisticFor(noiseMultiplier: number): CanaryStatistic {
  return noiseMultiplier < 0.5 ? 'sq-diff' : 'sum';
}

export function makeDiracCanaries(m: number, sampleRate: number, rng: RandomSource, statistic: CanaryStatistic = 'sum'): GradientCanarySet {
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${sampleRate}`);
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const coordinates: number[] = [];
  const scores = new Float64Array(m);
  const prev = new Float64Array(m);
  let steps = 0;
  const hook: GradientCanaries = {
    probability: included.map((b) => (b ? sampleRate : 0)),
    directions: (paramCount: number) => {
      if (paramCount < m) throw new RangeError(`the model has ${paramCount} parameters, fewer than the ${m} Dirac canaries`);
      // distinct random coordinates (partial Fisher–Yates over the parameter index space)
      const picked = new Map<number, number>();
      coordinates.length = 0;
      for (let j = 0; j < m; j++) {
        const r = j + Math.floor(rng.nextDouble() * (paramCount - j));
        const a = picked.get(r) ?? r;
        picked.set(r, picked.get(j) ?? j);
        coordinates.push(a);
      }
      return coordinates.map((k) => {
        const d = new Float32Array(paramCount);
        d[k] = 1;
        return d;
      });
    },
    onStep: ({ dots }) => {
      if (statistic === 'sum') {
        for (let j = 0; j < m; j++) scores[j]! += dots[j]!;
      } else if (steps > 0) {
        for (let j = 0; j < m; j++) scores[j]! += Math.min((dots[j]! - prev[j]!) ** 2, 1.5);
      }
      for (let j = 0; j < m; j++) prev[j] = dots[j]!;
      steps++;
    },
  };
  return { hook, included, coordinates, scores: () => Array.from(scores), steps: () => steps };
}

/** What audit.json holds (rendered by the report). */
export interface AuditReport {
  /** The run's claimed ε at `delta` (null = ∞, i.e. an explicitly non-private run). */
  claimedEpsilon: number | null;
  delta: number;
  empiricalEpsilonLowerBound: number;
  confidence: number;
  attack: string;
  m: number;
  roc: { fpr: number[]; tpr: number[] };
  auc: number;
  tprAt0p1: number;
  tprAt1: number;
  /** Guess choice behind the bound and the number of choices it was corrected for. */
  guesses: { kPlus: number; kMinus: number; correct: number; tests: number; strategy: string };
  /** The audit violates the claim: the lower bound exceeds the claimed ε. */
  violation: boolean;
  seconds: number;
  [k: string]: unknown;
}

/** Scores + secret bits → the audit report fields (bound, ROC, AUC). */
export function summarizeAudit(
  scores: number[],
  included: boolean[],
  o: { claimedEpsilon: number | null; delta: number; confidence: number; attack: string; strategy?: GuessStrategy; seconds: number },
): AuditReport {
  const res: OneRunAuditResult = oneRunAudit(scores, included, { delta: o.delta, confidence: o.confidence, strategy: o.strategy });
  const metrics = attackMetrics(scores, included);
  const claimed = o.claimedEpsilon;
  return {
    claimedEpsilon: claimed,
    delta: o.delta,
    empiricalEpsilonLowerBound: res.epsilonLowerBound,
    confidence: o.confidence,
    attack: o.attack,
    m: scores.length,
    roc: metrics.roc,
    auc: metrics.auc,
    tprAt0p1: metrics.tprAt0p1,
    tprAt1: metrics.tprAt1,
    guesses: { kPlus: res.best.kPlus, kMinus: res.best.kMinus, correct: res.best.v, tests: res.tests, strategy: res.strategy },
    violation: claimed !== null && res.epsilonLowerBound > claimed,
    seconds: o.seconds,
  };
}

/** The auditor's randomness: seeded (reproducible, recorded) or secure. */
export function auditRandom(seed?: number): RandomSource {
  return seed !== undefined ? seededRandom(seed) : secureRandom();
}
