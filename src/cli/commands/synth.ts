/**
 * `dplens synth`: DP synthetic images with any registered generator (src/generate/registry.ts). Prints one JSON object (--json) with
 * epsilon (spent, ≤ --epsilon), delta, generatorSteps, seconds, syntheticPath; the run folder holds
 * synthetic.npz, samples.png, ledger.jsonl, config.json, metrics.jsonl, generator/ and report.html.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, getBool, getInteger, getNumber, getString, type FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DATA_FLAG_SPECS } from '../../data/index.js';
import { ensureEngine, findGenerator, generatorFlags, generatorNames, GENERATORS, parseHyperValue, type RunFlag } from '../../generate/index.js';
import { runSynthesis, SynthesisInputError } from '../../runs/synth.js';
import { writeReport } from '../../report/index.js';

const positive = (x: number): true | string => x > 0 || 'must be > 0';
const inUnitOpen = (x: number): true | string => (x > 0 && x < 1) || 'must be in (0, 1)';

/** Run-level flags that only some generators accept (plugin.runFlags). */
const RUN_FLAGS: Record<RunFlag, FlagSpec> = {
  steps: { type: 'string', help: 'cap on generator steps (the budget normally stops first)' },
  'max-minutes': { type: 'string', help: 'stop (with a valid, partially spent budget) after this many minutes' },
  resume: { type: 'boolean', help: 'continue the run in --out from its last generator checkpoint (same data, budget and seed; the ledger keeps every charge)' },
  'public-data': { type: 'string', help: 'public pre-training data: mnist | fashion-mnist | PATH (any image set dplens loads, same image size). Outside the guarantee: named in the ledger header and report. Honest pairing on the built-in sets: fashion-mnist for mnist and mnist for fashion-mnist' },
  'non-private': { type: 'boolean', help: 'explicitly NON-private run (no budget, no --epsilon; noise 0 allowed, e.g. --sigma 0; needs --steps): the ledger records one nonPrivate event, ε = ∞. For calibrating `dplens audit`' },
};

/** Every hyper-parameter flag of every registered generator, its help naming the methods it applies to. */
function hyperFlagSpecs(): Record<string, FlagSpec> {
  const out: Record<string, FlagSpec> = {};
  for (const [flag, { spec, methods }] of generatorFlags()) out[flag] = { type: spec.type === 'boolean' ? 'boolean' : 'string', help: `[${methods.join(', ')}] ${spec.help}` };
  return out;
}

const methodList = generatorNames();

/** The flags every method accepts (the data, budget, output and preset flags). */
function commonSynthFlags(presets: string): Record<string, FlagSpec> {
  return {
    method: { type: 'string', help: `${methodList.join(' | ')} (default ${methodList[0]})` },
    ...DATA_FLAG_SPECS,
    epsilon: { type: 'string', help: 'privacy budget epsilon (> 0)' },
    delta: { type: 'string', help: 'privacy budget delta in (0, 1) (default 1e-5)' },
    samples: { type: 'string', help: 'synthetic samples to write (default 60000)' },
    preset: { type: 'string', help: `hyper-parameter preset; ${presets}` },
  };
}

/** The value of --method in a raw argument list (`--method X` or `--method=X`), if any. */
function methodInArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--method') return argv[i + 1];
    if (a.startsWith('--method=')) return a.slice('--method='.length);
  }
  return undefined;
}

const command: Command = {
  name: 'synth',
  summary: `private synthetic images (${methodList.join(', ')})`,
  usage: `dplens synth --method ${methodList.join('|')} --data mnist|fashion-mnist|pneumonia|PATH --epsilon E --delta D --out DIR [options] [--json]`,
  description:
    'Fits a DP generator on the private data and writes synthetic images. Every release is recorded in DIR/ledger.jsonl before it is used, with data-independent accounting under the neighbouring relation each method\'s proof uses (named per method below, with what it treats as public); fitting stops before the first release that would exceed --epsilon, and a budget too small for even one step is an error. Methods (--method): ' +
    GENERATORS.map((p) => `${p.name} [${p.relation}]: ${p.description}`).join('; ') +
    '. Hyper-parameters default to the method\'s preset closest in epsilon (--preset); flags marked [method] apply only to those methods, and giving one to another method is an error (`dplens synth --method M --help` lists only M\'s flags, with M\'s own help). DataLens and G-PATE default to kernel teachers (non-parametric, one per record); neural-* presets (DataLens) use trained MLP teachers, paper-* the published runs (see src/generate/README.md).',
  flags: {
    ...commonSynthFlags(GENERATORS.map((p) => `${p.name}: ${Object.keys(p.presets).join('|')}`).join('; ')),
    ...hyperFlagSpecs(),
    ...RUN_FLAGS,
  },
  helpFor(argv) {
    const name = methodInArgv(argv);
    const p = name === undefined ? undefined : findGenerator(name);
    if (!p) return undefined;
    const flags: Record<string, FlagSpec> = commonSynthFlags(Object.entries(p.presets).map(([k, v]) => `${k} (${v.description})`).join('; '));
    for (const h of p.hyperParameters) flags[h.flag] = { type: h.type === 'boolean' ? 'boolean' : 'string', help: h.help };
    for (const f of p.runFlags) flags[f] = RUN_FLAGS[f];
    return {
      usage: `dplens synth --method ${p.name} --data mnist|fashion-mnist|pneumonia|PATH --epsilon E --delta D --out DIR [options] [--json]`,
      description: `${p.name}: ${p.description}. Neighbouring relation of its proof: ${p.relation}. Treated as public: ${p.treatedAsPublic.join('; ')}. Every release is recorded in DIR/ledger.jsonl before it is used; fitting stops before the first release that would exceed --epsilon. Without --preset the preset closest in epsilon for the data set is used.`,
      flags,
      examples: [`dplens synth --method ${p.name} --data mnist --epsilon 1 --delta 1e-5 --out runs/${p.name}-mnist-eps1 --json`],
    };
  },
  examples: [
    'dplens synth --method datalens --data mnist --epsilon 1 --delta 1e-5 --out runs/dl-mnist-eps1 --json',
    'dplens synth --method gpate --data fashion-mnist --epsilon 10 --delta 1e-5 --out runs/gp-fm-eps10 --preset fashion-mnist-eps10',
    'dplens synth --method datalens --data mnist --epsilon 1 --out runs/quick --teachers 200 --samples 6000 --max-minutes 5',
    'dplens synth --method class-mean --data mnist --epsilon 1 --delta 1e-5 --out runs/cm-mnist-eps1 --json',
  ],
  async run(args: ParsedArgs, out: Output, argv: string[]): Promise<number> {
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const methodName = getString(args, 'method', methodList[0]!);
    const plugin = findGenerator(methodName);
    if (!plugin) throw new UsageError(`--method must be one of ${methodList.join('|')}, got "${methodName}"`);
    const method = plugin.name;
    // Flags of other methods are errors, not silently ignored.
    const all = generatorFlags();
    const own = new Set(plugin.hyperParameters.map((h) => h.flag));
    for (const flag of args.flags.keys()) {
      const g = all.get(flag);
      if (g && !own.has(flag)) throw new UsageError(`--${flag} does not apply to method ${method} (it is a ${g.methods.join('/')} flag)`);
      if (flag in RUN_FLAGS && !plugin.runFlags.includes(flag as RunFlag)) throw new UsageError(`--${flag} does not apply to method ${method}`);
    }
    const data = getString(args, 'data');
    if (!data) throw new UsageError('--data is required (mnist, fashion-mnist, pneumonia or a path)');
    const nonPrivate = getBool(args, 'non-private');
    if (nonPrivate && args.flags.has('epsilon')) throw new UsageError('--epsilon does not apply with --non-private (a non-private run has no budget)');
    const epsilon = nonPrivate ? Number.POSITIVE_INFINITY : getNumber(args, 'epsilon', undefined, positive);
    if (epsilon === undefined) throw new UsageError('--epsilon is required');
    const delta = getNumber(args, 'delta', 1e-5, inUnitOpen)!;
    const outDir = getString(args, 'out');
    if (!outDir) throw new UsageError('--out is required (the run folder to write)');
    const resume = getBool(args, 'resume');
    if (!resume && existsSync(join(outDir, 'ledger.jsonl'))) throw new UsageError(`${join(outDir, 'ledger.jsonl')} already exists: use a new --out folder, or --resume to continue that run`);
    const preset = getString(args, 'preset');
    if (preset !== undefined && !plugin.presets[preset]) throw new UsageError(`--preset must be one of ${Object.keys(plugin.presets).join('|')} for ${method}, got "${preset}"`);
    const seedStr = getString(args, 'seed');
    const seed = seedStr === undefined ? undefined : getInteger(args, 'seed', undefined, 0);
    const hyper: Record<string, unknown> = {};
    for (const spec of plugin.hyperParameters) {
      const raw = args.flags.get(spec.flag);
      if (raw === undefined) continue;
      const v = parseHyperValue(spec, raw);
      if ('error' in v) throw new UsageError(`--${spec.flag} ${v.error}`);
      hyper[spec.key] = v.value;
    }
    const threads = getInteger(args, 'threads', undefined, 1);
    const backend = await ensureEngine(threads ? { threads } : {});
    const samples = getInteger(args, 'samples', 60000, 1)!;
    const maxSteps = getInteger(args, 'steps', undefined, 1);
    const maxMinutes = getNumber(args, 'max-minutes', undefined, positive);
    out.log(`dplens synth: ${method} on ${data}, budget (ε=${epsilon}, δ=${delta}), engine ${backend}`);
    let bar: ReturnType<Output['progress']> | undefined;
    let r;
    try {
      r = await runSynthesis(
        { method, data, dataPath: getString(args, 'data-path'), epsilon, delta, out: outDir, samples, preset, hyper, maxSteps, maxMinutes, seed, resume, ...(nonPrivate ? { nonPrivate } : {}), ...(getString(args, 'public-data') !== undefined ? { publicData: getString(args, 'public-data') } : {}), argv: ['dplens', ...argv] },
        {
          onLog: (line) => out.log(line),
          onStep: (p) => {
            bar ??= out.progress(maxSteps ?? 0, 'generator steps');
            bar.update(p.step, { eps: p.epsilon });
            // Only step and ε here: per-step wall times are private diagnostics.
            if (p.step % 10 === 0 || p.step === 1) out.log(`step ${p.step}: ε=${p.epsilon.toFixed(4)} moved=${(100 * p.aggregateNonZero).toFixed(1)}%`);
          },
        },
      );
    } catch (e) {
      if (e instanceof SynthesisInputError) throw new UsageError(e.message);
      throw e;
    }
    bar?.done();
    let reportPath: string | null = null;
    try {
      reportPath = await writeReport(r.outDir);
    } catch (e) {
      out.log(`warning: report.html not written: ${(e as Error).message}`);
    }
    out.result({
      method: r.method,
      epsilon: r.epsilon,
      delta: r.delta,
      targetEpsilon: r.targetEpsilon,
      relation: r.relation,
      generatorSteps: r.generatorSteps,
      stoppedBy: r.stoppedBy,
      seconds: r.seconds,
      syntheticPath: r.syntheticPath,
      samplesPng: r.samplesPng,
      ledgerPath: r.ledgerPath,
      reportPath,
      samples: r.samples,
      preset: r.preset,
      teachers: typeof r.hyper.teachers === 'number' ? r.hyper.teachers : null,
      engine: backend,
    });
    return 0;
  },
};

export default command;
