/**
 * Fixed-point encoding of real vectors into Z_{2^32} for secure aggregation: v ↦ round(v · scale)
 * as a two's-complement uint32. The sum of n encodings decodes correctly (no wrap-around) as long as
 * n · max|round(v_i · scale)| < 2^31: the caller picks `scale` with that headroom
 * (`headroomScale`). Rounding is unbiased randomized rounding (E[round(x)] = x) with randomness
 * from a RandomSource, so the quantised mean is an unbiased estimate of the real mean.
 */
import type { RandomSource } from '../privacy/index.js';

/** Largest scale with n · (bound · scale + 1) < 2^31 (sum of n values of |v| <= bound cannot wrap). */
export function headroomScale(n: number, bound: number): number {
  if (!(n >= 1 && bound > 0)) throw new RangeError('headroomScale needs n >= 1 and bound > 0');
  return Math.floor((2 ** 31 - 1) / n - 1) / bound;
}

/** x → uint32 of randomized round(x · scale); values outside ±2^31 are an error. */
export function quantize(x: ArrayLike<number>, scale: number, rng: RandomSource): Uint32Array {
  const out = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]! * scale;
    const f = Math.floor(v);
    const q = f + (rng.nextDouble() < v - f ? 1 : 0);
    if (!(Math.abs(q) < 2 ** 31)) throw new RangeError(`quantize: value ${x[i]} × ${scale} does not fit in 32 bits`);
    out[i] = q; // ToUint32: two's complement
  }
  return out;
}

/** Signed value of each uint32 (two's complement) divided by `scale`. */
export function dequantize(sum: Uint32Array, scale: number): Float64Array {
  const out = new Float64Array(sum.length);
  const signed = new Int32Array(sum.buffer, sum.byteOffset, sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = signed[i]! / scale;
  return out;
}
