/**
 * The data owner's secret key, kept OUTSIDE every run folder.
 *
 * Why: a run folder is a release. A plain SHA-256 of the training data in a released file lets the
 * standard DP adversary (who knows every record but one) hash each candidate dataset and learn
 * membership, so released files carry only `keyedFingerprint(sha256)` = HMAC-SHA256 under this key,
 * which only the data owner can recompute. The same key MACs the ledger's tip file, so a writer
 * who can edit a run folder but cannot read this key cannot truncate a ledger and forge its tip.
 *
 * Location: `$DPLENS_OWNER_KEY_FILE`, else `~/.config/dplens/owner.key`. Created on first use with
 * 32 bytes from the OS CSPRNG (hex), mode 0600, in a 0700 folder; never written anywhere else.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export class OwnerKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OwnerKeyError';
  }
}

/** Where the owner key lives: `$DPLENS_OWNER_KEY_FILE` or `~/.config/dplens/owner.key`. */
export function ownerKeyPath(): string {
  const env = process.env.DPLENS_OWNER_KEY_FILE;
  if (env !== undefined && env !== '') return env;
  return join(homedir(), '.config', 'dplens', 'owner.key');
}

const cache = new Map<string, Buffer>();

function parseKey(path: string, text: string): Buffer {
  const hex = text.trim();
  if (!/^[0-9a-f]{64,}$/i.test(hex) || hex.length % 2 !== 0) throw new OwnerKeyError(`${path}: not a dplens owner key (expected at least 64 hex digits)`);
  return Buffer.from(hex, 'hex');
}

/**
 * The owner key (32+ bytes). Creates it (0600) when missing unless `create: false`, in which case
 * a missing key gives `undefined` (used by verifiers that can run without the key).
 */
export function loadOwnerKey(opts: { create: false }): Buffer | undefined;
export function loadOwnerKey(opts?: { create?: true }): Buffer;
export function loadOwnerKey(opts: { create?: boolean } = {}): Buffer | undefined {
  const path = ownerKeyPath();
  const hit = cache.get(path);
  if (hit) return hit;
  if (!existsSync(path)) {
    if (opts.create === false) return undefined;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      // another process created it first: use theirs
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new OwnerKeyError(`${path}: cannot create the dplens owner key (${(e as Error).message})`);
      return loadOwnerKey(opts as { create: false });
    }
    try {
      writeSync(fd, randomBytes(32).toString('hex') + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new OwnerKeyError(`${path}: cannot read the dplens owner key (${(e as Error).message})`);
  }
  const key = parseKey(path, text);
  cache.set(path, key);
  return key;
}

/** HMAC-SHA256 hex of `message` under the owner key, with a domain-separation label. */
export function ownerMac(key: Buffer, label: string, message: string): string {
  return createHmac('sha256', key).update(label + '\n' + message).digest('hex');
}

/** Short public identifier of a key (so a verifier can say "keyed with another owner key"). */
export function ownerKeyId(key: Buffer): string {
  return ownerMac(key, 'dplens-owner-key-id', '').slice(0, 16);
}

/**
 * Keyed dataset fingerprint: HMAC-SHA256(owner key, raw SHA-256 hex of the data). Only the data
 * owner can recompute it, so it can appear in released files (ledger, config, report).
 */
export function keyedFingerprint(rawSha256Hex: string, key: Buffer = loadOwnerKey()): string {
  if (typeof rawSha256Hex !== 'string' || rawSha256Hex === '') throw new RangeError('keyedFingerprint needs the raw fingerprint string');
  return ownerMac(key, 'dplens-dataset-fingerprint', rawSha256Hex);
}
