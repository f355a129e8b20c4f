/**
 * The report's only contact with the privacy layer: read a ledger (which verifies its hash chain
 * and tip file), recompute ε at δ with the ledger's own accountant, and say how randomness was drawn
 * and under which neighbouring relation the events were recorded.
 * A ledger that fails verification is still summarised — from its unverified lines, clearly labelled —
 * but the report never states its guarantee as fact.
 *
 * This file imports nothing from the rest of report/ except the JSON types, so that the privacy
 * summary can build on it without an import cycle.
 */
import { PrivacyLedger, isNeighbouringRelation, makeAccountant, validateEvent, type AccountantKind, type NeighbouringRelation } from '../privacy/index.js';
import type { JsonObject } from './run-folder.js';

export interface RandomnessFacts {
  kind: 'secure' | 'seeded' | 'unknown';
  seed?: number | string;
  detail: string;
}

export interface IntegrityFacts {
  status: 'verified' | 'failed' | 'not checked';
  detail: string;
}

export interface LedgerFacts {
  entryCount?: number;
  epsilon?: number;
  /** Metric-DP guarantee of the ledger's metric-DP entries (vmf); ε above is then ∞ (no (ε, δ) stated). */
  metricDp?: { epsilon: number; metric: string };
  epsilonSource?: string;
  epsilonNote?: string;
  delta?: number;
  accountant?: string;
  budget?: { epsilon: number; delta: number };
  randomness?: RandomnessFacts;
  /** The relation recorded in the ledger header (absent in ledgers written before relations were recorded). */
  relation?: NeighbouringRelation;
  integrity: IntegrityFacts;
}

function randomnessOf(r: { kind?: string; seed?: number } | undefined): RandomnessFacts | undefined {
  if (!r || (r.kind !== 'secure' && r.kind !== 'seeded')) return undefined;
  return { kind: r.kind, seed: r.seed, detail: 'recorded in the ledger header' };
}

/**
 * Entries may record the randomness of the attempt that wrote them (a resumed run can change it);
 * the run is only as secure as its least secure entry.
 */
function worstEntryRandomness(lines: readonly JsonObject[], header: RandomnessFacts | undefined): RandomnessFacts | undefined {
  for (const l of lines) {
    if (!(l.event && typeof l.event === 'object')) continue;
    const meta = l.meta && typeof l.meta === 'object' && !Array.isArray(l.meta) ? l.meta : undefined;
    const r = (l.randomness ?? meta?.randomness) as { kind?: string; seed?: number } | undefined;
    if (r && typeof r === 'object' && r.kind === 'seeded' && header?.kind !== 'seeded') {
      return { kind: 'seeded', seed: r.seed, detail: `entry #${String(l.seq ?? '?')} was written with seeded randomness although the header says ${header?.kind ?? 'nothing'}` };
    }
  }
  return header;
}

/**
 * @param lines the ledger's JSON lines as parsed leniently (used for the unverified fallback and
 *   for fields the verified reader does not expose)
 * @param delta δ at which to state ε (from run.json or config.json), preferred over the ledger budget's δ
 */
export function ledgerFacts(path: string, lines: readonly JsonObject[], delta: number | undefined, fallbackAccountant: string | undefined): LedgerFacts {
  const rawHeader = lines.find((l) => l.type === 'header');
  try {
    const ledger = PrivacyLedger.read(path);
    const h = ledger.header;
    const d = delta ?? h.budget?.delta;
    const facts: LedgerFacts = {
      entryCount: ledger.entries.length,
      delta: d,
      accountant: h.accountant,
      budget: h.budget,
      randomness: worstEntryRandomness(lines, randomnessOf(h.randomness)),
      relation: h.relation,
      integrity: {
        status: 'verified',
        detail: `hash chain intact over ${ledger.entries.length} entr${ledger.entries.length === 1 ? 'y' : 'ies'}; tip file: ${ledger.verification.tip}`,
      },
    };
    if (d === undefined) {
      facts.epsilonNote = 'δ is recorded neither in the run manifest/config nor in the ledger budget, so ε cannot be stated';
    } else {
      const details = ledger.spentDetails(d);
      facts.epsilon = details.epsilon;
      facts.epsilonSource = `recomputed from the verified ledger by the ${h.accountant} accountant`;
      const metricDp = ledger.metricSpent();
      if (metricDp) facts.metricDp = metricDp;
      if (details.warnings?.length) facts.epsilonNote = details.warnings.join('; ');
    }
    return facts;
  } catch (e) {
    const err = e as Error;
    const facts: LedgerFacts = { integrity: { status: 'failed', detail: err.message }, relation: isNeighbouringRelation(rawHeader?.relation) ? rawHeader.relation : undefined };
    // Still price what the file claims, so a reader sees the size of the claim — labelled as unverified.
    const kind = (rawHeader?.accountant ?? fallbackAccountant) as AccountantKind | undefined;
    const budget = rawHeader?.budget as { epsilon: number; delta: number } | undefined;
    const d = delta ?? budget?.delta;
    facts.accountant = kind;
    facts.delta = d;
    facts.budget = budget;
    facts.randomness = worstEntryRandomness(lines, randomnessOf(rawHeader?.randomness as { kind?: string; seed?: number } | undefined));
    if (d !== undefined && (kind === 'rdp' || kind === 'pld')) {
      try {
        const acc = makeAccountant(kind);
        let n = 0;
        for (const l of lines) {
          if (l.event && typeof l.event === 'object') {
            acc.compose(validateEvent(l.event));
            n++;
          }
        }
        facts.entryCount = n;
        facts.epsilon = acc.getEpsilon(d);
        facts.epsilonSource = 'computed from the UNVERIFIED ledger lines — the ledger failed its integrity check';
      } catch (e2) {
        facts.epsilonNote = `ε could not be computed from the unverified ledger: ${(e2 as Error).message}`;
      }
    }
    return facts;
  }
}
