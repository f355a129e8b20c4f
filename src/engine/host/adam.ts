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
import { HostArena, simdAvailable } from './simd.js';

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

/**
 * Adam state of one parameter array (its moments m and v) and its update. Where WebAssembly SIMD
 * is available the moments live in a HostArena and the step runs `adam4` (four lanes of IEEE
 * binary32 operations: the same bits as `adamStepHost`; a remainder of n mod 4 runs the JS loop on
 * the same memory), else plain arrays and `adamStepHost`. The eval CNN's largest variable
 * (7744 × 64) takes ~5–7 ms per step in the JS loop, on the main thread while the data-parallel
 * worker waits.
 */
export class AdamSlot {
  private readonly arena: HostArena | undefined;
  private readonly offs: number[] = [];
  private readonly mJs: Float32Array | undefined;
  private readonly vJs: Float32Array | undefined;

  constructor(readonly size: number) {
    let arena: HostArena | undefined;
    if (simdAvailable()) {
      arena = new HostArena();
      // scalars, p, g, m, v, out (element offsets, 16-byte aligned; fresh memory is zero)
      const offs = arena.reserve([8, size, size, size, size, size]);
      if (offs) this.offs = offs;
      else arena = undefined;
    }
    this.arena = arena;
    this.mJs = arena ? undefined : new Float32Array(size);
    this.vJs = arena ? undefined : new Float32Array(size);
  }

  /** out = p after one Adam step with gradient g (moments updated in place). */
  step(p: Float32Array, g: Float32Array, s: AdamScalars, out: Float32Array): void {
    const n = this.size;
    if (!this.arena) {
      adamStepHost(p, g, this.mJs!, this.vJs!, s, out);
      return;
    }
    if (p.length !== n || g.length !== n || out.length !== n) throw new RangeError(`AdamSlot: lengths ${n}, ${p.length}, ${g.length}, ${out.length}`);
    const f = this.arena.f32;
    const [so, po, go, mo, vo, oo] = this.offs as [number, number, number, number, number, number];
    f[so] = s.beta1;
    f[so + 1] = s.oneMinusBeta1;
    f[so + 2] = s.beta2;
    f[so + 3] = s.oneMinusBeta2;
    f[so + 4] = s.c1;
    f[so + 5] = s.c2;
    f[so + 6] = s.epsilon;
    f[so + 7] = s.negLr;
    f.set(p, po);
    f.set(g, go);
    const n4 = n & ~3;
    this.arena.k.adam4(po * 4, go * 4, mo * 4, vo * 4, oo * 4, n4 * 4, so * 4);
    out.set(f.subarray(oo, oo + n4));
    if (n4 < n) adamStepHost(p.subarray(n4), g.subarray(n4), f.subarray(mo + n4, mo + n), f.subarray(vo + n4, vo + n), s, out.subarray(n4));
  }
}
