/**
 * Minimal, strict flag parser shared by every `dplens` command.
 * Flags are `--name value`, `--name=value` or boolean `--name`; unknown flags are errors
 * (a typo must never silently fall back to a default that changes a privacy claim).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  /** 'string' flags take a value; 'boolean' flags do not. */
  type: 'string' | 'boolean';
  /** One-line help text. */
  help: string;
  /** A string flag that may be given several times (read with getStrings). */
  repeatable?: boolean;
}

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | boolean>;
  /** Every value of each string flag, in order (for repeatable flags; `flags` keeps the last). */
  lists: Map<string, string[]>;
}

/** Flags every command accepts. */
export const COMMON_FLAGS: Record<string, FlagSpec> = {
  json: { type: 'boolean', help: 'print one JSON object on stdout; logs go to stderr' },
  out: { type: 'string', help: 'run folder to write (config, ledger, metrics, outputs, report)' },
  seed: { type: 'string', help: 'seed for reproducible (non-secure) randomness; recorded in the ledger' },
  threads: { type: 'string', help: 'number of compute threads (default: number of cores)' },
  quiet: { type: 'boolean', help: 'no progress output' },
  help: { type: 'boolean', help: 'show this help' },
};

/** Value-taking flags from name → help text: the common case of a command's flag table. */
export function stringFlags(help: Record<string, string>): Record<string, FlagSpec> {
  return Object.fromEntries(Object.entries(help).map(([name, text]) => [name, { type: 'string', help: text }]));
}

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>): ParsedArgs {
  const all = { ...COMMON_FLAGS, ...spec };
  const positionals: string[] = [];
  const flags = new Map<string, string | boolean>();
  const lists = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const s = all[name];
    if (!s) throw new UsageError(`unknown flag --${name} (see --help)`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`flag --${name} takes no value`);
      flags.set(name, true);
    } else {
      let v: string | undefined;
      if (eq >= 0) v = a.slice(eq + 1);
      else {
        v = argv[i + 1];
        i++;
      }
      if (v === undefined || (v.startsWith('--') && eq < 0)) throw new UsageError(`flag --${name} needs a value`);
      flags.set(name, v);
      lists.set(name, [...(lists.get(name) ?? []), v]);
    }
  }
  return { positionals, flags, lists };
}

export function getString(a: ParsedArgs, name: string): string | undefined;
export function getString(a: ParsedArgs, name: string, dflt: string): string;
export function getString(a: ParsedArgs, name: string, dflt?: string): string | undefined {
  const v = a.flags.get(name);
  if (v === undefined) return dflt;
  return String(v);
}

/** Every value of a repeatable flag, in the order given (empty when absent). */
export function getStrings(a: ParsedArgs, name: string): string[] {
  return a.lists.get(name) ?? [];
}

/** A comma-separated list (`--class-names a,b,c`): trimmed items, none empty, no repeats. */
export function getList(a: ParsedArgs, name: string): string[] | undefined {
  const v = getString(a, name);
  if (v === undefined) return undefined;
  const items = v.split(',').map((x) => x.trim());
  if (items.some((x) => x === '')) throw new UsageError(`--${name} must be a comma-separated list without empty items, got "${v}"`);
  const twice = items.find((x, i) => items.indexOf(x) !== i);
  if (twice !== undefined) throw new UsageError(`--${name} names "${twice}" twice`);
  return items;
}

/** The command takes no positional arguments. */
export function noPositionals(a: ParsedArgs): void {
  if (a.positionals.length) throw new UsageError(`unexpected argument "${a.positionals[0]}"`);
}

/** --seed as a 32-bit unsigned integer, or undefined for secure randomness. */
export function getSeed(a: ParsedArgs): number | undefined {
  const raw = getString(a, 'seed');
  if (raw === undefined) return undefined;
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 32 - 1) throw new UsageError(`--seed must be an integer in [0, 2^32), got "${raw}"`);
  return seed;
}

export function getBool(a: ParsedArgs, name: string): boolean {
  return a.flags.get(name) === true;
}

/** A finite number; `check` describes extra constraints, e.g. (x) => x > 0 || 'must be > 0'. */
export function getNumber(a: ParsedArgs, name: string, dflt?: number, check?: (x: number) => true | string): number | undefined {
  const v = a.flags.get(name);
  if (v === undefined) return dflt;
  const s = String(v).trim();
  const x = Number(s);
  if (s === '' || !Number.isFinite(x)) throw new UsageError(`--${name} must be a finite number, got "${s}"`);
  if (check) {
    const r = check(x);
    if (r !== true) throw new UsageError(`--${name} ${r}, got ${s}`);
  }
  return x;
}

export function requireNumber(a: ParsedArgs, name: string, check?: (x: number) => true | string): number {
  const x = getNumber(a, name, undefined, check);
  if (x === undefined) throw new UsageError(`--${name} is required`);
  return x;
}

/** A non-negative (or positive when `min` = 1) integer. */
export function getInteger(a: ParsedArgs, name: string, dflt?: number, min = 0): number | undefined {
  const x = getNumber(a, name, dflt);
  if (x === undefined) return undefined;
  if (!Number.isInteger(x)) throw new UsageError(`--${name} must be an integer, got ${a.flags.get(name)}`);
  if (x < min) throw new UsageError(`--${name} must be >= ${min}, got ${x}`);
  return x;
}

export function getChoice<T extends string>(a: ParsedArgs, name: string, choices: readonly T[], dflt: T): T {
  const v = getString(a, name, dflt);
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join('|')}, got "${v}"`);
  return v as T;
}

export function formatHelp(usage: string, description: string, spec: Record<string, FlagSpec>, examples: string[]): string {
  const all = { ...spec, ...COMMON_FLAGS };
  const width = Math.max(...Object.keys(all).map((k) => k.length + (all[k]!.type === 'string' ? 4 : 0))) + 4;
  const lines = [`Usage: ${usage}`, '', description, '', 'Options:'];
  for (const [k, s] of Object.entries(all)) {
    const left = `  --${k}${s.type === 'string' ? ' <v>' : ''}`;
    lines.push(left.padEnd(width + 2) + s.help + (s.repeatable ? ' (repeatable)' : ''));
  }
  if (examples.length) lines.push('', 'Examples:', ...examples.map((e) => `  ${e}`));
  return lines.join('\n');
}
