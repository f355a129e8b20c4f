/** CLI contract of `dplens account` and `dplens budget show` (spawns the real CLI). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DpEvents, PrivacyLedger, RdpAccountant, sealLedgerLine, seededRandom } from '../src/privacy/index.js';

// the owner key (ledger tip MAC) lives outside run folders; keep the tests' key out of ~/.config
const keyDir = mkdtempSync(join(tmpdir(), 'dplens-cli-key-'));
process.env.DPLENS_OWNER_KEY_FILE = join(keyDir, 'owner.key');
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const json = (s: string): Record<string, any> => {
  const lines = s.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one JSON line on stdout, got: ${s}`);
  return JSON.parse(lines[0]);
};

test('account --noise ... --json prints one object with epsilon (RDP: Opacus value, optimal order)', () => {
  const r = cli('account', '--noise', '1.1', '--sample-rate', '0.004266666666666667', '--steps', '14062', '--delta', '1e-5', '--json');
  assert.equal(r.code, 0, r.stderr);
  const o = json(r.stdout);
  assert.ok(Math.abs(o.epsilon / 2.5965558689607486 - 1) < 1e-9, String(o.epsilon));
  assert.equal(o.accountant, 'rdp');
  assert.equal(o.optimalOrder, 8.1);
  assert.ok(Array.isArray(o.warnings));
});

test('account --accountant pld and --epochs', () => {
  const r = cli('account', '--noise', '1.3', '--sample-rate', '0.004', '--epochs', '15', '--delta', '1e-5', '--accountant', 'pld', '--json');
  assert.equal(r.code, 0, r.stderr);
  const o = json(r.stdout);
  assert.equal(o.steps, 3750);
  assert.equal(o.accountant, 'pld');
  assert.ok(Math.abs(o.epsilon - 0.8335) < 0.01, String(o.epsilon));
});

test('account --target-epsilon calibrates the noise (Opacus-identical with RDP)', () => {
  const r = cli('account', '--target-epsilon', '3', '--sample-rate', '0.004', '--epochs', '15', '--delta', '1e-5', '--json');
  assert.equal(r.code, 0, r.stderr);
  const o = json(r.stdout);
  assert.equal(o.noise, 0.765380859375);
  assert.ok(o.achievedEpsilon <= 3 && o.achievedEpsilon > 2.99);
  const p = cli('account', '--target-epsilon', '3', '--sample-rate', '0.004', '--steps', '3750', '--delta', '1e-5', '--accountant', 'pld', '--json');
  assert.equal(p.code, 0, p.stderr);
  const q = json(p.stdout);
  assert.ok(q.noise > 0 && q.noise <= o.noise && q.achievedEpsilon <= 3, JSON.stringify(q));
});

test('invalid arguments exit non-zero with a one-line explanation', () => {
  const base = ['--sample-rate', '0.01', '--steps', '100', '--delta', '1e-5'];
  const bad: [string[], RegExp][] = [
    [['--noise', '1', '--sample-rate', '1.5', '--steps', '10', '--delta', '1e-5'], /--sample-rate must be in \(0, 1\]/],
    [['--noise', '1', '--sample-rate', '0', '--steps', '10', '--delta', '1e-5'], /--sample-rate must be in \(0, 1\]/],
    [['--noise', '0', ...base], /--noise must be > 0/],
    [['--noise', '-1', ...base], /--noise must be > 0/],
    [['--noise', '1', '--sample-rate', '0.01', '--steps', '100', '--delta', '1'], /--delta must be in \(0, 1\)/],
    [['--noise', '1', '--sample-rate', '0.01', '--steps', '100', '--delta', '0'], /--delta must be in \(0, 1\)/],
    [['--noise', '1', '--sample-rate', '0.01', '--steps', '10.5', '--delta', '1e-5'], /--steps must be an integer/],
    [['--noise', '1', '--sample-rate', '0.01', '--steps', '0', '--delta', '1e-5'], /--steps must be >= 1/],
    [['--target-epsilon', '0', ...base], /--target-epsilon must be > 0/],
    [['--target-epsilon', '-2', ...base], /--target-epsilon must be > 0/],
    [['--noise', '1', '--sample-rate', '0.01', '--steps', '100'], /--delta is required/],
    [['--noise', '1', '--steps', '100', '--delta', '1e-5'], /--sample-rate is required/],
    [['--noise', '1', '--sample-rate', '0.01', '--delta', '1e-5'], /--steps \(or --epochs\) is required/],
    [base, /--noise \(or --target-epsilon\) is required/],
    [['--noise', 'abc', ...base], /--noise must be a finite number/],
    [['--noise', '1', '--accountant', 'prv', ...base], /--accountant must be one of rdp\|pld/],
    [['--noise', '1', '--target-epsilon', '1', ...base], /either --noise or --target-epsilon/],
  ];
  for (const [args, re] of bad) {
    const r = cli('account', ...args, '--json');
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], re, args.join(' '));
  }
});

test('budget show summarises a ledger (text and --json) and fails loudly on tampering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-budget-'));
  try {
    const p = join(dir, 'run', 'ledger.jsonl');
    const l = PrivacyLedger.open(p, { accountant: 'rdp', randomness: seededRandom(3), budget: { epsilon: 8, delta: 1e-5 } });
    const ev = DpEvents.selfComposed(DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1)), 500);
    l.record({ event: ev, method: 'dpsgd', datasetFingerprint: 'fp-a' });
    l.record({ event: DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }), method: 'datalens', datasetFingerprint: 'fp-b' });
    const expected = new RdpAccountant().compose(ev).compose(DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 })).getEpsilon(1e-5);
    const r = cli('budget', 'show', p, '--json');
    assert.equal(r.code, 0, r.stderr);
    const o = json(r.stdout);
    assert.equal(o.entries, 2);
    assert.deepEqual(o.methods, { dpsgd: 1, datalens: 1 });
    assert.deepEqual(o.datasetFingerprints, ['fp-a', 'fp-b']);
    assert.ok(Math.abs(o.epsilon - expected) < 1e-12);
    assert.equal(o.delta, 1e-5);
    assert.deepEqual(o.randomness, { kind: 'seeded', seed: 3 });
    assert.equal(o.ok, true);
    assert.match(o.tamperCheck, /verified/);
    const pl = json(cli('budget', 'show', p, '--accountant', 'pld', '--json').stdout);
    assert.equal(pl.recomputed.accountant, 'pld');
    assert.ok(pl.recomputed.epsilon < o.epsilon && pl.recomputed.epsilon > 0.5 * o.epsilon, JSON.stringify(pl.recomputed));
    const d6 = json(cli('budget', 'show', join(dir, 'run'), '--delta', '1e-6', '--json').stdout);
    assert.ok(d6.epsilon > o.epsilon);
    const text = cli('budget', 'show', p);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /epsilon: /);
    assert.match(text.stdout, /entries: 2/);
    writeFileSync(p, readFileSync(p, 'utf8').replace('"fp-a"', '"fp-z"'));
    const t = cli('budget', 'show', p, '--json');
    assert.notEqual(t.code, 0);
    assert.equal(json(t.stdout).ok, false);
    assert.match(t.stderr, /TAMPERED OR CORRUPT LEDGER: .*hash chain broken at line 2/);
    const missing = cli('budget', 'show', join(dir, 'nope.jsonl'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no such ledger/);
    assert.equal(cli('budget', 'list', p).code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('budget show states the relation in words, the chain keying and per-entry randomness; a legacy ledger is labelled, not crashed on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-budget-rel-'));
  try {
    const p = join(dir, 'synth', 'ledger.jsonl');
    const l = PrivacyLedger.open(p, { accountant: 'rdp', relation: 'replace-one', randomness: seededRandom(4) });
    l.record({ event: DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }), method: 'datalens', datasetFingerprint: 'fp' });
    l.record({ event: DpEvents.topAgg({ k: 200, sigma: 5000, voters: 4000 }), method: 'datalens', datasetFingerprint: 'fp' });
    l.close();
    const o = json(cli('budget', 'show', p, '--json').stdout);
    assert.equal(o.relation, 'replace-one');
    assert.match(o.relationDescription, /replacing one record .* n, is treated as public/);
    assert.match(o.chain, /^keyed \(tip MAC verified/);
    assert.deepEqual(o.entryRandomness, { 'seeded (seed 4)': 2 });
    const pl = json(cli('budget', 'show', p, '--accountant', 'pld', '--json').stdout);
    assert.ok(pl.recomputed.epsilon > 0);
    const text = cli('budget', 'show', p);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /replacing one record/);
    // legacy ledger: no relation, no per-entry randomness, unkeyed tip
    const q = join(dir, 'old', 'ledger.jsonl');
    let { line, hash } = sealLedgerLine({ type: 'header', version: 1, accountant: 'rdp', randomness: { kind: 'secure' }, createdAt: '2026-01-01T00:00:00.000Z' }, '');
    const out = [line];
    ({ line, hash } = sealLedgerLine({ type: 'entry', seq: 0, time: '2026-01-01T00:00:00.000Z', event: DpEvents.selfComposed(DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1)), 100), method: 'dpsgd', datasetFingerprint: 'fp' }, hash));
    out.push(line);
    mkdirSync(join(dir, 'old'));
    writeFileSync(q, out.join('\n') + '\n');
    writeFileSync(q + '.tip', JSON.stringify({ entries: 1, hash }));
    const r = cli('budget', 'show', q, '--json');
    assert.equal(r.code, 0, r.stderr);
    const lo = json(r.stdout);
    assert.equal(lo.relation, 'not recorded (legacy ledger)');
    assert.match(lo.relationDescription, /^not recorded \(legacy ledger\)/);
    assert.match(lo.chain, /unkeyed: detects accidental damage only/);
    assert.deepEqual(lo.entryRandomness, { 'not recorded (legacy entry)': 1 });
    assert.ok(lo.warnings.some((w: string) => /legacy ledger/.test(w)));
    assert.ok(Math.abs(lo.epsilon - new RdpAccountant().compose(DpEvents.selfComposed(DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1)), 100)).getEpsilon(1e-5)) < 1e-12);
    // a missing tip while entries exist fails the check (issue 12 #6)
    rmSync(q + '.tip');
    const t = cli('budget', 'show', q, '--json');
    assert.equal(t.code, 3);
    assert.match(t.stderr, /tip file .* is missing but the ledger has 1 entries/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
