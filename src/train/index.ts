/**
 * DP-SGD: samplers, privatizers (Gaussian, TopAgg-SGD; one file each, registered), optimizers, the
 * trainer (makePrivate / makePrivateWithEpsilon). The job runner runTraining lives in runs/train.ts.
 */
export * from './sampler.js';
export * from './privatizers/index.js';
export * from './optim.js';
export * from './trainer.js';
export * from './optimizers/index.js';
export * from './prune.js';
export { ensureEngine } from '../engine/index.js';
export { AdaptiveClipPrivatizer, gradientNoiseMultiplier, type AdaptiveClipOptions } from './adaptive-clip.js';
