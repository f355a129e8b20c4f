/**
 * Issue 12 #1, #5, #6, #8 on the ledger: relation in header and entries, exclusive lock across real
 * processes, keyed tip (truncation + forged tip), per-entry randomness, tryRecord as the budget gate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = mkdtempSync(join(tmpdir(), 'dplens-ledger-safety-'));
process.env.DPLENS_OWNER_KEY_FILE = join(dir, 'key', 'owner.key');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const P = await import('../src/privacy/index.js');
const { BudgetError, DpEvents, LedgerLockedError, LedgerTamperError, PrivacyLedger, RdpAccountant, RelationError, sealLedgerLine, secureRandom, seededRandom, keyedFingerprint, loadOwnerKey, ownerKeyPath } = P;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let n = 0;
const fresh = (): string => join(dir, `l${n++}`, 'ledger.jsonl');
const sgm = DpEvents.poissonSampled(0.01, DpEvents.gaussian(1.1));
const rec = { event: DpEvents.selfComposed(sgm, 100), method: 'dpsgd', datasetFingerprint: 'fp' };

test('#1 the header and every entry record the relation; reopening with another one, or pricing a foreign event, is refused', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp', relation: 'replace-one', randomness: seededRandom(1) });
  try {
    assert.equal(l.relation, 'replace-one');
    assert.match(l.relationDescription, /replacing one record/);
    l.record({ event: DpEvents.topAgg({ k: 5, sigma: 30, voters: 10 }), method: 'datalens', datasetFingerprint: 'fp' });
    assert.throws(() => l.record({ event: sgm, method: 'dpsgd', datasetFingerprint: 'fp' }), RelationError);
    assert.equal(l.entries.length, 1, 'nothing written for the refused event');
  } finally {
    l.close();
  }
  const lines = readFileSync(p, 'utf8').trim().split('\n').map((s) => JSON.parse(s));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].relation, 'replace-one');
  assert.equal(lines[1].relation, 'replace-one');
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp', relation: 'add-remove' }), (e: Error) => e instanceof RelationError && /relation changed: ledger was recorded under replace-one, this run asks for add-remove; refused/.test(e.message));
  // old call sites without a relation: new ledgers still record it explicitly (add-remove)
  const q = fresh();
  PrivacyLedger.open(q, { accountant: 'pld' }).close();
  assert.equal(JSON.parse(readFileSync(q, 'utf8').split('\n')[0]).relation, 'add-remove');
});

test('#1 an entry recorded under another relation than the header is refused when the ledger is read', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp', relation: 'replace-one' });
  l.record({ event: DpEvents.gaussian(5), method: 'x', datasetFingerprint: 'fp' });
  l.close();
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  const { line, hash } = sealLedgerLine({ type: 'entry', seq: 1, time: new Date().toISOString(), event: sgm, method: 'dpsgd', datasetFingerprint: 'fp', relation: 'add-remove' }, JSON.parse(lines[1]).hash);
  writeFileSync(p, [...lines, line].join('\n') + '\n');
  P.sealLedgerTip(p);
  assert.ok(hash);
  assert.throws(() => PrivacyLedger.read(p), (e: Error) => e instanceof RelationError && /line 3: entry recorded under "add-remove" but the ledger is replace-one/.test(e.message));
});

test('#1 a legacy ledger (no relation, unkeyed tip) is read, labelled and priced as before', () => {
  const p = fresh();
  const legacy = legacyLedger(p, 3);
  const l = PrivacyLedger.read(p);
  assert.equal(l.relation, 'unrecorded');
  assert.match(l.relationDescription, /^not recorded \(legacy ledger\)/);
  assert.equal(l.verification.keyed, false);
  assert.match(l.verification.protection, /unkeyed.*accidental damage only/);
  assert.equal(l.spent(1e-5), new RdpAccountant().compose(rec.event, 3).getEpsilon(1e-5));
  assert.equal(l.entries[0].randomness, undefined);
  // continuing it under an explicit relation would state a relation the earlier entries never had
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp', relation: 'add-remove' }), /legacy ledger records no neighbouring relation/);
  assert.equal(readFileSync(p, 'utf8'), legacy);
});

/** A ledger as dplens wrote it before relations, per-entry randomness and keyed tips. */
function legacyLedger(p: string, k: number): string {
  const out: string[] = [];
  let { line, hash } = sealLedgerLine({ type: 'header', version: 1, accountant: 'rdp', randomness: { kind: 'secure' }, createdAt: '2026-01-01T00:00:00.000Z' }, '');
  out.push(line);
  for (let i = 0; i < k; i++) {
    ({ line, hash } = sealLedgerLine({ type: 'entry', seq: i, time: '2026-01-01T00:00:00.000Z', event: rec.event, method: 'dpsgd', datasetFingerprint: 'fp' }, hash));
    out.push(line);
  }
  const text = out.join('\n') + '\n';
  spawnSync('mkdir', ['-p', dirname(p)]);
  writeFileSync(p, text);
  writeFileSync(p + '.tip', JSON.stringify({ entries: k, hash }) + '\n');
  return text;
}

const holderScript = `
const { PrivacyLedger } = await import(${JSON.stringify(join(repoRoot, 'src/privacy/index.ts'))});
const l = PrivacyLedger.open(process.argv[1], { accountant: 'rdp' });
process.stdout.write('locked ' + process.pid + '\\n');
process.stdin.on('data', () => {}).on('end', () => { l.close(); process.exit(0); });
`;
const openerScript = `
const { PrivacyLedger } = await import(${JSON.stringify(join(repoRoot, 'src/privacy/index.ts'))});
try { PrivacyLedger.open(process.argv[1], { accountant: 'rdp' }).close(); process.stdout.write('opened\\n'); }
catch (e) { process.stdout.write(e.name + ': ' + e.message + '\\n'); process.exit(7); }
`;

test('#5 two real processes: the second open fails with LedgerLockedError naming the ledger and the holder pid', async () => {
  const p = fresh();
  PrivacyLedger.open(p, { accountant: 'rdp' }).close();
  const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', holderScript, p], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const first = await new Promise<string>((res, rej) => {
      holder.stdout.once('data', (b: Buffer) => res(b.toString()));
      holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
    });
    assert.match(first, /^locked \d+/);
    const pid = Number(first.split(' ')[1]);
    // another process
    const second = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', openerScript, p], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(second.status, 7, second.stdout + second.stderr);
    assert.match(second.stdout, /^LedgerLockedError: /);
    assert.ok(second.stdout.includes(p), second.stdout);
    assert.ok(second.stdout.includes(`process ${pid} on ${hostname()}`), second.stdout);
    // and this process
    assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp' }), (e: Error) => e instanceof LedgerLockedError && e.message.includes(p) && e.message.includes(String(pid)));
    holder.stdin.end();
    await new Promise((res) => holder.once('exit', res));
    // released on close: the next process gets it
    const third = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', openerScript, p], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(third.status, 0, third.stdout + third.stderr);
    assert.equal(existsSync(p + '.lock'), false);
  } finally {
    holder.kill();
  }
});

test('#5 a stale lock of a dead process on this host is taken over with a warning; a lock from another host is not', () => {
  const p = fresh();
  PrivacyLedger.open(p, { accountant: 'rdp' }).close();
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(p + '.lock', JSON.stringify({ pid: dead, hostname: hostname(), time: '2026-01-01T00:00:00Z' }));
  const errs: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (errs.push(String(s)), true)) as typeof process.stderr.write;
  let l;
  try {
    l = PrivacyLedger.open(p, { accountant: 'rdp' });
  } finally {
    process.stderr.write = orig;
  }
  assert.ok(errs.some((s) => s.includes(`left by process ${dead}`) && /taking the lock over/.test(s)), errs.join(''));
  assert.equal(JSON.parse(readFileSync(p + '.lock', 'utf8')).pid, process.pid);
  l.close();
  assert.equal(existsSync(p + '.lock'), false);
  writeFileSync(p + '.lock', JSON.stringify({ pid: dead, hostname: 'some-other-host', time: '2026-01-01T00:00:00Z' }));
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp' }), (e: Error) => e instanceof LedgerLockedError && /some-other-host/.test(e.message));
  rmSync(p + '.lock');
});

test('#5 two writers in one process cannot interleave: the stale one refuses to append', () => {
  const p = fresh();
  const a = PrivacyLedger.open(p, { accountant: 'rdp' });
  const b = PrivacyLedger.open(p, { accountant: 'rdp' });
  b.record(rec);
  assert.throws(() => a.record(rec), (e: Error) => e instanceof LedgerTamperError && /changed since it was opened/.test(e.message));
  a.close();
  assert.ok(existsSync(p + '.lock'), 'still held by b');
  b.close();
  assert.equal(existsSync(p + '.lock'), false);
  assert.throws(() => b.record(rec), /closed/);
  assert.equal(PrivacyLedger.read(p).entries.length, 1);
});

test('#6 a missing tip is an error; truncation with a rewritten tip is caught without the owner key; a ledger is still verifiable without the key', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp' });
  for (let i = 0; i < 4; i++) l.record(rec);
  l.close();
  assert.equal(l.verification.keyed, true);
  const good = readFileSync(p, 'utf8');
  const goodTip = readFileSync(p + '.tip', 'utf8');
  assert.ok(JSON.parse(goodTip).mac);
  const back = PrivacyLedger.read(p);
  assert.equal(back.verification.macVerified, true);
  assert.equal(back.verification.tip, 'verified');
  // missing tip with entries
  rmSync(p + '.tip');
  assert.throws(() => PrivacyLedger.read(p), (e: Error) => e instanceof LedgerTamperError && /tip file .* is missing but the ledger has 4 entries/.test(e.message));
  // truncate 2 entries and forge the tip as the old format would (no key): refused
  const lines = good.trim().split('\n');
  const cut = lines.slice(0, 3);
  writeFileSync(p, cut.join('\n') + '\n');
  const lastHash = JSON.parse(cut[2]).hash;
  writeFileSync(p + '.tip', JSON.stringify({ entries: 2, hash: lastHash }));
  assert.throws(() => PrivacyLedger.read(p), (e: Error) => e instanceof LedgerTamperError && /no MAC/.test(e.message));
  // forged with a MAC under some other key: refused
  const { mac, ownerKeyId } = JSON.parse(goodTip);
  writeFileSync(p + '.tip', JSON.stringify({ entries: 2, hash: lastHash, mac: mac.replace(/^./, (c: string) => (c === 'a' ? 'b' : 'a')), ownerKeyId }));
  assert.throws(() => PrivacyLedger.read(p), (e: Error) => e instanceof LedgerTamperError && /tip MAC does not verify/.test(e.message));
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp' }), LedgerTamperError);
  // restored: fine again; and without the key the chain is still checked, the MAC is said not to be
  writeFileSync(p, good);
  writeFileSync(p + '.tip', goodTip);
  const keyFile = process.env.DPLENS_OWNER_KEY_FILE;
  process.env.DPLENS_OWNER_KEY_FILE = join(dir, 'no-such-key');
  try {
    const v = PrivacyLedger.read(p).verification;
    assert.equal(v.macVerified, false);
    assert.match(v.tip, /MAC NOT checked: the owner key is not available/);
    assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp' }), /owner key, which is not available/);
    assert.equal(existsSync(join(dir, 'no-such-key')), false, 'verification never creates a key');
  } finally {
    process.env.DPLENS_OWNER_KEY_FILE = keyFile;
  }
});

test('owner key: 0600 outside the run folder; keyed fingerprints are stable, key-dependent and not the plain hash', () => {
  const key = loadOwnerKey();
  assert.equal(ownerKeyPath(), process.env.DPLENS_OWNER_KEY_FILE);
  assert.equal(key.length, 32);
  assert.equal(spawnSync('stat', ['-c', '%a', ownerKeyPath()], { encoding: 'utf8' }).stdout.trim(), '600');
  const raw = 'a'.repeat(64);
  const fp = keyedFingerprint(raw);
  assert.match(fp, /^[0-9a-f]{64}$/);
  assert.notEqual(fp, raw);
  assert.equal(keyedFingerprint(raw), fp);
  assert.notEqual(keyedFingerprint(raw, Buffer.alloc(32, 1)), fp);
});

test('#8 randomness is recorded per entry and a change of kind or seed is refused', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp', randomness: seededRandom(5) });
  l.record(rec);
  l.close();
  assert.deepEqual(PrivacyLedger.read(p).entries[0].randomness, { kind: 'seeded', seed: 5 });
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp', randomness: secureRandom() }), /randomness changed: ledger was seed 5, this run asks for secure; refused/);
  assert.throws(() => PrivacyLedger.open(p, { accountant: 'rdp', randomness: seededRandom(3) }), /randomness changed: ledger was seed 5, this run asks for seed 3; refused/);
  assert.equal(existsSync(p + '.lock'), false, 'a refused open leaves no lock');
  const same = PrivacyLedger.open(p, { accountant: 'rdp', randomness: seededRandom(5) });
  same.record(rec);
  same.close();
  const s = fresh();
  PrivacyLedger.open(s, { accountant: 'rdp', randomness: secureRandom() }).close();
  assert.throws(() => PrivacyLedger.open(s, { accountant: 'rdp', randomness: seededRandom(3) }), /randomness changed: ledger was secure, this run asks for seed 3; refused/);
  const e = PrivacyLedger.open(s, { accountant: 'rdp', randomness: { kind: 'secure' } });
  e.record(rec);
  e.close();
  assert.deepEqual(PrivacyLedger.read(s).entries[0].randomness, { kind: 'secure' });
});

test('tryRecord is the budget gate: it says no (and writes nothing) instead of throwing; record still throws BudgetError', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp', budget: { epsilon: 1, delta: 1e-5 } });
  let accepted = 0;
  for (;;) {
    const r = l.tryRecord(rec);
    if (!r.ok) {
      assert.match(r.reason, /privacy budget exceeded/);
      assert.ok(r.epsilonIfRecorded > 1);
      assert.deepEqual(r.budget, { epsilon: 1, delta: 1e-5 });
      break;
    }
    assert.equal(r.entry.seq, accepted++);
  }
  assert.ok(accepted >= 1);
  assert.throws(() => l.record(rec), BudgetError);
  l.close();
  assert.equal(PrivacyLedger.read(p).entries.length, accepted);
  // create: false never starts a fresh ledger
  const missing = join(dir, 'missing', 'ledger.jsonl');
  assert.throws(() => PrivacyLedger.open(missing, { accountant: 'rdp', create: false }), /no such ledger/);
  assert.equal(existsSync(missing) || existsSync(missing + '.lock'), false);
});

test('appends MAC the tip with the owner key verified at open, even if DPLENS_OWNER_KEY_FILE changes mid-run', () => {
  const p = fresh();
  const l = PrivacyLedger.open(p, { accountant: 'rdp' });
  const keyFile = process.env.DPLENS_OWNER_KEY_FILE;
  const other = join(dir, 'other-key', 'owner.key');
  try {
    process.env.DPLENS_OWNER_KEY_FILE = other;
    l.record(rec);
  } finally {
    process.env.DPLENS_OWNER_KEY_FILE = keyFile;
    l.close();
  }
  assert.equal(existsSync(other), false, 'no second key is created by an append');
  const v = PrivacyLedger.read(p).verification;
  assert.equal(v.macVerified, true);
  assert.equal(v.entries, 1);
});
