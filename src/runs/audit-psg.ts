/**
 * Mechanism-level audit of a finished psg run folder (src/audit/psg-audit.ts): rebuilds the run's
 * DP-SGD release from config.json (resolved hyper-parameters, ε, δ), run.json (n, classes) and
 * generator/generator.json (image size), replays it for the steps its ledger charged with m Dirac
 * gradient canaries and bounds ε. Reads no record of the private data: no ε.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { replayPsgRelease } from '../audit/psg-audit.js';
import { auditRandom, summarizeAudit, type AuditReport, type GuessStrategy } from '../audit/index.js';
import { convNetParamCount, psgRelease, type PsgHyper } from '../generate/psg.js';
import { PrivacyLedger } from '../privacy/index.js';
import { readManifest } from './manifest.js';

export function auditPsgRun(dir: string, doc: Record<string, unknown>, opts: { canaries?: number; confidence?: number; strategy?: GuessStrategy; seed?: number } = {}): AuditReport & Record<string, unknown> {
  const t0 = Date.now();
  const man = readManifest(dir);
  const trainCount = man?.dataset?.trainSize;
  const numClasses = man?.dataset?.numClasses;
  if (typeof trainCount !== 'number' || typeof numClasses !== 'number') throw new Error(`${join(dir, 'run.json')}: must state dataset.trainSize and numClasses (the public facts the replay needs)`);
  const hyper = doc.hyper as PsgHyper | undefined;
  if (!hyper || typeof hyper !== 'object') throw new Error(`${join(dir, 'config.json')}: no resolved hyper-parameters (hyper)`);
  const genPath = join(dir, 'generator', 'generator.json');
  let gen: { height?: number; width?: number };
  try {
    gen = JSON.parse(readFileSync(genPath, 'utf8')) as { height?: number; width?: number };
  } catch (e) {
    throw new Error(`${genPath}: not readable (the audit reads the image size from it): ${(e as Error).message}`);
  }
  if (typeof gen.height !== 'number' || typeof gen.width !== 'number') throw new Error(`${genPath}: no height/width`);
  const delta = Number(doc.delta);
  const release = psgRelease(hyper, trainCount, { epsilon: Number(doc.epsilon), delta });
  const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
  const steps = ledger.entries.length;
  const claimedRaw = ledger.spent(delta);
  const claimed = Number.isFinite(claimedRaw) ? claimedRaw : null;
  const m = opts.canaries ?? 1000;
  const dim = convNetParamCount(1, gen.height, gen.width, numClasses, hyper.width);
  const rng = auditRandom(opts.seed);
  const noise = auditRandom(opts.seed !== undefined ? (opts.seed ^ 0x2545f491) >>> 0 : undefined);
  const replay = replayPsgRelease({ release, dim, steps, m, rng, noise });
  const report = summarizeAudit(replay.scores, replay.included, {
    claimedEpsilon: claimed,
    delta,
    confidence: opts.confidence ?? 0.95,
    attack: `mechanism replay (white box): the run's psg DP-SGD release (q ${release.sampleRate.toPrecision(3)}, σ ${release.noiseMultiplier.toPrecision(4)}·C, ${steps} steps, length ${dim}) with Dirac gradient canaries of norm C sampled at q, score = ${replay.plan.statistic}`,
    strategy: opts.strategy ?? replay.plan.strategy,
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  const replayEps = replay.replayEpsilon(delta);
  return {
    ...report,
    statistic: replay.plan.statistic,
    steps,
    declaredNoise: replay.declaredNoise,
    replayClaimedEpsilon: Number.isFinite(replayEps) ? replayEps : null,
    privateDataUsed: false,
    epsilonCost: 'none: the replay reads no record of the private data (canary gradients and the run\'s public hyper-parameters, budget and n only)',
  };
}
