/**
 * Entropic optimal transport between two uniform point clouds (log-domain Sinkhorn with ε-scaling)
 * and the gradient of its value with respect to the points: the building block of dp-sinkhorn.
 *
 * Convention (as geomloss, which the DP-Sinkhorn authors use): for weights a (n), b (m) and costs
 * C (n×m), OT_ε(a, b) = max_{f,g} ⟨a, f⟩ + ⟨b, g⟩ − ε⟨a⊗b, exp((f ⊕ g − C)/ε) − 1⟩. At the fixed
 * point of the Sinkhorn updates the value is ⟨a, f⟩ + ⟨b, g⟩ = ⟨π, C⟩ + ε·KL(π ‖ a⊗b) with the plan
 * π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε), and (envelope theorem) the gradient with respect to a
 * point x_i of the first cloud is Σ_j π_ij ∇_x c(x_i, y_j): the transport plan's pull.
 * As ε → 0 the value tends to the exact OT cost, within ε·log min(n, m).
 */

/** Cost between two samples: ‖x − y‖² (+ w·‖x − y‖₁ for 'l1+l2'), plus a label term. */
export interface CostSpec {
  kind: 'l2' | 'l1+l2';
  /** Weight of the L1 term ('l1+l2' only; the paper's "mixture fraction" m). */
  l1Weight: number;
  /**
   * The one-hot label is appended to each sample scaled by this (the paper's embed multiplier, 15):
   * two samples of different classes pay 2L² (+ w·2L) more, so mass moves within a class.
   */
  labelScale: number;
}

/** Pairwise costs [n×m] between rows of x (n×d) and y (m×d), with labels lx, ly. */
export function pairwiseCost(x: ArrayLike<number>, lx: ArrayLike<number>, n: number, y: ArrayLike<number>, ly: ArrayLike<number>, m: number, d: number, spec: CostSpec): Float64Array {
  const out = new Float64Array(n * m);
  const L = spec.labelScale;
  const w = spec.kind === 'l1+l2' ? spec.l1Weight : 0;
  const labelCost = 2 * L * L + w * 2 * L;
  for (let i = 0; i < n; i++) {
    const xo = i * d;
    for (let j = 0; j < m; j++) {
      const yo = j * d;
      let s2 = 0;
      let s1 = 0;
      for (let t = 0; t < d; t++) {
        const u = x[xo + t]! - y[yo + t]!;
        s2 += u * u;
        s1 += Math.abs(u);
      }
      out[i * m + j] = s2 + w * s1 + (lx[i] === ly[j] ? 0 : labelCost);
    }
  }
  return out;
}

export interface SinkhornOptions {
  /** Target regularisation ε (> 0). */
  epsilon: number;
  /** ε-scaling factor per annealing iteration, in (0, 1) (default 0.5, as geomloss). */
  scaling?: number;
  /** Iterations at the target ε after annealing, at most (default 100). */
  maxIter?: number;
  /** Stop when the first marginal's L1 error is below this (default 1e-6). */
  tol?: number;
}

export interface SinkhornResult {
  /** Dual potentials f (n), g (m). */
  f: Float64Array;
  g: Float64Array;
  /** ⟨a, f⟩ + ⟨b, g⟩. */
  value: number;
  /** Transport plan [n×m] (rows sum to 1/n, columns to 1/m). */
  plan: Float64Array;
  iterations: number;
  /** L1 error of the plan's row marginal. */
  marginalError: number;
}

/** −ε·log Σ_k w_k exp(v_k / ε), stable. */
function softmin(v: Float64Array, logw: number, eps: number): number {
  let mx = -Infinity;
  for (let k = 0; k < v.length; k++) if (v[k]! > mx) mx = v[k]!;
  if (mx === -Infinity) return Infinity;
  let s = 0;
  for (let k = 0; k < v.length; k++) s += Math.exp((v[k]! - mx) / eps);
  return -(mx + eps * (Math.log(s) + logw));
}

/**
 * Log-domain Sinkhorn between uniform weights on n and m points with costs C (n×m): ε-scaling from
 * the largest cost down to `epsilon` (one f/g update per ε), then updates at `epsilon` until the row
 * marginal is within `tol`.
 */
export function sinkhorn(C: Float64Array, n: number, m: number, o: SinkhornOptions): SinkhornResult {
  if (!(n >= 1 && m >= 1) || C.length !== n * m) throw new RangeError(`sinkhorn: cost matrix of ${C.length} entries for ${n}×${m} points`);
  const eps = o.epsilon;
  if (!(eps > 0)) throw new RangeError(`sinkhorn: epsilon must be > 0, got ${eps}`);
  const scaling = o.scaling ?? 0.5;
  if (!(scaling > 0 && scaling < 1)) throw new RangeError(`sinkhorn: scaling must be in (0, 1), got ${scaling}`);
  const maxIter = o.maxIter ?? 100;
  const tol = o.tol ?? 1e-6;
  const loga = -Math.log(n);
  const logb = -Math.log(m);
  let diam = 0;
  for (let k = 0; k < C.length; k++) if (C[k]! > diam) diam = C[k]!;
  const f = new Float64Array(n);
  const g = new Float64Array(m);
  const row = new Float64Array(m);
  const col = new Float64Array(n);
  const updateF = (e: number) => {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) row[j] = g[j]! - C[i * m + j]!;
      f[i] = softmin(row, logb, e);
    }
  };
  const updateG = (e: number) => {
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < n; i++) col[i] = f[i]! - C[i * m + j]!;
      g[j] = softmin(col, loga, e);
    }
  };
  let iterations = 0;
  for (let e = Math.max(diam, eps); e > eps; e *= scaling) {
    updateF(e);
    updateG(e);
    iterations++;
  }
  const plan = new Float64Array(n * m);
  const fillPlan = (): number => {
    let err = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) {
        const p = Math.exp(loga + logb + (f[i]! + g[j]! - C[i * m + j]!) / eps);
        plan[i * m + j] = p;
        s += p;
      }
      err += Math.abs(s - 1 / n);
    }
    return err;
  };
  let marginalError = Infinity;
  for (let it = 0; it < maxIter; it++) {
    updateF(eps);
    updateG(eps);
    iterations++;
    // after a g-update the columns are exact; the rows measure convergence
    marginalError = fillPlan();
    if (marginalError < tol) break;
  }
  if (maxIter === 0) marginalError = fillPlan();
  let value = 0;
  for (let i = 0; i < n; i++) value += f[i]! / n;
  for (let j = 0; j < m; j++) value += g[j]! / m;
  return { f, g, value, plan, iterations, marginalError };
}

/**
 * Adds scale·∂OT/∂x (the plan's pull on the first cloud's image coordinates) into gx (n×d) and, when
 * gy is given, scale·∂OT/∂y into gy (m×d). Labels are constants: only image coordinates get gradients.
 */
export function accumulateOtGradient(plan: Float64Array, x: ArrayLike<number>, n: number, y: ArrayLike<number>, m: number, d: number, spec: CostSpec, scale: number, gx: Float64Array, gy?: Float64Array): void {
  const w = spec.kind === 'l1+l2' ? spec.l1Weight : 0;
  for (let i = 0; i < n; i++) {
    const xo = i * d;
    for (let j = 0; j < m; j++) {
      const p = plan[i * m + j]!;
      if (p === 0) continue;
      const yo = j * d;
      const s = scale * p;
      for (let t = 0; t < d; t++) {
        const u = x[xo + t]! - y[yo + t]!;
        // ∇_x (u² + w|u|) = 2u + w·sign(u); ∇_y is its negative
        const gval = s * (2 * u + (u > 0 ? w : u < 0 ? -w : 0));
        gx[xo + t]! += gval;
        if (gy) gy[yo + t]! -= gval;
      }
    }
  }
}
