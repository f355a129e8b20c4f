/**
 * Run reports: `writeReport(runDir)` builds runDir/report.html — one self-contained HTML file
 * (inline CSS, images as data: URIs, charts as inline SVG, no script, no external URL) from
 * whatever the run folder holds: config.json, ledger.jsonl, metrics.jsonl, samples.png,
 * eval.json, audit.json. Missing or broken pieces become "not available" notes.
 */
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { renderReportHtml } from './html.js';
import { summarizePrivacy } from './privacy-summary.js';
import { readRunFolder } from './run-folder.js';

export { readRunFolder } from './run-folder.js';
export type { RunFolder, MetricRow, AuditResult, PngImage } from './run-folder.js';
export { summarizePrivacy } from './privacy-summary.js';
export type { PrivacySummary, MechanismCount } from './privacy-summary.js';
export { renderReportHtml, escapeHtml } from './html.js';
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
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, html);
  renameSync(tmp, path);
  return path;
}
