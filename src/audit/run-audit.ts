/**
 * Auditing a finished run folder: read its config.json, re-run the same pipeline once with canaries
 * (nothing is written into the run folder except audit.json), score, and bound ε from below.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from '../data/index.js';
import { runTraining, type TrainConfig, type TrainHooks } from '../train/index.js';
import { auditRandom, type AuditReport, makeDiracCanaries, statisticFor, summarizeAudit } from './dpsgd.js';
import type { GuessStrategy } from './stats.js';

export interface AuditOptions {
  /** Number of canaries (default 1000). */
  canaries?: number;
  confidence?: number;
  /** 'gradient' (Dirac gradient canaries, white box) — input-space canaries: see issue notes. */
  canaryType?: 'gradient';
  strategy?: GuessStrategy;
  /** Auditor seed (inclusion bits, coordinates); also reused for the re-run's sampling/noise when the run had none. */
  seed?: number;
  dataOverride?: ImageDataset;
  onStep?: TrainHooks['onStep'];
  log?: (msg: string) => void;
}

/**
 * One-run gradient-canary audit of the DP-SGD run described by `config` (as `runTraining` takes it):
 * re-runs training once with m Dirac canaries and returns the report.
 */
export async function auditTraining(config: TrainConfig, opts: AuditOptions = {}): Promise<AuditReport & { trainSeconds: number; steps: number; sampleRate: number; noiseMultiplier: number }> {
  const t0 = Date.now();
  const m = opts.canaries ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  const rng = auditRandom(opts.seed);
  // the sampling rate is needed before training starts: q = batch / n (as runTraining computes it)
  const n = opts.dataOverride?.train.count ?? (await datasetSize(config));
  const q = Math.min(1, (config.batch ?? 240) / n);
  if (config.noise === undefined) throw new Error('audit: the config must state the noise multiplier (noise); run folders record it');
  const statistic = statisticFor(config.noise);
  const canaries = makeDiracCanaries(m, q, rng, statistic);
  const cfg: TrainConfig = { ...config, out: undefined, outDir: undefined, resume: false, report: false, evaluate: false };
  const res = await runTraining(cfg, { dataOverride: opts.dataOverride, gradientCanaries: canaries.hook, onStep: opts.onStep, log: opts.log });
  if (Math.abs(res.sampleRate - q) > 1e-12) throw new Error(`audit: the run's sampling rate ${res.sampleRate} differs from the canaries' ${q}`);
  const claimed = res.nonPrivate || res.epsilon === null || !Number.isFinite(res.epsilon) ? null : res.epsilon;
  const report = summarizeAudit(canaries.scores(), canaries.included, {
    claimedEpsilon: claimed,
    delta: res.delta,
    confidence,
    attack: `one-run gradient canaries (Dirac, white box, ${statistic} score)`,
    strategy: opts.strategy,
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  return { ...report, trainSeconds: res.seconds, steps: res.steps, sampleRate: res.sampleRate, noiseMultiplier: res.noiseMultiplier };
}

async function datasetSize(config: TrainConfig): Promise<number> {
  const d = await import('../data/index.js');
  const anyD = d as unknown as { loadDataset?: (s: unknown) => ImageDataset; resolveDataFlag?: (a: string, b?: string) => unknown };
  const name = config.data ?? 'mnist';
  if (anyD.loadDataset && anyD.resolveDataFlag) return anyD.loadDataset(anyD.resolveDataFlag(name, config.dataPath)).train.count;
  return d.loadMnist().train.count;
}

/** Reads DIR/config.json of a `dplens train` run, audits it, writes DIR/audit.json. */
export async function auditRunFolder(dir: string, opts: AuditOptions = {}): Promise<AuditReport> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir} is not a run folder (no config.json)`);
  const doc = JSON.parse(readFileSync(path, 'utf8')) as { kind?: string; config?: TrainConfig; derived?: { noiseMultiplier?: number } };
  if (doc.kind !== 'train' || !doc.config) throw new Error(`${path}: only DP-SGD run folders (kind "train") can be audited so far, got kind "${doc.kind}"`);
  // Re-run with the σ the run actually used (it may have been calibrated from a target ε).
  const cfg: TrainConfig = { ...doc.config };
  if (doc.derived?.noiseMultiplier !== undefined) {
    cfg.noise = doc.derived.noiseMultiplier;
    delete cfg.targetEpsilon;
    delete cfg.epsilon;
  }
  const report = await auditTraining(cfg, opts);
  writeFileSync(join(dir, 'audit.json'), JSON.stringify(report, null, 1) + '\n');
  return report;
}
