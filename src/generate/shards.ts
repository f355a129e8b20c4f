/**
 * Disjoint teacher shards by a fixed, data-independent rule (pitfalls P1, P2).
 *
 * Records are permuted once with a PRNG seeded by a *public* constant (never by the data, never by
 * the secure run seed), then cut into N contiguous slices of m = floor(count / N) records; the
 * remainder is dropped. The assignment depends only on (count, N, seed): replacing one record
 * changes the contents of exactly one shard and moves nobody else, so one changed record can alter
 * at most one teacher — the fact every sensitivity bound in DataLens and G-PATE rests on.
 */
import { mulberry32 } from '../util/prng.js';

/** Public seed of the shard permutation (the reference code shuffles with seed 307 too). */
export const PUBLIC_SHARD_SEED = 307;

export interface ShardAssignment {
  numTeachers: number;
  /** Records per shard. */
  shardSize: number;
  /** shards[i * shardSize + r] = record index of row r of teacher i's shard. */
  members: Int32Array;
  /** shardOf[record] = teacher index, or -1 when the record is dropped (remainder). */
  shardOf: Int32Array;
}

/** mulberry32: small deterministic PRNG for the public permutation (not for DP noise). */
export { mulberry32 };

export function assignShards(count: number, numTeachers: number, seed = PUBLIC_SHARD_SEED): ShardAssignment {
  if (!Number.isInteger(count) || count <= 0) throw new RangeError(`assignShards: record count must be a positive integer, got ${count}`);
  if (!Number.isInteger(numTeachers) || numTeachers <= 0) throw new RangeError(`assignShards: teacher count must be a positive integer, got ${numTeachers}`);
  const shardSize = Math.floor(count / numTeachers);
  if (shardSize < 1) throw new RangeError(`assignShards: ${numTeachers} teachers need at least ${numTeachers} records, got ${count}`);
  const perm = new Int32Array(count);
  for (let i = 0; i < count; i++) perm[i] = i;
  const rnd = mulberry32(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  const members = perm.slice(0, numTeachers * shardSize);
  const shardOf = new Int32Array(count).fill(-1);
  for (let p = 0; p < members.length; p++) shardOf[members[p]!] = Math.floor(p / shardSize);
  return { numTeachers, shardSize, members, shardOf };
}
