/**
 * The data facts a run folder releases, as run.json `privacy.released` entries: the data layer's
 * `disclosedFacts()` (class count, class names, CSV schema, CSV encoding statistics, each with its
 * status) plus where this runner writes each one. A fact the runner does not write is left out.
 */
import { disclosedFacts, type Dataset, type DisclosedFact } from '../data/index.js';
import type { ReleasedFact } from './manifest.js';

/** Where a runner writes each kind of data fact (files, or "stdout"); an absent kind is not written. */
export interface DataFactSites {
  classCount?: string[];
  classNames?: string[];
  schema?: string[];
  /** CSV encoding statistics (means/stds, category lists), and why the runner writes them there. */
  encoding?: { where: string[]; because: string };
}

function siteOf(fact: DisclosedFact, sites: DataFactSites): { where: string[]; why: string } | undefined {
  const at = (where: string[] | undefined) => (where && where.length ? { where, why: fact.why } : undefined);
  if (fact.what.startsWith('class count')) return at(sites.classCount);
  if (fact.what.startsWith('class names')) return at(sites.classNames);
  if (fact.what.startsWith('CSV schema')) return at(sites.schema);
  if (fact.what.startsWith('CSV encoding of') && sites.encoding?.where.length) {
    // disclosedFacts() says "only if written"; this runner does write them, so say where and why.
    return { where: sites.encoding.where, why: `${sites.encoding.because}; ${fact.why.replace(/^only if written \(publicColumns\(\) leaves it out\); /, '')}` };
  }
  return undefined;
}

/** `disclosedFacts(ds)` with `where` filled from `sites`; facts not written anywhere are dropped. */
export function dataReleasedFacts(ds: Dataset, sites: DataFactSites): ReleasedFact[] {
  const out: ReleasedFact[] = [];
  for (const f of disclosedFacts(ds)) {
    const s = siteOf(f, sites);
    if (s) out.push({ what: f.what, where: s.where, status: f.status, why: s.why });
  }
  return out;
}

/** True when some released fact written to `file` is outside the guarantee. */
export function fileHoldsUncovered(facts: readonly ReleasedFact[], file: string): boolean {
  return facts.some((f) => f.status === 'outside-guarantee' && f.where.includes(file));
}

/**
 * Every ledger entry carries the time it was recorded, so the gaps between entries are wall times
 * of the work between two releases, which can depend on the data (e.g. the class counts of a
 * voting step's queries). Every runner that writes a ledger lists this fact.
 */
export const LEDGER_TIMESTAMPS: ReleasedFact = {
  what: 'time stamp of each ledger entry (the gaps between releases are wall times)',
  where: ['ledger.jsonl'],
  status: 'outside-guarantee',
  why: 'the work between two releases can take a data-dependent time; per-step timings themselves are kept in private-diagnostics.jsonl',
};
