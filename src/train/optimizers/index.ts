/**
 * Optimizer registry: one factory per optimizer (the classes are in ../optim.ts). Adding an
 * optimizer: its class in optim.ts (or its own file), one entry below; `dplens train --optimizer`,
 * its help and flag checks read this table.
 */
import { Adam, AdamW, type LrSchedule, type Optimizer, SGD } from '../optim.js';
import type { MethodOption, MethodOptionValues } from '../privatizers/types.js';
import { lookupMethod } from '../privatizers/index.js';

export interface OptimizerBuildContext {
  lr: number;
  schedule: LrSchedule;
  /** Decoupled (AdamW) or L2 (SGD, Adam) weight decay from the config (library option). */
  weightDecay?: number;
  options: MethodOptionValues;
}

export interface OptimizerFactory {
  readonly name: string;
  readonly summary: string;
  readonly options: readonly MethodOption[];
  create(ctx: OptimizerBuildContext): Optimizer;
}

export const sgdFactory: OptimizerFactory = {
  name: 'sgd',
  summary: 'SGD, optional (Nesterov) momentum (default)',
  options: [
    { flag: 'momentum', type: 'number', check: (x) => (x >= 0 && x < 1) || 'must be in [0, 1)', help: 'SGD momentum (default 0)' },
    { flag: 'nesterov', type: 'boolean', help: 'Nesterov momentum (needs --momentum > 0)' },
  ],
  create: (ctx) => new SGD(ctx.lr, { momentum: (ctx.options.momentum as number | undefined) ?? 0, nesterov: ctx.options.nesterov === true, weightDecay: ctx.weightDecay }, ctx.schedule),
};

export const adamFactory: OptimizerFactory = {
  name: 'adam',
  summary: 'Adam',
  options: [],
  create: (ctx) => new Adam(ctx.lr, { weightDecay: ctx.weightDecay }, ctx.schedule),
};

export const adamwFactory: OptimizerFactory = {
  name: 'adamw',
  summary: 'Adam with decoupled weight decay',
  options: [],
  create: (ctx) => new AdamW(ctx.lr, { weightDecay: ctx.weightDecay }, ctx.schedule),
};

export const optimizers: Readonly<Record<string, OptimizerFactory>> = {
  sgd: sgdFactory,
  adam: adamFactory,
  adamw: adamwFactory,
};
export const getOptimizer = (name: string): OptimizerFactory => lookupMethod('optimizer', optimizers, name);
