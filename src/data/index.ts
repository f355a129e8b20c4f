export * from './types.js';
export * from './idx.js';
export * from './mnist.js';
