import type { Command } from '../command.js';
import { getBool, getChoice, getInteger, getNumber, getString, UsageError } from '../args.js';
import { dataFlagSpecs } from '../../data/index.js';

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
    label: { type: 'string', help: 'CSV --data: the label column (default: label/class/target/y, else the last column); trains an MLP' },
    model: { type: 'string', help: 'cnn (reference CNN, ReLU; default for images) | cnn-tanh (same CNN with tanh, Papernot et al. 2021) | cnn-tanh-gn (cnn-tanh + GroupNorm) | mlp (default and only choice for a CSV table)' },
    epochs: { type: 'string', help: 'epochs, fractions allowed (default 1); steps = round(epochs·n/batch)' },
    batch: { type: 'string', help: 'expected (Poisson) batch size (default 240)' },
    noise: { type: 'string', help: 'noise multiplier σ (0 = non-private); or use --target-epsilon' },
    'target-epsilon': { type: 'string', help: 'calibrate σ to reach this ε after --epochs (also a hard cap)' },
    clip: { type: 'string', help: 'per-sample L2 clip bound C (default 1.5)' },
    lr: { type: 'string', help: 'learning rate (default 0.25)' },
    delta: { type: 'string', help: 'δ (default 1e-5)' },
    privatizer: { type: 'string', help: 'gaussian (default) | topagg' },
    'topagg-k': { type: 'string', help: 'TopAgg: coordinates kept per example (default 1% of parameters)' },
    'topagg-clip': { type: 'string', help: 'TopAgg: per-coordinate clip before the sign vote (default 0.01)' },
    accountant: { type: 'string', help: 'rdp (default) | pld' },
    optimizer: { type: 'string', help: 'sgd (default) | adam | adamw' },
    momentum: { type: 'string', help: 'SGD momentum (default 0)' },
    nesterov: { type: 'boolean', help: 'Nesterov momentum' },
    schedule: { type: 'string', help: 'learning-rate schedule: constant (default) | cosine' },
    ema: { type: 'string', help: 'EMA decay of the weights used for evaluation (e.g. 0.999)' },
    clipping: { type: 'string', help: 'flat (default) | per-layer' },
    'physical-batch': { type: 'string', help: 'largest chunk run at once (memory bound, default 256)' },
    sampling: { type: 'string', help: 'poisson (default, DP) | shuffle (fixed batches, NOT accounted: ε = ∞)' },
    resume: { type: 'boolean', help: 'continue the run in --out exactly (weights, optimizer momentum, EMA, step count, ledger; stored config unless a flag is given again)' },
    'eval-every': { type: 'string', help: 'test-set evaluation every N epochs into metrics.jsonl (default 1 when --epochs >= 2; 0 = off)' },
    backend: { type: 'string', help: 'compute backend: ort (default) | cpu' },
  },
  examples: [
    'dplens train --data mnist --model cnn --epochs 1 --batch 240 --noise 1.3 --clip 1.5 --lr 0.25 --delta 1e-5 --json',
    'dplens train --data fashion-mnist --target-epsilon 3 --epochs 10 --out runs/fmnist',
    'dplens train --data mnist --epochs 0.1 --noise 0 --json   # non-private baseline, ε = ∞',
    'dplens train --data patients.csv --label outcome --model mlp --epochs 5 --batch 64 --target-epsilon 2 --lr 0.1 --out runs/csv',
  ],
  async run(args, out, argv) {
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const epochs = getNumber(args, 'epochs', 1, (x) => x > 0 || 'must be > 0')!;
    const batch = getInteger(args, 'batch', 240, 1)!;
    const noise = getNumber(args, 'noise', undefined, (x) => x >= 0 || 'must be >= 0');
    const targetEpsilon = getNumber(args, 'target-epsilon', undefined, (x) => x > 0 || 'must be > 0');
    const resume = getBool(args, 'resume');
    if (noise === undefined && targetEpsilon === undefined && !resume) throw new UsageError('give --noise σ or --target-epsilon ε');
    if (noise !== undefined && targetEpsilon !== undefined) throw new UsageError('give either --noise or --target-epsilon, not both');
    const clip = getNumber(args, 'clip', 1.5, (x) => x > 0 || 'must be > 0')!;
    const lr = getNumber(args, 'lr', 0.25, (x) => x > 0 || 'must be > 0')!;
    const delta = getNumber(args, 'delta', 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!;
    const privatizer = getChoice(args, 'privatizer', ['gaussian', 'topagg'] as const, 'gaussian');
    const accountant = getChoice(args, 'accountant', ['rdp', 'pld'] as const, 'rdp');
    const model = args.flags.has('model') ? getChoice(args, 'model', ['cnn', 'cnn-tanh', 'cnn-tanh-gn', 'mlp'] as const, 'cnn') : undefined;
    const optimizer = getChoice(args, 'optimizer', ['sgd', 'adam', 'adamw'] as const, 'sgd');
    const schedule = getChoice(args, 'schedule', ['constant', 'cosine'] as const, 'constant');
    const clipping = getChoice(args, 'clipping', ['flat', 'per-layer'] as const, 'flat');
    const sampling = getChoice(args, 'sampling', ['poisson', 'shuffle'] as const, 'poisson');
    const backend = getChoice(args, 'backend', ['ort', 'cpu'] as const, 'ort');
    const momentum = getNumber(args, 'momentum', 0, (x) => (x >= 0 && x < 1) || 'must be in [0, 1)')!;
    const ema = getNumber(args, 'ema', undefined, (x) => (x > 0 && x < 1) || 'must be in (0, 1)');
    const seedRaw = getString(args, 'seed');
    let seed: number | undefined;
    if (seedRaw !== undefined) {
      seed = Number(seedRaw);
      if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 32 - 1) throw new UsageError(`--seed must be an integer in [0, 2^32), got "${seedRaw}"`);
    }
    const physical = getInteger(args, 'physical-batch', 256, 1)!;
    const evalEvery = getNumber(args, 'eval-every', undefined, (x) => x >= 0 || 'must be >= 0');
    const topk = getInteger(args, 'topagg-k', undefined, 1);
    const topclip = getNumber(args, 'topagg-clip', undefined, (x) => x > 0 || 'must be > 0');
    const threads = getInteger(args, 'threads', undefined, 1);
    const outDir = getString(args, 'out') ?? (resume ? undefined : `runs/train-${timestamp()}`);
    if (resume && !outDir) throw new UsageError('--resume needs --out <run folder>');
    if (nesterovWithoutMomentum(getBool(args, 'nesterov'), momentum)) throw new UsageError('--nesterov needs --momentum > 0');

    const { ensureEngine, runTraining } = await import('../../train/index.js');
    await ensureEngine({ backend, threads });
    const bar = out.progress(1, 'dp-sgd');
    let barTotal = 0;
    // On --resume only the flags given now override the run's config.json (e.g. a larger --epochs).
    const given = (flag: string) => args.flags.has(flag);
    const full = {
        data: getString(args, 'data', 'mnist'),
        dataPath: getString(args, 'data-path'),
        labelColumn: getString(args, 'label'),
        model,
        epochs,
        batch,
        noise,
        targetEpsilon,
        clip,
        lr,
        delta,
        privatizer,
        topagg: { k: topk, clip: topclip },
        accountant,
        seed,
        optimizer,
        momentum,
        nesterov: getBool(args, 'nesterov'),
        schedule,
        ema,
        clipping,
        sampling,
        maxPhysicalBatch: physical,
        evalEvery,
        outDir,
        resume,
        command: ['dplens', ...argv],
        backend,
      };
    const flagOf: Record<string, string> = { dataPath: 'data-path', labelColumn: 'label', targetEpsilon: 'target-epsilon', maxPhysicalBatch: 'physical-batch', noise: 'noise', evalEvery: 'eval-every' };
    const config = resume
      ? Object.fromEntries(Object.entries(full).filter(([k]) => ['outDir', 'resume', 'command', 'backend'].includes(k) || given(flagOf[k] ?? k)))
      : full;
    const res = await runTrainingOrUsage(runTraining,
      config,
      {
        log: (m) => out.log(m),
        onStep: (i) => {
          if (!barTotal) {
            barTotal = i.totalSteps;
            (bar as unknown as { total: number }).total = barTotal;
          }
          bar.update(i.step, { loss: i.loss, eps: i.epsilon });
        },
      },
    );
    bar.done();
    out.result({
      epsilon: res.epsilon,
      delta: res.delta,
      nonPrivate: res.nonPrivate,
      testAccuracy: res.testAccuracy,
      testLoss: res.testLoss,
      trainLoss: res.trainLoss,
      seconds: +res.seconds.toFixed(3),
      samplesPerSecond: +res.samplesPerSecond.toFixed(1),
      steps: res.steps,
      epochs: +res.epochs.toFixed(4),
      noiseMultiplier: res.noiseMultiplier,
      sampleRate: res.sampleRate,
      clip: res.clip,
      batch: res.batch,
      privatizer: res.privatizer,
      accountant: res.accountant,
      randomness: res.randomness,
      stoppedBy: res.stoppedBy,
      peakRssMB: res.peakRssMB,
      runDir: res.runDir,
      report: res.reportPath,
    });
    return 0;
  },
};

/** Bad values found while resolving the config (batch > n, uncalibratable ε, …) are usage errors (exit 2). */
async function runTrainingOrUsage<A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...a: A): Promise<R> {
  try {
    return await fn(...a);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

function nesterovWithoutMomentum(nesterov: boolean, momentum: number): boolean {
  return nesterov && momentum === 0;
}

export default command;
