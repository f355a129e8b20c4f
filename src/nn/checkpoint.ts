/**
 * The one tensor-checkpoint format of dplens: a JSON header plus one blob of little-endian float32
 * values, all tensors concatenated. The header holds `format` (a tag per kind of checkpoint), the
 * kind's own fields, a list of tensor entries `{ ...labels, shape, offset, length }` (offset/length
 * in floats, in blob order) and the blob's file name. Used for models (model.json + weights.bin,
 * spec.ts), optimizer/EMA state (train-state.json + train-state.bin) and generator checkpoints
 * (generator.json + generator.bin). Files written before this module (generator entries without
 * `length`, headers without a blob name) read unchanged.
 *
 * Every problem with a file (missing, not JSON, wrong format tag, truncated blob) is a
 * CheckpointError whose one-line message starts with the file's path.
 */
import { existsSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/files.js';

/** A problem with a checkpoint file; the message names the file. RangeError: bad input (CLI exit 2). */
export class CheckpointError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Where one kind of checkpoint keeps its parts. */
export interface CheckpointLayout {
  /** Header file name, e.g. 'model.json'. */
  header: string;
  /** Blob file name written (and read when the header names none), e.g. 'weights.bin'. */
  blob: string;
  /** Format tag written to and required in the header. */
  format: string;
  /** Header key of the tensor entry list (default 'params'). */
  entriesKey?: string;
  /** Header key naming the blob file (default 'weights'). */
  blobKey?: string;
}

/** One tensor of a checkpoint: its values plus labels (name, slot, …) stored in its entry. */
export interface CheckpointTensor {
  shape: number[];
  data: ArrayLike<number>;
  labels?: Record<string, unknown>;
}

export interface CheckpointEntry {
  shape: number[];
  offset: number;
  length: number;
  [label: string]: unknown;
}

export interface ReadCheckpoint {
  /** The header as written (format, the kind's own fields, entries, blob name). */
  header: Record<string, unknown>;
  /** Entries in header order, each with a view of its values in the blob. */
  tensors: { entry: CheckpointEntry; data: Float32Array }[];
  /** All values of the blob (the tensors' data are views into it). */
  blob: Float32Array;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** Writes `dir/<blob>` then `dir/<header>` (each atomically: the header never names a partial blob). */
export function writeCheckpoint(dir: string, layout: CheckpointLayout, fields: Record<string, unknown>, tensors: CheckpointTensor[]): void {
  if (!LITTLE_ENDIAN) throw new CheckpointError(`${join(dir, layout.blob)}: writing checkpoints needs a little-endian host`);
  const entries: CheckpointEntry[] = [];
  let total = 0;
  for (const t of tensors) {
    entries.push({ ...(t.labels ?? {}), shape: [...t.shape], offset: total, length: t.data.length });
    total += t.data.length;
  }
  const all = new Float32Array(total);
  tensors.forEach((t, i) => all.set(t.data, entries[i]!.offset));
  writeFileAtomic(join(dir, layout.blob), new Uint8Array(all.buffer));
  const header = { format: layout.format, ...fields, [layout.entriesKey ?? 'params']: entries, [layout.blobKey ?? 'weights']: layout.blob };
  writeFileAtomic(join(dir, layout.header), JSON.stringify(header, null, 1) + '\n');
}

/**
 * Parses the JSON file at `path`; a missing file or bad JSON is `fail(<one line naming path>)`
 * (a CheckpointError unless the caller has its own error class).
 */
export function readJsonFile(path: string, fail: (message: string) => Error = (m) => new CheckpointError(m)): unknown {
  if (!existsSync(path)) throw fail(`${path}: file not found`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw fail(`${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Reads the header of a checkpoint (checked: present, JSON, format tag). */
export function readCheckpointHeader(dir: string, layout: CheckpointLayout): Record<string, unknown> {
  const path = join(dir, layout.header);
  const j = readJsonFile(path);
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new CheckpointError(`${path}: expected a JSON object`);
  const h = j as Record<string, unknown>;
  if (h.format !== layout.format) throw new CheckpointError(`${path}: unknown format ${JSON.stringify(h.format)} (expected "${layout.format}")`);
  return h;
}

/** Reads and checks a whole checkpoint written by writeCheckpoint (or by the older writers). */
export function readCheckpoint(dir: string, layout: CheckpointLayout): ReadCheckpoint {
  const header = readCheckpointHeader(dir, layout);
  const headerPath = join(dir, layout.header);
  const list = header[layout.entriesKey ?? 'params'];
  if (!Array.isArray(list)) throw new CheckpointError(`${headerPath}: no tensor list "${layout.entriesKey ?? 'params'}"`);
  const named = header[layout.blobKey ?? 'weights'];
  const blobPath = join(dir, typeof named === 'string' ? named : layout.blob);
  if (!existsSync(blobPath)) throw new CheckpointError(`${blobPath}: file not found`);
  const raw = readFileSync(blobPath);
  if (raw.byteLength % 4 !== 0) throw new CheckpointError(`${blobPath} is truncated (${raw.byteLength} bytes is not a whole number of float32 values)`);
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const tensors = list.map((e: unknown, i: number) => {
    const r = (e ?? {}) as Record<string, unknown>;
    const shape = r.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new CheckpointError(`${headerPath}: tensor entry ${i} has no valid shape`);
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    // older generator checkpoints stored no length: it is the shape's size
    const length = r.length === undefined ? size : Number(r.length);
    const offset = Number(r.offset);
    if (!(Number.isInteger(offset) && offset >= 0 && length === size)) throw new CheckpointError(`${headerPath}: tensor entry ${i} has a bad offset/length`);
    if (offset + length > all.length) throw new CheckpointError(`${blobPath} is truncated`);
    const entry: CheckpointEntry = { ...r, shape: shape as number[], offset, length };
    return { entry, data: all.subarray(offset, offset + length) };
  });
  const end = tensors.reduce((m, t) => Math.max(m, t.entry.offset + t.entry.length), 0);
  if (all.length !== end) throw new CheckpointError(`${blobPath}: ${raw.byteLength} bytes, ${layout.header} expects ${end * 4} (corrupt checkpoint)`);
  return { header, tensors, blob: all };
}
