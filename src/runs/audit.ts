/**
 * The audit runner behind `dplens audit`: reads a finished run folder, re-runs the same private
 * pipeline once with canaries, scores them (src/audit), bounds ε from below, and writes
 * DIR/audit.json.
 *
 * The re-run trains (or synthesises) on the SAME private data, so it is a release of that data too
 * (issue 12 #7): by default every release of the re-run is recorded before it is used — DP-SGD into
 * DIR/audit-ledger.jsonl (same accountant and neighbouring relation as the audited run), synthesis
 * into DIR/audit-rerun[-N]/ledger.jsonl — and the ledger is listed in run.json
 * `privacy.linkedLedgers`, so the report sums it with the run's own. `dataNotPrivate: true`
 * (`--data-not-private`) states that the data is not private and skips the recording.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../data/index.js';
import { loadDataset, readImageNpz, resolveDataFlag } from '../data/index.js';
import { tidyRead } from '../engine/tidy-read.js';
import { ensureEngine, findGenerator } from '../generate/index.js';
import { ledgerGeneratorSteps, runSynthesis, type SynthesisConfig } from './synth.js';
import { auditGaussianReleaseRun } from './audit-gaussian.js';
import { auditPsgRun } from './audit-psg.js';
import { type AccountantKind, type NeighbouringRelation, PrivacyLedger } from '../privacy/index.js';
import { getPrivatizer, imageData } from '../train/index.js';
import {
  auditRandom,
  type AuditReport,
  canaryAuditPlan,
  distanceToClosestRecord,
  type GuessStrategy,
  insertInputCanaries,
  makeDiracCanaries,
  mechanismAuditStrategy,
  replayMechanismWithCanaries,
  summarizeAudit,
} from '../audit/index.js';
import { readManifest, writeManifest } from './manifest.js';
import { datasetNormalisation, runTraining, trainDataSpec, type TrainConfig, type TrainHooks } from './train.js';
import { writeFileAtomic } from '../util/files.js';

export const AUDIT_LEDGER_FILE = 'audit-ledger.jsonl';

export interface AuditOptions {
  /** Number of canaries (default 1000). */
  canaries?: number;
  confidence?: number;
  /** 'gradient' (Dirac gradient canaries, white box, default) or 'input' (mislabeled held-out images, black box). */
  canaryType?: 'gradient' | 'input';
  /** Guess strategy; default: the pre-registered plan of `canaryAuditPlan` (public facts only). */
  strategy?: GuessStrategy;
  /** Auditor seed (inclusion bits, coordinates) and the re-run's sampling/noise seed; omitted: secure. */
  seed?: number;
  dataOverride?: ImageDataset;
  onStep?: TrainHooks['onStep'];
  log?: (msg: string) => void;
  /** Ledger that records the re-run's releases (the caller opens and closes it). */
  ledger?: PrivacyLedger;
}

export type TrainingAuditReport = AuditReport & { trainSeconds: number; steps: number; sampleRate: number; noiseMultiplier: number };

/** The re-run's config: no run folder, no evaluation (its seed is the caller's choice). */
function rerunConfig(config: TrainConfig): TrainConfig {
  return { ...config, out: undefined, outDir: undefined, resume: false, evaluate: false };
}

/**
 * One-run gradient-canary audit of the DP-SGD run described by `config` (as `runTraining` takes it):
 * re-runs training once with m Dirac canaries (src/audit/dpsgd.ts) and returns the report.
 */
export async function auditTraining(config: TrainConfig, opts: AuditOptions = {}): Promise<TrainingAuditReport> {
  if ((opts.canaryType ?? 'gradient') === 'input') return auditTrainingInput(config, opts);
  const t0 = Date.now();
  const m = opts.canaries ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  const rng = auditRandom(opts.seed);
  const ds = opts.dataOverride ?? loadDataset({ ...trainDataSpec(config), expect: 'image' });
  // A privatizer with its own accounting (vmf) declares no σ: its plan uses σ-equivalent 0 for κ = ∞ (no noise), else 1 (a noisy run).
  const own = getPrivatizer(config.privatizer ?? 'gaussian').ownAccounting;
  const kappa = config.privatizerOptions?.['vmf-kappa'];
  const planNoise = own ? (kappa === Infinity ? 0 : 1) : config.noise;
  if (planNoise === undefined) throw new Error('audit: the config must state the noise multiplier (noise); run folders record it');
  // the plan needs q and the planned steps before training (as runTraining computes them)
  const q = Math.min(1, (config.batch ?? 240) / ds.train.count);
  const plannedSteps = Math.max(1, Math.round((config.epochs ?? 1) / q));
  const plan = canaryAuditPlan({ m, sampleRate: q, steps: plannedSteps, noiseMultiplier: planNoise });
  const canaries = makeDiracCanaries(m, q, rng, plan.statistic);
  const res = await runTraining(rerunConfig(config), { dataOverride: ds, gradientCanaries: canaries.hook, onStep: opts.onStep, log: opts.log, ledger: opts.ledger });
  if (Math.abs(res.sampleRate - q) > 1e-12) throw new Error(`audit: the run's sampling rate ${res.sampleRate} differs from the canaries' ${q}`);
  const claimed = res.nonPrivate || res.epsilon === null || !Number.isFinite(res.epsilon) ? null : res.epsilon;
  const report = summarizeAudit(canaries.scores(), canaries.included, {
    claimedEpsilon: claimed,
    delta: res.delta,
    confidence,
    attack: `one-run gradient canaries (Dirac, white box: every noisy update, ${plan.statistic} score)`,
    strategy: opts.strategy ?? plan.strategy,
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  return { ...report, statistic: plan.statistic, expectedDetectable: plan.expectedDetectable, trainSeconds: res.seconds, steps: res.steps, sampleRate: res.sampleRate, noiseMultiplier: res.noiseMultiplier };
}

/**
 * Black-box input-space canaries: m held-out test images with a random *wrong* label, each added to
 * the training set with probability ½; the score is minus the final model's loss under that label.
 */
export async function auditTrainingInput(config: TrainConfig, opts: AuditOptions = {}): Promise<TrainingAuditReport> {
  const t0 = Date.now();
  const m = opts.canaries ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  const rng = auditRandom(opts.seed);
  const ds = opts.dataOverride ?? loadDataset({ ...trainDataSpec(config), expect: 'image' });
  const { data: withCanaries, canaries, included } = insertInputCanaries(ds, m, rng);
  // (the re-run does not evaluate, so the canaries' presence in the test split does not matter)
  const res = await runTraining(rerunConfig(config), { dataOverride: withCanaries, onStep: opts.onStep, log: opts.log, ledger: opts.ledger });
  const data = imageData(canaries, ds, datasetNormalisation(ds));
  const scores: number[] = [];
  for (let s = 0; s < m; s += 256) {
    const e = Math.min(m, s + 256);
    const l = tidyRead(() => {
      const logits = res.model.forward(data.batch(Int32Array.from({ length: e - s }, (_, i) => s + i)), false) as tf.Tensor2D;
      const logp = tf.logSoftmax(logits);
      const y = tf.oneHot(tf.tensor1d(canaries.labels.subarray(s, e), 'int32'), ds.numClasses);
      return tf.sum(tf.mul(logp, tf.cast(y, 'float32')), 1);
    });
    for (const v of l) scores.push(v); // log-likelihood of the wrong label = −loss
  }
  const claimed = res.nonPrivate || res.epsilon === null || !Number.isFinite(res.epsilon) ? null : res.epsilon;
  const report = summarizeAudit(scores, included, { claimedEpsilon: claimed, delta: res.delta, confidence, attack: 'one-run input canaries (mislabeled held-out images, loss score, black box)', strategy: opts.strategy, seconds: 0 });
  report.seconds = (Date.now() - t0) / 1000;
  return { ...report, trainSeconds: res.seconds, steps: res.steps, sampleRate: res.sampleRate, noiseMultiplier: res.noiseMultiplier };
}

export interface SynthesisAuditOptions {
  canaries?: number;
  confidence?: number;
  strategy?: GuessStrategy;
  seed?: number;
  dataOverride?: ImageDataset;
  /** Synthetic samples to draw for scoring (default: the config's, capped at 20,000). */
  samples?: number;
  onStep?: Parameters<typeof runSynthesis>[1] extends infer H ? (H extends { onStep?: infer F } ? F : never) : never;
  /** Folder for the re-run (its ledger.jsonl records the re-run's releases and is kept); default: a temporary folder, removed. */
  rerunDir?: string;
}

/**
 * One-run audit of a DP generator with input-space canaries (m mislabeled held-out images, each in
 * the private set w.p. ½); the adversary sees only the released synthetic data and scores a canary
 * by minus its distance to the closest synthetic record of its label.
 */
export async function auditSynthesis(config: SynthesisConfig, opts: SynthesisAuditOptions = {}): Promise<AuditReport & { synthesisSeconds: number; generatorSteps: number }> {
  const t0 = Date.now();
  await ensureEngine();
  const m = opts.canaries ?? 1000;
  const rng = auditRandom(opts.seed);
  const ds = opts.dataOverride ?? loadDataset(resolveDataFlag(config.data, config.dataPath));
  const { data, canaries, included } = insertInputCanaries(ds, m, rng);
  const dir = opts.rerunDir ?? join(tmpdirFor(), `dplens-audit-${process.pid}-${Date.now()}`);
  try {
    const samples = opts.samples ?? Math.min(config.samples ?? 60000, 20000);
    const seed = opts.seed !== undefined ? (opts.seed ^ 0x5bd1e995) >>> 0 : undefined;
    const res = await runSynthesis({ ...config, out: dir, resume: false, samples, seed }, { dataOverride: data, onStep: opts.onStep });
    const syn = readImageNpz(res.syntheticPath, { numClasses: ds.numClasses, expect: { height: ds.height, width: ds.width, channels: ds.channels } });
    const dcr = distanceToClosestRecord(canaries, syn, ds.height * ds.width * ds.channels);
    const scores = Array.from(dcr, (d) => (Number.isFinite(d) ? -d : -1e9));
    const report = summarizeAudit(scores, included, {
      claimedEpsilon: Number.isFinite(res.epsilon) ? res.epsilon : null,
      delta: res.delta,
      confidence: opts.confidence ?? 0.95,
      attack: `one-run input canaries (mislabeled held-out images) vs ${config.method} synthetic data, distance to closest record`,
      strategy: opts.strategy,
      seconds: 0,
    });
    report.seconds = (Date.now() - t0) / 1000;
    return { ...report, synthesisSeconds: res.seconds, generatorSteps: res.generatorSteps };
  } finally {
    if (opts.rerunDir) {
      // keep the ledger (and its tip) and the re-run's config: its samples and generator are not
      // released, and its private-diagnostics.jsonl (data-dependent timings) must not stay in a
      // folder the parent run.json does not list as private
      for (const f of ['synthetic.npz', 'samples.png', 'generator', 'metrics.jsonl', 'private-diagnostics.jsonl', 'report.html']) rmSync(join(dir, f), { recursive: true, force: true });
    } else rmSync(dir, { recursive: true, force: true });
  }
}

function tmpdirFor(): string {
  return process.env.TMPDIR ?? '/tmp';
}


/**
 * Mechanism-level white-box audit of a finished synthesis run folder (src/audit/synth-audit.ts):
 * rebuilds the run's aggregator from config.json (method, resolved hyper-parameters) and public
 * facts (run.json: n, classes; generator/generator.json: image size), replays it for the steps its
 * ledger charged with m canary voters, and bounds ε. Reads no record of the private data: no ε.
 */
export function auditSynthesisMechanism(
  dir: string,
  doc: Record<string, unknown>,
  opts: { canaries?: number; confidence?: number; strategy?: GuessStrategy; seed?: number } = {},
): AuditReport & Record<string, unknown> {
  const t0 = Date.now();
  const method = String(doc.method);
  const plugin = findGenerator(method);
  if (!plugin?.mechanism) throw new Error(`${dir}: method ${method} has no replayable mechanism`);
  const man = readManifest(dir);
  const genPath = join(dir, 'generator', 'generator.json');
  if (!existsSync(genPath)) throw new Error(`${genPath}: not found (the audit reads the image size from the generator checkpoint)`);
  const gen = readJson(genPath) as { steps?: number; config?: { height?: number; width?: number; numClasses?: number } };
  const trainCount = man?.dataset?.trainSize;
  const numClasses = man?.dataset?.numClasses ?? gen.config?.numClasses;
  const height = gen.config?.height;
  const width = gen.config?.width;
  if (typeof trainCount !== 'number' || typeof numClasses !== 'number' || typeof height !== 'number' || typeof width !== 'number') throw new Error(`${dir}: run.json (dataset.trainSize, numClasses) and generator/generator.json (config.height, width) must state the public facts the replay needs`);
  const hyper = doc.hyper as Record<string, unknown>;
  if (!hyper || typeof hyper !== 'object') throw new Error(`${join(dir, 'config.json')}: no resolved hyper-parameters (hyper)`);
  const facts = { trainCount, numClasses, height, width, channels: 1 };
  const { aggregator, facts: stepFacts } = plugin.mechanism(plugin.finalizeHyper ? plugin.finalizeHyper(hyper, facts) : hyper, facts);
  const ledgerPath = join(dir, 'ledger.jsonl');
  const ledger = PrivacyLedger.read(ledgerPath);
  const delta = Number(doc.delta);
  const claimedRaw = ledger.spent(delta);
  const claimed = Number.isFinite(claimedRaw) ? claimedRaw : null;
  // the releases the ledger charged (a killed run may have charged steps it never applied) or made
  const generatorSteps = typeof man?.result?.generatorSteps === 'number' ? (man.result.generatorSteps as number) : (gen.steps ?? 0);
  const steps = Math.max(ledgerGeneratorSteps(ledger), generatorSteps);
  const m = opts.canaries ?? 1000;
  const rng = auditRandom(opts.seed);
  const noise = auditRandom(opts.seed !== undefined ? (opts.seed ^ 0x2545f491) >>> 0 : undefined);
  const replay = replayMechanismWithCanaries({ aggregator, facts: stepFacts, steps, m, rng, noise });
  const report = summarizeAudit(replay.scores, replay.included, {
    claimedEpsilon: claimed,
    delta,
    confidence: opts.confidence ?? 0.95,
    attack: `mechanism replay (white box): the run's ${aggregator.method} aggregator with its recorded noise, ${steps} steps, canary voters of the step's full charged sensitivity, score = canary's share of every released aggregate`,
    strategy: opts.strategy ?? mechanismAuditStrategy(replay.declaredNoise),
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  const replayEps = replay.replayEpsilon(delta);
  return {
    ...report,
    statistic: 'released-share',
    steps,
    declaredNoise: replay.declaredNoise,
    canaryAllowance: replay.allowance,
    canariesCovered: replay.covered,
    replayClaimedEpsilon: Number.isFinite(replayEps) ? replayEps : null,
    privateDataUsed: false,
    epsilonCost: 'none: the replay reads no record of the private data (canary votes and the run\'s public hyper-parameters, n and image size only)',
  };
}

export interface RunAuditOptions extends Omit<AuditOptions, 'ledger'> {
  /** The data is not private (e.g. a public benchmark): do not record the re-run's releases. */
  dataNotPrivate?: boolean;
}

export type RunAuditReport = AuditReport & {
  /** The audit's verdict: the bound exceeds the claimed ε, or the run claims no guarantee (non-private). */
  flagged: boolean;
  flagReason?: string;
  /** ε the audit's re-run spent on the same private data (at the run's δ); null when not recorded (--data-not-private), Infinity for a non-private re-run. */
  additionalEpsilonSpent: number | null;
  /** The ledger that records the re-run, relative to the run folder (absent with dataNotPrivate). */
  auditLedger?: string;
};

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Lists audit.json in run.json artifacts and links `ledger` (relative path, when the re-run was
 * recorded) in privacy.linkedLedgers, once each. audit.json holds wall times of the audit (seconds,
 * trainSeconds), which depend on the data: outside the guarantee, like train's result.json.
 */
function linkAudit(dir: string, ledger: string | undefined, purpose: string): void {
  const man = readManifest(dir);
  if (!man?.privacy) return; // legacy folder without a manifest: audit.json still names the ledger
  if (ledger !== undefined) {
    const linked = man.privacy.linkedLedgers ?? [];
    if (!linked.some((l) => l.path === ledger)) linked.push({ path: ledger, purpose });
    man.privacy.linkedLedgers = linked;
    if (!man.artifacts.some((a) => a.path === ledger)) man.artifacts.push({ path: ledger, what: 'privacy ledger of the audit re-run (same private data)', status: 'public' });
  }
  if (!man.artifacts.some((a) => a.path === 'audit.json')) man.artifacts.push({ path: 'audit.json', what: 'empirical privacy audit (canary scores, ROC, ε lower bound)', status: 'outside-guarantee', why: 'holds the audit\'s wall times (seconds, trainSeconds); the scores are post-processing of the re-run (recorded in the linked ledger unless the data was declared not private)' });
  writeManifest(dir, man);
}

/**
 * Audits DIR (a `dplens train` or `dplens synth` run folder), records the re-run, writes
 * DIR/audit.json and returns its content.
 */
export async function auditRun(dir: string, opts: RunAuditOptions = {}): Promise<RunAuditReport> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir} is not a run folder (no config.json)`);
  const doc = readJson(path);
  const man = readManifest(dir);
  const record = !opts.dataNotPrivate;
  let report: AuditReport;
  let additionalEpsilonSpent: number | null = null;
  let auditLedger: string | undefined;
  // vmf runs state metric DP (replace-one), not (ε, δ): the audit's (ε, δ) bound has no claim to compare with
  let metricClaim = false;
  if (doc.kind === 'train' && doc.config) {
    // Re-run with the σ the run actually used (it may have been calibrated from a target ε).
    const cfg: TrainConfig = { ...(doc.config as TrainConfig) };
    metricClaim = getPrivatizer(cfg.privatizer ?? 'gaussian').ownAccounting?.guarantee === 'metricDP';
    const derived = doc.derived as { noiseMultiplier?: number; relation?: NeighbouringRelation } | undefined;
    if (derived?.noiseMultiplier !== undefined) {
      cfg.noise = derived.noiseMultiplier;
      delete cfg.targetEpsilon;
      delete cfg.epsilon;
    }
    // The re-run of a finished run never replays its noise: with the same seed the two releases would
    // share one noise draw (their difference cancels it). It uses the auditor's seed, or secure randomness.
    if (opts.seed !== undefined) cfg.seed = (opts.seed ^ 0x5bd1e995) >>> 0;
    else delete cfg.seed;
    const delta = cfg.delta ?? 1e-5;
    let ledger: PrivacyLedger | undefined;
    if (record) {
      auditLedger = AUDIT_LEDGER_FILE;
      const relation: NeighbouringRelation = man?.privacy?.relation ?? derived?.relation ?? 'add-remove';
      const accountant = (cfg.accountant ?? 'rdp') as AccountantKind;
      ledger = PrivacyLedger.open(join(dir, AUDIT_LEDGER_FILE), {
        accountant,
        relation,
        randomness: opts.seed !== undefined ? { kind: 'seeded', seed: (opts.seed ^ 0x5bd1e995) >>> 0 } : { kind: 'secure' },
        meta: { command: 'audit', audits: 'ledger.jsonl', method: 'dpsgd' },
      });
    }
    try {
      const before = ledger ? ledger.spent(delta) : 0;
      report = await auditTraining(cfg, { ...opts, ledger });
      if (ledger) {
        const after = ledger.spent(delta);
        additionalEpsilonSpent = Number.isFinite(after) ? after - before : Infinity;
      }
    } finally {
      ledger?.close();
    }
  } else if (doc.command === 'synth' && (opts.canaryType ?? 'gradient') !== 'input' && doc.method === 'psg') {
    // White-box replay of psg's DP-SGD release with Dirac gradient canaries: no private data, no ε.
    opts.log?.('generator run (psg): replaying its DP-SGD release with gradient canaries (no private data, no ε spent)');
    report = auditPsgRun(dir, doc, { canaries: opts.canaries, confidence: opts.confidence, strategy: opts.strategy, seed: opts.seed });
    additionalEpsilonSpent = 0;
  } else if (doc.command === 'synth' && (opts.canaryType ?? 'gradient') !== 'input' && findGenerator(String(doc.method))?.gaussianMechanism) {
    // White-box replay of the run's Gaussian release with canary coordinates: no private data, no ε.
    opts.log?.(`generator run (${String(doc.method)}): replaying its Gaussian release with canary coordinates (no private data, no ε spent)`);
    report = auditGaussianReleaseRun(dir, doc, findGenerator(String(doc.method))!, { canaries: opts.canaries, confidence: opts.confidence, strategy: opts.strategy, seed: opts.seed });
    additionalEpsilonSpent = 0;
  } else if (doc.command === 'synth' && (opts.canaryType ?? 'gradient') !== 'input' && findGenerator(String(doc.method))?.mechanism) {
    // White-box replay of the run's release mechanism with canary voters: no private data, no ε.
    opts.log?.(`generator run (${String(doc.method)}): replaying its aggregator with canary voters (no private data, no ε spent)`);
    report = auditSynthesisMechanism(dir, doc, { canaries: opts.canaries, confidence: opts.confidence, strategy: opts.strategy, seed: opts.seed });
    additionalEpsilonSpent = 0;
  } else if (doc.command === 'synth') {
    if (doc.nonPrivate === true) throw new Error(`${path}: an explicitly non-private run (ε = ∞) has no budget to re-run with input canaries; audit it with the default (mechanism) audit`);
    const cfg: SynthesisConfig = {
      method: doc.method as SynthesisConfig['method'],
      data: String(doc.data),
      epsilon: Number(doc.epsilon),
      delta: Number(doc.delta),
      out: '',
      samples: typeof doc.samples === 'number' ? doc.samples : undefined,
      preset: typeof doc.preset === 'string' ? doc.preset : undefined,
      hyper: (doc.hyper as SynthesisConfig['hyper']) ?? undefined,
      maxSteps: typeof doc.maxSteps === 'number' ? doc.maxSteps : undefined,
      maxMinutes: typeof doc.maxMinutes === 'number' ? doc.maxMinutes : undefined,
    };
    let rerunDir: string | undefined;
    if (record) {
      let k = 1;
      do rerunDir = join(dir, k === 1 ? 'audit-rerun' : `audit-rerun-${k}`);
      while (existsSync(rerunDir) && ++k);
      mkdirSync(rerunDir, { recursive: true });
      auditLedger = join(rerunDir.slice(dir.length + 1), 'ledger.jsonl');
    }
    opts.log?.(`generator run (${cfg.method}): auditing with input canaries and distance to closest synthetic record (a recorded re-run on the private data)`);
    report = await auditSynthesis(cfg, { canaries: opts.canaries, confidence: opts.confidence, strategy: opts.strategy, seed: opts.seed, dataOverride: opts.dataOverride, rerunDir });
    if (rerunDir) additionalEpsilonSpent = PrivacyLedger.read(join(rerunDir, 'ledger.jsonl')).spent(cfg.delta);
  } else {
    throw new Error(`${path}: not a dplens train or synth run folder`);
  }
  linkAudit(dir, auditLedger, 'dplens audit re-ran the pipeline with canaries on the same private data');
  // JSON has no ∞: a non-private re-run (σ = 0) reads additionalEpsilonSpent null with additionalNonPrivate true
  const finite = additionalEpsilonSpent === null || Number.isFinite(additionalEpsilonSpent);
  const flagReason = metricClaim
    ? `the run states metric DP (angular, replace-one), not (ε, δ)-DP, so there is no claimed ε to compare with; empirical (ε, δ) lower bound ${report.empiricalEpsilonLowerBound.toFixed(3)} at ${report.confidence} confidence (canaries added or removed)`
    : report.claimedEpsilon === null
    ? `the run claims no DP guarantee (explicitly non-private, ε = ∞); empirical ε lower bound ${report.empiricalEpsilonLowerBound.toFixed(3)} at ${report.confidence} confidence`
    : report.empiricalEpsilonLowerBound > report.claimedEpsilon
      ? `the empirical ε lower bound ${report.empiricalEpsilonLowerBound.toFixed(3)} exceeds the claimed ε ${report.claimedEpsilon.toFixed(3)}: the implementation leaks more than its accounting says`
      : undefined;
  const out: RunAuditReport = { ...report, flagged: flagReason !== undefined, ...(flagReason ? { flagReason } : {}), additionalEpsilonSpent: finite ? additionalEpsilonSpent : null, ...(finite ? {} : { additionalNonPrivate: true }), ...(auditLedger ? { auditLedger } : {}), dataNotPrivate: !record };
  writeFileAtomic(join(dir, 'audit.json'), JSON.stringify(out, null, 1) + '\n');
  return out;
}
