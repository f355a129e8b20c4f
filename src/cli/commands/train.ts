import type { Command } from '../command.js';
import { getBool, getChoice, getInteger, getNumber, getSeed, getString, noPositionals, UsageError, stringFlags } from '../args.js';
import { CATEGORICAL_FLAG, CLASS_FLAGS, categoricalColumns, declaredClasses } from '../flags.js';
import type { FlagSpec } from '../args.js';
import { dataFlagSpecs } from '../../data/index.js';
import { type MethodOption, type MethodOptionValues, privatizers } from '../../train/privatizers/index.js';
import { optimizers } from '../../train/optimizers/index.js';
import { ensureEngine } from '../../engine/index.js';
import { runTraining } from '../../runs/train.js';
import { writeReport } from '../../report/index.js';

/** CLI flags of every registered privatizer/optimizer option (help says which method reads each). */
function methodFlags(kind: string, methods: Record<string, { name: string; options: readonly MethodOption[] }>): Record<string, FlagSpec> {
  const out: Record<string, FlagSpec> = {};
  for (const m of Object.values(methods)) for (const o of m.options) if (o.cli !== false) out[o.flag] = { type: o.type === 'boolean' ? 'boolean' : 'string', help: `${o.help} [--${kind} ${m.name}]` };
  return out;
}

/** Values of the registered options given on the command line, keyed by flag (validated). */
function methodOptionValues(args: Parameters<typeof getBool>[0], methods: Record<string, { options: readonly MethodOption[] }>): MethodOptionValues {
  const out: MethodOptionValues = {};
  for (const m of Object.values(methods))
    for (const o of m.options) {
      if (o.cli === false || !args.flags.has(o.flag)) continue;
      if (o.type === 'boolean') out[o.flag] = getBool(args, o.flag);
      else if (o.type === 'integer') out[o.flag] = getInteger(args, o.flag, undefined, o.min ?? 0);
      else out[o.flag] = getNumber(args, o.flag, undefined, o.check ?? (o.min !== undefined ? (x) => x >= o.min! || `must be >= ${o.min}` : undefined));
    }
  return out;
}

const choiceHelp = (methods: Record<string, { name: string; summary: string }>, dflt: string) =>
  Object.values(methods)
    .map((m) => `${m.name}${m.name === dflt ? ' (default)' : ''}: ${m.summary.replace(/ \(default\)$/, '')}`)
    .join(' | ');

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

const command: Command = {
  name: 'train',
  summary: 'train a classifier with DP-SGD (Poisson sampling, per-sample clipping, Gaussian or TopAgg noise)',
  usage: 'dplens train --data mnist --model cnn --epochs 1 --batch 240 --noise 1.3 --clip 1.5 --lr 0.25 --delta 1e-5 [--json]',
  description:
    'Trains the reference CNN (or an MLP) on an image dataset, or an MLP on a CSV table (--label COLUMN; numeric columns standardised, categorical ones one-hot), with differentially private SGD: each step samples every training example independently with probability batch/n, clips each per-sample gradient to --clip, adds Gaussian noise of std noise·clip (or uses TopAgg-SGD votes), and records the step in the run folder\'s privacy ledger before applying it. Prints epsilon, test accuracy, training time and throughput. --noise 0 is an explicitly non-private run (epsilon = infinity, recorded as such).',
  flags: {
    ...dataFlagSpecs('mnist'),
    ...CLASS_FLAGS,
    label: { type: 'string', help: 'CSV --data: the label column (default: label/class/target/y, else the last column); trains an MLP' },
    ...CATEGORICAL_FLAG,
    ...stringFlags({
      model: 'cnn (reference CNN, ReLU; default for images) | cnn-tanh (same CNN with tanh, Papernot et al. 2021) | cnn-tanh-gn (cnn-tanh + GroupNorm) | mlp (default and only choice for a CSV table)',
      epochs: 'epochs, fractions allowed (default 1); steps = round(epochs·n/batch)',
      batch: 'expected (Poisson) batch size (default 240)',
      noise: 'noise multiplier σ (0 = non-private); or use --target-epsilon',
      'target-epsilon': 'calibrate σ to reach this ε after --epochs (also a hard cap)',
      clip: 'per-sample L2 clip bound C (default 1.5) [--privatizer gaussian]',
      lr: 'learning rate (default 0.25)',
      delta: 'δ (default 1e-5)',
      privatizer: choiceHelp(privatizers, 'gaussian'),
    }),
    ...methodFlags('privatizer', privatizers),
    ...stringFlags({
      accountant: 'rdp (default) | pld',
      optimizer: choiceHelp(optimizers, 'sgd'),
    }),
    ...methodFlags('optimizer', optimizers),
    ...stringFlags({
      schedule: 'learning-rate schedule: constant (default) | cosine',
      ema: 'EMA decay of the weights used for evaluation (e.g. 0.999)',
      clipping: 'flat (default) | per-layer [--privatizer gaussian]',
      'physical-batch': 'largest chunk run at once (memory bound, default 256)',
      sampling: 'poisson (default, DP) | shuffle (fixed batches, NOT accounted: ε = ∞)',
      prune: 'magnitude pruning: fraction in [0, 1) of each weight tensor set to zero and kept at zero (same ε: the mask is post-processing; pruning without noise is not DP)',
      corrupt: 'robustness experiment, not a privacy setting: labels:F | features:F | byzantine:F[:negate|target] (comma-separated) corrupts a fraction F of the training records (train/corrupt.ts)',
      'prune-at': 'fraction of the steps after which the prune mask is chosen from the DP weights (0 = from the public init; default 0.5)',
    }),
    resume: { type: 'boolean', help: 'continue the run in --out from its last checkpoint (weights, optimizer momentum, EMA, step count, ledger; stored config unless a flag is given again); refused when the ledger is missing or behind the checkpoint, or the data differ' },
    ...stringFlags({
      'checkpoint-every': 'also save the resume state every N steps (it is saved at least every 60 s of training and at the end)',
      'eval-every': 'test-set evaluation every N epochs into metrics.jsonl (default 1 when --epochs >= 2; 0 = off)',
      backend: 'compute backend: ort (default) | cpu',
    }),
  },
  examples: [
    'dplens train --data mnist --model cnn --epochs 1 --batch 240 --noise 1.3 --clip 1.5 --lr 0.25 --delta 1e-5 --json',
    'dplens train --data fashion-mnist --target-epsilon 3 --epochs 10 --out runs/fmnist',
    'dplens train --data mnist --epochs 0.1 --noise 0 --json   # non-private baseline, ε = ∞',
    'dplens train --data patients.csv --label outcome --model mlp --epochs 5 --batch 64 --target-epsilon 2 --lr 0.1 --out runs/csv',
  ],
  async run(args, out, argv) {
    noPositionals(args);
    const epochs = getNumber(args, 'epochs', 1, (x) => x > 0 || 'must be > 0')!;
    const batch = getInteger(args, 'batch', 240, 1)!;
    const noise = getNumber(args, 'noise', undefined, (x) => x >= 0 || 'must be >= 0');
    const targetEpsilon = getNumber(args, 'target-epsilon', undefined, (x) => x > 0 || 'must be > 0');
    const resume = getBool(args, 'resume');
    const clip = getNumber(args, 'clip', 1.5, (x) => x > 0 || 'must be > 0')!;
    const lr = getNumber(args, 'lr', 0.25, (x) => x > 0 || 'must be > 0')!;
    const delta = getNumber(args, 'delta', 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!;
    const privatizer = getChoice(args, 'privatizer', Object.keys(privatizers), 'gaussian');
    // vmf sets its noise with its own flags and states metric DP, not (ε, δ)
    const ownAccounting = privatizers[privatizer]!.ownAccounting;
    if (ownAccounting && (noise !== undefined || targetEpsilon !== undefined)) throw new UsageError(`--noise / --target-epsilon do not apply to --privatizer ${privatizer} (${ownAccounting.why})`);
    if (!ownAccounting && noise === undefined && targetEpsilon === undefined && !resume) throw new UsageError('give --noise σ or --target-epsilon ε');
    if (noise !== undefined && targetEpsilon !== undefined) throw new UsageError('give either --noise or --target-epsilon, not both');
    const accountant = getChoice(args, 'accountant', ['rdp', 'pld'] as const, 'rdp');
    const model = args.flags.has('model') ? getChoice(args, 'model', ['cnn', 'cnn-tanh', 'cnn-tanh-gn', 'mlp'] as const, 'cnn') : undefined;
    const optimizer = getChoice(args, 'optimizer', Object.keys(optimizers), 'sgd');
    const schedule = getChoice(args, 'schedule', ['constant', 'cosine'] as const, 'constant');
    const clipping = getChoice(args, 'clipping', ['flat', 'per-layer'] as const, 'flat');
    const sampling = getChoice(args, 'sampling', ['poisson', 'shuffle'] as const, 'poisson');
    const backend = getChoice(args, 'backend', ['ort', 'cpu'] as const, 'ort');
    const ema = getNumber(args, 'ema', undefined, (x) => (x > 0 && x < 1) || 'must be in (0, 1)');
    const prune = getNumber(args, 'prune', undefined, (x) => (x >= 0 && x < 1) || 'must be in [0, 1)');
    const corrupt = getString(args, 'corrupt');
    const pruneAt = getNumber(args, 'prune-at', undefined, (x) => (x >= 0 && x <= 1) || 'must be in [0, 1]');
    if (pruneAt !== undefined && prune === undefined) throw new UsageError('--prune-at needs --prune SPARSITY');
    const seed = getSeed(args);
    const categorical = categoricalColumns(args);
    const physical = getInteger(args, 'physical-batch', 256, 1)!;
    const evalEvery = getNumber(args, 'eval-every', undefined, (x) => x >= 0 || 'must be >= 0');
    const checkpointEvery = getInteger(args, 'checkpoint-every', undefined, 1);
    // options of the registered privatizers/optimizers; one given for another method is refused by the runner
    const privatizerOptions = methodOptionValues(args, privatizers);
    const optimizerOptions = methodOptionValues(args, optimizers);
    const threads = getInteger(args, 'threads', undefined, 1);
    const outFlag = getString(args, 'out');
    if (outFlag !== undefined && outFlag.trim() === '') throw new UsageError(`--out must name a folder, got "${outFlag}"`);
    const outDir = outFlag ?? (resume ? undefined : `runs/train-${timestamp()}`);
    if (resume && !outDir) throw new UsageError('--resume needs --out <run folder>');

    await ensureEngine({ backend, threads });
    const bar = out.progress(1, 'dp-sgd');
    let barTotal = 0;
    // On --resume only the flags given now override the run's config.json (e.g. a larger --epochs).
    const given = (flag: string) => args.flags.has(flag);
    const full = {
      data: getString(args, 'data', 'mnist'),
      dataPath: getString(args, 'data-path'),
      labelColumn: getString(args, 'label'),
      ...declaredClasses(args),
      categorical: categorical.length ? categorical : undefined,
      model,
      epochs,
      batch,
      noise,
      targetEpsilon,
      // privatizer settings only when given: the runner refuses them for a privatizer that does not read them
      clip: given('clip') ? clip : undefined,
      lr,
      delta,
      privatizer,
      privatizerOptions,
      accountant,
      seed,
      optimizer,
      optimizerOptions,
      schedule,
      ema,
      prune,
      pruneAt,
      corrupt,
      clipping: given('clipping') ? clipping : undefined,
      sampling,
      maxPhysicalBatch: physical,
      evalEvery,
      checkpointEvery,
      outDir,
      resume,
      command: ['dplens', ...argv],
      backend,
    };
    const flagOf: Record<string, string> = { dataPath: 'data-path', labelColumn: 'label', targetEpsilon: 'target-epsilon', maxPhysicalBatch: 'physical-batch', noise: 'noise', evalEvery: 'eval-every', checkpointEvery: 'checkpoint-every', pruneAt: 'prune-at', numClasses: 'num-classes', classNames: 'class-names' };
    const always = ['outDir', 'resume', 'command', 'backend', 'privatizerOptions', 'optimizerOptions'];
    const config = resume ? Object.fromEntries(Object.entries(full).filter(([k]) => always.includes(k) || given(flagOf[k] ?? k))) : full;
    const res = await runTrainingOrUsage(() =>
      runTraining(config, {
        log: (m) => out.log(m),
        onStep: (i) => {
          if (!barTotal) {
            barTotal = i.totalSteps;
            (bar as unknown as { total: number }).total = barTotal;
          }
          // only what ε covers: the batch loss/accuracy are private diagnostics
          bar.update(i.step, { eps: i.epsilon });
        },
      }),
    );
    bar.done();
    const report = res.runDir ? await writeReport(res.runDir) : undefined;
    out.result({
      epsilon: res.epsilon,
      delta: res.delta,
      nonPrivate: res.nonPrivate,
      guarantee: res.guarantee,
      relation: res.relation,
      testAccuracy: res.testAccuracy,
      testLoss: res.testLoss,
      seconds: +res.seconds.toFixed(3),
      samplesPerSecond: +res.samplesPerSecond.toFixed(1),
      steps: res.steps,
      epochs: +res.epochs.toFixed(4),
      noiseMultiplier: ownAccounting ? null : res.noiseMultiplier,
      sampleRate: res.sampleRate,
      clip: res.clip,
      batch: res.batch,
      privatizer: res.privatizer,
      accountant: res.accountant,
      randomness: res.randomness,
      datasetFingerprint: res.datasetFingerprint,
      resumedFromStep: res.resumedFromStep,
      ...(res.prune ? { prune: res.prune } : {}),
      bytesPerStep: res.bytesPerStep,
      ...(res.corrupt ? { corrupt: res.corrupt } : {}),
      ...(res.ptr ? { ptr: res.ptr } : {}),
      stoppedBy: res.stoppedBy,
      peakRssMB: res.peakRssMB,
      runDir: res.runDir,
      report,
    });
    return 0;
  },
};

/**
 * Bad values found while resolving the config (batch > n, uncalibratable ε, a flag for another
 * method, an unusable --out, a refused resume) are usage errors (exit 2); a locked ledger or a
 * ledger that refuses the run is a one-line runtime error naming the file.
 */
async function runTrainingOrUsage<R>(fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (e) {
    const err = e as Error & { code?: string; path?: string };
    if (e instanceof RangeError) throw new UsageError(err.message);
    if (err?.name === 'LedgerTamperError' && /randomness|seed|relation/i.test(err.message)) throw new UsageError(err.message);
    if (err?.code && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) throw new Error(`${err.path ?? ''}${err.path ? ': ' : ''}${err.message.split('\n')[0]}`);
    throw e;
  }
}

export default command;
