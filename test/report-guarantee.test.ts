/**
 * Issue 12, the report: every guarantee it prints is true. The relation is the one the run's
 * proof uses, what is public / released outside ε / private is listed from run.json, a failed
 * ledger check is never stated as a guarantee, damaged files are not "not available", resumed runs
 * and linked ledgers (an audit's re-runs) are shown, and plain dataset hashes are never repeated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildReport, readRunFolder, summarizePrivacy } from '../src/report/index.js';
import { DpEvents, PrivacyLedger } from '../src/privacy/index.js';
import { FIXTURE_FINGERPRINT, PRIVATE_MARKER, makeFixtureRun, writeLegacyLedger } from './report-fixture.js';

const text = (html: string): string => html.replace(/<svg[\s\S]*?<\/svg>/g, ' ').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
/** The guarantee paragraph's text. */
const guarantee = (html: string): string => text(/<p class="guarantee[^"]*">([\s\S]*?)<\/p>/.exec(html)?.[1] ?? '').trim();

async function withRun(opts: Parameters<typeof makeFixtureRun>[0], body: (dir: string) => Promise<void>): Promise<void> {
  const dir = makeFixtureRun(opts);
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a replace-one synthesis run is stated as replace-one with n public, never as add/remove', () =>
  withRun(
    {
      relation: 'replace-one',
      manifest: (m) => {
        m.kind = 'synth';
        m.method = 'datalens';
        m.description = 'Teacher ensemble votes, aggregated with Gaussian noise, train the generator.';
        m.privacy!.treatedAsPublic = ['n, the number of training records (shards are a shuffle over the record count)'];
      },
    },
    async (dir) => {
      const html = await buildReport(dir);
      const g = guarantee(html);
      assert.match(g, /-differential privacy with respect to replacing one record of the training data with another \(the number of records, n, is treated as public\)/);
      assert.doesNotMatch(text(html), /adding or removing/);
      assert.match(text(html), /Treated as public by the proof n, the number of training records/);
      assert.match(text(html), /neighbouring relation replace-one/);
      assert.match(text(html), /Teacher ensemble votes, aggregated with Gaussian noise/, 'method description from run.json');
    },
  ));

test('an add/remove DP-SGD run states add/remove, from the ledger and run.json', () =>
  withRun({}, async (dir) => {
    const p = summarizePrivacy(readRunFolder(dir));
    assert.equal(p.relation, 'add-remove');
    assert.match(p.relationSource, /run\.json and ledger\.jsonl header/);
    assert.match(guarantee(await buildReport(dir)), /with respect to adding or removing one record of the training data/);
  }));

test('run.json and the ledger disagreeing on the relation: the guarantee is not established', () =>
  withRun({ relation: 'add-remove', manifest: (m) => (m.privacy!.relation = 'replace-one') }, async (dir) => {
    const g = guarantee(await buildReport(dir));
    assert.match(g, /^NOT established: the neighbouring relation is recorded inconsistently/);
  }));

test('the guarantee section lists what is public, what is released outside ε, and warns about private files without showing them', () =>
  withRun({}, async (dir) => {
    const html = await buildReport(dir);
    const t = text(html);
    assert.match(t, /Treated as public by the proof .*the class list \(0–9, fixed by the data set definition\).*image geometry 28×28×1/);
    assert.match(t, /Released outside the guarantee These are in the run folder but not covered by the guarantee above: the normalisation mean and standard deviation of the training images — in run\.json ?; computed from the private training split without noise/);
    assert.match(t, /per-phase wall-clock timings — in wallclock\.json ?; timings depend on the data/);
    assert.match(t, /Do not publish private-diagnostics\.jsonl ?\./);
    assert.match(t, /this report never shows its content/);
    // Its content never reaches the report.
    assert.ok(!html.includes(String(PRIVATE_MARKER)), 'a value only in private-diagnostics.jsonl leaked into the report');
  }));

test('training-batch loss and accuracy of an older folder are neither charted nor in the utility table', () =>
  withRun({ legacy: true }, async (dir) => {
    const html = await buildReport(dir);
    const t = text(html);
    assert.ok(!html.includes(String(PRIVATE_MARKER)), 'training-batch loss shown');
    assert.doesNotMatch(t, /last training batch/);
    assert.match(t, /Not shown: accuracy , loss — figures on private training batches/);
    const last = /last: (.*?) Not shown/.exec(t)?.[1] ?? '';
    assert.doesNotMatch(last, /\b(loss|accuracy) \d/, `last row shows batch figures: ${last}`);
    // Test metrics and ε vs step stay: test loss, test accuracy, ε.
    assert.equal((html.match(/<svg/g) ?? []).length, 3);
    assert.match(t, /testAccuracy/);
  }));

test('a ledger that fails verification: the report says NOT established instead of stating the guarantee', () =>
  withRun({}, async (dir) => {
    const path = join(dir, 'ledger.jsonl');
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('"count":40', '"count":4');
    writeFileSync(path, lines.join('\n'));
    const html = await buildReport(dir);
    const g = guarantee(html);
    assert.match(g, /^NOT established: ledger failed verification \(.*hash chain broken at line 3/);
    assert.match(g, /must not be relied on/);
    assert.match(html, /class="guarantee not-established"/);
    assert.match(text(html), /guarantee NOT established/, 'summary card');
  }));

test('a ledger named in run.json but deleted: NOT established, never "no privacy claim"', () =>
  withRun({}, async (dir) => {
    rmSync(join(dir, 'ledger.jsonl'));
    rmSync(join(dir, 'ledger.jsonl.tip'), { force: true });
    const html = await buildReport(dir);
    assert.match(guarantee(html), /^NOT established: the ledger named in run\.json \(ledger\.jsonl\) is missing/);
    assert.doesNotMatch(text(html), /no privacy claim can be made/);
  }));

test('a file that exists but is corrupt is "damaged" and listed under Problems, not "not available"', () =>
  withRun({ withAudit: true, legacy: true }, async (dir) => {
    writeFileSync(join(dir, 'samples.png'), 'not a png');
    writeFileSync(join(dir, 'eval.json'), '{"accuracy": ');
    writeFileSync(join(dir, 'audit.json'), '[1, 2');
    writeFileSync(join(dir, 'config.json'), '{');
    writeFileSync(join(dir, 'metrics.jsonl'), 'garbage\nmore garbage\n');
    const t = text(await buildReport(dir));
    for (const f of ['samples.png', 'eval.json', 'audit.json', 'config.json', 'metrics.jsonl']) {
      assert.match(t, new RegExp(`Damaged: ${f.replace('.', '\\.')} exists but could not be read`), f);
      assert.doesNotMatch(t, new RegExp(`Not available: no ${f.replace('.', '\\.')}`), f);
    }
    assert.match(t, /Problems found while reading the run folder/);
  }));

test('a resumed run lists its attempts (run.json attempts)', () =>
  withRun(
    {
      manifest: (m) => {
        m.attempts = [
          { startedAt: '2026-12-01T10:00:00.000Z', command: ['train', '--data', 'mnist'], ledgerEntriesAtStart: 0, stoppedBy: 'killed' },
          { startedAt: '2026-12-01T11:30:00.000Z', command: ['train', '--data', 'mnist', '--resume'], resumedFromStep: 80, ledgerEntriesAtStart: 2, stoppedBy: 'steps' },
        ];
      },
    },
    async (dir) => {
      const t = text(await buildReport(dir));
      assert.match(t, /This run was resumed: it ran in 2 attempts \(run\.json\)/);
      assert.match(t, /1 2026-12-01T10:00:00\.000Z start 0 killed/);
      assert.match(t, /2 2026-12-01T11:30:00\.000Z 80 2 steps/);
      assert.match(t, /dplens train --data mnist --resume/, 'each attempt’s command');
    },
  ));

test('a resumed older run is detected from its ledger: step numbers that start again', () =>
  withRun({ legacy: true }, async (dir) => {
    const step = DpEvents.poissonSampled(256 / 60000, DpEvents.gaussian(1.1));
    const e = (first: number) => ({ event: DpEvents.selfComposed(step, 40), method: 'dp-sgd', datasetFingerprint: FIXTURE_FINGERPRINT, meta: { firstStep: first } });
    // Attempt 1 ran steps 1–80 but its checkpoint was at 40: attempt 2 re-ran 41–120.
    writeLegacyLedger(join(dir, 'ledger.jsonl'), [e(1), e(41), e(41), e(81)]);
    const p = summarizePrivacy(readRunFolder(dir));
    assert.equal(p.attempts.length, 2);
    assert.equal(p.attempts[1]!.resumedFromStep, 40);
    assert.equal(p.attempts[1]!.ledgerEntriesAtStart, 2);
    assert.match(text(await buildReport(dir)), /it ran in 2 attempts \(ledger\.jsonl \(entries from several attempts\)\)/);
  }));

test('linked ledgers (an audit’s re-runs on the same data) are verified, shown and summed into the total', () =>
  withRun({ manifest: (m) => (m.privacy!.linkedLedgers = [{ path: 'audit/ledger.jsonl', purpose: 'audit re-run of the private pipeline' }]) }, async (dir) => {
    const linked = PrivacyLedger.open(join(dir, 'audit', 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', randomness: { kind: 'seeded', seed: 7 } });
    try {
      linked.record({ event: DpEvents.selfComposed(DpEvents.poissonSampled(256 / 60000, DpEvents.gaussian(1.1)), 120), method: 'audit-dpsgd', datasetFingerprint: FIXTURE_FINGERPRINT });
    } finally {
      linked.close();
    }
    const p = summarizePrivacy(readRunFolder(dir));
    assert.equal(p.linked.length, 1);
    assert.equal(p.linked[0]!.integrity.status, 'verified');
    assert.ok(p.linked[0]!.epsilon! > 0);
    assert.ok(Math.abs(p.totalEpsilon! - (p.epsilon! + p.linked[0]!.epsilon!)) < 1e-12);
    assert.equal(p.totalDelta, 2e-5);
    const t = text(await buildReport(dir));
    assert.match(t, /Linked ledgers \(other spending on the same private data\) .*audit\/ledger\.jsonl audit re-run of the private pipeline verified/);
    assert.match(t, new RegExp(`ε spent on this data in total ${p.totalEpsilon!.toPrecision(4).replace('.', '\\.')}`));
    // A tampered linked ledger: the total is not established.
    const path = join(dir, 'audit', 'ledger.jsonl');
    writeFileSync(path, readFileSync(path, 'utf8').replace('"count":120', '"count":12'));
    assert.match(guarantee(await buildReport(dir)), /^NOT established: linked ledger audit\/ledger\.jsonl \(audit re-run of the private pipeline\) failed verification/);
  }));

test('dataset fingerprint: keyed is shown as keyed; a plain hash of an older folder is flagged and never repeated', async () => {
  await withRun({}, async (dir) => {
    const t = text(await buildReport(dir));
    assert.match(t, new RegExp(`${FIXTURE_FINGERPRINT} \\(keyed; only the data owner can recompute it`));
    assert.doesNotMatch(t, /plain hash/);
  });
  await withRun({ legacy: true }, async (dir) => {
    const html = await buildReport(dir);
    assert.match(text(html), /plain hash \(released: allows membership tests\) in ledger\.jsonl/);
    assert.ok(!html.includes(FIXTURE_FINGERPRINT.slice(0, 16)), 'the plain hash (or a prefix of it) appears in the report');
    const p = summarizePrivacy(readRunFolder(dir));
    assert.deepEqual(p.fingerprints.map((f) => [f.kind, f.value]), [['plain', undefined]]);
  });
});

test('dataset fingerprint: without run.json, even a current ledger\'s 64-hex fingerprint is never repeated', () =>
  withRun({}, async (dir) => {
    // Only run.json states that a fingerprint is keyed; the ledger header's era says nothing about its entries.
    rmSync(join(dir, 'run.json'));
    const html = await buildReport(dir);
    assert.ok(!html.includes(FIXTURE_FINGERPRINT.slice(0, 16)), 'a fingerprint not vouched for by run.json appears in the report');
    assert.deepEqual(summarizePrivacy(readRunFolder(dir)).fingerprints.map((f) => [f.kind, f.value]), [['plain', undefined]]);
  }));

test('an older folder without run.json still gets a full report from config.json', () =>
  withRun({ legacy: true, withAudit: true }, async (dir) => {
    const html = await buildReport(dir);
    const t = text(html);
    assert.match(t, /ledger integrity verified/);
    assert.match(t, /with respect to the neighbouring relation of the method’s proof \(not recorded in this run folder\)/);
    assert.match(t, /Released outside the guarantee Not available: not recorded: this run folder has no run\.json/);
    assert.match(html, /dplens train --data mnist --epsilon 3/);
    assert.match(t, /Configuration \(config\.json\)/);
  }));
