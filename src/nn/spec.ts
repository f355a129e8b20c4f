/**
 * JSON model specs, the reference architectures, and the on-disk model format.
 *
 * Model format (directory): `model.json` = { format: 'dplens-model/1', inputShape: [H, W, C] or
 * [features], spec: LayerSpec (a 'sequential'), params: [{ name, shape, offset, length }],
 * weights: 'weights.bin', meta?: {...} } and `weights.bin` = all parameters as little-endian
 * float32, concatenated in `params` order (offset/length in floats). Load with `loadModel(dir)`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, ELU, Embedding, Flatten, GroupNorm, InstanceNorm, LayerNorm, LeakyReLU, MaxPool2d, ReLU, Residual, Sequential, Tanh, TemperedSigmoid } from './layers.js';
import { type LayerSpec, ModelError, type Module } from './module.js';

type Num2 = number | [number, number];

/** Builds one module for an input of shape `inShape` (without batch); returns it and its output shape. */
function buildLayer(s: LayerSpec, inShape: number[]): { module: Module; outShape: number[] } {
  const last = inShape[inShape.length - 1]!;
  let m: Module;
  switch (String(s.type).toLowerCase()) {
    case 'dense':
    case 'linear':
      m = new Dense({ inFeatures: last, outFeatures: Number(s.units ?? s.outFeatures), bias: s.bias !== false });
      break;
    case 'conv2d':
      if (inShape.length !== 3) throw new ModelError(`conv2d needs an [H, W, C] input, got [${inShape.join(', ')}]`);
      m = new Conv2d({
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
      break;
    case 'embedding':
      m = new Embedding({ vocab: Number(s.vocab), dim: Number(s.dim) });
      break;
    case 'layernorm':
      m = new LayerNorm({ features: last, eps: s.eps as number | undefined, affine: s.affine !== false });
      break;
    case 'groupnorm':
      m = new GroupNorm({ groups: Number(s.groups), channels: last, eps: s.eps as number | undefined, affine: s.affine !== false });
      break;
    case 'instancenorm':
      m = new InstanceNorm({ channels: last, eps: s.eps as number | undefined, affine: s.affine === true });
      break;
    case 'batchnorm':
    case 'batchnormalization':
      new BatchNorm();
      throw new ModelError('unreachable');
    case 'relu':
      m = new ReLU();
      break;
    case 'leakyrelu':
      m = new LeakyReLU((s.alpha as number | undefined) ?? 0.01);
      break;
    case 'tanh':
      m = new Tanh();
      break;
    case 'temperedsigmoid':
      m = new TemperedSigmoid((s.scale as number | undefined) ?? 2, (s.temperature as number | undefined) ?? 2, (s.offset as number | undefined) ?? 1);
      break;
    case 'elu':
      m = new ELU((s.alpha as number | undefined) ?? 1);
      break;
    case 'maxpool2d':
      m = new MaxPool2d({ kernel: s.kernel as Num2, stride: s.stride as Num2 | undefined, padding: s.padding as number | 'valid' | 'same' | undefined });
      break;
    case 'avgpool2d':
      m = new AvgPool2d({ kernel: s.kernel as Num2, stride: s.stride as Num2 | undefined, padding: s.padding as number | 'valid' | 'same' | undefined });
      break;
    case 'flatten':
      m = new Flatten();
      break;
    case 'dropout':
      m = new Dropout(Number(s.rate));
      break;
    case 'sequential': {
      const layers: Module[] = [];
      let shape = inShape;
      for (const l of (s.layers as LayerSpec[]) ?? []) {
        const b = buildLayer(l, shape);
        layers.push(b.module);
        shape = b.outShape;
      }
      return { module: new Sequential(layers), outShape: shape };
    }
    case 'residual': {
      const body = buildLayer(s.body as LayerSpec, inShape);
      const sc = s.shortcut ? buildLayer(s.shortcut as LayerSpec, inShape) : undefined;
      m = new Residual(body.module, sc?.module);
      break;
    }
    default:
      throw new ModelError(`unknown layer type "${String(s.type)}"`);
  }
  // Shape inference by a one-example dry run (cheap, and exactly what forward will do).
  const outShape = tf.tidy(() => m.forward(s.type === 'embedding' ? tf.zeros([1, ...inShape], 'int32') : tf.zeros([1, ...inShape]), false).shape.slice(1));
  return { module: m, outShape };
}

/** Builds a model from a spec ('sequential' or a list of layer specs) for inputs of `inputShape`. */
export function buildModel(spec: LayerSpec | LayerSpec[], inputShape: number[]): Sequential {
  const s: LayerSpec = Array.isArray(spec) ? { type: 'sequential', layers: spec } : spec;
  if (s.type !== 'sequential') throw new ModelError('buildModel: the top-level spec must be a sequential (or a list of layers)');
  return buildLayer(s, inputShape).module as Sequential;
}

/** The reference CNN of the Opacus MNIST example (input H×W×C images). */
export function referenceCnnSpec(numClasses = 10): LayerSpec[] {
  return [
    { type: 'conv2d', filters: 16, kernel: 8, stride: 2, padding: 3 },
    { type: 'relu' },
    { type: 'maxpool2d', kernel: 2, stride: 1 },
    { type: 'conv2d', filters: 32, kernel: 4, stride: 2 },
    { type: 'relu' },
    { type: 'maxpool2d', kernel: 2, stride: 1 },
    { type: 'flatten' },
    { type: 'dense', units: 32 },
    { type: 'relu' },
    { type: 'dense', units: numClasses },
  ];
}

/** Activation used by the reference-CNN variants (a layer spec without parameters). */
export type CnnActivation = 'relu' | 'tanh' | 'tempered-sigmoid';

function activationSpec(a: CnnActivation): LayerSpec {
  // Tempered sigmoid s·σ(T·x) − o with (s, T, o) = (2, 2, 1) is exactly tanh; Papernot et al. 2021
  // found the bounded family best for DP-SGD because clipping then cuts less signal.
  if (a === 'tanh') return { type: 'tanh' };
  if (a === 'tempered-sigmoid') return { type: 'temperedsigmoid', scale: 2, temperature: 2, offset: 1 };
  return { type: 'relu' };
}

/**
 * The reference CNN with another activation and optional GroupNorm after each convolution
 * (Papernot et al. 2021 "Tempered Sigmoid Activations for DP Learning": the same architecture with
 * tanh reaches 98.1 % on MNIST at ε ≈ 2.9; Tramèr & Boneh 2021 add GroupNorm).
 */
export function referenceCnnVariantSpec(numClasses = 10, opts: { activation?: CnnActivation; groupNorm?: number } = {}): LayerSpec[] {
  const act = activationSpec(opts.activation ?? 'relu');
  const gn = (channels: number): LayerSpec[] => (opts.groupNorm ? [{ type: 'groupnorm', groups: Math.min(opts.groupNorm, channels) }] : []);
  return [
    { type: 'conv2d', filters: 16, kernel: 8, stride: 2, padding: 3 },
    ...gn(16),
    act,
    { type: 'maxpool2d', kernel: 2, stride: 1 },
    { type: 'conv2d', filters: 32, kernel: 4, stride: 2 },
    ...gn(32),
    act,
    { type: 'maxpool2d', kernel: 2, stride: 1 },
    { type: 'flatten' },
    { type: 'dense', units: 32 },
    act,
    { type: 'dense', units: numClasses },
  ];
}

/** Model presets selectable by name (`dplens train --model NAME`). */
export const modelPresets = {
  cnn: 'reference CNN (Opacus MNIST example, ReLU)',
  'cnn-tanh': 'reference CNN with tanh activations (Papernot et al. 2021 tempered sigmoid)',
  'cnn-tanh-gn': 'cnn-tanh with GroupNorm (4 groups) after each convolution',
  mlp: 'one-hidden-layer MLP (512 units, ReLU)',
} as const;
export type ModelPreset = keyof typeof modelPresets;

/** The layer specs of a named preset. */
export function presetSpec(name: ModelPreset, numClasses = 10): LayerSpec[] {
  switch (name) {
    case 'cnn':
      return referenceCnnSpec(numClasses);
    case 'cnn-tanh':
      return referenceCnnVariantSpec(numClasses, { activation: 'tanh' });
    case 'cnn-tanh-gn':
      return referenceCnnVariantSpec(numClasses, { activation: 'tanh', groupNorm: 4 });
    case 'mlp':
      return mlpSpec(numClasses);
    default:
      throw new ModelError(`unknown model preset "${String(name)}" (known: ${Object.keys(modelPresets).join(', ')})`);
  }
}

/** A one-hidden-layer MLP (784-512-10 on MNIST, as torch_ref.py's MLP). */
export function mlpSpec(numClasses = 10, hidden = 512): LayerSpec[] {
  return [{ type: 'flatten' }, { type: 'dense', units: hidden }, { type: 'relu' }, { type: 'dense', units: numClasses }];
}

export interface SavedModelMeta {
  [k: string]: unknown;
}

/** Writes model.json + weights.bin into `dir` (see the format at the top of this file). */
export function saveModel(dir: string, model: Module, inputShape: number[], meta: SavedModelMeta = {}): void {
  mkdirSync(dir, { recursive: true });
  const params = model.parameters();
  const arrays = params.map((p) => p.value.dataSync() as Float32Array);
  const total = arrays.reduce((s, a) => s + a.length, 0);
  const buf = new Float32Array(total);
  const entries: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let off = 0;
  params.forEach((p, i) => {
    buf.set(arrays[i]!, off);
    entries.push({ name: p.name, shape: p.value.shape, offset: off, length: arrays[i]!.length });
    off += arrays[i]!.length;
  });
  const le = new Uint8Array(buf.buffer); // x86/ARM hosts are little-endian, as the format requires
  writeFileSync(join(dir, 'weights.bin'), le);
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'dplens-model/1', inputShape, spec: model.spec(), params: entries, weights: 'weights.bin', meta }, null, 1) + '\n');
}

/** Loads a model saved by saveModel. */
export function loadModel(dir: string): { model: Sequential; inputShape: number[]; meta: SavedModelMeta } {
  const j = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  if (j.format !== 'dplens-model/1') throw new ModelError(`${dir}/model.json: unknown format ${JSON.stringify(j.format)}`);
  const model = buildModel(j.spec, j.inputShape);
  const raw = readFileSync(join(dir, j.weights ?? 'weights.bin'));
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const params = model.parameters();
  if (params.length !== j.params.length) throw new ModelError(`${dir}: model has ${params.length} parameters, file lists ${j.params.length}`);
  params.forEach((p, i) => {
    const e = j.params[i];
    if (e.name !== p.name || !tf.util.arraysEqual(e.shape, p.value.shape)) throw new ModelError(`${dir}: parameter ${i} is ${e.name} [${e.shape}], model expects ${p.name} [${p.value.shape}]`);
    if (e.offset + e.length > all.length) throw new ModelError(`${dir}/weights.bin is truncated`);
    tf.tidy(() => p.value.assign(tf.tensor(all.subarray(e.offset, e.offset + e.length), e.shape)));
  });
  return { model, inputShape: j.inputShape, meta: j.meta ?? {} };
}
