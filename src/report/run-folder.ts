/**
 * Reads a run folder defensively: every piece is optional, and a broken piece becomes a
 * `problems` entry (shown in the report) instead of an exception, so a report can always be
 * built — even for a crashed or half-written run.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';

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

export interface RunFolder {
  dir: string;
  config?: JsonObject;
  metrics: MetricRow[];
  ledgerPath?: string;
  ledgerLines: JsonObject[];
  samples?: PngImage;
  audit?: AuditResult;
  evaluation?: JsonObject;
  /** Non-fatal problems met while reading (shown in the report). */
  problems: string[];
}

function readJsonObject(path: string, problems: string[]): JsonObject | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Json;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      problems.push(`${path}: expected a JSON object`);
      return undefined;
    }
    return v;
  } catch (e) {
    problems.push(`${path}: ${(e as Error).message}`);
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

function readPng(dir: string, name: string, problems: string[]): PngImage | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) return undefined;
  try {
    const bytes = readFileSync(path);
    // Only the header is needed for the size, but a full decode also proves the file is intact.
    const png = PNG.sync.read(bytes);
    return { name, bytes, width: png.width, height: png.height };
  } catch (e) {
    problems.push(`${path}: not a readable PNG (${(e as Error).message})`);
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

export function readRunFolder(dir: string): RunFolder {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw Object.assign(new Error(`run folder ${dir} does not exist or is not a folder`), { name: 'UsageError' });
  }
  const problems: string[] = [];
  const config = readJsonObject(join(dir, 'config.json'), problems);
  const metrics = toMetricRows(readJsonLines(join(dir, 'metrics.jsonl'), problems));
  const ledgerPath = existsSync(join(dir, 'ledger.jsonl')) ? join(dir, 'ledger.jsonl') : undefined;
  const ledgerLines = ledgerPath ? readJsonLines(ledgerPath, problems) : [];
  const samples = readPng(dir, 'samples.png', problems);
  const auditPath = join(dir, 'audit.json');
  const audit = asAudit(readJsonObject(auditPath, problems), problems, auditPath);
  const evaluation = readJsonObject(join(dir, 'eval.json'), problems);
  return { dir, config, metrics, ledgerPath, ledgerLines, samples, audit, evaluation, problems };
}
