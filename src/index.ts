/** dplens public API: one namespace per layer, lowest first. */
export * as engine from './engine/index.js';
export * as privacy from './privacy/index.js';
export * as nn from './nn/index.js';
export * as train from './train/index.js';
export * as generate from './generate/index.js';
export * as evaluate from './evaluate/index.js';
export * as audit from './audit/index.js';
export * as runs from './runs/index.js';
export * as data from './data/index.js';
export * as report from './report/index.js';
