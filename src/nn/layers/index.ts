/**
 * Layers with explicit forward/backward and per-sample gradient records (see module.ts).
 * Tensors are NHWC for images and [N, ..., features] otherwise; batch is always axis 0.
 *
 * One file per layer kind; importing a file registers its kind (registry.ts). A new layer is one
 * file plus one line below.
 */
export * from './dense.js';
export * from './conv2d.js';
export * from './embedding.js';
export * from './layernorm.js';
export * from './groupnorm.js';
export * from './instancenorm.js';
export * from './batchnorm.js';
export * from './relu.js';
export * from './leakyrelu.js';
export * from './tanh.js';
export * from './tempered-sigmoid.js';
export * from './elu.js';
export * from './maxpool2d.js';
export * from './avgpool2d.js';
export * from './flatten.js';
export * from './dropout.js';
export * from './sequential.js';
export * from './residual.js';

export { setInitSeed } from './common.js';
export type { PoolOptions } from './pool2d.js';
export { type BuiltLayer, type LayerBuildContext, type LayerKind, layerKind, registeredLayerTypes, registerLayer } from './registry.js';
export { GradTape } from '../module.js';
