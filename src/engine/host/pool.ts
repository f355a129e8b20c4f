/**
 * Max-pooling backward on the host (issue 18: host kernels at memory bandwidth), NHWC, float32.
 *
 * tfjs' MaxPoolGrad receives the pooling input x, its output y and dy — no arg-max indices. The
 * gradient of each output goes to the FIRST window position, in row-major window order, whose
 * value is the maximum (tfjs picks the maximum with a strict '>', so that is the first position
 * equal to y; `===` also makes −0 and +0 equal, as '>' does). Positions outside the input
 * (padding) never receive it. NaN windows route nothing (tfjs' choice there is arbitrary too).
 *
 * One pass: per output pixel and channel, up to kh·kw compares against y and one add into dx;
 * in WebAssembly SIMD (four channels at a time) where the geometry allows, else in JS.
 * It replaces a ~25-node elementwise ONNX graph (MaxPoolGrad in kernels/conv.ts before issue
 * 18) that read x kh·kw times and materialised masks and padded copies per window offset.
 */
import { HostArena, simdAvailable } from './simd.js';

export interface PoolGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  /** top/left padding (bottom/right padding needs no handling: those positions are clipped). */
  pt: number;
  pl: number;
}

let arena: HostArena | null | undefined;

/**
 * The WebAssembly SIMD form (simd.ts maxPoolGradEq4: four channels per instruction, masked adds
 * instead of a scatter) for unpadded windows and channel counts that are multiples of 4; the
 * copies in and out of the wasm memory are included. undefined where it does not apply.
 */
function maxPoolGradSimd(x: Float32Array, y: Float32Array, dy: Float32Array, g: PoolGeometry): Float32Array | undefined {
  const { n, h, w, c, ho, wo, kh, kw, sh, sw, pt, pl } = g;
  if (c % 4 !== 0 || pt !== 0 || pl !== 0 || (ho - 1) * sh + kh > h || (wo - 1) * sw + kw > w) return undefined;
  if (arena === undefined) arena = simdAvailable() ? new HostArena() : null;
  if (!arena) return undefined;
  const size = n * h * w * c;
  const count = n * ho * wo * c;
  const offs = arena.reserve([size, count, count, size]);
  if (!offs) return undefined;
  const [xo, yo, dyo, dxo] = offs as [number, number, number, number];
  const f = arena.f32;
  f.set(x, xo);
  f.set(y, yo);
  f.set(dy, dyo);
  f.fill(0, dxo, dxo + size);
  arena.k.maxPoolGradEq4(xo * 4, yo * 4, dyo * 4, dxo * 4, n, h, w, c, kh, kw, sh, sw, ho, wo);
  return f.slice(dxo, dxo + size);
}

/** Selects the pass: 'auto' (SIMD where it applies, else JS), or one of them (tests, benchmarks). */
export const poolTuning = { maxPoolGrad: 'auto' as 'auto' | 'js' };

/** dx (fresh, zero-initialised, shape of x) for max pooling with the given geometry. */
export function maxPoolGradHost(x: Float32Array, y: Float32Array, dy: Float32Array, g: PoolGeometry): Float32Array {
  const { n, h, w, c, ho, wo, kh, kw, sh, sw, pt, pl } = g;
  if (poolTuning.maxPoolGrad === 'auto') {
    const r = maxPoolGradSimd(x, y, dy, g);
    if (r) return r;
  }
  const size = n * h * w * c;
  if (kh === 2 && kw === 2 && pt === 0 && pl === 0 && (ho - 1) * sh + 2 <= h && (wo - 1) * sw + 2 <= w) {
    // one slot more for the no-match sink (see grad2x2); the tensor is a view without it
    const buf = new Float32Array(size + 1);
    grad2x2(x, y, dy, buf, n, h, w, c, ho, wo, sh, sw);
    return buf.subarray(0, size);
  }
  const dx = new Float32Array(size);
  const wc = w * c;
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const y0 = oy * sh - pt;
      const ky0 = Math.max(0, -y0);
      const ky1 = Math.min(kh, h - y0);
      for (let ox = 0; ox < wo; ox++, o += c) {
        const x0 = ox * sw - pl;
        const kx0 = Math.max(0, -x0);
        const kx1 = Math.min(kw, w - x0);
        for (let ch = 0; ch < c; ch++) {
          const m = y[o + ch]!;
          let found = -1;
          for (let ky = ky0; ky < ky1 && found < 0; ky++) {
            let r = xb + (y0 + ky) * wc + (x0 + kx0) * c + ch;
            for (let kx = kx0; kx < kx1; kx++, r += c) {
              if (x[r] === m) {
                found = r;
                break;
              }
            }
          }
          if (found >= 0) dx[found] += dy[o + ch]!;
        }
      }
    }
  }
  return dx;
}

/**
 * 2×2 windows fully inside the input (the reference CNN's and the eval CNN's pools), written
 * without data-dependent branches: after a ReLU about half the windows tie at zero and the
 * matching position is random, so a compare-and-branch chain mispredicts on most outputs (7.7 vs
 * 4.1 ms CPU on the reference CNN's first pool at batch 256; int32-bit compares: 4.3 ms). `dx` has
 * one extra slot at index `x.length` that receives the gradient of windows without a match
 * (NaN); the caller cuts it off.
 */
function grad2x2(x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array, n: number, h: number, w: number, c: number, ho: number, wo: number, sh: number, sw: number): void {
  const wc = w * c;
  const sink = x.length;
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const row = xb + oy * sh * wc;
      for (let ox = 0; ox < wo; ox++) {
        const p = row + ox * sw * c;
        for (let ch = 0; ch < c; ch++, o++) {
          const m = y[o]!;
          const r0 = p + ch;
          // 1 where the window position holds the maximum, in window order (0,0), (0,1), (1,0), (1,1)
          const e0 = +(x[r0]! === m);
          const e1 = +(x[r0 + c]! === m);
          const e2 = +(x[r0 + wc]! === m);
          const e3 = +(x[r0 + wc + c]! === m);
          // the first of them, as 0/1 selectors
          const n0 = 1 - e0;
          const p1 = e1 & n0;
          const n1 = n0 & (1 - e1);
          const p2 = e2 & n1;
          const p3 = e3 & n1 & (1 - e2);
          const hit = e0 | p1 | p2 | p3;
          dx[(r0 + p1 * c + p2 * wc + p3 * (wc + c)) * hit + sink * (1 - hit)] += dy[o]!;
        }
      }
    }
  }
}
