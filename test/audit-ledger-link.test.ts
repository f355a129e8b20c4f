/**
 * Issue 12 #7: `dplens audit` re-runs the private pipeline on the same private data, so the re-run is
 * a release too. Auditing a DP-SGD run folder records every release of the re-run in
 * DIR/audit-ledger.jsonl, links it in run.json privacy.linkedLedgers, states additionalEpsilonSpent
 * in audit.json, and the report sums it into the total ε spent on the data; `--data-not-private`
 * (dataNotPrivate) records nothing. Fails on the original code by construction: it had no audit
 * ledger, no linkedLedgers and no additionalEpsilonSpent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { initEngine } from '../src/engine/index.js';
import { PrivacyLedger } from '../src/privacy/index.js';
import { readManifest } from '../src/runs/manifest.js';
import { AUDIT_LEDGER_FILE, auditRun } from '../src/runs/audit.js';
import { runTraining } from '../src/runs/train.js';
import { writeReport } from '../src/report/index.js';
import { readRunFolder } from '../src/report/run-folder.js';
import { summarizePrivacy } from '../src/report/privacy-summary.js';

const mnist = loadMnist();
/** 2,000 MNIST records: q = 120/2000, 0.3 epochs = 5 steps of a small MLP. */
const small = { ...mnist, train: { images: mnist.train.images.slice(0, 2000 * 784), labels: mnist.train.labels.slice(0, 2000), count: 2000 }, rawFingerprint: `${mnist.rawFingerprint}:first-2000` };

async function trainTiny(dir: string): Promise<number> {
  const res = await runTraining({ data: 'mnist', model: 'mlp', epochs: 0.3, batch: 120, noise: 1.3, clip: 1, lr: 0.1, delta: 1e-5, seed: 1, out: dir, evaluate: false }, { dataOverride: small });
  assert.ok(res.epsilon !== null && res.epsilon > 0);
  return res.epsilon!;
}

test('auditing a DP-SGD run folder records the re-run in audit-ledger.jsonl, links it, and the report sums it', async (t) => {
  await initEngine({});
  const root = mkdtempSync(join(tmpdir(), 'dplens-audit-link-'));
  try {
    const dir = join(root, 'run');
    const runEps = await trainTiny(dir);
    const a = await auditRun(dir, { canaries: 50, seed: 2, dataOverride: small });
    t.diagnostic(`run ε ${runEps}, audit re-run ε ${a.additionalEpsilonSpent}`);
    // the re-run's releases are in the audit ledger, with the run's neighbouring relation
    const ledgerPath = join(dir, AUDIT_LEDGER_FILE);
    assert.ok(existsSync(ledgerPath), 'audit-ledger.jsonl written');
    const ledger = PrivacyLedger.read(ledgerPath);
    assert.ok(ledger.entries.length > 0);
    assert.equal(ledger.relation, PrivacyLedger.read(join(dir, 'ledger.jsonl')).relation);
    // run.json links it (and lists the file)
    const man = readManifest(dir)!;
    assert.ok(man.privacy?.linkedLedgers?.some((l) => l.path === AUDIT_LEDGER_FILE), 'privacy.linkedLedgers lists audit-ledger.jsonl');
    assert.ok(man.artifacts.some((x) => x.path === AUDIT_LEDGER_FILE));
    // audit.json states the extra spend: the same pipeline again, so about the run's own ε
    const onDisk = JSON.parse(readFileSync(join(dir, 'audit.json'), 'utf8')) as { additionalEpsilonSpent: number | null; auditLedger?: string; dataNotPrivate: boolean };
    assert.ok(onDisk.additionalEpsilonSpent !== null && onDisk.additionalEpsilonSpent > 0, `additionalEpsilonSpent ${onDisk.additionalEpsilonSpent}`);
    assert.ok(Math.abs(onDisk.additionalEpsilonSpent - runEps) < 0.05 * runEps, `re-run ε ${onDisk.additionalEpsilonSpent} vs run ε ${runEps}`);
    assert.equal(onDisk.auditLedger, AUDIT_LEDGER_FILE);
    assert.equal(onDisk.dataNotPrivate, false);
    // the report sums it into the total spent on this data
    const html = readFileSync(await writeReport(dir), 'utf8');
    const summary = summarizePrivacy(readRunFolder(dir));
    assert.ok(summary.totalEpsilon !== undefined, 'report computes a total');
    assert.ok(Math.abs(summary.totalEpsilon - (runEps + onDisk.additionalEpsilonSpent)) < 1e-3, `total ${summary.totalEpsilon} vs ${runEps} + ${onDisk.additionalEpsilonSpent}`);
    assert.match(html, /Total spent on this private data/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--data-not-private: the audit records nothing and links nothing', async () => {
  await initEngine({});
  const root = mkdtempSync(join(tmpdir(), 'dplens-audit-link-'));
  try {
    const dir = join(root, 'run');
    await trainTiny(dir);
    const a = await auditRun(dir, { canaries: 50, seed: 2, dataOverride: small, dataNotPrivate: true });
    assert.equal(a.additionalEpsilonSpent, null);
    assert.equal(a.dataNotPrivate, true);
    assert.ok(!existsSync(join(dir, AUDIT_LEDGER_FILE)));
    assert.ok(!(readManifest(dir)!.privacy?.linkedLedgers ?? []).length);
    assert.equal(summarizePrivacy(readRunFolder(dir)).totalEpsilon, undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
