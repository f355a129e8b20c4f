/**
 * The ONE registry of generator plugins. `dplens synth --method` choices, its --help and flags,
 * flag validation, presets, the synth runner, the audit and the report all read it.
 * Adding a generator: write one file exporting a GeneratorPlugin (see class-mean.ts) and add
 * one line below.
 */
import type { AnyGeneratorPlugin, GeneratorLimits, HyperParamSpec } from './plugin.js';
import type { DpGenerator, GeneratorContext } from './types.js';
import { datalensPlugin, gpatePlugin } from './voting-plugins.js';
import { classMeanPlugin } from './class-mean.js';
import { psgPlugin } from './psg.js';
import { dpMerfPlugin } from './dp-merf.js';
import { dpKernelPlugin } from './dp-kernel.js';
import { dpSinkhornPlugin } from './dp-sinkhorn.js';
import { dpGanPlugin } from './dp-gan.js';
import { dp2VaePlugin } from './dp2-vae.js';
import { dpmiPlugin } from './dpmi.js';

export const GENERATORS: readonly AnyGeneratorPlugin[] = [
  datalensPlugin,
  gpatePlugin,
  classMeanPlugin,
  psgPlugin,
  dpMerfPlugin,
  dpKernelPlugin,
  dpSinkhornPlugin,
  dpGanPlugin,
  dp2VaePlugin,
  dpmiPlugin,
];

/** Registry names, in registration order (the first is the default --method). */
export function generatorNames(): string[] {
  return GENERATORS.map((p) => p.name);
}

export function findGenerator(name: string): AnyGeneratorPlugin | undefined {
  return GENERATORS.find((p) => p.name === name);
}

/** The plugin named `name`; a RangeError listing the registered names otherwise. */
export function getGenerator(name: string): AnyGeneratorPlugin {
  const p = findGenerator(name);
  if (!p) throw new RangeError(`unknown method "${name}" (${generatorNames().join('|')})`);
  return p;
}

/** Every hyper-parameter flag of every plugin, with the plugins it applies to. */
export function generatorFlags(): Map<string, { spec: HyperParamSpec; methods: string[] }> {
  const out = new Map<string, { spec: HyperParamSpec; methods: string[] }>();
  for (const p of GENERATORS)
    for (const s of p.hyperParameters) {
      const have = out.get(s.flag);
      if (have) have.methods.push(p.name);
      else out.set(s.flag, { spec: s, methods: [p.name] });
    }
  return out;
}

/** A generator of method `name` (library use: no run folder; the synth runner in runs/ writes one). */
export function makeGenerator(name: string, ctx: GeneratorContext, hyper: object, maxSteps = Number.POSITIVE_INFINITY, maxMinutes = Number.POSITIVE_INFINITY): DpGenerator {
  const limits: GeneratorLimits = { maxSteps, maxMinutes };
  return getGenerator(name).create(ctx, hyper, limits);
}
