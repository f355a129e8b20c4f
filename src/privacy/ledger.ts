/**
 * Privacy ledger: an append-only, hash-chained JSON Lines file of every private release, the ONLY
 * budget gate of dplens (trainers and voting loops ask `tryRecord` and stop when it says no).
 *
 * Format (one JSON object per line, UTF-8, '\n'-terminated):
 *   line 1  {"type":"header","version":1,"accountant":"rdp","relation":"add-remove",
 *            "randomness":{"kind":"secure"},"createdAt":"...","budget":{...}?,"meta":{...}?,
 *            "tipKey":{"alg":"hmac-sha256","ownerKeyId":"<16 hex>"},"prev":"","hash":"<sha256 hex>"}
 *   line k  {"type":"entry","seq":k-1,"time":"...","event":{...},"method":"dpsgd",
 *            "datasetFingerprint":"...","relation":"add-remove","randomness":{"kind":"secure"},
 *            "resultLocation":"..."?,"meta":{...}?,"prev":"<hash of line k-1>","hash":"..."}
 * `hash` = sha256(prevHash + "\n" + line-without-its-hash-field), where the line without its hash
 * field is the exact byte prefix before `,"hash":` followed by `}`. The sidecar `<ledger>.tip`
 * = {"entries":N,"hash":"<hash of line N+1>","mac":"<hmac>","ownerKeyId":"..."}, replaced
 * atomically after each append, with mac = HMAC-SHA256(owner key, header hash, N, hash); the owner
 * key lives OUTSIDE the run folder (owner-key.ts).
 *
 * What the chain detects:
 *  - accidental damage: any edited byte, reordered, removed or torn line (open/read throw
 *    LedgerTamperError naming the line);
 *  - truncation: removing trailing entries (the tip records more entries than are present), and a
 *    missing tip file while the ledger has entries;
 *  - edits by someone WITHOUT the owner key: rewriting lines means recomputing the sha256 chain
 *    and the tip, and the tip's MAC cannot be forged without the key.
 * What it does NOT detect:
 *  - anyone holding the owner key (they can rewrite ledger and tip consistently);
 *  - deletion of the whole run folder (ledger and tip together), or replacing ledger + tip by a
 *    copy saved earlier (a rollback to an older, self-consistent state);
 *  - for ledgers created before the tip was keyed ("unkeyed"), it only detects accidental damage:
 *    a writer can recompute the sha256 chain and tip.
 * Verification without the owner key still checks the chain and tip hash, and says that the MAC
 * was not checked.
 *
 * Concurrency: `open` takes an exclusive lock `<ledger>.lock` (O_EXCL; pid, hostname, time); a
 * second process gets LedgerLockedError. A lock left by a dead process on this host is taken over
 * with a warning. `close()` releases it (also released on process exit). Every append also checks
 * that the file still has the size this object last wrote, so no two writers interleave silently.
 *
 * Each record is written and fsync'd before `record` returns, i.e. before the release is used.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { AccountingRelation, DpEvent, NeighbouringRelation } from './events.js';
import { describeEvent, describeRelation, isNeighbouringRelation, validateEvent } from './events.js';
import type { AccountantKind, EpsilonDetails } from './rdp-accountant.js';
import { AccountingError, RelationError } from './rdp-accountant.js';
import { makeAccountant } from './accountants.js';
import { type Guarantee, guaranteeOf, type MetricAwareAccountant, withMetricDp } from './metric-dp.js';
import type { RandomSource } from './random.js';
import { describeRandomness } from './random.js';
import { loadOwnerKey, ownerKeyId, ownerKeyPath, ownerMac } from './owner-key.js';

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

/** Another live process holds the ledger's lock. */
export class LedgerLockedError extends Error {
  readonly ledgerPath: string;
  readonly holder: LedgerLockInfo | undefined;
  constructor(ledgerPath: string, holder: LedgerLockInfo | undefined, detail?: string) {
    const who = holder ? `process ${holder.pid} on ${holder.hostname} (since ${holder.time})` : 'another process (lock file unreadable)';
    super(`${ledgerPath}: ledger is locked by ${who}; two runs must not write one ledger at the same time${detail ? ` (${detail})` : ''}. If no dplens process is running, remove ${ledgerPath}.lock`);
    this.name = 'LedgerLockedError';
    this.ledgerPath = ledgerPath;
    this.holder = holder;
  }
}

export interface LedgerLockInfo {
  pid: number;
  hostname: string;
  time: string;
}

export type LedgerRandomness = { kind: 'secure' | 'seeded'; seed?: number };

export interface LedgerHeader {
  type: 'header';
  version: 1;
  accountant: AccountantKind;
  /** Neighbouring relation every entry is priced under. Absent only in legacy ledgers. */
  relation?: NeighbouringRelation;
  randomness: LedgerRandomness;
  createdAt: string;
  /** Optional budget: `record` refuses (BudgetError) any event that would exceed it. */
  budget?: { epsilon: number; delta: number };
  meta?: Record<string, unknown>;
  /** The tip file is MAC'd with the owner key (absent in legacy, unkeyed ledgers). */
  tipKey?: { alg: 'hmac-sha256'; ownerKeyId: string };
}

export interface LedgerEntry {
  seq: number;
  time: string;
  event: DpEvent;
  method: string;
  datasetFingerprint: string;
  /** The header's relation (absent in legacy ledgers). */
  relation?: NeighbouringRelation;
  /** Randomness of the attempt that wrote the entry (absent in legacy ledgers). */
  randomness?: LedgerRandomness;
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

export type TryRecordResult = { ok: true; entry: LedgerEntry } | { ok: false; reason: string; epsilonIfRecorded: number; budget: { epsilon: number; delta: number } };

export interface LedgerOpenOptions {
  accountant: AccountantKind;
  /**
   * Neighbouring relation the run's proof uses. Recorded in a new header (default 'add-remove');
   * opening an existing ledger with another relation throws.
   */
  relation?: NeighbouringRelation;
  /** Create the file when missing (default true). With false (every resume) a missing file is an error. */
  create?: boolean;
  /**
   * Randomness used by this run (recorded in a new header and in every entry; default: secure).
   * Opening an existing ledger with another kind or seed throws; omitted, the ledger's is kept.
   */
  randomness?: RandomSource | LedgerRandomness;
  budget?: { epsilon: number; delta: number };
  meta?: Record<string, unknown>;
}

export interface LedgerVerification {
  ok: boolean;
  entries: number;
  /** 'verified' when chain, tip hash and (keyed ledgers) tip MAC all check; else what was not checkable. */
  tip: string;
  /** True when the tip is MAC'd with the owner key (new ledgers); false for legacy, unkeyed ledgers. */
  keyed: boolean;
  /** True when the MAC was verified here (the owner key was available and is the one that keyed it). */
  macVerified: boolean;
  /** One sentence: what this verification protects against. */
  protection: string;
}

const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/;
const TIP_LABEL = 'dplens-ledger-tip';

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

function tipMac(key: Buffer, headerHash: string, entries: number, hash: string): string {
  return ownerMac(key, TIP_LABEL, `${headerHash}\n${entries}\n${hash}`);
}

/**
 * Rewrite `<ledger>.tip` for the ledger's current last line, MAC'd with the owner key. For tools
 * that build ledgers in bulk with `sealLedgerLine` (they hold the key, so they are trusted).
 */
export function sealLedgerTip(path: string): void {
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.pop();
  const headerHash = hashOfLine(lines[0] ?? '');
  const header = JSON.parse(lines[0]) as { tipKey?: unknown };
  writeTip(path, lines.length - 1, hashOfLine(lines[lines.length - 1]), header.tipKey ? { key: loadOwnerKey(), headerHash } : undefined);
}

function describeRandomnessShort(r: LedgerRandomness): string {
  return r.kind === 'secure' ? 'secure' : `seed ${r.seed}`;
}

function normaliseRandomness(r: RandomSource | LedgerRandomness | undefined): LedgerRandomness | undefined {
  if (r === undefined) return undefined;
  if ('nextUint32' in r) return describeRandomness(r);
  if (r.kind === 'seeded') return { kind: 'seeded', seed: r.seed };
  if (r.kind === 'secure') return { kind: 'secure' };
  throw new RangeError(`randomness kind must be secure or seeded, got ${JSON.stringify((r as { kind: unknown }).kind)}`);
}

function sameRandomness(a: LedgerRandomness, b: LedgerRandomness): boolean {
  return a.kind === b.kind && (a.kind === 'secure' || a.seed === b.seed);
}

// ---- locking ----
interface HeldLock {
  count: number;
  lockPath: string;
}
/** Locks held by this process, by absolute ledger path (re-opening in one process shares the lock). */
const heldLocks = new Map<string, HeldLock>();
let exitHookInstalled = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLockInfo(lockPath: string): LedgerLockInfo | undefined {
  try {
    const o = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LedgerLockInfo>;
    if (typeof o.pid === 'number' && typeof o.hostname === 'string') return { pid: o.pid, hostname: o.hostname, time: String(o.time) };
  } catch {
    // unreadable or half-written
  }
  return undefined;
}

function acquireLock(path: string): string {
  const abs = resolve(path);
  const held = heldLocks.get(abs);
  if (held) {
    held.count++;
    return abs;
  }
  const lockPath = abs + '.lock';
  const me: LedgerLockInfo = { pid: process.pid, hostname: hostname(), time: new Date().toISOString() };
  mkdirSync(dirname(abs), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${lockPath}: cannot create the ledger lock (${(e as Error).message})`);
      const info = readLockInfo(lockPath);
      const stale = info !== undefined && info.hostname === me.hostname && (info.pid === process.pid || !pidAlive(info.pid));
      if (!stale || attempt > 0) throw new LedgerLockedError(path, info);
      // two processes taking over the same dead lock at once can both succeed here; the size check
      // in tryRecord then refuses the second writer's append
      if (info.pid !== process.pid) process.stderr.write(`dplens: warning: ${lockPath} was left by process ${info.pid} on ${info.hostname} (since ${info.time}), which is no longer running; taking the lock over\n`);
      try {
        unlinkSync(lockPath);
      } catch {
        // someone else removed it first; the O_EXCL retry decides
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    heldLocks.set(abs, { count: 1, lockPath });
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const l of heldLocks.values()) removeOwnLock(l.lockPath);
        heldLocks.clear();
      });
    }
    return abs;
  }
}

function removeOwnLock(lockPath: string): void {
  const info = readLockInfo(lockPath);
  if (info && info.pid === process.pid && info.hostname === hostname()) {
    try {
      unlinkSync(lockPath);
    } catch {
      // already gone
    }
  }
}

function releaseLock(abs: string): void {
  const held = heldLocks.get(abs);
  if (!held) return;
  if (--held.count > 0) return;
  heldLocks.delete(abs);
  removeOwnLock(held.lockPath);
}

export class PrivacyLedger {
  readonly path: string;
  readonly header: LedgerHeader;
  private readonly _entries: LedgerEntry[] = [];
  /** The header's (ε, δ) accountant, extended so metric-DP releases are recorded in their own terms (metric-dp.ts). */
  private readonly accountant: MetricAwareAccountant;
  private lastHash: string;
  private readonly headerHash: string;
  /** Bytes this object expects the file to have (appends refuse when another writer changed it). */
  private size: number;
  /** Absolute path of the held lock (undefined for read-only ledgers from `read`, or after close). */
  private lockKey: string | undefined;
  /**
   * Owner key that MACs the tip, checked against the header's key id when the ledger was opened for
   * writing (undefined for unkeyed ledgers and for `read`): appends never re-resolve the key.
   */
  private ownerKey: Buffer | undefined;
  readonly verification: LedgerVerification;

  private constructor(path: string, header: LedgerHeader, headerHash: string, lastHash: string, entries: LedgerEntry[], verification: LedgerVerification, size: number) {
    this.path = path;
    this.header = header;
    this.headerHash = headerHash;
    this.lastHash = lastHash;
    this.size = size;
    this.accountant = withMetricDp(makeAccountant(header.accountant, { relation: header.relation ?? 'unrecorded' }));
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
  /** The relation every entry is priced under; 'unrecorded' for legacy ledgers. */
  get relation(): AccountingRelation {
    return this.header.relation ?? 'unrecorded';
  }
  /** The relation in words (legacy ledgers: "not recorded (legacy ledger) ..."). */
  get relationDescription(): string {
    return describeRelation(this.relation);
  }
  get randomness(): LedgerRandomness {
    return this.header.randomness;
  }
  /** False for ledgers from `read` and after `close()`. */
  get writable(): boolean {
    return this.lockKey !== undefined;
  }

  /**
   * Open (and verify) an existing ledger, or create a new one; takes the ledger's exclusive lock
   * (LedgerLockedError when another live process holds it). Always `close()` it, in `finally`.
   */
  static open(path: string, opts: LedgerOpenOptions): PrivacyLedger {
    if (opts.accountant !== 'rdp' && opts.accountant !== 'pld') throw new RangeError(`ledger accountant must be rdp or pld, got ${String(opts.accountant)}`);
    if (opts.relation !== undefined && !isNeighbouringRelation(opts.relation)) throw new RangeError(`ledger relation must be add-remove or replace-one, got ${JSON.stringify(opts.relation)}`);
    const randomness = normaliseRandomness(opts.randomness);
    if (opts.budget) {
      if (!(opts.budget.epsilon > 0)) throw new RangeError(`budget epsilon must be > 0, got ${opts.budget.epsilon}`);
      if (!(opts.budget.delta > 0 && opts.budget.delta < 1)) throw new RangeError(`budget delta must be in (0, 1), got ${opts.budget.delta}`);
    }
    const noSuchLedger = (): Error => new Error(`${path}: no such ledger (a resumed run needs the ledger of the run it continues; refusing to start a fresh one)`);
    // checked before locking (a missing resume creates no lock or folder) and again under the lock
    if (opts.create === false && !existsSync(path)) throw noSuchLedger();
    const lockKey = acquireLock(path);
    try {
      const exists = existsSync(path);
      if (!exists && opts.create === false) throw noSuchLedger();
      const l = exists ? PrivacyLedger.continueExisting(path, opts, randomness) : PrivacyLedger.create(path, opts, randomness);
      l.lockKey = lockKey;
      return l;
    } catch (e) {
      releaseLock(lockKey);
      throw e;
    }
  }

  private static continueExisting(path: string, opts: LedgerOpenOptions, randomness: LedgerRandomness | undefined): PrivacyLedger {
    const l = PrivacyLedger.read(path);
    const h = l.header;
    if (h.accountant !== opts.accountant) throw new LedgerTamperError(`${path}: ledger was created with the ${h.accountant} accountant, refusing to continue it with ${opts.accountant}`);
    if (opts.relation !== undefined) {
      if (h.relation === undefined) throw new RelationError(`${path}: legacy ledger records no neighbouring relation; refusing to continue it under ${opts.relation} (start a new run)`);
      if (h.relation !== opts.relation) throw new RelationError(`${path}: relation changed: ledger was recorded under ${h.relation}, this run asks for ${opts.relation}; refused`);
    }
    if (randomness !== undefined) {
      const last = l._entries.length ? l._entries[l._entries.length - 1].randomness : undefined;
      for (const was of [h.randomness, last]) {
        if (was && !sameRandomness(was, randomness)) throw new LedgerTamperError(`${path}: randomness changed: ledger was ${describeRandomnessShort(was)}, this run asks for ${describeRandomnessShort(randomness)}; refused`);
      }
    }
    if (h.tipKey) {
      const key = loadOwnerKey({ create: false });
      if (!key) throw new LedgerTamperError(`${path}: this ledger's tip is keyed with the owner key, which is not available at ${ownerKeyPath()}; refusing to append`);
      if (ownerKeyId(key) !== h.tipKey.ownerKeyId) throw new LedgerTamperError(`${path}: this ledger was keyed with owner key ${h.tipKey.ownerKeyId}, but ${ownerKeyPath()} holds key ${ownerKeyId(key)}; refusing to append`);
      l.ownerKey = key;
    }
    return l;
  }

  private static create(path: string, opts: LedgerOpenOptions, randomness: LedgerRandomness | undefined): PrivacyLedger {
    const key = loadOwnerKey();
    const header: LedgerHeader = {
      type: 'header',
      version: 1,
      accountant: opts.accountant,
      relation: opts.relation ?? 'add-remove',
      randomness: randomness ?? { kind: 'secure' },
      createdAt: new Date().toISOString(),
    };
    if (opts.budget) header.budget = { epsilon: opts.budget.epsilon, delta: opts.budget.delta };
    if (opts.meta) header.meta = opts.meta;
    header.tipKey = { alg: 'hmac-sha256', ownerKeyId: ownerKeyId(key) };
    const { line, hash } = sealLine(header as unknown as Record<string, unknown>, '');
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'wx');
    try {
      writeSync(fd, line + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    writeTip(path, 0, hash, { key, headerHash: hash });
    const l = new PrivacyLedger(path, header, hash, hash, [], { ok: true, entries: 0, tip: 'verified', keyed: true, macVerified: true, protection: PROTECTION_KEYED }, Buffer.byteLength(line) + 1);
    l.ownerKey = key;
    return l;
  }

  /** Read and verify a ledger without intending to append (e.g. `dplens budget show`); takes no lock. */
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
        if (obj.relation !== undefined && !isNeighbouringRelation(obj.relation)) throw new LedgerTamperError(`${path}: line 1: unknown neighbouring relation ${JSON.stringify(obj.relation)}`);
        header = { type: 'header', version: 1, accountant: obj.accountant, randomness: obj.randomness, createdAt: obj.createdAt };
        if (obj.relation !== undefined) header.relation = obj.relation;
        if (obj.budget) header.budget = obj.budget;
        if (obj.meta) header.meta = obj.meta;
        if (obj.tipKey !== undefined) {
          if (obj.tipKey?.alg !== 'hmac-sha256' || typeof obj.tipKey?.ownerKeyId !== 'string') throw new LedgerTamperError(`${path}: line 1: unknown tip key ${JSON.stringify(obj.tipKey)}`);
          header.tipKey = { alg: 'hmac-sha256', ownerKeyId: obj.tipKey.ownerKeyId };
        }
      } else {
        if (obj.type !== 'entry' || obj.seq !== i - 1) throw new LedgerTamperError(`${path}: line ${i + 1} is not entry #${i - 1}`);
        let event: DpEvent;
        try {
          event = validateEvent(obj.event);
        } catch (e) {
          throw new LedgerTamperError(`${path}: line ${i + 1}: invalid event (${(e as Error).message})`);
        }
        const entry: LedgerEntry = { seq: obj.seq, time: obj.time, event, method: obj.method, datasetFingerprint: obj.datasetFingerprint };
        if (obj.relation !== undefined) {
          // an entry recorded under another relation than the header's is refused, never composed
          if (obj.relation !== header!.relation) throw new RelationError(`${path}: line ${i + 1}: entry recorded under ${JSON.stringify(obj.relation)} but the ledger is ${header!.relation ?? 'a legacy ledger with no relation'}; refused`);
          entry.relation = obj.relation;
        }
        if (obj.randomness !== undefined) entry.randomness = obj.randomness;
        if (obj.resultLocation !== undefined) entry.resultLocation = obj.resultLocation;
        if (obj.meta !== undefined) entry.meta = obj.meta;
        entries.push(entry);
      }
      prev = m[1];
    }
    if (!header) throw new LedgerTamperError(`${path}: ledger has no header`);
    const headerHash = hashOfLine(lines[0]);
    const keyed = header.tipKey !== undefined;
    const tipPath = path + '.tip';
    let tipState: string;
    let macVerified = false;
    if (!existsSync(tipPath)) {
      // the tip is written right after the header, so only a crash in between leaves none, with 0 entries
      if (entries.length > 0) throw new LedgerTamperError(`${path}: tip file ${tipPath} is missing but the ledger has ${entries.length} entries: trailing entries may have been removed; the ledger cannot be trusted`);
      tipState = 'no tip file (the ledger has no entries)';
    } else {
      let tip: { entries: number; hash: string; mac?: string; ownerKeyId?: string };
      try {
        tip = JSON.parse(readFileSync(tipPath, 'utf8'));
      } catch {
        throw new LedgerTamperError(`${tipPath}: unreadable tip file`);
      }
      if (!Number.isInteger(tip.entries) || tip.entries < 0 || typeof tip.hash !== 'string') throw new LedgerTamperError(`${tipPath}: malformed tip file`);
      if (tip.entries > entries.length) throw new LedgerTamperError(`${path}: ledger truncated: the tip file records ${tip.entries} entries but only ${entries.length} are present`);
      // a crash between the fsync'd append and the tip update leaves the tip one entry behind
      const expected = tip.entries === entries.length ? prev : hashOfLine(lines[tip.entries]);
      if (expected !== tip.hash) throw new LedgerTamperError(`${path}: tip file does not match the ledger (entry ${tip.entries} hash differs): the ledger was rewritten`);
      tipState = 'verified';
      if (keyed) {
        if (typeof tip.mac !== 'string') throw new LedgerTamperError(`${tipPath}: the ledger is keyed but its tip file has no MAC: the tip was rewritten without the owner key`);
        const key = loadOwnerKey({ create: false });
        if (!key) tipState = `chain and tip hash verified; tip MAC NOT checked: the owner key is not available at ${ownerKeyPath()}`;
        else if (ownerKeyId(key) !== header.tipKey!.ownerKeyId) tipState = `chain and tip hash verified; tip MAC NOT checked: the owner key at ${ownerKeyPath()} (id ${ownerKeyId(key)}) is not the key this ledger was keyed with (id ${header.tipKey!.ownerKeyId})`;
        else if (tipMac(key, headerHash, tip.entries, tip.hash) !== tip.mac) throw new LedgerTamperError(`${tipPath}: tip MAC does not verify under the owner key: the ledger or its tip was rewritten by someone without the key`);
        else macVerified = true;
      }
    }
    const protection = !keyed ? PROTECTION_UNKEYED : macVerified ? PROTECTION_KEYED : 'keyed ledger, MAC not checked here: only accidental damage is detected by this check';
    return new PrivacyLedger(path, header, headerHash, prev, entries, { ok: true, entries: entries.length, tip: tipState, keyed, macVerified, protection }, Buffer.byteLength(text));
  }

  /**
   * Append one release (fsync'd before returning). With a budget in the header, throws BudgetError
   * (and writes nothing) if the event would push epsilon over it. Throws RelationError / AccountingError
   * for events the ledger's accountant cannot price under its relation.
   */
  record(input: LedgerRecordInput): LedgerEntry {
    const r = this.tryRecord(input);
    if (!r.ok) throw new BudgetError(r.reason);
    return r.entry;
  }

  /**
   * The budget gate: records the release when it fits the budget, else writes nothing and says why.
   * Anything else wrong (closed ledger, unpriceable event, another writer) still throws.
   */
  tryRecord(input: LedgerRecordInput): TryRecordResult {
    if (this.lockKey === undefined) throw new Error(`${this.path}: ledger is ${this._closed ? 'closed' : 'open read-only (PrivacyLedger.read)'}; open it with PrivacyLedger.open to record`);
    const event = validateEvent(input.event);
    if (typeof input.method !== 'string' || input.method === '') throw new RangeError('ledger record needs a method name');
    if (typeof input.datasetFingerprint !== 'string') throw new RangeError('ledger record needs a datasetFingerprint string');
    const b = this.header.budget;
    if (b) {
      const eps = this.accountant.epsilonIf(event, b.delta);
      if (eps > b.epsilon) return { ok: false, reason: `privacy budget exceeded: this release would bring epsilon to ${fmt(eps)} > budget ${b.epsilon} at delta ${b.delta} (spent so far ${fmt(this.accountant.getEpsilon(b.delta))}); not applied`, epsilonIfRecorded: eps, budget: { ...b } };
    } else if (!this.accountant.supports(event)) {
      // price it for the error message (RelationError / AccountingError) before writing anything
      this.accountant.epsilonIf(event, 1e-5);
      throw new AccountingError(`${this.header.accountant} accountant cannot price ${describeEvent(event)}; not recorded`);
    }
    const entry: LedgerEntry = { seq: this._entries.length, time: new Date().toISOString(), event, method: input.method, datasetFingerprint: input.datasetFingerprint };
    if (this.header.relation !== undefined) entry.relation = this.header.relation;
    entry.randomness = { ...this.header.randomness };
    if (input.resultLocation !== undefined) entry.resultLocation = input.resultLocation;
    if (input.meta !== undefined) entry.meta = input.meta;
    const { line, hash } = sealLine({ type: 'entry', ...entry }, this.lastHash);
    const bytes = Buffer.from(line + '\n', 'utf8');
    const fd = openSync(this.path, 'a');
    try {
      const size = fstatSync(fd).size;
      if (size !== this.size) throw new LedgerTamperError(`${this.path}: the ledger changed since it was opened (${size} bytes, expected ${this.size}): another writer? refusing to append`);
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.size += bytes.length;
    this.lastHash = hash;
    this.accountant.compose(event);
    this._entries.push(entry);
    writeTip(this.path, this._entries.length, hash, this.header.tipKey ? { key: this.ownerKey!, headerHash: this.headerHash } : undefined);
    return { ok: true, entry };
  }

  private _closed = false;
  /** Release the lock (idempotent). The object stays readable; `record` then throws. */
  close(): void {
    if (this.lockKey !== undefined) releaseLock(this.lockKey);
    this.lockKey = undefined;
    this._closed = true;
  }

  /** epsilon spent so far at delta (by the ledger's accountant). */
  spent(delta: number): number {
    return this.accountant.getEpsilon(delta);
  }
  spentDetails(delta: number): EpsilonDetails {
    return this.accountant.getEpsilonDetails(delta);
  }
  /** The metric-DP guarantee of the metric-DP entries (VMF), undefined when there are none. Never converted to (ε, δ). */
  metricSpent(): { epsilon: number; metric: 'angular' } | undefined {
    return this.accountant.metricSpent();
  }
  /** What the recorded entries guarantee: (ε, δ) at `delta`, metric DP, or none. */
  guarantee(delta: number): Guarantee {
    return guaranteeOf(this.accountant, delta);
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

const PROTECTION_KEYED = 'keyed (tip MAC verified with the owner key): detects accidental damage, truncation, missing tip, and edits by anyone without the owner key; not rewrites by the key holder, nor deletion or rollback of the whole folder';
const PROTECTION_UNKEYED = 'unkeyed (legacy ledger): detects accidental damage only; anyone who can write the folder can rewrite chain and tip';

function hashOfLine(line: string): string {
  const m = HASH_SUFFIX.exec(line);
  return m ? m[1] : '';
}

function writeTip(path: string, entries: number, hash: string, keyed: { key: Buffer; headerHash: string } | undefined): void {
  const tmp = path + '.tip.tmp';
  const tip: Record<string, unknown> = { entries, hash };
  if (keyed) {
    tip.mac = tipMac(keyed.key, keyed.headerHash, entries, hash);
    tip.ownerKeyId = ownerKeyId(keyed.key);
  }
  writeFileSync(tmp, JSON.stringify(tip) + '\n');
  renameSync(tmp, path + '.tip');
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(4) : String(x);
}
