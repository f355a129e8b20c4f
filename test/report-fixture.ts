/**
 * A small but realistic run folder for the report tests: a real PNG sample grid (pngjs),
 * config.json with the exact command, metrics.jsonl, eval.json, audit.json and a ledger.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { DpEvents, PrivacyLedger, seededRandom } from '../src/privacy/index.js';

export interface FixtureOptions {
  withAudit?: boolean;
  withSamples?: boolean;
  withEval?: boolean;
  steps?: number;
  /** Folder to (re)create instead of a fresh temp folder. */
  dir?: string;
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
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify(
      {
        command: ['dplens', 'train', '--data', 'mnist', '--epsilon', '3', '--delta', '1e-5', '--out', dir, '--note', "<b>o'k</b>"],
        method: 'dp-sgd',
        data: 'mnist',
        delta: 1e-5,
        accountant: 'rdp',
        targetEpsilon: 3,
        noiseMultiplier: sigma,
        clipNorm: 1,
        batchSize: 256,
        seed: 7,
      },
      null,
      2,
    ),
  );
  const metrics: string[] = [];
  for (let s = 1; s <= steps; s++) {
    metrics.push(
      JSON.stringify({
        step: s,
        epoch: (s * 256) / 60000,
        loss: 2.3 * Math.exp(-s / 40) + 0.3,
        accuracy: 0.1 + 0.8 * (1 - Math.exp(-s / 30)),
        epsilon: 0.02 * Math.sqrt(s),
        ...(s % 40 === 0 ? { testAccuracy: 0.1 + 0.78 * (1 - Math.exp(-s / 30)) } : {}),
      }),
    );
  }
  writeFileSync(join(dir, 'metrics.jsonl'), metrics.join('\n') + '\n');
  const fp = 'a3f1c2e4b5d6978812345678909abcdefa3f1c2e4b5d6978812345678909abcd';
  // A real, hash-chained ledger: one batched DP-SGD entry per 40 steps, recorded as a run would.
  const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', randomness: seededRandom(7), budget: { epsilon: steps > 1000 ? 50 : 3, delta: 1e-5 } });
  const step = DpEvents.poissonSampled(q, DpEvents.gaussian(sigma));
  for (let done = 0; done < steps; done += 40) {
    ledger.record({ event: DpEvents.selfComposed(step, Math.min(40, steps - done)), method: 'dp-sgd', datasetFingerprint: fp, meta: { firstStep: done + 1 } });
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
  return dir;
}
