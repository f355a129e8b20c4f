/**
 * The report's only contact with the privacy layer: read the ledger (which verifies its hash chain
 * and tip file), recompute ε at δ with the ledger's own accountant, and say how randomness was drawn.
 * A ledger that fails verification is still summarised — from its unverified lines, clearly labelled.
 */
import { PrivacyLedger, makeAccountant, validateEvent, type AccountantKind } from '../privacy/index.js';
import type { JsonObject } from './run-folder.js';
import type { PrivacySummary } from './privacy-summary.js';

export interface LedgerFacts {
  entryCount?: number;
  epsilon?: number;
  epsilonSource?: string;
  epsilonNote?: string;
  delta?: number;
  accountant?: string;
  budget?: { epsilon: number; delta: number };
  randomness?: PrivacySummary['randomness'];
  integrity: PrivacySummary['integrity'];
}

function randomnessOf(r: { kind?: string; seed?: number } | undefined): PrivacySummary['randomness'] | undefined {
  if (!r || (r.kind !== 'secure' && r.kind !== 'seeded')) return undefined;
  return { kind: r.kind, seed: r.seed, detail: 'recorded in the ledger header' };
}

/**
 * @param lines the ledger's JSON lines as parsed leniently (used only when verification fails)
 * @param configDelta δ from config.json, preferred over the ledger budget's δ
 */
export function ledgerFacts(path: string, lines: readonly JsonObject[], configDelta: number | undefined, configAccountant: string | undefined): LedgerFacts {
  try {
    const ledger = PrivacyLedger.read(path);
    const h = ledger.header;
    const delta = configDelta ?? h.budget?.delta;
    const facts: LedgerFacts = {
      entryCount: ledger.entries.length,
      delta,
      accountant: h.accountant,
      budget: h.budget,
      randomness: randomnessOf(h.randomness),
      integrity: {
        status: 'verified',
        detail: `hash chain intact over ${ledger.entries.length} entr${ledger.entries.length === 1 ? 'y' : 'ies'}; tip file: ${ledger.verification.tip}`,
      },
    };
    if (delta === undefined) {
      facts.epsilonNote = 'δ is recorded neither in config.json nor in the ledger budget, so ε cannot be stated';
    } else {
      const d = ledger.spentDetails(delta);
      facts.epsilon = d.epsilon;
      facts.epsilonSource = `recomputed from the verified ledger by the ${h.accountant} accountant`;
      if (d.warnings?.length) facts.epsilonNote = d.warnings.join('; ');
    }
    return facts;
  } catch (e) {
    const err = e as Error;
    const facts: LedgerFacts = { integrity: { status: 'failed', detail: err.message } };
    // Still price what the file claims, so a reader sees the size of the claim — labelled as unverified.
    const header = lines.find((l) => l.type === 'header');
    const kind = (header?.accountant ?? configAccountant) as AccountantKind | undefined;
    const budget = header?.budget as { epsilon: number; delta: number } | undefined;
    const delta = configDelta ?? budget?.delta;
    facts.accountant = kind;
    facts.delta = delta;
    facts.budget = budget;
    facts.randomness = randomnessOf(header?.randomness as { kind?: string; seed?: number } | undefined);
    if (delta !== undefined && (kind === 'rdp' || kind === 'pld')) {
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
        facts.epsilon = acc.getEpsilon(delta);
        facts.epsilonSource = 'computed from the UNVERIFIED ledger lines — the ledger failed its integrity check';
      } catch (e2) {
        facts.epsilonNote = `ε could not be computed from the unverified ledger: ${(e2 as Error).message}`;
      }
    }
    return facts;
  }
}
