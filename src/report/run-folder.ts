/**
 * Reads a run folder defensively: every piece is optional, and a broken piece becomes a
 * `problems` entry and a `damaged` mark (shown in the report) instead of an exception, so a report
 * can always be built — even for a crashed or half-written run. "Absent" and "damaged" are kept
 * apart: a file that exists but cannot be read is never reported as "not available".
 *
 * The typed manifest (run.json, runs/manifest.ts) is the primary description of the folder; older
 * folders without it are read from config.json and the default file names as before.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { PNG } from 'pngjs';
import { MANIFEST_FILE, readManifest, type RunManifest } from '../runs/manifest.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** One metrics.jsonl line: {step, epoch?, loss?, accuracy?, testAccuracy?, epsilon?, ...}. */
export interface MetricRow {
  step: number;
  [key: string]: number | string | boolean | null | undefined;
}

export interface AuditResult {
  claimedEpsilon?: number;
  empiricalEpsilonLowerBound?: number;
  confidence?: number;
  attack?: string;
  auc?: number;
  roc?: { fpr: number[]; tpr: number[] };
  [key: string]: unknown;
}

export interface PngImage {
  /** File name inside the run folder. */
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
}

/** A ledger whose spending concerns the same private data (run.json `privacy.linkedLedgers`). */
export interface LinkedLedgerFile {
  /** As written in run.json (relative to the run folder, or absolute). */
  name: string;
  path: string;
  purpose: string;
  exists: boolean;
  lines: JsonObject[];
}

export interface RunFolder {
  dir: string;
  /** run.json, when the folder has a readable one. */
  manifest?: RunManifest;
  config?: JsonObject;
  metrics: MetricRow[];
  /** Name of the metrics file when it exists (it may hold no row). */
  metricsFile?: string;
  ledgerPath?: string;
  /** File name of the ledger (relative to the folder) as run.json names it, or ledger.jsonl. */
  ledgerName: string;
  /** run.json names a ledger that is not there: spent budget is unaccounted for. */
  ledgerMissing?: boolean;
  ledgerLines: JsonObject[];
  linkedLedgers: LinkedLedgerFile[];
  samples?: PngImage;
  audit?: AuditResult;
  evaluation?: JsonObject;
  /** Files with status 'private' (run.json) or named private-diagnostics.jsonl: never read, never shown. */
  privateFiles: string[];
  /** Files that exist but could not be read, by file name, with the reason. */
  damaged: Record<string, string>;
  /** Non-fatal problems met while reading (shown in the report). */
  problems: string[];
}

/** The private-diagnostics file every runner writes; its content must never reach a report. */
export const PRIVATE_DIAGNOSTICS_FILE = 'private-diagnostics.jsonl';

function readJsonObject(path: string, problems: string[], damaged: Record<string, string>, name: string): JsonObject | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Json;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      problems.push(`${path}: expected a JSON object`);
      damaged[name] = 'not a JSON object';
      return undefined;
    }
    return v;
  } catch (e) {
    problems.push(`${path}: ${(e as Error).message}`);
    damaged[name] = `not valid JSON (${(e as Error).message})`;
    return undefined;
  }
}

/** Parses JSON Lines; a torn last line (a run killed mid-write) or a bad line is reported, not fatal. */
export function readJsonLines(path: string, problems: string[]): JsonObject[] {
  if (!existsSync(path)) return [];
  const rows: JsonObject[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  let bad = 0;
  let firstBad = '';
  lines.forEach((line, i) => {
    const s = line.trim();
    if (!s) return;
    try {
      const v = JSON.parse(s) as Json;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) rows.push(v);
      else throw new Error('not a JSON object');
    } catch (e) {
      bad++;
      if (!firstBad) firstBad = `line ${i + 1}: ${(e as Error).message}`;
    }
  });
  if (bad) problems.push(`${path}: ${bad} unreadable line(s), first at ${firstBad}`);
  return rows;
}

function toMetricRows(rows: JsonObject[]): MetricRow[] {
  const out: MetricRow[] = [];
  rows.forEach((r, i) => {
    const row: MetricRow = { step: typeof r.step === 'number' && Number.isFinite(r.step) ? r.step : i };
    for (const [k, v] of Object.entries(r)) {
      if (k === 'step') continue;
      if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' || v === null) row[k] = v;
    }
    out.push(row);
  });
  return out;
}

function readPng(dir: string, name: string, problems: string[], damaged: Record<string, string>): PngImage | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) return undefined;
  try {
    const bytes = readFileSync(path);
    // Only the header is needed for the size, but a full decode also proves the file is intact.
    const png = PNG.sync.read(bytes);
    return { name, bytes, width: png.width, height: png.height };
  } catch (e) {
    problems.push(`${path}: not a readable PNG (${(e as Error).message})`);
    damaged[name] = `not a readable PNG (${(e as Error).message})`;
    return undefined;
  }
}

function asAudit(o: JsonObject | undefined, problems: string[], path: string): AuditResult | undefined {
  if (!o) return undefined;
  const a = o as unknown as AuditResult;
  const roc = o.roc as JsonObject | undefined;
  if (roc !== undefined) {
    const fpr = roc?.fpr;
    const tpr = roc?.tpr;
    const ok =
      Array.isArray(fpr) &&
      Array.isArray(tpr) &&
      fpr.length === tpr.length &&
      fpr.every((x) => typeof x === 'number' && Number.isFinite(x)) &&
      tpr.every((x) => typeof x === 'number' && Number.isFinite(x));
    if (!ok) {
      problems.push(`${path}: roc must hold equal-length finite fpr[] and tpr[]; ROC plot omitted`);
      return { ...a, roc: undefined };
    }
  }
  return a;
}

/** Reads a JSON Lines file; a file that exists but yields no readable line is marked damaged. */
function readJsonLinesMarked(dir: string, name: string, problems: string[], damaged: Record<string, string>): JsonObject[] {
  const path = join(dir, name);
  if (!existsSync(path)) return [];
  const before = problems.length;
  const rows = readJsonLines(path, problems);
  if (rows.length === 0 && (problems.length > before || readFileSync(path).length > 0)) damaged[name] = 'no readable line';
  return rows;
}

const resolveIn = (dir: string, p: string): string => (isAbsolute(p) ? p : join(dir, p));

export function readRunFolder(dir: string): RunFolder {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw Object.assign(new Error(`run folder ${dir} does not exist or is not a folder`), { name: 'UsageError' });
  }
  const problems: string[] = [];
  const damaged: Record<string, string> = {};
  let manifest: RunManifest | undefined;
  try {
    manifest = readManifest(dir);
  } catch (e) {
    problems.push((e as Error).message);
    damaged[MANIFEST_FILE] = (e as Error).message.replace(/^.*?: /, '');
  }
  const config = readJsonObject(join(dir, 'config.json'), problems, damaged, 'config.json');
  const metricsName = manifest?.metrics ?? 'metrics.jsonl';
  const metrics = toMetricRows(readJsonLinesMarked(dir, metricsName, problems, damaged));
  const ledgerName = manifest?.privacy?.ledger ?? 'ledger.jsonl';
  const ledgerFile = resolveIn(dir, ledgerName);
  const ledgerPath = existsSync(ledgerFile) ? ledgerFile : undefined;
  // A manifest that names a ledger promises one: its absence is lost budget, never "no claim".
  const ledgerMissing = !ledgerPath && manifest?.privacy?.ledger !== undefined ? true : undefined;
  if (ledgerMissing) problems.push(`${ledgerFile}: named in ${MANIFEST_FILE} but missing — the budget this run spent cannot be verified`);
  const ledgerLines = ledgerPath ? readJsonLines(ledgerPath, problems) : [];
  const linkedLedgers: LinkedLedgerFile[] = (manifest?.privacy?.linkedLedgers ?? []).map((l) => {
    const path = resolveIn(dir, l.path);
    const exists = existsSync(path);
    if (!exists) problems.push(`${path}: linked ledger (${l.purpose}) named in ${MANIFEST_FILE} is missing`);
    return { name: l.path, path, purpose: l.purpose, exists, lines: exists ? readJsonLines(path, problems) : [] };
  });
  const samples = readPng(dir, 'samples.png', problems, damaged);
  const auditPath = join(dir, 'audit.json');
  const audit = asAudit(readJsonObject(auditPath, problems, damaged, 'audit.json'), problems, auditPath);
  const evaluation = readJsonObject(join(dir, 'eval.json'), problems, damaged, 'eval.json');
  const privateFiles = new Set<string>();
  for (const a of manifest?.artifacts ?? []) if (a.status === 'private') privateFiles.add(a.path);
  if (manifest?.privateDiagnostics) privateFiles.add(manifest.privateDiagnostics);
  if (existsSync(join(dir, PRIVATE_DIAGNOSTICS_FILE))) privateFiles.add(PRIVATE_DIAGNOSTICS_FILE);
  const metricsFile = existsSync(join(dir, metricsName)) ? metricsName : undefined;
  return { dir, manifest, config, metrics, metricsFile, ledgerPath, ledgerName, ledgerMissing, ledgerLines, linkedLedgers, samples, audit, evaluation, privateFiles: [...privateFiles], damaged, problems };
}
