/**
 * DataLens and G-PATE as generator plugins: the shared hyper-parameter schema of the voting GAN
 * (teachers, generator), each method's aggregator flags, presets (presets.ts) and constructors.
 */
import { BASE_HYPER, defaultPresetName, PRESETS, type Preset, type SynthesisHyper } from './presets.js';
import { DataLens, Gpate, GpateAggregator, SavedGenerator, TopAggAggregator, votingFacts, type VotingFacts, type VotingGanOptions } from './voting-gan.js';
import type { TopAggParams } from './topagg.js';
import type { GpateParams } from './gpate-agg.js';
import type { GeneratorLimits, GeneratorPlugin, HyperParamSpec } from './plugin.js';
import type { GeneratorContext } from './types.js';

export function votingGanOptions(h: SynthesisHyper, maxSteps: number, maxMinutes: number): VotingGanOptions {
  return {
    teachers: { numTeachers: h.teachers, hidden: h.teacherHidden, perClassHead: h.teacherPerClassHead, classLinear: h.teacherClassLinear, lr: h.teacherLr, optimizer: h.teacherOptimizer, beta1: h.beta1, initStd: 0.02, initSlots: h.teacherInitSlots },
    generator: { arch: h.generatorArch, zDim: h.zDim, fc: h.generatorFc, channels: h.generatorChannels, hidden: h.generatorHidden, labelGain: h.generatorLabelGain, outputBias: h.generatorOutputBias },
    batchSize: h.batchSize,
    queryBatch: h.queryBatch,
    smoothDirection: h.smoothDirection,
    teacherKind: h.teacherKind,
    kernelBandwidth: h.kernelBandwidth,
    kernelAssign: h.kernelAssign,
    generatorLr: h.generatorLr,
    generatorBeta1: h.generatorBeta1 ?? h.beta1,
    dStep: h.dStep,
    pretrainSteps: h.pretrainSteps,
    maxSteps,
    maxMinutes,
  };
}

/** Flags of the voting GAN shared by DataLens and G-PATE. */
const VOTING_HYPER: HyperParamSpec[] = [
  { key: 'teachers', flag: 'teachers', type: 'integer', min: 1, help: 'number of teachers N (presets: one per record for kernel teachers, 4000 for MLP teachers; G-PATE eps10: 2000)' },
  { key: 'teacherKind', flag: 'teacher-kind', type: 'choice', choices: ['neural', 'kernel'], help: 'teachers: neural (trained MLPs, the papers) or kernel (non-parametric kernel-density teachers, no training; see src/generate/README.md) (default: preset)' },
  { key: 'kernelAssign', flag: 'kernel-assign', type: 'choice', choices: ['all', 'nearest'], help: 'kernel teachers: all (every record pulls every query of its class: class means) or nearest (each record pulls only the nearest query of its class in the batch: several modes per class) (default: preset)' },
  { key: 'kernelBandwidth', flag: 'kernel-bandwidth', type: 'number', min: 0, exclusiveMin: true, help: 'kernel teachers: bandwidth h in [0,1]-pixel L2 units (default: infinite, i.e. equal weights)' },
  { key: 'teacherHidden', flag: 'teacher-hidden', type: 'integer', min: 1, help: 'hidden units per teacher MLP (default 16)' },
  { key: 'teacherOptimizer', flag: 'teacher-optimizer', type: 'choice', choices: ['adam', 'sgd'], help: 'adam (default) or sgd' },
  { key: 'teacherInitSlots', flag: 'teacher-init-slots', type: 'integer', min: 1, help: 'neural teachers: number of distinct (public, data-independent) initialisations, teacher i starting from init i mod slots; the reference code loads one saved init into every group of 50 teachers (default: preset; unset = one per teacher)' },
  { key: 'teacherLr', flag: 'teacher-lr', type: 'number', min: 0, exclusiveMin: true, help: 'teacher learning rate (default 1e-3)' },
  { key: 'augment', flag: 'augment', type: 'choice', choices: ['none', 'affine'], help: 'post-processing of the written samples: affine (small random rotations, scalings, shears, shifts — a public prior, no privacy cost) or none (default: preset)' },
  { key: 'queryBatch', flag: 'query-batch', type: 'integer', min: 1, help: 'generated samples (= aggregator queries) per generator step (default: preset)' },
  { key: 'generatorLr', flag: 'generator-lr', type: 'number', min: 0, exclusiveMin: true, help: 'generator Adam learning rate (default 1e-3)' },
  { key: 'smoothDirection', flag: 'smooth-direction', type: 'number', min: 0, help: 'std (pixels) of a Gaussian blur of each released direction before the generator step; post-processing of the noised release, 0 = none (default: preset)' },
  { key: 'generatorLabelGain', flag: 'label-gain', type: 'number', min: 0, exclusiveMin: true, help: 'gain on the generator label inputs (preset: 10)' },
  { key: 'zDim', flag: 'z-dim', type: 'integer', min: 1, help: 'generator latent dimension' },
  { key: 'generatorArch', flag: 'generator', type: 'choice', choices: ['mlp', 'dcgan'], help: 'generator architecture: mlp (default) or dcgan (spec network, slow on CPU)' },
  { key: 'batchSize', flag: 'batch', type: 'integer', min: 1, help: 'batch flag; effective B = min(batch, shard size)' },
  { key: 'dStep', flag: 'd-step', type: 'integer', min: 1, help: 'teacher steps per generator step' },
  { key: 'pretrainSteps', flag: 'pretrain', type: 'integer', min: 0, help: 'teacher steps before the first generator step' },
];

const DATALENS_HYPER: HyperParamSpec[] = [
  { key: 'topk', flag: 'topk', type: 'integer', min: 1, help: 'DataLens: votes per teacher k' },
  { key: 'sigma', flag: 'sigma', type: 'number', min: 0, help: 'DataLens: Gaussian noise std on the vote sum (0 only with --non-private)' },
  { key: 'beta', flag: 'beta', type: 'number', min: 0, max: 1, help: 'DataLens: threshold fraction (dir = ±1 where |votes| > beta·N); 0 = no-threshold variant' },
  { key: 'clip', flag: 'clip', type: 'number', min: 0, help: 'DataLens: stochastic-sign clip bound b (default 1e-5)' },
  { key: 'stochastic', flag: 'deterministic-sign', type: 'boolean', whenSet: false, help: 'DataLens: sign(g) instead of the stochastic sign' },
  { key: 'alpha', flag: 'alpha', type: 'number', min: 0, exclusiveMin: true, help: 'DataLens: step size of the aggregate in pixel space (default 1e-3)' },
];

const GPATE_HYPER: HyperParamSpec[] = [
  { key: 'sigma1', flag: 'sigma1', type: 'number', min: 0, help: 'G-PATE: threshold-test noise std (0 only with --non-private)' },
  { key: 'sigma2', flag: 'sigma2', type: 'number', min: 0, help: 'G-PATE: GNMax noise std (0 only with --non-private)' },
  { key: 'thresh', flag: 'thresh', type: 'number', min: 0, max: 1, help: 'G-PATE: threshold fraction: T = thresh·N (neural teachers, default 0.5), thresh·N/C (kernel, all), thresh·N/B (kernel, nearest); kernel presets 0.15' },
  { key: 'gpateClip', flag: 'gpate-clip', type: 'number', min: 0, exclusiveMin: true, help: 'G-PATE: clip bound of a projected coordinate (bins span [-clip, clip]; preset 1e-4 for MLP teachers, 1 for kernel teachers, whose directions are unit vectors)' },
  { key: 'bins', flag: 'bins', type: 'integer', min: 2, help: 'G-PATE: bins per projected coordinate (default 10)' },
  { key: 'projDim', flag: 'proj-dim', type: 'integer', min: 1, help: 'G-PATE: random projection dimension (default 10)' },
  {
    key: 'gpateCharge',
    flag: 'gpate-charge',
    type: 'choice',
    choices: ['worst-case', 'answered-data-dependent'],
    help: 'G-PATE GNMax accounting: worst-case (default: every coordinate charged as answered, data-independent) or answered-data-dependent (neural teachers: only answered coordinates; a data-dependent odometer, labelled so in the ledger and report)',
  },
];

function votingPresets(method: string): Record<string, Preset> {
  return PRESETS[method] as Record<string, Preset>;
}

/** "teachers 0" = one teacher per training record (the kernel presets): n is public under replace-one. */
function finalizeVoting(h: SynthesisHyper, facts: { trainCount: number }): SynthesisHyper {
  return h.teachers === 0 ? { ...h, teachers: facts.trainCount } : h;
}

/**
 * One step's public facts for the mechanism replay of the audit: the same derivation as the
 * VotingGan constructor (votingFacts), from the finalized hyper-parameters.
 */
export function votingStepFacts(h: SynthesisHyper, f: { trainCount: number; numClasses: number; height: number; width: number; channels: number }): VotingFacts {
  return votingFacts(votingGanOptions(finalizeVoting(h, f), Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY), f);
}

/** The aggregators' parameters from the hyper-parameters (one place for create() and mechanism()). */
function topAggParams(h: SynthesisHyper): TopAggParams {
  return { k: h.topk, sigma: h.sigma, clip: h.clip, stochastic: h.stochastic, beta: h.beta, alpha: h.alpha };
}

function gpateParams(h: SynthesisHyper): GpateParams {
  return { projDim: h.projDim, bins: h.bins, clip: h.gpateClip, sigma1: h.sigma1, sigma2: h.sigma2, thresh: h.thresh };
}

/** The voting loop's options for a run on ctx's data (teachers 0 = one per record). */
function runOptions(ctx: GeneratorContext, h: SynthesisHyper, limits: GeneratorLimits): VotingGanOptions {
  return votingGanOptions(finalizeVoting(h, { trainCount: ctx.data.train.count }), limits.maxSteps, limits.maxMinutes);
}

const VOTING_PUBLIC = ['n, the number of training records (shards are a shuffle over the record count; q = B/n and the teacher count are published)', 'the number of teachers N', 'the class list (its size C sets the query labels)'];

/** What DataLens and G-PATE share: the voting loop's relation, public facts, defaults and run flags. */
const VOTING_PLUGIN_BASE = {
  relation: 'replace-one',
  treatedAsPublic: VOTING_PUBLIC,
  defaults: BASE_HYPER,
  runFlags: ['steps', 'max-minutes', 'resume', 'non-private'],
  defaultPreset: defaultPresetName,
  finalizeHyper: finalizeVoting,
  loadSampler: (dir: string) => SavedGenerator.load(dir),
} satisfies Partial<GeneratorPlugin<SynthesisHyper>>;

export const datalensPlugin: GeneratorPlugin<SynthesisHyper> = {
  ...VOTING_PLUGIN_BASE,
  name: 'datalens',
  description: 'DataLens: teacher ensemble (kernel or MLP teachers, one disjoint shard each) votes with top-k stochastic signs; the Gaussian-noised vote sum (TopAgg) moves a conditional generator',
  hyperParameters: [...VOTING_HYPER, ...DATALENS_HYPER],
  presets: votingPresets('datalens'),
  create: (ctx, h, limits) => new DataLens(ctx, runOptions(ctx, h, limits), topAggParams(h)),
  mechanism: (h, facts) => ({ aggregator: new TopAggAggregator(topAggParams(h)), facts: votingStepFacts(h, facts) }),
};

export const gpatePlugin: GeneratorPlugin<SynthesisHyper> = {
  ...VOTING_PLUGIN_BASE,
  name: 'gpate',
  description: 'G-PATE: teacher ensemble votes on randomly projected, binned image gradients; Confident-GNMax (noisy threshold test + noisy argmax) per coordinate moves a conditional generator',
  hyperParameters: [...VOTING_HYPER, ...GPATE_HYPER],
  presets: votingPresets('gpate'),
  create: (ctx, h, limits) => new Gpate(ctx, runOptions(ctx, h, limits), gpateParams(h), h.gpateCharge ?? 'worst-case'),
  mechanism: (h, facts) => ({ aggregator: new GpateAggregator(gpateParams(h), h.gpateCharge ?? 'worst-case'), facts: votingStepFacts(h, facts) }),
};
