// Conv2d: 2-D convolution (NHWC) with im2col-patch or convolution-kernel per-sample gradients.
import * as tf from '@tensorflow/tfjs-core';
import { type ConvGeometry, col2im, cropFrom, im2col, padInto, type RunLayout, runLayout } from '../../engine/host/im2col.js';
import { HostArena, simdAvailable } from '../../engine/host/simd.js';
import { engineCapabilities } from '../../engine/capabilities.js';
import { checkRank, type Pair, pair, param, requireCache, rowDots, uniformInit } from './common.js';
import { type GradSampleRecord, type GradTape, type LayerSpec, ModelError, type Module, type Param } from '../module.js';
import { registerLayer } from './registry.js';

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
    if (needInputGrad && engineCapabilities().nativeConvBackpropInput && this.d[0] === 1 && this.d[1] === 1) {
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

type Num2 = number | [number, number];
registerLayer({
  types: ['conv2d'],
  build: (s, { inShape, last }) => {
    if (inShape.length !== 3) throw new ModelError(`conv2d needs an [H, W, C] input, got [${inShape.join(', ')}]`);
    return new Conv2d({
      inChannels: last,
      outChannels: Number(s.filters ?? s.outChannels),
      kernel: s.kernel as Num2,
      stride: s.stride as Num2 | undefined,
      padding: s.padding as Num2 | 'same' | 'valid' | undefined,
      dilation: s.dilation as Num2 | undefined,
      groups: s.groups as number | undefined,
      bias: s.bias !== false,
      impl: s.impl as 'patches' | 'conv' | undefined,
      normMode: s.normMode as 'auto' | 'materialize' | 'ghost' | undefined,
    });
  },
});
