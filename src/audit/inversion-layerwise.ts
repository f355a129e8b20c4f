/**
 * Layer-wise analytic gradient inversion of the reference CNN for ONE example (float64 host math).
 *
 * Gradient matching by optimisation (DLG / "Inverting Gradients") is slow and gets stuck on this
 * ReLU/max-pool network: the gradient is a discontinuous function of the input (activation and
 * pooling patterns switch), and plain feature matching is under-determined (512 features, 784
 * pixels). This attack instead reads the input off the shared gradient layer by layer:
 *
 *  1. Label (iDLG, Zhao et al. 2020): ∂L/∂b of the last layer is softmax − onehot, whose only
 *     negative entry is the true class.
 *  2. fc1 input (Phong et al. 2017; Geiping et al. 2020 §3): for one example ∂L/∂W = a·δᵀ and
 *     ∂L/∂b = δ, so the 512 pooled conv features are a = ∂W·δ / ‖δ‖² exactly (all 32 rows at once,
 *     least squares), and the gradient reaching them is g_a = W·δ.
 *  3. conv2 input h1 (pooled conv1 features, 12×12×16 of them used): ∂L/∂W2 = Σ_k patch_k(h1)·δ2[k]ᵀ
 *     over the 5×5 output positions k, i.e. the 256×32 matrix ∂W2 = Patches(h1)·Δ with only 25
 *     patches. So its column space U (rank ≤ 25, read off an SVD) contains every patch that receives
 *     gradient, and h1 must satisfy the LINEAR conditions (I − UUᵀ)·patch_k(h1) = 0: 25·(256 − 25)
 *     equations for 2304 unknowns. Their solution set is one-dimensional (h1 up to scale) for the
 *     images we tried; we solve (A + r rᵀ) h = r by conjugate gradients (A = Σ_k M_kᵀ(I − UUᵀ)M_k,
 *     r = a fixed positive direction), then fix the scale by matching the conv2 → ReLU → max-pool
 *     output to a (1-D search; scale-free, so it also works on a clipped gradient).
 *  4. pixels x: projected Adam on x ∈ [0,1]^n so that maxpool(relu(conv1(x))) matches h1 (2304
 *     equations for 784 unknowns: well posed, unlike matching the 512 features of step 2) and
 *     maxpool(relu(conv2(·))) matches a, with residuals on the winning pre-activations (continuous
 *     in x, and not stuck when a unit is wrongly dead). Restarts are ranked by this same objective.
 *
 * On a DP gradient (clipped, N(0, σ²C²) per coordinate, σ ≥ 1) every step is swamped: δ, a and the
 * subspace U are noise, so the "reconstruction" carries no information about the image.
 */
import { MNIST_MEAN, MNIST_STD } from './refcnn.js';
import { conv2dBackFilter, conv2dBackInput, conv2dForward, hostParams, refCnnDims, reluMaxPool, type HostParams, type RefCnnDims } from './refcnn-host.js';
import { xorshift32 } from '../util/prng.js';

export interface LayerwiseOptions {
  /** Adam iterations of the pixel stage per restart (default 1500). */
  iterations?: number;
  /** Restarts of the pixel stage (first from a flat 0.1 image, then random; default 2). */
  restarts?: number;
  /** Adam learning rate of the pixel stage (default 0.02, cosine-decayed to 1%). */
  learningRate?: number;
  /** Total-variation weight in the pixel stage, relative to the feature residual (default 0). */
  tvWeight?: number;
  /** Seed of the random restarts (attack randomness, not DP noise). */
  seed?: number;
  /** Adam steps of the final exact-gradient-matching refinement (default 600; 0 = off). */
  refineIterations?: number;
  onProgress?: (iteration: number, loss: number) => void;
}

export interface LayerwiseResult {
  reconstruction: Float32Array;
  label: number;
  /** Whether the gradient-matching refinement lowered the gradient mismatch (and was kept). */
  refined: boolean;
  /** The attack's own objective at the end: relative residual of the pixel stage. */
  matchLoss: number;
  /** Relative residual ‖(I − UUᵀ)·patches(h1)‖ / ‖patches(h1)‖ of the recovered conv2 input. */
  subspaceResidual: number;
  /** Numerical rank of ∂W2 used for U. */
  conv2Rank: number;
  iterations: number;
  seconds: number;
}

const n2 = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
};

/** Eigen-decomposition of a symmetric n×n matrix (cyclic Jacobi; n ≤ ~64 here). Returns values descending and vectors as columns. */
export function symmetricEigen(mat: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(mat);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j]! ** 2;
    if (off < 1e-30 * (n2(a) + 1e-300)) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y]! - a[x * n + x]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = a[src * n + src]!;
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src]!;
  });
  return { values, vectors };
}

/**
 * Residual on pooled features: for each 2×2 stride-1 window, r = max(z) − t where the target t > 0
 * (the winner's pre-activation must equal it) and r = max(0, max z) where t ≤ 0 (all units dead).
 * Returns Σ w·r² over outputs with mask[o] (all when mask is null) and adds ∂/∂z into gz.
 */
function pooledResidual(z: Float64Array, h: number, w: number, c: number, t: Float64Array, wt: number, gz: Float64Array | null, mask: Uint8Array | null): number {
  let loss = 0;
  for (let i = 0; i < h - 1; i++)
    for (let j = 0; j < w - 1; j++)
      for (let ch = 0; ch < c; ch++) {
        const o = (i * (w - 1) + j) * c + ch;
        if (mask && !mask[o]) continue;
        const i00 = (i * w + j) * c + ch;
        let best = i00;
        if (z[i00 + c]! > z[best]!) best = i00 + c;
        if (z[i00 + w * c]! > z[best]!) best = i00 + w * c;
        if (z[i00 + w * c + c]! > z[best]!) best = i00 + w * c + c;
        const r = t[o]! > 0 ? z[best]! - t[o]! : Math.max(0, z[best]!);
        loss += wt * r * r;
        if (gz) gz[best] += 2 * wt * r;
      }
  return loss;
}

/** Sets entries with |v| ≤ rel·max|v| to 0 (float32 round-off of exact zeros). */
function snapToZero(v: Float64Array, rel: number): void {
  let mx = 0;
  for (const x of v) mx = Math.max(mx, Math.abs(x));
  for (let i = 0; i < v.length; i++) if (Math.abs(v[i]!) <= rel * mx) v[i] = 0;
}

/** Everything the attack reads off the shared gradient before touching pixels. */
export interface GradientReadout {
  label: number;
  /** input of fc1 (pooled conv2 features) */
  a: Float64Array;
  /** recovered pooled conv1 features (0 outside the region conv2 reads) */
  h1: Float64Array;
  /** which pooled conv1 features conv2 reads (the others are unconstrained by the gradient) */
  h1Used: Uint8Array;
  subspaceResidual: number;
  conv2Rank: number;
}

/** Steps 1–3 of the attack: label, fc1 input a, and the conv2 input h1 from the shared gradient. */
export function readGradient(d: RefCnnDims, p: HostParams, grad: Float64Array[]): GradientReadout {
  const [, , dW2, , fcW, fcB, , outB] = grad as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  let label = 0;
  for (let k = 1; k < d.K; k++) if (outB[k]! < outB[label]!) label = k;
  // fc1: ∂W = a δᵀ, ∂b = δ ⇒ a = ∂W δ / ‖δ‖²
  const dd = n2(fcB);
  const a = new Float64Array(d.flat);
  if (dd > 0)
    for (let i = 0; i < d.flat; i++) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += fcW[i * 32 + j]! * fcB[j]!;
      a[i] = s / dd;
    }
  // Dead units come back as ±1e-7-relative round-off; a tiny positive target would demand that the
  // winning pre-activation equal it rather than be ≤ 0, so snap them to 0 (same for h1 below).
  snapToZero(a, 1e-4);
  // conv2: column space of the 256×32 matrix ∂W2 (rows = 4×4×16 patch entries)
  const pd = 4 * 4 * 16;
  const gram = new Float64Array(32 * 32);
  for (let i = 0; i < 32; i++)
    for (let j = i; j < 32; j++) {
      let s = 0;
      for (let r = 0; r < pd; r++) s += dW2[r * 32 + i]! * dW2[r * 32 + j]!;
      gram[i * 32 + j] = s;
      gram[j * 32 + i] = s;
    }
  const { values, vectors } = symmetricEigen(gram, 32);
  const positions = d.H2 * d.W2;
  const s0 = Math.sqrt(Math.max(values[0]!, 0));
  // Rank = number of positions that received gradient. The singular values of an exact single-example
  // gradient drop by 3–5 orders of magnitude right after it (float32 round-off below), so take the
  // largest such drop; without one (a noisy gradient) use every position.
  const sv = Array.from(values, (v) => Math.sqrt(Math.max(v, 0)));
  const maxRank = Math.min(positions, 32);
  let rank = maxRank;
  let bestGap = 100;
  for (let r = 1; r <= maxRank && r < 32; r++) {
    const gap = sv[r - 1]! / Math.max(sv[r]!, 1e-300 * s0);
    if (sv[r - 1]! > 1e-7 * s0 && gap > bestGap) {
      bestGap = gap;
      rank = r;
    }
  }
  const U = new Float64Array(pd * rank); // orthonormal columns: U[:, i] = ∂W2 v_i / s_i
  for (let i = 0; i < rank; i++) {
    const si = Math.sqrt(Math.max(values[i]!, 1e-300));
    for (let r = 0; r < pd; r++) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += dW2[r * 32 + j]! * vectors[j * 32 + i]!;
      U[r * rank + i] = s / si;
    }
  }
  const nh = d.P1h * d.P1w * 16;
  // entries of h1 covered by an active patch (recomputed when patches are dropped)
  const h1Used = new Uint8Array(nh);
  const patchIdx: Int32Array[] = [];
  for (let pp = 0; pp < d.H2; pp++)
    for (let qq = 0; qq < d.W2; qq++) {
      const idx = new Int32Array(pd);
      let t = 0;
      for (let u = 0; u < 4; u++) for (let v = 0; v < 4; v++) for (let c = 0; c < 16; c++) idx[t++] = ((2 * pp + u) * d.P1w + 2 * qq + v) * 16 + c;
      patchIdx.push(idx);
    }
  const active = new Uint8Array(positions).fill(1);
  const patch = new Float64Array(pd);
  const coef = new Float64Array(rank);
  // y += Σ_k M_kᵀ (I − UUᵀ) M_k x over active patches
  const project = (x: Float64Array, k: number): void => {
    const idx = patchIdx[k]!;
    for (let r = 0; r < pd; r++) patch[r] = x[idx[r]!]!;
    coef.fill(0);
    for (let r = 0; r < pd; r++) {
      const pr = patch[r]!;
      if (pr === 0) continue;
      for (let i = 0; i < rank; i++) coef[i] += U[r * rank + i]! * pr;
    }
    for (let r = 0; r < pd; r++) {
      let s = 0;
      for (let i = 0; i < rank; i++) s += U[r * rank + i]! * coef[i]!;
      patch[r] = patch[r]! - s;
    }
  };
  const applyA = (x: Float64Array, y: Float64Array): void => {
    y.fill(0);
    for (let k = 0; k < positions; k++) {
      if (!active[k]) continue;
      project(x, k);
      const idx = patchIdx[k]!;
      for (let r = 0; r < pd; r++) y[idx[r]!] += patch[r]!;
    }
  };
  const solve = (maxIter = 4000): Float64Array => {
    h1Used.fill(0);
    for (let k = 0; k < positions; k++) if (active[k]) for (const i of patchIdx[k]!) h1Used[i] = 1;
    let nUsed = 0;
    for (const u of h1Used) nUsed += u;
    // (A + ρ r rᵀ) h = ρ r with r = 1_used/√n: the unique solution is the null vector of A with ⟨h, r⟩ = 1
    // (A ⪰ 0, ‖A‖ ≤ #overlapping patches ≤ 4, so ρ = 1 keeps the system well scaled)
    const rv = new Float64Array(nh);
    for (let i = 0; i < nh; i++) rv[i] = h1Used[i] ? 1 / Math.sqrt(nUsed) : 0;
    const op = (x: Float64Array, y: Float64Array): void => {
      applyA(x, y);
      let dot = 0;
      for (let i = 0; i < nh; i++) dot += rv[i]! * x[i]!;
      for (let i = 0; i < nh; i++) y[i] += rv[i]! * dot;
    };
    const x = new Float64Array(nh);
    const r = Float64Array.from(rv);
    const pdir = Float64Array.from(rv);
    const ap = new Float64Array(nh);
    let rr = n2(r);
    const rr0 = rr;
    for (let it = 0; it < maxIter && rr > 1e-26 * rr0; it++) {
      op(pdir, ap);
      let pap = 0;
      for (let i = 0; i < nh; i++) pap += pdir[i]! * ap[i]!;
      if (!(pap > 0)) break;
      const alpha = rr / pap;
      for (let i = 0; i < nh; i++) {
        x[i] += alpha * pdir[i]!;
        r[i] -= alpha * ap[i]!;
      }
      const rrNew = n2(r);
      const beta = rrNew / rr;
      rr = rrNew;
      for (let i = 0; i < nh; i++) pdir[i] = r[i]! + beta * pdir[i]!;
    }
    return x;
  };
  // ‖(I − UUᵀ) patches(h)‖ / ‖patches(h)‖ over active patches: the attack's own quality signal
  const subspaceResidual = (hv: Float64Array): number => {
    let num = 0;
    let den = 0;
    for (let k = 0; k < positions; k++) {
      if (!active[k]) continue;
      project(hv, k);
      num += n2(patch);
      for (const i of patchIdx[k]!) den += hv[i]! ** 2;
    }
    return Math.sqrt(num / Math.max(den, 1e-300));
  };
  let h = solve();
  // Fewer independent gradient columns than positions: some positions received no gradient (dead or
  // never the pool winner) and their patches need not lie in U. Drop, one at a time, the patch whose
  // removal leaves the most consistent system (an exact null vector has residual ~1e-7, a wrong
  // choice ~1e-2); h1 entries that only dropped patches cover stay unknown.
  for (let dropped = 0; dropped < positions - rank; dropped++) {
    let bestK = -1;
    let bestRes = Infinity;
    let bestH = h;
    for (let k = 0; k < positions; k++) {
      if (!active[k]) continue;
      active[k] = 0;
      // a partial solve separates the right drop (residual → 1e-7) from wrong ones (≥ 1e-3)
      const hk = solve(250);
      const res = subspaceResidual(hk);
      if (res < bestRes) {
        bestRes = res;
        bestK = k;
        bestH = hk;
      }
      active[k] = 1;
    }
    active[bestK] = 0;
    h = bestH;
  }
  if (rank < positions) h = solve();

  // scale: conv2(c·h) + b2 → ReLU → max-pool should reproduce a; the feature residual is piecewise
  // quadratic in c, so scan log-spaced candidates and refine by golden section
  const zLin = conv2dForward(h, d.P1h, d.P1w, 16, p.w2, 4, 32, 2, 0, null).out;
  const z = new Float64Array(zLin.length);
  const featLoss = (c: number): number => {
    for (let i = 0; i < z.length; i++) z[i] = c * zLin[i]! + p.b2[i % 32]!;
    return pooledResidual(z, d.H2, d.W2, 32, a, 1, null, null);
  };
  const nA = Math.sqrt(n2(a) / a.length) || 1;
  const nZ = Math.sqrt(n2(zLin) / zLin.length) || 1;
  const c0 = nA / nZ;
  let bestC = c0;
  let bestL = Infinity;
  for (let e = -3; e <= 3.0001; e += 0.05) {
    const c = c0 * 10 ** e;
    const l = featLoss(c);
    if (l < bestL) {
      bestL = l;
      bestC = c;
    }
  }
  let lo = bestC / 10 ** 0.05;
  let hi = bestC * 10 ** 0.05;
  const gr = (Math.sqrt(5) - 1) / 2;
  for (let it = 0; it < 60; it++) {
    const m1 = hi - gr * (hi - lo);
    const m2 = lo + gr * (hi - lo);
    if (featLoss(m1) < featLoss(m2)) hi = m2;
    else lo = m1;
  }
  const scale = (lo + hi) / 2;
  const h1 = new Float64Array(nh);
  for (let i = 0; i < nh; i++) h1[i] = h1Used[i] ? scale * h[i]! : 0;
  snapToZero(h1, 1e-4);
  return { label, a, h1, h1Used, subspaceResidual: subspaceResidual(h), conv2Rank: rank };
}

/** The attack on one shared gradient (8 arrays in refCnnShapes order). */
export function invertGradientLayerwise(paramArrays: ArrayLike<number>[], gradArrays: ArrayLike<number>[], shape: { height: number; width: number; channels: number; classes: number }, opts: LayerwiseOptions = {}): LayerwiseResult {
  const t0 = Date.now();
  const d = refCnnDims(shape.height, shape.width, shape.channels, shape.classes);
  const p = hostParams(paramArrays);
  if (gradArrays.length !== 8) throw new RangeError(`shared gradient must have 8 tensors (reference CNN), got ${gradArrays.length}`);
  const grad = gradArrays.map((g) => Float64Array.from(g));
  for (const g of grad) for (const v of g) if (!Number.isFinite(v)) throw new RangeError('shared gradient contains NaN or ±Infinity');
  const rd = readGradient(d, p, grad);
  const iterations = opts.iterations ?? 1500;
  const restarts = Math.max(1, opts.restarts ?? 2);
  const lr0 = opts.learningRate ?? 0.02;
  const tvWeight = opts.tvWeight ?? 0;
  const N = d.H * d.W * d.C;
  const wH = 1 / Math.max(n2(rd.h1), 1e-300);
  const wA = 1 / Math.max(n2(rd.a), 1e-300);
  // Layer-1 constraints from h1 = maxpool(relu(z1)): every pre-activation is ≤ the smallest target of
  // the windows that contain it (≤ 0 if one of them is dead), and each live window's maximum equals
  // its target — attained by a position whose bound equals that target (a "candidate"; about 55% of
  // windows have exactly one, so most winners are known before optimising).
  const upper = new Float64Array(d.H1 * d.W1 * 16).fill(Infinity);
  let h1Max = 0;
  for (const v of rd.h1) h1Max = Math.max(h1Max, v);
  const members = (o: number): number[] => {
    const ch = o % 16;
    const ij = (o - ch) / 16;
    const i = Math.floor(ij / d.P1w);
    const j = ij % d.P1w;
    const i00 = (i * d.W1 + j) * 16 + ch;
    return [i00, i00 + 16, i00 + d.W1 * 16, i00 + d.W1 * 16 + 16];
  };
  for (let o = 0; o < rd.h1.length; o++) if (rd.h1Used[o]) for (const q of members(o)) upper[q] = Math.min(upper[q]!, Math.max(0, rd.h1[o]!));
  const candList: number[] = [];
  const startList: number[] = [0];
  const targetList: number[] = [];
  for (let o = 0; o < rd.h1.length; o++) {
    if (!rd.h1Used[o] || !(rd.h1[o]! > 0)) continue;
    const t = rd.h1[o]!;
    let ms = members(o).filter((q) => Math.abs(upper[q]! - t) <= 1e-5 * h1Max);
    if (ms.length === 0) ms = members(o); // inconsistent targets (e.g. a noisy gradient): any member
    candList.push(...ms);
    startList.push(candList.length);
    targetList.push(t);
  }
  const candidates = Int32Array.from(candList);
  const candStart = Int32Array.from(startList);
  const winTarget = Float64Array.from(targetList);
  const objective = (x: Float64Array, g: Float64Array | null): number => {
    const xn = new Float64Array(N);
    for (let i = 0; i < N; i++) xn[i] = (x[i]! - MNIST_MEAN) / MNIST_STD;
    const z1 = conv2dForward(xn, d.H, d.W, d.C, p.w1, 8, 16, 2, 3, p.b1).out;
    const gz1 = g ? new Float64Array(z1.length) : null;
    let loss = 0;
    for (let q = 0; q < z1.length; q++) {
      const r = z1[q]! - upper[q]!;
      if (r > 0) {
        loss += wH * r * r;
        if (gz1) gz1[q] += 2 * wH * r;
      }
    }
    for (let o = 0; o < winTarget.length; o++) {
      let best = candidates[candStart[o]!]!;
      for (let t = candStart[o]! + 1; t < candStart[o + 1]!; t++) if (z1[candidates[t]!]! > z1[best]!) best = candidates[t]!;
      const r = z1[best]! - winTarget[o]!;
      loss += wH * r * r;
      if (gz1) gz1[best] += 2 * wH * r;
    }
    // fc1-input term through the actual (ReLU/max-pooled) conv1 output
    const { out: h1, arg: arg1 } = reluMaxPool(z1, d.H1, d.W1, 16);
    const z2 = conv2dForward(h1, d.P1h, d.P1w, 16, p.w2, 4, 32, 2, 0, p.b2).out;
    const gz2 = g ? new Float64Array(z2.length) : null;
    loss += pooledResidual(z2, d.H2, d.W2, 32, rd.a, wA, gz2, null);
    let tv = 0;
    if (tvWeight > 0) {
      for (let c = 0; c < d.C; c++)
        for (let i = 0; i < d.H; i++)
          for (let j = 0; j < d.W; j++) {
            const o = (i * d.W + j) * d.C + c;
            for (const nb of [i + 1 < d.H ? o + d.W * d.C : -1, j + 1 < d.W ? o + d.C : -1]) {
              if (nb < 0) continue;
              const diff = x[o]! - x[nb]!;
              // smoothed |·| (Charbonnier) keeps the gradient defined at 0
              const s = Math.sqrt(diff * diff + 1e-6);
              tv += s;
              if (g) {
                g[o] += (tvWeight / N) * (diff / s);
                g[nb] -= (tvWeight / N) * (diff / s);
              }
            }
          }
      loss += (tvWeight / N) * tv;
    }
    if (g) {
      const gh1 = new Float64Array(h1.length);
      conv2dBackInput(gz2!, d.H2, d.W2, 32, p.w2, 4, d.P1h, d.P1w, 16, 2, 0, gh1);
      for (let o = 0; o < gh1.length; o++) {
        const i = arg1[o]!;
        if (z1[i]! > 0) gz1![i] += gh1[o]!;
      }
      const gxn = new Float64Array(N);
      conv2dBackInput(gz1!, d.H1, d.W1, 16, p.w1, 8, d.H, d.W, d.C, 2, 3, gxn);
      for (let i = 0; i < N; i++) g[i] += gxn[i]! / MNIST_STD;
    }
    return loss;
  };
  // xorshift32: attack initialisation only (not DP noise)
  const rnd = xorshift32((opts.seed ?? 1) >>> 0);
  let best: { x: Float64Array; loss: number } | null = null;
  const m = new Float64Array(N);
  const v = new Float64Array(N);
  const g = new Float64Array(N);
  for (let r = 0; r < restarts; r++) {
    const x = new Float64Array(N);
    for (let i = 0; i < N; i++) x[i] = r === 0 ? 0.1 : 0.5 * rnd();
    m.fill(0);
    v.fill(0);
    for (let it = 0; it < iterations; it++) {
      g.fill(0);
      const loss = objective(x, g);
      projectedAdamStep(x, g, m, v, lr0, it, iterations);
      if (opts.onProgress && (it % 50 === 0 || it === iterations - 1)) opts.onProgress(r * iterations + it, loss);
    }
    const loss = objective(x, null);
    if (!best || loss < best.loss) best = { x, loss };
  }
  // Refinement by exact gradient matching: with the activation/pooling pattern of the current x
  // frozen, the conv-layer gradients are linear in x (δ's come from the known g_a = W_fc1·δ_fc1), so
  // the mismatch is a smooth quadratic; refresh the pattern every 25 steps. Kept only if it lowers
  // the gradient mismatch (the attack's own criterion).
  const refineIterations = opts.refineIterations ?? 600;
  let final = best!.x;
  let refined = false;
  if (refineIterations > 0) {
    const gm = gradientMismatch(d, p, grad, rd);
    const before = gm(final, null, null).loss;
    const x = Float64Array.from(final);
    m.fill(0);
    v.fill(0);
    let pattern = gm.pattern(x);
    for (let it = 0; it < refineIterations; it++) {
      if (it % 25 === 0) pattern = gm.pattern(x);
      g.fill(0);
      gm(x, g, pattern);
      projectedAdamStep(x, g, m, v, 0.005, it, refineIterations);
    }
    const after = gm(x, null, null).loss;
    if (after < before) {
      final = x;
      refined = true;
    }
  }
  return {
    reconstruction: Float32Array.from(final),
    label: rd.label,
    refined,
    matchLoss: best!.loss,
    subspaceResidual: rd.subspaceResidual,
    conv2Rank: rd.conv2Rank,
    iterations: iterations * restarts + refineIterations,
    seconds: (Date.now() - t0) / 1000,
  };
}

interface Pattern {
  arg1: Int32Array;
  m1: Uint8Array;
  arg2: Int32Array;
  m2: Uint8Array;
}

/**
 * Relative mismatch between the shared conv-layer gradients (and fc1 input) and those of x, with the
 * upstream gradient g_a = W_fc1·δ_fc1 taken from the shared gradient. With `pattern` given, the
 * ReLU masks and pool winners are frozen (the mismatch is then quadratic in x and `g` gets its exact
 * gradient); with null it uses x's own pattern (the true mismatch, no gradient).
 */
function gradientMismatch(d: RefCnnDims, p: HostParams, grad: Float64Array[], rd: GradientReadout) {
  const [dW1s, , dW2s, , , fcB] = grad as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  const ga = new Float64Array(d.flat);
  for (let i = 0; i < d.flat; i++) {
    let s = 0;
    for (let j = 0; j < 32; j++) s += p.f1w[i * 32 + j]! * fcB[j]!;
    ga[i] = s;
  }
  const N = d.H * d.W * d.C;
  const w1 = 1 / Math.max(n2(dW1s), 1e-300);
  const w2 = 1 / Math.max(n2(dW2s), 1e-300);
  const wa = 1 / Math.max(n2(rd.a), 1e-300);
  const patternOf = (x: Float64Array): Pattern => {
    const xn = new Float64Array(N);
    for (let i = 0; i < N; i++) xn[i] = (x[i]! - MNIST_MEAN) / MNIST_STD;
    const z1 = conv2dForward(xn, d.H, d.W, d.C, p.w1, 8, 16, 2, 3, p.b1).out;
    const { out: h1, arg: arg1 } = reluMaxPool(z1, d.H1, d.W1, 16);
    const z2 = conv2dForward(h1, d.P1h, d.P1w, 16, p.w2, 4, 32, 2, 0, p.b2).out;
    const { arg: arg2 } = reluMaxPool(z2, d.H2, d.W2, 32);
    return { arg1, m1: Uint8Array.from(z1, (z) => (z > 0 ? 1 : 0)), arg2, m2: Uint8Array.from(z2, (z) => (z > 0 ? 1 : 0)) };
  };
  const f = (x: Float64Array, g: Float64Array | null, frozen: Pattern | null): { loss: number } => {
    const pt = frozen ?? patternOf(x);
    const xn = new Float64Array(N);
    for (let i = 0; i < N; i++) xn[i] = (x[i]! - MNIST_MEAN) / MNIST_STD;
    const z1 = conv2dForward(xn, d.H, d.W, d.C, p.w1, 8, 16, 2, 3, p.b1).out;
    const h1 = new Float64Array(d.P1h * d.P1w * 16);
    for (let o = 0; o < h1.length; o++) {
      const i = pt.arg1[o]!;
      h1[o] = pt.m1[i] ? z1[i]! : 0;
    }
    const z2 = conv2dForward(h1, d.P1h, d.P1w, 16, p.w2, 4, 32, 2, 0, p.b2).out;
    const d2 = new Float64Array(z2.length);
    for (let o = 0; o < d.flat; o++) {
      const i = pt.arg2[o]!;
      if (pt.m2[i]) d2[i] += ga[o]!;
    }
    const dW2 = conv2dBackFilter(h1, d.P1h, d.P1w, 16, d2, d.H2, d.W2, 32, 4, 2, 0);
    const gh1 = new Float64Array(h1.length);
    conv2dBackInput(d2, d.H2, d.W2, 32, p.w2, 4, d.P1h, d.P1w, 16, 2, 0, gh1);
    const d1 = new Float64Array(z1.length);
    for (let o = 0; o < gh1.length; o++) {
      const i = pt.arg1[o]!;
      if (pt.m1[i]) d1[i] += gh1[o]!;
    }
    const dW1 = conv2dBackFilter(xn, d.H, d.W, d.C, d1, d.H1, d.W1, 16, 8, 2, 3);
    const gz2 = g ? new Float64Array(z2.length) : null;
    let loss = pooledResidual(z2, d.H2, d.W2, 32, rd.a, wa, gz2, null);
    const G2 = new Float64Array(dW2.length);
    for (let i = 0; i < dW2.length; i++) {
      const r = dW2[i]! - dW2s[i]!;
      loss += w2 * r * r;
      G2[i] = 2 * w2 * r;
    }
    const G1 = new Float64Array(dW1.length);
    for (let i = 0; i < dW1.length; i++) {
      const r = dW1[i]! - dW1s[i]!;
      loss += w1 * r * r;
      G1[i] = 2 * w1 * r;
    }
    if (g) {
      const gh = new Float64Array(h1.length);
      conv2dBackInput(gz2!, d.H2, d.W2, 32, p.w2, 4, d.P1h, d.P1w, 16, 2, 0, gh);
      conv2dBackInput(d2, d.H2, d.W2, 32, G2, 4, d.P1h, d.P1w, 16, 2, 0, gh);
      const gz1 = new Float64Array(z1.length);
      for (let o = 0; o < gh.length; o++) {
        const i = pt.arg1[o]!;
        if (pt.m1[i]) gz1[i] += gh[o]!;
      }
      const gxn = new Float64Array(N);
      conv2dBackInput(gz1, d.H1, d.W1, 16, p.w1, 8, d.H, d.W, d.C, 2, 3, gxn);
      conv2dBackInput(d1, d.H1, d.W1, 16, G1, 8, d.H, d.W, d.C, 2, 3, gxn);
      for (let i = 0; i < N; i++) g[i] += gxn[i]! / MNIST_STD;
    }
    return { loss };
  };
  return Object.assign(f, { pattern: patternOf });
}

/**
 * One Adam step (β = 0.9, 0.999) on x with gradient g, cosine-decayed learning rate from lr0 over
 * `total` steps (floor 1 %), projected onto the pixel box [0, 1].
 */
function projectedAdamStep(x: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, lr0: number, it: number, total: number): void {
  const lr = lr0 * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * it) / total)));
  const b1 = 1 - 0.9 ** (it + 1);
  const b2 = 1 - 0.999 ** (it + 1);
  for (let i = 0; i < x.length; i++) {
    m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
    v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
    x[i] = Math.min(1, Math.max(0, x[i]! - (lr * (m[i]! / b1)) / (Math.sqrt(v[i]! / b2) + 1e-30)));
  }
}
