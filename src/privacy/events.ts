/**
 * DP events: immutable, JSON-serialisable descriptions of what a release costs, in the spirit of
 * Google's dp_accounting. Every private release in dplens is described by one of these before its
 * output is used, recorded in the ledger, and priced by an accountant (RDP or PLD).
 *
 * Conventions:
 *  - `gaussian.noiseMultiplier` = noise std / L2 sensitivity (so the RDP is alpha / (2 z^2)).
 *  - `laplace.noiseMultiplier` = Laplace scale b / L1 sensitivity.
 *  - Neighbouring relation: add/remove one record for Poisson sampling (as in Opacus and
 *    dp_accounting); replace-one for sampling without replacement (Wang, Balle & Kasiviswanathan 2019).
 */

/**
 * The neighbouring relation a privacy proof uses (dp_accounting's NeighboringRelation):
 *  - 'add-remove': D and D' differ by adding or removing one record (n is private);
 *  - 'replace-one': D and D' have the same size and differ in one record (n is public).
 * An accountant is built for one relation and refuses events recorded under another.
 */
export type NeighbouringRelation = 'add-remove' | 'replace-one';

export const NEIGHBOURING_RELATIONS: readonly NeighbouringRelation[] = ['add-remove', 'replace-one'];

/**
 * The relation an accountant or ledger prices under. 'unrecorded' exists only for ledgers written
 * before relations were recorded: they are read and priced as before (no relation check), and every
 * output labels them as such instead of asserting a relation the run may not have.
 */
export type AccountingRelation = NeighbouringRelation | 'unrecorded';

export function isNeighbouringRelation(x: unknown): x is NeighbouringRelation {
  return x === 'add-remove' || x === 'replace-one';
}

/** Plain-words description of a relation, for reports and `budget show`. */
export function describeRelation(r: AccountingRelation | undefined): string {
  switch (r) {
    case 'add-remove':
      return 'adding or removing one record of the training data';
    case 'replace-one':
      return 'replacing one record of the training data with another (the number of records, n, is treated as public)';
    case 'unrecorded':
    case undefined:
      return 'not recorded (legacy ledger): the neighbouring relation was not written when this ledger was created; priced as before, without a relation check';
    default:
      return assertNever(r, 'neighbouring relation');
  }
}

/** Exhaustiveness guard for switches over closed unions: a new member is a compile error, a bad value read from disk throws. */
export function assertNever(x: never, what: string): never {
  const v: unknown = x !== null && typeof x === 'object' && 'kind' in x ? (x as { kind: unknown }).kind : x;
  throw new DpEventError(`unknown ${what} ${JSON.stringify(v)}`);
}

export interface GaussianEvent {
  readonly kind: 'gaussian';
  /** std / L2-sensitivity. 0 means no noise (epsilon = infinity). */
  readonly noiseMultiplier: number;
  /** Provenance only (the accounting uses noiseMultiplier): the raw std and sensitivity when given. */
  readonly sigma?: number;
  readonly l2Sensitivity?: number;
}

export interface LaplaceEvent {
  readonly kind: 'laplace';
  /** scale / L1-sensitivity. */
  readonly noiseMultiplier: number;
}

export interface PoissonSampledEvent {
  readonly kind: 'poissonSampled';
  readonly samplingProbability: number;
  readonly event: DpEvent;
}

export interface SampledWithoutReplacementEvent {
  readonly kind: 'sampledWithoutReplacement';
  readonly sourceDatasetSize: number;
  readonly sampleSize: number;
  readonly event: DpEvent;
}

export interface SelfComposedEvent {
  readonly kind: 'selfComposed';
  readonly event: DpEvent;
  readonly count: number;
}

export interface ComposedEvent {
  readonly kind: 'composed';
  readonly events: readonly DpEvent[];
}

/**
 * One DataLens TopAgg query: N teachers each vote a {-1,0,+1} vector with at most k non-zeros,
 * the sum gets N(0, sigma^2) per coordinate. L2 sensitivity 2*sqrt(k) => RDP 2 k alpha / sigma^2.
 * DataLens's own threshold (|v~| > beta N) is post-processing of the noised vector and costs nothing.
 * `threshold.sigma1`, when > 0, describes an extra *separately noised* threshold test on the
 * max |vote count| (sensitivity 2) which costs RDP 2 alpha / sigma1^2 per query.
 */
export interface TopAggEvent {
  readonly kind: 'topAgg';
  readonly k: number;
  readonly sigma: number;
  readonly voters: number;
  readonly threshold?: { readonly sigma1?: number; readonly beta: number };
}

/**
 * One (Confident-)GNMax query (PATE 2018; G-PATE per projected coordinate): vote histogram,
 * threshold test max(h) + N(0, sigma1^2) >= T (when thresholdSigma is given; charged always),
 * then argmax(h + N(0, sigma^2)) (charged only when `answered`).
 * Data-independent cost: alpha/(2 sigma1^2) + [answered] alpha/sigma^2.
 * `dataDependent` carries the PATE log q / log Pr[answered] computed on the TRUE votes. Those bounds
 * are themselves functions of private data; the accountants ignore them unless explicitly built
 * with `{ dataDependent: true }` (see pate.ts), and report a warning when they do.
 */
export interface GnmaxEvent {
  readonly kind: 'gnmax';
  readonly sigma: number;
  readonly thresholdSigma?: number;
  readonly answered: boolean;
  readonly dataDependent?: {
    /** log of the union bound on Pr[answer != argmax of true votes] (compute_logq_gaussian). */
    readonly logq?: number;
    /** log Pr[threshold test passes] on the true votes (compute_logpr_answered). */
    readonly logPrAnswered?: number;
  };
}

/** k-ary randomized response with parameter epsilon (keep w.p. e^eps/(e^eps+k-1)). */
export interface RandomizedResponseEvent {
  readonly kind: 'randomizedResponse';
  readonly epsilon: number;
  readonly numCategories: number;
}

/** Release with no privacy guarantee (e.g. sigma = 0). Accountants return epsilon = Infinity. */
export interface NonPrivateEvent {
  readonly kind: 'nonPrivate';
  readonly reason: string;
}

/** A release no accountant knows how to price. Accountants throw. */
export interface UnsupportedEvent {
  readonly kind: 'unsupported';
  readonly reason: string;
}

/** Costs nothing (e.g. public data, post-processing). */
export interface NoOpEvent {
  readonly kind: 'noOp';
}

/**
 * One metric-DP (εd-privacy) release, e.g. a von Mises–Fisher perturbation of a direction
 * (metric-dp.ts). It is NOT (ε, δ)-DP in dplens's accounting: the RDP and PLD accountants refuse
 * it, and only the metric-DP tally (metric-dp.ts) composes it (ε's add up; Chatzikokolakis et al.
 * 2013). Proved for replace-one only: `epsilon` is per unit of `metric` distance between the
 * replaced record's input and its replacement.
 */
export interface MetricDpEvent {
  readonly kind: 'metricDp';
  /** ε per unit of distance for ONE release (VMF: κ). */
  readonly epsilon: number;
  /** 'angular': angle in radians between unit directions (≥ their chordal distance). */
  readonly metric: 'angular';
  /** Mechanism name, for descriptions ('vmf'). */
  readonly mechanism: string;
}

/**
 * One propose-test-release round with a Gaussian release (Wang et al. 2022; priced in ptr.ts):
 * pass iff γ + Lap(1/testEpsilon) > threshold (γ: distance to instability, sensitivity 1, capped at
 * kMax), then release f + N(0, (noiseMultiplier·β)²); f's global L2 sensitivity is gsRatio·β.
 * Analysed under add/remove (γ has add/remove sensitivity 1).
 */
export interface PtrEvent {
  readonly kind: 'ptr';
  readonly testEpsilon: number;
  readonly threshold: number;
  readonly noiseMultiplier: number;
  readonly gsRatio: number;
  readonly kMax: number;
}

export type DpEvent =
  | GaussianEvent
  | LaplaceEvent
  | PoissonSampledEvent
  | SampledWithoutReplacementEvent
  | SelfComposedEvent
  | ComposedEvent
  | TopAggEvent
  | GnmaxEvent
  | RandomizedResponseEvent
  | NonPrivateEvent
  | UnsupportedEvent
  | NoOpEvent
  | MetricDpEvent
  | PtrEvent;

export type DpEventKind = DpEvent['kind'];

export class DpEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DpEventError';
  }
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new DpEventError(msg);
}
function nonNeg(x: number, what: string): void {
  check(typeof x === 'number' && Number.isFinite(x) && x >= 0, `${what} must be a finite number >= 0, got ${x}`);
}
function positive(x: number, what: string): void {
  check(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what} must be a finite number > 0, got ${x}`);
}
function freeze<T extends object>(o: T): T {
  return Object.freeze(o);
}

/** Constructors (validate, then freeze). */
export const DpEvents = {
  gaussian(noiseMultiplier: number): GaussianEvent {
    nonNeg(noiseMultiplier, 'gaussian noiseMultiplier');
    return freeze({ kind: 'gaussian', noiseMultiplier });
  },
  gaussianWithSensitivity(sigma: number, l2Sensitivity: number): GaussianEvent {
    nonNeg(sigma, 'gaussian sigma');
    positive(l2Sensitivity, 'gaussian l2Sensitivity');
    return freeze({ kind: 'gaussian', noiseMultiplier: sigma / l2Sensitivity, sigma, l2Sensitivity });
  },
  laplace(noiseMultiplier: number): LaplaceEvent {
    nonNeg(noiseMultiplier, 'laplace noiseMultiplier');
    return freeze({ kind: 'laplace', noiseMultiplier });
  },
  poissonSampled(samplingProbability: number, event: DpEvent): PoissonSampledEvent {
    check(Number.isFinite(samplingProbability) && samplingProbability >= 0 && samplingProbability <= 1, `sampling probability must be in [0, 1], got ${samplingProbability}`);
    return freeze({ kind: 'poissonSampled', samplingProbability, event });
  },
  sampledWithoutReplacement(sourceDatasetSize: number, sampleSize: number, event: DpEvent): SampledWithoutReplacementEvent {
    check(Number.isInteger(sourceDatasetSize) && sourceDatasetSize > 0, `sourceDatasetSize must be a positive integer, got ${sourceDatasetSize}`);
    check(Number.isInteger(sampleSize) && sampleSize >= 0 && sampleSize <= sourceDatasetSize, `sampleSize must be an integer in [0, ${sourceDatasetSize}], got ${sampleSize}`);
    return freeze({ kind: 'sampledWithoutReplacement', sourceDatasetSize, sampleSize, event });
  },
  selfComposed(event: DpEvent, count: number): SelfComposedEvent {
    check(Number.isInteger(count) && count >= 0, `selfComposed count must be a non-negative integer, got ${count}`);
    return freeze({ kind: 'selfComposed', event, count });
  },
  composed(events: readonly DpEvent[]): ComposedEvent {
    check(Array.isArray(events), 'composed needs an array of events');
    return freeze({ kind: 'composed', events: Object.freeze([...events]) });
  },
  topAgg(o: { k: number; sigma: number; voters: number; threshold?: { sigma1?: number; beta: number } }): TopAggEvent {
    check(Number.isInteger(o.k) && o.k > 0, `topAgg k must be a positive integer, got ${o.k}`);
    nonNeg(o.sigma, 'topAgg sigma');
    check(Number.isInteger(o.voters) && o.voters > 0, `topAgg voters must be a positive integer, got ${o.voters}`);
    let threshold: TopAggEvent['threshold'];
    if (o.threshold) {
      nonNeg(o.threshold.beta, 'topAgg threshold beta');
      if (o.threshold.sigma1 !== undefined) nonNeg(o.threshold.sigma1, 'topAgg threshold sigma1');
      threshold = freeze(o.threshold.sigma1 !== undefined ? { sigma1: o.threshold.sigma1, beta: o.threshold.beta } : { beta: o.threshold.beta });
    }
    return freeze(threshold ? { kind: 'topAgg', k: o.k, sigma: o.sigma, voters: o.voters, threshold } : { kind: 'topAgg', k: o.k, sigma: o.sigma, voters: o.voters });
  },
  gnmax(o: { sigma: number; thresholdSigma?: number; answered?: boolean; dataDependent?: { logq?: number; logPrAnswered?: number } }): GnmaxEvent {
    nonNeg(o.sigma, 'gnmax sigma');
    if (o.thresholdSigma !== undefined) nonNeg(o.thresholdSigma, 'gnmax thresholdSigma');
    const ev: { -readonly [K in keyof GnmaxEvent]: GnmaxEvent[K] } = { kind: 'gnmax', sigma: o.sigma, answered: o.answered ?? true };
    if (o.thresholdSigma !== undefined) ev.thresholdSigma = o.thresholdSigma;
    if (o.dataDependent) {
      const dd: { logq?: number; logPrAnswered?: number } = {};
      if (o.dataDependent.logq !== undefined) {
        check(o.dataDependent.logq <= 0, `gnmax logq must be <= 0, got ${o.dataDependent.logq}`);
        dd.logq = o.dataDependent.logq;
      }
      if (o.dataDependent.logPrAnswered !== undefined) {
        check(o.dataDependent.logPrAnswered <= 0, `gnmax logPrAnswered must be <= 0, got ${o.dataDependent.logPrAnswered}`);
        dd.logPrAnswered = o.dataDependent.logPrAnswered;
      }
      ev.dataDependent = freeze(dd);
    }
    return freeze(ev as GnmaxEvent);
  },
  randomizedResponse(epsilon: number, numCategories = 2): RandomizedResponseEvent {
    check(epsilon >= 0 && !Number.isNaN(epsilon), `randomized response epsilon must be >= 0, got ${epsilon}`);
    check(Number.isInteger(numCategories) && numCategories >= 2, `randomized response needs >= 2 categories, got ${numCategories}`);
    return freeze({ kind: 'randomizedResponse', epsilon, numCategories });
  },
  /**
   * Any pure epsilon-DP release (exponential mechanism, report-noisy-max, VMF, snapping Laplace):
   * its privacy profile is dominated by binary randomized response with the same epsilon
   * (Kairouz, Oh & Viswanath 2015), so that is the event recorded.
   */
  pureDp(epsilon: number): RandomizedResponseEvent {
    return DpEvents.randomizedResponse(epsilon, 2);
  },
  nonPrivate(reason: string): NonPrivateEvent {
    return freeze({ kind: 'nonPrivate', reason: String(reason) });
  },
  unsupported(reason: string): UnsupportedEvent {
    return freeze({ kind: 'unsupported', reason: String(reason) });
  },
  noOp(): NoOpEvent {
    return freeze({ kind: 'noOp' });
  },
  /** One propose-test-release round (see PtrEvent; RDP in ptr.ts). */
  ptr(o: { testEpsilon: number; threshold: number; noiseMultiplier: number; gsRatio: number; kMax: number }): PtrEvent {
    positive(o.testEpsilon, 'ptr testEpsilon');
    check(typeof o.threshold === 'number' && Number.isFinite(o.threshold), `ptr threshold must be finite, got ${o.threshold}`);
    nonNeg(o.noiseMultiplier, 'ptr noiseMultiplier');
    check(typeof o.gsRatio === 'number' && Number.isFinite(o.gsRatio) && o.gsRatio >= 1, `ptr gsRatio must be a finite number >= 1, got ${o.gsRatio}`);
    check(Number.isInteger(o.kMax) && o.kMax >= 1, `ptr kMax must be an integer >= 1, got ${o.kMax}`);
    return freeze({ kind: 'ptr', testEpsilon: o.testEpsilon, threshold: o.threshold, noiseMultiplier: o.noiseMultiplier, gsRatio: o.gsRatio, kMax: o.kMax });
  },
  /** A metric-DP release (see MetricDpEvent): never priced as (ε, δ). */
  metricDp(epsilon: number, metric: 'angular', mechanism: string): MetricDpEvent {
    nonNeg(epsilon, 'metricDp epsilon');
    check(metric === 'angular', `metricDp metric must be 'angular', got ${JSON.stringify(metric)}`);
    check(typeof mechanism === 'string' && mechanism !== '', 'metricDp needs a mechanism name');
    return freeze({ kind: 'metricDp', epsilon, metric, mechanism });
  },
};

/** Canonical JSON key of an event (used for caching per-event privacy curves). */
export function eventKey(e: DpEvent): string {
  return JSON.stringify(e);
}

/** Structural validation of an event read back from JSON (e.g. a ledger line). */
export function validateEvent(e: unknown, path = 'event'): DpEvent {
  if (!e || typeof e !== 'object') throw new DpEventError(`${path}: not an object`);
  const o = e as Record<string, any>;
  switch (o.kind) {
    case 'gaussian':
      return o.sigma !== undefined && o.l2Sensitivity !== undefined ? DpEvents.gaussianWithSensitivity(o.sigma, o.l2Sensitivity) : DpEvents.gaussian(o.noiseMultiplier);
    case 'laplace':
      return DpEvents.laplace(o.noiseMultiplier);
    case 'poissonSampled':
      return DpEvents.poissonSampled(o.samplingProbability, validateEvent(o.event, path + '.event'));
    case 'sampledWithoutReplacement':
      return DpEvents.sampledWithoutReplacement(o.sourceDatasetSize, o.sampleSize, validateEvent(o.event, path + '.event'));
    case 'selfComposed':
      return DpEvents.selfComposed(validateEvent(o.event, path + '.event'), o.count);
    case 'composed':
      if (!Array.isArray(o.events)) throw new DpEventError(`${path}.events: not an array`);
      return DpEvents.composed(o.events.map((x: unknown, i: number) => validateEvent(x, `${path}.events[${i}]`)));
    case 'topAgg':
      return DpEvents.topAgg({ k: o.k, sigma: o.sigma, voters: o.voters, threshold: o.threshold });
    case 'gnmax':
      return DpEvents.gnmax({ sigma: o.sigma, thresholdSigma: o.thresholdSigma, answered: o.answered, dataDependent: o.dataDependent });
    case 'randomizedResponse':
      return DpEvents.randomizedResponse(o.epsilon, o.numCategories);
    case 'nonPrivate':
      return DpEvents.nonPrivate(o.reason);
    case 'unsupported':
      return DpEvents.unsupported(o.reason);
    case 'noOp':
      return DpEvents.noOp();
    case 'metricDp':
      return DpEvents.metricDp(o.epsilon, o.metric, o.mechanism);
    case 'ptr':
      return DpEvents.ptr({ testEpsilon: o.testEpsilon, threshold: o.threshold, noiseMultiplier: o.noiseMultiplier, gsRatio: o.gsRatio, kMax: o.kMax });
    default:
      throw new DpEventError(`${path}: unknown event kind ${JSON.stringify(o.kind)}`);
  }
}

/** Short human-readable description, e.g. for `dplens budget show`. */
export function describeEvent(e: DpEvent): string {
  switch (e.kind) {
    case 'gaussian':
      return `Gaussian(z=${e.noiseMultiplier})`;
    case 'laplace':
      return `Laplace(b=${e.noiseMultiplier})`;
    case 'poissonSampled':
      return `PoissonSampled(q=${e.samplingProbability}, ${describeEvent(e.event)})`;
    case 'sampledWithoutReplacement':
      return `SampledWOR(${e.sampleSize}/${e.sourceDatasetSize}, ${describeEvent(e.event)})`;
    case 'selfComposed':
      return `${e.count}x ${describeEvent(e.event)}`;
    case 'composed':
      return `Composed[${e.events.map(describeEvent).join(', ')}]`;
    case 'topAgg':
      return `TopAgg(k=${e.k}, sigma=${e.sigma}, N=${e.voters}${e.threshold?.sigma1 ? `, sigma1=${e.threshold.sigma1}` : ''})`;
    case 'gnmax':
      return `GNMax(sigma=${e.sigma}${e.thresholdSigma !== undefined ? `, sigma1=${e.thresholdSigma}` : ''}${e.answered ? '' : ', unanswered'}${e.dataDependent ? ', data-dependent' : ''})`;
    case 'randomizedResponse':
      return `RR(eps=${e.epsilon}, k=${e.numCategories})`;
    case 'nonPrivate':
      return `NonPrivate(${e.reason})`;
    case 'unsupported':
      return `Unsupported(${e.reason})`;
    case 'noOp':
      return 'NoOp';
    case 'metricDp':
      return `MetricDP(${e.mechanism}, eps=${e.epsilon} per radian, ${e.metric})`;
    case 'ptr':
      return `PTR(eps_test=${e.testEpsilon}, T=${e.threshold}, z=${e.noiseMultiplier}, GS/beta=${e.gsRatio})`;
    default:
      return assertNever(e, 'event kind');
  }
}

/**
 * Why `e` cannot be priced under `relation`, or undefined when it can. Follows dp_accounting:
 * Poisson sampling is analysed under add/remove only, sampling without replacement (fixed batch
 * size) under replace-one only; every other event is priced the same under both (its sensitivity
 * is the caller's statement for the relation). 'unrecorded' (legacy ledgers) accepts everything.
 */
export function relationProblem(e: DpEvent, relation: AccountingRelation): string | undefined {
  if (relation === 'unrecorded') return undefined;
  switch (e.kind) {
    case 'poissonSampled':
      if (relation !== 'add-remove') return `Poisson sampling (${describeEvent(e)}) is only analysed under the add/remove relation, not ${relation}`;
      return relationProblem(e.event, relation);
    case 'sampledWithoutReplacement':
      if (relation !== 'replace-one') return `sampling without replacement (${describeEvent(e)}) is only analysed under the replace-one relation, not ${relation}`;
      return relationProblem(e.event, relation);
    case 'selfComposed':
      return relationProblem(e.event, relation);
    case 'composed':
      for (const sub of e.events) {
        const p = relationProblem(sub, relation);
        if (p) return p;
      }
      return undefined;
    case 'gaussian':
    case 'laplace':
    case 'topAgg':
    case 'gnmax':
    case 'randomizedResponse':
    case 'nonPrivate':
    case 'unsupported':
    case 'noOp':
      return undefined;
    case 'ptr':
      return relation === 'add-remove' ? undefined : `propose-test-release (${describeEvent(e)}) is analysed under add/remove (distance to instability has add/remove sensitivity 1), not ${relation}`;
    case 'metricDp':
      return relation === 'replace-one' ? undefined : `metric DP (${describeEvent(e)}) is proved for replacing one record (distance between the two records' directions), not ${relation}`;
    default:
      return assertNever(e, 'event kind');
  }
}

/** True when some GNMax event inside `e` carries data-dependent statistics. */
export function hasDataDependentStatistics(e: DpEvent): boolean {
  switch (e.kind) {
    case 'gnmax':
      return e.dataDependent !== undefined;
    case 'poissonSampled':
    case 'sampledWithoutReplacement':
    case 'selfComposed':
      return hasDataDependentStatistics(e.event);
    case 'composed':
      return e.events.some(hasDataDependentStatistics);
    default:
      return false;
  }
}

/**
 * The ONE place composite events become primitive ones, shared by the RDP and PLD accountants:
 *  - gaussian with (sigma, l2Sensitivity) provenance -> gaussian(noiseMultiplier);
 *  - topAgg -> gaussian(sigma / (2 sqrt k)) (vote vector, L2 sensitivity 2 sqrt k), plus
 *    gaussian(sigma1 / 2) for a separately noised threshold on the max count (sensitivity 2);
 *  - gnmax -> gaussian(thresholdSigma) for the threshold test (max count, sensitivity 1; charged
 *    always), plus, when answered, 2 x gaussian(sigma): the histogram changes by 1 in two bins,
 *    i.e. L2 sensitivity sqrt 2 = two unit-sensitivity Gaussians (written this way so the RDP is
 *    exactly alpha / sigma^2).
 * Wrappers are lowered recursively; primitives are returned as they are. `keep` leaves an event
 * untouched (the RDP accountant keeps GNMax events with data-dependent statistics when it was
 * explicitly built to use them).
 */
export function lowerEvent(e: DpEvent, keep?: (e: DpEvent) => boolean): DpEvent {
  if (keep && keep(e)) return e;
  switch (e.kind) {
    case 'gaussian':
      return e.sigma === undefined && e.l2Sensitivity === undefined ? e : DpEvents.gaussian(e.noiseMultiplier);
    case 'laplace':
    case 'randomizedResponse':
    case 'nonPrivate':
    case 'unsupported':
    case 'noOp':
    case 'metricDp':
    case 'ptr':
      return e;
    case 'poissonSampled':
      return DpEvents.poissonSampled(e.samplingProbability, lowerEvent(e.event, keep));
    case 'sampledWithoutReplacement':
      return DpEvents.sampledWithoutReplacement(e.sourceDatasetSize, e.sampleSize, lowerEvent(e.event, keep));
    case 'selfComposed':
      return DpEvents.selfComposed(lowerEvent(e.event, keep), e.count);
    case 'composed':
      return DpEvents.composed(e.events.map((x) => lowerEvent(x, keep)));
    case 'topAgg': {
      const vote = DpEvents.gaussian(e.sigma / (2 * Math.sqrt(e.k)));
      const s1 = e.threshold?.sigma1;
      return s1 === undefined ? vote : DpEvents.composed([vote, DpEvents.gaussian(s1 / 2)]);
    }
    case 'gnmax': {
      const parts: DpEvent[] = [];
      if (e.thresholdSigma !== undefined) parts.push(DpEvents.gaussian(e.thresholdSigma));
      if (e.answered) parts.push(DpEvents.selfComposed(DpEvents.gaussian(e.sigma), 2));
      return parts.length === 0 ? DpEvents.noOp() : parts.length === 1 ? parts[0] : DpEvents.composed(parts);
    }
    default:
      return assertNever(e, 'event kind');
  }
}
