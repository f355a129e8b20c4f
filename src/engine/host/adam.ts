/**
 * Adam (Kingma & Ba 2015) update of one parameter array as one host pass (issue 18: fewer,
 * larger kernels on hot paths). tfjs' AdamOptimizer runs 13 tensor ops per variable per step
 * (mul ×5, add ×4, div ×3, square, sqrt), each a full pass with a fresh output; this is one
 * loop that reads p, g, m, v once, updates m and v in place and writes the new parameters.
 *
 * Bit-for-bit the arithmetic of tfjs' AdamOptimizer.applyGradients on float32 tensors: every
 * operation is rounded to float32 (`Math.fround`) in tfjs' order. One binary32 +, −, ×, ÷ or √
 * computed in binary64 and rounded once is the correctly rounded binary32 result (53 ≥ 2·24 + 2),
 * which is what each tfjs kernel stores; `test/engine-host.test.ts` compares with tf.train.adam.
 */
export interface AdamScalars {
  /** float32(beta1), float32(1 − beta1), float32(beta2), float32(1 − beta2) as tfjs makes them */
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** float32(1 − accBeta1), float32(1 − accBeta2) of this step (tfjs: sub(1, accBeta)) */
  c1: number;
  c2: number;
  epsilon: number;
  /** float32(−learningRate) */
  negLr: number;
}

const fr = Math.fround;

/** Constants of one step; accBeta1/2 are tfjs' float32 running products beta^t. */
export function adamScalars(learningRate: number, beta1: number, beta2: number, epsilon: number, accBeta1: number, accBeta2: number): AdamScalars {
  return {
    beta1: fr(beta1),
    oneMinusBeta1: fr(1 - beta1),
    beta2: fr(beta2),
    oneMinusBeta2: fr(1 - beta2),
    c1: fr(1 - accBeta1),
    c2: fr(1 - accBeta2),
    epsilon: fr(epsilon),
    negLr: fr(-learningRate),
  };
}

/** out = p after one Adam step with gradient g; m and v (the moments) are updated in place. */
export function adamStepHost(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: AdamScalars, out: Float32Array): void {
  const n = p.length;
  if (g.length !== n || m.length !== n || v.length !== n || out.length !== n) throw new RangeError(`adamStepHost: lengths ${n}, ${g.length}, ${m.length}, ${v.length}, ${out.length}`);
  const { beta1, oneMinusBeta1, beta2, oneMinusBeta2, c1, c2, epsilon, negLr } = s;
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    const mi = fr(fr(m[i]! * beta1) + fr(gi * oneMinusBeta1));
    const vi = fr(fr(v[i]! * beta2) + fr(fr(gi * gi) * oneMinusBeta2));
    m[i] = mi;
    v[i] = vi;
    const q = fr(fr(mi / c1) / fr(fr(Math.sqrt(fr(vi / c2))) + epsilon));
    out[i] = fr(fr(q * negLr) + p[i]!);
  }
}
