/**
 * Checkpoints of generators whose whole state is a small JSON object (class-mean, psg): written
 * atomically as DIR/generator.json (a kill mid-write leaves the previous checkpoint), read back with
 * a format tag so that a folder of another method or version is refused with a one-line error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/files.js';

/** Writes `state` (which carries its `format` tag) to dir/generator.json atomically. */
export function saveJsonState(dir: string, state: { format: string }): void {
  writeFileAtomic(join(dir, 'generator.json'), JSON.stringify(state));
}

/** Reads dir/generator.json written by saveJsonState; refuses unreadable files and other formats. */
export function readJsonState<T extends { format: string }>(dir: string, method: string, format: string): T {
  const path = join(dir, 'generator.json');
  let s: T;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${path}: not a readable ${method} generator (${(e as Error).message})`);
  }
  if (s?.format !== format) throw new Error(`${path}: unknown format ${String(s?.format)} (expected ${format})`);
  return s;
}
