import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync, appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, writeReport, readRunFolder, summarizePrivacy, escapeHtml } from '../src/report/index.js';
import { makeFixtureRun } from './report-fixture.js';
import { DpEvents, RdpAccountant } from '../src/privacy/index.js';

/** Text of the report with tags stripped, for content assertions. */
const text = (html: string): string => html.replace(/<svg[\s\S]*?<\/svg>/g, ' ').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');

test('report of a full run folder is self-contained and holds every section', async () => {
  const dir = makeFixtureRun({ withAudit: true });
  try {
    const path = await writeReport(dir);
    assert.equal(path, join(dir, 'report.html'));
    const html = readFileSync(path, 'utf8');
    // Self-contained: no scripts, no external resources of any kind.
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /https?:\/\//, 'no URL may appear in the report');
    assert.doesNotMatch(html, /\b(src|href)="(?!data:|#)/, 'only data: URIs and in-page anchors');
    // The sample grid is embedded as a PNG data URI that decodes back to the file's bytes.
    const m = /src="data:image\/png;base64,([^"]+)"/.exec(html);
    assert.ok(m, 'samples.png embedded');
    assert.deepEqual(Buffer.from(m[1]!, 'base64'), readFileSync(join(dir, 'samples.png')));
    // Charts: loss, accuracy, ε and the ROC curve, all inline SVG with drawn paths.
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svgs.length, 4);
    for (const s of svgs) assert.match(s, /<path[^>]+d="M/);
    const t = text(html);
    assert.match(t, /1\. What was protected and how/);
    assert.match(t, /δ = 1\.00e-5/);
    assert.match(t, /dp-sgd/);
    assert.match(t, /a3f1c2e4b5d69788/, 'dataset fingerprint shown');
    assert.match(t, /seeded \(seed 7\)/, 'seeded randomness flagged');
    assert.match(t, /gaussian 120/, 'mechanism and its number of applications');
    assert.match(t, /ledger integrity verified — hash chain intact over 3 entries/);
    assert.match(t, /noiseMultiplier=1\.1/);
    assert.match(t, /empirical lower bound 0\.42 does not exceed the claimed ε = 3/);
    assert.match(t, /reference \(non-private reference\)/);
    assert.match(t, /0\.99/);
    // The exact command, HTML-escaped (the fixture's argument contains markup and a quote).
    assert.match(html, /dplens train --data mnist --epsilon 3 --delta 1e-5 --out \S+ --note &#39;&lt;b&gt;o&#39;\\&#39;&#39;k&lt;\/b&gt;&#39;/);
    assert.doesNotMatch(html, /<b>o'k<\/b>/, 'user text is never injected as markup');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('privacy summary: ε recomputed from the verified ledger, δ, accountant, randomness, mechanisms', () => {
  const dir = makeFixtureRun();
  try {
    const p = summarizePrivacy(readRunFolder(dir));
    assert.equal(p.delta, 1e-5);
    assert.equal(p.accountant, 'rdp');
    assert.equal(p.entryCount, 3);
    assert.deepEqual(p.methods, ['dp-sgd']);
    assert.equal(p.randomness.kind, 'seeded');
    assert.equal(p.randomness.seed, 7);
    assert.equal(p.mechanisms.length, 1);
    assert.equal(p.mechanisms[0]!.kind, 'gaussian');
    assert.equal(p.mechanisms[0]!.count, 120);
    assert.equal(p.integrity.status, 'verified');
    assert.equal(p.budgetEpsilon, 3);
    assert.match(p.epsilonSource ?? '', /recomputed from the verified ledger by the rdp accountant/);
    // The same 120 subsampled-Gaussian steps priced directly by the privacy layer.
    const direct = new RdpAccountant().compose(DpEvents.poissonSampled(256 / 60000, DpEvents.gaussian(1.1)), 120).getEpsilon(1e-5);
    assert.ok(Math.abs(p.epsilon! - direct) < 1e-9, `ε ${p.epsilon} vs ${direct}`);
    assert.ok(p.epsilon! > 0.1 && p.epsilon! < 3, `plausible ε ${p.epsilon}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tampered ledger is flagged and its ε labelled unverified', async () => {
  const dir = makeFixtureRun();
  try {
    const path = join(dir, 'ledger.jsonl');
    // Lower the recorded step count of the second entry: the kind of edit that would understate ε.
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('"count":40', '"count":4');
    writeFileSync(path, lines.join('\n'));
    const p = summarizePrivacy(readRunFolder(dir));
    assert.equal(p.integrity.status, 'failed');
    assert.match(p.integrity.detail, /hash chain broken at line 3/);
    assert.match(p.epsilonSource ?? '', /UNVERIFIED/);
    const t = text(await buildReport(dir));
    assert.match(t, /ledger integrity failed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an empty run folder still yields a report that says what is not available', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-empty-'));
  try {
    const html = await buildReport(dir);
    const t = text(html);
    assert.match(t, /no ledger\.jsonl, so no privacy claim can be made/);
    assert.match(t, /Not available: no samples\.png/);
    assert.match(t, /Not available: no metrics\.jsonl/);
    assert.match(t, /Not available: no eval\.json/);
    assert.match(t, /Not available: no audit\.json/);
    assert.match(t, /Not available: no config\.json/);
    assert.doesNotMatch(html, /<svg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('broken pieces are reported, not fatal: torn JSONL line, bad PNG, bad JSON, malformed ROC', async () => {
  const dir = makeFixtureRun({ withAudit: true });
  try {
    appendFileSync(join(dir, 'metrics.jsonl'), '{"step": 121, "loss": 0.3');
    writeFileSync(join(dir, 'samples.png'), Buffer.from('not a png at all'));
    writeFileSync(join(dir, 'eval.json'), '{"accuracy": ');
    writeFileSync(join(dir, 'audit.json'), JSON.stringify({ claimedEpsilon: 1, empiricalEpsilonLowerBound: 2.5, roc: { fpr: [0, 1], tpr: [0] } }));
    const run = readRunFolder(dir);
    assert.equal(run.metrics.length, 120, 'the torn last line is skipped');
    assert.equal(run.samples, undefined);
    const joined = run.problems.join('\n');
    assert.match(joined, /metrics\.jsonl: 1 unreadable line\(s\), first at line 121/);
    assert.match(joined, /samples\.png: not a readable PNG/);
    assert.match(joined, /eval\.json: /);
    assert.match(joined, /roc must hold equal-length finite fpr\[\] and tpr\[\]/);
    const t = text(await buildReport(dir));
    assert.match(t, /Problems found while reading the run folder/);
    assert.match(t, /Violation: the empirical lower bound 2\.5 exceeds the claimed ε = 1/);
    assert.match(t, /ROC curve: not available/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('audit of a non-private run (claimedEpsilon null) reads as ε = ∞, not as a violation', async () => {
  const dir = makeFixtureRun();
  try {
    writeFileSync(join(dir, 'audit.json'), JSON.stringify({ claimedEpsilon: null, delta: 1e-5, empiricalEpsilonLowerBound: 4.2, confidence: 0.95, attack: 'dirac gradient canaries', m: 1000, roc: { fpr: [0, 0.1, 1], tpr: [0, 0.8, 1] }, auc: 0.93, tprAt1: 0.5 }));
    const t = text(await buildReport(dir));
    assert.match(t, /non-private \(claimed ε = ∞\); the empirical lower bound 4\.2/);
    assert.doesNotMatch(t, /Violation/);
    assert.match(t, /tprAt1 0\.5/, 'extra audit figures are listed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('long runs are thinned so the report stays small', async () => {
  const dir = makeFixtureRun({ steps: 20000, withSamples: false });
  try {
    const html = await buildReport(dir);
    assert.ok(html.length < 600_000, `report is ${html.length} bytes`);
    assert.match(text(html), /20000 metric rows/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing run folder is a usage error', async () => {
  await assert.rejects(writeReport(join(tmpdir(), 'dplens-no-such-run-' + process.pid)), (e: Error) => e.name === 'UsageError' && /does not exist/.test(e.message));
  assert.equal(existsSync(join(tmpdir(), 'dplens-no-such-run-' + process.pid)), false);
});

test('escapeHtml escapes every markup character', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});
