/**
 * Kernel teachers: non-parametric discriminators for DataLens (a dplens variant, not in the paper).
 *
 * Teacher i holds its disjoint shard S_i (same stable public rule as the neural teachers, P1/P2) and
 * scores a query (x, y) by the log kernel density of its own class-y records,
 *
 *     D_i(x, y) = log Σ_{r ∈ S_i, label(r) = y} exp(−‖x − r‖² / 2h²),
 *
 * the ideal discriminator's log-density term restricted to the teacher's data. Its image gradient is
 * the mean-shift vector ∇ₓD_i = Σ_r w_r (r − x) / h² with w = softmax over those records — the
 * direction "towards my class-y data" that a trained neural teacher only approximates after many
 * steps on 15 records. h = ∞ weights a teacher's records equally (its class mean minus x); with one
 * record per teacher (N = n) every bandwidth gives the same direction. A teacher without class-y
 * records abstains (votes 0 everywhere).
 *
 * Why it helps: the vote sum's signal grows with the number of agreeing teachers while the noise σ is
 * fixed by (ε, k, queries). A trained 15-record MLP teacher votes almost at random on most pixels;
 * a kernel teacher's vote expectation is (r − x)/b_i, large wherever the real class differs from x.
 * No teacher training is needed, so one generator step costs milliseconds of teacher time.
 *
 * Privacy is exactly TopAgg's: each teacher's vote vector (top-k, stochastic sign, bound b_i from its
 * own gradient only, P5) has ≤ k entries of ±1 and depends on its own shard only; abstaining is a
 * vote of 0, still within the bound. Replacing one record changes one shard, so the summed votes move
 * by ≤ 2√k in L2 and the run is charged DpEvents.topAgg per query like the neural variant.
 * The vote sums are private intermediates: they go straight to the noise step (P9).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../data/types.js';
import type { RandomSource } from '../privacy/index.js';
import type { ShardAssignment } from './shards.js';
import { addTeacherVotes, type TopAggParams } from './topagg.js';
import { tidyRead } from '../engine/tidy-read.js';
import { fillMulberry32 } from '../util/prng.js';

/**
 * Uniforms in [0,1) for (key, query, teacher): a splitmix32-style hash, then the mulberry32 stream
 * without a closure (util/prng.ts fillMulberry32) — calling `mulberry32()` (a closure per teacher and query) measured 33 % slower
 * on the 'all' vote path (3.27 vs 2.45 s per 30-query step, 60,000 teachers).
 */
export function ditherUniforms(key: number, query: number, teacher: number, out: Float64Array): void {
  let h = (key ^ Math.imul(query + 1, 0x9e3779b1) ^ Math.imul(teacher + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  fillMulberry32((h ^ (h >>> 16)) >>> 0, out);
}

function maxGap(starts: Int32Array): number {
  let m = 0;
  for (let v = 0; v + 1 < starts.length; v++) m = Math.max(m, starts[v + 1]! - starts[v]!);
  return m;
}

export interface KernelTeacherConfig {
  numTeachers: number;
  /** Kernel bandwidth h (L2 distance in [0,1] pixel units); Infinity = equal weights. */
  bandwidth: number;
  /**
   * 'all' (default): a teacher votes on every query of a class it holds. 'nearest': each of its
   * records only pulls the query of its class nearest to it in the same batch (a k-means assignment
   * step against the public generated batch), so different queries of a class move towards
   * different modes instead of all towards the class mean. Each teacher still casts ≤ k votes of
   * ±1 per query, so the sensitivity is unchanged.
   */
  assign?: 'all' | 'nearest';
  /**
   * G-PATE histograms as batched matmuls (default true) when every teacher holds exactly one record
   * (m = 1, a public fact; never decided from the class layout of the shards). false forces the
   * per-teacher reference loop; the tests check that the two agree.
   */
  batched?: boolean;
}

export class KernelTeacherEnsemble {
  readonly numTeachers: number;
  readonly dim: number;
  readonly numClasses: number;
  readonly bandwidth: number;
  readonly assign: 'all' | 'nearest';
  /** Shard pixels (0..255), record-major in shard order [N·m, d]. Private. */
  private readonly pixels: Uint8Array;
  /** For class c: the teachers holding at least one class-c record (ascending). */
  private readonly voters: Int32Array[];
  /** For class c and voter slot v: rows [start[v], start[v+1]) of `rowsByClass[c]` are that teacher's class-c records. */
  private readonly voterStart: Int32Array[];
  private readonly rowsByClass: Int32Array[];
  /** Scratch for teacherDirection: a teacher's selected record slots and their weights. */
  private readonly slots: Int32Array;
  private readonly slotWeights: Float64Array;
  private readonly batched: boolean;
  /** Records per shard m = ⌊n/N⌋: a public fact (n and N are public). */
  readonly shardSize: number;
  /** Per class, built on first use by the batched path: records as floats [n_c, d] and their squared norms. Private. */
  private classRecords: (tf.Tensor2D | undefined)[] = [];
  private classSqNorms: (Float64Array | undefined)[] = [];

  constructor(config: KernelTeacherConfig, data: ImageDataset, shards: ShardAssignment) {
    const N = config.numTeachers;
    if (shards.numTeachers !== N) throw new RangeError(`KernelTeacherEnsemble: shard assignment is for ${shards.numTeachers} teachers, config says ${N}`);
    if (!(config.bandwidth > 0)) throw new RangeError(`kernel teachers: bandwidth must be > 0 (Infinity = equal weights), got ${config.bandwidth}`);
    this.numTeachers = N;
    this.dim = data.height * data.width * data.channels;
    this.numClasses = data.numClasses;
    this.bandwidth = config.bandwidth;
    this.assign = config.assign ?? 'all';
    if (this.assign !== 'all' && this.assign !== 'nearest') throw new RangeError(`kernel teachers: assign must be all|nearest, got ${String(config.assign)}`);
    const d = this.dim;
    const m = shards.shardSize;
    const C = this.numClasses;
    this.pixels = new Uint8Array(N * m * d);
    const rows: number[][] = Array.from({ length: C }, () => []);
    const voters: number[][] = Array.from({ length: C }, () => []);
    const starts: number[][] = Array.from({ length: C }, () => []);
    for (let i = 0; i < N; i++) {
      const mine: number[][] = Array.from({ length: C }, () => []);
      for (let r = 0; r < m; r++) {
        const row = i * m + r;
        const rec = shards.members[row]!;
        this.pixels.set(data.train.images.subarray(rec * d, rec * d + d), row * d);
        const y = data.train.labels[rec]!;
        mine[y]!.push(row);
      }
      for (let c = 0; c < C; c++) {
        if (mine[c]!.length === 0) continue;
        voters[c]!.push(i);
        starts[c]!.push(rows[c]!.length);
        rows[c]!.push(...mine[c]!);
      }
    }
    this.voters = voters.map((v) => Int32Array.from(v));
    this.voterStart = starts.map((s, c) => Int32Array.from([...s, rows[c]!.length]));
    this.rowsByClass = rows.map((r) => Int32Array.from(r));
    this.slots = new Int32Array(Math.max(1, ...this.voterStart.map(maxGap)));
    this.slotWeights = new Float64Array(this.slots.length);
    this.batched = config.batched ?? true;
    this.shardSize = m;
  }

  /**
   * Un-noised TopAgg vote sums [B, d] for queries x ([B, d], pixels in [0,1]) with labels y.
   * Private intermediate: hand it to noisyAggregate and drop it.
   */
  voteSums(x: Float32Array, y: Int32Array, p: Pick<TopAggParams, 'k' | 'clip' | 'stochastic'>, rng: RandomSource): Int32Array {
    const d = this.dim;
    const B = this.checkQueries(x, y);
    const acc = new Int32Array(B * d);
    const g = new Float32Array(d);
    const scratch = new Float32Array(d);
    const picked = new Int32Array(p.k);
    const uniforms = new Float64Array(p.k);
    // Stochastic-sign dithering: teacher i's draws for query j come from a small PRNG keyed by
    // (fresh key, j, i), so they do not depend on which other teachers vote (abstentions are
    // data-dependent) — the same coupling the neural path gets from its fixed draw order. The
    // dithering needs no secrecy: the sensitivity bound holds for every realisation of the votes,
    // and the privacy comes from the Gaussian noise alone (drawn from `rng`).
    const key = p.stochastic ? rng.nextUint32() : 0;
    const owner = this.assign === 'nearest' ? this.nearestQuery(x, y) : null;
    for (let j = 0; j < B; j++) {
      const c = y[j]!;
      const voters = this.voters[c]!;
      for (let v = 0; v < voters.length; v++) {
        if (!this.teacherDirection(c, v, j, x, owner, g)) continue; // abstain on this query
        if (p.stochastic) ditherUniforms(key, j, voters[v]!, uniforms);
        addTeacherVotes(g, p, uniforms, 0, acc, j * d, scratch, picked);
      }
    }
    g.fill(0);
    return acc;
  }

  /** Validates queries x [B, d] and labels y [B]; returns B. */
  private checkQueries(x: Float32Array, y: Int32Array): number {
    const B = y.length;
    if (x.length !== B * this.dim) throw new RangeError(`kernel teachers: expected ${B}×${this.dim} query pixels, got ${x.length}`);
    for (const c of y) if (!Number.isInteger(c) || c < 0 || c >= this.numClasses) throw new RangeError(`kernel teachers: label ${c} out of range`);
    return B;
  }

  /**
   * Teacher slot v (of class c)'s mean-shift direction for query j into g: the weighted mean of
   * (r − x_j) over its class-c records — only those assigned to j under 'nearest' (equal weights),
   * softmax(−‖x_j − r‖²/2h²) weights under 'all' with a finite bandwidth, equal weights otherwise.
   * Returns false when the teacher abstains (no record for this query). Uses its own data only.
   */
  private teacherDirection(c: number, v: number, j: number, x: Float32Array, owner: Int32Array[] | null, g: Float32Array): boolean {
    const d = this.dim;
    const rows = this.rowsByClass[c]!;
    const a = this.voterStart[c]![v]!;
    const b = this.voterStart[c]![v + 1]!;
    const q = j * d;
    const sel = this.slots;
    let n = 0;
    for (let s = a; s < b; s++) if (!owner || owner[c]![s] === j) sel[n++] = s;
    if (n === 0) return false;
    const wt = this.slotWeights;
    wt.fill(1 / n, 0, n);
    if (!owner && n > 1 && Number.isFinite(this.bandwidth)) {
      const h2 = this.bandwidth * this.bandwidth;
      let mx = -Infinity;
      for (let i = 0; i < n; i++) {
        const o = rows[sel[i]!]! * d;
        let dist = 0;
        for (let t = 0; t < d; t++) {
          const u = this.pixels[o + t]! / 255 - x[q + t]!;
          dist += u * u;
        }
        wt[i] = -dist / (2 * h2);
        if (wt[i]! > mx) mx = wt[i]!;
      }
      let tot = 0;
      for (let i = 0; i < n; i++) tot += wt[i] = Math.exp(wt[i]! - mx);
      for (let i = 0; i < n; i++) wt[i]! /= tot;
    }
    g.fill(0);
    for (let i = 0; i < n; i++) {
      const o = rows[sel[i]!]! * d;
      const wi = wt[i]!;
      for (let t = 0; t < d; t++) g[t]! += wi * (this.pixels[o + t]! / 255 - x[q + t]!);
    }
    return true;
  }

  /**
   * G-PATE with kernel teachers: histograms [B, p, nb] of the voting teachers' projected, clipped
   * directions. Teacher i's direction for query j is its class-y mean-shift vector g (as in
   * voteSums), scaled to unit L2 norm by its own norm (P5), projected on the public P_j [d, p] and
   * binned over [−clip, clip]: one vote per voting teacher per coordinate; teachers without class-y
   * records (or, with 'nearest', without a record assigned to query j) abstain.
   * Private intermediate (P9).
   */
  projectedHistograms(x: Float32Array, y: Int32Array, proj: Float32Array, projDim: number, bins: number, clip: number): Int32Array {
    const d = this.dim;
    const B = this.checkQueries(x, y);
    if (proj.length !== B * d * projDim) throw new RangeError(`kernel teachers: expected ${B}×${d}×${projDim} projection entries, got ${proj.length}`);
    const hist = new Int32Array(B * projDim * bins);
    const g = new Float32Array(d);
    const u = new Float64Array(projDim);
    const width = (2 * clip) / bins;
    // The path is chosen from public facts only (issue 12 #10): with one record per teacher
    // (m = 1) every voter of every class holds exactly one record of it. Choosing per class from
    // the data ("does every voter hold a single class-c record?") made the timing of a step, and
    // so the run's wall time, depend on the private class layout of the shards.
    const slowClasses = new Set<number>();
    for (let c = 0; c < this.numClasses; c++) {
      if (this.batched && this.shardSize === 1) this.classHistograms(c, x, y, proj, projDim, bins, clip, hist);
      else slowClasses.add(c);
    }
    if (slowClasses.size === 0) return hist;
    const owner = this.assign === 'nearest' ? this.nearestQuery(x, y) : null;
    for (let j = 0; j < B; j++) {
      const c = y[j]!;
      if (!slowClasses.has(c)) continue;
      const P = proj.subarray(j * d * projDim, (j + 1) * d * projDim);
      for (let v = 0; v < this.voters[c]!.length; v++) {
        if (!this.teacherDirection(c, v, j, x, owner, g)) continue; // abstain
        let nrm = 0;
        for (let t = 0; t < d; t++) nrm += g[t]! * g[t]!;
        nrm = Math.sqrt(nrm);
        if (!(nrm > 0)) continue; // a record equal to the query has no direction: abstain
        u.fill(0);
        for (let t = 0; t < d; t++) {
          const gt = g[t]! / nrm;
          if (gt === 0) continue;
          const po = t * projDim;
          for (let l = 0; l < projDim; l++) u[l]! += gt * P[po + l]!;
        }
        for (let l = 0; l < projDim; l++) {
          const uu = Math.min(clip, Math.max(-clip, u[l]!));
          const m = Math.min(bins - 1, Math.floor((uu + clip) / width));
          hist[(j * projDim + l) * bins + m]!++;
        }
      }
    }
    g.fill(0);
    return hist;
  }

  /**
   * Batched projectedHistograms for class c when every voter holds one class-c record r (its
   * direction for query j is then r − x_j for any bandwidth). One matmul R_c·[P_j… | x_j…] gives
   * r·P_j and r·x_j for every record and class-c query; the unit direction's projection is
   * (r·P_j − x_j·P_j)/‖r − x_j‖ with ‖r − x_j‖² = ‖r‖² − 2r·x_j + ‖x_j‖², and under 'nearest' the
   * owner query is argmin_j(‖x_j‖² − 2r·x_j). Adds into hist. Private intermediate (P9).
   */
  private classHistograms(c: number, x: Float32Array, y: Int32Array, proj: Float32Array, p: number, bins: number, clip: number, hist: Int32Array): void {
    const d = this.dim;
    const qs: number[] = [];
    for (let j = 0; j < y.length; j++) if (y[j] === c) qs.push(j);
    const n = this.rowsByClass[c]!.length;
    if (!qs.length || n === 0) return;
    const R = this.recordMatrix(c);
    const rr = this.classSqNorms[c]!;
    const q = qs.length;
    const cols = q * (p + 1);
    const M = new Float32Array(d * cols);
    const xP = new Float64Array(q * p);
    const xx = new Float64Array(q);
    for (let a = 0; a < q; a++) {
      const j = qs[a]!;
      const po = j * d * p;
      for (let t = 0; t < d; t++) {
        const xt = x[j * d + t]!;
        M[t * cols + q * p + a] = xt;
        xx[a]! += xt * xt;
        for (let l = 0; l < p; l++) {
          const v = proj[po + t * p + l]!;
          M[t * cols + a * p + l] = v;
          xP[a * p + l]! += xt * v;
        }
      }
    }
    const A = tidyRead(() => tf.matMul(R, tf.tensor2d(M, [d, cols]))) as Float32Array;
    const width = (2 * clip) / bins;
    const nearest = this.assign === 'nearest';
    for (let s = 0; s < n; s++) {
      const ro = s * cols;
      let a0 = 0;
      let a1 = q;
      if (nearest) {
        let bd = Infinity;
        for (let a = 0; a < q; a++) {
          const dist = xx[a]! - 2 * A[ro + q * p + a]!;
          if (dist < bd) [bd, a0] = [dist, a];
        }
        a1 = a0 + 1;
      }
      for (let a = a0; a < a1; a++) {
        const n2 = rr[s]! - 2 * A[ro + q * p + a]! + xx[a]!;
        if (!(n2 > 1e-9)) continue; // the record equals the query: no direction, abstain
        const inv = 1 / Math.sqrt(n2);
        const ho = qs[a]! * p;
        for (let l = 0; l < p; l++) {
          const u = Math.min(clip, Math.max(-clip, (A[ro + a * p + l]! - xP[a * p + l]!) * inv));
          const m = Math.min(bins - 1, Math.floor((u + clip) / width));
          hist[(ho + l) * bins + m]!++;
        }
      }
    }
    A.fill(0);
  }

  /** Class c's records as a float tensor [n_c, d] in [0, 1] (built once, kept), with squared norms. */
  private recordMatrix(c: number): tf.Tensor2D {
    const have = this.classRecords[c];
    if (have) return have;
    const d = this.dim;
    const rows = this.rowsByClass[c]!;
    const f = new Float32Array(rows.length * d);
    const nr = new Float64Array(rows.length);
    for (let s = 0; s < rows.length; s++) {
      const o = rows[s]! * d;
      let acc = 0;
      for (let t = 0; t < d; t++) {
        const v = this.pixels[o + t]! / 255;
        f[s * d + t] = v;
        acc += v * v;
      }
      nr[s] = acc;
    }
    // tfjs keeps `f` as the tensor's storage (no copy): do not clear it here; dispose() frees it.
    const R = tf.tensor2d(f, [rows.length, d]);
    this.classRecords[c] = R;
    this.classSqNorms[c] = nr;
    return R;
  }

  /**
   * For 'nearest': owner[c][s] = the query (index into the batch) with label c nearest to record
   * rowsByClass[c][s], or -1 when the batch has no class-c query. Uses only the public queries and
   * each record itself.
   */
  private nearestQuery(x: Float32Array, y: Int32Array): Int32Array[] {
    const d = this.dim;
    return this.rowsByClass.map((rows, c) => {
      const qs: number[] = [];
      for (let j = 0; j < y.length; j++) if (y[j] === c) qs.push(j);
      const out = new Int32Array(rows.length).fill(-1);
      if (!qs.length) return out;
      for (let s = 0; s < rows.length; s++) {
        const o = rows[s]! * d;
        let best = -1;
        let bd = Infinity;
        for (const j of qs) {
          let dist = 0;
          for (let t = 0; t < d; t++) {
            const u = this.pixels[o + t]! / 255 - x[j * d + t]!;
            dist += u * u;
          }
          if (dist < bd) [bd, best] = [dist, j];
        }
        out[s] = best;
      }
      return out;
    });
  }

  dispose(): void {
    this.pixels.fill(0);
    for (const R of this.classRecords) {
      if (!R) continue;
      (R.dataSync() as Float32Array).fill(0); // private pixels: clear before the memory is freed
      R.dispose();
    }
    this.classRecords = [];
    for (const nr of this.classSqNorms) nr?.fill(0);
    this.classSqNorms = [];
  }
}
