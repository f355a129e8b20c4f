/**
 * `dplens budget show LEDGER`: verifies a privacy ledger (hash chain + tip) and summarises it:
 * entries, methods, dataset fingerprints, randomness, and epsilon spent at the ledger's delta.
 */
import { UsageError, getChoice, getNumber, stringFlags } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { PrivacyLedger, describeEvent, describeMetricDp, describeRelation, makeAccountant, withMetricDp } from '../../privacy/index.js';
import type { AccountantKind } from '../../privacy/index.js';

const command: Command = {
  name: 'budget',
  summary: 'verify and summarise a privacy ledger (epsilon spent, releases, methods)',
  usage: 'dplens budget show LEDGER [--delta D] [--json]',
  description:
    'Reads a ledger.jsonl written by dplens, checks its hash chain and tip file (any edit, reordering, truncation, removed entry or missing tip is reported and the command fails; the tip MAC is checked with the data owner key when it is available), and prints the neighbouring relation the releases were priced under (in words), the number of releases, the methods and dataset fingerprints involved, the randomness used (header and per entry), what the integrity check protects against (keyed or unkeyed chain), and epsilon spent at delta (the ledger budget delta, or --delta, default 1e-5) by the accountant the ledger was created with. Ledgers written before relations were recorded are reported as "not recorded (legacy ledger)" and priced as before. A LEDGER that is a folder means LEDGER/ledger.jsonl.',
  flags: {
    ...stringFlags({
      delta: 'delta at which to report epsilon (default: the ledger budget delta, else 1e-5)',
      accountant: 'also price the recorded releases with this accountant (rdp|pld), e.g. a tighter PLD figure for an RDP ledger',
    }),
  },
  examples: ['dplens budget show runs/train-1/ledger.jsonl', 'dplens budget show runs/train-1 --delta 1e-6 --json'],
  async run(args: ParsedArgs, out: Output): Promise<number> {
    const [sub, path, ...rest] = args.positionals;
    if (sub !== 'show') throw new UsageError(sub === undefined ? 'missing sub-command: dplens budget show LEDGER' : `unknown sub-command "${sub}" (expected: show)`);
    if (!path) throw new UsageError('missing LEDGER path: dplens budget show LEDGER');
    if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const { existsSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'ledger.jsonl') : path;
    if (!existsSync(file)) throw new UsageError(`no such ledger: ${file}`);
    let ledger: PrivacyLedger;
    try {
      ledger = PrivacyLedger.read(file);
    } catch (e) {
      const err = e as Error;
      if (out.opts.json) process.stdout.write(JSON.stringify({ ledger: file, ok: false, tamperCheck: 'failed', error: err.message }) + '\n');
      process.stderr.write(`dplens budget: TAMPERED OR CORRUPT LEDGER: ${err.message}\n`);
      return 3;
    }
    const delta = getNumber(args, 'delta', ledger.header.budget?.delta ?? 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!;
    const d = ledger.spentDetails(delta);
    const methods: Record<string, number> = {};
    const fingerprints = new Set<string>();
    const entryRandomness: Record<string, number> = {};
    for (const e of ledger.entries) {
      methods[e.method] = (methods[e.method] ?? 0) + 1;
      fingerprints.add(e.datasetFingerprint);
      const r = e.randomness === undefined ? 'not recorded (legacy entry)' : e.randomness.kind === 'seeded' ? `seeded (seed ${e.randomness.seed})` : 'secure';
      entryRandomness[r] = (entryRandomness[r] ?? 0) + 1;
    }
    const v = ledger.verification;
    const res: Record<string, unknown> = {
      ledger: file,
      ok: true,
      tamperCheck: v.tip === 'verified' ? 'hash chain and tip verified' : `hash chain verified; ${v.tip}`,
      chain: v.keyed ? (v.macVerified ? 'keyed (tip MAC verified with the owner key)' : 'keyed (tip MAC not checked here)') : 'unkeyed: detects accidental damage only',
      chainProtection: v.protection,
      relation: ledger.relation === 'unrecorded' ? 'not recorded (legacy ledger)' : ledger.relation,
      relationDescription: describeRelation(ledger.relation),
      entries: ledger.entries.length,
      accountant: ledger.header.accountant,
      randomness: ledger.header.randomness,
      entryRandomness,
      createdAt: ledger.header.createdAt,
      methods,
      datasetFingerprints: [...fingerprints],
      // no (ε, δ) is stated for metric-DP releases (vmf): null, with the metric guarantee below
      epsilon: ledger.metricSpent() ? null : d.epsilon,
      delta,
      // (ε, δ), or metric DP (vmf) stated in its own terms (then epsilon above is ∞ / null), or none
      guarantee: ledger.guarantee(delta),
    };
    const metric = ledger.metricSpent();
    if (metric) res.metricDp = describeMetricDp(metric.epsilon, metric.metric);
    if (d.optimalOrder !== undefined) res.optimalOrder = d.optimalOrder;
    if (args.flags.has('accountant')) {
      const kind = getChoice<AccountantKind>(args, 'accountant', ['rdp', 'pld'], 'rdp');
      const acc = withMetricDp(makeAccountant(kind, { relation: ledger.relation }));
      for (const e of ledger.entries) acc.compose(e.event);
      res.recomputed = { accountant: kind, epsilon: acc.getEpsilon(delta), delta };
    }
    if (ledger.header.budget) {
      res.budget = ledger.header.budget;
      res.remainingEpsilon = ledger.header.budget.epsilon - ledger.spent(ledger.header.budget.delta);
    }
    if (ledger.entries.length) {
      res.firstRelease = ledger.entries[0].time;
      res.lastRelease = ledger.entries[ledger.entries.length - 1].time;
    }
    res.warnings = ledger.relation === 'unrecorded' ? ['legacy ledger: the neighbouring relation was not recorded; priced as before, without a relation check', ...d.warnings] : d.warnings;
    if (!out.opts.json) {
      const last = ledger.entries.slice(-5).map((e) => `#${e.seq} ${e.time} ${e.method} ${describeEvent(e.event)}${e.resultLocation ? ' -> ' + e.resultLocation : ''}`);
      if (last.length) res.lastEntries = last;
    }
    out.result(res);
    return 0;
  },
};

export default command;
