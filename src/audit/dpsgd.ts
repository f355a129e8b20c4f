/**
 * One-run audit of DP-SGD (Steinke, Nasr & Jagielski 2023) with gradient-space canaries.
 *
 * Threat model (white box, the one DP-SGD's analysis assumes; Nasr et al. 2023, "Tight auditing"):
 * the adversary sees every noisy gradient sum the run releases and may insert examples whose
 * clipped gradient is any vector of norm ≤ C. We insert m "Dirac" canaries: canary j's clipped
 * gradient is C·e_{k_j} for a distinct random coordinate k_j. Each canary is included in the
 * private dataset independently with probability ½ (the secret S_j); an included canary then
 * behaves exactly like one more training example — it enters each step's Poisson batch
 * independently with the run's sampling rate q — so the run's claimed (ε, δ) covers it. After
 * every step the adversary reads d_t = ⟨noisy sum, e_{k_j}⟩/C. Each inclusion adds exactly 1 to
 * d_t; the rest is noise plus the other examples' gradient along that coordinate.
 *
 * Scores (any function of the released updates keeps the bound valid; the choice below is made
 * from public facts — q and the declared σ — before training):
 *  - 'spike-llr' (q ≤ 0.05, the real pipeline: q = B/n): with Poisson sampling at q = 0.004 a canary
 *    enters about one step in 250 and 37 % of the included ones never enter in one epoch, so sums
 *    over steps drown the one or two +1 spikes in 250 steps of data drift. Instead each canary's
 *    series is detrended by a running median over 5 steps (robust to a spike), its noise scale τ_j is
 *    estimated from the residuals (MAD, so it adapts to the actual noise, not the declared σ), and
 *    the score is the log-likelihood ratio of "sampled at rate q" against "never sampled" in that
 *    Gaussian model: Σ_t log(1 − q + q·exp((r_t − ½)/τ_j²)). With σ = 0 a spike on a quiet
 *    coordinate scores enormously; with σ = 1.3 the score is an exponentially weighted sum.
 *  - 'sum' Σ_t d_t and 'sq-diff' Σ_t min((d_t − d_{t−1})², 1.5): high sampling rates (the unit-test
 *    harness, q = ½), where a canary is present in half the steps and a median would absorb it.
 *
 * Guesses (see `canaryAuditPlan`): only "in" guesses (k₋ = 0, as jax_privacy's one-run auditor):
 * the lowest scores mix excluded canaries with included ones that were never sampled, so "out"
 * guesses are barely better than chance at small q. k₊ is a fraction of the *expected* number of
 * included canaries sampled at least once, D = (m/2)·(1 − (1 − q)^T), a public number.
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
  /** Current scores (per the statistic; higher = more likely included). */
  scores(): number[];
  /** Steps observed. */
  steps(): number;
}

/**
 * m Dirac canaries with secret inclusion bits drawn from `rng`; included canaries are sampled at
 * every step with probability `sampleRate` (the run's Poisson rate), excluded ones never.
 */
export type CanaryStatistic = 'sum' | 'sq-diff' | 'spike-llr';

/** Largest sampling rate at which the spike score is used (a 5-step window rarely holds two inclusions). */
export const SPIKE_MAX_SAMPLE_RATE = 0.05;

/**
 * The score statistic for a run that declares noise multiplier σ and samples at rate q (public
 * facts, see the header comment). Without q (the old signature) the high-q statistics are chosen.
 */
export function statisticFor(noiseMultiplier: number, sampleRate?: number): CanaryStatistic {
  if (sampleRate !== undefined && sampleRate <= SPIKE_MAX_SAMPLE_RATE) return 'spike-llr';
  return noiseMultiplier < 0.5 ? 'sq-diff' : 'sum';
}

/** What the auditor fixes before the run: statistic and guesses (public facts only). */
export interface CanaryAuditPlan {
  statistic: CanaryStatistic;
  strategy: GuessStrategy;
  /** Expected number of included canaries sampled at least once: (m/2)·(1 − (1 − q)^T). */
  expectedDetectable: number;
}

/**
 * Pre-registered audit plan from public facts (m, q, planned steps T, declared σ).
 * Small q: "in" guesses only, k₊ a fraction of D = (m/2)(1 − (1 − q)^T). A run that declares
 * σ < 0.5 claims little, so the only question is whether it leaks like a non-private run: one test
 * at the full level with k₊ = 0.75·D (Bonferroni over several choices would cost the bound ≈ 0.3
 * exactly where it is capped by k₊: with m = 1000, D ≈ 317, perfect guesses give 4.3 at β = 0.05).
 * Otherwise three choices k₊ ∈ {0.05, 0.25, 0.75}·D at β/3: small k₊ has power at moderate leaks,
 * 0.75·D still catches a run that claims noise but adds none. High q keeps the original grid.
 */
export function canaryAuditPlan(o: { m: number; sampleRate: number; steps: number; noiseMultiplier: number }): CanaryAuditPlan {
  const statistic = statisticFor(o.noiseMultiplier, o.sampleRate);
  const expectedDetectable = (o.m / 2) * (1 - Math.pow(1 - o.sampleRate, o.steps));
  const k = (f: number): number => Math.max(1, Math.min(o.m, Math.round(f * expectedDetectable)));
  if (statistic !== 'spike-llr') return { statistic, strategy: { kind: 'bonferroni' }, expectedDetectable };
  const strategy: GuessStrategy =
    o.noiseMultiplier < 0.5
      ? { kind: 'fixed', kPlus: k(0.75), kMinus: 0 }
      : { kind: 'bonferroni', kPlusFractions: [0.05, 0.25, 0.75].map((f) => k(f) / o.m), kMinusFractions: [0] };
  return { statistic, strategy, expectedDetectable };
}

/** Window of the running median that detrends a canary's series (odd). */
const SPIKE_WINDOW = 5;
/** Smallest noise scale τ (in units of C): a coordinate no data example touches has τ = 0. */
const SPIKE_MIN_SCALE = 0.05;

function median(a: Float64Array | number[]): number {
  const s = Float64Array.from(a).sort();
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/**
 * The spike log-likelihood-ratio score of one canary's series d_0..d_{T−1} (units of C) at
 * sampling rate q: detrend by a running median, estimate τ by the MAD of the residuals, sum
 * log(1 − q + q·exp((r − ½)/τ²)) over steps (log-sum-exp form, no overflow).
 */
export function spikeLlrScore(series: ArrayLike<number>, sampleRate: number): number {
  const T = series.length;
  if (T === 0) return 0;
  const h = (SPIKE_WINDOW - 1) / 2;
  const resid = new Float64Array(T);
  const win: number[] = [];
  for (let t = 0; t < T; t++) {
    win.length = 0;
    for (let u = Math.max(0, t - h); u <= Math.min(T - 1, t + h); u++) win.push(series[u]!);
    resid[t] = series[t]! - median(win);
  }
  const mid = median(resid);
  const dev = resid.map((r) => Math.abs(r - mid));
  const tau = Math.max(1.4826 * median(dev), SPIKE_MIN_SCALE);
  const inv = 1 / (tau * tau);
  const l0 = Math.log1p(-sampleRate);
  const l1 = Math.log(sampleRate);
  let s = 0;
  for (let t = 0; t < T; t++) {
    const a = l1 + (resid[t]! - 0.5) * inv;
    s += a > l0 ? a + Math.log1p(Math.exp(l0 - a)) : l0 + Math.log1p(Math.exp(a - l0));
  }
  return s;
}

export function makeDiracCanaries(m: number, sampleRate: number, rng: RandomSource, statistic: CanaryStatistic = 'sum'): GradientCanarySet {
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${sampleRate}`);
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const coordinates: number[] = [];
  const scores = new Float64Array(m);
  const prev = new Float64Array(m);
  /** Per-step dots (spike-llr needs the whole series of every canary). */
  const history: Float32Array[] = [];
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
      if (statistic === 'spike-llr') {
        history.push(Float32Array.from(dots));
      } else if (statistic === 'sum') {
        for (let j = 0; j < m; j++) scores[j]! += dots[j]!;
      } else if (steps > 0) {
        for (let j = 0; j < m; j++) scores[j]! += Math.min((dots[j]! - prev[j]!) ** 2, 1.5);
      }
      for (let j = 0; j < m; j++) prev[j] = dots[j]!;
      steps++;
    },
  };
  const spikeScores = (): number[] => {
    const series = new Float64Array(history.length);
    return Array.from({ length: m }, (_, j) => {
      history.forEach((row, t) => (series[t] = row[j]!));
      return spikeLlrScore(series, sampleRate);
    });
  };
  return { hook, included, coordinates, scores: () => (statistic === 'spike-llr' ? spikeScores() : Array.from(scores)), steps: () => steps };
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
