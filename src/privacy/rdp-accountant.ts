/**
 * Incremental RDP accountant. `compose` adds count x (per-order RDP vector of the event) to running
 * per-order sums, so compose and getEpsilon are O(#orders) after an event's first appearance; each
 * distinct event's RDP vector is computed once and cached (keyed by its canonical JSON).
 */
import type { AccountingRelation, DpEvent } from './events.js';
import { DpEvents, assertNever, describeEvent, hasDataDependentStatistics, describeRelation, eventKey, isNeighbouringRelation, lowerEvent, relationProblem } from './events.js';
import { computeRdpThreshold, rdpGaussianDataDependent } from './pate.js';
import { rdpPtr, rdpSubsampledPtr } from './ptr.js';
import { DEFAULT_ORDERS, rdpGaussian, rdpLaplace, rdpRandomizedResponse, rdpSampledWithoutReplacement, rdpSubsampledGaussian, rdpToEpsilon } from './rdp.js';

export type AccountantKind = 'rdp' | 'pld';

export interface EpsilonDetails {
  epsilon: number;
  /** RDP only: the order attaining the minimum. */
  optimalOrder?: number;
  warnings: string[];
  accountant: AccountantKind;
  delta: number;
}

/**
 * What every accountant implements (dp_accounting's PrivacyAccountant): it is built for ONE
 * neighbouring relation, says whether it can price an event under it (`supports`), and `compose`
 * throws (AccountingError / RelationError) on anything it cannot price — never prices it as 0.
 */
export interface Accountant {
  readonly kind: AccountantKind;
  /** The neighbouring relation this accountant prices under ('unrecorded': legacy ledgers only). */
  readonly relation: AccountingRelation;
  /** True when `compose(event)` would succeed (relation accepted and the event priceable). */
  supports(event: DpEvent): boolean;
  compose(event: DpEvent, count?: number): this;
  getEpsilon(delta: number): number;
  getEpsilonDetails(delta: number): EpsilonDetails;
  /** epsilon if `event` (x count) were composed now, without composing it. */
  epsilonIf(event: DpEvent, delta: number, count?: number): number;
  /** Smallest delta for the given epsilon (hockey-stick / RDP conversion). */
  getDelta?(epsilon: number): number;
}

/** Thrown for events an accountant cannot price (Unsupported events, or combinations it lacks). */
export class AccountingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountingError';
  }
}

/** Thrown when an event (or ledger entry) is recorded under another neighbouring relation than the accountant's. */
export class RelationError extends AccountingError {
  constructor(message: string) {
    super(message);
    this.name = 'RelationError';
  }
}

/** Options shared by every accountant. */
export interface AccountantRelationOptions {
  /** Neighbouring relation to price under (default 'add-remove', as dp_accounting). */
  relation?: AccountingRelation;
}

/** Validates a relation option (default add-remove). */
export function resolveRelation(r: AccountingRelation | undefined): AccountingRelation {
  if (r === undefined) return 'add-remove';
  if (r === 'unrecorded' || isNeighbouringRelation(r)) return r;
  throw new RangeError(`neighbouring relation must be add-remove or replace-one, got ${JSON.stringify(r)}`);
}

/** Throws RelationError when `event` cannot be priced under `relation`. */
export function checkRelation(kind: AccountantKind, relation: AccountingRelation, event: DpEvent): void {
  const p = relationProblem(event, relation);
  if (p) throw new RelationError(`${kind.toUpperCase()} accountant built for ${relation} (${describeRelation(relation)}) refuses this event: ${p}`);
}

export interface RdpAccountantOptions extends AccountantRelationOptions {
  /**
   * Use PATE data-dependent bounds for GNMax events that carry `dataDependent` (pate.ts).
   * Off by default: such epsilons depend on private data. When on, every result carries a warning.
   */
  dataDependent?: boolean;
  /** 'balle2020' (default, as Opacus) or 'classic' (Mironov 2017, as DataLens/G-PATE report). */
  conversion?: 'balle2020' | 'classic';
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
}

export class RdpAccountant implements Accountant {
  readonly kind = 'rdp' as const;
  readonly relation: AccountingRelation;
  readonly orders: Float64Array;
  private readonly sums: Float64Array;
  private readonly cache = new Map<string, Float64Array>();
  private readonly notes = new Set<string>();
  private readonly opts: Required<Omit<RdpAccountantOptions, 'relation'>>;
  /** Number of compose calls (for diagnostics). */
  composedCount = 0;

  constructor(orders: readonly number[] | Float64Array = DEFAULT_ORDERS, opts: RdpAccountantOptions = {}) {
    if (orders.length === 0) throw new RangeError('RdpAccountant needs at least one order');
    for (const a of orders) if (!(a > 1)) throw new RangeError(`RDP orders must be > 1, got ${a}`);
    this.orders = Float64Array.from(orders);
    this.sums = new Float64Array(this.orders.length);
    this.relation = resolveRelation(opts.relation);
    this.opts = { dataDependent: opts.dataDependent ?? false, conversion: opts.conversion ?? 'balle2020' };
    if (this.opts.dataDependent) this.notes.add('data-dependent PATE bounds in use: this epsilon is a function of private data and is not itself differentially private');
  }

  compose(event: DpEvent, count = 1): this {
    checkCount(count);
    if (count === 0) {
      this.rdpOf(event); // still validate (Unsupported must throw)
      return this;
    }
    const v = this.rdpOf(event);
    for (let i = 0; i < v.length; i++) this.sums[i] += v[i] * count;
    this.composedCount++;
    return this;
  }

  supports(event: DpEvent): boolean {
    try {
      this.rdpOf(event);
      return true;
    } catch (e) {
      if (e instanceof AccountingError || (e as Error).name === 'DpEventError') return false;
      throw e;
    }
  }

  /** Per-order RDP of the whole composition so far (a copy). */
  getRdp(): Float64Array {
    return Float64Array.from(this.sums);
  }

  getEpsilon(delta: number): number {
    return this.getEpsilonDetails(delta).epsilon;
  }

  getEpsilonDetails(delta: number): EpsilonDetails {
    // nothing private composed: epsilon is exactly 0 (the conversion alone would add a slack term)
    if (this.sums.every((x) => x === 0)) {
      if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
      return { epsilon: 0, warnings: [...this.notes], accountant: 'rdp', delta };
    }
    const r = rdpToEpsilon(this.orders, this.sums, delta, this.opts.conversion);
    return { epsilon: r.epsilon, optimalOrder: r.optimalOrder, warnings: [...r.warnings, ...this.notes], accountant: 'rdp', delta };
  }

  epsilonIf(event: DpEvent, delta: number, count = 1): number {
    checkCount(count);
    const v = this.rdpOf(event);
    const tmp = new Float64Array(this.sums.length);
    for (let i = 0; i < v.length; i++) tmp[i] = this.sums[i] + (count === 0 ? 0 : v[i] * count);
    return rdpToEpsilon(this.orders, tmp, delta, this.opts.conversion).epsilon;
  }

  /** Smallest delta with the given epsilon: min_a exp((a-1)(rdp - eps)) style (Balle 2020 inverse). */
  getDelta(epsilon: number): number {
    let best = 1;
    for (let i = 0; i < this.orders.length; i++) {
      const a = this.orders[i];
      const r = this.sums[i];
      if (!Number.isFinite(r)) continue;
      // invert eps = r - (log d + log a)/(a-1) + log((a-1)/a)
      const logD = (a - 1) * (r - epsilon + Math.log((a - 1) / a)) - Math.log(a);
      best = Math.min(best, Math.exp(logD));
    }
    return best;
  }

  /** Per-order RDP vector of one event (cached; relation checked and event lowered on a miss). */
  rdpOf(event: DpEvent): Float64Array {
    const key = eventKey(event);
    let v = this.cache.get(key);
    if (!v) {
      checkRelation('rdp', this.relation, event);
      if (!this.opts.dataDependent && hasDataDependentStatistics(event)) this.notes.add('GNMax data-dependent statistics were ignored (data-independent bounds used)');
      v = this.compute(lowerEvent(event, this.keepDataDependent));
      this.cache.set(key, v);
    }
    return v;
  }

  /** GNMax events with data-dependent statistics stay composite only when explicitly opted in. */
  private readonly keepDataDependent = (e: DpEvent): boolean => this.opts.dataDependent && e.kind === 'gnmax' && e.dataDependent !== undefined;

  private map(f: (a: number) => number): Float64Array {
    const out = new Float64Array(this.orders.length);
    for (let i = 0; i < out.length; i++) out[i] = f(this.orders[i]);
    return out;
  }

  private compute(e: DpEvent): Float64Array {
    switch (e.kind) {
      case 'noOp':
        return new Float64Array(this.orders.length);
      case 'nonPrivate':
        this.notes.add(`non-private release composed (${e.reason}): epsilon is infinite`);
        return this.map(() => Infinity);
      case 'unsupported':
        throw new AccountingError(`RDP accountant cannot price an unsupported event: ${e.reason}`);
      case 'ptr': {
        const pe = e;
        return this.map((a) => rdpPtr(pe, a));
      }
      case 'metricDp':
        throw new AccountingError(`RDP accountant refuses ${describeEvent(e)}: metric DP is not (epsilon, delta)-DP and is never converted; it is composed by the metric-DP tally (privacy/metric-dp.ts)`);
      case 'gaussian':
        return this.map((a) => rdpGaussian(e.noiseMultiplier, a));
      case 'laplace':
        return this.map((a) => rdpLaplace(e.noiseMultiplier, a));
      case 'randomizedResponse':
        return this.map((a) => rdpRandomizedResponse(e.epsilon, e.numCategories, a));
      case 'selfComposed': {
        if (e.count === 0) return new Float64Array(this.orders.length);
        const inner = this.rdpOf(e.event);
        return inner.map((x) => x * e.count);
      }
      case 'composed': {
        const out = new Float64Array(this.orders.length);
        for (const sub of e.events) {
          const v = this.rdpOf(sub);
          for (let i = 0; i < out.length; i++) out[i] += v[i];
        }
        return out;
      }
      case 'poissonSampled': {
        const q = e.samplingProbability;
        if (q === 0 || e.event.kind === 'noOp') return new Float64Array(this.orders.length);
        if (q === 1) return this.rdpOf(e.event);
        if (e.event.kind === 'nonPrivate') return this.rdpOf(e.event);
        if (e.event.kind === 'gaussian') {
          const z = e.event.noiseMultiplier;
          return this.map((a) => rdpSubsampledGaussian(q, z, a));
        }
        if (e.event.kind === 'ptr') {
          const pe = e.event;
          return this.map((a) => rdpSubsampledPtr(q, pe, a));
        }
        throw new AccountingError(`RDP accountant cannot price Poisson-subsampled ${describeEvent(e.event)} (only Gaussian); use the PLD accountant`);
      }
      case 'sampledWithoutReplacement': {
        const gamma = e.sampleSize / e.sourceDatasetSize;
        if (gamma === 0 || e.event.kind === 'noOp') return new Float64Array(this.orders.length);
        if (gamma === 1) return this.rdpOf(e.event);
        const inner = e.event;
        let f: (j: number) => number;
        let inf: number;
        if (inner.kind === 'gaussian') {
          f = (j) => rdpGaussian(inner.noiseMultiplier, j);
          inf = Infinity; // the Gaussian has unbounded privacy loss
        } else if (inner.kind === 'laplace') {
          f = (j) => rdpLaplace(inner.noiseMultiplier, j);
          inf = inner.noiseMultiplier === 0 ? Infinity : 1 / inner.noiseMultiplier;
        } else if (inner.kind === 'randomizedResponse') {
          f = (j) => rdpRandomizedResponse(inner.epsilon, inner.numCategories, j);
          inf = inner.epsilon;
        } else if (inner.kind === 'nonPrivate') {
          return this.rdpOf(inner);
        } else {
          throw new AccountingError(`RDP accountant cannot price sampling without replacement of ${describeEvent(inner)}`);
        }
        return this.map((a) => rdpSampledWithoutReplacement(gamma, f, inf, a));
      }
      case 'topAgg':
        throw new AccountingError(`internal: composite event ${describeEvent(e)} reached the RDP pricer without lowering`);
      case 'gnmax': {
        // only reached for data-dependent GNMax when opted in (see keepDataDependent); a part whose
        // statistic is missing is priced as lowerEvent prices it (no second data-independent formula)
        if (!this.keepDataDependent(e)) throw new AccountingError(`internal: composite event ${describeEvent(e)} reached the RDP pricer without lowering`);
        const out = new Float64Array(this.orders.length);
        const dd = e.dataDependent;
        if (e.thresholdSigma !== undefined) {
          const t = dd?.logPrAnswered !== undefined ? computeRdpThreshold(dd.logPrAnswered, e.thresholdSigma, this.orders) : this.rdpOf(lowerEvent(DpEvents.gnmax({ sigma: e.sigma, thresholdSigma: e.thresholdSigma, answered: false })));
          for (let i = 0; i < out.length; i++) out[i] += t[i];
        }
        if (e.answered) {
          const g = dd?.logq !== undefined ? rdpGaussianDataDependent(dd.logq, e.sigma, this.orders) : this.rdpOf(lowerEvent(DpEvents.gnmax({ sigma: e.sigma, answered: true })));
          for (let i = 0; i < out.length; i++) out[i] += g[i];
        }
        return out;
      }
      default:
        return assertNever(e, 'event kind');
    }
  }
}
