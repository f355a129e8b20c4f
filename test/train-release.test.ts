/**
 * Issue 12 for `dplens train`: a run folder holds only what ε covers (private batch figures go to
 * private-diagnostics.jsonl), the keyed fingerprint only, the neighbouring relation, a manifest;
 * resume never loses spent budget (missing/short ledger, concurrent runs, seed switches, other
 * data), checkpoints are periodic, and bad --out / flags for another method fail fast with one line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setInitSeed } from '../src/nn/index.js';
import { PrivacyLedger } from '../src/privacy/index.js';
import { keyedFingerprint } from '../src/privacy/owner-key.js';
import { ensureEngine } from '../src/train/index.js';
import { main } from '../src/cli/main.js';
import { runTraining } from '../src/runs/train.js';
import type { ImageDataset } from '../src/data/index.js';
import { toyDataset as toyImages } from './train-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-train-release-'));
// the owner key lives outside every run folder; keep the test's own key out of $HOME
process.env.DPLENS_OWNER_KEY_FILE ??= join(dir, 'owner.key');
after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN = join('src', 'cli', 'main.ts');

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(3);
});

/** The toy set with a raw fingerprint long enough to grep released files for. */
function toyDataset(n: number, seed: number, name = 'toy'): ImageDataset {
  return toyImages(n, seed, { name, rawFingerprint: `${name}-raw-sha-${seed}` });
}

function dplens(args: string[], timeout = 120_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout, env: { ...process.env, DPLENS_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A small learnable CSV table (fast real-CLI runs without MNIST). */
function tableCsv(rows: number): string {
  let s = 7;
  const r = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const lines = ['a,b,c,y'];
  for (let i = 0; i < rows; i++) {
    const a = +(r() * 4 - 2).toFixed(3);
    const b = +(r() * 4 - 2).toFixed(3);
    const c = +(r() * 4 - 2).toFixed(3);
    lines.push([a, b, c, a + b > 0 ? 'p' : 'n'].join(','));
  }
  return lines.join('\n') + '\n';
}
const csv = join(dir, 'table.csv');
writeFileSync(csv, tableCsv(400));
const csvArgs = ['--data', csv, '--label', 'y', '--batch', '20', '--lr', '0.2', '--threads', '1'];

/** The CLI in-process (fast); stderr captured (stdout carries the test runner's own protocol). */
async function cliIn(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const e = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((x: string) => ((stderr += x), true)) as typeof process.stderr.write;
  try {
    const code = await main(args, { out: () => {}, err: (x) => void (stderr += x) });
    return { code, stderr };
  } finally {
    process.stderr.write = e;
  }
}

const readLines = (p: string) => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

test('#3 #2 #1: the run folder releases only what ε covers; batch figures go to private-diagnostics.jsonl; keyed fingerprint; add-remove; run.json', async () => {
  const ds = toyDataset(400, 1);
  const out = join(dir, 'release');
  const res = await runTraining({ epochs: 0.5, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 2, model: 'mlp', out, logEvery: 1 }, { dataOverride: ds });
  const metrics = readLines(join(out, 'metrics.jsonl'));
  const steps = metrics.filter((l) => l.type === 'step');
  assert.equal(steps.length, 5);
  for (const l of metrics) for (const k of ['loss', 'accuracy', 'batchSize']) assert.ok(!(k in l), `metrics.jsonl line holds private ${k}: ${JSON.stringify(l)}`);
  assert.ok(metrics.some((l) => l.type === 'eval' && typeof l.testAccuracy === 'number'), 'test-set metrics stay');
  const diag = readLines(join(out, 'private-diagnostics.jsonl'));
  assert.equal(diag.length, 5);
  assert.ok(diag.every((l) => typeof l.loss === 'number' && typeof l.batchSize === 'number'));
  const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
  assert.ok(!('trainLoss' in result) && !('trainAccuracy' in result) && !('privateDiagnostics' in result), 'result.json has no private batch figures');
  // keyed fingerprint everywhere, never the plain one
  const keyed = keyedFingerprint(ds.rawFingerprint);
  const folderText = readdirSync(out)
    .filter((f) => /\.(json|jsonl|tip)$/.test(f) && f !== 'private-diagnostics.jsonl')
    .map((f) => readFileSync(join(out, f), 'utf8'))
    .join('\n');
  assert.ok(!folderText.includes(ds.rawFingerprint), 'plain fingerprint released');
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).dataset.fingerprint, keyed);
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.ok(ledger.entries.every((e) => e.datasetFingerprint === keyed));
  assert.equal(res.datasetFingerprint, keyed);
  // #1: Poisson sampling proves add/remove
  assert.equal(ledger.header.relation, 'add-remove');
  assert.equal(res.relation, 'add-remove');
  // run.json: artifacts with statuses, released facts, one attempt
  const man = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(man.kind, 'train');
  assert.equal(man.privacy.relation, 'add-remove');
  assert.equal(man.dataset.fingerprint, keyed);
  const art = Object.fromEntries(man.artifacts.map((a: { path: string; status: string }) => [a.path, a.status]));
  assert.equal(art['private-diagnostics.jsonl'], 'private');
  assert.equal(art['metrics.jsonl'], 'covered');
  assert.equal(art['model.json'], 'covered');
  assert.ok(man.privacy.released.some((f: { what: string; status: string }) => /^n /.test(f.what) && f.status === 'public-by-assumption'));
  assert.equal(man.attempts.length, 1);
  assert.equal(man.attempts[0].ledgerEntriesAtStart, 0);
  assert.equal(man.attempts[0].stoppedBy, 'steps');
  assert.ok(!('trainLoss' in man.result));
  // shuffled fixed-size batches: non-private, and the relation matches fixed-size batches
  const sh = await runTraining({ epochs: 0.2, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 2, model: 'mlp', sampling: 'shuffle', out: join(dir, 'shuffle') }, { dataOverride: ds });
  assert.equal(sh.relation, 'replace-one');
  assert.equal(sh.epsilon, null);
});

test('#4: resume refuses a missing ledger (with or without .tip) and a ledger with fewer steps than the checkpoint', async () => {
  const ds = toyDataset(400, 1);
  const base = join(dir, 'r4');
  const first = await runTraining({ epochs: 0.5, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 5, model: 'mlp', out: base }, { dataOverride: ds });
  assert.equal(first.steps, 5);
  const copy = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d);
    for (const f of readdirSync(base)) if (!f.endsWith('.lock')) copyFileSync(join(base, f), join(d, f));
    return d;
  };
  const noLedger = copy('r4-noledger');
  unlinkSync(join(noLedger, 'ledger.jsonl'));
  await assert.rejects(runTraining({ epochs: 1, out: noLedger, resume: true }, { dataOverride: ds }), /ledger\.jsonl.*missing/);
  const neither = copy('r4-neither');
  unlinkSync(join(neither, 'ledger.jsonl'));
  for (const f of readdirSync(neither)) if (f.startsWith('ledger.jsonl')) unlinkSync(join(neither, f));
  await assert.rejects(runTraining({ epochs: 1, out: neither, resume: true }, { dataOverride: ds }), /ledger\.jsonl.*missing/);
  assert.ok(!existsSync(join(neither, 'ledger.jsonl')), 'no fresh ledger was started');
  // a ledger replaced by a shorter (valid) one: 2 recorded steps < checkpoint step 5
  const short = copy('r4-short');
  for (const f of readdirSync(short)) if (f.startsWith('ledger.jsonl')) unlinkSync(join(short, f));
  await runTraining({ epochs: 0.2, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 5, model: 'mlp', out: join(dir, 'r4-other') }, { dataOverride: ds });
  for (const f of readdirSync(join(dir, 'r4-other'))) if (f.startsWith('ledger.jsonl') && !f.endsWith('.lock')) copyFileSync(join(dir, 'r4-other', f), join(short, f));
  await assert.rejects(runTraining({ epochs: 1, out: short, resume: true }, { dataOverride: ds }), /records 2 steps but the checkpoint is at step 5/);
});

test('checkpoints: state is saved every N steps; a run killed mid-way resumes from the last checkpoint and says so; the ledger gates the budget', async () => {
  const ds = toyDataset(400, 2);
  const out = join(dir, 'ckpt');
  await assert.rejects(
    runTraining({ epochs: 1.5, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 8, model: 'mlp', out, checkpointEvery: 4 }, {
      dataOverride: ds,
      onStep: (i) => {
        if (i.step === 10) throw new Error('simulated kill at step 10');
      },
    }),
    /simulated kill/,
  );
  const st = JSON.parse(readFileSync(join(out, 'train-state.json'), 'utf8'));
  assert.equal(st.step, 8, 'last periodic checkpoint');
  assert.ok(existsSync(join(out, st.data)));
  const man = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(man.attempts.length, 1, 'run.json written at start');
  const logs: string[] = [];
  const again = await runTraining({ out, resume: true }, { dataOverride: ds, log: (m) => logs.push(m) });
  assert.ok(logs.some((l) => /resuming from step 8\b/.test(l)), logs.join('\n'));
  assert.equal(again.resumedFromStep, 8);
  assert.equal(again.steps, 15);
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  // the ledger holds every step recorded by both attempts (the block recorded ahead by the killed attempt counts too)
  const recorded = ledger.entries.reduce((s, e) => s + Number(e.meta?.steps ?? 0), 0);
  assert.ok(recorded >= 15 + 7, `recorded ${recorded}`);
  assert.ok(Math.abs(ledger.spent(1e-5) - again.epsilon!) < 1e-12);
  const man2 = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(man2.attempts.length, 2);
  assert.equal(man2.attempts[1].resumedFromStep, 8);
  assert.ok(man2.attempts[1].ledgerEntriesAtStart > 0);
  // a target ε is the ledger's budget: more epochs than it allows, and the ledger says no
  const capped = join(dir, 'capped');
  const full = await runTraining({ epochs: 1.5, batch: 40, targetEpsilon: 3, lr: 0.5, seed: 8, model: 'mlp', out: capped }, { dataOverride: ds });
  assert.equal(full.stoppedBy, 'steps');
  const header = PrivacyLedger.read(join(capped, 'ledger.jsonl')).header;
  assert.ok(header.budget && Math.abs(header.budget.epsilon - 3) < 1e-6, 'the target ε is the ledger budget');
  const over = await runTraining({ out: capped, resume: true, epochs: 5 }, { dataOverride: ds });
  assert.equal(over.stoppedBy, 'budget');
  assert.ok(over.epsilon! <= 3 * (1 + 1e-9), `ε ${over.epsilon}`);
});

test('#8 and silent results: resume on other data is refused; a seeded resume from the same checkpoint twice does not replay its sampling/noise stream', async () => {
  const ds = toyDataset(400, 3);
  const out = join(dir, 'seeded');
  await runTraining({ epochs: 0.5, batch: 40, noise: 1, clip: 1, lr: 0.5, seed: 9, model: 'mlp', out }, { dataOverride: ds });
  await assert.rejects(runTraining({ epochs: 1, out, resume: true }, { dataOverride: toyDataset(400, 3, 'other') }), /trained on toy.*refusing to continue it on other/);
  await assert.rejects(runTraining({ epochs: 1, out, resume: true }, { dataOverride: toyDataset(400, 4) }), /fingerprint mismatch/);
  await assert.rejects(runTraining({ epochs: 1, out, resume: true, seed: 10 }, { dataOverride: ds }), /--seed/);
  // keep the state at step 5, resume twice from it (as after a crash that lost the second attempt's state)
  const saved = join(dir, 'seeded-state');
  mkdirSync(saved);
  for (const f of readdirSync(out)) if (/^(train-state|model\.json|weights\.bin)/.test(f)) copyFileSync(join(out, f), join(saved, f));
  const sizes = async () => {
    const seen: number[] = [];
    await runTraining({ epochs: 1, out, resume: true }, { dataOverride: ds, onStep: (i) => seen.push(i.batchSize) });
    return seen;
  };
  const a = await sizes();
  for (const f of readdirSync(out)) if (/^train-state/.test(f)) unlinkSync(join(out, f));
  for (const f of readdirSync(saved)) copyFileSync(join(saved, f), join(out, f));
  const b = await sizes();
  assert.equal(a.length, 5);
  assert.notDeepEqual(a, b, 'the second resume replayed the first one\'s random stream');
});

test('CLI: --out "" and --out /proc/x fail fast naming --out; flags for another privatizer/optimizer are errors; a secure run resumed with --seed is refused', async () => {
  const empty = await cliIn(['train', ...csvArgs, '--noise', '1', '--epochs', '0.1', '--out', '', '--json']);
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr, /^dplens train: --out must name a folder/);
  const t0 = Date.now();
  const proc = dplens(['train', ...csvArgs, '--noise', '1', '--epochs', '0.1', '--out', '/proc/x/run', '--json'], 60_000);
  assert.equal(proc.code, 2, `exit ${proc.code} after ${Date.now() - t0} ms: ${proc.stderr}`);
  assert.match(proc.stderr, /--out \/proc\/x\/run/);
  assert.equal(proc.stderr.trim().split('\n').length, 1, proc.stderr);
  for (const [extra, re] of [
    [['--topagg-k', '5'], /--topagg-k does not apply to --privatizer gaussian/],
    [['--privatizer', 'topagg', '--clip', '1'], /--clip does not apply to --privatizer topagg/],
    [['--optimizer', 'adam', '--momentum', '0.9'], /--momentum does not apply to --optimizer adam/],
  ] as [string[], RegExp][]) {
    const r = await cliIn(['train', ...csvArgs, '--noise', '1', '--epochs', '0.1', '--out', join(dir, 'never'), '--json', ...extra]);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!existsSync(join(dir, 'never', 'ledger.jsonl')), 'nothing was trained');
  const secure = join(dir, 'secure');
  const ok = await cliIn(['train', ...csvArgs, '--noise', '1', '--epochs', '0.2', '--out', secure, '--quiet']);
  assert.equal(ok.code, 0, ok.stderr);
  const seeded = await cliIn(['train', '--resume', '--out', secure, '--seed', '4', '--epochs', '0.4', '--json']);
  assert.equal(seeded.code, 2, seeded.stderr);
  assert.match(seeded.stderr, /--seed: .*secure randomness/);
  const missing = await cliIn(['train', '--resume', '--out', join(dir, 'no-such-run'), '--json']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no-such-run holds no run to resume/);
  assert.ok(!/ENOENT/.test(missing.stderr));
});

test('#5: two concurrent --resume processes on one run folder: one fails with a one-line lock error, the ledger stays valid', async () => {
  const out = join(dir, 'concurrent');
  const first = dplens(['train', ...csvArgs, '--noise', '1', '--epochs', '0.2', '--out', out, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const j = JSON.parse(first.stdout);
  assert.equal(j.relation, 'add-remove');
  assert.ok(!('trainLoss' in j), 'no private batch loss on stdout');
  const run = () =>
    new Promise<{ code: number | null; stderr: string }>((res) => {
      const p = spawn(process.execPath, ['--import', 'tsx', MAIN, 'train', '--resume', '--out', out, '--epochs', '60', '--json'], { env: { ...process.env, DPLENS_DEBUG: '' } });
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => res({ code, stderr }));
    });
  const [a, b] = await Promise.all([run(), run()]);
  const codes = [a.code, b.code].sort();
  assert.equal(codes[0], 0, `one finishes: ${a.stderr} | ${b.stderr}`);
  assert.notEqual(codes[1], 0, 'the other must fail');
  const loser = a.code === 0 ? b : a;
  assert.match(loser.stderr, /lock/i);
  assert.equal(loser.stderr.trim().split('\n').length, 1, loser.stderr);
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.ok(ledger.verification.ok);
  const res = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
  assert.ok(Math.abs(ledger.spent(1e-5) - res.epsilon) < 1e-9, 'the result states what the ledger holds');
});
