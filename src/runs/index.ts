/**
 * Job runners: each runs one whole job (train, synth, audit, eval) into a run folder and writes its
 * manifest (run.json). The CLI calls a runner and then the report layer; runners never import report/.
 */
export * from './manifest.js';
export * from './train.js';
export * from './synth.js';
export * from './audit.js';
export * from './eval.js';
export * from './mia-train.js';
