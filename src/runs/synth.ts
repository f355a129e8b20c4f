/**
 * The synthesis job runner behind `dplens synth`, the demo and the audit: any registered generator
 * plugin (src/generate/registry.ts) on a dataset, into a run folder:
 *   config.json, run.json (manifest), ledger.jsonl, metrics.jsonl (step, ε, functions of the noised
 *   releases), private-diagnostics.jsonl (wall time per phase: data-dependent, must not be
 *   published), generator/ (post-processing; checkpointed periodically so a killed run resumes),
 *   synthetic.npz and samples.png.
 * The CLI writes report.html afterwards (runners never import the report layer).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImageDataset } from '../data/types.js';
import { loadDataset, resolveDataFlag } from '../data/index.js';
import { writeNpz } from '../data/npy.js';
import { writePngGrid } from '../data/png.js';
import { PrivacyLedger, secureRandom, seededRandom, type LedgerOpenOptions, type RandomSource } from '../privacy/index.js';
import { keyedFingerprint } from '../privacy/owner-key.js';
import { augmentAffine, getGenerator, resolvePluginHyper, type FitResult, type GeneratorProgress, type PublicData, type SampleSet } from '../generate/index.js';
import { readManifest, writeManifest, type ManifestArtifact, type ReleasedFact, type RunManifest } from './manifest.js';
import { LEDGER_TIMESTAMPS } from './released.js';

export interface SynthesisConfig {
  /** Registry name of the generator (datalens, gpate, class-mean, ...). */
  method: string;
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
  /** Overrides of the preset's hyper-parameters (keys of the plugin's hyper-parameter schema). */
  hyper?: Record<string, unknown>;
  /** Cap on generator steps (the budget normally stops first). */
  maxSteps?: number;
  maxMinutes?: number;
  /** Seeded (reproducible, non-secure) randomness; recorded in the ledger. Default: secure. */
  seed?: number;
  /** Continue a run folder: generator checkpoint + ledger (teachers restart from scratch). */
  resume?: boolean;
  /** The exact command line of the run (e.g. ['dplens', 'synth', ...]), recorded in config.json and run.json. */
  argv?: string[];
  /** Generator checkpoint every this many steps (default 5; also at the start and the end). */
  checkpointEvery?: number;
  /**
   * Explicitly non-private run (`--non-private`; plugins with the 'non-private' run flag): no budget
   * (epsilon is ignored and must be omitted on the CLI), noise 0 allowed, the ledger records one
   * DpEvents.nonPrivate entry (ε = ∞). Needs maxSteps or maxMinutes. For calibrating audits.
   */
  nonPrivate?: boolean;
  /**
   * Public pre-training data (`--public-data mnist|fashion-mnist|PATH`; plugins with the
   * 'public-data' run flag). Named in the ledger header, config.json, run.json and the report as
   * outside the guarantee. Refused when it is the private set itself (same raw fingerprint).
   */
  publicData?: string;
}

export interface SynthesisHooks {
  dataOverride?: ImageDataset;
  /** Public data given directly (library use and tests), instead of loading config.publicData. */
  publicDataOverride?: ImageDataset;
  onStep?: (p: GeneratorProgress) => void;
  /** Log lines for the user (e.g. "resuming from step S"); the CLI sends them to stderr. */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SynthesisResult {
  method: string;
  epsilon: number;
  delta: number;
  targetEpsilon: number;
  /** The neighbouring relation the method proves ('replace-one' for the synthesis methods). */
  relation: string;
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
  hyper: Record<string, unknown>;
  /** Step the run resumed from (absent for a fresh run). */
  resumedFromStep?: number;
}

/** An error in the run's inputs (flags, folder state): the CLI prints it as a usage error. */
export class SynthesisInputError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'SynthesisInputError';
  }
}

/**
 * The noise stream of attempt `attempt` of a seeded run: attempt 0 uses the seed itself (seeded
 * runs reproduce), every resume a stream derived from (seed, attempt, resume step), so a resumed
 * run never replays the noise its earlier attempts already used (issue 12 #8).
 */
export function deriveNoiseSeed(seed: number, attempt: number, step: number): number {
  if (attempt === 0) return seed;
  let h = (seed ^ Math.imul(attempt + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

interface PriorConfig {
  method?: string;
  data?: string;
  datasetFingerprint?: string;
  epsilon?: number;
  delta?: number;
  seed?: number | null;
  nonPrivate?: boolean;
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new SynthesisInputError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : `not valid JSON (${(e as Error).message})`}`);
  }
}

/** Highest generator step the ledger has charged (entries carry meta.step). Also used by the synthesis audit. */
export function ledgerGeneratorSteps(ledger: PrivacyLedger): number {
  let s = 0;
  for (const e of ledger.entries) {
    const st = e.meta?.step;
    if (typeof st === 'number' && st > s) s = st;
  }
  return s;
}

export async function runSynthesis(config: SynthesisConfig, hooks: SynthesisHooks = {}): Promise<SynthesisResult> {
  const t0 = Date.now();
  const log = hooks.onLog ?? (() => undefined);
  const { method, epsilon, delta } = config;
  const plugin = getGenerator(method);
  const nonPrivate = !!config.nonPrivate;
  if (nonPrivate && !plugin.runFlags.includes('non-private')) throw new SynthesisInputError(`--non-private does not apply to method ${method}`);
  if (nonPrivate && config.maxSteps === undefined && config.maxMinutes === undefined) throw new SynthesisInputError('--non-private needs --steps or --max-minutes (there is no budget to stop the run)');
  if (!nonPrivate && (!(epsilon > 0) || !Number.isFinite(epsilon))) throw new RangeError(`epsilon must be a finite number > 0, got ${epsilon}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const samples = config.samples ?? 60000;
  if (!Number.isInteger(samples) || samples < 1) throw new RangeError(`samples must be a positive integer, got ${samples}`);
  if (config.resume && !plugin.runFlags.includes('resume')) throw new SynthesisInputError(`--resume does not apply to method ${method} (it fits in one pass; start a new run)`);
  if (config.maxSteps !== undefined && !plugin.runFlags.includes('steps')) throw new SynthesisInputError(`--steps does not apply to method ${method}`);
  if (config.maxMinutes !== undefined && !plugin.runFlags.includes('max-minutes')) throw new SynthesisInputError(`--max-minutes does not apply to method ${method}`);
  if ((config.publicData !== undefined || hooks.publicDataOverride) && !plugin.runFlags.includes('public-data')) throw new SynthesisInputError(`--public-data does not apply to method ${method} (it uses no public data)`);
  if (config.publicData === undefined && !hooks.publicDataOverride && plugin.requiresPublicData) throw new SynthesisInputError(`--public-data is required for method ${method}: ${plugin.requiresPublicData}`);
  // a non-private run has no ε: its default preset is the ε = 1 one
  const presetName = config.preset ?? plugin.defaultPreset(config.data, nonPrivate ? 1 : epsilon);
  let hyper = resolvePluginHyper(plugin, presetName, config.hyper ?? {}) as Record<string, unknown>;
  const data = hooks.dataOverride ?? loadDataset(resolveDataFlag(config.data, config.dataPath));
  // Only the keyed fingerprint is ever written (issue 12 #2): the plain SHA-256 lets anyone who
  // knows all records but one test membership.
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const publicData = loadPublicData(config.publicData, hooks.publicDataOverride, data);
  if (plugin.finalizeHyper) hyper = plugin.finalizeHyper(hyper, { trainCount: data.train.count, numClasses: data.numClasses });
  const outDir = resolve(config.out);
  mkdirSync(outDir, { recursive: true });
  const ledgerPath = join(outDir, 'ledger.jsonl');
  const genDir = join(outDir, 'generator');
  const configPath = join(outDir, 'config.json');
  if (!config.resume && existsSync(ledgerPath)) throw new SynthesisInputError(`${ledgerPath} already exists: use a new --out folder, or --resume to continue that run`);

  let attempt = 0;
  let prior: RunManifest | undefined;
  if (config.resume) {
    if (!existsSync(ledgerPath)) throw new SynthesisInputError(`--resume: ${ledgerPath} not found (a resumed run needs its ledger; refusing to start a fresh one)`);
    if (!existsSync(join(genDir, 'generator.json'))) throw new SynthesisInputError(`--resume: ${join(genDir, 'generator.json')} not found (no generator checkpoint to continue)`);
    const before = readJson<PriorConfig>(configPath);
    if (before.method !== method) throw new SynthesisInputError(`--resume: ${outDir} is a ${String(before.method)} run, not ${method}`);
    // The same data: name and keyed fingerprint (a resumed run on other data would charge one ledger for two datasets).
    if (before.data !== data.name || before.datasetFingerprint !== fingerprint) throw new SynthesisInputError(`--resume: ${outDir} was run on ${String(before.data)} (fingerprint ${String(before.datasetFingerprint).slice(0, 16)}…), not on ${data.name} (${fingerprint.slice(0, 16)}…); refusing to mix datasets in one ledger`);
    const beforePublic = (before as { publicData?: { name?: string; fingerprint?: string } | null }).publicData ?? null;
    if ((beforePublic?.fingerprint ?? null) !== (publicData?.fingerprint ?? null)) throw new SynthesisInputError(`--resume: ${outDir} was run with ${beforePublic ? `--public-data ${String(beforePublic.name)}` : 'no public data'}, not ${publicData ? `--public-data ${publicData.name}` : 'without it'}; resume it with the same public data`);
    if (!!before.nonPrivate !== nonPrivate) throw new SynthesisInputError(`--resume: ${outDir} was ${nonPrivate ? 'a private' : 'an explicitly non-private'} run; resume it ${nonPrivate ? 'without' : 'with'} --non-private`);
    if (!nonPrivate && (before.epsilon !== epsilon || before.delta !== delta)) throw new SynthesisInputError(`--resume: the run's budget is (ε=${before.epsilon}, δ=${before.delta}) and a resumed run keeps it; got --epsilon ${epsilon} --delta ${delta}. Pass the run's budget, or start a new run for a new budget`);
    const hdr = PrivacyLedger.read(ledgerPath).header;
    if (hdr.randomness.kind === 'secure' && config.seed !== undefined) throw new SynthesisInputError(`--resume: ${outDir} used cryptographically secure randomness; resuming it with --seed would make the rest of the run reproducible noise while the ledger says secure. Resume without --seed`);
    if (hdr.randomness.kind === 'seeded' && config.seed !== hdr.randomness.seed) throw new SynthesisInputError(`--resume: ${outDir} is a seeded run (seed ${String(hdr.randomness.seed)}); resume it with --seed ${String(hdr.randomness.seed)}`);
    prior = readManifest(outDir);
    attempt = prior?.attempts.length ?? 1;
  }
  const randomness = config.seed !== undefined ? { kind: 'seeded' as const, seed: config.seed } : { kind: 'secure' as const };
  const openOpts: LedgerOpenOptions = { accountant: 'rdp', relation: plugin.relation, create: !config.resume, randomness, ...(nonPrivate ? {} : { budget: { epsilon, delta } }), meta: { command: 'synth', method, ...(nonPrivate ? { nonPrivate: true } : {}), ...(publicData ? { publicData: publicDataFacts(publicData) } : {}) } };
  const ledger = PrivacyLedger.open(ledgerPath, openOpts);
  try {
    const maxSteps = config.maxSteps ?? Number.POSITIVE_INFINITY;
    const maxMinutes = config.maxMinutes ?? Number.POSITIVE_INFINITY;
    // The generator's stream is created after the checkpoint step is known (it seeds the resume stream).
    let resumedFromStep: number | undefined;
    if (config.resume) {
      const ck = readJson<{ steps?: number }>(join(genDir, 'generator.json'));
      resumedFromStep = ck.steps ?? 0;
    }
    const noiseSeed = config.seed !== undefined ? deriveNoiseSeed(config.seed, attempt, resumedFromStep ?? 0) : undefined;
    const random: RandomSource = noiseSeed !== undefined ? seededRandom(noiseSeed) : secureRandom();
    const gen = plugin.create({ data, datasetFingerprint: fingerprint, budget: { epsilon: nonPrivate ? Number.POSITIVE_INFINITY : epsilon, delta }, ...(nonPrivate ? { nonPrivate } : {}), ...(publicData ? { publicData } : {}), ledger, random }, hyper, { maxSteps, maxMinutes });
    try {
      if (config.resume) {
        await gen.load(genDir);
        const charged = ledgerGeneratorSteps(ledger);
        // The checkpoint can lag the ledger after a kill: those steps' releases stay charged in the
        // ledger (nothing is lost), their generator updates are redone. A ledger BEHIND the
        // checkpoint lost entries: refuse.
        if (charged < gen.steps) throw new SynthesisInputError(`--resume: the generator checkpoint is at step ${gen.steps} but the ledger charges only ${charged} steps: the ledger lost entries; refusing`);
        log(`resuming from step ${gen.steps}${charged > gen.steps ? ` (the ledger charges ${charged} steps; the releases of steps ${gen.steps + 1}..${charged} stay charged, their updates are redone)` : ''}`);
      }
      // Refuse a budget that cannot pay for even one step, instead of writing pure-noise samples.
      const first = gen.stepEvent?.();
      if (first && gen.steps === 0 && !nonPrivate) {
        const one = ledger.epsilonIf(first, delta);
        if (!Number.isFinite(one)) throw new SynthesisInputError(`${method} with preset ${presetName} and these settings is not private (one step costs ε = ∞, e.g. noise 0); pass --non-private (with --steps) to run it as an explicitly non-private run`);
        if (one > epsilon) {
          // Nothing was spent: remove the fresh, empty ledger so the same --out can be reused.
          if (!config.resume && ledger.entries.length === 0) {
            ledger.close();
            for (const f of [ledgerPath, `${ledgerPath}.tip`]) rmSync(f, { force: true });
          }
          throw new SynthesisInputError(`--epsilon ${epsilon} is too small for even one ${method} step with preset ${presetName}: one step costs ε = ${one.toPrecision(4)} at δ = ${delta}; use --epsilon ≥ ${ceil3(one)} (or more noise)`);
        }
      }
      const resolvedConfig = {
        command: 'synth',
        argv: config.argv ?? null,
        method,
        data: data.name,
        dataSource: data.source,
        datasetFingerprint: fingerprint,
        relation: plugin.relation,
        epsilon: nonPrivate ? null : epsilon,
        delta,
        ...(nonPrivate ? { nonPrivate: true } : {}),
        publicData: publicData ? publicDataFacts(publicData) : null,
        samples,
        preset: presetName,
        hyper,
        maxSteps: Number.isFinite(maxSteps) ? maxSteps : null,
        maxMinutes: Number.isFinite(maxMinutes) ? maxMinutes : null,
        randomness: randomness.kind,
        seed: config.seed ?? null,
        noiseSeed: noiseSeed ?? null,
        attempt,
        accounting: 'data-independent RDP (tight conversion), δ fixed',
        resumed: !!config.resume,
        resumedFromStep: resumedFromStep ?? null,
      };
      writeFileSync(join(outDir, config.resume ? `config.resume-${attempt}.json` : 'config.json'), JSON.stringify(resolvedConfig, null, 2));
      const manifest = buildManifest(prior, plugin, data, fingerprint, resolvedConfig, { epsilon: nonPrivate ? Number.POSITIVE_INFINITY : epsilon, delta }, randomness, {
        startedAt: new Date(t0).toISOString(),
        command: config.argv?.slice(1),
        resumedFromStep,
        ledgerEntriesAtStart: ledger.entries.length,
      });
      writeManifest(outDir, manifest);
      const metricsPath = join(outDir, 'metrics.jsonl');
      const diagPath = join(outDir, 'private-diagnostics.jsonl');
      const every = config.checkpointEvery ?? 5;
      const canResume = plugin.runFlags.includes('resume');
      if (canResume && !config.resume) await gen.save(genDir); // step-0 checkpoint: a kill at any step can resume
      // Periodic checkpoints run one after another (never two writers on generator/), and a failed
      // save is reported after fit instead of crashing the process from an unhandled rejection.
      let saving: Promise<void> = Promise.resolve();
      let saveError: unknown;
      const fit = await gen.fit({
        signal: hooks.signal,
        onProgress: (p) => {
          appendFileSync(metricsPath, JSON.stringify({ step: p.step, epoch: p.epoch, epsilon: p.epsilon, generatorLoss: p.generatorLoss, aggregateNonZero: p.aggregateNonZero }) + '\n');
          // Wall times depend on the data (e.g. class counts of a step's queries): private.
          appendFileSync(diagPath, JSON.stringify({ attempt, step: p.step, seconds: p.seconds, ...p.timing }) + '\n');
          if (canResume && p.step % every === 0) saving = saving.then(() => gen.save(genDir)).catch((e: unknown) => { saveError ??= e; });
          hooks.onStep?.(p);
        },
      });
      await saving;
      if (saveError) throw saveError;
      if (canResume || gen.steps > 0) await gen.save(genDir);
      if (gen.steps === 0) throw new SynthesisInputError(`no generator step fitted the budget (ε=${epsilon}, δ=${delta}); nothing to sample`);
      const set = await gen.sample(samples);
      // Post-processing with a public prior only (no private data, no budget): see augment.ts.
      if (hyper.augment === 'affine') {
        if (set.channels !== 1) throw new RangeError('--augment affine supports single-channel images');
        augmentAffine(set.images, set.count, set.height, set.width, random);
      }
      const syntheticPath = join(outDir, 'synthetic.npz');
      const samplesPng = join(outDir, 'samples.png');
      writeSamples(set, data.numClasses, syntheticPath, samplesPng);
      const seconds = (Date.now() - t0) / 1000;
      const result: SynthesisResult = {
        method,
        epsilon: fit.epsilon,
        delta,
        targetEpsilon: epsilon,
        relation: plugin.relation,
        generatorSteps: gen.steps,
        stoppedBy: fit.stoppedBy,
        seconds,
        fitSeconds: fit.seconds,
        syntheticPath,
        samplesPng,
        ledgerPath,
        outDir,
        samples,
        preset: presetName,
        hyper,
        ...(resumedFromStep !== undefined ? { resumedFromStep } : {}),
      };
      const last = manifest.attempts[manifest.attempts.length - 1]!;
      last.endedAt = new Date().toISOString();
      last.stoppedBy = fit.stoppedBy;
      manifest.result = { method, epsilon: fit.epsilon, delta, targetEpsilon: epsilon, relation: plugin.relation, generatorSteps: gen.steps, stoppedBy: fit.stoppedBy, samples, preset: presetName };
      writeManifest(outDir, manifest);
      return result;
    } finally {
      gen.dispose();
    }
  } finally {
    ledger.close();
  }
}

/** What the ledger header, config.json and run.json say about the public data. */
function publicDataFacts(p: PublicData): Record<string, unknown> {
  return { name: p.name, source: p.source, fingerprint: p.fingerprint, trainSize: p.data.train.count, guarantee: 'outside: public pre-training data, not protected by ε' };
}

/**
 * The public pre-training set: loaded by name or path, its shape checked against the private set,
 * and refused when it IS the private set (a "public" copy of the private records would be trained
 * on without noise). Only the train split is used by generators.
 */
function loadPublicData(name: string | undefined, override: ImageDataset | undefined, priv: ImageDataset): PublicData | undefined {
  if (name === undefined && !override) return undefined;
  let d: ImageDataset;
  if (override) d = override;
  else {
    try {
      d = loadDataset(resolveDataFlag(name!));
    } catch (e) {
      throw new SynthesisInputError(`--public-data ${name}: ${(e as Error).message}`);
    }
  }
  const label = name ?? d.name;
  if (d.rawFingerprint === priv.rawFingerprint) throw new SynthesisInputError(`--public-data ${label} is the private dataset itself (same files); public pre-training data must be other data`);
  if (d.height !== priv.height || d.width !== priv.width || d.channels !== priv.channels) throw new SynthesisInputError(`--public-data ${label}: images are ${d.height}×${d.width}×${d.channels}, the private set's are ${priv.height}×${priv.width}×${priv.channels}; they must match`);
  return { name: label, source: d.source, fingerprint: d.rawFingerprint, data: d };
}

function ceil3(x: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(x)) - 2);
  return Math.ceil(x / p) * p;
}

function buildManifest(
  prior: RunManifest | undefined,
  plugin: ReturnType<typeof getGenerator>,
  data: ImageDataset,
  fingerprint: string,
  config: Record<string, unknown>,
  budget: { epsilon: number; delta: number },
  randomness: { kind: 'secure' | 'seeded'; seed?: number },
  attempt: RunManifest['attempts'][number],
): RunManifest {
  const now = new Date().toISOString();
  const classesDeclared = data.disclosure?.numClasses === 'declared';
  const released: ReleasedFact[] = [
    ...plugin.treatedAsPublic.map((what: string): ReleasedFact => ({ what, where: ['config.json', 'run.json', 'ledger.jsonl'], status: 'public-by-assumption', why: 'the replace-one proof treats it as public' })),
    { what: `class list (${data.numClasses} classes)`, where: ['config.json', 'synthetic.npz', 'samples.png'], status: classesDeclared ? 'public-by-assumption' : 'outside-guarantee', why: classesDeclared ? 'declared as public input' : 'derived from the data (max label + 1), not covered by ε' },
    { what: 'total wall time (seconds)', where: ['stdout'], status: 'outside-guarantee', why: 'wall time depends on the data; per-step timings are kept in private-diagnostics.jsonl' },
    LEDGER_TIMESTAMPS,
    ...(config.publicData ? [{ what: `public pre-training data (${String((config.publicData as { name: string }).name)})`, where: ['config.json', 'run.json', 'ledger.jsonl', 'generator', 'synthetic.npz'], status: 'outside-guarantee' as const, why: 'public data: used without noise for pre-training, not protected by ε (only the private records are)' }] : []),
  ];
  const artifacts: ManifestArtifact[] = [
    { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
    { path: 'ledger.jsonl', what: 'privacy ledger (data-independent events, keyed fingerprint)', status: 'public' },
    { path: 'ledger.jsonl.tip', what: 'ledger tip (entry count and last hash, signed with the owner key)', status: 'public' },
    { path: 'metrics.jsonl', what: 'per-step ε and functions of the noised releases', status: 'covered' },
    { path: 'private-diagnostics.jsonl', what: 'wall time per phase of each step', status: 'private', why: 'timings depend on the private data (e.g. class counts of a step\'s queries); not covered by ε, do not publish' },
    { path: 'generator', what: 'generator checkpoint (post-processing of the noised releases)', status: 'covered' },
    { path: 'synthetic.npz', what: 'synthetic images and labels', status: 'covered' },
    { path: 'samples.png', what: 'sample grid, one row per class', status: 'covered' },
  ];
  return {
    version: 1,
    kind: 'synth',
    method: plugin.name,
    description: plugin.description,
    createdAt: prior?.createdAt ?? now,
    updatedAt: now,
    config,
    dataset: { name: data.name, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: data.numClasses },
    privacy: { relation: plugin.relation, treatedAsPublic: [...plugin.treatedAsPublic], accountant: 'rdp', delta: budget.delta, ...(Number.isFinite(budget.epsilon) ? { budget } : {}), ledger: 'ledger.jsonl', randomness, released },
    metrics: 'metrics.jsonl',
    privateDiagnostics: 'private-diagnostics.jsonl',
    artifacts,
    attempts: [...(prior?.attempts ?? []), attempt],
  };
}

/** synthetic.npz (images N×H×W uint8, labels N uint8) and samples.png (one row per class). */
export function writeSamples(set: SampleSet, numClasses: number, npzPath: string, pngPath: string): void {
  const shape = set.channels === 1 ? [set.count, set.height, set.width] : [set.count, set.height, set.width, set.channels];
  writeNpz(npzPath, { images: { dtype: 'uint8', shape, data: set.images }, labels: { dtype: 'uint8', shape: [set.count], data: Uint8Array.from(set.labels) } });
  writePngGrid(pngPath, set.images, set.labels, { height: set.height, width: set.width, channels: set.channels, numClasses, perClass: 10 });
}
