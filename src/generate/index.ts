/** Private synthetic data from teacher votes: DataLens and G-PATE behind one DpGenerator interface. */
export * from './types.js';
export * from './shards.js';
export * from './topagg.js';
export * from './gpate-agg.js';
export * from './teachers.js';
export * from './generator.js';
export * from './voting-gan.js';
export * from './presets.js';
export * from './synthesis.js';
export * from './kernel-teachers.js';
export * from './augment.js';
export { ensureEngine } from './engine-init.js';
