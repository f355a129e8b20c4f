/**
 * The run manifest (`run.json`): one typed description of a run folder, written by every runner
 * in `runs/` (train, synth, audit, eval) and read by the report, so that the report never has to
 * guess the shape of a method's config.
 *
 * A run folder is a release. The manifest says, for every file in it, whether the file is covered
 * by the run's DP guarantee (`covered: true`), released outside it (`covered: false`, with the
 * reason, and the report lists it in its guarantee section), or private (must not be published;
 * the report never shows it and warns about it).
 */
import type { NeighbouringRelation } from '../privacy/index.js';

export const MANIFEST_FILE = 'run.json';

/** What kind of job produced the folder. */
export type RunKind = 'train' | 'synth' | 'audit' | 'eval' | 'fed';

/** How a file in the run folder relates to the guarantee. */
export type ReleaseStatus =
  /** Computed from private data only through the accounted mechanisms (post-processing). */
  | 'covered'
  /** Depends on private data but is not covered by the guarantee; listed in the report. */
  | 'outside-guarantee'
  /** Does not depend on private data (public inputs, test-set metrics, code config). */
  | 'public'
  /** Private diagnostics: must not be published; the report never shows them. */
  | 'private';

export interface ManifestArtifact {
  /** Path relative to the run folder. */
  path: string;
  /** What it is, in words ("synthetic images", "model weights", ...). */
  what: string;
  status: ReleaseStatus;
  /** Why it has that status (required for 'outside-guarantee' and 'private'). */
  why?: string;
}

/** A fact about the data released outside the guarantee or treated as public by the proof. */
export interface ReleasedFact {
  /** e.g. "n (training-set size)", "class list", "CSV schema". */
  what: string;
  /** Where it appears (file names or "stdout"). */
  where: string[];
  /** 'public-by-assumption': the proof treats it as public; 'outside-guarantee': released, not covered. */
  status: 'public-by-assumption' | 'outside-guarantee';
  why?: string;
}

export interface ManifestAttempt {
  /** ISO time the attempt started. */
  startedAt: string;
  /** The exact command line (argv after the program name), when run from the CLI. */
  command?: string[];
  /** Step the attempt resumed from (absent for the first attempt). */
  resumedFromStep?: number;
  /** Ledger entry count when the attempt started (entries before it belong to earlier attempts). */
  ledgerEntriesAtStart: number;
  /** How the attempt ended, when known. */
  endedAt?: string;
  stoppedBy?: string;
}

export interface RunManifest {
  version: 1;
  kind: RunKind;
  /** Registry name of the method: 'dpsgd', 'datalens', 'gpate', 'class-mean', 'audit-dpsgd', ... */
  method: string;
  /** One sentence in plain words, for the report. */
  description?: string;
  createdAt: string;
  updatedAt: string;
  /** Resolved configuration (everything needed to reproduce the run). */
  config: Record<string, unknown>;
  dataset?: {
    name: string;
    source: string;
    /** Keyed fingerprint (privacy/owner-key): only the data owner can recompute it. Never a plain hash. */
    fingerprint: string;
    trainSize?: number;
    testSize?: number;
    numClasses?: number;
  };
  privacy?: {
    relation: NeighbouringRelation;
    /** What the proof treats as public, in words (e.g. "n, the number of training records"). */
    treatedAsPublic: string[];
    accountant: string;
    delta: number;
    budget?: { epsilon: number; delta: number };
    /** Ledger file relative to the run folder. */
    ledger: string;
    /** Other ledgers whose spending concerns the same private data (e.g. an audit's re-runs). */
    linkedLedgers?: { path: string; purpose: string }[];
    randomness: { kind: 'secure' | 'seeded'; seed?: number };
    /** Facts about the data that any file here reveals, with their status. */
    released: ReleasedFact[];
  };
  /** metrics.jsonl (covered or public figures only). */
  metrics?: string;
  /** Private diagnostics file, if any (never shown by the report). */
  privateDiagnostics?: string;
  artifacts: ManifestArtifact[];
  attempts: ManifestAttempt[];
  /** Public result summary of the job (the same object the CLI prints with --json, minus private fields). */
  result?: Record<string, unknown>;
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/files.js';

/** Write (or replace) `run.json` in `dir`, atomically. */
export function writeManifest(dir: string, m: RunManifest): string {
  const path = join(dir, MANIFEST_FILE);
  writeFileAtomic(path, JSON.stringify({ ...m, updatedAt: new Date().toISOString() }, null, 2) + '\n');
  return path;
}

/** Read `run.json`; undefined when absent; throws an Error naming the file when it is corrupt. */
export function readManifest(dir: string): RunManifest | undefined {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || (v as { version?: unknown }).version !== 1 || typeof (v as { kind?: unknown }).kind !== 'string') {
    throw new Error(`${path}: not a dplens run manifest (version 1)`);
  }
  return v as RunManifest;
}
