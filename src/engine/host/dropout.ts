/**
 * Inverted-dropout masks for the evaluation classifiers (issue 18). The masks come from
 * mulberry32 streams in int32 arithmetic (the uint32 form `>>> 0` made V8 keep the state as
 * doubles: 34 vs ~3 ms per eval step); each value is 1/(1 − rate) with probability 1 − rate,
 * else 0. Per-example streams (`dropoutMaskRowsHost`) make a batch cut into data-parallel shards
 * draw the unsplit batch's masks.
 *
 * Rows in groups of four are drawn on WebAssembly SIMD where available (`dropMask4` in simd.ts,
 * the same bits; the eval CNN's two masks at b 128: 4.05 → 1.60 ms CPU).
 *
 * Measured and not kept: applying the mask in a JS host pass with a hand-written backward
 * (no mask tensor, no Multiply kernels) cost more CPU than ORT's Multiply (both dropouts of the
 * eval CNN at b 128, forward+backward: 18.5–22.0 vs 12.8–15.0 ms CPU min, load 11.5).
 */

import { HostArena, simdAvailable } from './simd.js';

/** m[from..to) = inverted-dropout values (0 or 1/(1 − rate)) from the mulberry32 stream of `seed`. */
export function fillDropoutMask(m: Float32Array, from: number, to: number, rate: number, seed: number): void {
  const keep = 1 / (1 - rate);
  // The unsigned test u >= threshold is the signed test after flipping both sign bits.
  const threshold = Math.min(Math.floor(rate * 4294967296), 4294967295);
  const thresholdFlipped = (threshold ^ 0x80000000) | 0;
  let s = seed | 0;
  for (let i = from; i < to; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= (t + Math.imul(t ^ (t >>> 7), t | 61)) | 0;
    m[i] = keep * +(((t ^ (t >>> 14) ^ 0x80000000) | 0) >= thresholdFlipped);
  }
}

/** Seed of the mask stream of the example at position `row` of a batch, for mask seed `seed`. */
export function dropoutRowSeed(seed: number, row: number): number {
  return (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(row + 1, 0x85ebca6b)) | 0;
}

/**
 * Per-example mask of a [rows, …] tensor of n values: row r is drawn from
 * `dropoutRowSeed(seed, row0 + r)`, so cutting a batch into shards does not change any mask.
 */
export function dropoutMaskRowsHost(n: number, rows: number, rate: number, seed: number, row0: number): Float32Array {
  const per = rows > 0 ? n / rows : 0;
  const m = new Float32Array(n);
  const groups = rows >> 2;
  const done = groups > 0 && per > 0 && simdAvailable() ? 4 * masksSimd(m, groups, per, rate, seed, row0) : 0;
  for (let r = done; r < rows; r++) fillDropoutMask(m, r * per, (r + 1) * per, rate, dropoutRowSeed(seed, row0 + r));
  return m;
}

let arena: HostArena | undefined;

/**
 * Rows 0 … 4·groups − 1 of m on WebAssembly SIMD (`dropMask4`: four row streams per vector, the
 * same bits as `fillDropoutMask`). Returns the number of groups drawn (0 when the arena cannot
 * hold them: the caller then draws every row in JS).
 */
function masksSimd(m: Float32Array, groups: number, per: number, rate: number, seed: number, row0: number): number {
  arena ??= new HostArena();
  const offs = arena.reserve([4 * groups, 4 * groups * per]);
  if (!offs) return 0;
  const [so, mo] = offs as [number, number];
  const seeds = arena.i32;
  for (let r = 0; r < 4 * groups; r++) seeds[so + r] = dropoutRowSeed(seed, row0 + r);
  const threshold = Math.min(Math.floor(rate * 4294967296), 4294967295) | 0;
  const keepBits = new Int32Array(new Float32Array([1 / (1 - rate)]).buffer)[0]!;
  arena.k.dropMask4(mo * 4, groups, per * 4, so * 4, threshold, keepBits);
  m.set(arena.f32.subarray(mo, mo + 4 * groups * per));
  return groups;
}
