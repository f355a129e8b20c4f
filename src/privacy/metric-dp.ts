/**
 * Metric differential privacy (εd-privacy, Chatzikokolakis et al. 2013) as dplens records it.
 *
 * A mechanism M is εd-private for a metric d when Pr[M(x) ∈ S] ≤ e^{ε·d(x, x')} Pr[M(x') ∈ S] for
 * all inputs x, x'. The von Mises–Fisher mechanism on unit vectors (density ∝ exp(κ⟨μ, z⟩)) has
 * log-density ratio κ⟨z, μ − μ'⟩ ≤ κ‖μ − μ'‖₂, so it is εd-private with ε = κ for the chordal
 * distance (Weggenmann & Kerschbaum 2021) and, since ‖μ − μ'‖₂ = 2 sin(θ/2) ≤ θ, for the angular
 * distance θ ∈ [0, π] too — the `'angular'` metric recorded here.
 *
 * Composition (Faustini et al. 2023, "Directional Privacy for Deep Learning", DirDP-SGD: sequential
 * composition of εd-privacy): T releases with ε₁ … ε_T over the same metric are (Σ εᵢ)d-private.
 * DirDP-SGD perturbs each per-sample clipped gradient direction with VMF(κ) at every step, so a run
 * of T steps is (T·κ)d-private with respect to replacing one record, d being the (largest per-step)
 * angle between the two records' gradient directions. No amplification by subsampling is claimed
 * (the paper proves none for εd-privacy): a record is charged for every step.
 *
 * This is NOT an (ε, δ) guarantee and dplens never converts it into one: the RDP and PLD
 * accountants refuse `metricDp` events; `MetricDpTally` composes them; `withMetricDp` wraps an
 * (ε, δ) accountant so that a ledger holding metric-DP releases reports them in their own terms
 * and states ε = ∞ for the (ε, δ) part it cannot cover.
 */
import type { DpEvent, MetricDpEvent } from './events.js';
import { describeEvent, describeRelation, relationProblem } from './events.js';
import type { Accountant, AccountantKind, EpsilonDetails } from './rdp-accountant.js';
import { AccountingError, RelationError } from './rdp-accountant.js';

export type Metric = MetricDpEvent['metric'];

/** What a run folder's privacy claim is (the `guarantee` key of `dplens train --json`). */
export type Guarantee =
  | { kind: 'approxDP'; epsilon: number; delta: number }
  | { kind: 'metricDP'; epsilon: number; metric: Metric }
  | { kind: 'none'; reason: string };

/** Plain words for reports and `budget show`. */
export function describeMetricDp(epsilon: number, metric: Metric): string {
  return `metric DP (εd-privacy) with ε = ${fmt(epsilon)} per radian of ${metric} distance: for two training sets that differ by replacing one record, the probability of any outcome changes by at most a factor e^(ε·θ), θ being the largest angle between the two records' clipped gradient directions (at worst θ = π). This is not an (ε, δ)-DP guarantee and is not converted into one.`;
}

/** True when `e` contains a metric-DP release anywhere. */
export function containsMetricDp(e: DpEvent): boolean {
  switch (e.kind) {
    case 'metricDp':
      return true;
    case 'poissonSampled':
    case 'sampledWithoutReplacement':
    case 'selfComposed':
      return containsMetricDp(e.event);
    case 'composed':
      return e.events.some(containsMetricDp);
    default:
      return false;
  }
}

/**
 * Sequential composition of metric-DP releases: ε's add up per metric. Accepts metricDp,
 * selfComposed / composed of them and noOp; refuses anything else (a sampled metric-DP release has
 * no amplification theorem here; an (ε, δ) event does not belong in this tally).
 */
export class MetricDpTally {
  private readonly sums = new Map<Metric, number>();
  private releases = 0;

  /** Σ ε of `e` × count per metric, or throws AccountingError. */
  static price(e: DpEvent, count = 1, out = new Map<Metric, number>()): Map<Metric, number> {
    switch (e.kind) {
      case 'metricDp':
        out.set(e.metric, (out.get(e.metric) ?? 0) + count * e.epsilon);
        return out;
      case 'selfComposed':
        return MetricDpTally.price(e.event, count * e.count, out);
      case 'composed':
        for (const x of e.events) MetricDpTally.price(x, count, out);
        return out;
      case 'noOp':
        return out;
      default:
        throw new AccountingError(`the metric-DP tally composes only metric-DP releases (as DirDP-SGD proves: sequential composition, no subsampling amplification), not ${describeEvent(e)}`);
    }
  }

  supports(e: DpEvent): boolean {
    try {
      MetricDpTally.price(e);
      return true;
    } catch (err) {
      if (err instanceof AccountingError) return false;
      throw err;
    }
  }

  compose(e: DpEvent, count = 1): this {
    const add = MetricDpTally.price(e, count);
    for (const [m, v] of add) this.sums.set(m, (this.sums.get(m) ?? 0) + v);
    this.releases += count;
    return this;
  }

  /** Number of composed metric-DP events (entries × count). */
  get count(): number {
    return this.releases;
  }

  /** Composed ε per metric (undefined when nothing was composed). */
  spent(): { epsilon: number; metric: Metric } | undefined {
    if (this.releases === 0) return undefined;
    // one metric exists today ('angular'); with more, each would be reported on its own
    return { epsilon: this.sums.get('angular') ?? 0, metric: 'angular' };
  }

  /** ε per metric if `e` were composed now. */
  epsilonIf(e: DpEvent, count = 1): number {
    const add = MetricDpTally.price(e, count);
    let total = 0;
    for (const [m, v] of add) total = Math.max(total, (this.sums.get(m) ?? 0) + v);
    return total;
  }
}

/**
 * An (ε, δ) accountant extended with a metric-DP tally. Events without metric-DP parts go to the
 * inner accountant unchanged; metric-DP events (under replace-one only) go to the tally. Once any
 * metric-DP release is composed, `getEpsilon` is ∞: the (ε, δ) statement does not cover it (the
 * metric-DP guarantee is read from `metricSpent()`). An event mixing both kinds is refused.
 */
export class MetricAwareAccountant implements Accountant {
  readonly metric = new MetricDpTally();
  constructor(readonly inner: Accountant) {}
  get kind(): AccountantKind {
    return this.inner.kind;
  }
  get relation() {
    return this.inner.relation;
  }
  private route(e: DpEvent): 'metric' | 'inner' {
    if (!containsMetricDp(e)) return 'inner';
    const p = relationProblem(e, this.relation);
    if (p) throw new RelationError(`ledger built for ${this.relation} (${describeRelation(this.relation)}) refuses this event: ${p}`);
    if (!this.metric.supports(e)) throw new AccountingError(`${describeEvent(e)} mixes metric-DP and (ε, δ) releases in one event; record them separately`);
    return 'metric';
  }
  supports(e: DpEvent): boolean {
    try {
      return this.route(e) === 'metric' || this.inner.supports(e);
    } catch (err) {
      if (err instanceof AccountingError) return false;
      throw err;
    }
  }
  compose(e: DpEvent, count = 1): this {
    if (this.route(e) === 'metric') this.metric.compose(e, count);
    else this.inner.compose(e, count);
    return this;
  }
  getEpsilon(delta: number): number {
    return this.metric.count > 0 ? Infinity : this.inner.getEpsilon(delta);
  }
  getEpsilonDetails(delta: number): EpsilonDetails {
    if (this.metric.count === 0) return this.inner.getEpsilonDetails(delta);
    const m = this.metric.spent()!;
    return { epsilon: Infinity, warnings: [`no (ε, δ) guarantee is stated: ${this.metric.count} metric-DP release(s) recorded (metric DP, ε = ${fmt(m.epsilon)} per radian of ${m.metric} distance, replace-one); they are not converted to (ε, δ)`], accountant: this.kind, delta };
  }
  epsilonIf(e: DpEvent, delta: number, count = 1): number {
    if (this.route(e) === 'metric' || this.metric.count > 0) return Infinity;
    return this.inner.epsilonIf(e, delta, count);
  }
  /** The metric-DP guarantee of what was composed (undefined: no metric-DP release). */
  metricSpent(): { epsilon: number; metric: Metric } | undefined {
    return this.metric.spent();
  }
}

/** Wraps an (ε, δ) accountant so it records metric-DP releases in their own terms (see MetricAwareAccountant). */
export function withMetricDp(inner: Accountant): MetricAwareAccountant {
  return inner instanceof MetricAwareAccountant ? inner : new MetricAwareAccountant(inner);
}

/**
 * The guarantee of what an accountant composed: metric DP when it holds metric-DP releases (and
 * nothing else non-private), else (ε, δ) at `delta`, else none (a non-private release: ε = ∞).
 */
export function guaranteeOf(acc: Accountant, delta: number): Guarantee {
  const m = acc instanceof MetricAwareAccountant ? acc.metricSpent() : undefined;
  if (m) {
    const innerEps = (acc as MetricAwareAccountant).inner.getEpsilon(delta);
    if (Number.isFinite(innerEps)) return { kind: 'metricDP', epsilon: m.epsilon, metric: m.metric };
    return { kind: 'none', reason: 'a non-private release was recorded next to the metric-DP ones' };
  }
  const eps = acc.getEpsilon(delta);
  return Number.isFinite(eps) ? { kind: 'approxDP', epsilon: eps, delta } : { kind: 'none', reason: 'a non-private release was recorded (ε = ∞)' };
}

/**
 * Mean resultant length A_d(κ) = E⟨X, μ⟩ = I_{d/2}(κ)/I_{d/2−1}(κ) of VMF(μ, κ) on S^{d−1}
 * (Mardia & Jupp 2000, §9.3.2), by the backward recurrence of the Bessel-ratio continued fraction
 * r_ν = 1/(2ν/κ + r_{ν+1}), started far above ν (N ≥ ν + κ + 400) from the approximation
 * r_N ≈ κ/(N + ½ + √((N + ½)² + κ²)) (Amos 1974); the recurrence is stable downwards.
 */
export function vmfMeanResultantLength(d: number, kappa: number): number {
  if (!(Number.isInteger(d) && d >= 2)) throw new RangeError(`dimension must be an integer >= 2, got ${d}`);
  if (!(kappa >= 0)) throw new RangeError(`kappa must be >= 0, got ${kappa}`);
  if (kappa === 0) return 0;
  if (kappa === Infinity) return 1;
  const nu = d / 2;
  const N = Math.ceil(nu + kappa) + 400;
  const top = nu + N;
  let r = kappa / (top + 0.5 + Math.sqrt((top + 0.5) * (top + 0.5) + kappa * kappa));
  for (let k = N - 1; k >= 0; k--) {
    const v = nu + k;
    r = 1 / ((2 * v) / kappa + r);
  }
  return r;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(+x.toPrecision(6)) : String(x);
}
