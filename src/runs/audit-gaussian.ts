/**
 * Mechanism-level audit of a finished run folder of a Gaussian-release generator (dp-merf,
 * dp-kernel; src/audit/gaussian-release-audit.ts): rebuilds the run's release from config.json
 * (method, resolved hyper-parameters, ε, δ) and public facts (run.json: n, classes), replays it with
 * m canary coordinates and bounds ε. Reads no record of the private data: no ε.
 */
import { join } from 'node:path';
import { auditRandom, mechanismAuditStrategy, replayGaussianRelease, summarizeAudit, type AuditReport, type GuessStrategy } from '../audit/index.js';
import type { AnyGeneratorPlugin } from '../generate/index.js';
import { PrivacyLedger } from '../privacy/index.js';
import { readManifest } from './manifest.js';

export function auditGaussianReleaseRun(
  dir: string,
  doc: Record<string, unknown>,
  plugin: AnyGeneratorPlugin,
  opts: { canaries?: number; confidence?: number; strategy?: GuessStrategy; seed?: number } = {},
): AuditReport & Record<string, unknown> {
  const t0 = Date.now();
  if (!plugin.gaussianMechanism) throw new Error(`${dir}: method ${plugin.name} has no Gaussian release to replay`);
  const man = readManifest(dir);
  const trainCount = man?.dataset?.trainSize;
  const numClasses = man?.dataset?.numClasses;
  if (typeof trainCount !== 'number' || typeof numClasses !== 'number') throw new Error(`${join(dir, 'run.json')}: must state dataset.trainSize and numClasses (the public facts the replay needs)`);
  const hyper = doc.hyper as Record<string, unknown>;
  if (!hyper || typeof hyper !== 'object') throw new Error(`${join(dir, 'config.json')}: no resolved hyper-parameters (hyper)`);
  const delta = Number(doc.delta);
  const epsilon = doc.nonPrivate === true || doc.epsilon === null ? null : Number(doc.epsilon);
  const steps = man?.result?.generatorSteps;
  const mechanism = plugin.gaussianMechanism(hyper, { trainCount, numClasses, epsilon, delta, ...(typeof steps === 'number' ? { steps } : {}) });
  const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
  const claimedRaw = ledger.spent(delta);
  const claimed = Number.isFinite(claimedRaw) ? claimedRaw : null;
  const m = opts.canaries ?? 1000;
  const rng = auditRandom(opts.seed);
  const noise = auditRandom(opts.seed !== undefined ? (opts.seed ^ 0x2545f491) >>> 0 : undefined);
  const replay = replayGaussianRelease({ mechanism, m, rng, noise });
  const report = summarizeAudit(replay.scores, replay.included, {
    claimedEpsilon: claimed,
    delta,
    confidence: opts.confidence ?? 0.95,
    attack: `mechanism replay (white box): the run's ${plugin.name} Gaussian release (length ${mechanism.dim}, σ ${mechanism.sigma}, ${mechanism.releases} release(s)) with canary coordinates of the full sensitivity ${mechanism.l2Sensitivity}, score = released value at the canary's coordinates`,
    strategy: opts.strategy ?? mechanismAuditStrategy(replay.declaredNoise),
    seconds: 0,
  });
  report.seconds = (Date.now() - t0) / 1000;
  const replayEps = replay.replayEpsilon(delta);
  return {
    ...report,
    statistic: 'released-value',
    steps: mechanism.releases,
    declaredNoise: replay.declaredNoise,
    canariesCovered: replay.covered,
    replayClaimedEpsilon: Number.isFinite(replayEps) ? replayEps : null,
    privateDataUsed: false,
    epsilonCost: 'none: the replay reads no record of the private data (canary coordinates and the run\'s public hyper-parameters, budget and n only)',
  };
}
