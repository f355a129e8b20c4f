/** Utility evaluation of synthetic data: train on synthetic, test on real. */
export * from './synthetic-eval.js';
