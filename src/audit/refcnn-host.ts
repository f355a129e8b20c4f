/**
 * The reference CNN in float64 host math, for the layer-wise gradient-inversion attack.
 *
 * The network is tiny (≈0.4 M multiply-adds per pass on MNIST), so plain loops over Float64Arrays
 * are fast enough and avoid float32 round-off in the attack's least-squares residuals. Layout
 * matches src/audit/refcnn.ts (NHWC activations, HWIO filters, symmetric zero padding applied to
 * the *normalised* input, 2×2 stride-1 max-pool whose ties go to the first of (0,0),(0,1),(1,0),
 * (1,1) as tfjs' nested `maximum` does).
 */
import { MNIST_MEAN, MNIST_STD } from './refcnn.js';

/** Spatial geometry of the reference CNN for an H×W×C input. */
export interface RefCnnDims {
  H: number;
  W: number;
  C: number;
  K: number;
  /** conv1 output (before pool): H1×W1×16 */
  H1: number;
  W1: number;
  /** pool1 output: P1h×P1w×16 */
  P1h: number;
  P1w: number;
  /** conv2 output: H2×W2×32 */
  H2: number;
  W2: number;
  /** pool2 output: P2h×P2w×32 (flattened: the input of fc1) */
  P2h: number;
  P2w: number;
  flat: number;
}

export function refCnnDims(H: number, W: number, C: number, K: number): RefCnnDims {
  const H1 = Math.floor((H + 6 - 8) / 2) + 1;
  const W1 = Math.floor((W + 6 - 8) / 2) + 1;
  const P1h = H1 - 1;
  const P1w = W1 - 1;
  const H2 = Math.floor((P1h - 4) / 2) + 1;
  const W2 = Math.floor((P1w - 4) / 2) + 1;
  const P2h = H2 - 1;
  const P2w = W2 - 1;
  if (!(P2h > 0 && P2w > 0)) throw new RangeError(`reference CNN: input ${H}×${W} is too small`);
  return { H, W, C, K, H1, W1, P1h, P1w, H2, W2, P2h, P2w, flat: P2h * P2w * 32 };
}

/** Parameters as float64 arrays, in refCnnShapes order. */
export interface HostParams {
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
  f1w: Float64Array;
  f1b: Float64Array;
  f2w: Float64Array;
  f2b: Float64Array;
}

export function hostParams(arrays: ArrayLike<number>[]): HostParams {
  if (arrays.length !== 8) throw new RangeError(`reference CNN has 8 parameter tensors, got ${arrays.length}`);
  const f = (i: number): Float64Array => Float64Array.from(arrays[i]!);
  return { w1: f(0), b1: f(1), w2: f(2), b2: f(3), f1w: f(4), f1b: f(5), f2w: f(6), f2b: f(7) };
}

/**
 * Visits every (output pixel, kernel tap) pair of a k×k convolution (stride, zero padding) whose
 * input pixel lies inside the image: `visit(ob, ib, wb)` gets the offsets of the output pixel
 * (× oc), the input pixel (× ic) and the tap's weight row (× ic). `skip(ob)` may drop an output
 * pixel (e.g. a zero upstream gradient). The three conv functions below differ only in `visit`.
 */
function forEachConvTap(oh: number, ow: number, oc: number, k: number, ih: number, iw: number, ic: number, stride: number, pad: number, visit: (ob: number, ib: number, wb: number) => void, skip?: (ob: number) => boolean): void {
  for (let p = 0; p < oh; p++)
    for (let q = 0; q < ow; q++) {
      const ob = (p * ow + q) * oc;
      if (skip?.(ob)) continue;
      for (let u = 0; u < k; u++) {
        const iy = p * stride + u - pad;
        if (iy < 0 || iy >= ih) continue;
        for (let v = 0; v < k; v++) {
          const ix = q * stride + v - pad;
          if (ix < 0 || ix >= iw) continue;
          visit(ob, (iy * iw + ix) * ic, (u * k + v) * ic);
        }
      }
    }
}

/** Calls `f(x, c)` for each non-zero channel value x = inp[ib + c] of one input pixel (inputs are sparse after ReLU). */
function forEachNonZeroInput(inp: Float64Array, ib: number, ic: number, f: (xv: number, c: number) => void): void {
  for (let c = 0; c < ic; c++) {
    const xv = inp[ib + c]!;
    if (xv !== 0) f(xv, c);
  }
}

/** out[p,q,o] = bias[o] + Σ w[u,v,c,o]·inp[s·p+u−pad, s·q+v−pad, c] (zero padding). */
export function conv2dForward(inp: Float64Array, ih: number, iw: number, ic: number, w: Float64Array, k: number, oc: number, stride: number, pad: number, bias: Float64Array | null): { out: Float64Array; oh: number; ow: number } {
  const oh = Math.floor((ih + 2 * pad - k) / stride) + 1;
  const ow = Math.floor((iw + 2 * pad - k) / stride) + 1;
  const out = new Float64Array(oh * ow * oc);
  if (bias) for (let b = 0; b < oh * ow; b++) for (let o = 0; o < oc; o++) out[b * oc + o] = bias[o]!;
  forEachConvTap(oh, ow, oc, k, ih, iw, ic, stride, pad, (ob, ib, wb) => forEachNonZeroInput(inp, ib, ic, (xv, c) => {
    const wr = (wb + c) * oc;
    for (let o = 0; o < oc; o++) out[ob + o] += xv * w[wr + o]!;
  }));
  return { out, oh, ow };
}

/** ∂/∂inp of Σ dy·conv(inp, w): dinp[s·p+u−pad, s·q+v−pad, c] += Σ_o w[u,v,c,o]·dy[p,q,o]. Adds into `dinp`. */
export function conv2dBackInput(dy: Float64Array, oh: number, ow: number, oc: number, w: Float64Array, k: number, ih: number, iw: number, ic: number, stride: number, pad: number, dinp: Float64Array): void {
  const zeroGradient = (ob: number): boolean => {
    for (let o = 0; o < oc; o++) if (dy[ob + o] !== 0) return false;
    return true;
  };
  forEachConvTap(oh, ow, oc, k, ih, iw, ic, stride, pad, (ob, ib, wb) => {
    for (let c = 0; c < ic; c++) {
      const wr = (wb + c) * oc;
      let s = 0;
      for (let o = 0; o < oc; o++) s += w[wr + o]! * dy[ob + o]!;
      dinp[ib + c] += s;
    }
  }, zeroGradient);
}

/** ∂/∂w of Σ dy·conv(inp, w): dw[u,v,c,o] = Σ_{p,q} inp[s·p+u−pad, s·q+v−pad, c]·dy[p,q,o]. */
export function conv2dBackFilter(inp: Float64Array, ih: number, iw: number, ic: number, dy: Float64Array, oh: number, ow: number, oc: number, k: number, stride: number, pad: number): Float64Array {
  const dw = new Float64Array(k * k * ic * oc);
  forEachConvTap(oh, ow, oc, k, ih, iw, ic, stride, pad, (ob, ib, wb) => forEachNonZeroInput(inp, ib, ic, (xv, c) => {
    const wr = (wb + c) * oc;
    for (let o = 0; o < oc; o++) dw[wr + o] += xv * dy[ob + o]!;
  }));
  return dw;
}

/** ReLU then 2×2 stride-1 max-pool; returns pooled values and, per output, the flat index of the winner. */
export function reluMaxPool(z: Float64Array, h: number, w: number, c: number): { out: Float64Array; arg: Int32Array } {
  const oh = h - 1;
  const ow = w - 1;
  const out = new Float64Array(oh * ow * c);
  const arg = new Int32Array(oh * ow * c);
  for (let i = 0; i < oh; i++)
    for (let j = 0; j < ow; j++)
      for (let ch = 0; ch < c; ch++) {
        const i00 = (i * w + j) * c + ch;
        const cand = [i00, i00 + c, i00 + w * c, i00 + w * c + c];
        let best = cand[0]!;
        let bv = Math.max(0, z[best]!);
        for (let t = 1; t < 4; t++) {
          const v = Math.max(0, z[cand[t]!]!);
          if (v > bv) {
            bv = v;
            best = cand[t]!;
          }
        }
        const o = (i * ow + j) * c + ch;
        out[o] = bv;
        arg[o] = best;
      }
  return { out, arg };
}

/** Back through max-pool (routing by `arg`) and ReLU (mask z > 0): dz[arg[o]] += dout[o]. */
export function poolReluBack(dout: Float64Array, arg: Int32Array, z: Float64Array): Float64Array {
  const dz = new Float64Array(z.length);
  for (let o = 0; o < dout.length; o++) {
    const i = arg[o]!;
    if (z[i]! > 0) dz[i] += dout[o]!;
  }
  return dz;
}

/** Forward activations of the conv part for pixels in [0, 1]. */
export interface HostForward {
  xn: Float64Array;
  z1: Float64Array;
  h1: Float64Array;
  arg1: Int32Array;
  z2: Float64Array;
  a: Float64Array;
  arg2: Int32Array;
}

export function hostForward(d: RefCnnDims, p: HostParams, pixels: ArrayLike<number>): HostForward {
  const n = d.H * d.W * d.C;
  const xn = new Float64Array(n);
  for (let i = 0; i < n; i++) xn[i] = (pixels[i]! - MNIST_MEAN) / MNIST_STD;
  const z1 = conv2dForward(xn, d.H, d.W, d.C, p.w1, 8, 16, 2, 3, p.b1).out;
  const { out: h1, arg: arg1 } = reluMaxPool(z1, d.H1, d.W1, 16);
  const z2 = conv2dForward(h1, d.P1h, d.P1w, 16, p.w2, 4, 32, 2, 0, p.b2).out;
  const { out: a, arg: arg2 } = reluMaxPool(z2, d.H2, d.W2, 32);
  return { xn, z1, h1, arg1, z2, a, arg2 };
}

/** Logits of the full network (host math; used to cross-check the tfjs model). */
export function hostLogits(d: RefCnnDims, p: HostParams, pixels: ArrayLike<number>): Float64Array {
  const { a } = hostForward(d, p, pixels);
  const h = new Float64Array(32);
  for (let j = 0; j < 32; j++) {
    let s = p.f1b[j]!;
    for (let i = 0; i < d.flat; i++) s += a[i]! * p.f1w[i * 32 + j]!;
    h[j] = Math.max(0, s);
  }
  const z = new Float64Array(d.K);
  for (let k = 0; k < d.K; k++) {
    let s = p.f2b[k]!;
    for (let j = 0; j < 32; j++) s += h[j]! * p.f2w[j * d.K + k]!;
    z[k] = s;
  }
  return z;
}
