/**
 * Statistics of privacy audits: the one-run ε lower bound of Steinke, Nasr & Jagielski (2023,
 * "Privacy auditing with one (1) training run", arXiv 2305.08846), ROC curves, AUC and TPR at low FPR.
 *
 * Setting of the one-run audit: m canaries, each included in the private input independently with
 * probability ½ (S_i ∈ {−1, +1}). The auditor scores every canary and guesses "in" for the k₊
 * highest scores, "out" for the k₋ lowest, and abstains on the rest (r = k₊ + k₋ guesses). If the
 * mechanism is (ε, δ)-DP then the number W of correct guesses is stochastically dominated by
 * Binomial(r, e^ε/(1+e^ε)) up to a δ-dependent slack (their Theorem 3 / Proposition 5):
 *
 *   P[W ≥ v] ≤ P[Binomial(r, q) ≥ v] + 2·m·δ·α,   q = e^ε/(1+e^ε),
 *   α = max_{1≤i≤v} (1/i)·P[v > Binomial(r, q) ≥ v − i].
 *
 * The lower bound is the largest ε for which that p-value is still below β = 1 − confidence: any
 * smaller ε is rejected at level β, so the mechanism is (with confidence 1−β) not (ε', δ)-DP for any
 * ε' up to it.
 *
 * Choosing (k₊, k₋) after seeing the scores would invalidate the test, so we either use a fixed,
 * pre-registered choice, or a fixed grid of G choices each tested at level β/G and report the
 * largest bound (Bonferroni union bound: the probability that any of the G tests rejects a true
 * null is ≤ β). The grid is fixed before the scores are seen, so the reported bound is valid.
 */

const logFactorialCache: number[] = [0];

/** ln(n!) exactly summed (n ≤ a few 10⁵ in practice; cached). */
export function logFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`logFactorial: n must be a non-negative integer, got ${n}`);
  for (let k = logFactorialCache.length; k <= n; k++) logFactorialCache.push(logFactorialCache[k - 1]! + Math.log(k));
  return logFactorialCache[n]!;
}

/** ln P[Binomial(n, p) = k]. */
export function binomialLogPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return -Infinity;
  if (p <= 0) return k === 0 ? 0 : -Infinity;
  if (p >= 1) return k === n ? 0 : -Infinity;
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k) + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/** P[Binomial(n, p) ≥ k] (upper tail including k), summed in log space from the mode outwards. */
export function binomialSurvival(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  // Sum terms k..n; they are unimodal, so log-sum-exp with the max term is accurate.
  let maxLog = -Infinity;
  const logs: number[] = [];
  for (let j = k; j <= n; j++) {
    const l = binomialLogPmf(j, n, p);
    logs.push(l);
    if (l > maxLog) maxLog = l;
  }
  if (maxLog === -Infinity) return 0;
  let s = 0;
  for (const l of logs) s += Math.exp(l - maxLog);
  return Math.min(1, Math.exp(maxLog) * s);
}

/**
 * p-value of observing ≥ v correct guesses out of r (among m canaries) if the mechanism were
 * (ε, δ)-DP: Steinke–Nasr–Jagielski's bound, including the δ term.
 */
export function oneRunPValue(m: number, r: number, v: number, epsilon: number, delta: number): number {
  if (!(Number.isInteger(m) && Number.isInteger(r) && Number.isInteger(v) && 0 <= v && v <= r && r <= m)) {
    throw new RangeError(`oneRunPValue: need integers 0 ≤ v ≤ r ≤ m, got m=${m} r=${r} v=${v}`);
  }
  if (!(epsilon >= 0)) throw new RangeError(`oneRunPValue: epsilon must be ≥ 0, got ${epsilon}`);
  if (!(delta >= 0 && delta <= 1)) throw new RangeError(`oneRunPValue: delta must be in [0, 1], got ${delta}`);
  const q = 1 / (1 + Math.exp(-epsilon)); // accuracy of ε-DP randomised response
  const tail = binomialSurvival(v, r, q);
  if (delta === 0) return Math.min(1, tail);
  let alpha = 0;
  let cum = 0; // P[v > Binomial(r, q) ≥ v − i]
  for (let i = 1; i <= v; i++) {
    cum += Math.exp(binomialLogPmf(v - i, r, q));
    if (cum / i > alpha) alpha = cum / i;
  }
  return Math.min(1, tail + 2 * m * delta * alpha);
}

/**
 * Largest ε such that v correct out of r guesses is inconsistent with (ε, δ)-DP at level β
 * (p-value < β); 0 when even ε = 0 cannot be rejected. Bisection to 1e-6 (p-value is monotone in ε).
 */
export function oneRunEpsilonLowerBound(m: number, r: number, v: number, delta: number, beta: number): number {
  if (!(beta > 0 && beta < 1)) throw new RangeError(`beta (1 − confidence) must be in (0, 1), got ${beta}`);
  if (r === 0 || oneRunPValue(m, r, v, 0, delta) >= beta) return 0;
  let lo = 0;
  let hi = 1;
  while (oneRunPValue(m, r, v, hi, delta) < beta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e3) return lo; // cannot happen for finite r (q^r > 0), guard anyway
  }
  while (hi - lo > 1e-6) {
    const mid = (lo + hi) / 2;
    if (oneRunPValue(m, r, v, mid, delta) < beta) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** A guess strategy: how many top scores guess "in" (k₊) and bottom scores guess "out" (k₋). */
export interface GuessChoice {
  kPlus: number;
  kMinus: number;
}

export type GuessStrategy =
  /** One pre-registered choice, tested at the full level β. */
  | { kind: 'fixed'; kPlus: number; kMinus: number }
  /** A fixed grid (fractions of m), each tested at β/G; the maximum bound is reported. */
  | { kind: 'bonferroni'; kPlusFractions?: number[]; kMinusFractions?: number[] };

/**
 * Default grid: 6 × 5 = 30 choices (each tested at β/30), fixed before any scores are seen. Small
 * k₊ suits strongly private runs (only the few most confident guesses beat chance), k₊ + k₋ up to
 * 0.8·m suits leaky runs; guesses never go beyond 40% per side because only ~50% of the canaries
 * are in each class.
 */
export const DEFAULT_KPLUS_FRACTIONS = [0.01, 0.03, 0.1, 0.2, 0.3, 0.4];
export const DEFAULT_KMINUS_FRACTIONS = [0, 0.1, 0.2, 0.3, 0.4];

export interface OneRunAuditResult {
  /** Largest valid ε lower bound at the stated confidence. */
  epsilonLowerBound: number;
  confidence: number;
  delta: number;
  m: number;
  /** The choice that attains the bound, with its counts. */
  best: GuessChoice & { r: number; v: number; bound: number };
  /** Number of choices tested (Bonferroni factor). */
  tests: number;
  strategy: GuessStrategy['kind'];
}

function validateScores(scores: ArrayLike<number>, included: ArrayLike<boolean | number>): void {
  if (scores.length !== included.length) throw new RangeError(`scores (${scores.length}) and inclusion labels (${included.length}) differ in length`);
  if (scores.length === 0) throw new RangeError('no canaries to audit');
  for (let i = 0; i < scores.length; i++) if (Number.isNaN(scores[i]!)) throw new RangeError(`score ${i} is NaN`);
}

/** Canary indices ordered by score, highest first; ties keep index order (independent of labels). */
function orderByScore(scores: ArrayLike<number>): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx;
}

/**
 * One-run audit: the ε lower bound from canary scores (higher = more likely included) and the true
 * inclusion bits. The guess strategy never looks at the labels; the labels only count correct guesses.
 */
export function oneRunAudit(
  scores: ArrayLike<number>,
  included: ArrayLike<boolean | number>,
  opts: { delta: number; confidence?: number; strategy?: GuessStrategy },
): OneRunAuditResult {
  validateScores(scores, included);
  const confidence = opts.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  const delta = opts.delta;
  if (!(delta >= 0 && delta < 1)) throw new RangeError(`delta must be in [0, 1), got ${delta}`);
  const m = scores.length;
  const order = orderByScore(scores);
  // prefix counts: inTop[k] = # included among the k highest; outBottom[k] = # excluded among the k lowest
  const inTop = new Int32Array(m + 1);
  const outBottom = new Int32Array(m + 1);
  for (let k = 0; k < m; k++) {
    inTop[k + 1] = inTop[k]! + (included[order[k]!] ? 1 : 0);
    outBottom[k + 1] = outBottom[k]! + (included[order[m - 1 - k]!] ? 0 : 1);
  }
  const strategy: GuessStrategy = opts.strategy ?? { kind: 'bonferroni' };
  let choices: GuessChoice[];
  if (strategy.kind === 'fixed') {
    choices = [{ kPlus: strategy.kPlus, kMinus: strategy.kMinus }];
  } else {
    const plus = strategy.kPlusFractions ?? DEFAULT_KPLUS_FRACTIONS;
    const minus = strategy.kMinusFractions ?? DEFAULT_KMINUS_FRACTIONS;
    const seen = new Set<string>();
    choices = [];
    for (const fp of plus) {
      for (const fm of minus) {
        const c = { kPlus: Math.round(fp * m), kMinus: Math.round(fm * m) };
        if (c.kPlus + c.kMinus > m) continue;
        const key = `${c.kPlus},${c.kMinus}`;
        if (!seen.has(key)) {
          seen.add(key);
          choices.push(c);
        }
      }
    }
  }
  for (const c of choices) {
    if (!(Number.isInteger(c.kPlus) && Number.isInteger(c.kMinus) && c.kPlus >= 0 && c.kMinus >= 0 && c.kPlus + c.kMinus <= m)) {
      throw new RangeError(`invalid guess choice k+=${c.kPlus} k-=${c.kMinus} for m=${m}`);
    }
  }
  const beta = (1 - confidence) / choices.length;
  let best: OneRunAuditResult['best'] = { kPlus: 0, kMinus: 0, r: 0, v: 0, bound: 0 };
  for (const c of choices) {
    const r = c.kPlus + c.kMinus;
    const v = inTop[c.kPlus]! + outBottom[c.kMinus]!;
    const bound = oneRunEpsilonLowerBound(m, r, v, delta, beta);
    if (bound > best.bound || (best.r === 0 && r > 0)) best = { ...c, r, v, bound };
  }
  return { epsilonLowerBound: best.bound, confidence, delta, m, best, tests: choices.length, strategy: strategy.kind };
}

export interface RocCurve {
  /** Increasing false-positive rates from 0 to 1 (one point per distinct score threshold). */
  fpr: number[];
  tpr: number[];
  /** Area under the curve (ties count ½, i.e. the Mann–Whitney statistic). */
  auc: number;
}

/** ROC of "score ≥ t ⇒ member" over all thresholds t. */
export function rocCurve(scores: ArrayLike<number>, isMember: ArrayLike<boolean | number>): RocCurve {
  validateScores(scores, isMember);
  const order = orderByScore(scores);
  let P = 0;
  for (let i = 0; i < isMember.length; i++) if (isMember[i]) P++;
  const N = scores.length - P;
  if (P === 0 || N === 0) throw new RangeError(`ROC needs members and non-members (got ${P} and ${N})`);
  const fpr = [0];
  const tpr = [0];
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let k = 0; k < order.length; ) {
    const s = scores[order[k]!]!;
    let dtp = 0;
    let dfp = 0;
    while (k < order.length && scores[order[k]!] === s) {
      if (isMember[order[k]!]) dtp++;
      else dfp++;
      k++;
    }
    // trapezoid over a tie group = ties count ½
    auc += (dfp / N) * ((tp + dtp / 2) / P);
    tp += dtp;
    fp += dfp;
    fpr.push(fp / N);
    tpr.push(tp / P);
  }
  return { fpr, tpr, auc };
}

/** Highest TPR reachable at FPR ≤ target (no interpolation: a conservative reading of the curve). */
export function tprAtFpr(roc: Pick<RocCurve, 'fpr' | 'tpr'>, targetFpr: number): number {
  let best = 0;
  for (let i = 0; i < roc.fpr.length; i++) if (roc.fpr[i]! <= targetFpr + 1e-12 && roc.tpr[i]! > best) best = roc.tpr[i]!;
  return best;
}

/** At most `maxPoints` points of a ROC curve (keeps the ends and the low-FPR region). */
export function downsampleRoc(roc: Pick<RocCurve, 'fpr' | 'tpr'>, maxPoints = 200): { fpr: number[]; tpr: number[] } {
  const n = roc.fpr.length;
  if (n <= maxPoints) return { fpr: [...roc.fpr], tpr: [...roc.tpr] };
  const keep = new Set<number>([0, n - 1]);
  // half the points log-spaced in FPR (low-FPR detail), half evenly spaced
  for (let j = 0; j < maxPoints / 2; j++) keep.add(Math.round((j / (maxPoints / 2 - 1)) * (n - 1)));
  const logTargets = maxPoints / 2;
  let i = 0;
  for (let j = 0; j < logTargets; j++) {
    const t = Math.pow(10, -4 + (4 * j) / (logTargets - 1));
    while (i < n - 1 && roc.fpr[i + 1]! <= t) i++;
    keep.add(i);
  }
  const idx = [...keep].sort((a, b) => a - b);
  return { fpr: idx.map((k) => roc.fpr[k]!), tpr: idx.map((k) => roc.tpr[k]!) };
}

/** Summary of an attack's ROC: AUC, TPR at 0.1% and 1% FPR, and a ≤200-point curve. */
export interface AttackMetrics {
  auc: number;
  tprAt0p1: number;
  tprAt1: number;
  roc: { fpr: number[]; tpr: number[] };
}

export function attackMetrics(scores: ArrayLike<number>, isMember: ArrayLike<boolean | number>): AttackMetrics {
  const roc = rocCurve(scores, isMember);
  return { auc: roc.auc, tprAt0p1: tprAtFpr(roc, 0.001), tprAt1: tprAtFpr(roc, 0.01), roc: downsampleRoc(roc) };
}
