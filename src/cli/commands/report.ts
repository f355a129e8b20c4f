import { existsSync, statSync } from 'node:fs';
import { UsageError, getString } from '../args.js';
import type { Command } from '../command.js';
import { writeReport } from '../../report/index.js';

const command: Command = {
  name: 'report',
  summary: 'rebuild the self-contained HTML report of a run folder',
  usage: 'dplens report --run DIR [--json]',
  description: [
    'Builds DIR/report.html from whatever the run folder holds (run.json — or config.json for older folders —,',
    'ledger.jsonl and linked ledgers, metrics.jsonl, samples.png, eval.json, audit.json). ε is recomputed from the',
    "ledgers by the privacy accountant and their integrity is checked; when a check fails the report says the",
    'guarantee is NOT established. The guarantee section names the neighbouring relation, what the proof treats',
    'as public and what the folder releases outside the guarantee; private-diagnostics.jsonl is never shown.',
    'The file is self-contained (no scripts, no external resources): it can be mailed or archived as it is.',
    'Missing pieces are shown as "not available", unreadable ones as "damaged".',
  ].join('\n'),
  flags: {
    run: { type: 'string', help: 'run folder to report on (also accepted as the first positional argument)' },
  },
  examples: ['dplens report --run runs/mnist-dpsgd', 'dplens report runs/demo/train --json'],
  async run(args, out) {
    const dir = getString(args, 'run') ?? args.positionals[0];
    if (!dir) throw new UsageError('--run DIR is required (the run folder to report on)');
    if (args.positionals.length > (getString(args, 'run') ? 0 : 1)) throw new UsageError(`unexpected argument "${args.positionals.at(-1)}"`);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`run folder "${dir}" does not exist`);
    const t0 = Date.now();
    const path = await writeReport(dir);
    out.log(`report written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    out.result({ report: path });
    return 0;
  },
};
export default command;
