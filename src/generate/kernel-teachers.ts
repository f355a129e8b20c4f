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
import type { ImageDataset } from '../data/types.js';
import type { RandomSource } from '../privacy/index.js';
import type { ShardAssignment } from './shards.js';
import { addTeacherVotes, type TopAggParams } from './topagg.js';

/** k uniforms in [0,1) for (key, query, teacher): splitmix32-style hashing, then mulberry32. */
export function ditherUniforms(key: number, query: number, teacher: number, out: Float64Array): void {
  let h = (key ^ Math.imul(query + 1, 0x9e3779b1) ^ Math.imul(teacher + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  let a = (h ^ (h >>> 16)) >>> 0;
  for (let s = 0; s < out.length; s++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[s] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
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
  }

  /**
   * Un-noised TopAgg vote sums [B, d] for queries x ([B, d], pixels in [0,1]) with labels y.
   * Private intermediate: hand it to noisyAggregate and drop it.
   */
  voteSums(x: Float32Array, y: Int32Array, p: Pick<TopAggParams, 'k' | 'clip' | 'stochastic'>, rng: RandomSource): Int32Array {
    const d = this.dim;
    const B = y.length;
    if (x.length !== B * d) throw new RangeError(`kernel teachers: expected ${B}×${d} query pixels, got ${x.length}`);
    const acc = new Int32Array(B * d);
    const g = new Float32Array(d);
    const scratch = new Float32Array(d);
    const picked = new Int32Array(p.k);
    const h2 = this.bandwidth * this.bandwidth;
    const inf = !Number.isFinite(this.bandwidth);
    const uniforms = new Float64Array(p.k);
    const logw: number[] = [];
    const sel = new Int32Array(Math.max(1, ...this.voterStart.map((st) => maxGap(st))));
    // Stochastic-sign dithering: teacher i's draws for query j come from a small PRNG keyed by
    // (fresh key, j, i), so they do not depend on which other teachers vote (abstentions are
    // data-dependent) — the same coupling the neural path gets from its fixed draw order. The
    // dithering needs no secrecy: the sensitivity bound holds for every realisation of the votes,
    // and the privacy comes from the Gaussian noise alone (drawn from `rng`).
    const key = p.stochastic ? rng.nextUint32() : 0;
    const owner = this.assign === 'nearest' ? this.nearestQuery(x, y) : null;
    for (let j = 0; j < B; j++) {
      const c = y[j]!;
      if (!Number.isInteger(c) || c < 0 || c >= this.numClasses) throw new RangeError(`kernel teachers: label ${c} out of range`);
      const q = x.subarray(j * d, j * d + d);
      const voters = this.voters[c]!;
      const start = this.voterStart[c]!;
      const rows = this.rowsByClass[c]!;
      for (let v = 0; v < voters.length; v++) {
        if (p.stochastic) ditherUniforms(key, j, voters[v]!, uniforms);
        const a = start[v]!;
        const b = start[v + 1]!;
        if (owner) {
          // Keep only this teacher's records assigned to query j (rows stay contiguous per teacher).
          let n = 0;
          for (let s = a; s < b; s++) if (owner[c]![s] === j) sel[n++] = rows[s]!;
          if (n === 0) continue; // abstain on this query
          g.fill(0);
          for (let s = 0; s < n; s++) {
            const o = sel[s]! * d;
            for (let t = 0; t < d; t++) g[t]! += (this.pixels[o + t]! / 255 - q[t]!) / n;
          }
          addTeacherVotes(g, p, uniforms, 0, acc, j * d, scratch, picked);
          continue;
        }
        g.fill(0);
        if (b - a === 1 || inf) {
          const wgt = 1 / (b - a);
          for (let s = a; s < b; s++) {
            const o = rows[s]! * d;
            for (let t = 0; t < d; t++) g[t]! += wgt * (this.pixels[o + t]! / 255 - q[t]!);
          }
        } else {
          // Softmax weights over this teacher's class-c records (its own data only).
          logw.length = 0;
          let mx = -Infinity;
          for (let s = a; s < b; s++) {
            const o = rows[s]! * d;
            let dist = 0;
            for (let t = 0; t < d; t++) {
              const u = this.pixels[o + t]! / 255 - q[t]!;
              dist += u * u;
            }
            const lw = -dist / (2 * h2);
            logw.push(lw);
            if (lw > mx) mx = lw;
          }
          let tot = 0;
          for (let s = 0; s < logw.length; s++) tot += logw[s] = Math.exp(logw[s]! - mx);
          for (let s = a; s < b; s++) {
            const o = rows[s]! * d;
            const wgt = logw[s - a]! / tot;
            for (let t = 0; t < d; t++) g[t]! += wgt * (this.pixels[o + t]! / 255 - q[t]!);
          }
        }
        addTeacherVotes(g, p, uniforms, 0, acc, j * d, scratch, picked);
      }
    }
    g.fill(0);
    return acc;
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
    const B = y.length;
    if (x.length !== B * d) throw new RangeError(`kernel teachers: expected ${B}×${d} query pixels, got ${x.length}`);
    if (proj.length !== B * d * projDim) throw new RangeError(`kernel teachers: expected ${B}×${d}×${projDim} projection entries, got ${proj.length}`);
    const hist = new Int32Array(B * projDim * bins);
    const g = new Float64Array(d);
    const u = new Float64Array(projDim);
    const width = (2 * clip) / bins;
    const owner = this.assign === 'nearest' ? this.nearestQuery(x, y) : null;
    for (let j = 0; j < B; j++) {
      const c = y[j]!;
      if (!Number.isInteger(c) || c < 0 || c >= this.numClasses) throw new RangeError(`kernel teachers: label ${c} out of range`);
      const voters = this.voters[c]!;
      const start = this.voterStart[c]!;
      const rows = this.rowsByClass[c]!;
      const P = proj.subarray(j * d * projDim, (j + 1) * d * projDim);
      for (let v = 0; v < voters.length; v++) {
        g.fill(0);
        let n = 0;
        for (let s = start[v]!; s < start[v + 1]!; s++) {
          if (owner && owner[c]![s] !== j) continue;
          n++;
          const o = rows[s]! * d;
          for (let t = 0; t < d; t++) g[t]! += this.pixels[o + t]! / 255 - x[j * d + t]!;
        }
        if (n === 0) continue; // abstain
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

  memoryBytes(): number {
    return this.pixels.byteLength + this.rowsByClass.reduce((a, r) => a + r.byteLength, 0);
  }

  dispose(): void {
    this.pixels.fill(0);
  }
}
