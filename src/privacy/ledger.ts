/**
 * Privacy ledger: an append-only, hash-chained JSON Lines file of every private release.
 *
 * Format (one JSON object per line, UTF-8, '\n'-terminated):
 *   line 1  {"type":"header","version":1,"accountant":"rdp","randomness":{"kind":"secure"},
 *            "createdAt":"...","budget":{...}?,"prev":"","hash":"<sha256 hex>"}
 *   line k  {"type":"entry","seq":k-1,"time":"...","event":{...},"method":"dpsgd",
 *            "datasetFingerprint":"...","resultLocation":"...","meta":{...},"prev":"<hash of line k-1>","hash":"..."}
 * `hash` = sha256(prevHash + "\n" + line-without-its-hash-field), where the line without its hash
 * field is the exact byte prefix before `,"hash":` followed by `}`. Any edit, reordering, deletion
 * in the middle or a torn last line breaks the chain and `open` throws LedgerTamperError naming
 * the line. Deleting whole trailing lines is caught by the sidecar `<ledger>.tip` (entry count +
 * last hash, replaced atomically after each append).
 *
 * Each record is written and fsync'd before `record` returns, i.e. before the release is used.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { DpEvent } from './events.js';
import { validateEvent } from './events.js';
import type { Accountant, AccountantKind, EpsilonDetails } from './rdp-accountant.js';
import { makeAccountant } from './accountants.js';
import type { RandomSource } from './random.js';
import { describeRandomness } from './random.js';

export class BudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BudgetError';
  }
}

export class LedgerTamperError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LedgerTamperError';
  }
}

export interface LedgerHeader {
  type: 'header';
  version: 1;
  accountant: AccountantKind;
  randomness: { kind: 'secure' | 'seeded'; seed?: number };
  createdAt: string;
  /** Optional budget: `record` refuses (BudgetError) any event that would exceed it. */
  budget?: { epsilon: number; delta: number };
  meta?: Record<string, unknown>;
}

export interface LedgerEntry {
  seq: number;
  time: string;
  event: DpEvent;
  method: string;
  datasetFingerprint: string;
  resultLocation?: string;
  meta?: Record<string, unknown>;
}

export interface LedgerRecordInput {
  event: DpEvent;
  method: string;
  datasetFingerprint: string;
  resultLocation?: string;
  meta?: Record<string, unknown>;
}

export interface LedgerOpenOptions {
  accountant: AccountantKind;
  /** Create the file when missing (default true). With false a missing file is an error. */
  create?: boolean;
  /** Randomness used by the run (recorded in a new header; default: secure). */
  randomness?: RandomSource | { kind: 'secure' | 'seeded'; seed?: number };
  budget?: { epsilon: number; delta: number };
  meta?: Record<string, unknown>;
}

export interface LedgerVerification {
  ok: boolean;
  entries: number;
  /** 'verified' | 'no tip file (trailing-line deletion not checkable)' */
  tip: string;
}

const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/;

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Seal one ledger line: appends `prev` and the chained sha256 `hash` (the format's only rule).
 * Exported for tools and tests that build ledgers in bulk; `record` is the normal way to append.
 */
export function sealLedgerLine(obj: Record<string, unknown>, prev: string): { line: string; hash: string } {
  return sealLine(obj, prev);
}

function sealLine(obj: Record<string, unknown>, prev: string): { line: string; hash: string } {
  const body = JSON.stringify({ ...obj, prev });
  const hash = sha256(prev + '\n' + body);
  return { line: body.slice(0, -1) + `,"hash":"${hash}"}`, hash };
}

export class PrivacyLedger {
  readonly path: string;
  readonly header: LedgerHeader;
  private readonly _entries: LedgerEntry[] = [];
  private readonly accountant: Accountant;
  private lastHash: string;
  readonly verification: LedgerVerification;

  private constructor(path: string, header: LedgerHeader, lastHash: string, entries: LedgerEntry[], verification: LedgerVerification) {
    this.path = path;
    this.header = header;
    this.lastHash = lastHash;
    this.accountant = makeAccountant(header.accountant);
    for (const e of entries) {
      this.accountant.compose(e.event);
      this._entries.push(e);
    }
    this.verification = verification;
  }

  get entries(): readonly LedgerEntry[] {
    return this._entries;
  }
  get accountantKind(): AccountantKind {
    return this.header.accountant;
  }

  /** Open (and verify) an existing ledger, or create a new one. */
  static open(path: string, opts: LedgerOpenOptions): PrivacyLedger {
    if (opts.accountant !== 'rdp' && opts.accountant !== 'pld') throw new RangeError(`ledger accountant must be rdp or pld, got ${String(opts.accountant)}`);
    if (existsSync(path)) {
      const l = PrivacyLedger.read(path);
      if (l.header.accountant !== opts.accountant) throw new LedgerTamperError(`${path}: ledger was created with the ${l.header.accountant} accountant, refusing to continue it with ${opts.accountant}`);
      return l;
    }
    if (opts.create === false) throw new Error(`${path}: no such ledger`);
    const r = opts.randomness;
    const randomness = r === undefined ? { kind: 'secure' as const } : 'nextUint32' in r ? describeRandomness(r) : r.kind === 'seeded' ? { kind: 'seeded' as const, seed: r.seed } : { kind: 'secure' as const };
    if (opts.budget) {
      if (!(opts.budget.epsilon > 0)) throw new RangeError(`budget epsilon must be > 0, got ${opts.budget.epsilon}`);
      if (!(opts.budget.delta > 0 && opts.budget.delta < 1)) throw new RangeError(`budget delta must be in (0, 1), got ${opts.budget.delta}`);
    }
    const header: LedgerHeader = { type: 'header', version: 1, accountant: opts.accountant, randomness, createdAt: new Date().toISOString() };
    if (opts.budget) header.budget = { epsilon: opts.budget.epsilon, delta: opts.budget.delta };
    if (opts.meta) header.meta = opts.meta;
    const { line, hash } = sealLine(header as unknown as Record<string, unknown>, '');
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'wx');
    try {
      writeSync(fd, line + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    writeTip(path, 0, hash);
    return new PrivacyLedger(path, header, hash, [], { ok: true, entries: 0, tip: 'verified' });
  }

  /** Read and verify a ledger without intending to append (e.g. `dplens budget show`). */
  static read(path: string): PrivacyLedger {
    const text = readFileSync(path, 'utf8');
    if (text.length === 0) throw new LedgerTamperError(`${path}: ledger is empty (header missing)`);
    const lines = text.split('\n');
    const torn = lines[lines.length - 1] !== '';
    if (torn) throw new LedgerTamperError(`${path}: line ${lines.length} is incomplete (truncated write or edit); the ledger cannot be trusted`);
    lines.pop();
    let prev = '';
    let header: LedgerHeader | undefined;
    const entries: LedgerEntry[] = [];
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i];
      const m = HASH_SUFFIX.exec(raw);
      if (!m) throw new LedgerTamperError(`${path}: line ${i + 1} has no hash (edited or truncated)`);
      const body = raw.slice(0, m.index) + '}';
      if (sha256(prev + '\n' + body) !== m[1]) throw new LedgerTamperError(`${path}: hash chain broken at line ${i + 1} (the line or one before it was edited, removed or reordered)`);
      let obj: Record<string, any>;
      try {
        obj = JSON.parse(body);
      } catch {
        throw new LedgerTamperError(`${path}: line ${i + 1} is not valid JSON`);
      }
      if (obj.prev !== prev) throw new LedgerTamperError(`${path}: line ${i + 1} does not link to the previous line`);
      if (i === 0) {
        if (obj.type !== 'header' || obj.version !== 1 || (obj.accountant !== 'rdp' && obj.accountant !== 'pld')) throw new LedgerTamperError(`${path}: line 1 is not a valid ledger header`);
        header = { type: 'header', version: 1, accountant: obj.accountant, randomness: obj.randomness, createdAt: obj.createdAt };
        if (obj.budget) header.budget = obj.budget;
        if (obj.meta) header.meta = obj.meta;
      } else {
        if (obj.type !== 'entry' || obj.seq !== i - 1) throw new LedgerTamperError(`${path}: line ${i + 1} is not entry #${i - 1}`);
        let event: DpEvent;
        try {
          event = validateEvent(obj.event);
        } catch (e) {
          throw new LedgerTamperError(`${path}: line ${i + 1}: invalid event (${(e as Error).message})`);
        }
        const entry: LedgerEntry = { seq: obj.seq, time: obj.time, event, method: obj.method, datasetFingerprint: obj.datasetFingerprint };
        if (obj.resultLocation !== undefined) entry.resultLocation = obj.resultLocation;
        if (obj.meta !== undefined) entry.meta = obj.meta;
        entries.push(entry);
      }
      prev = m[1];
    }
    if (!header) throw new LedgerTamperError(`${path}: ledger has no header`);
    let tipState = 'no tip file (deletion of whole trailing lines cannot be checked)';
    const tipPath = path + '.tip';
    if (existsSync(tipPath)) {
      let tip: { entries: number; hash: string };
      try {
        tip = JSON.parse(readFileSync(tipPath, 'utf8'));
      } catch {
        throw new LedgerTamperError(`${tipPath}: unreadable tip file`);
      }
      if (tip.entries > entries.length) throw new LedgerTamperError(`${path}: ledger truncated: the tip file records ${tip.entries} entries but only ${entries.length} are present`);
      // a crash between the fsync'd append and the tip update leaves the tip one entry behind
      const expected = tip.entries === entries.length ? prev : hashOfLine(lines[tip.entries]);
      if (expected !== tip.hash) throw new LedgerTamperError(`${path}: tip file does not match the ledger (entry ${tip.entries} hash differs): the ledger was rewritten`);
      tipState = 'verified';
    }
    const led = new PrivacyLedger(path, header, prev, entries, { ok: true, entries: entries.length, tip: tipState });
    return led;
  }

  /**
   * Append one release (fsync'd before returning). With a budget in the header, throws BudgetError
   * (and writes nothing) if the event would push epsilon over it.
   */
  record(input: LedgerRecordInput): LedgerEntry {
    const event = validateEvent(input.event);
    if (typeof input.method !== 'string' || input.method === '') throw new RangeError('ledger record needs a method name');
    if (typeof input.datasetFingerprint !== 'string') throw new RangeError('ledger record needs a datasetFingerprint string');
    const b = this.header.budget;
    if (b) {
      const eps = this.accountant.epsilonIf(event, b.delta);
      if (eps > b.epsilon) throw new BudgetError(`privacy budget exceeded: this release would bring epsilon to ${fmt(eps)} > budget ${b.epsilon} at delta ${b.delta} (spent so far ${fmt(this.accountant.getEpsilon(b.delta))}); not applied`);
    } else {
      // still validates that the accountant can price it (Unsupported throws) before writing
      this.accountant.epsilonIf(event, 1e-5);
    }
    const entry: LedgerEntry = { seq: this._entries.length, time: new Date().toISOString(), event, method: input.method, datasetFingerprint: input.datasetFingerprint };
    if (input.resultLocation !== undefined) entry.resultLocation = input.resultLocation;
    if (input.meta !== undefined) entry.meta = input.meta;
    const { line, hash } = sealLine({ type: 'entry', ...entry }, this.lastHash);
    const fd = openSync(this.path, 'a');
    try {
      writeSync(fd, line + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.lastHash = hash;
    this.accountant.compose(event);
    this._entries.push(entry);
    writeTip(this.path, this._entries.length, hash);
    return entry;
  }

  /** epsilon spent so far at delta (by the ledger's accountant). */
  spent(delta: number): number {
    return this.accountant.getEpsilon(delta);
  }
  spentDetails(delta: number): EpsilonDetails {
    return this.accountant.getEpsilonDetails(delta);
  }
  /** epsilon if `event` were recorded now (nothing is written). */
  epsilonIf(event: DpEvent, delta: number): number {
    return this.accountant.epsilonIf(event, delta);
  }
  /** Remaining budget epsilon at the budget's delta (Infinity without a budget). */
  remaining(): number {
    const b = this.header.budget;
    return b ? b.epsilon - this.spent(b.delta) : Infinity;
  }
}

function hashOfLine(line: string): string {
  const m = HASH_SUFFIX.exec(line);
  return m ? m[1] : '';
}

function writeTip(path: string, entries: number, hash: string): void {
  const tmp = path + '.tip.tmp';
  writeFileSync(tmp, JSON.stringify({ entries, hash }) + '\n');
  renameSync(tmp, path + '.tip');
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(4) : String(x);
}
