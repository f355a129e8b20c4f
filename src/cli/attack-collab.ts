/**
 * `dplens attack hitaj-gan` and `dplens attack gradient-leakage` (issue 17 item 7): the flags and
 * the two sub-command bodies, kept out of commands/attack.ts so that file only dispatches. Each
 * runs a runner of src/runs/ into --out and writes the report.
 */
import type { FlagSpec, ParsedArgs } from './args.js';
import { getBool, getInteger, getNumber, getSeed, getString, UsageError, stringFlags } from './args.js';
import type { Output } from './output.js';
import { writeReport } from '../report/index.js';

/** Flags of the two attacks (merged into `dplens attack`'s table; --model, --split, --noise, --clip are invert's, reused). */
export const COLLAB_ATTACK_FLAGS: Record<string, FlagSpec> = {
  ...stringFlags({
    'victim-class': 'hitaj-gan: the victim\'s class v (default 3); the victim holds v and the next 4 classes, the adversary the rest',
    'per-class': 'hitaj-gan: training records per class and party (default 600)',
    rounds: 'hitaj-gan: collaboration rounds (default 100)',
    'victim-steps': 'hitaj-gan: victim\'s local SGD steps per round (default 5)',
    'adversary-steps': 'hitaj-gan: adversary\'s local SGD steps per round (default 5)',
    'generator-steps': 'hitaj-gan: adversary\'s generator steps per round (default 5)',
    'batch-size': 'hitaj-gan: batch size (the DP victim\'s expected Poisson batch; default 64)',
    'upload-fraction': 'hitaj-gan: θu, fraction of each local update uploaded (largest magnitudes; default 1)',
    'download-fraction': 'hitaj-gan: θd, fraction of the global parameters downloaded (default 1)',
    lr: 'hitaj-gan: shared model SGD learning rate (default 0.1)',
    epsilon: 'hitaj-gan: record-level DP for the victim: σ calibrated so the planned steps spend ε (or give --noise σ)',
    delta: 'hitaj-gan: δ (default 1e-5)',
    samples: 'hitaj-gan: generator samples judged at the end (default 500)',
    'eval-every': 'hitaj-gan: judge 200 samples every N rounds (default 10)',
    clients: 'gradient-leakage: clients in the pool, one example each (default 1000)',
    targets: 'gradient-leakage: target clients whose label/image is predicted, half fit half held out (default 600)',
    aggregation: 'gradient-leakage: comma-separated numbers of clients averaged (default 1,10,100)',
    'project-dim': 'gradient-leakage: dimension of the decoders\' random projection (default 128)',
    'sensitivity-examples': 'gradient-leakage: examples for the Jacobian sensitivity (default 16)',
    'subspace-per-class': 'gradient-leakage: examples per half-class for the subspace distance (default 8)',
  }),
  control: { type: 'boolean', help: 'hitaj-gan: baseline run where the victim does not hold its class v' },
};

const HITAJ_ONLY = ['victim-class', 'per-class', 'rounds', 'victim-steps', 'adversary-steps', 'generator-steps', 'batch-size', 'upload-fraction', 'download-fraction', 'lr', 'epsilon', 'delta', 'samples', 'eval-every', 'control'];
const LEAKAGE_ONLY = ['clients', 'targets', 'aggregation', 'project-dim', 'sensitivity-examples', 'subspace-per-class'];
const INVERT_ONLY = ['index', 'method', 'iterations', 'restarts', 'tv'];

/** Refuses flags that belong to another attack. */
export function checkAttackFlags(args: ParsedArgs, sub: string): void {
  const foreign = sub === 'hitaj-gan' ? [...LEAKAGE_ONLY, ...INVERT_ONLY, 'model', 'split'] : sub === 'gradient-leakage' ? [...HITAJ_ONLY, ...INVERT_ONLY] : [...HITAJ_ONLY, ...LEAKAGE_ONLY];
  for (const f of foreign) if (args.flags.has(f)) throw new UsageError(`--${f} does not apply to dplens attack ${sub}`);
}

export async function runHitajCommand(args: ParsedArgs, out: Output, argv: string[]): Promise<number> {
  const outDir = getString(args, 'out');
  if (!outDir) throw new UsageError('--out DIR is required (the attack writes a run folder)');
  const { runHitajJob } = await import('../runs/attack-hitaj.js');
  const r = await runHitajJob({
    data: getString(args, 'data', 'mnist'),
    out: outDir,
    victimClass: getInteger(args, 'victim-class', 3)!,
    perClass: getInteger(args, 'per-class', 600, 1)!,
    rounds: getInteger(args, 'rounds', 100, 1)!,
    victimSteps: getInteger(args, 'victim-steps', 5, 1)!,
    adversarySteps: getInteger(args, 'adversary-steps', 5, 1)!,
    generatorSteps: getInteger(args, 'generator-steps', 5, 1)!,
    batchSize: getInteger(args, 'batch-size', 64, 1)!,
    uploadFraction: getNumber(args, 'upload-fraction', 1, (x) => (x > 0 && x <= 1) || 'must be in (0, 1]')!,
    downloadFraction: getNumber(args, 'download-fraction', 1, (x) => (x > 0 && x <= 1) || 'must be in (0, 1]')!,
    learningRate: getNumber(args, 'lr', 0.1, (x) => x > 0 || 'must be > 0')!,
    epsilon: getNumber(args, 'epsilon', undefined, (x) => x > 0 || 'must be > 0'),
    noise: getNumber(args, 'noise', undefined, (x) => x > 0 || 'must be > 0'),
    delta: getNumber(args, 'delta', 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!,
    clip: getNumber(args, 'clip', 1, (x) => x > 0 || 'must be > 0')!,
    control: getBool(args, 'control'),
    samples: getInteger(args, 'samples', 500, 100)!,
    evalEvery: getInteger(args, 'eval-every', 10, 1)!,
    seed: getSeed(args),
    argv: ['dplens', ...argv],
    onLog: (l) => out.log(l),
  });
  out.log(`report: ${await writeReport(r.runDir)}`);
  out.result({ ...r, report: `${r.runDir}/report.html` });
  return 0;
}

export async function runLeakageCommand(args: ParsedArgs, out: Output, argv: string[]): Promise<number> {
  const outDir = getString(args, 'out');
  if (!outDir) throw new UsageError('--out DIR is required (the attack writes a run folder)');
  const split = getString(args, 'split', 'test');
  if (split !== 'train' && split !== 'test') throw new UsageError(`--split must be train or test, got "${split}"`);
  const aggregation = getString(args, 'aggregation', '1,10,100')
    .split(',')
    .map((s) => {
      const x = Number(s.trim());
      if (!Number.isInteger(x) || x < 1) throw new UsageError(`--aggregation must be comma-separated integers >= 1, got "${s}"`);
      return x;
    });
  const { runLeakageJob } = await import('../runs/attack-leakage.js');
  const clip = getNumber(args, 'clip', undefined, (x) => x > 0 || 'must be > 0');
  const noise = getNumber(args, 'noise', undefined, (x) => x >= 0 || 'must be >= 0');
  if (clip !== undefined && noise === undefined) throw new UsageError('--clip applies with --noise (the per-client DP release); give both');
  const r = await runLeakageJob({
    data: getString(args, 'data', 'mnist'),
    out: outDir,
    model: getString(args, 'model', 'cnn'),
    split,
    clients: getInteger(args, 'clients', 1000, 16)!,
    targets: getInteger(args, 'targets', 600, 8)!,
    aggregation,
    projectDim: getInteger(args, 'project-dim', 128, 2)!,
    sensitivityExamples: getInteger(args, 'sensitivity-examples', 16, 1)!,
    subspacePerClass: getInteger(args, 'subspace-per-class', 8, 2)!,
    ...(noise !== undefined ? { noise, clip: clip ?? 1 } : {}),
    seed: getSeed(args),
    argv: ['dplens', ...argv],
    onLog: (l) => out.log(l),
  });
  out.log(`report: ${await writeReport(r.runDir)}`);
  out.result({ ...r, report: `${r.runDir}/report.html` });
  return 0;
}
