/**
 * Import of a tfjs-layers (Keras-style) Sequential model saved as model.json + weight shards
 * (`model.save('file://dir')` / `tensorflowjs_converter` layers format), for DP fine-tuning.
 * Supported layers: InputLayer, Dense, Conv2D (channels_last), MaxPooling2D, AveragePooling2D,
 * Flatten, Dropout, Activation, ReLU, LeakyReLU, ELU, LayerNormalization (last axis, center and
 * scale). Weight layouts coincide with ours (Dense [in, out], Conv2D HWIO, NHWC flatten), so
 * weights are copied as they are. A final softmax is dropped (our loss takes logits);
 * BatchNormalization is rejected (it mixes examples).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readJsonFile } from './checkpoint.js';
import { BatchNorm } from './layers/index.js';
import { type LayerSpec, ModelError } from './module.js';
import { buildModel } from './spec.js';
import type { Sequential } from './layers/index.js';

type Cfg = Record<string, any>;

function activationSpec(a: string | undefined, isLast: boolean, where: string): LayerSpec[] {
  switch (a ?? 'linear') {
    case 'linear':
      return [];
    case 'relu':
      return [{ type: 'relu' }];
    case 'tanh':
      return [{ type: 'tanh' }];
    case 'elu':
      return [{ type: 'elu' }];
    case 'sigmoid':
      return [{ type: 'temperedsigmoid', scale: 1, temperature: 1, offset: 0 }];
    case 'softmax':
      if (isLast) return []; // logits go to the softmax cross-entropy
      throw new ModelError(`${where}: softmax is only supported as the last activation`);
    default:
      throw new ModelError(`${where}: unsupported activation "${a}"`);
  }
}

const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);

/** Converts tfjs-layers layer configs to our specs; returns specs and the input shape. */
export function tfjsLayersToSpec(topology: Cfg): { spec: LayerSpec[]; inputShape: number[] } {
  const cfg = topology.model_config ?? topology;
  if (cfg.class_name !== 'Sequential') throw new ModelError(`only Sequential tfjs-layers models can be imported, got ${cfg.class_name}`);
  const layers: Cfg[] = Array.isArray(cfg.config) ? cfg.config : cfg.config?.layers;
  if (!Array.isArray(layers)) throw new ModelError('model topology has no layer list');
  let inputShape: number[] | undefined;
  const spec: LayerSpec[] = [];
  layers.forEach((l, i) => {
    const c: Cfg = l.config ?? {};
    const where = `layer ${i} (${l.class_name} "${c.name ?? ''}")`;
    const isLast = i === layers.length - 1;
    const bis = c.batch_input_shape ?? c.batchInputShape;
    if (!inputShape && Array.isArray(bis)) inputShape = bis.slice(1).map(Number);
    if (c.data_format && c.data_format !== 'channels_last') throw new ModelError(`${where}: only channels_last is supported`);
    switch (l.class_name) {
      case 'InputLayer':
        break;
      case 'Dense':
        spec.push({ type: 'dense', units: c.units, bias: c.use_bias !== false }, ...activationSpec(c.activation, isLast, where));
        break;
      case 'Conv2D':
        if (c.padding !== 'valid' && c.padding !== 'same') throw new ModelError(`${where}: padding ${c.padding} unsupported`);
        spec.push({ type: 'conv2d', filters: c.filters, kernel: pair(c.kernel_size), stride: pair(c.strides ?? 1), padding: c.padding, dilation: pair(c.dilation_rate ?? 1), groups: c.groups ?? 1, bias: c.use_bias !== false }, ...activationSpec(c.activation, isLast, where));
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        spec.push({ type: l.class_name === 'MaxPooling2D' ? 'maxpool2d' : 'avgpool2d', kernel: pair(c.pool_size ?? 2), stride: pair(c.strides ?? c.pool_size ?? 2), padding: c.padding ?? 'valid' });
        break;
      case 'Flatten':
        spec.push({ type: 'flatten' });
        break;
      case 'Dropout':
        spec.push({ type: 'dropout', rate: c.rate });
        break;
      case 'Activation':
        spec.push(...activationSpec(c.activation, isLast, where));
        break;
      case 'ReLU':
        spec.push({ type: 'relu' });
        break;
      case 'LeakyReLU':
        spec.push({ type: 'leakyrelu', alpha: c.alpha ?? 0.3 });
        break;
      case 'ELU':
        spec.push({ type: 'elu', alpha: c.alpha ?? 1 });
        break;
      case 'LayerNormalization': {
        const axis = Array.isArray(c.axis) ? c.axis : [c.axis ?? -1];
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== (inputShape?.length ?? -2))) throw new ModelError(`${where}: only normalisation over the last axis is supported`);
        if (c.center === false || c.scale === false) throw new ModelError(`${where}: center and scale must both be on`);
        spec.push({ type: 'layernorm', eps: c.epsilon ?? 1e-3 });
        break;
      }
      case 'BatchNormalization':
        new BatchNorm();
        break;
      default:
        throw new ModelError(`${where}: layer type not supported for import`);
    }
  });
  if (!inputShape) throw new ModelError('the first layer has no batch_input_shape');
  return { spec, inputShape };
}

/** Loads `model.json` (tfjs-layers format) and its weight shards into a DP-trainable model. */
export function importTfjsLayersModel(modelJsonPath: string): { model: Sequential; inputShape: number[] } {
  const j = readJsonFile(modelJsonPath, (m) => new ModelError(m)) as Cfg;
  const { spec, inputShape } = tfjsLayersToSpec(j.modelTopology ?? j);
  const model = buildModel(spec, inputShape);
  const params = model.parameters();
  const manifest: { paths: string[]; weights: { name: string; shape: number[]; dtype?: string }[] }[] = j.weightsManifest ?? [];
  const specs = manifest.flatMap((g) => g.weights);
  const shard = (p: string): Buffer => {
    const path = join(dirname(modelJsonPath), p);
    if (!existsSync(path)) throw new ModelError(`${path}: weight shard not found (listed in ${modelJsonPath})`);
    return readFileSync(path);
  };
  const bytes = Buffer.concat(manifest.flatMap((g) => g.paths.map(shard)));
  if (specs.length !== params.length) throw new ModelError(`${modelJsonPath}: ${specs.length} weight tensors for a model with ${params.length} parameters`);
  let off = 0;
  params.forEach((p, i) => {
    const w = specs[i]!;
    if ((w.dtype ?? 'float32') !== 'float32') throw new ModelError(`${w.name}: only float32 weights are supported`);
    if (!tf.util.arraysEqual(w.shape, p.value.shape)) throw new ModelError(`${w.name}: shape [${w.shape}] does not fit ${p.name} [${p.value.shape}]`);
    const n = p.value.size;
    if (off + 4 * n > bytes.length) throw new ModelError(`${modelJsonPath}: weight shards are truncated`);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + off, bytes.byteOffset + off + 4 * n));
    tf.tidy(() => p.value.assign(tf.tensor(data, w.shape)));
    off += 4 * n;
  });
  return { model, inputShape };
}
