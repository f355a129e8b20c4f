/**
 * JSON model specs, the reference architectures, and the on-disk model format.
 *
 * Model format (directory): `model.json` = { format: 'dplens-model/1', inputShape: [H, W, C] or
 * [features], spec: LayerSpec (a 'sequential'), params: [{ name, shape, offset, length }],
 * weights: 'weights.bin', meta?: {...} } and `weights.bin` = all parameters as little-endian
 * float32, concatenated in `params` order (offset/length in floats). Load with `loadModel(dir)`.
 * This is the model instance of the one checkpoint format (checkpoint.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type CheckpointLayout, CheckpointError, readCheckpoint, writeCheckpoint } from './checkpoint.js';
// Importing the layer files registers every built-in layer kind (registry.ts).
import './layers/index.js';
import type { Sequential } from './layers/index.js';
import { type BuiltLayer, layerKind, registeredLayerTypes } from './layers/registry.js';
import { type LayerSpec, ModelError, type Module } from './module.js';

/** Builds one module for an input of shape `inShape` (without batch); returns it and its output shape. */
function buildLayer(s: LayerSpec, inShape: number[]): BuiltLayer {
  const kind = layerKind(String(s.type));
  if (!kind) throw new ModelError(`unknown layer type "${String(s.type)}" (known: ${registeredLayerTypes().join(', ')})`);
  const built = kind.build(s, { inShape, last: inShape[inShape.length - 1]!, build: buildLayer });
  if ('module' in built) return built;
  const m = built;
  // Shape inference by a one-example dry run (cheap, and exactly what forward will do).
  const outShape = tf.tidy(() => m.forward(tf.zeros([1, ...inShape], kind.inputDtype ?? 'float32'), false).shape.slice(1));
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

/** The model checkpoint: model.json (header) + weights.bin (see checkpoint.ts). */
export const MODEL_CHECKPOINT: CheckpointLayout = { header: 'model.json', blob: 'weights.bin', format: 'dplens-model/1', entriesKey: 'params', blobKey: 'weights' };

/** Writes model.json + weights.bin into `dir` (see the format at the top of this file). */
export function saveModel(dir: string, model: Module, inputShape: number[], meta: SavedModelMeta = {}): void {
  const tensors = model.parameters().map((p) => ({ shape: p.value.shape, data: p.value.dataSync() as Float32Array, labels: { name: p.name } }));
  writeCheckpoint(dir, MODEL_CHECKPOINT, { inputShape, spec: model.spec(), meta }, tensors);
}

/** Loads a model saved by saveModel; a missing or corrupt file is a one-line CheckpointError/ModelError naming it. */
export function loadModel(dir: string): { model: Sequential; inputShape: number[]; meta: SavedModelMeta } {
  const { header: j, tensors } = readCheckpoint(dir, MODEL_CHECKPOINT);
  const where = `${dir}/model.json`;
  if (!Array.isArray(j.inputShape) || typeof j.spec !== 'object' || j.spec === null) throw new CheckpointError(`${where}: missing inputShape or spec`);
  const inputShape = j.inputShape as number[];
  let model: Sequential;
  try {
    model = buildModel(j.spec as LayerSpec, inputShape);
  } catch (e) {
    throw new CheckpointError(`${where}: ${(e as Error).message}`);
  }
  const params = model.parameters();
  if (params.length !== tensors.length) throw new ModelError(`${dir}: model has ${params.length} parameters, file lists ${tensors.length}`);
  params.forEach((p, i) => {
    const { entry: e, data } = tensors[i]!;
    if (e.name !== p.name || !tf.util.arraysEqual(e.shape, p.value.shape)) throw new ModelError(`${dir}: parameter ${i} is ${String(e.name)} [${e.shape}], model expects ${p.name} [${p.value.shape}]`);
    tf.tidy(() => p.value.assign(tf.tensor(data, e.shape)));
  });
  return { model, inputShape, meta: (j.meta as SavedModelMeta | undefined) ?? {} };
}
