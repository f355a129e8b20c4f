import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { buildModel, clippedSum, forwardBackward, perSampleFlat, softmaxCrossEntropy, referenceCnnSpec, setInitSeed, type LayerSpec, type Module, BatchNorm, saveModel, loadModel } from '../src/nn/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(7);
});

function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

/** Per-example autodiff gradients, flattened in parameter order: the reference. */
function referencePerSample(model: Module, x: tf.Tensor, labels: Int32Array): Float32Array[] {
  const params = model.parameters();
  const out: Float32Array[] = [];
  for (let i = 0; i < labels.length; i++) {
    const g = tf.tidy(() => {
      const xi = tf.slice(x, [i], [1]);
      const yi = tf.tensor1d([labels[i]!], 'int32');
      const { grads } = tf.variableGrads(() => softmaxCrossEntropy(model.forward(xi, false), yi).lossSum, params.map((p) => p.value));
      return tf.concat(params.map((p) => tf.reshape(grads[p.value.name]!, [-1])));
    });
    out.push(g.dataSync() as Float32Array);
    g.dispose();
  }
  return out;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-20);
}

function checkPerSampleGradients(spec: LayerSpec[], inShape: number[], n: number, classes: number, opts: { ints?: number; tol?: number } = {}): void {
  const tol = opts.tol ?? 1e-5;
  const model = buildModel(spec, inShape);
  const params = model.parameters();
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % classes);
  const x = opts.ints ? tf.tidy(() => tf.cast(tf.floor(tf.randomUniform([n, ...inShape], 0, opts.ints!, 'float32', 3)), 'int32')) : randn([n, ...inShape], 11);
  const ref = referencePerSample(model, x, labels);
  tf.tidy(() => {
    const fb = forwardBackward(model, x, tf.tensor1d(labels, 'int32'));
    const ps = perSampleFlat(fb.tape, params).arraySync();
    for (let i = 0; i < n; i++) assert.ok(relErr(ps[i]!, ref[i]!) < tol, `sample ${i}: per-sample gradient rel. error ${relErr(ps[i]!, ref[i]!)} (${JSON.stringify(spec.map((s) => s.type))})`);
    // per-sample norms from the records (ghost norms where chosen) equal the reference norms
    const sq = tf.addN(fb.tape.records.flatMap((r) => r.sqNorms())).dataSync();
    for (let i = 0; i < n; i++) {
      const rn = ref[i]!.reduce((s, v) => s + v * v, 0);
      assert.ok(Math.abs(sq[i]! - rn) <= tol * 10 * rn + 1e-12, `sample ${i}: squared norm ${sq[i]} vs ${rn}`);
    }
    // flat clipping: Σ_i min(1, C/||g_i||) g_i
    const norms = ref.map((g) => Math.sqrt(g.reduce((s, v) => s + v * v, 0)));
    const C = norms.slice().sort((a, b) => a - b)[Math.floor(n / 2)]!; // half the examples get clipped
    const expect = new Float64Array(ref[0]!.length);
    ref.forEach((g, i) => g.forEach((v, j) => (expect[j] += v * Math.min(1, C / norms[i]!))));
    const got = tf.concat(clippedSum(fb.tape, params, { maxGradNorm: C }).grads.map((g) => tf.reshape(g, [-1]))).dataSync();
    assert.ok(relErr(got, expect) < tol * 5, `clipped sum rel. error ${relErr(got, expect)}`);
  });
  x.dispose();
}

test('dense (2-D and 3-D inputs, ghost and materialised norms) matches a per-example loop', () => {
  checkPerSampleGradients([{ type: 'flatten' }, { type: 'dense', units: 5 }], [3, 4], 6, 5);
  checkPerSampleGradients([{ type: 'dense', units: 8 }, { type: 'flatten' }, { type: 'dense', units: 3 }], [2, 8], 5, 3); // ghost: T(din+dout) < din·dout
  checkPerSampleGradients([{ type: 'dense', units: 2, bias: false }, { type: 'flatten' }, { type: 'dense', units: 3 }], [6, 3], 5, 3); // materialised
});

test('conv2d with odd shapes, padding, stride, dilation, groups, both norm modes matches a per-example loop', () => {
  const head = (c: number): LayerSpec[] => [{ type: 'flatten' }, { type: 'dense', units: c }];
  checkPerSampleGradients([{ type: 'conv2d', filters: 3, kernel: 3, padding: 1 }, ...head(4)], [5, 6, 2], 5, 4);
  checkPerSampleGradients([{ type: 'conv2d', filters: 4, kernel: [3, 2], stride: 2, padding: [1, 0] }, ...head(3)], [7, 5, 3], 5, 3);
  checkPerSampleGradients([{ type: 'conv2d', filters: 2, kernel: 3, stride: 2, dilation: 2, padding: 2 }, ...head(3)], [9, 8, 2], 4, 3);
  checkPerSampleGradients([{ type: 'conv2d', filters: 6, kernel: 2, groups: 2, bias: false }, ...head(3)], [5, 5, 4], 4, 3);
  checkPerSampleGradients([{ type: 'conv2d', filters: 3, kernel: 3, stride: 2, padding: 'same', dilation: [1, 2] }, ...head(3)], [6, 7, 1], 4, 3);
  // the convolution-kernel implementation (one-hot unfold) on the same odd geometries
  for (const normMode of ['ghost', 'materialize']) {
    checkPerSampleGradients([{ type: 'conv2d', filters: 4, kernel: [3, 2], stride: 2, padding: [1, 0], impl: 'conv', normMode }, ...head(3)], [7, 5, 3], 4, 3);
    checkPerSampleGradients([{ type: 'conv2d', filters: 2, kernel: 3, stride: 2, dilation: 2, padding: 2, impl: 'conv', normMode }, { type: 'conv2d', filters: 2, kernel: 2, impl: 'conv' }, ...head(3)], [9, 8, 2], 4, 3);
  }
  // force each norm path once on a layer where 'auto' would pick the other
  for (const normMode of ['ghost', 'materialize']) {
    const m = buildModel([{ type: 'conv2d', filters: 3, kernel: 3, padding: 1 }, ...head(3)], [4, 4, 2]);
    (m.layers[0] as unknown as { opts: { normMode: string } }).opts.normMode = normMode;
    const x = randn([3, 4, 4, 2], 5);
    const labels = new Int32Array([0, 1, 2]);
    const ref = referencePerSample(m, x, labels);
    tf.tidy(() => {
      const fb = forwardBackward(m, x, tf.tensor1d(labels, 'int32'));
      const sq = tf.addN(fb.tape.records.flatMap((r) => r.sqNorms())).dataSync();
      ref.forEach((g, i) => {
        const rn = g.reduce((s, v) => s + v * v, 0);
        assert.ok(Math.abs(sq[i]! - rn) < 1e-4 * rn, `${normMode}: ${sq[i]} vs ${rn}`);
      });
    });
  }
});

test('embedding (repeated ids), layer/group/instance norm, activations, pooling, residual match a per-example loop', () => {
  checkPerSampleGradients([{ type: 'embedding', vocab: 7, dim: 4 }, { type: 'layernorm' }, { type: 'flatten' }, { type: 'dense', units: 3 }], [5], 5, 3, { ints: 7 });
  checkPerSampleGradients([{ type: 'conv2d', filters: 4, kernel: 3 }, { type: 'groupnorm', groups: 2 }, { type: 'elu' }, { type: 'flatten' }, { type: 'dense', units: 3 }], [6, 5, 2], 4, 3);
  checkPerSampleGradients([{ type: 'conv2d', filters: 3, kernel: 2 }, { type: 'instancenorm', affine: true }, { type: 'leakyrelu', alpha: 0.2 }, { type: 'avgpool2d', kernel: 2, stride: 1 }, { type: 'flatten' }, { type: 'dense', units: 3 }], [5, 5, 1], 4, 3);
  checkPerSampleGradients([{ type: 'conv2d', filters: 3, kernel: 3, padding: 1 }, { type: 'tanh' }, { type: 'maxpool2d', kernel: 3, stride: 2, padding: 'same' }, { type: 'flatten' }, { type: 'dense', units: 4 }, { type: 'temperedsigmoid', scale: 1.5, temperature: 3, offset: 0.5 }, { type: 'dense', units: 3 }, { type: 'elu', alpha: 0.5 }], [7, 6, 2], 5, 3);
  // host-side max pooling (training path) with a non-square window and unequal strides
  checkPerSampleGradients([{ type: 'conv2d', filters: 3, kernel: 2 }, { type: 'relu' }, { type: 'maxpool2d', kernel: [3, 2], stride: [2, 1] }, { type: 'flatten' }, { type: 'dense', units: 3 }], [8, 7, 2], 4, 3);
  checkPerSampleGradients(
    [
      { type: 'conv2d', filters: 4, kernel: 3, padding: 1 },
      { type: 'residual', body: { type: 'sequential', layers: [{ type: 'relu' }, { type: 'conv2d', filters: 4, kernel: 3, padding: 1 }] } },
      { type: 'residual', body: { type: 'sequential', layers: [{ type: 'conv2d', filters: 2, kernel: 1 }] }, shortcut: { type: 'sequential', layers: [{ type: 'conv2d', filters: 2, kernel: 1, bias: false }] } },
      { type: 'flatten' },
      { type: 'dense', units: 3 },
    ],
    [5, 4, 2],
    4,
    3,
  );
});

test('the reference CNN on 28×28 inputs matches a per-example loop; per-layer clipping bounds every layer', () => {
  checkPerSampleGradients(referenceCnnSpec(10), [28, 28, 1], 4, 10);
  const model = buildModel(referenceCnnSpec(10), [28, 28, 1]);
  const params = model.parameters();
  tf.tidy(() => {
    const x = randn([6, 28, 28, 1], 9);
    const y = tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32');
    const fb = forwardBackward(model, x, y);
    const per = params.map(() => 0.01);
    const { grads } = clippedSum(fb.tape, params, { maxGradNorm: 1, mode: 'per-layer', perLayerNorms: per });
    // each example contributes at most C_j to parameter j, so ||sum_j|| <= n·C_j
    grads.forEach((g) => assert.ok(tf.norm(g).dataSync()[0]! <= 6 * 0.01 * (1 + 1e-5)));
    assert.throws(() => clippedSum(fb.tape, params, { maxGradNorm: 0.01, mode: 'per-layer', perLayerNorms: per }), /total norm/);
  });
});

test('BatchNorm is rejected with an explanation; save/load round-trips weights', () => {
  assert.throws(() => new BatchNorm(), /mix examples.*GroupNorm/s);
  assert.throws(() => buildModel([{ type: 'batchnorm' }], [4]), /GroupNorm/);
  assert.throws(() => buildModel([{ type: 'conv2d', filters: 2, kernel: 3, groups: 3 }], [5, 5, 2]), /groups/);
  const m = buildModel(referenceCnnSpec(10), [28, 28, 1]);
  const dir = mkdtempSync(join(tmpdir(), 'dplens-nn-'));
  saveModel(dir, m, [28, 28, 1], { note: 'x' });
  const { model: m2, meta } = loadModel(dir);
  assert.equal(meta.note, 'x');
  const x = randn([2, 28, 28, 1], 4);
  assert.deepEqual(Array.from(m2.forward(x, false).dataSync()), Array.from(m.forward(x, false).dataSync()));
});

test('a tfjs-layers Sequential (model.json + shard) imports with identical outputs', async () => {
  const { importTfjsLayersModel } = await import('../src/nn/index.js');
  const { writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'dplens-tfjs-'));
  const k = tf.randomNormal([3, 3, 1, 4], 0, 0.5, 'float32', 1) as tf.Tensor4D;
  const kb = tf.randomNormal([4], 0, 0.5, 'float32', 2);
  const d = tf.randomNormal([3 * 3 * 4, 3], 0, 0.5, 'float32', 3) as tf.Tensor2D;
  const db = tf.randomNormal([3], 0, 0.5, 'float32', 4);
  const topology = {
    class_name: 'Sequential',
    config: {
      name: 's',
      layers: [
        { class_name: 'Conv2D', config: { name: 'c1', filters: 4, kernel_size: [3, 3], strides: [1, 1], padding: 'valid', activation: 'relu', use_bias: true, batch_input_shape: [null, 8, 8, 1], data_format: 'channels_last' } },
        { class_name: 'MaxPooling2D', config: { name: 'p1', pool_size: [2, 2], strides: [2, 2], padding: 'valid' } },
        { class_name: 'Flatten', config: { name: 'f' } },
        { class_name: 'Dense', config: { name: 'd1', units: 3, activation: 'softmax', use_bias: true } },
      ],
    },
  };
  const ws = [k, kb, d, db];
  const buf = Buffer.concat(ws.map((t) => Buffer.from((t.dataSync() as Float32Array).buffer)));
  writeFileSync(join(dir, 'shard.bin'), buf);
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['shard.bin'], weights: ws.map((t, i) => ({ name: `w${i}`, shape: t.shape, dtype: 'float32' })) }] }));
  const { model, inputShape } = importTfjsLayersModel(join(dir, 'model.json'));
  assert.deepEqual(inputShape, [8, 8, 1]);
  const x = randn([2, 8, 8, 1], 8) as tf.Tensor4D;
  const expect = tf.add(tf.matMul(tf.reshape(tf.maxPool(tf.relu(tf.add(tf.conv2d(x, k, 1, 'valid'), kb)) as tf.Tensor4D, 2, 2, 'valid'), [2, -1]), d), db);
  const got = model.forward(x, false);
  assert.ok(relErr(got.dataSync(), expect.dataSync()) < 1e-6);
  const bn = { class_name: 'Sequential', config: { layers: [{ class_name: 'BatchNormalization', config: { batch_input_shape: [null, 4] } }] } };
  writeFileSync(join(dir, 'bn.json'), JSON.stringify({ modelTopology: bn, weightsManifest: [] }));
  assert.throws(() => importTfjsLayersModel(join(dir, 'bn.json')), /GroupNorm/);
});

test('host max pooling (relu-fused 2×2 and generic windows, plain) equals tfjs maxPool and routes gradients to the first maximum', async () => {
  const { maxPoolForward, maxPoolBackward } = await import('../src/engine/host/im2col.js');
  const cases: [number, number, number, number, number, number, boolean][] = [
    // kh, kw, sh, sw, h, w, relu
    [2, 2, 1, 1, 6, 5, true],
    [2, 2, 2, 2, 7, 6, true],
    [3, 2, 2, 1, 8, 7, true],
    [2, 2, 1, 1, 6, 5, false],
    [3, 3, 2, 1, 7, 7, false],
  ];
  for (const [kh, kw, sh, sw, h, w, relu] of cases) {
    const n = 3;
    const c = 5;
    // values on a coarse grid (many exact ties), both signs, and some -0
    const x = Float32Array.from({ length: n * h * w * c }, (_, i) => (i % 13 === 0 ? -0 : Math.round(((Math.sin(i * 12.9898) * 43758.5453) % 1) * 4) / 2));
    const ho = Math.floor((h - kh) / sh) + 1;
    const wo = Math.floor((w - kw) / sw) + 1;
    const count = n * ho * wo * c;
    const out = new Float32Array(count);
    const arg = new Int32Array(count);
    maxPoolForward(x, n, h, w, c, kh, kw, sh, sw, out, arg, relu);
    const xt = tf.tensor4d(x, [n, h, w, c]);
    const ref = tf.tidy(() => {
      const p = tf.maxPool(xt, [kh, kw], [sh, sw], 'valid');
      return (relu ? tf.relu(p) : p).dataSync();
    });
    // === (not Object.is): a tie between −0 and +0 may pick either zero
    for (let i = 0; i < count; i++) assert.ok(out[i] === ref[i], `forward ${i}: ${out[i]} vs ${ref[i]} (${kh}x${kw} s${sh},${sw} relu=${relu})`);
    // arg: first window position (row-major) holding the max; −1 when relu zeroed the output
    let o = 0;
    for (let b = 0; b < n; b++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++)
          for (let ch = 0; ch < c; ch++, o++) {
            let first = -1;
            for (let ky = 0; ky < kh && first < 0; ky++)
              for (let kx = 0; kx < kw && first < 0; kx++) {
                const p = ((b * h + oy * sh + ky) * w + ox * sw + kx) * c + ch;
                if (x[p] === out[o]) first = p;
              }
            assert.equal(arg[o], relu && !(out[o]! > 0) ? -1 : first, `arg ${o}`);
          }
    const dy = Float32Array.from({ length: count }, (_, i) => 1 + (i % 7));
    const dx = new Float32Array(x.length + 1);
    maxPoolBackward(dy, arg, count, dx, x.length);
    const refDx = new Float32Array(x.length);
    for (let i = 0; i < count; i++) if (arg[i]! >= 0) refDx[arg[i]!]! += dy[i]!;
    assert.deepEqual(Array.from(dx.subarray(0, x.length)), Array.from(refDx));
    assert.throws(() => maxPoolBackward(dy, arg, count, new Float32Array(x.length), x.length), /slots/);
    xt.dispose();
  }
});

test('WebAssembly SIMD im2col/col2im (run tables over a padded frame) equal the JS loops on odd geometries', async () => {
  const { im2col, col2im, runLayout, padInto, cropFrom } = await import('../src/engine/host/im2col.js');
  const { HostArena, simdAvailable } = await import('../src/engine/host/simd.js');
  if (!simdAvailable()) return; // JS loops only on this platform
  const geos = [
    // reference CNN conv1 / conv2, then padding + crop, vertical dilation, odd channels, 1×1
    { n: 3, h: 28, w: 28, c: 1, kh: 8, kw: 8, sh: 2, sw: 2, dh: 1, dw: 1, pt: 3, pl: 3 },
    { n: 2, h: 13, w: 13, c: 16, kh: 4, kw: 4, sh: 2, sw: 2, dh: 1, dw: 1, pt: 0, pl: 0 },
    { n: 2, h: 7, w: 6, c: 3, kh: 3, kw: 2, sh: 2, sw: 1, dh: 2, dw: 1, pt: 1, pl: 2 },
    { n: 1, h: 5, w: 5, c: 5, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 0, pl: 0 },
    { n: 2, h: 9, w: 8, c: 2, kh: 3, kw: 3, sh: 3, sw: 2, dh: 1, dw: 1, pt: 1, pl: 0 },
  ];
  for (const g0 of geos) {
    const ho = Math.floor((g0.h + 2 * g0.pt - ((g0.kh - 1) * g0.dh + 1)) / g0.sh) + 1;
    const wo = Math.floor((g0.w + 2 * g0.pl - ((g0.kw - 1) * g0.dw + 1)) / g0.sw) + 1;
    const g = { ...g0, ho, wo };
    const x = Float32Array.from({ length: g.n * g.h * g.w * g.c }, (_, i) => Math.sin(i * 0.37) + 0.01 * i);
    const K = g.kh * g.kw * g.c;
    const size = g.n * ho * wo * K;
    const ref = im2col(x, g);
    const lay = runLayout(g)!;
    const a = new HostArena();
    const frame = lay.hp * lay.wp * g.c;
    const [xo, po, to] = a.reserve([g.n * frame, size, lay.tab.length])!;
    a.f32.fill(7, xo!, xo! + g.n * frame); // padInto must zero the frame itself
    padInto(x, g, lay, a.f32, xo!);
    a.i32.set(lay.tab, to!);
    a.k.copyRuns(po! * 4, xo! * 4, to! * 4, lay.tab.length * 4, g.kw * g.c * 4, g.n, frame * 4);
    assert.deepEqual(Array.from(a.f32.subarray(po!, po! + size)), Array.from(ref), `im2col ${JSON.stringify(g0)}`);
    const dp = Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.11));
    const refDx = col2im(dp, g);
    const [dpo, dxo, to2] = a.reserve([size, g.n * frame, lay.tab.length])!;
    a.f32.set(dp, dpo!);
    a.f32.fill(0, dxo!, dxo! + g.n * frame);
    a.i32.set(lay.tab, to2!);
    a.k.addRuns(dpo! * 4, dxo! * 4, to2! * 4, lay.tab.length * 4, g.kw * g.c * 4, g.n, frame * 4);
    const dx = lay.identity ? a.f32.subarray(dxo!, dxo! + x.length) : cropFrom(a.f32, dxo!, g, lay, new Float32Array(x.length));
    // same additions in the same order per element: equal up to float32 rounding of the sums
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(dx[i]! - refDx[i]!) <= 1e-6 * (1 + Math.abs(refDx[i]!)), `col2im ${i}: ${dx[i]} vs ${refDx[i]} (${JSON.stringify(g0)})`);
  }
});

test('WebAssembly SIMD relu∘maxpool equals the JS host loop (values, first-max window codes, backward)', async () => {
  const { maxPoolForward, maxPoolBackward } = await import('../src/engine/host/im2col.js');
  const { HostArena, simdAvailable } = await import('../src/engine/host/simd.js');
  if (!simdAvailable()) return;
  for (const [kh, kw, sh, sw, h, w, c] of [
    [2, 2, 1, 1, 14, 14, 16],
    [3, 2, 2, 1, 9, 8, 8],
    [2, 3, 2, 2, 6, 9, 4],
  ] as const) {
    const n = 2;
    const x = Float32Array.from({ length: n * h * w * c }, (_, i) => (i % 11 === 0 ? -0 : Math.round(Math.sin(i * 1.7) * 3) / 2));
    const ho = Math.floor((h - kh) / sh) + 1;
    const wo = Math.floor((w - kw) / sw) + 1;
    const count = n * ho * wo * c;
    const out = new Float32Array(count);
    const arg = new Int32Array(count);
    maxPoolForward(x, n, h, w, c, kh, kw, sh, sw, out, arg, true);
    const a = new HostArena();
    const [xo, oo, ao, dyo, dxo] = a.reserve([x.length, count, count, count, x.length])!;
    a.f32.set(x, xo!);
    a.k.maxPoolRelu4(xo! * 4, oo! * 4, ao! * 4, n, h, w, c, kh, kw, sh, sw, ho, wo);
    assert.deepEqual(Array.from(a.f32.subarray(oo!, oo! + count)), Array.from(out));
    // window codes ky·kw + kx of the JS arg-max indices
    const codes = Array.from(arg, (r, o) => {
      if (r < 0) return -1;
      const ch = o % c;
      const ox = Math.floor(o / c) % wo;
      const oy = Math.floor(o / (c * wo)) % ho;
      const b = Math.floor(o / (c * wo * ho));
      const p0 = ((b * h + oy * sh) * w + ox * sw) * c + ch;
      const rel = (r - p0) / c;
      return Math.floor(rel / w) * kw + (rel % w);
    });
    assert.deepEqual(Array.from(a.i32.subarray(ao!, ao! + count)), codes);
    // backward: masked adds per window tap equal the JS scatter exactly
    const dy = Float32Array.from({ length: count }, (_, i) => 0.5 + ((i * 7) % 5));
    const refDx = new Float32Array(x.length + 1);
    maxPoolBackward(dy, arg, count, refDx, x.length);
    a.f32.set(dy, dyo!);
    a.f32.fill(0, dxo!, dxo! + x.length);
    a.k.maxPoolBack4(dyo! * 4, ao! * 4, dxo! * 4, n, h, w, c, kh, kw, sh, sw, ho, wo);
    assert.deepEqual(Array.from(a.f32.subarray(dxo!, dxo! + x.length)), Array.from(refDx.subarray(0, x.length)));
  }
  // beyond wasm32's 4 GiB the arena declines (layers then take their JS loops) instead of throwing
  assert.equal(new HostArena().reserve([2 ** 31]), undefined);
});
