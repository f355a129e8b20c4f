// Native convolution and pooling kernels. tfjs is NHWC, ONNX Conv/Pool are NCHW. Convolutions
// run on MLAS's NCHWc kernels where the shapes allow (the NHWC <-> NCHWc reorders and the
// blocked filter are built inside the kernel's model, see "NCHWc" below); otherwise the graph
// transposes to NCHW and back inside the same ONNX model, so the layout change runs natively.
// The batch dim is symbolic; spatial dims are fixed per session (pads depend on them).
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { defineKernel, JS_FAST, type KernelArgs, type KernelResult } from '../backend.js';
import { attr, feed, GraphBuilder as GraphBuilderCtor, sizeOf, type GraphBuilder } from '../graph.js';
import { anyEmpty, inputsOf, runOnTensors, tuning } from './common.js';
import { applyActivation, SUPPORTED_ACTIVATIONS } from './math.js';
import { runGraph, type OrtIn } from '../ort-runtime.js';
import { maxPoolGradHost } from '../host/pool.js';

function i64(values: readonly number[]): OrtIn {
  return { type: 'int64', data: BigInt64Array.from(values, (v) => BigInt(v)), dims: [values.length] };
}

type ConvInfo = tf.backend_util.Conv2DInfo;
type PadAttr = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

function pads(ci: ConvInfo): number[] {
  const p = ci.padInfo;
  return [p.top, p.left, p.bottom, p.right];
}

/** ONNX computes floor((in + pads - effK) / s) + 1; tfjs may round differently ('ceil'). */
function onnxOutMatches(ci: ConvInfo): string | null {
  const p = ci.padInfo;
  if (p.top < 0 || p.bottom < 0 || p.left < 0 || p.right < 0) return 'negative padding';
  const oh = Math.floor((ci.inHeight + p.top + p.bottom - ci.effectiveFilterHeight) / ci.strideHeight) + 1;
  const ow = Math.floor((ci.inWidth + p.left + p.right - ci.effectiveFilterWidth) / ci.strideWidth) + 1;
  if (oh !== ci.outHeight || ow !== ci.outWidth) return `output size ${ci.outHeight}x${ci.outWidth} not reproducible with explicit pads (rounding mode)`;
  return null;
}

function spatialKey(ci: ConvInfo): string {
  return `${ci.inHeight}x${ci.inWidth}x${ci.inChannels}>${ci.outHeight}x${ci.outWidth}x${ci.outChannels}|k${ci.filterHeight}x${ci.filterWidth}|s${ci.strideHeight},${ci.strideWidth}|d${ci.dilationHeight},${ci.dilationWidth}|p${pads(ci).join(',')}`;
}

function inDims(ci: ConvInfo, nhwc: boolean): (number | string)[] {
  return nhwc ? ['N', ci.inHeight, ci.inWidth, ci.inChannels] : ['N', ci.inChannels, ci.inHeight, ci.inWidth];
}

function outDims(ci: ConvInfo, nhwc: boolean): (number | string)[] {
  return nhwc ? ['N', ci.outHeight, ci.outWidth, ci.outChannels] : ['N', ci.outChannels, ci.outHeight, ci.outWidth];
}

/** tfjs filter [kh, kw, in, out] -> ONNX Conv weight [out, in, kh, kw]. */
function convWeight(g: GraphBuilder, w: string): string {
  return g.transpose(w, [3, 2, 0, 1]);
}

/** tfjs depthwise filter [kh, kw, C, m] -> ONNX grouped Conv weight [C*m, 1, kh, kw]. */
function depthwiseWeight(g: GraphBuilder, w: string, kh: number, kw: number, cm: number): string {
  const flat = g.op('Reshape', [w, g.constI64([kh, kw, cm])]);
  return g.op('Reshape', [g.transpose(flat, [2, 0, 1]), g.constI64([cm, 1, kh, kw])]);
}

function convFlops(ci: ConvInfo, depthwise: boolean): number {
  return 2 * ci.batchSize * ci.outHeight * ci.outWidth * ci.outChannels * ci.filterHeight * ci.filterWidth * (depthwise ? 1 : ci.inChannels);
}

function convArgs(attrs: tf.NamedAttrMap) {
  return {
    strides: attrs.strides as [number, number] | number,
    pad: attrs.pad as PadAttr,
    dataFormat: (attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC',
    dilations: (attrs.dilations as [number, number] | number | undefined) ?? 1,
    dimRoundingMode: attrs.dimRoundingMode as Rounding,
  };
}

// ---------------------------------------------------------------- NCHWc (MLAS blocked layout)

// MLAS's fastest convolutions work on the NCHWc layout (channels in blocks of 16 on AVX-512, 8
// on AVX2): ONNX Runtime's 'all' optimisation level only uses them for convolutions whose weights
// are constant initializers, but its com.microsoft.nchwc kernels take the weights as an ordinary
// input in the blocked filter format, which the graph can produce from the tfjs filter with a
// reshape/transpose. ReorderInput/ReorderOutput convert NHWC <-> NCHWc directly
// (channels_last = 1), so no NCHW transposes are needed either. Reference CNN at batch 256,
// 1 thread: conv 2 1.08 vs 2.04 ms, conv 1 1.93 vs 3.55 ms (min of 40, interleaved).
const NCHWC = 'com.microsoft.nchwc';
let blockSize: number | null | undefined;

/** MLAS's NCHWc channel block size on this CPU, or null when the nchwc kernels are unavailable. */
export function nchwcBlockSize(): number | null {
  if (blockSize !== undefined) return blockSize;
  try {
    const out = runGraph(
      'nchwc-probe',
      () => {
        const g = new GraphBuilderCtor();
        g.output(g.op('ReorderInput', [g.input('float32', [1, 4, 1, 1])], {}, NCHWC), 'float32');
        return g.build();
      },
      [{ type: 'float32', data: new Float32Array(4), dims: [1, 4, 1, 1] }],
      true,
    );
    const b = out[0].dims[1];
    blockSize = Number.isInteger(b) && b >= 4 ? b : null;
  } catch {
    blockSize = null;
  }
  return blockSize;
}

/**
 * Which NCHWc form (if any) serves this forward conv: 'blocked' (input channels a multiple of
 * the block: NHWC -> NCHWc input, OIHWBiBo filter) or 'nchw' (fewer input channels than a block:
 * NCHW input, OIHWBo filter), each with NCHWc output (channels padded to the block, cropped by
 * ReorderOutput). Not for grouped/depthwise convs or NCHW tensors.
 */
function nchwcForm(ci: ConvInfo, depthwise: boolean, nhwc: boolean): 'blocked' | 'nchw' | null {
  if (depthwise || !nhwc) return null;
  return formFor(ci.inChannels);
}

/**
 * An [O, I, kh, kw] filter -> MLAS's NCHWc filter format (O zero-padded to the block), shape
 * [Op, I, kh, kw]: 'blocked' (OIHWBiBo: [Ob, Ib, kh, kw, bi, bo]) for NCHWc input, 'nchw'
 * (OIHWBo: [Ob, I, kh, kw, bo]) for NCHW input.
 */
function nchwcFilter(g: GraphBuilder, oihw: string, o: number, i: number, kh: number, kw: number, form: 'blocked' | 'nchw', b: number): string {
  const op = Math.ceil(o / b) * b;
  const wp = op === o ? oihw : g.op('Pad', [oihw, g.constI64([0, 0, 0, 0, op - o, 0, 0, 0])]);
  const blocked =
    form === 'blocked'
      ? g.transpose(g.op('Reshape', [wp, g.constI64([op / b, b, i / b, b, kh, kw])]), [0, 2, 4, 5, 3, 1])
      : g.transpose(g.op('Reshape', [wp, g.constI64([op / b, b, i, kh, kw])]), [0, 2, 3, 4, 1]);
  return g.op('Reshape', [blocked, g.constI64([op, i, kh, kw])]);
}

/** The NCHWc form for a conv with `channels` input channels (see nchwcForm). */
function formFor(channels: number): 'blocked' | 'nchw' | null {
  const b = nchwcBlockSize();
  if (b === null || !tuning.nchwcConv) return null;
  return channels % b === 0 ? 'blocked' : channels < b ? 'nchw' : null;
}

/** NHWC tensor -> the conv input of an NCHWc form. */
function nchwcInput(g: GraphBuilder, x: string, form: 'blocked' | 'nchw', h: number, w: number, c: number): string {
  if (form === 'blocked') return g.op('ReorderInput', [x], { channels_last: attr.int(1) }, NCHWC);
  // With one channel NHWC already is NCHW.
  return c === 1 ? g.op('Reshape', [x, g.constI64([-1, 1, h, w])]) : g.transpose(x, TO_NCHW);
}

const nchwcFailed = new Set<string>();
/** Calls per kernel that ran on the nchwc kernels, and shapes they rejected (for tests). */
export const nchwcCounters = { Conv2D: 0, Conv2DBackpropInput: 0, Conv2DBackpropFilter: 0, rejected: 0 };

// ---------------------------------------------------------------- forward convolutions

function convForward(depthwise: boolean, fused: boolean) {
  return ({ inputs, attrs, backend }: KernelArgs): KernelResult => {
    const { x, filter } = inputs;
    const bias = fused ? (inputs.bias as TensorInfo | undefined) : undefined;
    const prelu = fused ? (inputs.preluActivationWeights as TensorInfo | undefined) : undefined;
    const activation = fused ? String(attrs.activation ?? 'linear') : 'linear';
    const leakyAlpha = Number(attrs.leakyreluAlpha ?? 0.2);
    const a = convArgs(attrs);
    if (x.dtype !== 'float32' || filter.dtype !== 'float32') return `dtype ${x.dtype}`;
    if (!SUPPORTED_ACTIVATIONS.has(activation)) return `activation ${activation}`;
    if (x.shape.length !== 4) return `rank ${x.shape.length}`;
    const fmt = tf.backend_util.convertConv2DDataFormat(a.dataFormat);
    const ci = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, depthwise, fmt);
    const bad = onnxOutMatches(ci);
    if (bad) return bad;
    const ts = [x, filter];
    if (bias) ts.push(bias);
    if (prelu) ts.push(prelu);
    if (anyEmpty(ts) || sizeOf(ci.outShape) === 0) return JS_FAST;
    const nhwc = fmt === 'channelsLast';
    const kh = ci.filterHeight;
    const kw = ci.filterWidth;
    const key = `Conv|${depthwise}|${nhwc}|${spatialKey(ci)}|${bias ? bias.shape.join('x') : '-'}|${activation}|${activation === 'leakyrelu' ? leakyAlpha : ''}|${prelu ? prelu.shape.join('x') : '-'}`;
    const singleThread = convFlops(ci, depthwise) < tuning.singleThreadFlops;
    const form = nchwcForm(ci, depthwise, nhwc);
    if (form && !nchwcFailed.has(key)) {
      try {
        nchwcCounters.Conv2D++;
        return runOnTensors(
          backend,
          `${key}|nchwc-${form}`,
          (g) => {
            const b = nchwcBlockSize() as number;
            const ix = g.input('float32', inDims(ci, true));
            const iw = g.input('float32', filter.shape);
            const c = ci.inChannels;
            const xin = nchwcInput(g, ix, form, ci.inHeight, ci.inWidth, c);
            const o = ci.outChannels;
            const op = Math.ceil(o / b) * b;
            // A per-channel bias, and a ReLU after it, run inside the MLAS conv kernel.
            const inKernelBias = bias !== undefined && bias.shape.length > 0 && bias.shape[bias.shape.length - 1] === o && sizeOf(bias.shape) === o;
            const inKernelRelu = activation === 'relu' && (bias === undefined || inKernelBias);
            const convIns = [xin, nchwcFilter(g, convWeight(g, iw), o, c, kh, kw, form, b)];
            const ib = bias ? g.input('float32', bias.shape) : undefined;
            if (inKernelBias && ib) {
              const flat = g.op('Reshape', [ib, g.constI64([o])]);
              convIns.push(op === o ? flat : g.op('Pad', [flat, g.constI64([0, op - o])]));
            }
            const yb = g.op(
              'Conv',
              convIns,
              {
                kernel_shape: attr.ints([kh, kw]),
                strides: attr.ints([ci.strideHeight, ci.strideWidth]),
                dilations: attr.ints([ci.dilationHeight, ci.dilationWidth]),
                pads: attr.ints(pads(ci)),
                group: attr.int(1),
                ...(inKernelRelu ? { activation: attr.string('Relu') } : {}),
              },
              NCHWC,
            );
            let y = g.op('ReorderOutput', [yb], { channels: attr.int(o), channels_last: attr.int(1) }, NCHWC);
            if (ib && !inKernelBias) y = g.op('Add', [y, ib]);
            const al = prelu ? g.input('float32', prelu.shape) : undefined;
            g.output(inKernelRelu ? y : applyActivation(g, y, activation, leakyAlpha, al), 'float32');
          },
          ts,
          ['float32'],
          singleThread,
          [ci.outShape],
        )[0];
      } catch {
        // An attribute combination the nchwc kernels reject: the plain NCHW graph below.
        nchwcFailed.add(key);
        nchwcCounters.Conv2D--;
        nchwcCounters.rejected++;
      }
    }
    return runOnTensors(
      backend,
      key,
      (g) => {
        const ix = g.input('float32', inDims(ci, nhwc));
        const iw = g.input('float32', filter.shape);
        const xt = nhwc ? g.transpose(ix, TO_NCHW) : ix;
        const w = depthwise ? depthwiseWeight(g, iw, kh, kw, ci.outChannels) : convWeight(g, iw);
        let y = g.op('Conv', [xt, w], {
          kernel_shape: attr.ints([kh, kw]),
          strides: attr.ints([ci.strideHeight, ci.strideWidth]),
          dilations: attr.ints([ci.dilationHeight, ci.dilationWidth]),
          pads: attr.ints(pads(ci)),
          group: attr.int(depthwise ? ci.inChannels : 1),
        });
        if (nhwc) y = g.transpose(y, TO_NHWC);
        // NCHW: a 1-D bias / prelu weight aligns with channels (as in the tfjs CPU kernel).
        const alignNchw = (name: string, t: TensorInfo): string =>
          !nhwc && t.shape.length === 1 && t.shape[0] !== 1 ? g.op('Reshape', [name, g.constI64([t.shape[0], 1, 1])]) : name;
        if (bias) y = g.op('Add', [y, alignNchw(g.input('float32', bias.shape), bias)]);
        const al = prelu ? alignNchw(g.input('float32', prelu.shape), prelu) : undefined;
        g.output(applyActivation(g, y, activation, leakyAlpha, al), 'float32');
      },
      ts,
      ['float32'],
      convFlops(ci, depthwise) < tuning.singleThreadFlops,
      [ci.outShape],
    )[0];
  };
}

defineKernel('Conv2D', convForward(false, false));
defineKernel('FusedConv2D', convForward(false, true));
defineKernel('DepthwiseConv2dNative', convForward(true, false));
defineKernel('FusedDepthwiseConv2D', convForward(true, true));

// ---------------------------------------------------------------- gradient w.r.t. the input

function convBackpropInput(depthwise: boolean) {
  return ({ inputs, attrs, backend }: KernelArgs): KernelResult => {
    const { dy, filter } = inputs;
    const a = convArgs(attrs);
    const inputShape = attrs.inputShape as [number, number, number, number];
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32') return `dtype ${dy.dtype}`;
    const fmt = tf.backend_util.convertConv2DDataFormat(a.dataFormat);
    const ci = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], a.strides, depthwise ? a.dilations : 1, a.pad, a.dimRoundingMode, depthwise, fmt);
    const bad = onnxOutMatches(ci);
    if (bad) return bad;
    if (anyEmpty([dy, filter]) || sizeOf(inputShape) === 0) return JS_FAST;
    const p = ci.padInfo;
    const opH = ci.inHeight - (ci.strideHeight * (ci.outHeight - 1) + ci.effectiveFilterHeight - p.top - p.bottom);
    const opW = ci.inWidth - (ci.strideWidth * (ci.outWidth - 1) + ci.effectiveFilterWidth - p.left - p.right);
    if (opH < 0 || opW < 0 || opH >= Math.max(ci.strideHeight, ci.dilationHeight) || opW >= Math.max(ci.strideWidth, ci.dilationWidth)) {
      return `output_padding ${opH},${opW} out of range`;
    }
    const nhwc = fmt === 'channelsLast';
    const kh = ci.filterHeight;
    const kw = ci.filterWidth;
    const key = `ConvBI|${depthwise}|${nhwc}|${spatialKey(ci)}`;
    const singleThread = convFlops(ci, depthwise) < tuning.singleThreadFlops;
    const form = !depthwise && nhwc && ci.dilationHeight === 1 && ci.dilationWidth === 1 ? formFor(ci.outChannels) : null;
    if (form && !nchwcFailed.has(key)) {
      try {
        nchwcCounters.Conv2DBackpropInput++;
        return runOnTensors(backend, `${key}|nchwc-${form}`, (g) => buildBackpropInputNchwc(g, ci, form), [dy, filter], ['float32'], singleThread, [inputShape])[0];
      } catch {
        nchwcFailed.add(key);
        nchwcCounters.Conv2DBackpropInput--;
        nchwcCounters.rejected++;
      }
    }
    return runOnTensors(
      backend,
      key,
      (g) => {
        const idy = g.input('float32', outDims(ci, nhwc));
        const iw = g.input('float32', filter.shape);
        const dyt = nhwc ? g.transpose(idy, TO_NCHW) : idy;
        // ConvTranspose weight is [C_in(of the transposed conv) = forward out, out/group, kh, kw]:
        // for a plain conv that is the same [out, in, kh, kw] layout as the forward Conv weight.
        const w = depthwise ? depthwiseWeight(g, iw, kh, kw, ci.outChannels) : convWeight(g, iw);
        let y = g.op('ConvTranspose', [dyt, w], {
          kernel_shape: attr.ints([kh, kw]),
          strides: attr.ints([ci.strideHeight, ci.strideWidth]),
          dilations: attr.ints([ci.dilationHeight, ci.dilationWidth]),
          pads: attr.ints(pads(ci)),
          output_padding: attr.ints([opH, opW]),
          group: attr.int(depthwise ? ci.inChannels : 1),
        });
        if (nhwc) y = g.transpose(y, TO_NHWC);
        g.output(y, 'float32');
      },
      [dy, filter],
      ['float32'],
      convFlops(ci, depthwise) < tuning.singleThreadFlops,
      [inputShape],
    )[0];
  };
}

// The input gradient of a strided conv as ONE stride-1 NCHWc conv plus a depth-to-space
// ("sub-pixel" decomposition), instead of ConvTranspose (per-image GEMM + col2im on NCHW, with
// transposes around it). With h' = h + pad_top = s*q + r (phase r = h' mod s):
//   dx[h] = sum_a dy[q - a] * w[r + s*a],  a < A = ceil(k / s)  (w zero-padded to A*s taps),
// i.e. for each phase a correlation of dy (padded by A-1 before) with the flipped phase kernel
// K_r[a'] = w[r + s*(A-1-a')]. All s_h*s_w phases are output channels of one conv (channel
// (r_h, r_w, c)); interleaving them gives dx at h' in [0, Q*s), cropped to [pad, pad + H).
function buildBackpropInputNchwc(g: GraphBuilder, ci: ConvInfo, form: 'blocked' | 'nchw'): void {
  const b = nchwcBlockSize() as number;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inChannels: c, outChannels: o, outHeight: ho, outWidth: wo } = ci;
  const p = ci.padInfo;
  const ah = Math.ceil(kh / sh);
  const aw = Math.ceil(kw / sw);
  // Output rows/cols q of the phase conv: enough for h' < pad + H, and at least Ho so that the
  // padding below dy stays >= 0.
  const qh = Math.max(Math.ceil((p.top + ci.inHeight) / sh), ho);
  const qw = Math.max(Math.ceil((p.left + ci.inWidth) / sw), wo);
  const idy = g.input('float32', outDims(ci, true));
  const iw = g.input('float32', [kh, kw, c, o]);
  // Phase kernels: [A*s, A*s', C, O] -> [A, s, A', s', C, O] -> flip the A axes.
  const wp = ah * sh === kh && aw * sw === kw ? iw : g.op('Pad', [iw, g.constI64([0, 0, 0, 0, ah * sh - kh, aw * sw - kw, 0, 0])]);
  const w6 = g.op('Reshape', [wp, g.constI64([ah, sh, aw, sw, c, o])]);
  // Step -1 from the last index; an end of -(A+1) (= index -1 after adding A) keeps index 0.
  const flipped = g.op('Slice', [w6, g.constI64([-1, -1]), g.constI64([-(ah + 1), -(aw + 1)]), g.constI64([0, 2]), g.constI64([-1, -1])]);
  // -> [s, s', C, O, A, A'] = OIHW of the phase conv with O' = s*s'*C outputs, I = O inputs.
  const oihw = g.op('Reshape', [g.transpose(flipped, [1, 3, 4, 5, 0, 2]), g.constI64([sh * sw * c, o, ah, aw])]);
  const z = g.op(
    'Conv',
    [nchwcInput(g, idy, form, ho, wo, o), nchwcFilter(g, oihw, sh * sw * c, o, ah, aw, form, b)],
    {
      kernel_shape: attr.ints([ah, aw]),
      strides: attr.ints([1, 1]),
      dilations: attr.ints([1, 1]),
      pads: attr.ints([ah - 1, aw - 1, qh - ho, qw - wo]),
      group: attr.int(1),
    },
    NCHWC,
  );
  const zn = g.op('ReorderOutput', [z], { channels: attr.int(sh * sw * c), channels_last: attr.int(1) }, NCHWC); // [N, Qh, Qw, s*s'*C]
  let full = zn;
  if (sh * sw > 1) {
    const z6 = g.op('Reshape', [zn, g.constI64([-1, qh, qw, sh, sw, c])]);
    full = g.op('Reshape', [g.transpose(z6, [0, 1, 3, 2, 4, 5]), g.constI64([-1, qh * sh, qw * sw, c])]);
  }
  const needCrop = p.top !== 0 || p.left !== 0 || qh * sh !== ci.inHeight || qw * sw !== ci.inWidth;
  g.output(needCrop ? g.op('Slice', [full, g.constI64([p.top, p.left]), g.constI64([p.top + ci.inHeight, p.left + ci.inWidth]), g.constI64([1, 2])]) : full, 'float32');
}

defineKernel('Conv2DBackpropInput', convBackpropInput(false));
defineKernel('DepthwiseConv2dNativeBackpropInput', convBackpropInput(true));

// ---------------------------------------------------------------- gradient w.r.t. the filter

// dW[i, j, c, o] = sum_{n, y, x} X[n, s*y + d*i - pt, s*x + d*j - pl, c] * dY[n, y, x, o]: a
// convolution of X (batch and channel axes swapped: [C, N, H, W]) with dY as the weight
// ([O, N, Ho, Wo]), stride = forward dilation, dilation = forward stride, then sliced to the
// filter size. Depthwise: the same as a grouped convolution with one group per input channel.
function convBackpropFilter(depthwise: boolean) {
  return ({ inputs, attrs, backend }: KernelArgs): KernelResult => {
    const { x, dy } = inputs;
    const a = convArgs(attrs);
    const filterShape = attrs.filterShape as [number, number, number, number];
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') return `dtype ${x.dtype}`;
    const fmt = tf.backend_util.convertConv2DDataFormat(a.dataFormat);
    const ci = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, a.strides, depthwise ? a.dilations : 1, a.pad, a.dimRoundingMode, depthwise, fmt);
    const bad = onnxOutMatches(ci);
    if (bad) return bad;
    if (anyEmpty([x, dy]) || sizeOf(filterShape) === 0) return JS_FAST;
    const nhwc = fmt === 'channelsLast';
    const [kh, kw, cin, mult] = filterShape;
    const key = `ConvBF|${depthwise}|${nhwc}|${spatialKey(ci)}`;
    const singleThread = convFlops(ci, depthwise) < tuning.singleThreadFlops;
    // Few input channels = few images for the NCHWc conv: the plain path was faster for the
    // reference CNN's single-channel first layer (2.7 vs 4.0 ms), NCHWc for its 16-channel
    // second layer (2.5 vs 3.9 ms), batch 256, 1 thread.
    const b = !depthwise && nhwc && ci.dilationHeight === 1 && ci.dilationWidth === 1 && ci.inChannels >= 8 && tuning.nchwcConv ? nchwcBlockSize() : null;
    if (b !== null && !nchwcFailed.has(key)) {
      // The batch is the conv's input-channel axis here: zero images pad it to whole blocks
      // (they add nothing). The pad amount is fed per call, so one session serves every batch
      // size (Poisson sampling changes it every step).
      const padN = (b - (x.shape[0] % b)) % b;
      const op = Math.ceil(ci.outChannels / b) * b;
      try {
        nchwcCounters.Conv2DBackpropFilter++;
        // Whole blocks already (e.g. batch 256): a session without the Pad copies.
        const padded = padN > 0 || op !== ci.outChannels;
        const [out] = runGraph(
          `${key}|nchwc|${padded ? 'pad' : 'nopad'}`,
          () => {
            const g = new GraphBuilderCtor();
            buildBackpropFilterNchwc(g, ci, b, padded);
            return g.build();
          },
          [...inputsOf(backend, [x, dy]), ...(padded ? [i64([0, 0, 0, 0, padN, 0, 0, 0]), i64([0, 0, 0, 0, padN, 0, 0, op - ci.outChannels])] : [])],
          singleThread,
        );
        return backend.makeTensorInfo(filterShape, 'float32', out.data as tf.backend_util.BackendValues);
      } catch {
        nchwcFailed.add(key);
        nchwcCounters.Conv2DBackpropFilter--;
        nchwcCounters.rejected++;
      }
    }
    return runOnTensors(
      backend,
      key,
      (g) => {
        const ix = g.input('float32', inDims(ci, nhwc));
        const idy = g.input('float32', outDims(ci, nhwc));
        const toCN = nhwc ? [3, 0, 1, 2] : [1, 0, 2, 3];
        let xs = g.transpose(ix, toCN); // [C, N, H, W]
        const dys = g.transpose(idy, toCN); // [O, N, Ho, Wo]
        if (depthwise) xs = g.op('Reshape', [xs, g.constI64([1, -1, ci.inHeight, ci.inWidth])]); // [1, C*N, H, W]
        const full = g.op('Conv', [xs, dys], {
          kernel_shape: attr.ints([ci.outHeight, ci.outWidth]),
          strides: attr.ints([ci.dilationHeight, ci.dilationWidth]),
          dilations: attr.ints([ci.strideHeight, ci.strideWidth]),
          pads: attr.ints(pads(ci)),
          group: attr.int(depthwise ? cin : 1),
        });
        const cut = g.op('Slice', [full, g.constI64([0, 0]), g.constI64([kh, kw]), g.constI64([2, 3])]);
        const shaped = depthwise ? g.op('Reshape', [cut, g.constI64([cin, mult, kh, kw])]) : cut; // [C, O, kh, kw]
        g.output(g.transpose(shaped, [2, 3, 0, 1]), 'float32');
      },
      [x, dy],
      ['float32'],
      convFlops(ci, depthwise) < tuning.singleThreadFlops,
      [filterShape],
    )[0];
  };
}

// The same filter gradient on the NCHWc kernels: the conv's "batch" is the input channel C, its
// input channels are the (padded) batch N, and dy is the weight, reordered straight from NHWC
// [N, Ho, Wo, O] to the blocked filter format [Ob, Nb, Ho, Wo, n, o] by one transpose.
function buildBackpropFilterNchwc(g: GraphBuilder, ci: ConvInfo, b: number, padded: boolean): void {
  const { outChannels: o, outHeight: ho, outWidth: wo, filterHeight: kh, filterWidth: kw } = ci;
  const ix = g.input('float32', inDims(ci, true));
  const idy = g.input('float32', outDims(ci, true));
  const op = Math.ceil(o / b) * b;
  // Pads (fed per call): the batch to whole blocks for x and dy, dy's channels to whole blocks.
  const xp = padded ? g.op('Pad', [ix, g.input('int64', [8])]) : ix;
  const dyp = padded ? g.op('Pad', [idy, g.input('int64', [8])]) : idy;
  // x as NCHW images of the conv: [C, Np, H, W] -> NCHWc.
  const xs = g.op('ReorderInput', [g.transpose(xp, [3, 0, 1, 2])], {}, NCHWC);
  const dy6 = g.op('Reshape', [dyp, g.constI64([-1, b, ho, wo, op / b, b])]); // [Nb, n, Ho, Wo, Ob, o]
  const wgt = g.op('Reshape', [g.transpose(dy6, [4, 0, 2, 3, 1, 5]), g.constI64([op, -1, ho, wo])]);
  const full = g.op(
    'Conv',
    [xs, wgt],
    {
      kernel_shape: attr.ints([ho, wo]),
      strides: attr.ints([1, 1]),
      dilations: attr.ints([ci.strideHeight, ci.strideWidth]),
      pads: attr.ints(pads(ci)),
      group: attr.int(1),
    },
    NCHWC,
  );
  const y = g.op('ReorderOutput', [full], { channels: attr.int(o), channels_last: attr.int(1) }, NCHWC); // [C, KH, KW, O]
  const cut = g.op('Slice', [y, g.constI64([0, 0]), g.constI64([kh, kw]), g.constI64([1, 2])]);
  g.output(g.transpose(cut, [1, 2, 0, 3]), 'float32');
}

defineKernel('Conv2DBackpropFilter', convBackpropFilter(false));
defineKernel('DepthwiseConv2dNativeBackpropFilter', convBackpropFilter(true));

// ---------------------------------------------------------------- pooling

function poolInfo(x: TensorInfo, attrs: tf.NamedAttrMap): ConvInfo {
  return tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize as [number, number] | number,
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as PadAttr,
    attrs.dimRoundingMode as Rounding,
  );
}

function poolAttrs(ci: ConvInfo) {
  return {
    kernel_shape: attr.ints([ci.filterHeight, ci.filterWidth]),
    strides: attr.ints([ci.strideHeight, ci.strideWidth]),
    pads: attr.ints(pads(ci)),
  };
}

function pool(kind: 'max' | 'avg') {
  return ({ inputs, attrs, backend }: KernelArgs): KernelResult => {
    const x = inputs.x;
    if (x.dtype !== 'float32') return `dtype ${x.dtype}`;
    if (x.shape.length !== 4) return `rank ${x.shape.length}`;
    const ci = poolInfo(x, attrs);
    const bad = onnxOutMatches(ci);
    if (bad) return bad;
    if (anyEmpty([x]) || sizeOf(ci.outShape) === 0) return JS_FAST;
    const n = sizeOf(x.shape);
    return runOnTensors(
      backend,
      `${kind}Pool|${spatialKey(ci)}`,
      (g) => {
        const ix = g.input('float32', inDims(ci, true));
        const xt = g.transpose(ix, TO_NCHW);
        // tfjs averages over the in-bounds window only: count_include_pad = 0.
        const y = kind === 'max' ? g.op('MaxPool', [xt], poolAttrs(ci)) : g.op('AveragePool', [xt], { ...poolAttrs(ci), count_include_pad: attr.int(0) });
        g.output(g.transpose(y, TO_NHWC), 'float32');
      },
      [x],
      ['float32'],
      // NCHWc: MLAS's blocked pooling with the layout transposes folded into its reorders
      // (reference CNN's first pool, batch 256: 0.56 vs 1.84 ms).
      { singleThread: n < tuning.singleThreadElems, optLevel: 'all' },
      [ci.outShape],
    )[0];
  };
}

defineKernel('MaxPool', pool('max'));
defineKernel('AvgPool', pool('avg'));

// MaxPoolGrad without argmax indices and without layout changes (ORT's MaxPool-with-Indices is
// a slow generic path): for each window offset (i, j), in the row-major order in which tfjs
// picks the first maximum, mask = (x shifted by (i, j) == y) and no earlier offset matched;
// dy * mask is then placed back at the offset's input positions and summed. Everything is
// elementwise on NHWC data. Strides > 1 place each residue class (i mod s, j mod s) on its own
// grid and interleave the grids with a reshape. (NaN inputs get no gradient; tfjs's choice
// for windows containing NaN is arbitrary too.)
function buildMaxPoolGrad(g: GraphBuilder, ci: ConvInfo): void {
  const { inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = ci;
  const p = ci.padInfo;
  const Hp = H + p.top + p.bottom;
  const Wp = W + p.left + p.right;
  const ix = g.input('float32', inDims(ci, true));
  const iy = g.input('float32', outDims(ci, true));
  const idy = g.input('float32', outDims(ci, true));
  const padded = p.top + p.bottom + p.left + p.right > 0;
  const xp = padded ? g.op('Pad', [ix, g.constI64([0, p.top, p.left, 0, 0, p.bottom, p.right, 0]), g.constF32([-Infinity])]) : ix;
  const zero = g.constF32([0]);
  const axes = g.constI64([1, 2]);
  const steps = g.constI64([sh, sw]);
  const Hq = Math.ceil(Hp / sh);
  const Wq = Math.ceil(Wp / sw);
  const acc = new Map<string, string>();
  let taken: string | undefined;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const xs = g.op('Slice', [xp, g.constI64([i, j]), g.constI64([i + sh * (Ho - 1) + 1, j + sw * (Wo - 1) + 1]), axes, steps]);
      const eq = g.op('Equal', [xs, iy]);
      const mask = taken ? g.op('And', [eq, g.op('Not', [taken])]) : eq;
      taken = taken ? g.op('Or', [taken, eq]) : eq;
      const contrib = g.op('Where', [mask, idy, zero]);
      const qi = Math.floor(i / sh);
      const qj = Math.floor(j / sw);
      const gridH = sh === 1 ? Hp : Hq;
      const gridW = sw === 1 ? Wp : Wq;
      const placed = g.op('Pad', [contrib, g.constI64([0, qi, qj, 0, 0, gridH - Ho - qi, gridW - Wo - qj, 0])]);
      const key = `${i % sh},${j % sw}`;
      const prev = acc.get(key);
      acc.set(key, prev ? g.op('Add', [prev, placed]) : placed);
    }
  }
  let dxp: string;
  if (sh === 1 && sw === 1) dxp = acc.get('0,0') as string;
  else {
    const any = acc.values().next().value as string;
    const zeros = g.op('ConstantOfShape', [g.op('Shape', [any])], { value: attr.tensor({ name: 'zero', type: 1, dims: [1], values: [0] }) });
    const rows: string[] = [];
    for (let r1 = 0; r1 < sh; r1++) {
      const cols: string[] = [];
      for (let r2 = 0; r2 < sw; r2++) cols.push(g.op('Unsqueeze', [acc.get(`${r1},${r2}`) ?? zeros, g.constI64([3])]));
      const row = cols.length === 1 ? cols[0] : g.op('Concat', cols, { axis: attr.int(3) }); // [N, Hq, Wq, sw, C]
      rows.push(g.op('Unsqueeze', [row, g.constI64([2])])); // [N, Hq, 1, Wq, sw, C]
    }
    const grid = rows.length === 1 ? rows[0] : g.op('Concat', rows, { axis: attr.int(2) }); // [N, Hq, sh, Wq, sw, C]
    dxp = g.op('Reshape', [grid, g.constI64([0, Hq * sh, Wq * sw, ci.inChannels])]);
  }
  const needsCrop = padded || (sh > 1 && Hq * sh !== Hp) || (sw > 1 && Wq * sw !== Wp);
  const dx = needsCrop ? g.op('Slice', [dxp, g.constI64([p.top, p.left]), g.constI64([p.top + H, p.left + W]), axes]) : dxp;
  g.output(dx, 'float32');
}

defineKernel('MaxPoolGrad', ({ inputs, attrs, backend }) => {
  const { dy, input, output } = inputs;
  if (dy.dtype !== 'float32' || input.dtype !== 'float32' || output.dtype !== 'float32') return `dtype ${dy.dtype}`;
  const ci = poolInfo(input, attrs);
  const bad = onnxOutMatches(ci);
  if (bad) return bad;
  if (anyEmpty([dy, input])) return JS_FAST;
  if (tuning.hostMaxPoolGrad) {
    // One host pass (host/pool.ts: WebAssembly SIMD where the geometry allows, else JS) instead
    // of the elementwise graph below: reference CNN's first pool, batch 256, 2.8 vs 7.5 ms CPU.
    const p = ci.padInfo;
    const f32 = (t: TensorInfo) => feed(t, backend.values(t)).data as Float32Array;
    const dx = maxPoolGradHost(f32(input), f32(output), f32(dy), {
      n: ci.batchSize,
      h: ci.inHeight,
      w: ci.inWidth,
      c: ci.inChannels,
      ho: ci.outHeight,
      wo: ci.outWidth,
      kh: ci.filterHeight,
      kw: ci.filterWidth,
      sh: ci.strideHeight,
      sw: ci.strideWidth,
      pt: p.top,
      pl: p.left,
    });
    return backend.makeTensorInfo(input.shape, 'float32', dx);
  }
  const n = sizeOf(input.shape);
  return runOnTensors(backend, `MaxPoolGrad|${spatialKey(ci)}`, (g) => buildMaxPoolGrad(g, ci), [input, output, dy], ['float32'], n < tuning.maxPoolGradSingleThreadElems, [input.shape])[0];
});

// AvgPoolGrad: the tfjs CPU kernel spreads dy[o] / (fh*fw) over each window (a constant divisor,
// also at padded borders): a grouped ConvTranspose with a uniform weight reproduces it exactly.
defineKernel('AvgPoolGrad', ({ inputs, attrs, backend }) => {
  const { dy, input } = inputs;
  if (dy.dtype !== 'float32' || input.dtype !== 'float32') return `dtype ${dy.dtype}`;
  const ci = poolInfo(input, attrs);
  const bad = onnxOutMatches(ci);
  if (bad) return bad;
  if (anyEmpty([dy, input])) return JS_FAST;
  const p = ci.padInfo;
  const opH = ci.inHeight - (ci.strideHeight * (ci.outHeight - 1) + ci.filterHeight - p.top - p.bottom);
  const opW = ci.inWidth - (ci.strideWidth * (ci.outWidth - 1) + ci.filterWidth - p.left - p.right);
  if (opH < 0 || opW < 0 || opH >= ci.strideHeight || opW >= ci.strideWidth) return `output_padding ${opH},${opW} out of range`;
  const c = ci.inChannels;
  const kh = ci.filterHeight;
  const kw = ci.filterWidth;
  const n = sizeOf(input.shape);
  return runOnTensors(
    backend,
    `AvgPoolGrad|${spatialKey(ci)}`,
    (g) => {
      const idy = g.input('float32', outDims(ci, true));
      const w = g.constF32(new Array<number>(c * kh * kw).fill(1 / (kh * kw)), [c, 1, kh, kw]);
      const y = g.op('ConvTranspose', [g.transpose(idy, TO_NCHW), w], {
        ...poolAttrs(ci),
        output_padding: attr.ints([opH, opW]),
        group: attr.int(c),
      });
      g.output(g.transpose(y, TO_NHWC), 'float32');
    },
    [dy],
    ['float32'],
    n < tuning.singleThreadElems,
    [input.shape],
  )[0];
});
