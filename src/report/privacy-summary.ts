/**
 * "What was protected and how": a summary of a run's privacy ledger(s) and manifest for the report.
 * The ε figure is recomputed from the ledger's events by the privacy layer's accountant
 * (never copied from a number the run printed), and the ledger's integrity check is run — for the
 * run's own ledger and for every linked ledger (e.g. an audit's re-runs on the same private data).
 * What the proof treats as public, what the folder releases outside the guarantee and which files
 * are private come from the typed manifest (run.json); older folders say that they do not record it.
 */
import type { NeighbouringRelation } from '../privacy/index.js';
import type { ReleasedFact } from '../runs/manifest.js';
import type { Json, JsonObject, RunFolder } from './run-folder.js';
import { ledgerFacts, type IntegrityFacts, type RandomnessFacts } from './ledger-adapter.js';

export interface MechanismCount {
  kind: string;
  /** How many times it was applied (selfComposed counts multiplied out). */
  count: number;
  /** A short parameter description, e.g. "σ=1.1, q=0.004". */
  params: string;
}

/** A dataset fingerprint as the report may show it: plain hashes are flagged, never displayed. */
export interface FingerprintShown {
  kind: 'keyed' | 'plain' | 'unrecognised';
  /** The value, for keyed/unrecognised fingerprints only (a plain hash is never repeated). */
  value?: string;
  /** Where it was found (run.json, ledger.jsonl, config.json). */
  where: string;
  /** Why a fingerprint of a current run folder is treated as a possible plain hash. */
  note?: string;
}

export interface LinkedLedgerSummary {
  name: string;
  purpose: string;
  integrity: IntegrityFacts;
  entryCount?: number;
  epsilon?: number;
  epsilonSource?: string;
  epsilonNote?: string;
}

export interface AttemptSummary {
  startedAt?: string;
  resumedFromStep?: number;
  ledgerEntriesAtStart?: number;
  stoppedBy?: string;
  command?: string[];
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
  fingerprints: FingerprintShown[];
  randomness: RandomnessFacts;
  integrity: IntegrityFacts;
  /** True when some event is non-private (ε = ∞) — shown prominently. */
  nonPrivate: boolean;
  /** Metric-DP guarantee (vmf): stated in its own terms, never as (ε, δ). */
  metricDp?: { epsilon: number; metric: string };
  /** The neighbouring relation the guarantee is stated for (undefined: not recorded). */
  relation?: NeighbouringRelation;
  /** Where the relation came from, or why it is unknown. */
  relationSource: string;
  /** What the proof treats as public (run.json `privacy.treatedAsPublic` and public-by-assumption facts). */
  treatedAsPublic: string[];
  /** Everything the folder releases outside the guarantee (facts and files). */
  releasedOutside: { what: string; where: string[]; why?: string }[];
  /** Files that must not be published (content never read). */
  privateFiles: string[];
  /** False when the folder predates run.json: release facts are then not recorded. */
  manifestKnown: boolean;
  linked: LinkedLedgerSummary[];
  /** ε of this run plus every linked ledger (basic composition), at `totalDelta`. */
  totalEpsilon?: number;
  totalDelta?: number;
  /** The guarantee may be stated as fact only when this is true. */
  established: boolean;
  /** Why it is not established (ledger failed verification, missing, relations disagree, ...). */
  notEstablished: string[];
  /** Attempts of a resumed run (empty or one element for a run that ran once). */
  attempts: AttemptSummary[];
  /** Where the attempts list came from. */
  attemptsSource?: string;
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

/** A plain SHA-256 hex digest, possibly with a provenance suffix (`+input-canaries`, `/subset`). */
export function looksLikePlainHash(fp: string): boolean {
  return /^[0-9a-f]{64}([+/].*)?$/i.test(fp);
}

/**
 * Fingerprints as the report may show them. Keyed fingerprints (HMAC under the data owner's key,
 * privacy/owner-key) and plain SHA-256 digests both look like 64 hex digits, so the value cannot
 * tell them apart; one recorded fact can: run.json's `dataset.fingerprint` is keyed by contract.
 * That value, and fingerprints derived from it (an audit's "+input-canaries"), are shown; any other
 * 64-hex fingerprint (every one of a folder without run.json) is flagged as a possible plain hash
 * and never repeated.
 */
function fingerprintsOf(run: RunFolder, entryFps: string[]): FingerprintShown[] {
  const out: FingerprintShown[] = [];
  const keyed = run.manifest?.dataset?.fingerprint;
  if (keyed) out.push({ kind: 'keyed', value: keyed, where: 'run.json' });
  const dataset = run.config?.dataset;
  const configFps = dataset && typeof dataset === 'object' && !Array.isArray(dataset) ? [dataset.fingerprint, dataset.sha256].filter((v): v is string => typeof v === 'string' && !!v) : [];
  const seen = new Set<string>(keyed ? [keyed] : []);
  const add = (fp: string, where: string): void => {
    if (seen.has(fp)) return;
    seen.add(fp);
    if (keyed && fp.startsWith(keyed)) out.push({ kind: 'keyed', value: fp, where });
    else if (looksLikePlainHash(fp)) out.push({ kind: 'plain', where, ...(keyed ? { note: 'does not match the keyed fingerprint of run.json' } : {}) });
    else out.push({ kind: 'unrecognised', value: fp, where });
  };
  for (const fp of entryFps) add(fp, run.ledgerName);
  for (const fp of configFps) add(fp, 'config.json');
  return out;
}

/** Step number an entry starts at (meta.step / meta.firstStep), when recorded. */
function entryStep(e: JsonObject): number | undefined {
  const meta = e.meta && typeof e.meta === 'object' && !Array.isArray(e.meta) ? e.meta : undefined;
  const s = meta?.firstStep ?? meta?.step;
  return typeof s === 'number' && Number.isFinite(s) ? s : undefined;
}

/**
 * Attempts of a resumed run: run.json `attempts` when it lists several; otherwise what the ledger
 * shows — entries tagged with different `meta.attempt`, or step numbers that start again.
 */
function attemptsOf(run: RunFolder, entries: JsonObject[]): { attempts: AttemptSummary[]; source?: string } {
  const m = run.manifest?.attempts ?? [];
  if (m.length > 1) return { attempts: m.map((a) => ({ startedAt: a.startedAt, resumedFromStep: a.resumedFromStep, ledgerEntriesAtStart: a.ledgerEntriesAtStart, stoppedBy: a.stoppedBy, command: a.command })), source: 'run.json' };
  const starts: number[] = [];
  let prevTag: Json | undefined;
  let prevStep: number | undefined;
  entries.forEach((e, i) => {
    const meta = e.meta && typeof e.meta === 'object' && !Array.isArray(e.meta) ? e.meta : undefined;
    const tag = meta?.attempt;
    const step = entryStep(e);
    const newTag = i > 0 && tag !== undefined && tag !== prevTag;
    const restart = i > 0 && step !== undefined && prevStep !== undefined && step <= prevStep;
    if (i === 0 || newTag || restart) starts.push(i);
    prevTag = tag;
    if (step !== undefined) prevStep = step;
  });
  if (starts.length <= 1) return { attempts: [] };
  return {
    attempts: starts.map((s) => ({
      startedAt: typeof entries[s]!.time === 'string' ? (entries[s]!.time as string) : undefined,
      resumedFromStep: s === 0 ? undefined : (entryStep(entries[s]!) ?? 1) - 1,
      ledgerEntriesAtStart: s,
    })),
    source: `${run.ledgerName} (entries from several attempts)`,
  };
}

function worstRandomness(a: RandomnessFacts | undefined, b: RandomnessFacts | undefined): RandomnessFacts | undefined {
  if (!a) return b;
  if (!b) return a;
  const rank = { seeded: 2, unknown: 1, secure: 0 } as const;
  return rank[b.kind] > rank[a.kind] ? b : a;
}

export function summarizePrivacy(run: RunFolder): PrivacySummary {
  const lines = run.ledgerLines;
  const entries = lines.filter((l) => l.event && typeof l.event === 'object');
  const headers = lines.filter((l) => !(l.event && typeof l.event === 'object'));
  const manifest = run.manifest;
  const mp = manifest?.privacy;
  const config = run.config;
  const sub = (k: string): JsonObject | undefined => {
    const v = config?.[k];
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  };
  // Older folders (no run.json): runners nested settings differently (train: {config, dataset}; synth: flat).
  const nested = [sub('privacy'), sub('config'), sub('dataset')];

  const mechanisms = new Map<string, MechanismCount>();
  for (const e of entries) countMechanisms(e.event, 1, '', mechanisms);
  const methods = [...new Set([...entries.map((e) => str(e.method)), manifest?.method].filter((m): m is string => !!m))];
  const entryFps = [...new Set(entries.map((e) => str(e.datasetFingerprint)).filter((m): m is string => !!m))];
  const nonPrivate = entries.some((e) => containsKind(e.event, /non-?private/i));

  const header = headers.find((l) => l.type === 'header') ?? headers[0];
  const headerBudget = (header?.budget && typeof header.budget === 'object' && !Array.isArray(header.budget) ? header.budget : undefined) as JsonObject | undefined;
  const configDelta = mp?.delta ?? num(pick([config, ...nested], ['delta', 'targetDelta']));
  const accountantName = mp?.accountant ?? str(pick([config, ...nested, header], ['accountant']));

  const fromLedger = run.ledgerPath ? ledgerFacts(run.ledgerPath, run.ledgerLines, configDelta, accountantName) : undefined;
  const delta = fromLedger?.delta ?? configDelta ?? num(headerBudget?.delta);
  const budgetEpsilon = mp?.budget?.epsilon ?? fromLedger?.budget?.epsilon ?? num(headerBudget?.epsilon) ?? num(pick([config, ...nested], ['budget', 'epsilonBudget', 'targetEpsilon', 'epsilon']));

  const manifestRandomness: RandomnessFacts | undefined = mp?.randomness ? { kind: mp.randomness.kind, seed: mp.randomness.seed, detail: 'recorded in run.json' } : undefined;
  const randomness =
    worstRandomness(fromLedger?.randomness, manifestRandomness) ??
    (config && config.seed !== undefined && config.seed !== null
      ? { kind: 'seeded' as const, seed: config.seed as number | string, detail: 'from config.json seed (the ledger does not record it)' }
      : { kind: 'unknown' as const, detail: 'not recorded' });

  let epsilon = fromLedger?.epsilon;
  let epsilonSource = fromLedger?.epsilonSource;
  let epsilonNote = fromLedger?.epsilonNote;
  if (epsilon === undefined && !run.ledgerPath && !run.ledgerMissing) {
    const lastEps = [...run.metrics].reverse().find((r) => typeof r.epsilon === 'number');
    if (lastEps) {
      epsilon = lastEps.epsilon as number;
      epsilonSource = 'last value logged in metrics.jsonl (not recomputed from a ledger)';
    }
  }
  if (nonPrivate) epsilonNote = [epsilonNote, 'the ledger holds a non-private release: the guarantee is ε = ∞'].filter(Boolean).join('; ');

  // ---- the neighbouring relation, from run.json and the ledger header; disagreement is an error.
  // (Entries need no check here: the ledger's own verification refuses an entry under another relation.)
  const notEstablished: string[] = [];
  const recorded: [string, NeighbouringRelation][] = [];
  if (mp?.relation) recorded.push(['run.json', mp.relation]);
  if (fromLedger?.relation) recorded.push([`${run.ledgerName} header`, fromLedger.relation]);
  const relations = [...new Set(recorded.map(([, r]) => r))];
  let relation: NeighbouringRelation | undefined;
  let relationSource: string;
  if (relations.length > 1) {
    relationSource = `conflicting: ${recorded.map(([w, r]) => `${w} says ${r}`).join(', ')}`;
    notEstablished.push(`the neighbouring relation is recorded inconsistently (${recorded.map(([w, r]) => `${w}: ${r}`).join('; ')})`);
  } else if (relations.length === 1) {
    relation = relations[0];
    relationSource = `recorded in ${[...new Set(recorded.map(([w]) => w))].join(' and ')}`;
  } else {
    relationSource = 'not recorded (run folder written before relations were recorded): the statement holds for the relation the method’s proof uses, which this folder does not name';
  }

  // ---- linked ledgers: other spending on the same private data.
  const linked: LinkedLedgerSummary[] = run.linkedLedgers.map((l) => {
    if (!l.exists) return { name: l.name, purpose: l.purpose, integrity: { status: 'failed', detail: 'file missing' } };
    const f = ledgerFacts(l.path, l.lines, delta, accountantName);
    if (f.relation && relation && f.relation !== relation) notEstablished.push(`linked ledger ${l.name} records the ${f.relation} relation, this run ${relation}`);
    return { name: l.name, purpose: l.purpose, integrity: f.integrity, entryCount: f.entryCount, epsilon: f.epsilon, epsilonSource: f.epsilonSource, epsilonNote: f.epsilonNote };
  });
  let totalEpsilon: number | undefined;
  let totalDelta: number | undefined;
  if (linked.length) {
    const parts = [epsilon, ...linked.map((l) => l.epsilon)];
    totalEpsilon = parts.every((x): x is number => x !== undefined) ? parts.reduce((a, b) => a + b, 0) : undefined;
    totalDelta = delta !== undefined ? delta * parts.length : undefined;
  }

  if (run.ledgerMissing) notEstablished.push(`the ledger named in run.json (${run.ledgerName}) is missing, so the budget this run spent cannot be verified`);
  else if (fromLedger?.integrity.status === 'failed') notEstablished.push(`ledger failed verification (${fromLedger.integrity.detail})`);
  for (const l of linked) if (l.integrity.status === 'failed') notEstablished.push(`linked ledger ${l.name} (${l.purpose}) failed verification (${l.integrity.detail})`);
  if (run.damaged['run.json']) notEstablished.push(`run.json is damaged (${run.damaged['run.json']}), so what the run released cannot be listed`);

  // ---- what is public by assumption, released outside the guarantee, or private.
  const released: ReleasedFact[] = mp?.released ?? [];
  const treatedAsPublic = [...(mp?.treatedAsPublic ?? [])];
  for (const f of released) if (f.status === 'public-by-assumption' && !treatedAsPublic.includes(f.what)) treatedAsPublic.push(f.what);
  const releasedOutside: PrivacySummary['releasedOutside'] = released.filter((f) => f.status === 'outside-guarantee').map((f) => ({ what: f.what, where: f.where, why: f.why }));
  for (const a of manifest?.artifacts ?? []) if (a.status === 'outside-guarantee') releasedOutside.push({ what: a.what, where: [a.path], why: a.why });

  const { attempts, source: attemptsSource } = attemptsOf(run, entries);
  const integrity: IntegrityFacts = run.ledgerMissing
    ? { status: 'failed', detail: `${run.ledgerName} is named in run.json but missing` }
    : (fromLedger?.integrity ?? { status: 'not checked', detail: 'no ledger.jsonl' });

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
    fingerprints: fingerprintsOf(run, entryFps),
    randomness,
    integrity,
    nonPrivate,
    ...(fromLedger?.metricDp ? { metricDp: fromLedger.metricDp } : {}),
    relation,
    relationSource,
    treatedAsPublic,
    releasedOutside,
    privateFiles: run.privateFiles,
    manifestKnown: !!manifest,
    linked,
    totalEpsilon,
    totalDelta,
    established: integrity.status === 'verified' && notEstablished.length === 0,
    notEstablished,
    attempts,
    attemptsSource,
  };
}
