/**
 * Neural-network modules with per-sample gradients for DP-SGD (see module.ts for the contract).
 */
export * from './module.js';
export * from './layers/index.js';
export * from './persample.js';
export * from './spec.js';
export * from './tfjs-import.js';
