import type { Command } from '../command.js';
import { getBool, getChoice, getInteger, getNumber, getSeed, getString, noPositionals, UsageError, stringFlags } from '../args.js';

const command: Command = {
  name: 'audit',
  summary: 'empirical privacy audit of a finished run: a statistically valid lower bound on ε from one extra (recorded) run with canaries',
  usage: 'dplens audit --run DIR [--canaries 1000] [--confidence 0.95] [--canary-type gradient|input] [--data-not-private] [--json]',
  description:
    'Reads DIR/config.json of a `dplens train` run, re-runs the same training once with m canaries each included with probability 1/2 (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run"), scores the canaries, and computes the largest ε such that the number of correct membership guesses is inconsistent with (ε, δ)-DP at the given confidence (guesses pre-registered from public facts: the number of "in" guesses is a fixed fraction of the expected number of canaries sampled at least once). Gradient canaries (default) are Dirac gradients of norm C, each entering the Poisson batches at the run\'s rate, observed through every noisy update (the white-box threat model of DP-SGD) and scored by a spike likelihood ratio; input canaries are mislabeled held-out images scored by the final model\'s loss (black box). The re-run uses the same private data, so its releases are recorded in DIR/audit-ledger.jsonl (synthesis: DIR/audit-rerun/ledger.jsonl), linked from run.json so the report adds them (additionalEpsilonSpent); --data-not-private skips that for data that is not private. A `dplens synth` run (DataLens, G-PATE) is audited without a re-run: its aggregator (the run\'s own noise code and parameters) is replayed for the run\'s steps with canary voters of the step\'s full charged sensitivity, each scored by its share of every released aggregate; that reads no private data and spends no ε (--canary-type input: the black-box input-canary re-run instead). Writes DIR/audit.json (claimed ε, δ, bound, ROC, AUC) and refreshes DIR/report.html. A bound above the claimed ε means the implementation leaks more than its accounting says.',
  flags: {
    ...stringFlags({
      run: 'run folder written by `dplens train --out DIR` (required)',
      canaries: 'number of canaries m (default 1000)',
      confidence: 'confidence of the lower bound (default 0.95)',
      'canary-type': 'gradient (default; Dirac gradient canaries, white box) | input (mislabeled images, black box)',
    }),
    'data-not-private': { type: 'boolean', help: 'the run\'s data is not private: do not record the audit re-run in an audit ledger (default: record it)' },
  },
  examples: [
    'dplens train --data mnist --epochs 1 --noise 1.3 --out runs/m1 && dplens audit --run runs/m1 --json',
    'dplens train --data mnist --epochs 1 --noise 0 --out runs/m0 && dplens audit --run runs/m0 --json   # non-private calibration run',
  ],
  async run(args, out) {
    noPositionals(args);
    const dir = getString(args, 'run');
    if (!dir) throw new UsageError('--run DIR is required (a folder written by dplens train --out DIR)');
    const m = getInteger(args, 'canaries', 1000, 2)!;
    const confidence = getNumber(args, 'confidence', 0.95, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!;
    const canaryType = getChoice(args, 'canary-type', ['gradient', 'input'] as const, 'gradient');
    const seed = getSeed(args);
    const { existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    if (!existsSync(join(dir, 'config.json'))) throw new UsageError(`${dir} is not a run folder (no config.json)`);
    const threads = getInteger(args, 'threads', undefined, 1);
    const { initEngine } = await import('../../engine/index.js');
    await initEngine(threads ? { threads } : {});
    const { auditRun } = await import('../../runs/audit.js');
    const dataNotPrivate = getBool(args, 'data-not-private');
    out.log(`auditing ${dir}: re-running its pipeline once with ${m} ${canaryType} canaries${dataNotPrivate ? ' (data declared not private: the re-run is not recorded)' : ' (the re-run is recorded in the audit ledger)'}`);
    let progress: ReturnType<typeof out.progress> | undefined;
    const report = await auditRun(dir, {
      canaries: m,
      confidence,
      canaryType,
      seed,
      dataNotPrivate,
      onStep: (info) => {
        progress ??= out.progress(info.totalSteps, 'audit run');
        progress.update(info.step, { eps: info.epsilon }); // the re-run's batch loss is a private diagnostic
      },
      log: (s) => out.log(s),
    });
    progress?.done();
    try {
      const { writeReport } = await import('../../report/index.js');
      await writeReport(dir);
    } catch (e) {
      out.log(`report not refreshed: ${(e as Error).message}`);
    }
    const { roc: _roc, ...rest } = report;
    out.result({ ...rest, auditFile: join(dir, 'audit.json') });
    return 0;
  },
};

export default command;
