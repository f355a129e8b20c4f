/**
 * Privatizer registry. Adding a privatizer: one file next to this one exporting a
 * `PrivatizerFactory`, plus one line in `privatizers` below; `dplens train --privatizer`, its help
 * and its flag checks read this table.
 */
import { gaussianFactory } from './gaussian.js';
import { topaggFactory } from './topagg.js';
import { vmfFactory } from './vmf.js';
import { ptrRobustFactory } from './ptr-robust.js';
import { topkFactory } from './topk.js';
import { randkFactory } from './randk.js';
import { signFactory } from './sign.js';
import { sketchFactory } from './sketch.js';
import type { MethodOptionValues, PrivatizerFactory } from './types.js';

export * from './types.js';
export { GaussianPrivatizer, gaussianFactory } from './gaussian.js';
export { TopAggPrivatizer, topaggFactory, type TopAggOptions } from './topagg.js';
export { VmfPrivatizer, vmfFactory } from './vmf.js';
export { PtrRobustPrivatizer, ptrRobustFactory, robustAggregate, type PtrRobustOptions } from './ptr-robust.js';
export { TopKPrivatizer, topkFactory } from './topk.js';
export { RandKPrivatizer, randkFactory } from './randk.js';
export { SignPrivatizer, signFactory } from './sign.js';
export { SketchPrivatizer, sketchFactory } from './sketch.js';

export const privatizers: Readonly<Record<string, PrivatizerFactory>> = {
  gaussian: gaussianFactory,
  topagg: topaggFactory,
  vmf: vmfFactory,
  'ptr-robust': ptrRobustFactory,
  topk: topkFactory,
  randk: randkFactory,
  sign: signFactory,
  sketch: sketchFactory,
};
export const getPrivatizer = (name: string): PrivatizerFactory => lookupMethod('privatizer', privatizers, name);

/** The entry `name` of a method registry; RangeError listing the choices otherwise. */
export function lookupMethod<F>(kind: string, table: Readonly<Record<string, F>>, name: string): F {
  const f = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!f) throw new RangeError(`${kind} must be one of ${Object.keys(table).join(', ')}, got ${JSON.stringify(name)}`);
  return f;
}

/**
 * Refuses option values that the chosen method does not read (a flag given for another method is
 * an error, never silently ignored). `kind` names the selector flag ('privatizer', 'optimizer').
 */
export function checkMethodOptions(kind: string, method: { name: string; options: readonly { flag: string }[] }, all: readonly { name: string; options: readonly { flag: string }[] }[], given: MethodOptionValues): void {
  for (const [flag, v] of Object.entries(given)) {
    if (v === undefined) continue;
    if (method.options.some((o) => o.flag === flag)) continue;
    const owners = all.filter((m) => m.options.some((o) => o.flag === flag)).map((m) => m.name);
    throw new RangeError(owners.length ? `--${flag} does not apply to --${kind} ${method.name} (it applies to --${kind} ${owners.join(' | ')})` : `unknown ${kind} option --${flag}`);
  }
}
