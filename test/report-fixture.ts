/**
 * A small but realistic run folder for the report tests: a real PNG sample grid (pngjs), run.json
 * (the typed manifest) with the exact command, metrics.jsonl (step, ε and test-set figures only),
 * private-diagnostics.jsonl (training-batch figures), eval.json, audit.json and a real ledger.
 * `legacy: true` writes a folder as dplens wrote them before run.json: config.json only, training-
 * batch loss/accuracy in metrics.jsonl, a ledger without relation and a plain SHA-256 fingerprint.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { DpEvents, PrivacyLedger, sealLedgerLine, seededRandom, type NeighbouringRelation } from '../src/privacy/index.js';
import { writeManifest, type RunManifest } from '../src/runs/manifest.js';

// Ledgers key their tip with the data owner's key: keep the tests' key out of the user's home.
process.env.DPLENS_OWNER_KEY_FILE ??= join(tmpdir(), `dplens-report-test-owner-${process.pid}.key`);

export interface FixtureOptions {
  withAudit?: boolean;
  withSamples?: boolean;
  withEval?: boolean;
  steps?: number;
  /** Folder to (re)create instead of a fresh temp folder. */
  dir?: string;
  /** Write the pre-run.json layout (config.json, plain fingerprint, no relation). */
  legacy?: boolean;
  /** Neighbouring relation of the run (default add-remove, as DP-SGD proves). */
  relation?: NeighbouringRelation;
  /** Changes to the manifest before it is written. */
  manifest?: (m: RunManifest) => void;
}

/** The 64-hex fingerprint the fixture records (keyed in current folders, a plain hash in legacy ones). */
export const FIXTURE_FINGERPRINT = 'a3f1c2e4b5d6978812345678909abcdefa3f1c2e4b5d6978812345678909abcd';
/** A value only private-diagnostics.jsonl holds: it must never appear in a report. */
export const PRIVATE_MARKER = 0.7654321;

/**
 * A legacy ledger (header without relation or keyed tip), as dplens wrote before relations were
 * recorded: sealed line by line with the format's own rule, so it verifies.
 */
export function writeLegacyLedger(path: string, entries: { event: unknown; method: string; datasetFingerprint: string; meta?: Record<string, unknown> }[], budget?: { epsilon: number; delta: number }): void {
  const lines: string[] = [];
  let prev = '';
  const header = { type: 'header', version: 1, accountant: 'rdp', randomness: { kind: 'seeded', seed: 7 }, createdAt: '2026-01-01T00:00:00.000Z', ...(budget ? { budget } : {}) };
  let sealed = sealLedgerLine(header, prev);
  lines.push(sealed.line);
  prev = sealed.hash;
  entries.forEach((e, i) => {
    sealed = sealLedgerLine({ type: 'entry', seq: i, time: `2026-01-01T00:0${Math.min(9, i)}:00.000Z`, ...e }, prev);
    lines.push(sealed.line);
    prev = sealed.hash;
  });
  writeFileSync(path, lines.join('\n') + '\n');
  // Legacy tip file (entry count + last hash, no MAC), as the old ledger wrote after every append.
  writeFileSync(path + '.tip', JSON.stringify({ entries: entries.length, hash: prev }) + '\n');
}

/** A 10-class × 6-sample grid of 28×28 "digits": class c is a bar at a class-dependent position. */
export function makeSampleGrid(classes = 10, perClass = 6, size = 28): Buffer {
  const png = new PNG({ width: perClass * size, height: classes * size });
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const c = Math.floor(y / size);
      const yy = y % size;
      const xx = x % size;
      const on = Math.abs(xx - (4 + 2 * c)) < 2 || (yy > 10 && yy < 14 && xx > 6 && xx < 22);
      const i = (y * png.width + x) * 4;
      png.data[i] = png.data[i + 1] = png.data[i + 2] = on ? 255 : 0;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

export function makeFixtureRun(opts: FixtureOptions = {}): string {
  let dir: string;
  if (opts.dir) {
    rmSync(opts.dir, { recursive: true, force: true });
    mkdirSync(opts.dir, { recursive: true });
    dir = opts.dir;
  } else dir = mkdtempSync(join(tmpdir(), 'dplens-report-'));
  const steps = opts.steps ?? 120;
  const q = 256 / 60000;
  const sigma = 1.1;
  const legacy = opts.legacy === true;
  const argv = ['train', '--data', 'mnist', '--epsilon', '3', '--delta', '1e-5', '--out', dir, '--note', "<b>o'k</b>"];
  const config = {
    method: 'dp-sgd',
    data: 'mnist',
    delta: 1e-5,
    accountant: 'rdp',
    targetEpsilon: 3,
    noiseMultiplier: sigma,
    clipNorm: 1,
    batchSize: 256,
    seed: 7,
  };
  if (legacy) writeFileSync(join(dir, 'config.json'), JSON.stringify({ command: ['dplens', ...argv], ...config, dataset: { name: 'mnist', fingerprint: FIXTURE_FINGERPRINT } }, null, 2));
  const metrics: string[] = [];
  const diagnostics: string[] = [];
  for (let s = 1; s <= steps; s++) {
    const batch = { loss: s === 1 ? PRIVATE_MARKER : 2.3 * Math.exp(-s / 40) + 0.3, accuracy: 0.1 + 0.8 * (1 - Math.exp(-s / 30)) };
    const test = s % 40 === 0 ? { testAccuracy: 0.1 + 0.78 * (1 - Math.exp(-s / 30)), testLoss: 2.3 * Math.exp(-s / 35) + 0.35 } : {};
    // Current runners keep training-batch figures out of metrics.jsonl; legacy ones mixed them in.
    metrics.push(JSON.stringify({ step: s, epoch: (s * 256) / 60000, ...(legacy ? batch : {}), epsilon: 0.02 * Math.sqrt(s), ...test }));
    if (!legacy) diagnostics.push(JSON.stringify({ step: s, ...batch, batchSize: 250 + (s % 13) }));
  }
  writeFileSync(join(dir, 'metrics.jsonl'), metrics.join('\n') + '\n');
  if (!legacy) writeFileSync(join(dir, 'private-diagnostics.jsonl'), diagnostics.join('\n') + '\n');
  const fp = FIXTURE_FINGERPRINT;
  const budget = { epsilon: steps > 1000 ? 50 : 3, delta: 1e-5 };
  // DP-SGD's Poisson-sampled step proves add/remove; a replace-one run (synthesis) releases plain
  // Gaussian aggregates with n public.
  const step = (opts.relation ?? 'add-remove') === 'add-remove' ? DpEvents.poissonSampled(q, DpEvents.gaussian(sigma)) : DpEvents.gaussian(sigma * 30);
  // A real, hash-chained ledger: one batched DP-SGD entry per 40 steps, recorded as a run would.
  if (legacy) {
    const entries = [];
    for (let done = 0; done < steps; done += 40) entries.push({ event: DpEvents.selfComposed(step, Math.min(40, steps - done)), method: 'dp-sgd', datasetFingerprint: fp, meta: { firstStep: done + 1 } });
    writeLegacyLedger(join(dir, 'ledger.jsonl'), entries, budget);
  } else {
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: opts.relation ?? 'add-remove', randomness: seededRandom(7), budget });
    try {
      for (let done = 0; done < steps; done += 40) {
        ledger.record({ event: DpEvents.selfComposed(step, Math.min(40, steps - done)), method: 'dp-sgd', datasetFingerprint: fp, meta: { firstStep: done + 1 } });
      }
    } finally {
      ledger.close();
    }
  }
  if (opts.withSamples !== false) writeFileSync(join(dir, 'samples.png'), makeSampleGrid());
  if (opts.withEval !== false) writeFileSync(join(dir, 'eval.json'), JSON.stringify({ synthetic: { accuracy: 0.81 }, reference: { accuracy: 0.99 } }));
  if (opts.withAudit) {
    const fpr: number[] = [];
    const tpr: number[] = [];
    for (let i = 0; i <= 50; i++) {
      fpr.push(i / 50);
      tpr.push(Math.min(1, Math.pow(i / 50, 0.7)));
    }
    writeFileSync(join(dir, 'audit.json'), JSON.stringify({ claimedEpsilon: 3, empiricalEpsilonLowerBound: 0.42, confidence: 0.95, attack: 'canary loss threshold', roc: { fpr, tpr }, auc: 0.59 }));
  }
  if (!legacy) {
    const now = new Date().toISOString();
    const m: RunManifest = {
      version: 1,
      kind: 'train',
      method: 'dp-sgd',
      description: 'DP-SGD: per-example gradients clipped to norm C, summed over a Poisson-sampled batch, Gaussian noise added before each update.',
      createdAt: now,
      updatedAt: now,
      config,
      dataset: { name: 'mnist', source: 'builtin', fingerprint: fp, trainSize: 60000, testSize: 10000, numClasses: 10 },
      privacy: {
        relation: opts.relation ?? 'add-remove',
        treatedAsPublic: ['the class list (0–9, fixed by the data set definition)'],
        accountant: 'rdp',
        delta: 1e-5,
        budget,
        ledger: 'ledger.jsonl',
        randomness: { kind: 'seeded', seed: 7 },
        released: [
          { what: 'the normalisation mean and standard deviation of the training images', where: ['run.json'], status: 'outside-guarantee', why: 'computed from the private training split without noise' },
          { what: 'image geometry 28×28×1', where: ['run.json'], status: 'public-by-assumption' },
        ],
      },
      metrics: 'metrics.jsonl',
      privateDiagnostics: 'private-diagnostics.jsonl',
      artifacts: [
        { path: 'metrics.jsonl', what: 'ε per step and test-set metrics', status: 'public' },
        { path: 'ledger.jsonl', what: 'privacy ledger', status: 'covered' },
        { path: 'private-diagnostics.jsonl', what: 'training-batch loss, accuracy and batch sizes', status: 'private', why: 'computed on private batches without noise' },
        { path: 'wallclock.json', what: 'per-phase wall-clock timings', status: 'outside-guarantee', why: 'timings depend on the data' },
      ],
      attempts: [{ startedAt: now, command: argv, ledgerEntriesAtStart: 0 }],
    };
    opts.manifest?.(m);
    writeManifest(dir, m);
  }
  return dir;
}
