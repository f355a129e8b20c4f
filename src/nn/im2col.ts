/**
 * im2col / col2im on plain typed arrays (NHWC), used by Conv2d's patch path: the patches serve
 * the forward matmul, the per-sample gradients/ghost norms and the weighted weight gradient, so
 * they are built once per step. Written as tight loops over contiguous channel runs; backend-
 * independent (reads the input with dataSync). With a `scratch` buffer the result is a view of it:
 * the caller must not use it after the buffer is reused.
 */
export interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  /** top / left zero padding */
  pt: number;
  pl: number;
  ho: number;
  wo: number;
}

/** x [n, h, w, c] → patches [n·ho·wo, kh·kw·c], column (ki·kw + kj)·c + ch (matches HWIO weights). */
export function im2col(x: Float32Array, g: ConvGeometry, scratch?: Float32Array): Float32Array {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo } = g;
  const K = kh * kw * c;
  const size = n * ho * wo * K;
  // Reusing a scratch buffer matters: first-touching fresh pages costs far more than the copy.
  const out = scratch && scratch.length >= size ? scratch.subarray(0, size) : new Float32Array(size);
  if (scratch) out.fill(0);
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * c;
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ki = 0; ki < kh; ki++) {
          const iy = oy * sh - pt + ki * dh;
          if (iy < 0 || iy >= h) {
            o += kw * c; // zeros already
            continue;
          }
          const row = xb + iy * w * c;
          for (let kj = 0; kj < kw; kj++) {
            const ix = ox * sw - pl + kj * dw;
            if (ix < 0 || ix >= w) {
              o += c;
              continue;
            }
            const src = row + ix * c;
            if (c === 1) out[o++] = x[src]!;
            else {
              for (let ch = 0; ch < c; ch++) out[o + ch] = x[src + ch]!;
              o += c;
            }
          }
        }
      }
    }
  }
  return out;
}

/** Adjoint of im2col: patches-gradient [n·ho·wo, kh·kw·c] → input gradient [n, h, w, c]. */
export function col2im(dp: Float32Array, g: ConvGeometry, scratch?: Float32Array): Float32Array {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo } = g;
  const size = n * h * w * c;
  const dx = scratch && scratch.length >= size ? scratch.subarray(0, size) : new Float32Array(size);
  if (scratch) dx.fill(0);
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * c;
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ki = 0; ki < kh; ki++) {
          const iy = oy * sh - pt + ki * dh;
          if (iy < 0 || iy >= h) {
            o += kw * c;
            continue;
          }
          const row = xb + iy * w * c;
          for (let kj = 0; kj < kw; kj++) {
            const ix = ox * sw - pl + kj * dw;
            if (ix < 0 || ix >= w) {
              o += c;
              continue;
            }
            const dst = row + ix * c;
            for (let ch = 0; ch < c; ch++) dx[dst + ch] += dp[o + ch]!;
            o += c;
          }
        }
      }
    }
  }
  return dx;
}
