/**
 * The masking graph of secure aggregation. Bonawitz et al. (CCS 2017) pair every client with every
 * other (complete graph: O(n) keys, masks and Shamir shares per client, O(n²) per round). SecAgg+
 * (Bell, Bonawitz, Gascón, Lepoint, Raykova, "Secure single-server aggregation with (poly)logarithmic
 * overhead", CCS 2020; Flower's `num_shares` / `reconstruction_threshold`) replaces it by a sparse
 * k-regular graph: the Harary graph H(k, n) (ring positions p adjacent to p ± 1 … p ± k/2) under a
 * public uniformly random permutation of the clients. A client agrees pairwise masks and shares its
 * self-mask seed and mask secret key (t-of-(k+1) Shamir: its k neighbours and itself) only with its
 * neighbours.
 *
 * What it guarantees is statistical over the random graph (the complete graph's is not): for a set
 * C of corrupt clients (colluding with the server, |C| <= γn) and a set D of dropouts (|D| <= δn),
 * both chosen independently of the graph (non-adaptive), the round
 *  - hides every honest input beyond the sum of the honest survivors if (S1) no honest client has t
 *    or more corrupt neighbours (else C + server hold t shares of both its secrets) and (S2) the
 *    graph restricted to the honest survivors is connected (else the server learns the sum of each
 *    component). Under the random permutation a client's k neighbours are a uniform k-subset of the
 *    others, so P(S1 fails) <= n · P[Hyp(n−1, γn, k) >= t]; on the ring, G[V \ (C ∪ D)] is
 *    connected unless k/2 consecutive positions are removed, so P(S2 fails) <= n · Π_{j<k/2}
 *    (m−j)/(n−j) with m = |C ∪ D|. We require the sum of both <= 2^−σ.
 *  - completes (every secret needed has t answering holders) unless some client has more than
 *    k + 1 − t holders among the dropouts: P <= n · P[Hyp(n−1, δn, k) > k − t] <= 2^−η.
 * `secAggPlusParams` returns the smallest even k (and its t) meeting both. A round also needs at
 * least `minSurvivors` (n − ⌊n/3⌋, as with the complete graph) masked inputs: the DP protocols
 * calibrate their distributed noise to that many survivors.
 */
import { createCipheriv } from 'node:crypto';

export interface SecAggPlusParams {
  /** Neighbours per client (even, < n − 1); the complete graph has k = n − 1. */
  k: number;
  /** Shares needed to reconstruct a client's secret (out of its k + 1 holders). */
  t: number;
  /** log2 of the bound on the probability that the round reveals more than the sum (S1 + S2). */
  log2Insecure: number;
  /** log2 of the bound on the probability that a round with <= δn dropouts cannot finish. */
  log2Incomplete: number;
}

export interface ThreatModel {
  /** Fraction of clients that may collude with the (honest-but-curious) server (default 0.1). */
  corrupt: number;
  /** Fraction of clients that may drop out during the round (default 1/3). */
  dropout: number;
  /** Statistical security parameter σ (default 40). */
  sigma: number;
  /** Correctness parameter η (default 20). */
  eta: number;
}

export const DEFAULT_THREAT: ThreatModel = { corrupt: 0.1, dropout: 1 / 3, sigma: 40, eta: 20 };

const logFact: number[] = [0];
function lf(x: number): number {
  for (let i = logFact.length; i <= x; i++) logFact.push(logFact[i - 1]! + Math.log(i));
  return logFact[x]!;
}
function logChoose(a: number, b: number): number {
  return b < 0 || b > a ? -Infinity : lf(a) - lf(b) - lf(a - b);
}
function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m === -Infinity ? -Infinity : m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}
/** ln P[X >= x] for X ~ Hypergeometric(population N, K marked, k draws). */
export function logHypergeomTail(N: number, K: number, k: number, x: number): number {
  const terms: number[] = [];
  for (let i = Math.max(x, 0); i <= Math.min(K, k); i++) terms.push(logChoose(K, i) + logChoose(N - K, k - i) - logChoose(N, k));
  return terms.length ? logSumExp(terms) : -Infinity;
}

const LN2 = Math.log(2);

/** log2 bounds of the two failure events for (n, k, t) under the threat model (see the file comment). */
export function secAggPlusBounds(n: number, k: number, t: number, m: ThreatModel = DEFAULT_THREAT): { log2Insecure: number; log2Incomplete: number } {
  const c = Math.floor(m.corrupt * n);
  const d = Math.floor(m.dropout * n);
  const s1 = Math.log(n) + logHypergeomTail(n - 1, c, k, t);
  const removed = Math.min(n, c + d);
  const L = k / 2;
  let s2 = Math.log(n);
  for (let j = 0; j < L; j++) s2 += removed - j > 0 ? Math.log((removed - j) / (n - j)) : -Infinity;
  const incomplete = Math.log(n) + logHypergeomTail(n - 1, d, k, k - t + 1);
  return { log2Insecure: logSumExp([s1, s2]) / LN2, log2Incomplete: incomplete / LN2 };
}

/**
 * The smallest even k (and a t) with P(insecure) <= 2^−σ and P(incomplete) <= 2^−η, or undefined
 * when no k < n − 1 does (use the complete graph). t is the smallest value meeting S1 (more
 * shares needed = more corrupt neighbours tolerated only up to what completion allows), and at
 * least k/2 + 1 as in Flower and the paper.
 */
export function secAggPlusParams(n: number, m: ThreatModel = DEFAULT_THREAT): SecAggPlusParams | undefined {
  for (let k = 2; k < n - 1; k += 2) {
    for (let t = Math.floor(k / 2) + 1; t <= k + 1; t++) {
      const b = secAggPlusBounds(n, k, t, m);
      if (b.log2Incomplete > -m.eta) break; // larger t only makes completion harder
      if (b.log2Insecure <= -m.sigma) return { k, t, ...b };
    }
  }
  return undefined;
}

/**
 * t for a given k (e.g. from --neighbors): the smallest t >= k/2 + 1 for which S1 (no honest client
 * with t corrupt neighbours) fails with probability <= 2^−σ, at most k + 1 (all holders).
 */
export function secAggPlusThreshold(n: number, k: number, m: ThreatModel = DEFAULT_THREAT): number {
  const c = Math.floor(m.corrupt * n);
  for (let t = Math.floor(k / 2) + 1; t <= k; t++) if ((Math.log(n) + logHypergeomTail(n - 1, c, k, t)) / LN2 <= -m.sigma) return t;
  return k + 1;
}

/**
 * Neighbours per client when --neighbors is not given: SecAgg+'s k when it is at most n/2 (below
 * that a sparse graph saves less than half the work), else the complete graph (n − 1).
 */
export function defaultNeighbors(n: number, m: ThreatModel = DEFAULT_THREAT): number {
  const p = n > 4 ? secAggPlusParams(n, m) : undefined;
  return p && p.k <= n / 2 ? p.k : n - 1;
}

/** Threshold of the complete graph: n − ⌊n/3⌋ of n holders (tolerates a third of dropouts, > n/2). */
export function completeThreshold(n: number): number {
  return n - Math.floor(n / 3);
}

/**
 * Public random permutation of 1..n from a 32-byte seed (AES-256-CTR keystream, Fisher–Yates with
 * rejection sampling): pos[id] = ring position of client id. Every party computes the same one.
 */
export function ringPositions(n: number, seed: Uint8Array): Int32Array {
  if (seed.length !== 32) throw new RangeError(`graph seed is 32 bytes, got ${seed.length}`);
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  let buf = Buffer.alloc(0);
  let off = 0;
  const next = (): number => {
    if (off + 4 > buf.length) {
      buf = c.update(Buffer.alloc(4096));
      off = 0;
    }
    const v = buf.readUInt32LE(off);
    off += 4;
    return v;
  };
  const order = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = n - 1; i > 0; i--) {
    const bound = i + 1;
    const limit = Math.floor(2 ** 32 / bound) * bound;
    let r: number;
    do r = next();
    while (r >= limit);
    const j = r % bound;
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const pos = new Int32Array(n + 1).fill(-1);
  order.forEach((id, p) => (pos[id] = p));
  return pos;
}

/** The masking graph of one round over clients 1..n: complete, or SecAgg+'s permuted Harary graph. */
export class MaskGraph {
  private readonly order: Int32Array | undefined;
  private readonly pos: Int32Array | undefined;

  private constructor(
    readonly n: number,
    /** Neighbours per client (n − 1 for the complete graph). */
    readonly k: number,
    seed: Uint8Array | undefined,
  ) {
    if (seed) {
      this.pos = ringPositions(n, seed);
      this.order = new Int32Array(n);
      for (let id = 1; id <= n; id++) this.order[this.pos[id]!] = id;
    }
  }

  static complete(n: number): MaskGraph {
    return new MaskGraph(n, n - 1, undefined);
  }

  /** Harary H(k, n) under the permutation from `seed`; k even; k >= n − 1 gives the complete graph. */
  static harary(n: number, k: number, seed: Uint8Array): MaskGraph {
    if (!Number.isInteger(k) || k < 2 || k % 2 !== 0) throw new RangeError(`SecAgg+ needs an even number of neighbours >= 2, got ${k}`);
    return k >= n - 1 ? MaskGraph.complete(n) : new MaskGraph(n, k, seed);
  }

  get isComplete(): boolean {
    return this.pos === undefined;
  }

  /** Whether u and v (distinct) agree a mask and hold each other's shares. */
  adjacent(u: number, v: number): boolean {
    if (u === v) return false;
    if (!this.pos) return true;
    const d = Math.abs(this.pos[u]! - this.pos[v]!);
    return Math.min(d, this.n - d) <= this.k / 2;
  }

  /** Neighbours of u, ascending (excluding u). */
  neighbours(u: number): number[] {
    if (!this.pos) {
      const out: number[] = [];
      for (let v = 1; v <= this.n; v++) if (v !== u) out.push(v);
      return out;
    }
    const p = this.pos[u]!;
    const out: number[] = [];
    for (let o = 1; o <= this.k / 2; o++) out.push(this.order![(p + o) % this.n]!, this.order![(p - o + this.n) % this.n]!);
    return out.sort((a, b) => a - b);
  }

  /** Share holders of u's secrets: its neighbours and itself, ascending. */
  holders(u: number): number[] {
    return [...this.neighbours(u), u].sort((a, b) => a - b);
  }
}
