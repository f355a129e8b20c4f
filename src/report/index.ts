/**
 * Run reports: `writeReport(runDir)` builds runDir/report.html — one self-contained HTML file
 * (inline CSS, images as data: URIs, charts as inline SVG, no script, no external URL) from
 * whatever the run folder holds: run.json (the typed manifest of runs/manifest.ts; config.json
 * for older folders), ledger.jsonl and linked ledgers, metrics.jsonl, samples.png, eval.json,
 * audit.json. Missing pieces become "not available" notes; pieces that exist but cannot be read
 * are marked "damaged" and listed under Problems. Files marked private are never read.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../util/files.js';
import { renderReportHtml } from './html.js';
import { summarizePrivacy } from './privacy-summary.js';
import { readRunFolder } from './run-folder.js';

export { readRunFolder } from './run-folder.js';
export type { RunFolder, MetricRow, AuditResult, PngImage, LinkedLedgerFile } from './run-folder.js';
export { PRIVATE_DIAGNOSTICS_FILE } from './run-folder.js';
export { summarizePrivacy, looksLikePlainHash } from './privacy-summary.js';
export type { PrivacySummary, MechanismCount, FingerprintShown, LinkedLedgerSummary, AttemptSummary } from './privacy-summary.js';
export { renderReportHtml, escapeHtml, isPrivateMetric } from './html.js';
export { renderVegaLite, lineChart, rocChart } from './charts.js';

/** Builds the report HTML for a run folder without writing it. */
export async function buildReport(runDir: string): Promise<string> {
  const run = readRunFolder(runDir);
  const privacy = summarizePrivacy(run);
  return renderReportHtml(run, privacy);
}

/** Writes runDir/report.html (atomically: a reader never sees half a report) and returns its path. */
export async function writeReport(runDir: string): Promise<string> {
  const html = await buildReport(runDir);
  const path = join(runDir, 'report.html');
  writeFileAtomic(path, html);
  return path;
}
