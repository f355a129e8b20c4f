/**
 * Compressed client uploads for DP-FedAvg under secure aggregation (issue 17 item 6), with
 * client-side error feedback (Seide et al. 2014; Karimireddy et al. 2019, "Error feedback fixes
 * SignSGD"): each client adds its residual e_u to its update, v = Δ_u + e_u, uploads the
 * compressed y = C(v) (length m < d) and keeps e_u ← v − D(C(v)) for the next round.
 *
 * Only schemes whose compressed vectors SUM meaningfully under secure aggregation are offered:
 * every client must use the same public, data-independent "plan" each round (the support or the
 * hashes), because secure aggregation adds the clients' m-vectors coordinate by coordinate and
 * reveals only their (noisy) sum. Per-client top-k is NOT offered: its index set depends on the
 * client's data, so it would have to be sent in the clear (leaking it) and sums of vectors on
 * different supports cannot be added sparsely.
 *   randk        S = k random coordinates from a public per-round seed (m = k); C(v) = v|_S,
 *                D embeds back. The server learns Σ_u clip(v_u|_S) + noise, and S (public).
 *   topk-shared  S = the ⌊k/2⌋ coordinates of largest |previous global update| (public: it is
 *                post-processing of the released models) plus ⌈k/2⌉ random others from the round
 *                seed (the previous update is supported on the previous S, so pure top-k would
 *                freeze S after one round and the other coordinates would never be sent). The
 *                server chooses S and sends it; a dishonest S only changes WHICH sum is
 *                released, never the per-client bound below.
 *   sketch       count sketch with R = 3 rows × w columns (m = R·w), bucket/sign hashes from the
 *                public round seed (Charikar et al. 2002; FetchSGD, Rothchild et al. 2020). A
 *                sketch is linear, so Σ_u sketch(v_u) = sketch(Σ_u v_u): the server learns the
 *                noisy sketch of the sum (not the sum itself). D: the mean over rows of the
 *                signed counters (linear and unbiased, so the server's decoding of the sum is the
 *                sum of the clients' own decodings and error feedback stays exact). FetchSGD's
 *                median + top-k unsketch was measured worse here (cosine to a real MNIST update
 *                at R = 10: 0.14 vs 0.31; the update is not heavy-hitter sparse).
 *   sign         C(v) = (c/√d)·sign(v) (m = d): the server learns the noisy (scaled) vote sum.
 *                Under our Z_2^32 secure aggregation every coordinate still costs 32 bits, so
 *                sign gives NO byte saving here (a smaller ring would; secagg.ts is fixed at
 *                2^32): it is offered for its error-feedback / robustness behaviour, bytes
 *                reported honestly.
 *
 * Sensitivity. The DP guarantee stays on the summed, noised m-vector: each client CLIPS ITS
 * COMPRESSED VECTOR y to ‖y‖₂ <= c (clip after compression — a sketch of a norm-c vector can be
 * longer than c when coordinates collide, and the residual makes v unbounded), then the ordinary
 * DDG encoding of dpfedavg.ts runs in dimension m: the rounded vector has norm < c/γ + √m, so
 * replacing one client moves the sum by at most Δ₂ = 2(c/γ + √m), whatever the residual or the
 * plan (the plan is public and data-independent). Sign needs no clipping (‖y‖ = c·‖sign‖/√d <= c).
 * The residual never leaves the client; it only changes what the client's (clipped, noised)
 * contribution is, which the per-round bound already covers for every possible input, so rounds
 * compose adaptively as before. Decompression is post-processing of the released sum.
 *
 * The residual keeps only the compression error v − D(C(v)) of the UNclipped y: the clipping
 * error is discarded (as in plain DP-FedAvg), so the residual stays bounded by the compressor.
 */
import { seededRandom } from '../privacy/index.js';
import { randomInt } from '../privacy/index.js';

export const COMPRESS_SCHEMES = ['none', 'sketch', 'randk', 'topk-shared', 'sign'] as const;
export type CompressScheme = (typeof COMPRESS_SCHEMES)[number];

/** Rows of the count sketch (decoded by the mean over rows). */
export const SKETCH_ROWS = 3;

export interface CompressSpec {
  scheme: CompressScheme;
  /** Upload reduction factor R: m ≈ d / R (ignored by none and sign). */
  ratio: number;
}

/** One round's public compression plan; identical on the server and every client. */
export interface CompressPlan {
  scheme: CompressScheme;
  /** Model dimension d. */
  dim: number;
  /** Length m of the uploaded (and securely summed) vector. */
  m: number;
  /** Clip norm c (sign: the scale c/√d). */
  clip: number;
  /** randk / topk-shared: the sorted support S (|S| = m). */
  support?: Int32Array;
  /** sketch: bucket[r·d + j] ∈ [0, w) and sign[r·d + j] ∈ {±1}. */
  bucket?: Int32Array;
  sign?: Int8Array;
  cols?: number;
}

/** m for a scheme: d for none/sign, ⌈d/R⌉ for randk/topk-shared, R_rows·⌈d/(R·R_rows)⌉ for sketch. */
export function compressedLength(spec: CompressSpec, dim: number): number {
  checkSpec(spec);
  if (spec.scheme === 'none' || spec.scheme === 'sign') return dim;
  if (spec.scheme === 'sketch') return SKETCH_ROWS * Math.max(1, Math.ceil(dim / (spec.ratio * SKETCH_ROWS)));
  return Math.max(1, Math.min(dim, Math.ceil(dim / spec.ratio)));
}

export function checkSpec(spec: CompressSpec): void {
  if (!(COMPRESS_SCHEMES as readonly string[]).includes(spec.scheme)) throw new RangeError(`--compress must be one of ${COMPRESS_SCHEMES.join('|')}, got ${String(spec.scheme)}`);
  if (!(spec.ratio >= 1 && Number.isFinite(spec.ratio))) throw new RangeError(`--compress-ratio must be a finite number >= 1, got ${spec.ratio}`);
}

/** k coordinates out of d, uniformly without replacement, from a public seed; sorted. */
function randomSupport(dim: number, k: number, seed: number): Int32Array {
  const rng = seededRandom(seed >>> 0);
  const idx = Int32Array.from({ length: dim }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + randomInt(rng, dim - i);
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx.slice(0, k).sort();
}

/** A public random order of [0, d) from a seed (Fisher–Yates). */
function randomSupportOrder(dim: number, seed: number): Int32Array {
  const rng = seededRandom(seed >>> 0);
  const idx = Int32Array.from({ length: dim }, (_, i) => i);
  for (let i = dim - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx;
}

/** Indices of the k largest |x_j| (ties: smaller index first); sorted. */
export function topKIndices(x: ArrayLike<number>, k: number): Int32Array {
  const idx = Array.from({ length: x.length }, (_, i) => i);
  idx.sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  return Int32Array.from(idx.slice(0, k)).sort();
}

/**
 * The round's plan from public information only: the spec, d, a public round seed, and (topk-shared)
 * the previous global update. Never called with any client's data.
 */
export function planRound(spec: CompressSpec, dim: number, clip: number, seed: number, previousUpdate?: ArrayLike<number>): CompressPlan {
  const m = compressedLength(spec, dim);
  const base = { scheme: spec.scheme, dim, m, clip };
  switch (spec.scheme) {
    case 'none':
    case 'sign':
      return base;
    case 'randk':
      return { ...base, support: randomSupport(dim, m, seed) };
    case 'topk-shared': {
      const top = previousUpdate ? Array.from(topKIndices(previousUpdate, Math.floor(m / 2))).filter((j) => previousUpdate[j] !== 0) : [];
      const chosen = new Set(top);
      // the rest: a random permutation of the other coordinates, from the public seed
      for (const j of randomSupportOrder(dim, seed)) {
        if (chosen.size >= m) break;
        chosen.add(j);
      }
      return { ...base, support: Int32Array.from(chosen).sort() };
    }
    case 'sketch': {
      const cols = m / SKETCH_ROWS;
      const rng = seededRandom(seed >>> 0);
      const bucket = new Int32Array(SKETCH_ROWS * dim);
      const sign = new Int8Array(SKETCH_ROWS * dim);
      for (let i = 0; i < bucket.length; i++) {
        bucket[i] = randomInt(rng, cols);
        sign[i] = rng.nextUint32() & 1 ? 1 : -1;
      }
      return { ...base, bucket, sign, cols };
    }
  }
}

/** Validates a support received from the server (topk-shared): m distinct sorted indices in [0, d). */
export function checkSupport(s: ArrayLike<number>, dim: number, m: number): Int32Array {
  if (s.length !== m) throw new RangeError(`compression support has ${s.length} indices, expected ${m}`);
  const out = Int32Array.from(s as ArrayLike<number>);
  for (let i = 0; i < m; i++) {
    if (!Number.isInteger(s[i]) || out[i]! < 0 || out[i]! >= dim || (i > 0 && out[i]! <= out[i - 1]!)) throw new RangeError('compression support must be strictly increasing integers in [0, d)');
  }
  return out;
}

/** C(v): the m-vector a client uploads (before clipping, rounding and noise). */
export function compress(plan: CompressPlan, v: ArrayLike<number>): Float64Array {
  if (v.length !== plan.dim) throw new RangeError(`vector has ${v.length} entries, the plan expects ${plan.dim}`);
  const d = plan.dim;
  switch (plan.scheme) {
    case 'none':
      return Float64Array.from(v);
    case 'sign': {
      const s = plan.clip / Math.sqrt(d);
      return Float64Array.from(v, (x) => (x > 0 ? s : x < 0 ? -s : 0));
    }
    case 'randk':
    case 'topk-shared':
      return Float64Array.from(plan.support!, (j) => v[j]!);
    case 'sketch': {
      const out = new Float64Array(plan.m);
      const w = plan.cols!;
      for (let r = 0; r < SKETCH_ROWS; r++) {
        for (let j = 0; j < d; j++) out[r * w + plan.bucket![r * d + j]!]! += plan.sign![r * d + j]! * v[j]!;
      }
      return out;
    }
  }
}

/** D(y): the d-vector an uploaded (or summed, averaged) m-vector stands for; linear for every scheme. */
export function decompress(plan: CompressPlan, y: ArrayLike<number>): Float64Array {
  if (y.length !== plan.m) throw new RangeError(`compressed vector has ${y.length} entries, the plan expects ${plan.m}`);
  const d = plan.dim;
  switch (plan.scheme) {
    case 'none':
    case 'sign':
      return Float64Array.from(y);
    case 'randk':
    case 'topk-shared': {
      const out = new Float64Array(d);
      plan.support!.forEach((j, i) => (out[j] = y[i]!));
      return out;
    }
    case 'sketch': {
      const w = plan.cols!;
      const out = new Float64Array(d);
      for (let r = 0; r < SKETCH_ROWS; r++) {
        for (let j = 0; j < d; j++) out[j]! += (plan.sign![r * d + j]! * y[r * w + plan.bucket![r * d + j]!]!) / SKETCH_ROWS;
      }
      return out;
    }
  }
}

/** Scales y to ‖y‖₂ <= c (in place); returns the norm before clipping. */
export function clipInPlace(y: Float64Array, c: number): number {
  let n = 0;
  for (const x of y) n += x * x;
  n = Math.sqrt(n);
  if (n > c) for (let i = 0; i < y.length; i++) y[i]! *= c / n;
  return n;
}

/** A client's error-feedback memory: the part of its past updates that compression has not yet sent. */
export class ErrorFeedback {
  residual: Float64Array | undefined;
  /** v = update + residual; the client then uploads C(v). */
  corrected(update: Float64Array): Float64Array {
    if (!this.residual) return Float64Array.from(update);
    if (this.residual.length !== update.length) throw new RangeError(`error-feedback residual has ${this.residual.length} entries, the update ${update.length}`);
    return Float64Array.from(update, (x, i) => x + this.residual![i]!);
  }
  /** After uploading C(v): e ← v − D(C(v)). */
  carry(plan: CompressPlan, v: Float64Array, y: Float64Array): void {
    const sent = decompress(plan, y);
    this.residual = Float64Array.from(v, (x, i) => x - sent[i]!);
  }
  get norm(): number {
    let n = 0;
    for (const x of this.residual ?? []) n += x * x;
    return Math.sqrt(n);
  }
}

/** The public description of a plan sent in the round info (the support only for topk-shared). */
export function planInfo(plan: CompressPlan, spec: CompressSpec, seed: number): Record<string, unknown> {
  return { scheme: plan.scheme, ratio: spec.ratio, m: plan.m, seed, ...(plan.scheme === 'topk-shared' ? { support: Array.from(plan.support!) } : {}) };
}

/** A client rebuilds the server's plan from the round info (and checks it); `expect` refuses another scheme. */
export function planFromInfo(info: unknown, dim: number, clip: number, expect?: CompressScheme): CompressPlan {
  const o = (info && typeof info === 'object' ? info : {}) as Record<string, unknown>;
  const spec: CompressSpec = { scheme: (o.scheme ?? 'none') as CompressScheme, ratio: o.ratio === undefined ? 1 : Number(o.ratio) };
  checkSpec(spec);
  if (expect !== undefined && spec.scheme !== expect) throw new RangeError(`the server asks for compression ${spec.scheme}, this client was started with --compress ${expect}; refusing`);
  if (spec.scheme === 'none') return planRound(spec, dim, clip, 0);
  const seed = Number(o.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError('round compression seed is not a non-negative integer');
  const plan = planRound(spec.scheme === 'topk-shared' ? { ...spec, scheme: 'randk' } : spec, dim, clip, seed);
  if (o.m !== plan.m) throw new RangeError(`round compression length ${String(o.m)} differs from ${plan.m}`);
  if (spec.scheme === 'topk-shared') return { ...plan, scheme: 'topk-shared', support: checkSupport(Array.isArray(o.support) ? (o.support as number[]) : [], dim, plan.m) };
  return plan;
}
