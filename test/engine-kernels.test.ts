// Every native kernel against @tensorflow/tfjs-backend-cpu on random inputs: broadcast shapes,
// odd sizes, strides, 'same'/'valid'/explicit pads, dilations, size-1 and empty dims, and
// gradients of composite functions. The JS fast path for small tensors is switched off so the
// small test inputs exercise the native kernels.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, engineTuning, initEngine, resetEngineStats } from '../src/engine/index.js';
import { compareBackends, rnd, type CompareResult, type Outputs } from './engine-helpers.js';

const savedFast = engineTuning.jsFastPathElems;
before(() => {
  engineTuning.jsFastPathElems = 0;
});
after(() => {
  engineTuning.jsFastPathElems = savedFast;
});

function expectNative(r: CompareResult, kernels: string[]): void {
  assert.deepEqual(r.fallbacks, {}, `unexpected fallbacks ${JSON.stringify(r.fallbacks)}`);
  for (const k of kernels) {
    assert.ok((r.kernelCalls[k] ?? 0) > 0, `${k} was not called (calls: ${JSON.stringify(r.kernelCalls)})`);
    assert.equal(r.jsFastPath[k] ?? 0, 0, `${k} took the JS path`);
  }
}

async function check(name: string, kernels: string[], f: () => Outputs): Promise<void> {
  expectNative(await compareBackends(name, f), kernels);
}

const t4 = (t: tf.Tensor) => t as tf.Tensor4D;
const t2 = (t: tf.Tensor) => t as tf.Tensor2D;

describe('matmul', () => {
  test('plain, transposed, batched with broadcasting, odd sizes', async () => {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      await check(`matmul ${ta} ${tb}`, ['BatchMatMul'], () => {
        const a = rnd(ta ? [37, 19] : [19, 37], 1);
        const b = rnd(tb ? [23, 37] : [37, 23], 2);
        return tf.matMul(a, b, ta, tb);
      });
    }
    await check('batched broadcast', ['BatchMatMul'], () => [tf.matMul(rnd([3, 2, 5, 7], 3), rnd([7, 6], 4)), tf.matMul(rnd([1, 5, 7], 3), rnd([2, 3, 7, 6], 4)), tf.matMul(rnd([6, 5, 7], 3), rnd([6, 7, 2], 4))]);
    await check('batched transposed', ['BatchMatMul'], () => tf.matMul(rnd([5, 7, 3], 3), rnd([5, 6, 7], 4), true, true));
    await check('size-1 dims', ['BatchMatMul'], () => tf.matMul(rnd([1, 9], 5), rnd([9, 1], 6)));
  });

  test('fused matmul: bias and every activation', async () => {
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const) {
      await check(`fused ${activation}`, ['_FusedMatMul'], () =>
        tf.fused.matMul({
          a: rnd([17, 12], 1),
          b: rnd([10, 12], 2),
          transposeB: true,
          bias: rnd([10], 3),
          activation,
          preluActivationWeights: activation === 'prelu' ? tf.abs(rnd([10], 4)) : undefined,
          leakyreluAlpha: 0.15,
        }),
      );
    }
  });
});

describe('convolution', () => {
  const pads: Array<['same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]], string]> = [
    ['same', 'same'],
    ['valid', 'valid'],
    [
      [
        [0, 0],
        [3, 1],
        [2, 2],
        [0, 0],
      ],
      'explicit',
    ],
    [1, 'numeric'],
  ];
  // tfjs leaves fractional output sizes unrounded for numeric pads unless a rounding mode is given.
  const rounding = (pad: unknown) => (typeof pad === 'number' ? 'floor' : undefined);
  // ...and sizes both output dims from the filter height (tfjs quirk), so numeric pads get a
  // square filter here; the non-square case is checked to fall back below.
  const filterFor = (pad: unknown) => (typeof pad === 'number' ? [3, 3, 3, 5] : [4, 3, 3, 5]);

  test('Conv2D: strides, pads, dilations, odd sizes', async () => {
    for (const [pad, label] of pads) {
      for (const stride of [1, 2, [2, 3]] as const) {
        if (typeof pad === 'number' && Array.isArray(stride)) continue; // same quirk for strides
        await check(`conv2d ${label} s${String(stride)}`, ['Conv2D'], () => tf.conv2d(t4(rnd([2, 13, 11, 3], 1)), t4(rnd(filterFor(pad), 2)), stride as [number, number], pad, 'NHWC', 1, rounding(pad)));
      }
    }
    await check('conv2d dilation 2', ['Conv2D'], () => tf.conv2d(t4(rnd([2, 12, 12, 2], 1)), t4(rnd([3, 3, 2, 4], 2)), 1, 'same', 'NHWC', 2));
    await check('conv2d NCHW', ['Conv2D'], () => tf.conv2d(t4(rnd([2, 3, 9, 9], 1)), t4(rnd([3, 3, 3, 4], 2)), 2, 'same', 'NCHW'));
    await check('conv2d 1x1 single pixel', ['Conv2D'], () => tf.conv2d(t4(rnd([1, 1, 1, 3], 1)), t4(rnd([1, 1, 3, 2], 2)), 1, 'valid'));
  });

  test('Conv2D gradients (both backprops) match', async () => {
    for (const [pad, label] of pads) {
      for (const stride of [1, 2, [2, 3]] as const) {
        if (typeof pad === 'number' && Array.isArray(stride)) continue;
        await check(`conv grads ${label} s${String(stride)}`, ['Conv2DBackpropInput', 'Conv2DBackpropFilter'], () =>
          tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.conv2d(t4(x), t4(w), stride as [number, number], pad, 'NHWC', 1, rounding(pad)))))([rnd([2, 13, 11, 3], 1), rnd(filterFor(pad), 2)]),
        );
      }
    }
  });

  test('the reference CNN layers (k8 s2 pad 3, k4 s2 valid) and their gradients', async () => {
    await check('ref conv1', ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'], () =>
      tf.grads((x: tf.Tensor, w: tf.Tensor) =>
        tf.sum(
          tf.square(
            tf.conv2d(t4(x), t4(w), 2, [
              [0, 0],
              [3, 3],
              [3, 3],
              [0, 0],
            ]),
          ),
        ),
      )([rnd([3, 28, 28, 1], 1), rnd([8, 8, 1, 16], 2)]),
    );
    await check('ref conv2', ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'], () =>
      tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.conv2d(t4(x), t4(w), 2, 'valid'))))([rnd([3, 13, 13, 16], 3), rnd([4, 4, 16, 32], 4)]),
    );
  });

  test('FusedConv2D with bias and activations, NHWC and NCHW', async () => {
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const) {
      await check(`fused conv ${activation}`, ['FusedConv2D'], () =>
        tf.fused.conv2d({
          x: t4(rnd([2, 9, 9, 3], 1)),
          filter: t4(rnd([3, 3, 3, 4], 2)),
          strides: 2,
          pad: 'same',
          bias: rnd([4], 3),
          activation,
          preluActivationWeights: activation === 'prelu' ? tf.abs(rnd([4], 4)) : undefined,
          leakyreluAlpha: 0.1,
        }),
      );
    }
    await check('fused conv NCHW bias', ['FusedConv2D'], () =>
      tf.fused.conv2d({ x: t4(rnd([2, 3, 9, 9], 1)), filter: t4(rnd([3, 3, 3, 4], 2)), strides: 1, pad: 'valid', dataFormat: 'NCHW', bias: rnd([4], 3), activation: 'relu' }),
    );
  });

  test('depthwise conv and its gradients; conv2dTranspose', async () => {
    for (const [pad, label] of pads.slice(0, 3)) {
      await check(`depthwise ${label}`, ['DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter'], () =>
        tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(t4(x), t4(w), 2, pad))))([rnd([2, 11, 10, 3], 1), rnd([3, 3, 3, 2], 2)]),
      );
    }
    await check('depthwise dilated', ['DepthwiseConv2dNative'], () => tf.depthwiseConv2d(t4(rnd([2, 11, 10, 3], 1)), t4(rnd([3, 3, 3, 2], 2)), 1, 'same', 'NHWC', 2));
    await check('conv2dTranspose', ['Conv2DBackpropInput'], () => tf.conv2dTranspose(t4(rnd([2, 7, 7, 8], 1)), t4(rnd([4, 4, 3, 8], 2)), [2, 14, 14, 3], 2, 'same'));
  });

  test('pooling and pooling gradients', async () => {
    await poolingChecks();
  });

  test('MaxPoolGrad: the host pass and the ONNX graph agree with the CPU backend (ties, ±0, padding)', async () => {
    const saved = engineTuning.hostMaxPoolGrad;
    try {
      for (const host of [true, false]) {
        engineTuning.hostMaxPoolGrad = host;
        // −0 and +0 in one window: tfjs' strict '>' keeps the first of them, so does '==='.
        const signedZeros = () => tf.tensor4d(Float32Array.from({ length: 2 * 9 * 8 * 3 }, (_, i) => ((i * 7) % 5 === 0 ? -0 : (i * 13) % 4 === 0 ? 0 : -1)), [2, 9, 8, 3]);
        for (const [size, stride, pad] of [
          [2, 1, 'valid'],
          [3, 2, 'same'],
          [2, 2, 'same'],
        ] as const) {
          await check(`maxPoolGrad host=${host} ${size} ${stride} ${pad}`, ['MaxPoolGrad'], () =>
            tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t4(x), size, stride, pad), tf.maxPool(t4(rnd([2, 9, 8, 3], 7)), size, stride, pad))))(tf.relu(tf.round(rnd([2, 9, 8, 3], 3)))),
          );
          await check(`maxPoolGrad host=${host} signed zeros ${size} ${stride} ${pad}`, ['MaxPoolGrad'], () =>
            tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t4(x), size, stride, pad), tf.maxPool(t4(rnd([2, 9, 8, 3], 7)), size, stride, pad))))(signedZeros()),
          );
        }
      }
    } finally {
      engineTuning.hostMaxPoolGrad = saved;
    }
  });

  async function poolingChecks(): Promise<void> {
    for (const [size, stride, pad] of [
      [2, 1, 'valid'],
      [3, 2, 'same'],
      [2, 2, 'valid'],
      [3, 1, 'same'],
    ] as const) {
      await check(`maxPool ${size} ${stride} ${pad}`, ['MaxPool', 'MaxPoolGrad'], () =>
        tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t4(x), size, stride, pad), tf.maxPool(t4(rnd([2, 9, 8, 3], 7)), size, stride, pad))))(rnd([2, 9, 8, 3], 1)),
      );
      // Ties (ReLU zeros, small integers): the first maximum in row-major window order wins, as in tfjs.
      await check(`maxPool ties ${size} ${stride} ${pad}`, ['MaxPoolGrad'], () =>
        tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t4(x), size, stride, pad), tf.maxPool(t4(rnd([2, 9, 8, 3], 7)), size, stride, pad))))(tf.relu(tf.round(rnd([2, 9, 8, 3], 1)))),
      );
      await check(`avgPool ${size} ${stride} ${pad}`, ['AvgPool', 'AvgPoolGrad'], () =>
        tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t4(x), size, stride, pad), tf.avgPool(t4(rnd([2, 9, 8, 3], 7)), size, stride, pad))))(rnd([2, 9, 8, 3], 1)),
      );
    }
  }
});

describe('elementwise', () => {
  test('binary ops with broadcasting', async () => {
    const shapes: Array<[number[], number[]]> = [
      [
        [4, 1, 5],
        [3, 1],
      ],
      [[7], [2, 3, 7]],
      [[2, 3], []],
      [
        [1, 1],
        [5, 6],
      ],
    ];
    for (const [sa, sb] of shapes) {
      await check(`binary ${sa}|${sb}`, ['Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference'], () => {
        const a = rnd(sa, 1);
        const b = rnd(sb, 2);
        return [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.div(a, b), tf.maximum(a, b), tf.minimum(a, b), tf.pow(tf.abs(a), b), tf.squaredDifference(a, b)];
      });
    }
    await check('int32 binary', ['Add', 'Sub', 'Multiply', 'Maximum', 'Minimum', 'FloorDiv', 'Mod'], () => {
      const a = rnd([5, 4], 1, 'int32');
      const b = tf.tensor1d([3, -4, 7, -2], 'int32');
      return [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.maximum(a, b), tf.minimum(a, b), tf.floorDiv(a, b), tf.mod(a, b)];
    });
    await check('float mod', ['Mod'], () => tf.mod(tf.mul(rnd([6, 5], 1), 10), tf.tensor1d([3, -4, 2.5, -0.75, 7])));
    // int32 division by zero stays in JS (native integer division would trap).
    const z = await compareBackends('int div by zero', () => [tf.floorDiv(tf.tensor1d([5, -3], 'int32'), tf.tensor1d([0, 2], 'int32'))]);
    assert.equal(z.fallbacks.FloorDiv, 1);
  });

  test('comparisons, logical ops, select, casts', async () => {
    await check('compare', ['Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'LogicalAnd', 'LogicalOr', 'LogicalNot', 'Select', 'Cast'], () => {
      const a = tf.round(tf.mul(rnd([6, 5], 1), 2));
      const b = tf.round(tf.mul(rnd([5], 2), 2));
      const g = tf.greater(a, b);
      return [
        tf.equal(a, b),
        tf.notEqual(a, b),
        g,
        tf.greaterEqual(a, b),
        tf.less(a, b),
        tf.lessEqual(a, b),
        tf.logicalAnd(g, tf.less(a, 1)),
        tf.logicalOr(g, tf.less(a, -1)),
        tf.logicalNot(g),
        tf.where(g, a, tf.neg(a)),
        tf.cast(g, 'float32'),
        tf.cast(tf.mul(a, 1.7), 'int32'),
      ];
    });
  });

  test('unary ops and gradient helpers', async () => {
    await check(
      'unary',
      ['Relu', 'Relu6', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Exp', 'Log', 'Sqrt', 'Rsqrt', 'Square', 'Abs', 'Neg', 'Sign', 'Step', 'Softplus', 'Erf', 'ClipByValue', 'Floor', 'Ceil', 'Round', 'Reciprocal', 'Sin', 'Cos', 'IsNan'],
      () => {
        const x = rnd([5, 7, 3], 1);
        const p = tf.add(tf.abs(x), 0.1);
        return [
          tf.relu(x),
          tf.relu6(tf.mul(x, 5)),
          tf.leakyRelu(x, 0.3),
          tf.sigmoid(x),
          tf.tanh(x),
          tf.elu(x),
          tf.selu(x),
          tf.exp(x),
          tf.log(p),
          tf.sqrt(p),
          tf.rsqrt(p),
          tf.square(x),
          tf.abs(x),
          tf.neg(x),
          tf.sign(x),
          tf.step(x, 0.2),
          tf.softplus(x),
          tf.erf(x),
          tf.clipByValue(x, -0.4, 0.9),
          tf.floor(tf.mul(x, 3)),
          tf.ceil(tf.mul(x, 3)),
          tf.round(tf.mul(x, 3)),
          tf.reciprocal(p),
          tf.sin(x),
          tf.cos(x),
          tf.isNaN(tf.log(x)),
        ];
      },
    );
  });

  test('special values (NaN, ±Infinity, ±0) propagate as on the CPU backend', async () => {
    await check('special values', ['Relu', 'Maximum', 'Minimum', 'ClipByValue', 'Softplus', 'Sign', 'Elu', 'Sigmoid', 'Max', 'Step', 'Log1p', 'Expm1', 'Round', 'DplensReluBackprop'], () => {
      const x = tf.tensor1d([NaN, -Infinity, Infinity, -1, 0, 1, -0, 0.5, 2.5, -1.5]);
      return [
        tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.relu(v), tf.tensor1d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))))(x),
        tf.relu(x),
        tf.relu6(x),
        tf.maximum(x, 0),
        tf.minimum(x, 0),
        tf.clipByValue(x, -0.5, 0.5),
        tf.leakyRelu(x, 0.1),
        tf.softplus(x),
        tf.sign(x),
        tf.elu(x),
        tf.sigmoid(x),
        tf.max(tf.reshape(x, [5, 2]), 1),
        tf.step(x),
        tf.round(x),
        tf.log1p(x),
        tf.expm1(x),
      ];
    });
  });

  test('gradients of composite functions (activations, softmax cross-entropy)', async () => {
    // (tf.logSoftmax is a composite op in tfjs: Max, Sub, Exp, Sum, Log.)
    // (ReLU's gradient runs as one fused kernel on 'ort': DplensReluBackprop.)
    await check('grads composite', ['DplensReluBackprop', 'EluGrad', 'Sigmoid', 'Tanh', 'Exp', 'Log', 'Max'], () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const h = tf.matMul(t2(a), t2(b));
        const z = tf.add(tf.add(tf.relu(h), tf.elu(h)), tf.mul(tf.sigmoid(h), tf.tanh(h)));
        const lsm = tf.logSoftmax(z);
        return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d([1, 0, 3, 2, 4, 1, 0], 'int32'), 5), lsm), 1)));
      })([rnd([7, 6], 1), rnd([6, 5], 2)]),
    );
    // (tfjs has no gradient for Conv2DBackpropFilter on any backend, so a dense layer here.)
    await check('second-order gradient through ReLU', ['DplensReluBackprop', 'BatchMatMul'], () =>
      tf.grad((x: tf.Tensor) => {
        const gw = tf.grad((w: tf.Tensor) => tf.sum(tf.square(tf.relu(tf.matMul(t2(x), t2(w))))))(rnd([6, 5], 2));
        return tf.sum(tf.square(gw));
      })(rnd([7, 6], 1)),
    );
    await check('step kernel', ['Step'], () => tf.step(rnd([40, 30], 5), 0.25));
    await check('grads leakyRelu/clip/sqrt', [], () =>
      tf.grad((x: tf.Tensor) => tf.sum(tf.add(tf.add(tf.leakyRelu(x, 0.2), tf.clipByValue(x, -0.5, 0.5)), tf.sqrt(tf.add(tf.square(x), 1)))))(rnd([9, 8], 3)),
    );
  });
});

describe('reductions and softmax', () => {
  test('Sum/Mean/Max/Min/Prod along axes, keepDims, ArgMax/ArgMin', async () => {
    await check('reductions', ['Sum', 'Mean', 'Max', 'Min', 'Prod', 'ArgMax', 'ArgMin'], () => {
      const x = rnd([4, 5, 6], 1);
      return [
        tf.sum(x),
        tf.sum(x, [0, 2]),
        tf.sum(x, -1, true),
        tf.mean(x, 1),
        tf.mean(x, [0, 1], true),
        tf.max(x, [0, 2], true),
        tf.max(x, 1),
        tf.min(x, 0),
        tf.prod(tf.add(tf.mul(x, 0.1), 1), 2),
        tf.argMax(x, 1),
        tf.argMin(x, -1),
        tf.sum(rnd([4, 5], 2, 'int32'), 0),
      ];
    });
  });

  test('Softmax and LogSoftmax', async () => {
    await check('softmax', ['Softmax'], () => {
      const x = tf.mul(rnd([6, 11], 1), 5);
      return [tf.softmax(x), tf.logSoftmax(x), tf.softmax(rnd([2, 3, 4], 2))];
    });
  });
});

describe('layout and data movement', () => {
  test('transpose, pad, concat, stack, slice, stridedSlice, reverse, tile, split, unstack', async () => {
    await check('layout', ['Transpose', 'PadV2', 'Concat', 'Pack', 'Slice', 'StridedSlice', 'Reverse', 'Tile', 'SplitV', 'Unpack'], () => {
      const x = rnd([6, 7, 8], 1);
      return [
        tf.transpose(x, [2, 0, 1]),
        tf.transpose(rnd([2, 3, 4, 5], 2), [0, 3, 1, 2]),
        tf.pad(x, [
          [1, 2],
          [0, 3],
          [2, 0],
        ], 0.5),
        tf.concat([x, rnd([6, 3, 8], 3)], 1),
        tf.stack([x, x, x], 1),
        tf.slice(x, [1, 2, 3], [3, 4, 5]),
        tf.stridedSlice(x, [5, 0, 1], [0, 7, 8], [-2, 2, 3]),
        tf.reverse(x, [0, 2]),
        tf.tile(x, [2, 1, 3]),
        ...tf.split(x, [3, 1, 4], 2),
        ...tf.unstack(x, 1),
      ];
    });
  });

  test('gather, gatherND, oneHot, topk, cumsum, addN, batchNorm, einsum', async () => {
    await check('data', ['GatherV2', 'GatherNd', 'OneHot', 'TopK', 'Cumsum', 'AddN', 'FusedBatchNorm', 'Einsum'], () => {
      const x = rnd([6, 7, 8], 1);
      const t = tf.topk(rnd([5, 40], 2), 7);
      return [
        tf.gather(x, tf.tensor1d([3, 1, 1, 0, 5], 'int32'), 1),
        tf.gatherND(x, tf.tensor2d([1, 2, 5, 6, 0, 0], [3, 2], 'int32')),
        tf.oneHot(tf.tensor1d([0, 3, -1, 9, 12, 2], 'int32'), 10, 2, -1),
        t.values,
        t.indices,
        tf.cumsum(x, 1),
        tf.cumsum(x, 2, true, true),
        tf.addN([x, x, tf.exp(x)]),
        tf.batchNorm(x, rnd([8], 3), tf.abs(rnd([8], 4)), rnd([8], 5), rnd([8], 6), 0.01),
        tf.einsum('bij,bjk->bik', x, rnd([6, 8, 5], 9)),
      ];
    });
  });

  test('unsortedSegmentSum, all/any, log1p/expm1 (tiny and large arguments)', async () => {
    await check('segment/bool/log1p', ['UnsortedSegmentSum', 'All', 'Any', 'Log1p', 'Expm1'], () => {
      const x = rnd([9, 4, 3], 1);
      const b = tf.greater(rnd([5, 6], 2), -1);
      const small = tf.mul(rnd([40], 3), 1e-6);
      const wide = tf.mul(rnd([40], 4), 8);
      return [
        tf.unsortedSegmentSum(x, tf.tensor1d([0, 2, 2, 5, 1, 0, 5, 5, 3], 'int32'), 7),
        tf.all(b, 1),
        tf.any(tf.logicalNot(b), 0, true),
        tf.log1p(small),
        tf.log1p(tf.abs(wide)),
        tf.expm1(small),
        tf.expm1(wide),
      ];
    });
  });

  test('empty and size-1 dims stay correct (empty tensors take the JS path)', async () => {
    const r = await compareBackends('empty', () => [
      tf.add(tf.zeros([0, 3]), tf.ones([3])),
      tf.matMul(tf.zeros([0, 4]), rnd([4, 2], 1)),
      tf.sum(tf.zeros([2, 0]), 1),
      tf.conv2d(t4(tf.zeros([0, 5, 5, 2])), t4(rnd([3, 3, 2, 4], 2)), 1, 'same'),
      tf.transpose(rnd([1, 5, 1], 3), [2, 1, 0]),
      tf.relu(rnd([1, 1, 1], 4)),
    ]);
    assert.deepEqual(r.fallbacks, {});
  });
});

describe('unsupported attribute combinations fall back (counted), never silently wrong', () => {
  test('matmul batch pairing that is not numpy broadcasting falls back', async () => {
    await initEngine({ backend: 'ort' });
    resetEngineStats();
    tf.tidy(() => tf.matMul(rnd([3, 1, 5, 7], 3), rnd([4, 7, 6], 4)));
    assert.equal(engineStats().fallbacks.BatchMatMul, 1);
    assert.match(engineStats().fallbackReasons.BatchMatMul, /numpy broadcasting/);
  });

  test('TopK sorted=false and MirrorPad symmetric run the CPU kernel and are counted', async () => {
    const r = await compareBackends('fallbacks', () => [tf.mirrorPad(rnd([4, 5], 1), [[1, 1], [2, 2]], 'symmetric'), tf.topk(rnd([3, 9], 2), 3, false).values]);
    assert.equal(r.fallbacks.MirrorPad, 1);
    assert.equal(r.fallbacks.TopK, 1);
  });

  test("convs whose tfjs output size ONNX pads cannot reproduce ('ceil', non-square numeric pad) fall back", async () => {
    const r = await compareBackends('ceil', () => tf.conv2d(t4(rnd([1, 8, 8, 1], 1)), t4(rnd([3, 3, 1, 2], 2)), 2, 0, 'NHWC', 1, 'ceil'));
    assert.equal(r.fallbacks.Conv2D, 1);
    const r2 = await compareBackends('numeric pad, non-square', () => tf.conv2d(t4(rnd([1, 9, 9, 1], 1)), t4(rnd([4, 3, 1, 2], 2)), 1, 1));
    assert.equal(r2.fallbacks.Conv2D, 1);
  });
});
