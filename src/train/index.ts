/**
 * DP-SGD: samplers, privatizers (Gaussian, TopAgg-SGD), optimizers, the trainer
 * (makePrivate / makePrivateWithEpsilon) and the config-driven runner runTraining.
 */
export * from './sampler.js';
export * from './optim.js';
export * from './privatizer.js';
export * from './trainer.js';
export * from './optimizers/index.js';
export { ensureEngine } from '../engine/index.js';
