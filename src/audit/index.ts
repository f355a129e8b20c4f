/**
 * Audits: attacks that test privacy claims and empirical ε lower bounds.
 *  - stats: one-run ε lower bound (Steinke–Nasr–Jagielski 2023), ROC/AUC/TPR at low FPR
 *  - dpsgd: gradient (Dirac) canaries, the white-box spike score and the pre-registered audit plan
 *    (the runner that re-runs a pipeline with them is src/runs/audit.ts)
 *  - mia: membership inference (loss threshold, LiRA offline, distance to closest record)
 *  - inversion: gradient inversion (inverting gradients) on the reference CNN, PSNR/SSIM
 */
export * from './stats.js';
export * from './dpsgd.js';
export * from './synth-audit.js';
export * from './gaussian-release-audit.js';
export * from './mia.js';

export * from './inversion.js';
export { ensureAuditGradients } from './autodiff.js';
export { initRefCnn, refCnnShapes, refCnnLogits, refCnnGradient, refCnnFeatures } from './refcnn.js';
