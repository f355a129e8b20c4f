/**
 * One-run audit of a DP generator (DataLens, G-PATE — anything `runSynthesis` runs behind the
 * common generator interface) with input-space canaries: m held-out images with a random wrong
 * label (out of distribution for that class) are each added to the private training set with
 * probability ½; the generator runs once; the adversary sees only the released synthetic data and
 * scores a canary by minus its distance to the closest synthetic record of the canary's label.
 * A generator that memorises (or whose noise is broken) reproduces included canaries.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageDataset } from '../data/index.js';
import { ensureEngine, loadNamedDataset, runSynthesis, type SynthesisConfig } from '../generate/index.js';
import { auditRandom, type AuditReport, summarizeAudit } from './dpsgd.js';
import { distanceToClosestRecord } from './mia.js';
import type { GuessStrategy } from './stats.js';

export interface SynthesisAuditOptions {
  canaries?: number;
  confidence?: number;
  strategy?: GuessStrategy;
  seed?: number;
  dataOverride?: ImageDataset;
  /** Synthetic samples to draw for scoring (default: the config's, capped at 20,000). */
  samples?: number;
  onStep?: Parameters<typeof runSynthesis>[1] extends infer H ? (H extends { onStep?: infer F } ? F : never) : never;
}

/** Inserts m mislabeled held-out canaries (each w.p. ½) into the training split. */
export function insertInputCanaries(ds: ImageDataset, m: number, rng: { nextDouble(): number }): { data: ImageDataset; canaries: { images: Uint8Array; labels: Int32Array; count: number }; included: boolean[] } {
  const per = ds.height * ds.width * ds.channels;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (ds.test.count < m) throw new RangeError(`input canaries come from the test split, which has only ${ds.test.count} images (< m = ${m})`);
  if (ds.numClasses < 2) throw new RangeError('input canaries need at least two classes (they carry a wrong label)');
  const order = Int32Array.from({ length: ds.test.count }, (_, i) => i);
  for (let j = 0; j < m; j++) {
    const r = j + Math.floor(rng.nextDouble() * (ds.test.count - j));
    [order[j], order[r]] = [order[r]!, order[j]!];
  }
  const images = new Uint8Array(m * per);
  const labels = new Int32Array(m);
  for (let j = 0; j < m; j++) {
    images.set(ds.test.images.subarray(order[j]! * per, (order[j]! + 1) * per), j * per);
    labels[j] = (ds.test.labels[order[j]!]! + 1 + Math.floor(rng.nextDouble() * (ds.numClasses - 1))) % ds.numClasses;
  }
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const inIdx = included.flatMap((b, j) => (b ? [j] : []));
  const n = ds.train.count + inIdx.length;
  const trainImages = new Uint8Array(n * per);
  trainImages.set(ds.train.images.subarray(0, ds.train.count * per));
  const trainLabels = new Int32Array(n);
  trainLabels.set(ds.train.labels.subarray(0, ds.train.count));
  inIdx.forEach((j, k) => {
    trainImages.set(images.subarray(j * per, (j + 1) * per), (ds.train.count + k) * per);
    trainLabels[ds.train.count + k] = labels[j]!;
  });
  return { data: { ...ds, train: { images: trainImages, labels: trainLabels, count: n }, fingerprint: `${ds.fingerprint}+input-canaries` }, canaries: { images, labels, count: m }, included };
}

export async function auditSynthesis(config: SynthesisConfig, opts: SynthesisAuditOptions = {}): Promise<AuditReport & { synthesisSeconds: number; generatorSteps: number }> {
  const t0 = Date.now();
  await ensureEngine();
  const m = opts.canaries ?? 1000;
  const rng = auditRandom(opts.seed);
  const ds = opts.dataOverride ?? (await loadNamedDataset(config.data, config.dataPath));
  const { data, canaries, included } = insertInputCanaries(ds, m, rng);
  const dir = mkdtempSync(join(tmpdir(), 'dplens-audit-'));
  try {
    const samples = opts.samples ?? Math.min(config.samples ?? 60000, 20000);
    const res = await runSynthesis({ ...config, out: dir, resume: false, noReport: true, samples }, { dataOverride: data, onStep: opts.onStep });
    const { readImageNpz } = await import('../data/index.js');
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
    rmSync(dir, { recursive: true, force: true });
  }
}
