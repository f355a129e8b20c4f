/**
 * Gradient privatizers (kept as an import path for existing callers): the implementations live in
 * privatizers/, one file each, behind the registry in privatizers/index.ts.
 */
export * from './privatizers/index.js';
