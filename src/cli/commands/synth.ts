/**
 * `dplens synth`: DP synthetic images with DataLens or G-PATE. Prints one JSON object (--json) with
 * epsilon (spent, ≤ --epsilon), delta, generatorSteps, seconds, syntheticPath; the run folder holds
 * synthetic.npz, samples.png, ledger.jsonl, config.json, metrics.jsonl, generator/ and report.html.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, getBool, getChoice, getInteger, getNumber, getString } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DATA_FLAG_SPECS } from '../../data/index.js';
import { ensureEngine, PRESETS, runSynthesis, type Method, type SynthesisHyper } from '../../generate/index.js';

const positive = (x: number): true | string => x > 0 || 'must be > 0';
const inUnitOpen = (x: number): true | string => (x > 0 && x < 1) || 'must be in (0, 1)';
const unitClosed = (x: number): true | string => (x >= 0 && x <= 1) || 'must be in [0, 1]';

const command: Command = {
  name: 'synth',
  summary: 'private synthetic images from teacher votes (DataLens, G-PATE)',
  usage: 'dplens synth --method datalens|gpate --data mnist|fashion-mnist|pneumonia|PATH --epsilon E --delta D --out DIR [options] [--json]',
  description:
    'Trains a conditional generator that never sees the private data: N teachers, each on its own disjoint shard, vote on how every generated image should move; only the noised aggregate (DataLens TopAgg, or G-PATE random projection + Confident-GNMax) reaches the generator. Every release is recorded in DIR/ledger.jsonl before it is used, with data-independent RDP accounting; training stops before the first step that would exceed --epsilon. Hyper-parameters default to our preset closest in epsilon (mnist-eps1, mnist-eps10, fashion-mnist-eps1, fashion-mnist-eps10; tuned on MNIST, see src/generate/README.md). The default presets of both methods use kernel teachers (non-parametric, one per record, nothing to train); neural-* presets (DataLens) use trained label-conditional MLP teachers (batched), and the published runs are paper-mnist-eps1 etc.',
  flags: {
    method: { type: 'string', help: 'datalens (default) or gpate' },
    ...DATA_FLAG_SPECS,
    epsilon: { type: 'string', help: 'privacy budget epsilon (> 0)' },
    delta: { type: 'string', help: 'privacy budget delta in (0, 1) (default 1e-5)' },
    samples: { type: 'string', help: 'synthetic samples to write (default 60000)' },
    preset: { type: 'string', help: 'hyper-parameter preset: mnist-eps1|mnist-eps10|fashion-mnist-eps1|fashion-mnist-eps10 (ours, kernel teachers), neural-* (DataLens, ours, MLP teachers), paper-* (the published runs, MLP teachers)' },
    'query-batch': { type: 'string', help: 'generated samples (= aggregator queries) per generator step (default: preset)' },
    'teacher-optimizer': { type: 'string', help: 'adam (default) or sgd' },
    'teacher-lr': { type: 'string', help: 'teacher learning rate (default 1e-3)' },
    'generator-lr': { type: 'string', help: 'generator Adam learning rate (default 1e-3)' },
    'smooth-direction': { type: 'string', help: 'std (pixels) of a Gaussian blur of each released direction before the generator step; post-processing of the noised release, 0 = none (default: preset)' },
    'label-gain': { type: 'string', help: 'gain on the generator label inputs (preset: 10)' },
    teachers: { type: 'string', help: 'number of teachers N (presets: one per record for kernel teachers, 4000 for MLP teachers; G-PATE eps10: 2000)' },
    'teacher-kind': { type: 'string', help: 'teachers: neural (trained MLPs, the papers) or kernel (non-parametric kernel-density teachers, no training; see src/generate/README.md) (default: preset)' },
    augment: { type: 'string', help: 'post-processing of the written samples: affine (small random rotations, scalings, shears, shifts — a public prior, no privacy cost) or none (default: preset)' },
    'kernel-assign': { type: 'string', help: 'kernel teachers: all (every record pulls every query of its class: class means) or nearest (each record pulls only the nearest query of its class in the batch: several modes per class) (default: preset)' },
    'kernel-bandwidth': { type: 'string', help: 'kernel teachers: bandwidth h in [0,1]-pixel L2 units (default: infinite, i.e. equal weights)' },
    'teacher-hidden': { type: 'string', help: 'hidden units per teacher MLP (default 16)' },
    topk: { type: 'string', help: 'DataLens: votes per teacher k' },
    sigma: { type: 'string', help: 'DataLens: Gaussian noise std on the vote sum' },
    beta: { type: 'string', help: 'DataLens: threshold fraction (dir = ±1 where |votes| > beta·N); 0 = no-threshold variant' },
    clip: { type: 'string', help: 'DataLens: stochastic-sign clip bound b (default 1e-5)' },
    'deterministic-sign': { type: 'boolean', help: 'DataLens: sign(g) instead of the stochastic sign' },
    alpha: { type: 'string', help: 'DataLens: step size of the aggregate in pixel space (default 1e-3)' },
    sigma1: { type: 'string', help: 'G-PATE: threshold-test noise std' },
    sigma2: { type: 'string', help: 'G-PATE: GNMax noise std' },
    thresh: { type: 'string', help: 'G-PATE: threshold fraction: T = thresh·N (neural teachers, default 0.5), thresh·N/C (kernel, all), thresh·N/B (kernel, nearest); kernel presets 0.15' },
    'gpate-clip': { type: 'string', help: 'G-PATE: clip bound of a projected coordinate (bins span [-clip, clip]; preset 1e-4 for MLP teachers, 1 for kernel teachers, whose directions are unit vectors)' },
    bins: { type: 'string', help: 'G-PATE: bins per projected coordinate (default 10)' },
    'proj-dim': { type: 'string', help: 'G-PATE: random projection dimension (default 10)' },
    'z-dim': { type: 'string', help: 'generator latent dimension' },
    generator: { type: 'string', help: 'generator architecture: mlp (default) or dcgan (spec network, slow on CPU)' },
    batch: { type: 'string', help: 'batch flag; effective B = min(batch, shard size)' },
    'd-step': { type: 'string', help: 'teacher steps per generator step' },
    pretrain: { type: 'string', help: 'teacher steps before the first generator step' },
    steps: { type: 'string', help: 'cap on generator steps (the budget normally stops first)' },
    'max-minutes': { type: 'string', help: 'stop (with a valid, partially spent budget) after this many minutes' },
    resume: { type: 'boolean', help: 'continue the run in --out (generator checkpoint + ledger; teachers restart)' },
  },
  examples: [
    'dplens synth --method datalens --data mnist --epsilon 1 --delta 1e-5 --out runs/dl-mnist-eps1 --json',
    'dplens synth --method gpate --data fashion-mnist --epsilon 10 --delta 1e-5 --out runs/gp-fm-eps10 --preset fashion-mnist-eps10',
    'dplens synth --method datalens --data mnist --epsilon 1 --out runs/quick --teachers 200 --samples 6000 --max-minutes 5',
  ],
  async run(args: ParsedArgs, out: Output, argv: string[]): Promise<number> {
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const method = getChoice<Method>(args, 'method', ['datalens', 'gpate'], 'datalens');
    const data = getString(args, 'data');
    if (!data) throw new UsageError('--data is required (mnist, fashion-mnist, pneumonia or a path)');
    const epsilon = getNumber(args, 'epsilon', undefined, positive);
    if (epsilon === undefined) throw new UsageError('--epsilon is required');
    const delta = getNumber(args, 'delta', 1e-5, inUnitOpen)!;
    const outDir = getString(args, 'out');
    if (!outDir) throw new UsageError('--out is required (the run folder to write)');
    if (!getBool(args, 'resume') && existsSync(join(outDir, 'ledger.jsonl'))) throw new UsageError(`${join(outDir, 'ledger.jsonl')} already exists: use a new --out folder, or --resume to continue that run`);
    const preset = getString(args, 'preset');
    if (preset !== undefined && !PRESETS[method][preset]) throw new UsageError(`--preset must be one of ${Object.keys(PRESETS[method]).join('|')}, got "${preset}"`);
    const seedStr = getString(args, 'seed');
    const seed = seedStr === undefined ? undefined : getInteger(args, 'seed', undefined, 0);
    const hyper: Partial<SynthesisHyper> = {
      teachers: getInteger(args, 'teachers', undefined, 1),
      teacherHidden: getInteger(args, 'teacher-hidden', undefined, 1),
      teacherKind: args.flags.has('teacher-kind') ? getChoice(args, 'teacher-kind', ['neural', 'kernel'] as const, 'neural') : undefined,
      augment: args.flags.has('augment') ? getChoice(args, 'augment', ['none', 'affine'] as const, 'none') : undefined,
      kernelAssign: args.flags.has('kernel-assign') ? getChoice(args, 'kernel-assign', ['all', 'nearest'] as const, 'all') : undefined,
      kernelBandwidth: getNumber(args, 'kernel-bandwidth', undefined, positive),
      topk: getInteger(args, 'topk', undefined, 1),
      sigma: getNumber(args, 'sigma', undefined, positive),
      beta: getNumber(args, 'beta', undefined, unitClosed),
      clip: getNumber(args, 'clip', undefined, (x) => x >= 0 || 'must be >= 0'),
      alpha: getNumber(args, 'alpha', undefined, positive),
      sigma1: getNumber(args, 'sigma1', undefined, positive),
      sigma2: getNumber(args, 'sigma2', undefined, positive),
      thresh: getNumber(args, 'thresh', undefined, unitClosed),
      projDim: getInteger(args, 'proj-dim', undefined, 1),
      gpateClip: getNumber(args, 'gpate-clip', undefined, positive),
      bins: getInteger(args, 'bins', undefined, 2),
      zDim: getInteger(args, 'z-dim', undefined, 1),
      generatorArch: args.flags.has('generator') ? getChoice(args, 'generator', ['mlp', 'dcgan'] as const, 'mlp') : undefined,
      batchSize: getInteger(args, 'batch', undefined, 1),
      dStep: getInteger(args, 'd-step', undefined, 1),
      pretrainSteps: getInteger(args, 'pretrain', undefined, 0),
      queryBatch: getInteger(args, 'query-batch', undefined, 1),
      teacherOptimizer: args.flags.has('teacher-optimizer') ? getChoice(args, 'teacher-optimizer', ['adam', 'sgd'] as const, 'adam') : undefined,
      teacherLr: getNumber(args, 'teacher-lr', undefined, positive),
      generatorLr: getNumber(args, 'generator-lr', undefined, positive),
      generatorLabelGain: getNumber(args, 'label-gain', undefined, positive),
      smoothDirection: getNumber(args, 'smooth-direction', undefined, (x) => x >= 0 || 'must be >= 0'),
    };
    if (getBool(args, 'deterministic-sign')) hyper.stochastic = false;
    const threads = getInteger(args, 'threads', undefined, 1);
    const backend = await ensureEngine(threads ? { threads } : {});
    const samples = getInteger(args, 'samples', 60000, 1)!;
    const maxSteps = getInteger(args, 'steps', undefined, 1);
    const maxMinutes = getNumber(args, 'max-minutes', undefined, positive);
    out.log(`dplens synth: ${method} on ${data}, budget (ε=${epsilon}, δ=${delta}), engine ${backend}`);
    let bar: ReturnType<Output['progress']> | undefined;
    const r = await runSynthesis(
      { method, data, dataPath: getString(args, 'data-path'), epsilon, delta, out: outDir, samples, preset, hyper, maxSteps, maxMinutes, seed, resume: getBool(args, 'resume'), argv: ['dplens', ...argv] },
      {
        onStep: (p) => {
          bar ??= out.progress(maxSteps ?? 0, 'generator steps');
          bar.update(p.step, { eps: p.epsilon, loss: p.generatorLoss });
          if (p.step % 10 === 0 || p.step === 1) out.log(`step ${p.step}: ε=${p.epsilon.toFixed(4)} moved=${(100 * p.aggregateNonZero).toFixed(1)}% (${p.seconds.toFixed(0)} s)`);
        },
      },
    );
    bar?.done();
    out.result({
      method: r.method,
      epsilon: r.epsilon,
      delta: r.delta,
      targetEpsilon: r.targetEpsilon,
      generatorSteps: r.generatorSteps,
      stoppedBy: r.stoppedBy,
      seconds: r.seconds,
      syntheticPath: r.syntheticPath,
      samplesPng: r.samplesPng,
      ledgerPath: r.ledgerPath,
      reportPath: r.reportPath ?? null,
      samples: r.samples,
      preset: r.preset,
      teachers: r.hyper.teachers,
      engine: backend,
    });
    return 0;
  },
};

export default command;
