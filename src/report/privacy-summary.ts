/**
 * "What was protected and how": a summary of a run's privacy ledger for the report.
 * The ε figure is recomputed from the ledger's events by the privacy layer's accountant
 * (never copied from a number the run printed), and the ledger's integrity check is run.
 */
import type { Json, JsonObject, RunFolder } from './run-folder.js';
import { ledgerFacts } from './ledger-adapter.js';

export interface MechanismCount {
  kind: string;
  /** How many times it was applied (selfComposed counts multiplied out). */
  count: number;
  /** A short parameter description, e.g. "σ=1.1, q=0.004". */
  params: string;
}

export interface PrivacySummary {
  entryCount: number;
  epsilon?: number;
  /** Where ε came from: recomputed from the ledger, or the last value the run logged. */
  epsilonSource?: string;
  epsilonNote?: string;
  delta?: number;
  accountant?: string;
  budgetEpsilon?: number;
  mechanisms: MechanismCount[];
  methods: string[];
  fingerprints: string[];
  randomness: { kind: 'secure' | 'seeded' | 'unknown'; seed?: number | string; detail: string };
  integrity: { status: 'verified' | 'failed' | 'not checked'; detail: string };
  /** True when some event is non-private (ε = ∞) — shown prominently. */
  nonPrivate: boolean;
}

function num(v: Json | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(v: Json | undefined): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}

/** First value found under any of `keys` in the given objects (shallow). */
function pick(objs: (JsonObject | undefined)[], keys: string[]): Json | undefined {
  for (const o of objs) {
    if (!o) continue;
    for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k];
  }
  return undefined;
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : Math.abs(x) < 1e-3 ? x.toExponential(2) : String(+x.toPrecision(4)));

function eventParams(e: JsonObject): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (k === 'kind' || k === 'event' || k === 'events') continue;
    if (typeof v === 'number') parts.push(`${k}=${fmt(v)}`);
    else if (typeof v === 'string' && v.length < 60) parts.push(`${k}=${v}`);
  }
  return parts.join(', ');
}

/**
 * Walks a DpEvent tree (plain JSON discriminated by `kind`) and counts its leaf mechanisms.
 * Wrappers (poissonSampled, sampledWithoutReplacement, selfComposed, composed) are folded into
 * the leaf's description so "gaussian ×1000 (poisson q=0.004)" reads as one line.
 */
export function countMechanisms(event: Json | undefined, multiplier: number, wrapper: string, into: Map<string, MechanismCount>): void {
  if (!event || typeof event !== 'object' || Array.isArray(event)) return;
  const kind = str(event.kind) ?? 'unknown';
  const inner = event.event;
  const count = num(event.count);
  if (Array.isArray(event.events)) {
    for (const sub of event.events) countMechanisms(sub, multiplier, wrapper, into);
    return;
  }
  if (inner && typeof inner === 'object') {
    const own = eventParams(event);
    const isSelf = /self/i.test(kind) && count !== undefined;
    const label = isSelf ? wrapper : [wrapper, `${kind}${own ? ` ${own}` : ''}`].filter(Boolean).join('; ');
    countMechanisms(inner, multiplier * (isSelf ? count : 1), label, into);
    return;
  }
  const params = [eventParams(event), wrapper].filter(Boolean).join('; ');
  const key = `${kind}|${params}`;
  const prev = into.get(key);
  if (prev) prev.count += multiplier;
  else into.set(key, { kind, count: multiplier, params });
}

function containsKind(event: Json | undefined, re: RegExp): boolean {
  if (!event || typeof event !== 'object') return false;
  if (Array.isArray(event)) return event.some((e) => containsKind(e, re));
  if (typeof event.kind === 'string' && re.test(event.kind)) return true;
  return Object.values(event).some((v) => typeof v === 'object' && containsKind(v, re));
}

function findRandomness(objs: (JsonObject | undefined)[]): PrivacySummary['randomness'] | undefined {
  for (const o of objs) {
    if (!o) continue;
    const candidates: (Json | undefined)[] = [o.randomness, o.rng, o.random, (o.meta as JsonObject | undefined)?.randomness, (o.meta as JsonObject | undefined)?.rng];
    for (const c of candidates) {
      if (typeof c === 'string' && /secure|seeded/.test(c)) {
        const seed = pick([o, o.meta as JsonObject | undefined], ['seed']);
        return { kind: c.includes('seeded') ? 'seeded' : 'secure', seed: typeof seed === 'number' || typeof seed === 'string' ? seed : undefined, detail: 'recorded in the ledger' };
      }
      if (c && typeof c === 'object' && !Array.isArray(c) && typeof c.kind === 'string') {
        const seed = c.seed;
        return { kind: c.kind === 'seeded' ? 'seeded' : c.kind === 'secure' ? 'secure' : 'unknown', seed: typeof seed === 'number' || typeof seed === 'string' ? seed : undefined, detail: 'recorded in the ledger' };
      }
    }
  }
  return undefined;
}

export function summarizePrivacy(run: RunFolder): PrivacySummary {
  const lines = run.ledgerLines;
  const entries = lines.filter((l) => l.event && typeof l.event === 'object');
  const headers = lines.filter((l) => !(l.event && typeof l.event === 'object'));
  const config = run.config;
  const sub = (k: string): JsonObject | undefined => {
    const v = config?.[k];
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  };
  // Runners nest settings differently (train: {config: {...}, dataset: {...}}; synth: flat).
  const nested = [sub('privacy'), sub('config'), sub('dataset')];

  const mechanisms = new Map<string, MechanismCount>();
  for (const e of entries) countMechanisms(e.event, 1, '', mechanisms);
  const methods = [...new Set(entries.map((e) => str(e.method)).filter((m): m is string => !!m))];
  const fingerprints = [...new Set(entries.map((e) => str(e.datasetFingerprint)).filter((m): m is string => !!m))];
  const nonPrivate = entries.some((e) => containsKind(e.event, /non-?private/i));

  const header = headers.find((l) => l.type === 'header') ?? headers[0];
  const headerBudget = (header?.budget && typeof header.budget === 'object' && !Array.isArray(header.budget) ? header.budget : undefined) as JsonObject | undefined;
  const configDelta = num(pick([config, ...nested], ['delta', 'targetDelta']));
  const accountantName = str(pick([config, ...nested, header], ['accountant']));

  const fromLedger = run.ledgerPath ? ledgerFacts(run.ledgerPath, run.ledgerLines, configDelta, accountantName) : undefined;
  const delta = fromLedger?.delta ?? configDelta ?? num(headerBudget?.delta);
  const budgetEpsilon = fromLedger?.budget?.epsilon ?? num(headerBudget?.epsilon) ?? num(pick([config, ...nested], ['budget', 'epsilonBudget', 'targetEpsilon', 'epsilon']));

  const randomness =
    fromLedger?.randomness ??
    findRandomness([...headers, ...entries]) ??
    (config && config.seed !== undefined && config.seed !== null
      ? { kind: 'seeded' as const, seed: config.seed as number | string, detail: 'from config.json seed (the ledger does not record it)' }
      : { kind: 'unknown' as const, detail: 'not recorded' });

  let epsilon = fromLedger?.epsilon;
  let epsilonSource = fromLedger?.epsilonSource;
  let epsilonNote = fromLedger?.epsilonNote;
  if (epsilon === undefined) {
    const lastEps = [...run.metrics].reverse().find((r) => typeof r.epsilon === 'number');
    if (lastEps) {
      epsilon = lastEps.epsilon as number;
      epsilonSource = 'last value logged in metrics.jsonl (not recomputed from the ledger)';
    }
  }
  if (nonPrivate) epsilonNote = [epsilonNote, 'the ledger holds a non-private release: the guarantee is ε = ∞'].filter(Boolean).join('; ');

  return {
    entryCount: fromLedger?.entryCount ?? entries.length,
    epsilon,
    epsilonSource,
    epsilonNote,
    delta,
    accountant: fromLedger?.accountant ?? accountantName,
    budgetEpsilon,
    mechanisms: [...mechanisms.values()],
    methods,
    fingerprints,
    randomness,
    integrity: fromLedger?.integrity ?? { status: 'not checked', detail: 'no ledger.jsonl' },
    nonPrivate,
  };
}
