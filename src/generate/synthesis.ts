/**
 * runSynthesis: the config-driven runner behind `dplens synth`, the demo and the audit.
 * Writes a run folder: config.json, ledger.jsonl, metrics.jsonl, synthetic.npz, samples.png,
 * generator/ (post-processing only — teachers are never written, P9) and report.html.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImageDataset } from '../data/types.js';
import { PrivacyLedger, secureRandom, seededRandom, type RandomSource } from '../privacy/index.js';
import { DataLens, Gpate, type VotingGan, type VotingGanOptions } from './voting-gan.js';
import { defaultPresetName, resolveHyper, type Method, type SynthesisHyper } from './presets.js';
import type { FitResult, GeneratorProgress, SampleSet } from './types.js';

export interface SynthesisConfig {
  method: Method;
  /** Dataset name (mnist | fashion-mnist | pneumonia) or a path the data layer can load. */
  data: string;
  /** Where a built-in dataset's files are, when not in the default place. */
  dataPath?: string;
  epsilon: number;
  delta: number;
  out: string;
  /** Synthetic samples to write (default 60,000). */
  samples?: number;
  preset?: string;
  /** Overrides of the preset's hyper-parameters. */
  hyper?: Partial<SynthesisHyper>;
  /** Cap on generator steps (the budget normally stops first). */
  maxSteps?: number;
  maxMinutes?: number;
  /** Seeded (reproducible, non-secure) randomness; recorded in the ledger. Default: secure. */
  seed?: number;
  /** Continue a run folder: generator checkpoint + ledger (teachers restart from scratch). */
  resume?: boolean;
  /** Skip report.html (tests). */
  noReport?: boolean;
  /** The exact command line of the run (e.g. ['dplens', 'synth', ...]), recorded in config.json for the report. */
  argv?: string[];
}

export interface SynthesisHooks {
  dataOverride?: ImageDataset;
  onStep?: (p: GeneratorProgress) => void;
  signal?: AbortSignal;
}

export interface SynthesisResult {
  method: Method;
  epsilon: number;
  delta: number;
  targetEpsilon: number;
  generatorSteps: number;
  stoppedBy: FitResult['stoppedBy'];
  seconds: number;
  fitSeconds: number;
  syntheticPath: string;
  samplesPng: string;
  ledgerPath: string;
  outDir: string;
  reportPath?: string;
  samples: number;
  preset: string;
  hyper: SynthesisHyper;
}

export async function loadNamedDataset(name: string, dataPath?: string): Promise<ImageDataset> {
  const data = (await import('../data/index.js')) as Record<string, unknown>;
  const byFlag = data.loadDataFlag as ((d: string, p?: string) => ImageDataset) | undefined;
  if (typeof byFlag === 'function') return byFlag(name, dataPath);
  if (name === 'mnist') return (data.loadMnist as () => ImageDataset)();
  if (name === 'fashion-mnist') return (await import('../data/fashion.js')).loadFashionMnist();
  throw new RangeError(`dataset "${name}" is not available (mnist, fashion-mnist)`);
}

export function votingGanOptions(h: SynthesisHyper, maxSteps: number, maxMinutes: number): VotingGanOptions {
  return {
    teachers: { numTeachers: h.teachers, hidden: h.teacherHidden, perClassHead: h.teacherPerClassHead, classLinear: h.teacherClassLinear, lr: h.teacherLr, optimizer: h.teacherOptimizer, beta1: h.beta1, initStd: 0.02 },
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

export function makeGenerator(method: Method, ctx: ConstructorParameters<typeof DataLens>[0], h: SynthesisHyper, maxSteps: number, maxMinutes: number): VotingGan {
  // teachers 0 = one teacher per training record (the kernel-teacher presets).
  const o = votingGanOptions(h.teachers === 0 ? { ...h, teachers: ctx.data.train.count } : h, maxSteps, maxMinutes);
  if (method === 'datalens') return new DataLens(ctx, o, { k: h.topk, sigma: h.sigma, clip: h.clip, stochastic: h.stochastic, beta: h.beta, alpha: h.alpha });
  if (method === 'gpate') return new Gpate(ctx, o, { projDim: h.projDim, bins: h.bins, clip: h.gpateClip, sigma1: h.sigma1, sigma2: h.sigma2, thresh: h.thresh });
  throw new RangeError(`unknown method "${String(method)}" (datalens|gpate)`);
}

export async function runSynthesis(config: SynthesisConfig, hooks: SynthesisHooks = {}): Promise<SynthesisResult> {
  const t0 = Date.now();
  const { method, epsilon, delta } = config;
  if (method !== 'datalens' && method !== 'gpate') throw new RangeError(`unknown method "${String(method)}" (datalens|gpate)`);
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`epsilon must be a finite number > 0, got ${epsilon}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const samples = config.samples ?? 60000;
  if (!Number.isInteger(samples) || samples < 1) throw new RangeError(`samples must be a positive integer, got ${samples}`);
  const presetName = config.preset ?? defaultPresetName(config.data, epsilon);
  const hyper = resolveHyper(method, presetName, config.hyper ?? {});
  const data = hooks.dataOverride ?? (await loadNamedDataset(config.data, config.dataPath));
  if (hyper.teachers === 0) hyper.teachers = data.train.count; // one teacher per record (public: the record count is the dataset's size, fixed by the shard rule)
  const outDir = resolve(config.out);
  mkdirSync(outDir, { recursive: true });
  const ledgerPath = join(outDir, 'ledger.jsonl');
  const genDir = join(outDir, 'generator');
  if (!config.resume && existsSync(ledgerPath)) throw new RangeError(`${ledgerPath} already exists: use a new --out folder, or --resume to continue that run`);
  if (config.resume && !existsSync(join(genDir, 'generator.json'))) throw new RangeError(`--resume: ${genDir}/generator.json not found`);
  const random: RandomSource = config.seed !== undefined ? seededRandom(config.seed) : secureRandom();
  const ledger = PrivacyLedger.open(ledgerPath, { accountant: 'rdp', create: !config.resume, randomness: random, budget: { epsilon, delta }, meta: { command: 'synth', method } });
  const maxSteps = config.maxSteps ?? Number.POSITIVE_INFINITY;
  const maxMinutes = config.maxMinutes ?? Number.POSITIVE_INFINITY;
  const resolvedConfig = {
    command: 'synth',
    argv: config.argv ?? null,
    method,
    data: data.name,
    dataSource: data.source,
    datasetFingerprint: data.fingerprint,
    epsilon,
    delta,
    samples,
    preset: presetName,
    hyper,
    maxSteps: Number.isFinite(maxSteps) ? maxSteps : null,
    maxMinutes: Number.isFinite(maxMinutes) ? maxMinutes : null,
    randomness: random.kind,
    seed: config.seed ?? null,
    accounting: 'data-independent RDP (tight conversion), δ fixed',
    resumed: !!config.resume,
  };
  writeFileSync(join(outDir, config.resume ? 'config.resume.json' : 'config.json'), JSON.stringify(resolvedConfig, null, 2));
  const metricsPath = join(outDir, 'metrics.jsonl');
  const gen = makeGenerator(method, { data, budget: { epsilon, delta }, ledger, random }, hyper, maxSteps, maxMinutes);
  try {
    if (config.resume) await gen.load(genDir);
    const fit = await gen.fit({
      signal: hooks.signal,
      onProgress: (p) => {
        appendFileSync(metricsPath, JSON.stringify({ step: p.step, epoch: p.epoch, epsilon: p.epsilon, generatorLoss: p.generatorLoss, aggregateNonZero: p.aggregateNonZero, seconds: p.seconds, ...p.timing }) + '\n');
        if (p.step % 10 === 0) void gen.save(genDir);
        hooks.onStep?.(p);
      },
    });
    await gen.save(genDir);
    const set = await gen.sample(samples);
    // Post-processing with a public prior only (no private data, no budget): see augment.ts.
    if (hyper.augment === 'affine') {
      if (set.channels !== 1) throw new RangeError('--augment affine supports single-channel images');
      const { augmentAffine } = await import('./augment.js');
      augmentAffine(set.images, set.count, set.height, set.width, random);
    }
    const syntheticPath = join(outDir, 'synthetic.npz');
    const samplesPng = join(outDir, 'samples.png');
    await writeSamples(set, data.numClasses, syntheticPath, samplesPng);
    let reportPath: string | undefined;
    if (!config.noReport) reportPath = await tryWriteReport(outDir);
    return {
      method,
      epsilon: fit.epsilon,
      delta,
      targetEpsilon: epsilon,
      generatorSteps: gen.steps,
      stoppedBy: fit.stoppedBy,
      seconds: (Date.now() - t0) / 1000,
      fitSeconds: fit.seconds,
      syntheticPath,
      samplesPng,
      ledgerPath,
      outDir,
      reportPath,
      samples,
      preset: presetName,
      hyper,
    };
  } finally {
    gen.dispose();
  }
}

/** synthetic.npz (images N×H×W uint8, labels N uint8) and samples.png (one row per class). */
export async function writeSamples(set: SampleSet, numClasses: number, npzPath: string, pngPath: string): Promise<void> {
  const { writeNpz } = await import('../data/npy.js');
  const { writePngGrid } = await import('../data/png.js');
  const shape = set.channels === 1 ? [set.count, set.height, set.width] : [set.count, set.height, set.width, set.channels];
  writeNpz(npzPath, { images: { dtype: 'uint8', shape, data: set.images }, labels: { dtype: 'uint8', shape: [set.count], data: Uint8Array.from(set.labels) } });
  writePngGrid(pngPath, set.images, set.labels, { height: set.height, width: set.width, channels: set.channels, numClasses, perClass: 10 });
}

/** report.html through the report layer when it is present; a missing report never fails a run. */
export async function tryWriteReport(outDir: string): Promise<string | undefined> {
  try {
    const rep = (await import('../report/index.js')) as { writeReport?: (dir: string) => Promise<string> };
    if (typeof rep.writeReport === 'function') return await rep.writeReport(outDir);
  } catch (e) {
    process.stderr.write(`warning: report.html not written: ${(e as Error).message}\n`);
  }
  return undefined;
}
