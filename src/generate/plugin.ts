/**
 * The generator plugin interface: what a DP generator tells the rest of dplens about itself.
 * `dplens synth` (its --method choices, --help, flags, flag validation, presets), the synth runner
 * (src/runs/synth.ts), the audit and the report read everything method-specific from here, through
 * the one registry in registry.ts. Adding a generator = one file exporting a GeneratorPlugin plus
 * one line in registry.ts.
 */
import type { NeighbouringRelation } from '../privacy/index.js';
import type { DpGenerator, GeneratorContext, SampleSet } from './types.js';
import type { VoteAggregator, VotingFacts } from './voting-gan.js';
import type { GaussianReleaseMechanism } from './types.js';

/** One hyper-parameter: its key in the plugin's hyper object, its CLI flag, type and help. */
export interface HyperParamSpec {
  /** Property of the hyper-parameter object. */
  key: string;
  /** CLI flag (without --); several plugins may share a flag if they give it the same meaning. */
  flag: string;
  type: 'number' | 'integer' | 'boolean' | 'choice';
  choices?: readonly string[];
  /** Inclusive lower bound (numbers); `exclusiveMin` makes it strict. */
  min?: number;
  exclusiveMin?: boolean;
  max?: number;
  /** A boolean flag that sets the key to this value when present (e.g. --deterministic-sign → stochastic: false). */
  whenSet?: unknown;
  help: string;
}

export interface PluginPreset<H> {
  description: string;
  /** The ε the preset was tuned for (the default preset is the one closest in ε). */
  epsilon: number;
  hyper: Partial<H>;
}

/**
 * Run-level flags a plugin accepts besides its hyper-parameters. 'non-private': the plugin can run
 * without a budget (noise 0 allowed), recorded as DpEvents.nonPrivate (ctx.nonPrivate).
 * 'public-data': the plugin can pre-train on a public dataset (`--public-data`, ctx.publicData), which
 * is outside the guarantee (not protected by ε) and must never be the private set.
 */
export type RunFlag = 'steps' | 'max-minutes' | 'resume' | 'non-private' | 'public-data';

export interface GeneratorLimits {
  maxSteps: number;
  maxMinutes: number;
}

/** A generator read back from disk for sampling only (post-processing: no data, no budget). */
export interface SavedSampler {
  readonly method: string;
  readonly steps: number;
  sample(n: number, rng: GeneratorContext['random'], labels?: Int32Array): Promise<SampleSet>;
  dispose(): void;
}

export interface GeneratorPlugin<H extends object = Record<string, unknown>> {
  /** Registry name, the value of `--method`. */
  readonly name: string;
  /** One sentence for --help and the report. */
  readonly description: string;
  /** The neighbouring relation the plugin's proof uses. */
  readonly relation: NeighbouringRelation;
  /** What the proof treats as public, in words (for run.json and the report). */
  readonly treatedAsPublic: readonly string[];
  /** Hyper-parameters: defaults are `defaults`; presets override them; flags override presets. */
  readonly hyperParameters: readonly HyperParamSpec[];
  readonly defaults: H;
  readonly presets: Readonly<Record<string, PluginPreset<H>>>;
  readonly runFlags: readonly RunFlag[];
  /** Set when the method cannot run without `--public-data` (with 'public-data' in runFlags): the message's hint, e.g. which public set to pass. */
  readonly requiresPublicData?: string;
  /** The preset used when none is named. */
  defaultPreset(data: string, epsilon: number): string;
  /**
   * Completes the hyper-parameters with public facts of the data (e.g. "teachers 0" = one per
   * record). Called by the runner before the generator is created; must not read the records.
   */
  finalizeHyper?(hyper: H, facts: { trainCount: number; numClasses: number }): H;
  /** A generator bound to the data, budget, ledger and randomness of ctx; fit() spends at most ctx.budget. */
  create(ctx: GeneratorContext, hyper: H, limits: GeneratorLimits): DpGenerator;
  /** Reads a generator written by DpGenerator.save() for sampling only. */
  loadSampler(dir: string): SavedSampler;
  /**
   * The run's private release mechanism rebuilt from its hyper-parameters and public facts only
   * (no records): the aggregator with the run's noise code and parameters, and one step's facts.
   * The mechanism-level audit (src/audit/synth-audit.ts) replays it with canary voters.
   */
  mechanism?(hyper: H, facts: { trainCount: number; numClasses: number; height: number; width: number; channels: number }): { aggregator: VoteAggregator; facts: VotingFacts };
  /**
   * For plugins whose private contact is Gaussian releases of a fixed-length vector (dp-merf,
   * dp-kernel): the release rebuilt from hyper-parameters, public facts and the run's budget
   * (ε null = a non-private run, σ = 0), with the plugin's own noise code. The audit replays it
   * with canary coordinates (replayGaussianRelease in src/audit/synth-audit.ts).
   */
  gaussianMechanism?(hyper: H, facts: { trainCount: number; numClasses: number; epsilon: number | null; delta: number; /** generator steps the run made (run.json result.generatorSteps), when recorded */ steps?: number }): GaussianReleaseMechanism;
}

/** A plugin with its hyper-parameter type erased (what the registry holds). */
export type AnyGeneratorPlugin = GeneratorPlugin<any>;

/** Hyper-parameters of `plugin` for `presetName` with `overrides` (undefined values ignored). */
export function resolvePluginHyper<H extends object>(plugin: Pick<GeneratorPlugin<H>, 'name' | 'defaults' | 'presets'>, presetName: string, overrides: Partial<H>): H {
  const p = plugin.presets[presetName];
  if (!p) throw new RangeError(`unknown preset "${presetName}" for ${plugin.name}; choose one of ${Object.keys(plugin.presets).join(', ')}`);
  const h = { ...plugin.defaults, ...p.hyper } as H;
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (h as Record<string, unknown>)[k] = v;
  return h;
}

/** Parses one flag value against its spec: the value, or a message saying what is wrong. */
export function parseHyperValue(spec: HyperParamSpec, raw: string | boolean): { value: unknown } | { error: string } {
  if (spec.type === 'boolean') return { value: spec.whenSet ?? true };
  const s = String(raw);
  if (spec.type === 'choice') {
    if (!spec.choices?.includes(s)) return { error: `must be ${spec.choices?.join(' or ')}, got "${s}"` };
    return { value: s };
  }
  const x = Number(s);
  if (s.trim() === '' || !Number.isFinite(x)) return { error: `must be a number, got "${s}"` };
  if (spec.type === 'integer' && !Number.isInteger(x)) return { error: `must be an integer, got ${s}` };
  if (spec.min !== undefined && (spec.exclusiveMin ? !(x > spec.min) : !(x >= spec.min))) return { error: `must be ${spec.exclusiveMin ? '>' : '>='} ${spec.min}, got ${s}` };
  if (spec.max !== undefined && !(x <= spec.max)) return { error: `must be <= ${spec.max}, got ${s}` };
  return { value: x };
}
