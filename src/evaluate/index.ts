/** Utility evaluation of synthetic data: train on synthetic, test on real; fidelity metrics. */
export * from './synthetic-eval.js';
export * from './classifiers.js';
export * from './fidelity.js';
export * from './feature-net.js';
