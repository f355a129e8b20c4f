/** Private synthetic data: generator plugins (DataLens, G-PATE, class-mean) behind one registry. */
export * from './types.js';
export * from './plugin.js';
export * from './registry.js';
export * from './shards.js';
export * from './topagg.js';
export * from './gpate-agg.js';
export * from './teachers.js';
export * from './generator.js';
export * from './voting-gan.js';
export * from './voting-plugins.js';
export * from './class-mean.js';
export * from './mean-embedding.js';
export * from './dp-merf.js';
export * from './dp-kernel.js';
export * from './presets.js';
export * from './kernel-teachers.js';
export * from './augment.js';
export { ensureEngine } from '../engine/index.js';
