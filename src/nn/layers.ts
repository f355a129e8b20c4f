/**
 * Layers with explicit forward/backward and per-sample gradient records (see module.ts).
 * Tensors are NHWC for images and [N, ..., features] otherwise; batch is always axis 0.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type ConvGeometry, col2im, cropFrom, im2col, maxPoolBackward, maxPoolForward, padInto, type RunLayout, runLayout } from './im2col.js';
import { HostArena, simdAvailable } from './simd.js';
import { type GradSampleRecord, GradTape, type LayerSpec, ModelError, type Module, type Param, perSampleRecord } from './module.js';

// ---------------------------------------------------------------------------------------------
// Initialisation (not DP noise: model init may use tfjs' seeded PRNG)

let initSeed = 12345;
/** Seeds the weight initialiser (each new parameter draws from the next seed). */
export function setInitSeed(seed: number): void {
  initSeed = seed >>> 0;
}
function uniformInit(shape: number[], bound: number): tf.Tensor {
  initSeed = (initSeed * 1103515245 + 12345) >>> 0;
  return tf.randomUniform(shape, -bound, bound, 'float32', initSeed);
}
function param(name: string, init: tf.Tensor): Param {
  return { name, value: tf.variable(init, true, undefined, 'float32') };
}

type Pair = [number, number];
function pair(v: number | number[] | undefined, dflt: number, what: string): Pair {
  const p: number[] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 0)) throw new ModelError(`${what} must be a non-negative integer or a pair of them, got ${JSON.stringify(v)}`);
  return p as Pair;
}
function checkRank(x: tf.Tensor, rank: number, layer: string): void {
  if (x.rank !== rank) throw new ModelError(`${layer} expects a rank-${rank} input, got shape [${x.shape.join(', ')}]`);
}
function requireCache<T>(v: T | undefined, layer: string): T {
  if (v === undefined) throw new ModelError(`${layer}.backward called without a training forward pass`);
  return v;
}

/** Backends whose tensors live in host memory: reading them (dataSync) is free. */
function hostBackend(): boolean {
  const b = tf.getBackend();
  return b === 'ort' || b === 'cpu';
}

/**
 * Per-sample Σ a⊙b over each of the n rows of a (and b, same shape), or Σ a² without b.
 * On host backends a plain loop over the tensors' own buffers (float64 accumulation): the
 * elementwise product would be one more short-lived full-size native output, and such
 * allocations drive V8's external-memory-pressure GCs; elsewhere the tfjs ops.
 */
function rowDots(a: tf.Tensor, n: number, b?: tf.Tensor): tf.Tensor1D {
  if (!hostBackend() || a.dtype !== 'float32') {
    const p = b ? tf.mul(a, b) : tf.square(a);
    return tf.sum(tf.reshape(p, [n, -1]), 1) as tf.Tensor1D;
  }
  const x = a.dataSync() as Float32Array;
  const y = b ? (b.dataSync() as Float32Array) : x;
  const m = n ? x.length / n : 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * m;
    for (let j = 0; j < m; j++) s += x[o + j]! * y[o + j]!;
    out[i] = s;
  }
  return tf.tensor1d(out);
}

// ---------------------------------------------------------------------------------------------
// Dense

export interface DenseOptions {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}

/** y = x W + b over the last axis; W is [in, out]. Accepts [N, in] or [N, T..., in]. */
export class Dense implements Module {
  readonly type = 'dense';
  readonly weight: Param;
  readonly bias?: Param;
  private x?: tf.Tensor;
  constructor(readonly opts: DenseOptions) {
    const { inFeatures: i, outFeatures: o } = opts;
    if (!(Number.isInteger(i) && i > 0 && Number.isInteger(o) && o > 0)) throw new ModelError(`dense: inFeatures/outFeatures must be positive integers, got ${i}, ${o}`);
    const bound = 1 / Math.sqrt(i);
    this.weight = param('weight', uniformInit([i, o], bound));
    if (opts.bias !== false) this.bias = param('bias', uniformInit([o], bound));
  }
  parameters(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const d = this.opts.inFeatures;
    if (x.rank < 2 || x.shape[x.rank - 1] !== d) throw new ModelError(`dense: expected input [..., ${d}], got [${x.shape.join(', ')}]`);
    if (training) this.x = x;
    const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, d])) as tf.Tensor2D;
    // Training (manual backward): bias fused into the matmul. Inference keeps plain ops so tfjs
    // autodiff through forward stays differentiable to any order.
    let y: tf.Tensor;
    if (training) y = tf.fused.matMul({ a: x2, b: this.weight.value as tf.Tensor2D, bias: this.bias?.value });
    else {
      y = tf.matMul(x2, this.weight.value);
      if (this.bias) y = tf.add(y, this.bias.value);
    }
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.opts.outFeatures]);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const x = requireCache(this.x, 'dense');
    const { inFeatures: din, outFeatures: dout } = this.opts;
    const n = x.shape[0]!;
    const dy2 = tf.reshape(dy, [-1, dout]);
    const dx = tf.reshape(tf.matMul(dy2, this.weight.value, false, true), x.shape);
    const params = this.parameters();
    if (x.rank === 2) {
      const A = x as tf.Tensor2D;
      const B = dy as tf.Tensor2D;
      tape.push({
        params,
        // ghost norm: ||a_i b_iᵀ||² = ||a_i||²·||b_i||²
        sqNorms: () => {
          const bb = rowDots(B, n);
          const r = [tf.mul(rowDots(A, n), bb) as tf.Tensor1D];
          if (this.bias) r.push(bb);
          return r;
        },
        weightedSum: (w) => {
          const r: tf.Tensor[] = [tf.matMul(A, tf.mul(B, tf.reshape(w, [n, 1])), true, false)];
          if (this.bias) r.push(tf.reshape(tf.matMul(tf.reshape(w, [1, n]), B), [dout]));
          return r;
        },
        perSample: () => {
          const r: tf.Tensor[] = [tf.matMul(tf.reshape(A, [n, din, 1]), tf.reshape(B, [n, 1, dout]))];
          if (this.bias) r.push(B);
          return r;
        },
      });
    } else {
      const T = x.size / (n * din);
      const A = tf.reshape(x, [n, T, din]) as tf.Tensor3D;
      const B = tf.reshape(dy, [n, T, dout]) as tf.Tensor3D;
      let G: tf.Tensor | undefined;
      const gw = () => (G ??= tf.matMul(A, B, true, false));
      const gb = () => tf.sum(B, 1);
      // Ghost norm through Gram matrices when T²(din+dout) < T·din·dout.
      const ghost = T * (din + dout) < din * dout;
      tape.push({
        params,
        sqNorms: () => {
          const r: tf.Tensor1D[] = [ghost ? (tf.sum(tf.mul(tf.matMul(A, A, false, true), tf.matMul(B, B, false, true)), [1, 2]) as tf.Tensor1D) : (tf.sum(tf.square(gw()), [1, 2]) as tf.Tensor1D)];
          if (this.bias) r.push(tf.sum(tf.square(gb()), 1) as tf.Tensor1D);
          return r;
        },
        weightedSum: (w) => {
          const wb = tf.mul(B, tf.reshape(w, [n, 1, 1]));
          const r: tf.Tensor[] = [tf.matMul(tf.reshape(A, [n * T, din]), tf.reshape(wb, [n * T, dout]), true, false)];
          if (this.bias) r.push(tf.sum(wb, [0, 1]));
          return r;
        },
        perSample: () => (this.bias ? [gw(), gb()] : [gw()]),
      });
    }
    this.x = undefined;
    return dx;
  }
  spec(): LayerSpec {
    return { type: 'dense', units: this.opts.outFeatures, inFeatures: this.opts.inFeatures, bias: this.opts.bias !== false };
  }
}

// ---------------------------------------------------------------------------------------------
// Conv2d

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernel: number | [number, number];
  stride?: number | [number, number];
  /** Zero padding per side (number or [h, w]), or 'same' / 'valid' (default 0). */
  padding?: number | [number, number] | 'same' | 'valid';
  dilation?: number | [number, number];
  groups?: number;
  bias?: boolean;
  /**
   * How per-sample weight-gradient norms are formed: 'auto' (default) picks the cheaper of
   * materialising per-sample gradients from im2col patches (N·L·K·C flops) and the ghost norm
   * through Gram matrices (N·L²·(K+C)), where L = output positions, K = kh·kw·Cin/groups.
   */
  normMode?: 'auto' | 'materialize' | 'ghost';
  /**
   * 'patches' (default for groups = 1): im2col patches built once per step feed the forward matmul,
   * the per-sample norms and the weighted weight gradient; 'conv': convolution kernels, with the
   * patches formed by a one-hot convolution only when needed (used for groups > 1).
   */
  impl?: 'patches' | 'conv';
}

type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];

/** 2-D convolution, NHWC input, weight [kh, kw, Cin/groups, Cout] (tfjs layout). */
export class Conv2d implements Module {
  readonly type = 'conv2d';
  readonly weight: Param;
  readonly bias?: Param;
  readonly k: Pair;
  readonly s: Pair;
  readonly d: Pair;
  readonly groups: number;
  private unfoldFilter?: tf.Tensor4D;
  private x?: tf.Tensor4D;
  private cachedPatches?: { P: tf.Tensor2D; geo: ConvGeometry };
  /** Reused host buffers for patches / input gradients (valid until the next training step). */
  private scratchP?: Float32Array;
  private scratchDx?: Float32Array;
  /** WebAssembly SIMD path: patches live in `arenaF` (forward), input gradients in `arenaB`. */
  private arenaF?: HostArena;
  private arenaB?: HostArena;
  private layout?: { key: string; lay: RunLayout | undefined };
  constructor(readonly opts: Conv2dOptions) {
    const { inChannels: ci, outChannels: co } = opts;
    this.k = pair(opts.kernel, 1, 'conv2d kernel');
    this.s = pair(opts.stride, 1, 'conv2d stride');
    this.d = pair(opts.dilation, 1, 'conv2d dilation');
    this.groups = opts.groups ?? 1;
    if (!(Number.isInteger(ci) && ci > 0 && Number.isInteger(co) && co > 0)) throw new ModelError(`conv2d: inChannels/outChannels must be positive integers, got ${ci}, ${co}`);
    if (this.k.some((v) => v < 1) || this.s.some((v) => v < 1) || this.d.some((v) => v < 1)) throw new ModelError('conv2d: kernel, stride and dilation must be >= 1');
    if (!Number.isInteger(this.groups) || this.groups < 1 || ci % this.groups || co % this.groups) throw new ModelError(`conv2d: groups (${this.groups}) must divide inChannels (${ci}) and outChannels (${co})`);
    if (typeof opts.padding === 'string' && opts.padding !== 'same' && opts.padding !== 'valid') throw new ModelError(`conv2d: padding must be a number, [h, w], 'same' or 'valid', got ${opts.padding}`);
    if (typeof opts.padding !== 'string') pair(opts.padding as number | [number, number] | undefined, 0, 'conv2d padding');
    const fanIn = (ci / this.groups) * this.k[0] * this.k[1];
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = param('weight', uniformInit([this.k[0], this.k[1], ci / this.groups, co], bound));
    if (opts.bias !== false) this.bias = param('bias', uniformInit([co], bound));
  }
  parameters(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
  /** Effective (dilated) kernel extent. */
  private get ke(): Pair {
    return [(this.k[0] - 1) * this.d[0] + 1, (this.k[1] - 1) * this.d[1] + 1];
  }
  private pad(h: number, w: number): ExplicitPad {
    const p = this.opts.padding ?? 0;
    const [keh, kew] = this.ke;
    if (p === 'valid') return [[0, 0], [0, 0], [0, 0], [0, 0]];
    if (p === 'same') {
      const th = Math.max((Math.ceil(h / this.s[0]) - 1) * this.s[0] + keh - h, 0);
      const tw = Math.max((Math.ceil(w / this.s[1]) - 1) * this.s[1] + kew - w, 0);
      return [[0, 0], [Math.floor(th / 2), th - Math.floor(th / 2)], [Math.floor(tw / 2), tw - Math.floor(tw / 2)], [0, 0]];
    }
    const [ph, pw] = pair(p, 0, 'padding');
    return [[0, 0], [ph, ph], [pw, pw], [0, 0]];
  }
  /** Kernel with zeros inserted between taps, so dilation works with any stride in every kernel. */
  private dilatedKernel(w: tf.Tensor4D): tf.Tensor4D {
    const [dh, dw] = this.d;
    if (dh === 1 && dw === 1) return w;
    const [kh, kw, ci, co] = w.shape;
    const t = tf.reshape(tf.pad(tf.reshape(w, [kh, 1, kw, 1, ci, co]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]), [kh * dh, kw * dw, ci, co]);
    return tf.slice(t, [0, 0, 0, 0], [this.ke[0], this.ke[1], ci, co]) as tf.Tensor4D;
  }
  private groupWeights(): tf.Tensor4D[] {
    const w = this.dilatedKernel(this.weight.value as tf.Variable<tf.Rank.R4>);
    return this.groups === 1 ? [w] : (tf.split(w, this.groups, 3) as tf.Tensor4D[]);
  }
  /** One-hot filter that turns a convolution into im2col: output channel (ki·kw+kj)·ci+c. */
  private unfold(): tf.Tensor4D {
    if (!this.unfoldFilter) {
      const [kh, kw] = this.k;
      const [keh, kew] = this.ke;
      const ci = this.opts.inChannels / this.groups;
      const K = kh * kw * ci;
      const buf = new Float32Array(keh * kew * ci * K);
      for (let a = 0; a < kh; a++)
        for (let b = 0; b < kw; b++)
          for (let c = 0; c < ci; c++) {
            const y = a * this.d[0];
            const x = b * this.d[1];
            buf[((y * kew + x) * ci + c) * K + (a * kw + b) * ci + c] = 1;
          }
      this.unfoldFilter = tf.keep(tf.tensor4d(buf, [keh, kew, ci, K]));
    }
    return this.unfoldFilter;
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    checkRank(x, 4, 'conv2d');
    const x4 = x as tf.Tensor4D;
    if (x4.shape[3] !== this.opts.inChannels) throw new ModelError(`conv2d: expected ${this.opts.inChannels} input channels, got input [${x.shape.join(', ')}]`);
    const pad = this.pad(x4.shape[1], x4.shape[2]);
    // Training uses the patch path (patches are reused by the per-sample norms); inference uses the
    // convolution kernels (no im2col copy, and differentiable by tfjs autodiff).
    if (training && this.usePatches) return this.forwardPatches(x4, pad, training);
    const ws = this.groupWeights();
    const xs = this.groups === 1 ? [x4] : (tf.split(x4, this.groups, 3) as tf.Tensor4D[]);
    const ys = xs.map((xg, j) => tf.conv2d(xg, ws[j]!, this.s, pad as any));
    let y = ys.length === 1 ? ys[0]! : tf.concat(ys, 3);
    if (y.shape[1] === 0 || y.shape[2] === 0) throw new ModelError(`conv2d: input [${x.shape.join(', ')}] is smaller than the kernel`);
    if (this.bias) y = tf.add(y, this.bias.value);
    if (training) this.x = x4;
    return y;
  }
  private get usePatches(): boolean {
    return (this.opts.impl ?? (this.groups === 1 ? 'patches' : 'conv')) === 'patches' && this.groups === 1;
  }
  private geometry(x: tf.Tensor4D, pad: ExplicitPad): ConvGeometry {
    const [n, h, w, c] = x.shape;
    const [keh, kew] = this.ke;
    const ho = Math.floor((h + pad[1][0] + pad[1][1] - keh) / this.s[0]) + 1;
    const wo = Math.floor((w + pad[2][0] + pad[2][1] - kew) / this.s[1]) + 1;
    if (ho <= 0 || wo <= 0) throw new ModelError(`conv2d: input [${x.shape.join(', ')}] is smaller than the kernel`);
    return { n, h, w, c, kh: this.k[0], kw: this.k[1], sh: this.s[0], sw: this.s[1], dh: this.d[0], dw: this.d[1], pt: pad[1][0], pl: pad[2][0], ho, wo };
  }
  /** Run layout for the SIMD im2col/col2im, cached per geometry; undefined: use the JS loops. */
  private runLayout(geo: ConvGeometry): RunLayout | undefined {
    if (!simdAvailable()) return undefined;
    const key = `${geo.h},${geo.w},${geo.c},${geo.ho},${geo.wo}`;
    if (this.layout?.key !== key) this.layout = { key, lay: runLayout(geo) };
    return this.layout.lay;
  }
  private forwardPatches(x: tf.Tensor4D, pad: ExplicitPad, training: boolean): tf.Tensor {
    const geo = this.geometry(x, pad);
    const K = geo.kh * geo.kw * geo.c;
    const co = this.opts.outChannels;
    const size = geo.n * geo.ho * geo.wo * K;
    const lay = this.runLayout(geo);
    let P: tf.Tensor2D;
    const frame = lay ? lay.hp * lay.wp * geo.c : 0;
    const a = lay ? (this.arenaF ??= new HostArena()) : undefined;
    const offs = lay && a ? a.reserve([geo.n * frame, size, lay.tab.length]) : undefined;
    if (lay && a && offs) {
      // SIMD run copies out of a padded frame (see im2col.ts runLayout)
      const [xo, po, to] = offs;
      padInto(x.dataSync() as Float32Array, geo, lay, a.f32, xo!);
      a.i32.set(lay.tab, to!);
      a.k.copyRuns(po! * 4, xo! * 4, to! * 4, lay.tab.length * 4, geo.kw * geo.c * 4, geo.n, frame * 4);
      P = tf.tensor2d(a.f32.subarray(po!, po! + size), [geo.n * geo.ho * geo.wo, K]);
    } else {
      if (!this.scratchP || this.scratchP.length < size) this.scratchP = new Float32Array(Math.ceil(size * 1.25));
      P = tf.tensor2d(im2col(x.dataSync() as Float32Array, geo, this.scratchP), [geo.n * geo.ho * geo.wo, K]);
    }
    // bias fused into the matmul: one native call and no second full-size output buffer
    const y = tf.fused.matMul({ a: P, b: tf.reshape(this.weight.value, [K, co]) as tf.Tensor2D, bias: this.bias?.value });
    if (training) {
      this.x = x;
      this.cachedPatches = { P, geo };
    }
    return tf.reshape(y, [geo.n, geo.ho, geo.wo, co]);
  }
  backward(dy: tf.Tensor, tape: GradTape, needInputGrad = true): tf.Tensor {
    const x = requireCache(this.x, 'conv2d');
    this.x = undefined;
    const cp = this.cachedPatches;
    this.cachedPatches = undefined;
    if (cp) return this.backwardPatches(dy, tape, needInputGrad, cp.P, cp.geo);
    const g = this.groups;
    const n = x.shape[0];
    const pad = this.pad(x.shape[1], x.shape[2]);
    const ws = this.groupWeights();
    const xs = g === 1 ? [x] : (tf.split(x, g, 3) as tf.Tensor4D[]);
    const dys = g === 1 ? [dy as tf.Tensor4D] : (tf.split(dy, g, 3) as tf.Tensor4D[]);
    const dxs = xs.map((xg, j) =>
      tf.engine().runKernel('Conv2DBackpropInput', { dy: dys[j]!, filter: ws[j]! }, { strides: this.s, pad, dataFormat: 'NHWC', inputShape: xg.shape } as any) as tf.Tensor4D,
    );
    const dx = dxs.length === 1 ? dxs[0]! : tf.concat(dxs, 3);

    const [kh, kw] = this.k;
    const ci = this.opts.inChannels / g;
    const co = this.opts.outChannels / g;
    const K = kh * kw * ci;
    const L = dy.shape[1]! * dy.shape[2]!;
    const mode = this.opts.normMode ?? 'auto';
    const ghost = mode === 'ghost' || (mode === 'auto' && L * (K + co) < K * co);
    const P: (tf.Tensor3D | undefined)[] = [];
    const patches = (j: number) => (P[j] ??= tf.reshape(tf.conv2d(xs[j]!, this.unfold(), this.s, pad as any), [n, L, K]) as tf.Tensor3D);
    const Bs = dys.map((d) => tf.reshape(d, [n, L, co]) as tf.Tensor3D);
    let G: tf.Tensor | undefined;
    const perSampleW = () => {
      if (!G) {
        const parts = Bs.map((B, j) => tf.matMul(patches(j), B, true, false));
        G = tf.reshape((parts.length === 1 ? parts[0]! : tf.concat(parts, 2)), [n, kh, kw, ci, this.opts.outChannels]);
      }
      return G;
    };
    const perSampleB = () => tf.sum(dy, [1, 2]);
    const record: GradSampleRecord = {
      params: this.parameters(),
      sqNorms: () => {
        let wn: tf.Tensor1D;
        if (ghost && !G) {
          const parts = Bs.map((B, j) => tf.sum(tf.mul(tf.matMul(patches(j), patches(j), false, true), tf.matMul(B, B, false, true)), [1, 2]));
          wn = (parts.length === 1 ? parts[0]! : tf.addN(parts)) as tf.Tensor1D;
        } else wn = tf.sum(tf.square(tf.reshape(perSampleW(), [n, -1])), 1) as tf.Tensor1D;
        const r = [wn];
        if (this.bias) r.push(tf.sum(tf.square(perSampleB()), 1) as tf.Tensor1D);
        return r;
      },
      weightedSum: (w) => {
        let gw: tf.Tensor;
        if (G) gw = tf.reshape(tf.matMul(tf.reshape(w, [1, n]), tf.reshape(G, [n, -1])), this.weight.value.shape);
        else {
          const parts = Bs.map((B, j) => tf.matMul(tf.reshape(patches(j), [n * L, K]), tf.reshape(tf.mul(B, tf.reshape(w, [n, 1, 1])), [n * L, co]), true, false));
          gw = tf.reshape((parts.length === 1 ? parts[0]! : tf.concat(parts, 1)), this.weight.value.shape);
        }
        const r = [gw];
        if (this.bias) r.push(tf.reshape(tf.matMul(tf.reshape(w, [1, n]), perSampleB()), [this.opts.outChannels]));
        return r;
      },
      perSample: () => (this.bias ? [perSampleW(), perSampleB()] : [perSampleW()]),
    };
    tape.push(record);
    return dx;
  }
  private backwardPatches(dy: tf.Tensor, tape: GradTape, needInputGrad: boolean, P2: tf.Tensor2D, geo: ConvGeometry): tf.Tensor {
    const n = geo.n;
    const L = geo.ho * geo.wo;
    const K = geo.kh * geo.kw * geo.c;
    const co = this.opts.outChannels;
    const B2 = tf.reshape(dy, [n * L, co]) as tf.Tensor2D;
    let dx: tf.Tensor;
    if (needInputGrad && tf.getBackend() === 'ort' && this.d[0] === 1 && this.d[1] === 1) {
      // The engine's native transposed convolution: writes the input-sized gradient directly
      // (reference CNN conv2: 2.6 MB instead of a 6 MB patch gradient plus a host col2im; large
      // short-lived native outputs drive external-memory-pressure GCs in V8).
      dx = tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.reshape(dy, [n, geo.ho, geo.wo, co]), filter: this.weight.value }, { strides: this.s, pad: this.pad(geo.h, geo.w), dataFormat: 'NHWC', inputShape: [n, geo.h, geo.w, geo.c] } as any) as tf.Tensor;
    } else if (needInputGrad) {
      const dP = tf.matMul(B2, tf.reshape(this.weight.value, [K, co]), false, true);
      const size = n * geo.h * geo.w * geo.c;
      const lay = this.runLayout(geo);
      const frame = lay ? lay.hp * lay.wp * geo.c : 0;
      const a = lay ? (this.arenaB ??= new HostArena()) : undefined;
      const offs = lay && a ? a.reserve([n * L * K, n * frame, lay.tab.length]) : undefined;
      if (lay && a && offs) {
        // SIMD run additions into a zeroed padded frame, then the input-sized part
        const [dpo, dxo, to] = offs;
        a.f32.set(dP.dataSync() as Float32Array, dpo!);
        a.f32.fill(0, dxo!, dxo! + n * frame);
        a.i32.set(lay.tab, to!);
        a.k.addRuns(dpo! * 4, dxo! * 4, to! * 4, lay.tab.length * 4, geo.kw * geo.c * 4, n, frame * 4);
        let dxv: Float32Array;
        if (lay.identity) dxv = a.f32.subarray(dxo!, dxo! + size);
        else {
          if (!this.scratchDx || this.scratchDx.length < size) this.scratchDx = new Float32Array(Math.ceil(size * 1.25));
          dxv = cropFrom(a.f32, dxo!, geo, lay, this.scratchDx.subarray(0, size));
        }
        dx = tf.tensor4d(dxv, [n, geo.h, geo.w, geo.c]);
      } else {
        if (!this.scratchDx || this.scratchDx.length < size) this.scratchDx = new Float32Array(Math.ceil(size * 1.25));
        dx = tf.tensor4d(col2im(dP.dataSync() as Float32Array, geo, this.scratchDx), [n, geo.h, geo.w, geo.c]);
      }
      dP.dispose();
    } else dx = tf.zeros([0]);
    const P = tf.reshape(P2, [n, L, K]) as tf.Tensor3D;
    const B = tf.reshape(dy, [n, L, co]) as tf.Tensor3D;
    const mode = this.opts.normMode ?? 'auto';
    const ghost = mode === 'ghost' || (mode === 'auto' && L * (K + co) < K * co);
    // Per-sample weight gradients are formed transposed, Gᵀ_i = B_iᵀ P_i [n, co, K]: a batched
    // matmul with a transposed operand transposes it in full first, and B is K/co times smaller
    // than P (reference CNN conv1: 0.75M instead of 3M floats moved per step).
    let Gt: tf.Tensor3D | undefined;
    const perSampleWt = () => (Gt ??= tf.matMul(B, P, true, false) as tf.Tensor3D);
    const perSampleB = () => tf.sum(B, 1);
    tape.push({
      params: this.parameters(),
      sqNorms: () => {
        const wn = ghost && !Gt ? rowDots(tf.matMul(P, P, false, true), n, tf.matMul(B, B, false, true)) : rowDots(perSampleWt(), n);
        const r = [wn];
        if (this.bias) r.push(rowDots(perSampleB(), n));
        return r;
      },
      weightedSum: (wt) => {
        const gw = Gt ? tf.transpose(tf.reshape(tf.matMul(tf.reshape(wt, [1, n]), tf.reshape(Gt, [n, co * K])), [co, K])) : tf.matMul(P2, tf.reshape(tf.mul(B, tf.reshape(wt, [n, 1, 1])), [n * L, co]), true, false);
        const r: tf.Tensor[] = [tf.reshape(gw, this.weight.value.shape)];
        if (this.bias) r.push(tf.reshape(tf.matMul(tf.reshape(wt, [1, n]), perSampleB()), [co]));
        return r;
      },
      perSample: () => {
        const gw = tf.reshape(tf.transpose(perSampleWt(), [0, 2, 1]), [n, ...this.weight.value.shape]);
        return this.bias ? [gw, perSampleB()] : [gw];
      },
    });
    return dx;
  }
  spec(): LayerSpec {
    const o = this.opts;
    return { type: 'conv2d', inChannels: o.inChannels, filters: o.outChannels, kernel: this.k, stride: this.s, padding: o.padding ?? 0, dilation: this.d, groups: this.groups, bias: o.bias !== false, ...(o.impl ? { impl: o.impl } : {}), ...(o.normMode ? { normMode: o.normMode } : {}) };
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding

/** Lookup table [vocab, dim]; input int32 ids [N] or [N, T]. Must be the first layer. */
export class Embedding implements Module {
  readonly type = 'embedding';
  readonly weight: Param;
  private ids?: tf.Tensor;
  constructor(readonly opts: { vocab: number; dim: number }) {
    if (!(Number.isInteger(opts.vocab) && opts.vocab > 0 && Number.isInteger(opts.dim) && opts.dim > 0)) throw new ModelError('embedding: vocab and dim must be positive integers');
    this.weight = param('weight', tf.mul(tf.randomNormal([opts.vocab, opts.dim], 0, 1, 'float32', (initSeed = (initSeed * 1103515245 + 12345) >>> 0)), 1));
  }
  parameters(): Param[] {
    return [this.weight];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (x.dtype !== 'int32') throw new ModelError(`embedding: expected int32 ids, got ${x.dtype}`);
    if (training) this.ids = x;
    return tf.gather(this.weight.value, x);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const ids = requireCache(this.ids, 'embedding');
    this.ids = undefined;
    const { vocab: V, dim: D } = this.opts;
    const n = ids.shape[0]!;
    const T = ids.size / n;
    const I = tf.reshape(ids, [n, T]);
    const B = tf.reshape(dy, [n, T, D]) as tf.Tensor3D;
    tape.push({
      params: [this.weight],
      // ||Σ_t e_{id_t} b_tᵀ||² = Σ_{t,t'} [id_t = id_t'] <b_t, b_t'>
      sqNorms: () => {
        const same = tf.cast(tf.equal(tf.reshape(I, [n, T, 1]), tf.reshape(I, [n, 1, T])), 'float32');
        return [tf.sum(tf.mul(same, tf.matMul(B, B, false, true)), [1, 2]) as tf.Tensor1D];
      },
      weightedSum: (w) => [tf.unsortedSegmentSum(tf.reshape(tf.mul(B, tf.reshape(w, [n, 1, 1])), [n * T, D]), tf.reshape(I, [n * T]), V)],
      perSample: () => [tf.matMul(tf.cast(tf.oneHot(I, V), 'float32') as tf.Tensor3D, B, true, false)],
    });
    return tf.zeros(ids.shape);
  }
  spec(): LayerSpec {
    return { type: 'embedding', vocab: this.opts.vocab, dim: this.opts.dim };
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation (per-sample: statistics never mix examples)

/**
 * Normalises x (viewed as [N, S, G, C/G]) over axes S and C/G, then scales/shifts per channel.
 * LayerNorm: S = all middle axes … no: LayerNorm normalises the last axis only (G = 1, S = 1 per
 * position, handled by viewing positions as part of the batch). GroupNorm/InstanceNorm normalise
 * spatial positions and channel groups of NHWC (or [N, C]) inputs.
 */
abstract class NormBase implements Module {
  abstract readonly type: string;
  readonly gamma?: Param;
  readonly beta?: Param;
  private cache?: { x: tf.Tensor; xhat: tf.Tensor; invStd: tf.Tensor };
  constructor(
    readonly channels: number,
    readonly eps: number,
    affine: boolean,
  ) {
    if (!(Number.isInteger(channels) && channels > 0)) throw new ModelError(`normalisation: channel count must be a positive integer, got ${channels}`);
    if (!(eps > 0)) throw new ModelError('normalisation: eps must be > 0');
    if (affine) {
      this.gamma = param('weight', tf.ones([channels]));
      this.beta = param('bias', tf.zeros([channels]));
    }
  }
  /** Shape to view x in so normalisation reduces over axes `axes`. */
  protected abstract view(x: tf.Tensor): { shape: number[]; axes: number[] };
  parameters(): Param[] {
    return this.gamma ? [this.gamma, this.beta!] : [];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.channels) throw new ModelError(`${this.type}: expected ${this.channels} channels on the last axis, got [${x.shape.join(', ')}]`);
    const { shape, axes } = this.view(x);
    const v = tf.reshape(x, shape);
    const { mean, variance } = tf.moments(v, axes, true);
    const invStd = tf.rsqrt(tf.add(variance, this.eps));
    const xhat = tf.reshape(tf.mul(tf.sub(v, mean), invStd), x.shape);
    if (training) this.cache = { x, xhat, invStd };
    return this.gamma ? tf.add(tf.mul(xhat, this.gamma.value), this.beta!.value) : xhat;
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const { x, xhat, invStd } = requireCache(this.cache, this.type);
    this.cache = undefined;
    const n = x.shape[0]!;
    if (this.gamma) {
      const C = this.channels;
      const perSample = () => {
        const gg = tf.sum(tf.reshape(tf.mul(dy, xhat), [n, -1, C]), 1);
        const gb = tf.sum(tf.reshape(dy, [n, -1, C]), 1);
        return [gg, gb];
      };
      tape.push(perSampleRecord(this.parameters(), perSample()));
    }
    const dxhat = this.gamma ? tf.mul(dy, this.gamma.value) : dy;
    const { shape, axes } = this.view(x);
    const dh = tf.reshape(dxhat, shape);
    const xh = tf.reshape(xhat, shape);
    const m1 = tf.mean(dh, axes, true);
    const m2 = tf.mean(tf.mul(dh, xh), axes, true);
    return tf.reshape(tf.mul(tf.sub(tf.sub(dh, m1), tf.mul(xh, m2)), invStd), x.shape);
  }
  abstract spec(): LayerSpec;
}

/** Normalises over the last axis (features), per position; params [features]. */
export class LayerNorm extends NormBase {
  readonly type = 'layernorm';
  constructor(readonly opts: { features: number; eps?: number; affine?: boolean }) {
    super(opts.features, opts.eps ?? 1e-5, opts.affine !== false);
  }
  protected view(x: tf.Tensor) {
    return { shape: [x.size / this.channels, this.channels], axes: [1] };
  }
  spec(): LayerSpec {
    return { type: 'layernorm', features: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}

/** GroupNorm over channel groups and all spatial positions of an NHWC (or [N, C]) input. */
export class GroupNorm extends NormBase {
  readonly type: string = 'groupnorm';
  constructor(readonly opts: { groups: number; channels: number; eps?: number; affine?: boolean }) {
    super(opts.channels, opts.eps ?? 1e-5, opts.affine !== false);
    if (!(Number.isInteger(opts.groups) && opts.groups > 0 && opts.channels % opts.groups === 0)) throw new ModelError(`groupnorm: groups (${opts.groups}) must divide channels (${opts.channels})`);
  }
  protected view(x: tf.Tensor) {
    const n = x.shape[0]!;
    const G = this.opts.groups;
    return { shape: [n, x.size / (n * this.channels), G, this.channels / G], axes: [1, 3] };
  }
  spec(): LayerSpec {
    return { type: 'groupnorm', groups: this.opts.groups, channels: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}

/** InstanceNorm = GroupNorm with one channel per group (PyTorch default: no affine params). */
export class InstanceNorm extends GroupNorm {
  override readonly type = 'instancenorm';
  constructor(opts: { channels: number; eps?: number; affine?: boolean }) {
    super({ groups: opts.channels, channels: opts.channels, eps: opts.eps, affine: opts.affine === true });
  }
  override spec(): LayerSpec {
    return { type: 'instancenorm', channels: this.channels, eps: this.eps, affine: !!this.gamma };
  }
}

/** Rejected: BatchNorm's statistics mix examples of a batch, so per-sample gradients (and DP) break. */
export class BatchNorm {
  constructor() {
    throw new ModelError(
      'BatchNorm is not supported for DP training: its batch statistics mix examples, so one example influences every other example\'s output and per-sample gradient clipping no longer bounds its influence. Use GroupNorm (e.g. groups=min(32, channels)), LayerNorm or InstanceNorm instead.',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Parameter-free layers

abstract class Stateless implements Module {
  abstract readonly type: string;
  parameters(): Param[] {
    return [];
  }
  abstract forward(x: tf.Tensor, training: boolean): tf.Tensor;
  abstract backward(dy: tf.Tensor, tape: GradTape): tf.Tensor;
  spec(): LayerSpec {
    return { type: this.type };
  }
}

export class ReLU extends Stateless {
  readonly type = 'relu';
  /**
   * Set by Sequential when a 'valid' MaxPool2d follows: in training the pool applies the ReLU on
   * its (host-side) output instead — relu(maxpool(x)) = maxpool(relu(x)), with the same gradient —
   * saving three full-size kernels per step. Inference is unaffected.
   */
  fusedIntoPool = false;
  private y?: tf.Tensor;
  private passthrough = false;
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    this.passthrough = training && this.fusedIntoPool;
    if (this.passthrough) return x;
    const y = tf.relu(x);
    if (training) this.y = y;
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    if (this.passthrough) {
      this.passthrough = false;
      return dy;
    }
    const y = requireCache(this.y, 'relu');
    this.y = undefined;
    return tf.mul(dy, tf.step(y));
  }
}

export class LeakyReLU extends Stateless {
  readonly type = 'leakyrelu';
  private x?: tf.Tensor;
  constructor(readonly alpha = 0.01) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (training) this.x = x;
    return tf.leakyRelu(x, this.alpha);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'leakyrelu');
    this.x = undefined;
    return tf.where(tf.greater(x, 0), dy, tf.mul(dy, this.alpha));
  }
  override spec(): LayerSpec {
    return { type: 'leakyrelu', alpha: this.alpha };
  }
}

export class Tanh extends Stateless {
  readonly type = 'tanh';
  private y?: tf.Tensor;
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const y = tf.tanh(x);
    if (training) this.y = y;
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const y = requireCache(this.y, 'tanh');
    this.y = undefined;
    return tf.mul(dy, tf.sub(1, tf.square(y)));
  }
}

/**
 * Tempered sigmoid (Papernot et al. 2021): scale·σ(temperature·x) − offset. The default
 * (2, 2, 1) equals tanh; smaller scales bound activations, which suits gradient clipping.
 */
export class TemperedSigmoid extends Stateless {
  readonly type = 'temperedsigmoid';
  private s?: tf.Tensor;
  constructor(
    readonly scale = 2,
    readonly temperature = 2,
    readonly offset = 1,
  ) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const s = tf.sigmoid(tf.mul(x, this.temperature));
    if (training) this.s = s;
    return tf.sub(tf.mul(s, this.scale), this.offset);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const s = requireCache(this.s, 'temperedsigmoid');
    this.s = undefined;
    return tf.mul(dy, tf.mul(tf.mul(s, tf.sub(1, s)), this.scale * this.temperature));
  }
  override spec(): LayerSpec {
    return { type: 'temperedsigmoid', scale: this.scale, temperature: this.temperature, offset: this.offset };
  }
}

export class ELU extends Stateless {
  readonly type = 'elu';
  private x?: tf.Tensor;
  private y?: tf.Tensor;
  constructor(readonly alpha = 1) {
    super();
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    // relu(x) + α(e^{min(x,0)} − 1): differentiable by tfjs autodiff too (tf.where on a comparison is not)
    const y = this.alpha === 1 ? tf.elu(x) : tf.add(tf.relu(x), tf.mul(tf.expm1(tf.minimum(x, 0)), this.alpha));
    if (training) {
      this.x = x;
      this.y = y;
    }
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'elu');
    const y = this.y!;
    this.x = this.y = undefined;
    return tf.where(tf.greater(x, 0), dy, tf.mul(dy, tf.add(y, this.alpha)));
  }
  override spec(): LayerSpec {
    return { type: 'elu', alpha: this.alpha };
  }
}

export interface PoolOptions {
  kernel: number | [number, number];
  stride?: number | [number, number];
  /** Zero padding per side, or 'valid'/'same' (default 'valid'). */
  padding?: number | 'valid' | 'same';
}

abstract class Pool2d extends Stateless {
  readonly k: Pair;
  readonly s: Pair;
  readonly pad: number | 'valid' | 'same';
  protected x?: tf.Tensor4D;
  protected y?: tf.Tensor4D;
  constructor(readonly opts: PoolOptions) {
    super();
    this.k = pair(opts.kernel, 1, 'pool kernel');
    this.s = opts.stride === undefined ? this.k : pair(opts.stride, 1, 'pool stride');
    this.pad = opts.padding ?? 'valid';
    if (this.k.some((v) => v < 1) || this.s.some((v) => v < 1)) throw new ModelError('pool: kernel and stride must be >= 1');
  }
  override spec(): LayerSpec {
    return { type: this.type, kernel: this.k, stride: this.s, padding: this.pad };
  }
}

export class MaxPool2d extends Pool2d {
  readonly type = 'maxpool2d';
  /** Host-side path for training with 'valid' padding: arg-max kept, reused buffers. */
  private host?: { arg: Int32Array; out: Float32Array; dx: Float32Array; count: number; shape: number[] };
  private bufs?: { arg: Int32Array; out: Float32Array; dx: Float32Array };
  private arena?: HostArena;
  private simdHost?: { a: HostArena; co: number; dyo: number; dxo: number; n: number; h: number; w: number; c: number; ho: number; wo: number; count: number; inSize: number; shape: number[] };
  /** Apply ReLU to the pooled output in training (set by Sequential for ReLU → MaxPool2d). */
  fuseRelu = false;
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    checkRank(x, 4, 'maxpool2d');
    if (training && this.pad === 'valid') {
      const [n, h, w, c] = x.shape as [number, number, number, number];
      const ho = Math.floor((h - this.k[0]) / this.s[0]) + 1;
      const wo = Math.floor((w - this.k[1]) / this.s[1]) + 1;
      if (ho < 1 || wo < 1) throw new ModelError(`maxpool2d: input [${x.shape.join(', ')}] is smaller than the window`);
      const count = n * ho * wo * c;
      const inSize = n * h * w * c;
      if (!this.bufs || this.bufs.arg.length < count || this.bufs.dx.length <= inSize) {
        // dx keeps one spare slot: the backward's sink for outputs without an arg-max
        this.bufs = { arg: new Int32Array(Math.ceil(count * 1.25)), out: new Float32Array(Math.ceil(count * 1.25)), dx: new Float32Array(Math.ceil(inSize * 1.25) + 1) };
      }
      const simd = this.fuseRelu && c % 4 === 0 && simdAvailable();
      const arena = simd ? (this.arena ??= new HostArena()) : undefined;
      // regions: input copy, output, window codes, dy copy, dx (all reserved now: no growth in backward)
      const offs = arena?.reserve([inSize, count, count, count, inSize]);
      if (arena && offs) {
        // WebAssembly SIMD: four channels per compare/select
        const a = arena;
        const [xo, oo, co, dyo, dxo] = offs;
        a.f32.set(x.dataSync() as Float32Array, xo!);
        a.k.maxPoolRelu4(xo! * 4, oo! * 4, co! * 4, n, h, w, c, this.k[0], this.k[1], this.s[0], this.s[1], ho, wo);
        const out = a.f32.subarray(oo!, oo! + count);
        this.simdHost = { a, co: co!, dyo: dyo!, dxo: dxo!, n, h, w, c, ho, wo, count, inSize, shape: x.shape };
        return tf.tensor4d(out, [n, ho, wo, c]);
      }
      const out = this.bufs.out.subarray(0, count);
      maxPoolForward(x.dataSync() as Float32Array, n, h, w, c, this.k[0], this.k[1], this.s[0], this.s[1], out, this.bufs.arg, this.fuseRelu);
      this.host = { arg: this.bufs.arg, out, dx: this.bufs.dx, count, shape: x.shape };
      return tf.tensor4d(out, [n, ho, wo, c]);
    }
    const y = tf.maxPool(x as tf.Tensor4D, this.k, this.s, this.pad);
    if (training) {
      this.x = x as tf.Tensor4D;
      this.y = y;
    }
    return y;
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const sh = this.simdHost;
    if (sh) {
      this.simdHost = undefined;
      const { a } = sh;
      a.f32.set(dy.dataSync() as Float32Array, sh.dyo);
      a.f32.fill(0, sh.dxo, sh.dxo + sh.inSize);
      a.k.maxPoolBack4(sh.dyo * 4, sh.co * 4, sh.dxo * 4, sh.n, sh.h, sh.w, sh.c, this.k[0], this.k[1], this.s[0], this.s[1], sh.ho, sh.wo);
      return tf.tensor(a.f32.subarray(sh.dxo, sh.dxo + sh.inSize), sh.shape);
    }
    const h = this.host;
    if (h) {
      this.host = undefined;
      const inSize = h.shape.reduce((a, b) => a * b, 1);
      maxPoolBackward(dy.dataSync() as Float32Array, h.arg, h.count, h.dx, inSize);
      return tf.tensor(h.dx.subarray(0, inSize), h.shape);
    }
    const x = requireCache(this.x, 'maxpool2d');
    const y = this.y!;
    this.x = this.y = undefined;
    return tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: this.k, strides: this.s, pad: this.pad } as any) as tf.Tensor;
  }
}

export class AvgPool2d extends Pool2d {
  readonly type = 'avgpool2d';
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    checkRank(x, 4, 'avgpool2d');
    if (training) this.x = x as tf.Tensor4D;
    return tf.avgPool(x as tf.Tensor4D, this.k, this.s, this.pad);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const x = requireCache(this.x, 'avgpool2d');
    this.x = undefined;
    return tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, { filterSize: this.k, strides: this.s, pad: this.pad } as any) as tf.Tensor;
  }
}

/** [N, ...] → [N, prod(...)] (row-major over H, W, C for NHWC images). */
export class Flatten extends Stateless {
  readonly type = 'flatten';
  private shape?: number[];
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (training) this.shape = x.shape;
    return tf.reshape(x, [x.shape[0]!, -1]);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const s = requireCache(this.shape, 'flatten');
    this.shape = undefined;
    return tf.reshape(dy, s);
  }
}

/** Inverted dropout; the mask is drawn independently per example, so DP analysis is unaffected. */
export class Dropout extends Stateless {
  readonly type = 'dropout';
  private mask?: tf.Tensor;
  private static seed = 777;
  constructor(readonly rate: number) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new ModelError(`dropout: rate must be in [0, 1), got ${rate}`);
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training || this.rate === 0) {
      this.mask = undefined;
      return x;
    }
    Dropout.seed = (Dropout.seed * 1103515245 + 12345) >>> 0;
    const mask = tf.div(tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', Dropout.seed), this.rate), 'float32'), 1 - this.rate);
    this.mask = mask;
    return tf.mul(x, mask);
  }
  backward(dy: tf.Tensor): tf.Tensor {
    const m = this.mask;
    this.mask = undefined;
    return m ? tf.mul(dy, m) : dy;
  }
  override spec(): LayerSpec {
    return { type: 'dropout', rate: this.rate };
  }
}

// ---------------------------------------------------------------------------------------------
// Containers

function prefixed(prefix: string, ps: Param[]): Param[] {
  return ps.map((p) => ({ name: `${prefix}.${p.name}`, value: p.value }));
}

/** Runs modules in order. Parameter names are "<index>.<name>". */
export class Sequential implements Module {
  readonly type = 'sequential';
  constructor(readonly layers: Module[]) {
    for (const l of layers) if (!l || typeof l.forward !== 'function') throw new ModelError('sequential: every layer must implement the Module interface');
    layers.forEach((l, i) => {
      const next = layers[i + 1];
      if (l instanceof ReLU && next instanceof MaxPool2d && next.pad === 'valid') {
        l.fusedIntoPool = true;
        next.fuseRelu = true;
      }
    });
  }
  parameters(): Param[] {
    return this.layers.flatMap((l, i) => prefixed(String(i), l.parameters()));
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h, training);
    return h;
  }
  backward(dy: tf.Tensor, tape: GradTape, needInputGrad = true): tf.Tensor {
    let g = dy;
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i]!.backward(g, tape, i > 0 || needInputGrad);
    return g;
  }
  spec(): LayerSpec {
    return { type: 'sequential', layers: this.layers.map((l) => l.spec()) };
  }
}

/** y = body(x) + shortcut(x) (identity shortcut by default). */
export class Residual implements Module {
  readonly type = 'residual';
  constructor(
    readonly body: Module,
    readonly shortcut?: Module,
  ) {}
  parameters(): Param[] {
    return [...prefixed('body', this.body.parameters()), ...(this.shortcut ? prefixed('shortcut', this.shortcut.parameters()) : [])];
  }
  forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const a = this.body.forward(x, training);
    const b = this.shortcut ? this.shortcut.forward(x, training) : x;
    if (!tf.util.arraysEqual(a.shape, b.shape)) throw new ModelError(`residual: body output [${a.shape.join(', ')}] and shortcut output [${b.shape.join(', ')}] differ`);
    return tf.add(a, b);
  }
  backward(dy: tf.Tensor, tape: GradTape): tf.Tensor {
    const da = this.body.backward(dy, tape);
    const db = this.shortcut ? this.shortcut.backward(dy, tape) : dy;
    return tf.add(da, db);
  }
  spec(): LayerSpec {
    return { type: 'residual', body: this.body.spec(), ...(this.shortcut ? { shortcut: this.shortcut.spec() } : {}) };
  }
}

export { GradTape };
