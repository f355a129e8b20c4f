/**
 * Gradient-leakage measures on the reference CNN (issue 17 item 7b), after Mo, Borovykh,
 * Malekzadeh, Haddadi & Demetriou, "Quantifying and Localizing Usable Information Leakage from
 * Neural Network Gradients" (arXiv 2105.13929; earlier "Layer-wise Characterization of Latent
 * Information Leakage in Federated Learning", arXiv 2010.08762).
 *
 * Two kinds of measure, both per layer (conv1, conv2, fc1, fc2; weight and bias gradient together):
 *
 * 1. V-information for a chosen attack family V (Xu et al. 2020 "usable information"):
 *    I_V(G → Y) = H_V(Y) − H_V(Y | G), with H_V(Y|G) the smallest expected log-loss a predictor in
 *    V reaches from G and H_V(Y) the best G-blind predictor of the family. Estimated on held-out
 *    pairs (fit on one half, log-loss on the other), in bits, so a family that overfits scores ≤ 0
 *    rather than inventing information. Two targets:
 *     - latent: the client's label; V = multinomial logistic regression (L2) on a FIXED random
 *       Gaussian projection of the layer gradient to `projectDim` dimensions (the projection is
 *       public and seeded; it is part of the family's definition);
 *     - original: the client's image average-pooled to 7×7 (t = 49 values); V = linear maps with an
 *       isotropic Gaussian log-loss (ridge fit), so I_V = (t/2)·log2(Σ_j Var_j / Σ_j MSE_j).
 *    "Aggregate over A clients": the observed vector is the MEAN of the target client's gradient and
 *    A − 1 other clients' gradients (FedSGD with one example per client; the others drawn from a
 *    pool of real examples). The measure must fall as A grows.
 * 2. Attack-independent layer-wise measures (no attack family):
 *    - original-information sensitivity of J_l = ∂g_l/∂x, the Jacobian of the layer's gradient w.r.t.
 *      the input pixels (d of them), from J_l·v for random unit directions v (central differences in
 *      float64; the network is piecewise linear, so a small step rarely crosses a kink):
 *      S_l = ‖J_l‖_F / (√d · ‖g_l‖), the relative change of the shared gradient per unit change of
 *      the input (‖J‖_F² = d·E‖Jv‖²), and the effective rank of J_l·V: how many independent input
 *      directions the layer's gradient resolves — the "raw information" it carries;
 *    - latent-information subspace distance: for each class, the span of the top-k gradients of
 *      that class's examples; distance between two classes' subspaces d(U,V) = √(1 − ‖UᵀV‖_F²/k)
 *      ∈ [0, 1]. Reported as (mean distance between different classes) − (mean distance between two
 *      disjoint halves of the same class): how much more the layer's gradient subspace moves when
 *      the latent attribute (class) changes than when only the examples change.
 *
 * What differs from the paper: the paper estimates the "original" V-information with a gradient-
 * inversion attack's success and uses subspace distance over latent attributes other than the task
 * label (e.g. gender); here the attack families are linear decoders (label, pooled image) so the
 * estimate is cheap and deterministic, and the latent attribute is the class label. Paper findings
 * this reproduces: the first layer's gradient carries the most original information, the dense
 * head the most latent information, and aggregation over clients lowers both.
 *
 * Float64 host math (refcnn-host.ts) for gradients; the random projection runs on the engine (tfjs). Randomness: the sampling of examples and directions
 * is an experimental design choice (seeded PRNG, not DP noise); the optional per-client DP
 * release (clip C, Gaussian σC) draws from the privacy core's RandomSource.
 */
import { conv2dBackFilter, conv2dBackInput, hostForward, poolReluBack, type HostParams, type RefCnnDims } from './refcnn-host.js';
import { symmetricEigen } from './inversion-layerwise.js';
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from '../util/prng.js';
import type { RandomSource } from '../privacy/index.js';

export const LEAKAGE_LAYERS = ['conv1', 'conv2', 'fc1', 'fc2'] as const;
export type LeakageLayer = (typeof LEAKAGE_LAYERS)[number];

/**
 * Gradient of the cross-entropy of one example (pixels in [0, 1], label) w.r.t. the 8 parameter
 * tensors of the reference CNN, in refCnnShapes order (what one client with one example shares).
 */
export function refCnnHostGradient(d: RefCnnDims, p: HostParams, pixels: ArrayLike<number>, label: number): Float64Array[] {
  const f = hostForward(d, p, pixels);
  const s = new Float64Array(32);
  for (let j = 0; j < 32; j++) s[j] = p.f1b[j]!;
  for (let i = 0; i < d.flat; i++) {
    const ai = f.a[i]!;
    if (ai === 0) continue;
    const row = i * 32;
    for (let j = 0; j < 32; j++) s[j] += ai * p.f1w[row + j]!;
  }
  const h = s.map((v) => Math.max(0, v));
  const z = new Float64Array(d.K);
  for (let k = 0; k < d.K; k++) {
    let t = p.f2b[k]!;
    for (let j = 0; j < 32; j++) t += h[j]! * p.f2w[j * d.K + k]!;
    z[k] = t;
  }
  const zmax = Math.max(...z);
  let se = 0;
  for (let k = 0; k < d.K; k++) se += Math.exp(z[k]! - zmax);
  const dz = new Float64Array(d.K);
  for (let k = 0; k < d.K; k++) dz[k] = Math.exp(z[k]! - zmax) / se - (k === label ? 1 : 0);
  const gf2w = new Float64Array(32 * d.K);
  for (let j = 0; j < 32; j++) for (let k = 0; k < d.K; k++) gf2w[j * d.K + k] = h[j]! * dz[k]!;
  const ds = new Float64Array(32);
  for (let j = 0; j < 32; j++) {
    if (s[j]! <= 0) continue;
    let t = 0;
    for (let k = 0; k < d.K; k++) t += p.f2w[j * d.K + k]! * dz[k]!;
    ds[j] = t;
  }
  const gf1w = new Float64Array(d.flat * 32);
  const da = new Float64Array(d.flat);
  for (let i = 0; i < d.flat; i++) {
    const ai = f.a[i]!;
    const row = i * 32;
    let t = 0;
    for (let j = 0; j < 32; j++) {
      gf1w[row + j] = ai * ds[j]!;
      t += p.f1w[row + j]! * ds[j]!;
    }
    da[i] = t;
  }
  const dz2 = poolReluBack(da, f.arg2, f.z2);
  const gw2 = conv2dBackFilter(f.h1, d.P1h, d.P1w, 16, dz2, d.H2, d.W2, 32, 4, 2, 0);
  const gb2 = new Float64Array(32);
  for (let i = 0; i < dz2.length; i++) gb2[i % 32] += dz2[i]!;
  const dh1 = new Float64Array(d.P1h * d.P1w * 16);
  conv2dBackInput(dz2, d.H2, d.W2, 32, p.w2, 4, d.P1h, d.P1w, 16, 2, 0, dh1);
  const dz1 = poolReluBack(dh1, f.arg1, f.z1);
  const gw1 = conv2dBackFilter(f.xn, d.H, d.W, d.C, dz1, d.H1, d.W1, 16, 8, 2, 3);
  const gb1 = new Float64Array(16);
  for (let i = 0; i < dz1.length; i++) gb1[i % 16] += dz1[i]!;
  return [gw1, gb1, gw2, gb2, gf1w, ds, gf2w, dz];
}

/** Per-layer gradient vectors (weight then bias) from the 8 parameter gradients. */
export function layerGradients(g: Float64Array[]): Float64Array[] {
  return LEAKAGE_LAYERS.map((_, l) => {
    const w = g[2 * l]!;
    const b = g[2 * l + 1]!;
    const v = new Float64Array(w.length + b.length);
    v.set(w);
    v.set(b, w.length);
    return v;
  });
}

/** A labelled image set in [0, 1] floats (row-major, H·W·C per image). */
export interface LeakageExamples {
  pixels: Float32Array | Float64Array;
  labels: Int32Array;
  count: number;
}

const norm = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
};

function gaussian(rnd: () => number): number {
  const u = Math.max(rnd(), 1e-300);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

/** Optional per-client DP release before aggregation: clip the whole gradient to C, add N(0, (σC)²) per coordinate. */
export interface ClientRelease {
  clip: number;
  noiseMultiplier: number;
  rng: RandomSource;
}

function privatize(layers: Float64Array[], r: ClientRelease): void {
  let n2 = 0;
  for (const v of layers) for (let i = 0; i < v.length; i++) n2 += v[i]! * v[i]!;
  const scale = Math.min(1, r.clip / Math.max(Math.sqrt(n2), 1e-12));
  for (const v of layers) {
    for (let i = 0; i < v.length; i++) v[i]! *= scale;
    if (r.noiseMultiplier > 0) {
      const noise = new Float64Array(v.length);
      r.rng.normal(noise, r.noiseMultiplier * r.clip);
      for (let i = 0; i < v.length; i++) v[i]! += noise[i]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Attack-independent measures

export interface SensitivityResult {
  layer: LeakageLayer;
  /** Mean over examples of ‖J_l‖_F / (√d ‖g_l‖): relative change of the layer gradient per unit input change. */
  sensitivity: number;
  /**
   * Mean over examples of the effective rank (exp of the entropy of the normalised squared singular
   * values; Roy & Vetterli 2007) of J_l·V for `directions` random input directions V: how many
   * independent input directions the layer's gradient resolves (≤ directions).
   */
  effectiveRank: number;
}

/** Original-information measures per layer (see the file comment). */
export function layerSensitivity(d: RefCnnDims, p: HostParams, ex: LeakageExamples, o: { examples?: number; directions?: number; step?: number; seed?: number } = {}): SensitivityResult[] {
  const m = Math.min(o.examples ?? 16, ex.count);
  const dirs = o.directions ?? 16;
  // float64 central differences; a small step keeps the chance of crossing a ReLU/max-pool kink (which
  // would add a spurious jump of size O(1)/h) negligible
  const h = o.step ?? 1e-6;
  const per = d.H * d.W * d.C;
  const rnd = mulberry32(o.seed ?? 1);
  const L = LEAKAGE_LAYERS.length;
  const acc = new Float64Array(L);
  const rankAcc = new Float64Array(L);
  for (let e = 0; e < m; e++) {
    const x = ex.pixels.subarray(e * per, (e + 1) * per);
    const y = ex.labels[e]!;
    const g0 = layerGradients(refCnnHostGradient(d, p, x, y));
    const cols: Float64Array[][] = LEAKAGE_LAYERS.map(() => []);
    for (let t = 0; t < dirs; t++) {
      const v = new Float64Array(per);
      for (let i = 0; i < per; i++) v[i] = gaussian(rnd);
      const nv = norm(v);
      const xp = new Float64Array(per);
      const xm = new Float64Array(per);
      for (let i = 0; i < per; i++) {
        xp[i] = x[i]! + (h * v[i]!) / nv;
        xm[i] = x[i]! - (h * v[i]!) / nv;
      }
      const gp = layerGradients(refCnnHostGradient(d, p, xp, y));
      const gm = layerGradients(refCnnHostGradient(d, p, xm, y));
      for (let l = 0; l < L; l++) {
        const a = gp[l]!;
        const b = gm[l]!;
        const c = new Float64Array(a.length);
        for (let i = 0; i < a.length; i++) c[i] = (a[i]! - b[i]!) / (2 * h);
        cols[l]!.push(c);
      }
    }
    for (let l = 0; l < L; l++) {
      const gram = new Float64Array(dirs * dirs);
      for (let i = 0; i < dirs; i++)
        for (let j = i; j < dirs; j++) {
          let s = 0;
          const a = cols[l]![i]!;
          const b = cols[l]![j]!;
          for (let q = 0; q < a.length; q++) s += a[q]! * b[q]!;
          gram[i * dirs + j] = s;
          gram[j * dirs + i] = s;
        }
      let tr = 0;
      for (let i = 0; i < dirs; i++) tr += gram[i * dirs + i]!;
      // ‖J‖_F/√d = √(E_v‖Jv‖²) for unit v
      acc[l]! += Math.sqrt(tr / dirs) / Math.max(norm(g0[l]!), 1e-300) / m;
      const { values } = symmetricEigen(gram, dirs);
      let ent = 0;
      for (const ev of values) {
        const q = Math.max(ev, 0) / (tr || 1);
        if (q > 0) ent -= q * Math.log(q);
      }
      rankAcc[l]! += Math.exp(ent) / m;
    }
  }
  return LEAKAGE_LAYERS.map((layer, l) => ({ layer, sensitivity: acc[l]!, effectiveRank: rankAcc[l]! }));
}

/** Orthonormal basis (columns, D×k row-major by row = coordinate) of the top-k span of the rows of `rows`. */
function topSubspace(rows: Float64Array[], k: number): { basis: Float64Array[]; k: number } {
  const m = rows.length;
  const gram = new Float64Array(m * m);
  for (let i = 0; i < m; i++)
    for (let j = i; j < m; j++) {
      let s = 0;
      const a = rows[i]!;
      const b = rows[j]!;
      for (let q = 0; q < a.length; q++) s += a[q]! * b[q]!;
      gram[i * m + j] = s;
      gram[j * m + i] = s;
    }
  const { values, vectors } = symmetricEigen(gram, m);
  const basis: Float64Array[] = [];
  const tol = Math.max(values[0]!, 0) * 1e-10;
  for (let c = 0; c < Math.min(k, m); c++) {
    if (!(values[c]! > tol)) break;
    const u = new Float64Array(rows[0]!.length);
    for (let i = 0; i < m; i++) {
      const w = vectors[i * m + c]!;
      const r = rows[i]!;
      for (let q = 0; q < u.length; q++) u[q]! += w * r[q]!;
    }
    const nu = norm(u);
    for (let q = 0; q < u.length; q++) u[q]! /= nu;
    basis.push(u);
  }
  return { basis, k: basis.length };
}

/** √(1 − ‖UᵀV‖_F² / k) for orthonormal bases with k = min(k_U, k_V). */
export function subspaceDistance(U: Float64Array[], V: Float64Array[]): number {
  const k = Math.min(U.length, V.length);
  if (k === 0) return 1;
  let f = 0;
  for (const u of U)
    for (const v of V) {
      let s = 0;
      for (let q = 0; q < u.length; q++) s += u[q]! * v[q]!;
      f += s * s;
    }
  return Math.sqrt(Math.max(0, 1 - f / k));
}

export interface SubspaceResult {
  layer: LeakageLayer;
  /** Mean subspace distance between two different classes. */
  betweenClass: number;
  /** Mean subspace distance between two disjoint halves of one class. */
  withinClass: number;
  /** betweenClass − withinClass. */
  latent: number;
}

/** Latent-information subspace distances per layer: `perClass` examples per half, `k`-dimensional subspaces. */
export function latentSubspaceDistance(d: RefCnnDims, p: HostParams, ex: LeakageExamples, o: { perClass?: number; k?: number; classes?: number } = {}): SubspaceResult[] {
  const m = o.perClass ?? 8;
  const k = o.k ?? 4;
  const per = d.H * d.W * d.C;
  const K = o.classes ?? d.K;
  const byClass: number[][] = Array.from({ length: K }, () => []);
  for (let i = 0; i < ex.count; i++) {
    const c = ex.labels[i]!;
    if (c < K && byClass[c]!.length < 2 * m) byClass[c]!.push(i);
  }
  const present = byClass.map((ix, c) => ({ ix, c })).filter((e) => e.ix.length === 2 * m);
  if (present.length < 2) throw new RangeError(`subspace distance needs ${2 * m} examples of at least two classes`);
  // halves[class][half][layer] = basis
  const halves = present.map(({ ix }) => {
    const grads = ix.map((i) => layerGradients(refCnnHostGradient(d, p, ex.pixels.subarray(i * per, (i + 1) * per), ex.labels[i]!)));
    return [0, 1].map((hf) => LEAKAGE_LAYERS.map((_, l) => topSubspace(grads.slice(hf * m, (hf + 1) * m).map((g) => g[l]!), k).basis));
  });
  return LEAKAGE_LAYERS.map((layer, l) => {
    let within = 0;
    for (const h of halves) within += subspaceDistance(h[0]![l]!, h[1]![l]!) / halves.length;
    let between = 0;
    let pairs = 0;
    for (let a = 0; a < halves.length; a++)
      for (let b = a + 1; b < halves.length; b++) {
        between += subspaceDistance(halves[a]![0]![l]!, halves[b]![0]![l]!);
        pairs++;
      }
    between /= pairs;
    return { layer, betweenClass: between, withinClass: within, latent: between - within };
  });
}

// ---------------------------------------------------------------------------------------------
// V-information

/**
 * Label V-information (bits) for the family of linear-softmax predictors, fitted generatively (shared-
 * covariance Gaussian classes, i.e. LDA, whose posterior is a linear softmax) with covariance
 * shrinkage λ·(tr S/dim)·I. λ is chosen by 5-fold cross-validation on the fit rows from a grid that also
 * holds "ignore G" (the prior, the best G-blind member), then refitted on all fit rows. Returns the
 * held-out log-losses H_V(Y) (prior) and H_V(Y|G) and their difference. Closed form: no iterations.
 */
export function linearLabelVInformation(xTr: Float64Array, yTr: Int32Array, xTe: Float64Array, yTe: Int32Array, dim: number, K: number): { hY: number; hYgivenG: number; information: number; shrinkage: number | null } {
  const logPrior = (rows: number[]): Float64Array => {
    const c = new Float64Array(K).fill(1); // add-one smoothing
    for (const i of rows) c[yTr[i]!]! += 1;
    const tot = rows.length + K;
    return c.map((v) => Math.log(v / tot));
  };
  type Model = { lp: Float64Array; A?: Float64Array; b?: Float64Array };
  const fit = (rows: number[], lambda: number | null): Model => {
    const lp = logPrior(rows);
    if (lambda === null) return { lp };
    const mu = new Float64Array(K * dim);
    const cnt = new Float64Array(K);
    for (const i of rows) {
      const y = yTr[i]!;
      cnt[y]! += 1;
      for (let q = 0; q < dim; q++) mu[y * dim + q]! += xTr[i * dim + q]!;
    }
    for (let k = 0; k < K; k++) if (cnt[k]! > 0) for (let q = 0; q < dim; q++) mu[k * dim + q]! /= cnt[k]!;
    const S = new Float64Array(dim * dim);
    const xc = new Float64Array(dim);
    for (const i of rows) {
      const y = yTr[i]!;
      for (let q = 0; q < dim; q++) xc[q] = xTr[i * dim + q]! - mu[y * dim + q]!;
      for (let a = 0; a < dim; a++) {
        const va = xc[a]!;
        for (let b = a; b < dim; b++) S[a * dim + b] += (va * xc[b]!) / rows.length;
      }
    }
    let tr = 0;
    for (let a = 0; a < dim; a++) {
      tr += S[a * dim + a]!;
      for (let b = 0; b < a; b++) S[a * dim + b] = S[b * dim + a]!;
    }
    // Σ⁻¹ μ_k for every class (columns)
    const M = new Float64Array(dim * K);
    for (let k = 0; k < K; k++) for (let q = 0; q < dim; q++) M[q * K + k] = mu[k * dim + q]!;
    const A = ridgeSolve(S, dim, lambda * (tr / dim + 1e-12), M, K);
    const b = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      if (cnt[k] === 0) {
        b[k] = -Infinity;
        continue;
      }
      let s = 0;
      for (let q = 0; q < dim; q++) s += mu[k * dim + q]! * A[q * K + k]!;
      b[k] = lp[k]! - 0.5 * s;
    }
    return { lp, A, b };
  };
  const logLoss = (m: Model, x: Float64Array, y: Int32Array, rows: number[]): number => {
    let h = 0;
    const z = new Float64Array(K);
    for (const i of rows) {
      if (!m.A) {
        h -= m.lp[y[i]!]! / Math.LN2;
        continue;
      }
      for (let k = 0; k < K; k++) z[k] = m.b![k]!;
      for (let q = 0; q < dim; q++) {
        const v = x[i * dim + q]!;
        for (let k = 0; k < K; k++) z[k] += v * m.A[q * K + k]!;
      }
      let mx = -Infinity;
      for (let k = 0; k < K; k++) mx = Math.max(mx, z[k]!);
      let se = 0;
      for (let k = 0; k < K; k++) se += Math.exp(z[k]! - mx);
      // floor each probability at 1e-6 (a bounded log-loss; the family's member with that floor)
      h -= Math.log2(Math.max(Math.exp(z[y[i]!]! - mx) / se, 1e-6)) ;
    }
    return h / rows.length;
  };
  const nTr = yTr.length;
  const all = Array.from({ length: nTr }, (_, i) => i);
  let best: number | null = null;
  let bestLoss = Infinity;
  for (const lam of [null, 0.01, 0.1, 1, 10, 100]) {
    let l = 0;
    for (const [fitRows, valRows] of folds(nTr)) l += logLoss(fit(fitRows, lam), xTr, yTr, valRows) * valRows.length;
    if (l < bestLoss - 1e-12) {
      bestLoss = l;
      best = lam;
    }
  }
  const testRows = Array.from({ length: yTe.length }, (_, i) => i);
  const hY = logLoss(fit(all, null), xTe, yTe, testRows);
  const hYgivenG = logLoss(fit(all, best), xTe, yTe, testRows);
  return { hY, hYgivenG, information: hY - hYgivenG, shrinkage: best };
}

/** 5-fold cross-validation splits of rows 0..n−1 (row i in fold i mod 5): [fit rows, validation rows]. */
function folds(n: number, k = 5): [number[], number[]][] {
  const out: [number[], number[]][] = [];
  for (let f = 0; f < k; f++) {
    const fit: number[] = [];
    const val: number[] = [];
    for (let i = 0; i < n; i++) (i % k === f ? val : fit).push(i);
    out.push([fit, val]);
  }
  return out;
}

/** Solves (A + λI) x = b for symmetric positive semi-definite A (n×n) by Cholesky; b has `cols` columns. */
function ridgeSolve(A: Float64Array, n: number, lambda: number, b: Float64Array, cols: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]! + (i === j ? lambda : 0);
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-300)) : s / L[j * n + j]!;
    }
  const x = new Float64Array(n * cols);
  for (let c = 0; c < cols; c++) {
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = b[i * cols + c]!;
      for (let k = 0; k < i; k++) s -= L[i * n + k]! * y[k]!;
      y[i] = s / L[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * x[k * cols + c]!;
      x[i * cols + c] = s / L[i * n + i]!;
    }
  }
  return x;
}

/**
 * Linear-Gaussian V-information (bits) of targets T (n × t) from features X (n × dim), isotropic
 * Gaussian log-loss: ridge fitted on
 * the train rows (λ picked by 5-fold cross-validation from a small grid that includes λ = ∞, then refitted), Gaussian
 * log-loss with one variance for all coordinates; I = (t/2)·log2(Σ Var_j / Σ MSE_j) on the test rows.
 */
export function linearGaussianVInformation(xTr: Float64Array, tTr: Float64Array, xTe: Float64Array, tTe: Float64Array, dim: number, t: number): { information: number; lambda: number } {
  const nTr = tTr.length / t;
  const nTe = tTe.length / t;
  const fit = (rows: number[], lambda: number): { W: Float64Array; mu: Float64Array; tm: Float64Array } => {
    const mu = new Float64Array(dim);
    const tm = new Float64Array(t);
    for (const i of rows) {
      for (let q = 0; q < dim; q++) mu[q]! += xTr[i * dim + q]! / rows.length;
      for (let c = 0; c < t; c++) tm[c]! += tTr[i * t + c]! / rows.length;
    }
    const A = new Float64Array(dim * dim);
    const B = new Float64Array(dim * t);
    const xc = new Float64Array(dim);
    for (const i of rows) {
      for (let q = 0; q < dim; q++) xc[q] = xTr[i * dim + q]! - mu[q]!;
      for (let a = 0; a < dim; a++) {
        const va = xc[a]!;
        if (va === 0) continue;
        for (let b = a; b < dim; b++) A[a * dim + b] += va * xc[b]!;
        for (let c = 0; c < t; c++) B[a * t + c] += va * (tTr[i * t + c]! - tm[c]!);
      }
    }
    let tr = 0;
    for (let a = 0; a < dim; a++) {
      tr += A[a * dim + a]!;
      for (let b = 0; b < a; b++) A[a * dim + b] = A[b * dim + a]!;
    }
    // λ = ∞: the G-blind member (predict the mean)
    return { W: Number.isFinite(lambda) ? ridgeSolve(A, dim, lambda * (tr / dim + 1e-12), B, t) : new Float64Array(dim * t), mu, tm };
  };
  const predictErr = (m: { W: Float64Array; mu: Float64Array; tm: Float64Array }, x: Float64Array, tt: Float64Array, rows: number[]): Float64Array => {
    const err = new Float64Array(t);
    for (const i of rows) {
      for (let c = 0; c < t; c++) {
        let s = m.tm[c]!;
        for (let q = 0; q < dim; q++) s += (x[i * dim + q]! - m.mu[q]!) * m.W[q * t + c]!;
        err[c]! += (tt[i * t + c]! - s) ** 2 / rows.length;
      }
    }
    return err;
  };
  const all = Array.from({ length: nTr }, (_, i) => i);
  let best = Infinity;
  let bestErr = Infinity;
  for (const lam of [Infinity, 0.01, 0.1, 1, 10, 100]) {
    let e = 0;
    for (const [fitRows, valRows] of folds(nTr)) e += predictErr(fit(fitRows, lam), xTr, tTr, valRows).reduce((a, b) => a + b, 0) * valRows.length;
    if (e < bestErr - 1e-12) {
      bestErr = e;
      best = lam;
    }
  }
  const model = fit(all, best);
  const testRows = Array.from({ length: nTe }, (_, i) => i);
  const mse = predictErr(model, xTe, tTe, testRows);
  // G-blind member: predict the train mean; its error on the test rows is Var_j (+ mean shift)
  const blind = new Float64Array(t);
  for (const i of testRows) for (let c = 0; c < t; c++) blind[c]! += (tTe[i * t + c]! - model.tm[c]!) ** 2 / nTe;
  // isotropic Gaussian family N(f(G), s²I) with the best s: H_V = (t/2)·log2(2πe·ΣMSE/t), so
  // I_V = (t/2)·log2(Σ Var / Σ MSE) (per-coordinate variances would let near-constant border pixels dominate)
  const sb = blind.reduce((a, b) => a + b, 0);
  const sm = mse.reduce((a, b) => a + b, 0);
  const info = sb > 1e-12 ? 0.5 * t * Math.log2(sb / Math.max(sm, 1e-300)) : 0;
  return { information: info, lambda: best };
}

/** Average-pools an H×W×C image in [0,1] to 7×7 (channel mean): the "original information" target. */
export function pooledTarget(pixels: ArrayLike<number>, H: number, W: number, C: number, side = 7): Float64Array {
  const out = new Float64Array(side * side);
  const cnt = new Float64Array(side * side);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const o = Math.min(side - 1, Math.floor((y * side) / H)) * side + Math.min(side - 1, Math.floor((x * side) / W));
      for (let c = 0; c < C; c++) {
        out[o]! += pixels[(y * W + x) * C + c]!;
        cnt[o]! += 1;
      }
    }
  for (let i = 0; i < out.length; i++) out[i]! /= cnt[i]!;
  return out;
}

export interface VInfoOptions {
  /** Aggregation levels (clients averaged into the observed vector), e.g. [1, 10, 100]. */
  aggregation: number[];
  /** Target clients used as (gradient, label/image) pairs; half fit, half held out. */
  targets: number;
  /** Dimension of the public random projection of each layer's gradient. */
  projectDim?: number;
  seed?: number;
  /** Per-client DP release (clip + Gaussian) applied before averaging. */
  release?: ClientRelease;
  onProgress?: (what: string) => void;
}

export interface VInfoRow {
  aggregation: number;
  layer: LeakageLayer;
  /** I_V(G → label), bits (held-out estimate; ≤ 0 means the family finds nothing usable). */
  labelBits: number;
  /** H_V(label) and H_V(label | G) (bits, held out). */
  labelEntropy: number;
  labelConditionalEntropy: number;
  /** I_V(G → 7×7 pooled image), bits, linear-Gaussian family. */
  imageBits: number;
}

/**
 * V-information of the target client's label and pooled image from the per-layer observed vector
 * (mean over `A` clients), for each A. The pool (`ex`) supplies both the targets (the first
 * `targets` examples) and the other clients (the rest, drawn with the seeded PRNG).
 */
export function gradientVInformation(d: RefCnnDims, p: HostParams, ex: LeakageExamples, o: VInfoOptions): VInfoRow[] {
  const per = d.H * d.W * d.C;
  const T = o.targets;
  const maxA = Math.max(...o.aggregation);
  const others = ex.count - T;
  if (T < 8) throw new RangeError('V-information needs at least 8 target clients');
  if (maxA > 1 && others < maxA - 1) throw new RangeError(`aggregation over ${maxA} clients needs ≥ ${maxA - 1} other examples (have ${others})`);
  const r = o.projectDim ?? 128;
  const rnd = mulberry32((o.seed ?? 1) ^ 0x51ed270b);
  // public projections, one per layer: entries N(0, 1/r)
  const sizes = [d.C * 64 * 16 + 16, 16 * 16 * 32 + 32, d.flat * 32 + 32, 32 * d.K + d.K];
  const proj = sizes.map((D) => {
    const m = new Float64Array(D * r);
    const sc = 1 / Math.sqrt(r);
    for (let i = 0; i < m.length; i++) m[i] = gaussian(rnd) * sc;
    return m;
  });
  // projected per-client gradients (projection is linear: projecting the mean = mean of projections);
  // the projection runs on the engine in blocks of 100 clients (float32 is ample for a decoder's input)
  const projected: Float64Array[][] = LEAKAGE_LAYERS.map(() => []);
  const projT = proj.map((m, l) => tf.tensor2d(Float32Array.from(m), [sizes[l]!, r]));
  try {
    for (let s0 = 0; s0 < ex.count; s0 += 100) {
      const s1 = Math.min(ex.count, s0 + 100);
      const block = LEAKAGE_LAYERS.map((_, l) => new Float32Array((s1 - s0) * sizes[l]!));
      for (let i = s0; i < s1; i++) {
        const g = layerGradients(refCnnHostGradient(d, p, ex.pixels.subarray(i * per, (i + 1) * per), ex.labels[i]!));
        if (o.release) privatize(g, o.release);
        for (let l = 0; l < LEAKAGE_LAYERS.length; l++) block[l]!.set(g[l]!, (i - s0) * sizes[l]!);
      }
      for (let l = 0; l < LEAKAGE_LAYERS.length; l++) {
        const out = tf.tidy(() => tf.matMul(tf.tensor2d(block[l]!, [s1 - s0, sizes[l]!]), projT[l]!).dataSync());
        for (let i = 0; i < s1 - s0; i++) projected[l]!.push(Float64Array.from(out.subarray(i * r, (i + 1) * r)));
      }
      o.onProgress?.(`gradients ${s1}/${ex.count}`);
    }
  } finally {
    tf.dispose(projT);
  }
  const labels = ex.labels.subarray(0, T);
  const images = new Float64Array(T * 49);
  for (let i = 0; i < T; i++) images.set(pooledTarget(ex.pixels.subarray(i * per, (i + 1) * per), d.H, d.W, d.C), i * 49);
  const nTr = Math.floor(T / 2);
  const rows: VInfoRow[] = [];
  for (const A of o.aggregation) {
    // the same other clients for every layer (one draw per target)
    const partners = Array.from({ length: T }, () => {
      const s = new Set<number>();
      while (s.size < A - 1) s.add(T + Math.floor(rnd() * others));
      return [...s];
    });
    for (let l = 0; l < LEAKAGE_LAYERS.length; l++) {
      const X = new Float64Array(T * r);
      for (let i = 0; i < T; i++) {
        const row = X.subarray(i * r, (i + 1) * r);
        row.set(projected[l]![i]!);
        for (const j of partners[i]!) {
          const pj = projected[l]![j]!;
          for (let c = 0; c < r; c++) row[c]! += pj[c]!;
        }
        // the decoder sees the direction of the observed vector (its scale varies by orders of
        // magnitude between examples and says little), then per-coordinate standardisation
        const nr = norm(row) || 1;
        for (let c = 0; c < r; c++) row[c]! /= nr;
      }
      // standardise with the fit half's statistics (part of the decoder)
      for (let c = 0; c < r; c++) {
        let m = 0;
        for (let i = 0; i < nTr; i++) m += X[i * r + c]! / nTr;
        let v = 0;
        for (let i = 0; i < nTr; i++) v += (X[i * r + c]! - m) ** 2 / nTr;
        const sd = Math.sqrt(v) || 1;
        for (let i = 0; i < T; i++) X[i * r + c] = (X[i * r + c]! - m) / sd;
      }
      const xTr = X.subarray(0, nTr * r);
      const xTe = X.subarray(nTr * r);
      const lab = linearLabelVInformation(xTr, labels.subarray(0, nTr), xTe, labels.subarray(nTr), r, d.K);
      const img = linearGaussianVInformation(xTr, images.subarray(0, nTr * 49), xTe, images.subarray(nTr * 49), r, 49);
      rows.push({ aggregation: A, layer: LEAKAGE_LAYERS[l]!, labelBits: lab.information, labelEntropy: lab.hY, labelConditionalEntropy: lab.hYgivenG, imageBits: img.information });
      o.onProgress?.(`V-information A=${A} ${LEAKAGE_LAYERS[l]}: label ${lab.information.toFixed(3)} bits, image ${img.information.toFixed(2)} bits`);
    }
  }
  return rows;
}
