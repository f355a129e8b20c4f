/**
 * im2col / col2im on plain typed arrays (NHWC), used by Conv2d's patch path: the patches serve
 * the forward matmul, the per-sample gradients/ghost norms and the weighted weight gradient, so
 * they are built once per step. Backend-independent (reads the input with dataSync). With a
 * `scratch` buffer the result is a view of it: the caller must not use it after the buffer is
 * reused (first-touching fresh pages costs far more than the copy itself on this kind of host).
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

/** Valid kernel-tap range [lo, hi) per output position along one axis (taps hitting padding excluded). */
function tapRanges(out: number, stride: number, pad: number, dil: number, k: number, size: number): { lo: Int32Array; hi: Int32Array } {
  const lo = new Int32Array(out);
  const hi = new Int32Array(out);
  for (let o = 0; o < out; o++) {
    const start = o * stride - pad;
    let a = 0;
    while (a < k && start + a * dil < 0) a++;
    let b = k;
    while (b > a && start + (b - 1) * dil >= size) b--;
    lo[o] = a;
    hi[o] = b;
  }
  return { lo, hi };
}

function take(scratch: Float32Array | undefined, size: number): Float32Array {
  if (scratch && scratch.length >= size) {
    const v = scratch.subarray(0, size);
    v.fill(0);
    return v;
  }
  return new Float32Array(size);
}

/** x [n, h, w, c] → patches [n·ho·wo, kh·kw·c], column (ki·kw + kj)·c + ch (matches HWIO weights). */
export function im2col(x: Float32Array, g: ConvGeometry, scratch?: Float32Array): Float32Array {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo } = g;
  const K = kh * kw * c;
  const size = n * ho * wo * K;
  // Every patch row is written; rows with taps in the padding are zeroed first (below).
  const out = scratch && scratch.length >= size ? scratch.subarray(0, size) : new Float32Array(size);
  const ry = tapRanges(ho, sh, pt, dh, kh, h);
  const rx = tapRanges(wo, sw, pl, dw, kw, w);
  const wc = w * c;
  const kwc = kw * c;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const kiLo = ry.lo[oy]!;
      const kiHi = ry.hi[oy]!;
      const y0 = oy * sh - pt;
      for (let ox = 0; ox < wo; ox++) {
        const kjLo = rx.lo[ox]!;
        const kjHi = rx.hi[ox]!;
        const x0 = ox * sw - pl;
        const base = ((b * ho + oy) * wo + ox) * K;
        if (kiLo > 0 || kiHi < kh || kjLo > 0 || kjHi < kw) out.fill(0, base, base + K);
        for (let ki = kiLo; ki < kiHi; ki++) {
          const row = xb + (y0 + ki * dh) * wc + x0 * c;
          const dst = base + ki * kwc;
          if (c === 1) {
            for (let kj = kjLo; kj < kjHi; kj++) out[dst + kj] = x[row + kj * dw]!;
          } else {
            for (let kj = kjLo; kj < kjHi; kj++) {
              const s = row + kj * dw * c;
              const d = dst + kj * c;
              for (let ch = 0; ch < c; ch++) out[d + ch] = x[s + ch]!;
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
  const K = kh * kw * c;
  const dx = take(scratch, n * h * w * c);
  const ry = tapRanges(ho, sh, pt, dh, kh, h);
  const rx = tapRanges(wo, sw, pl, dw, kw, w);
  const wc = w * c;
  const kwc = kw * c;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const kiLo = ry.lo[oy]!;
      const kiHi = ry.hi[oy]!;
      const y0 = oy * sh - pt;
      for (let ox = 0; ox < wo; ox++) {
        const kjLo = rx.lo[ox]!;
        const kjHi = rx.hi[ox]!;
        const x0 = ox * sw - pl;
        const base = ((b * ho + oy) * wo + ox) * K;
        for (let ki = kiLo; ki < kiHi; ki++) {
          const row = xb + (y0 + ki * dh) * wc + x0 * c;
          const src = base + ki * kwc;
          for (let kj = kjLo; kj < kjHi; kj++) {
            const d = row + kj * dw * c;
            const s = src + kj * c;
            for (let ch = 0; ch < c; ch++) dx[d + ch] += dp[s + ch]!;
          }
        }
      }
    }
  }
  return dx;
}

/**
 * Max pooling ('valid' padding) over NHWC with the arg-max of every output kept for the backward
 * pass. Ties go to the first position in row-major window order, as in tfjs' kernels. With
 * `relu`, returns relu(maxpool(x)) (= maxpool(relu(x))) and marks non-positive maxima arg −1.
 */
export function maxPoolForward(x: Float32Array, n: number, h: number, w: number, c: number, kh: number, kw: number, sh: number, sw: number, out: Float32Array, arg: Int32Array, relu = false): { ho: number; wo: number } {
  const ho = Math.floor((h - kh) / sh) + 1;
  const wo = Math.floor((w - kw) / sw) + 1;
  if (relu) {
    // After the ReLU every candidate is >= 0, and non-negative float32 values order exactly like
    // their bit patterns read as int32; that lets the loop select branch-free with integer masks
    // (a float compare-and-branch mispredicts on every other element: ~3× slower here).
    const xi = new Int32Array(x.buffer, x.byteOffset, n * h * w * c);
    const oi = new Int32Array(out.buffer, out.byteOffset, n * ho * wo * c);
    if (kh === 2 && kw === 2) maxPoolRelu2x2(xi, n, h, w, c, sh, sw, ho, wo, oi, arg);
    else maxPoolRelu(xi, n, h, w, c, kh, kw, sh, sw, ho, wo, oi, arg);
    return { ho, wo };
  }
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * c;
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++, o += c) {
        const p0 = xb + (oy * sh * w + ox * sw) * c;
        // channels innermost: contiguous reads; strict '>' in window order keeps the first max
        for (let ch = 0; ch < c; ch++) {
          out[o + ch] = x[p0 + ch]!;
          arg[o + ch] = p0 + ch;
        }
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = ky === 0 ? 1 : 0; kx < kw; kx++) {
            const r = p0 + (ky * w + kx) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[r + ch]!;
              if (v > out[o + ch]!) {
                out[o + ch] = v;
                arg[o + ch] = r + ch;
              }
            }
          }
        }
      }
    }
  }
  return { ho, wo };
}

/*
 * Branch-free relu∘maxpool on int32 views of float32 data. Per candidate bit pattern v:
 * v &= ~(v >> 31) is the ReLU (negative floats have the sign bit set, −0 included); then with
 * both operands in [0, 2³¹), m = (best − v) >> 31 is −1 exactly when v > best, and
 * best ^= (best ^ v) & m, arg ^= (arg ^ r) & m select without a branch. best starts at 0 with
 * arg −1, so an all-non-positive window yields 0 and arg −1; strict '>' keeps the first maximum.
 */
function maxPoolRelu(x: Int32Array, n: number, h: number, w: number, c: number, kh: number, kw: number, sh: number, sw: number, ho: number, wo: number, out: Int32Array, arg: Int32Array): void {
  const wc = w * c;
  const swc = sw * c;
  const shwc = sh * wc;
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const py = xb + oy * shwc;
      for (let ox = 0; ox < wo; ox++) {
        const p0 = py + ox * swc;
        for (let ch = 0; ch < c; ch++, o++) {
          let best = 0;
          let bi = -1;
          let r0 = p0 + ch;
          for (let ky = 0; ky < kh; ky++, r0 += wc) {
            let r = r0;
            for (let kx = 0; kx < kw; kx++, r += c) {
              let v = x[r]!;
              v &= ~(v >> 31);
              const m = (best - v) >> 31;
              best ^= (best ^ v) & m;
              bi ^= (bi ^ r) & m;
            }
          }
          out[o] = best;
          arg[o] = bi;
        }
      }
    }
  }
}

/** maxPoolRelu unrolled for 2×2 windows (the reference CNN's pools). */
function maxPoolRelu2x2(x: Int32Array, n: number, h: number, w: number, c: number, sh: number, sw: number, ho: number, wo: number, out: Int32Array, arg: Int32Array): void {
  const wc = w * c;
  const swc = sw * c;
  const shwc = sh * wc;
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * wc;
    for (let oy = 0; oy < ho; oy++) {
      const py = xb + oy * shwc;
      for (let ox = 0; ox < wo; ox++) {
        const p0 = py + ox * swc;
        for (let ch = 0; ch < c; ch++, o++) {
          const r0 = p0 + ch;
          const r1 = r0 + c;
          const r2 = r0 + wc;
          const r3 = r2 + c;
          let best = x[r0]!;
          best &= ~(best >> 31);
          // arg r0 if the first candidate is > 0, else −1
          let bi = r0 ^ ((r0 ^ -1) & ((best - 1) >> 31));
          let v = x[r1]!;
          v &= ~(v >> 31);
          let m = (best - v) >> 31;
          best ^= (best ^ v) & m;
          bi ^= (bi ^ r1) & m;
          v = x[r2]!;
          v &= ~(v >> 31);
          m = (best - v) >> 31;
          best ^= (best ^ v) & m;
          bi ^= (bi ^ r2) & m;
          v = x[r3]!;
          v &= ~(v >> 31);
          m = (best - v) >> 31;
          best ^= (best ^ v) & m;
          bi ^= (bi ^ r3) & m;
          out[o] = best;
          arg[o] = bi;
        }
      }
    }
  }
}

/**
 * Backward of maxPoolForward: routes each output gradient to its arg-max input position (arg −1:
 * none). `dx` must hold one slot more than the input (index `inputSize`): arg −1 is sent there,
 * which keeps the scatter loop free of a data-dependent branch.
 */
export function maxPoolBackward(dy: Float32Array, arg: Int32Array, count: number, dx: Float32Array, inputSize: number): void {
  if (dx.length <= inputSize) throw new RangeError(`maxPoolBackward: dx needs ${inputSize + 1} slots, has ${dx.length}`);
  dx.fill(0, 0, inputSize + 1);
  const sink = inputSize + 1;
  for (let i = 0; i < count; i++) {
    const a = arg[i]!;
    dx[a + ((a >> 31) & sink)]! += dy[i]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Run-table im2col/col2im for the WebAssembly SIMD kernels (simd.ts)

/**
 * Padded-input layout for run-based im2col: the input sits at (pt, pl) inside an [hp, wp] zero
 * frame that covers every kernel tap, so each (output position, kernel row) reads kw·c contiguous
 * floats (needs dw = 1). `tab` holds, per output position and kernel row, the run's byte offset
 * inside one padded sample. With no padding and nothing cropped the frame is the input itself.
 */
export interface RunLayout {
  hp: number;
  wp: number;
  /** The padded sample equals the input sample (no copy through a frame needed). */
  identity: boolean;
  tab: Int32Array;
}

export function runLayout(g: ConvGeometry): RunLayout | undefined {
  if (g.dw !== 1) return undefined;
  const needH = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const needW = (g.wo - 1) * g.sw + g.kw;
  const hp = Math.max(needH, g.pt + g.h);
  const wp = Math.max(needW, g.pl + g.w);
  const tab = new Int32Array(g.ho * g.wo * g.kh);
  let t = 0;
  for (let oy = 0; oy < g.ho; oy++)
    for (let ox = 0; ox < g.wo; ox++)
      for (let ki = 0; ki < g.kh; ki++) tab[t++] = ((oy * g.sh + ki * g.dh) * wp + ox * g.sw) * g.c * 4;
  return { hp, wp, identity: g.pt === 0 && g.pl === 0 && hp === g.h && wp === g.w, tab };
}

/** Writes x [n, h, w, c] into the zeroed padded frames at `dst` (element offset) of `buf`. */
export function padInto(x: Float32Array, g: ConvGeometry, lay: RunLayout, buf: Float32Array, dst: number): void {
  const { n, h, w, c, pt, pl } = g;
  const { hp, wp } = lay;
  if (lay.identity) {
    buf.set(x.subarray(0, n * h * w * c), dst);
    return;
  }
  const frame = hp * wp * c;
  buf.fill(0, dst, dst + n * frame);
  const wc = w * c;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++) {
      const yp = y + pt;
      if (yp >= hp) break;
      const s = (b * h + y) * wc;
      const d = dst + b * frame + (yp * wp + pl) * c;
      for (let i = 0; i < wc; i++) buf[d + i] = x[s + i]!;
    }
}

/** Inverse of padInto for gradients: the input-sized part of the padded frames, into `out`. */
export function cropFrom(buf: Float32Array, src: number, g: ConvGeometry, lay: RunLayout, out: Float32Array): Float32Array {
  const { n, h, w, c, pt, pl } = g;
  const { hp, wp } = lay;
  const frame = hp * wp * c;
  const wc = w * c;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++) {
      const yp = y + pt;
      const d = (b * h + y) * wc;
      if (yp >= hp) {
        // rows below the frame received no gradient
        out.fill(0, d, d + wc);
        continue;
      }
      const s = src + b * frame + (yp * wp + pl) * c;
      for (let i = 0; i < wc; i++) out[d + i] = buf[s + i]!;
    }
  return out;
}
