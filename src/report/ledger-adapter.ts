/**
 * The report's only contact with the privacy layer: open the ledger read-only, recompute ε at δ
 * and run its integrity check. Kept in one file so the report survives privacy-layer changes.
 */
import * as privacy from '../privacy/index.js';
import type { PrivacySummary } from './privacy-summary.js';

export interface LedgerFacts {
  entryCount?: number;
  epsilon?: number;
  epsilonNote?: string;
  delta?: number;
  accountant?: string;
  randomness?: PrivacySummary['randomness'];
  integrity: PrivacySummary['integrity'];
}

export async function ledgerFacts(path: string, accountant: string | undefined, delta: number | undefined): Promise<LedgerFacts | undefined> {
  const api = privacy as unknown as Record<string, unknown>;
  const Ledger = api.PrivacyLedger as
    | { open(path: string, opts: { accountant: string; create?: boolean }): { spent(delta: number): number; entries: readonly unknown[] } }
    | undefined;
  if (!Ledger || typeof Ledger.open !== 'function') return undefined;
  try {
    const ledger = Ledger.open(path, { accountant: accountant === 'pld' ? 'pld' : 'rdp', create: false });
    const facts: LedgerFacts = { entryCount: ledger.entries.length, delta, accountant: accountant ?? 'rdp', integrity: { status: 'not checked', detail: 'the privacy layer offers no ledger verification' } };
    if (delta !== undefined) facts.epsilon = ledger.spent(delta);
    else facts.epsilonNote = 'δ is not recorded in config.json, so ε cannot be computed';
    return facts;
  } catch (e) {
    return { integrity: { status: 'failed', detail: (e as Error).message } };
  }
}
