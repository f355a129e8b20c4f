/**
 * Audits of DP generators.
 *
 * 1. `replayMechanismWithCanaries` (default for DataLens and G-PATE, white box, no private data,
 *    no ε): see the comment above it.
 * 2. `insertInputCanaries` (black box, any generator, a recorded re-run on the private data):
 *    one-run audit with input-space canaries: m held-out images with a random wrong
 * label (out of distribution for that class) are each added to the private training set with
 * probability ½; the generator runs once; the adversary sees only the released synthetic data and
 * scores a canary by minus its distance to the closest synthetic record of the canary's label.
 * A generator that memorises (or whose noise is broken) reproduces included canaries. The runner
 * that re-runs the generator with them is `auditSynthesis` in src/runs/audit.ts.
 */
import type { ImageDataset } from '../data/index.js';
import { GpateAggregator, TopAggAggregator, type GpateParams, type VoteAggregator, type VotingFacts, type VotingTeachers } from '../generate/index.js';
import { RdpAccountant, type DpEvent, type RandomSource } from '../privacy/index.js';
import type { GuessStrategy } from './stats.js';

/** Inserts m mislabeled held-out canaries (each w.p. ½) into the training split. */
export function insertInputCanaries(ds: ImageDataset, m: number, rng: { nextDouble(): number }): { data: ImageDataset; canaries: { images: Uint8Array; labels: Int32Array; count: number }; included: boolean[] } {
  const per = ds.height * ds.width * ds.channels;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (ds.test.count < m) throw new RangeError(`input canaries come from the test split, which has only ${ds.test.count} images (< m = ${m})`);
  if (ds.numClasses < 2) throw new RangeError('input canaries need at least two classes (they carry a wrong label)');
  const order = Int32Array.from({ length: ds.test.count }, (_, i) => i);
  for (let j = 0; j < m; j++) {
    const r = j + Math.floor(rng.nextDouble() * (ds.test.count - j));
    [order[j], order[r]] = [order[r]!, order[j]!];
  }
  const images = new Uint8Array(m * per);
  const labels = new Int32Array(m);
  for (let j = 0; j < m; j++) {
    images.set(ds.test.images.subarray(order[j]! * per, (order[j]! + 1) * per), j * per);
    labels[j] = (ds.test.labels[order[j]!]! + 1 + Math.floor(rng.nextDouble() * (ds.numClasses - 1))) % ds.numClasses;
  }
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const inIdx = included.flatMap((b, j) => (b ? [j] : []));
  const n = ds.train.count + inIdx.length;
  const trainImages = new Uint8Array(n * per);
  trainImages.set(ds.train.images.subarray(0, ds.train.count * per));
  const trainLabels = new Int32Array(n);
  trainLabels.set(ds.train.labels.subarray(0, ds.train.count));
  inIdx.forEach((j, k) => {
    trainImages.set(images.subarray(j * per, (j + 1) * per), (ds.train.count + k) * per);
    trainLabels[ds.train.count + k] = labels[j]!;
  });
  return { data: { ...ds, train: { images: trainImages, labels: trainLabels, count: n }, rawFingerprint: `${ds.rawFingerprint}+input-canaries` }, canaries: { images, labels, count: m }, included };
}

/**
 * Mechanism-level white-box audit of a voting generator (DataLens TopAgg, G-PATE Confident-GNMax):
 * the run's own aggregator (`GeneratorPlugin.mechanism`: the run's noise code with its recorded
 * parameters) is replayed for the run's number of steps with CANARY VOTERS instead of teachers.
 *
 * Threat model (Steinke, Nasr & Jagielski 2023; Nasr et al. 2023, white box): the adversary knows
 * every record but the canaries, so it knows the other voters' votes (the background, chosen by the
 * auditor: the worst case, at the release's decision boundary), and sees every released aggregate.
 * Canary j is one record slot whose two values differ by the step's FULL sensitivity as the ledger
 * charges it: S_j = 1 casts +1 votes, S_j = 0 casts −1 votes (TopAgg: on Δ²/4 vote-sum entries, Δ
 * the joint L2 sensitivity of the charged event; neural teachers: ≤ k entries per query) or moves
 * one G-PATE vote between the two tied top bins of every coordinate it owns (≤ the charged
 * coordinates per step). S_j ~ Bernoulli(½) independently; changing one S_j is a replace-one change,
 * the relation the synthesis proofs use. Canaries own disjoint entries, assigned round robin over the
 * run's steps, so each is covered by the claim of the run's composition.
 *
 * Score: the canary's share of every released aggregate, Σ_t Σ_{owned entries} released value (TopAgg:
 * direction/α; G-PATE: the released bin value r/clip, recovered from the back-projected direction
 * with the public projection). Bound: `summarizeAudit` (stats.ts), guesses pre-registered from the
 * declared noise only. Canary vote blocks need not come from real records: the Gaussian and GNMax
 * guarantees hold for any two vote blocks within the charged sensitivity, so this audits the release
 * code and its accounting (a bug that adds less noise than charged is caught); the sensitivity
 * proofs of the teachers are property-tested in test/generate-*.test.ts instead. No private data is
 * read, so the audit spends no ε.
 */
export interface MechanismReplayInput {
  aggregator: VoteAggregator;
  facts: VotingFacts;
  /** Generator steps the run charged (the replay makes as many releases). */
  steps: number;
  /** Number of canaries m. */
  m: number;
  /** Inclusion bits and canary layout (the auditor's randomness). */
  rng: RandomSource;
  /** The replay's noise: the mechanism draws from it through its own code path. */
  noise: RandomSource;
}

export interface MechanismReplay {
  scores: number[];
  included: boolean[];
  /** Events the replay's aggregate() charged in one step (what the run's ledger charges per step). */
  stepEvents: DpEvent[];
  /** ε of `steps` replayed steps at `delta`, by the RDP accountant (the replay's own claim). */
  replayEpsilon(delta: number): number;
  /** Entries (TopAgg vote-sum entries / G-PATE coordinates) per canary per step at most, and per query. */
  allowance: { perStep: number; perQuery: number };
  /** Releasable units per step (B·d or B·p) and canaries covered at least once. */
  unitsPerStep: number;
  covered: number;
  /** Declared noise of the mechanism (TopAgg σ; G-PATE min(σ1, σ2)). */
  declaredNoise: number;
}

/** The per-step canary allowance from the event the aggregator charged. */
function topAggAllowance(events: DpEvent[], f: VotingFacts): { perStep: number; perQuery: number } {
  const ev = events[0];
  if (events.length === 1 && ev?.kind === 'gaussian' && ev.l2Sensitivity !== undefined) {
    // one Gaussian release of the whole [B, d] block: any placement with ‖in − out‖₂ = Δ, entries differing by 2
    return { perStep: Math.max(1, Math.floor((ev.l2Sensitivity * ev.l2Sensitivity) / 4)), perQuery: f.dim };
  }
  if (events.length === 1 && ev?.kind === 'selfComposed' && ev.event.kind === 'topAgg') {
    // B per-query releases of sensitivity 2√k each: ≤ k entries per query
    return { perStep: ev.event.k * ev.count, perQuery: ev.event.k };
  }
  throw new Error(`mechanism audit: cannot read a TopAgg sensitivity from the charged events ${JSON.stringify(events)}`);
}

function gpateAllowance(events: DpEvent[], p: GpateParams): { perStep: number; perQuery: number } {
  let coords = 0;
  for (const e of events) if (e.kind === 'selfComposed' && e.event.kind === 'gnmax') coords = Math.max(coords, e.count);
  if (!(coords > 0)) throw new Error(`mechanism audit: cannot read the charged G-PATE coordinates from ${JSON.stringify(events)}`);
  return { perStep: coords, perQuery: p.projDim };
}

/** Solves the p×p system a·x = b in place (Gaussian elimination, partial pivoting). */
function solveSmall(a: Float64Array, b: Float64Array, p: number): Float64Array {
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(a[r * p + c]!) > Math.abs(a[piv * p + c]!)) piv = r;
    if (piv !== c) {
      for (let k = 0; k < p; k++) [a[c * p + k], a[piv * p + k]] = [a[piv * p + k]!, a[c * p + k]!];
      [b[c], b[piv]] = [b[piv]!, b[c]!];
    }
    const d = a[c * p + c]!;
    if (d === 0) continue;
    for (let r = c + 1; r < p; r++) {
      const f = a[r * p + c]! / d;
      if (f === 0) continue;
      for (let k = c; k < p; k++) a[r * p + k]! -= f * a[c * p + k]!;
      b[r]! -= f * b[c]!;
    }
  }
  const x = new Float64Array(p);
  for (let c = p - 1; c >= 0; c--) {
    let s = b[c]!;
    for (let k = c + 1; k < p; k++) s -= a[c * p + k]! * x[k]!;
    const d = a[c * p + c]!;
    x[c] = d === 0 ? 0 : s / d;
  }
  return x;
}

/**
 * Replays the run's aggregator with canary voters for `steps` releases and scores every canary by
 * its share of the released aggregates (see the block comment above).
 */
export function replayMechanismWithCanaries(o: MechanismReplayInput): MechanismReplay {
  const { aggregator, facts: f, steps, m } = o;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`mechanism audit: the run made no generator step (steps = ${steps})`);
  const isTopAgg = aggregator instanceof TopAggAggregator;
  const isGpate = aggregator instanceof GpateAggregator;
  if (!isTopAgg && !isGpate) throw new Error(`mechanism audit: no canary voters for aggregator ${aggregator.method}`);
  const included = Array.from({ length: m }, () => o.rng.nextDouble() < 0.5);
  const sign = included.map((b) => (b ? 1 : -1));
  const B = f.queries;
  const N = f.numTeachers;
  const p = isGpate ? (aggregator as GpateAggregator).params : undefined;
  const unitsPerQuery = isGpate ? p!.projDim : f.dim;
  const units = B * unitsPerQuery;
  const scores = new Float64Array(m);
  const touched = new Uint8Array(m);
  let stepEvents: DpEvent[] = [];
  let allowance: { perStep: number; perQuery: number } | undefined;
  const owner = new Int32Array(units);
  const stepCount = new Int32Array(m);
  const queryCount = new Int32Array(m);
  const queryStamp = new Int32Array(m).fill(-1);
  // Vote sums at the decision boundary of TopAgg's threshold (β > 0): ⌊βN⌋ + 1 passes, ⌊βN⌋ − 1 does not.
  const topAggBackground = isTopAgg && (aggregator as TopAggAggregator).params.beta > 0 ? Math.floor((aggregator as TopAggAggregator).params.beta * N) : 0;
  // G-PATE: two tied top bins of H votes each (H + 1 ≥ the threshold), the canary breaks the tie.
  const H = Math.floor((N - 1) / 2);
  const nb = p?.bins ?? 0;
  const binIn = nb - 1;
  const binOut = 0;
  const binRest = Math.floor(nb / 2);
  let proj: Float32Array | undefined;

  const layout = (t: number): void => {
    owner.fill(-1);
    stepCount.fill(0);
    const a = allowance!;
    for (let e = 0; e < units; e++) {
      const c = (((t * units) % m) + e) % m;
      const q = Math.floor(e / unitsPerQuery);
      if (queryStamp[c] !== q) {
        queryStamp[c] = q;
        queryCount[c] = 0;
      }
      if (stepCount[c]! >= a.perStep || queryCount[c]! >= a.perQuery) continue;
      owner[e] = c;
      stepCount[c]!++;
      queryCount[c]!++;
      touched[c] = 1;
    }
    queryStamp.fill(-1);
  };

  const voters: VotingTeachers = {
    itersPerEpoch: 1,
    queryLabels: () => new Int32Array(B),
    train: () => undefined,
    topAggVotes: () => {
      const v = new Int32Array(units).fill(topAggBackground);
      for (let e = 0; e < units; e++) if (owner[e]! >= 0) v[e] = topAggBackground + sign[owner[e]!]!;
      return v;
    },
    projectedHistograms: (_x, _y, pr, gp) => {
      proj = pr;
      const h = new Int32Array(units * gp.bins);
      for (let c = 0; c < units; c++) {
        const o2 = c * gp.bins;
        if (owner[c]! < 0) {
          h[o2 + binRest] = N;
          continue;
        }
        h[o2 + binIn] += H;
        h[o2 + binOut] += H;
        h[o2 + binRest] += N - 2 * H - 1;
        h[o2 + (sign[owner[c]!]! > 0 ? binIn : binOut)] += 1;
      }
      return h;
    },
    dispose: () => undefined,
  };

  const x = new Float32Array(B * f.dim);
  const y = new Int32Array(B);
  for (let t = 0; t < steps; t++) {
    const charged: DpEvent[] = [];
    const charge = (e: DpEvent): boolean => {
      charged.push(e);
      return true;
    };
    // The canaries' strength: the step event the run's ledger charges (VotingGan.stepEvent).
    allowance ??= isTopAgg ? topAggAllowance([aggregator.stepEvent(f)], f) : gpateAllowance([aggregator.stepEvent(f)], p!);
    layout(t);
    const r = aggregator.aggregate(voters, x, y, f, o.noise, charge);
    if (!r) throw new Error('mechanism audit: the replayed aggregator refused to release');
    if (t === 0) stepEvents = charged;
    if (isTopAgg) {
      const alpha = (aggregator as TopAggAggregator).params.alpha;
      for (let e = 0; e < units; e++) if (owner[e]! >= 0) scores[owner[e]!]! += r.direction[e]! / alpha;
    } else {
      // recover the released bin values r_j (p per query) from direction_j = P_j r_j (P public)
      const pd = p!.projDim;
      const d = f.dim;
      for (let j = 0; j < B; j++) {
        let any = false;
        for (let l = 0; l < pd; l++) if (owner[j * pd + l]! >= 0) any = true;
        if (!any) continue;
        const a = new Float64Array(pd * pd);
        const b = new Float64Array(pd);
        for (let i = 0; i < d; i++) {
          const po = (j * d + i) * pd;
          const di = r.direction[j * d + i]!;
          for (let l = 0; l < pd; l++) {
            const pl = proj![po + l]!;
            b[l]! += pl * di;
            for (let k = 0; k < pd; k++) a[l * pd + k]! += pl * proj![po + k]!;
          }
        }
        const rv = solveSmall(a, b, pd);
        for (let l = 0; l < pd; l++) {
          const c = owner[j * pd + l]!;
          if (c >= 0) scores[c]! += rv[l]! / p!.clip;
        }
      }
    }
  }
  const declaredNoise = isTopAgg ? (aggregator as TopAggAggregator).params.sigma : Math.min(p!.sigma1, p!.sigma2);
  return {
    scores: Array.from(scores, (s) => (Number.isFinite(s) ? s : 0)),
    included,
    stepEvents,
    replayEpsilon: (delta: number) => {
      const acc = new RdpAccountant();
      for (const e of stepEvents) acc.compose(e, steps);
      return acc.getEpsilon(delta);
    },
    allowance: allowance!,
    unitsPerStep: units,
    covered: touched.reduce((s, v) => s + v, 0),
    declaredNoise,
  };
}

/**
 * Guesses for the mechanism audit, fixed from the declared noise before any score is seen: a
 * declared noise of 0 (an explicitly non-private run) gets one test guessing the 40 % highest "in"
 * and the 40 % lowest "out" (the two classes hold ≈ 50 % each); otherwise a 3 × 3 grid of
 * {2, 10, 40} % per side, each test at β/9.
 */
export function mechanismAuditStrategy(declaredNoise: number): GuessStrategy {
  if (declaredNoise === 0) return { kind: 'bonferroni', kPlusFractions: [0.4], kMinusFractions: [0.4] };
  return { kind: 'bonferroni', kPlusFractions: [0.02, 0.1, 0.4], kMinusFractions: [0.02, 0.1, 0.4] };
}
