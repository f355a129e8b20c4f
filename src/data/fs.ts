import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { DataError } from './types.js';

/**
 * File-system access for the data layer. Every failure becomes a one-line DataError that starts
 * with the path and says what went wrong in words (never a raw ENOENT/EEXIST stack).
 */

const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a folder, not a file',
  ENOTDIR: 'a parent path is not a folder',
  EEXIST: 'a file is in the way of a folder that must be created',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
};

/** "EACCES: permission denied" for a Node fs error ("ENOENT" alone); the message for anything else. */
export function fsErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  // A missing file keeps the short form `(ENOENT)` that the CLI contract's error lines use.
  if (code === 'ENOENT') return code;
  if (code) return `${code}: ${ERRNO_WORDS[code] ?? (e as Error).message.replace(/^[A-Z]+: /, '').split(',')[0]}`;
  return e instanceof Error ? e.message : String(e);
}

/** Reads a whole file as bytes; DataError `FILE: cannot read (CODE: words)` on failure. */
export function readFileBytes(file: string): Uint8Array {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch (e) {
    throw new DataError(`${file}: cannot read (${fsErrorText(e)})`);
  }
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads a UTF-8 text file; DataError naming the file on failure. */
export function readFileText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: cannot read (${fsErrorText(e)})`);
  }
}

/** Folder entries (names); DataError naming the folder on failure. */
export function listFolder(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    throw new DataError(`${dir}: cannot read folder (${fsErrorText(e)})`);
  }
}

/** stat() that answers undefined for a missing path (a dangling link included), DataError otherwise. */
export function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataError(`${path}: cannot read (${fsErrorText(e)})`);
  }
}

/** True when `path` is an existing folder (following links). */
export function isFolder(path: string): boolean {
  return statOrUndefined(path)?.isDirectory() ?? false;
}

/**
 * Writes a file atomically (temporary file + fsync + rename, util/files), creating its folder;
 * DataError `FILE: cannot write (CODE: words)` on failure, and no temporary file left behind.
 */
export function writeFileBytes(file: string, data: Uint8Array | string): void {
  try {
    writeFileAtomic(file, data); // removes its temporary file on failure
  } catch (e) {
    throw new DataError(`${file}: cannot write (${fsErrorText(e)})`);
  }
}
