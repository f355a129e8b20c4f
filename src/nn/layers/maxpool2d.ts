// MaxPool2d (host arg-max path in training; ReLU fusion set by Sequential).
import * as tf from '@tensorflow/tfjs-core';
import { maxPoolBackward, maxPoolForward } from '../../engine/host/im2col.js';
import { HostArena, simdAvailable } from '../../engine/host/simd.js';
import { checkRank, requireCache } from './common.js';
import { Pool2d, poolOptions } from './pool2d.js';
import { ModelError } from '../module.js';
import { registerLayer } from './registry.js';

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

registerLayer({ types: ['maxpool2d'], build: (s) => new MaxPool2d(poolOptions(s)) });
