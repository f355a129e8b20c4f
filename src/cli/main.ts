#!/usr/bin/env node
/**
 * `dplens` entry point: dispatches to src/cli/commands/<name>.ts.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad input (one-line message on stderr).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatHelp, getBool, parseArgs, UsageError } from './args.js';
import { Output } from './output.js';
import type { Command } from './command.js';
import { relaunchWithMallocTuning } from '../engine/malloc-tuning.js';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

function commandNames(): string[] {
  return readdirSync(join(here, 'commands'))
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && !f.startsWith('_'))
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!/^[a-z][a-z-]*$/.test(name) || !commandNames().includes(name)) return undefined;
  const mod = (await import(join(here, 'commands', name + ext))) as { default: Command };
  return mod.default;
}

async function topHelp(): Promise<string> {
  const lines = ['dplens — differentially private training, synthetic data, accounting and audits', '', 'Usage: dplens <command> [options]   (dplens <command> --help for details)', '', 'Commands:'];
  for (const n of commandNames()) {
    const c = await loadCommand(n);
    if (c) lines.push(`  ${n.padEnd(10)} ${c.summary}`);
  }
  return lines.join('\n');
}

/** Where main() writes its own messages (help, errors); tests pass string sinks. */
export interface MainIo {
  out(s: string): void;
  err(s: string): void;
}
const PROCESS_IO: MainIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

export async function main(argv: string[], io: MainIo = PROCESS_IO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out((await topHelp()) + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    // src/cli/main.ts and dist/cli/main.js both sit two levels below package.json.
    const pkg = JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')) as { version: string };
    io.out(pkg.version + '\n');
    return 0;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    io.err(`dplens: unknown command "${name}" (try dplens --help)\n`);
    return 2;
  }
  const json = rest.includes('--json');
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      const h = cmd.helpFor?.(rest) ?? cmd;
      io.out(formatHelp(h.usage, h.description, h.flags, h.examples) + '\n');
      return 0;
    }
    const args = parseArgs(rest, cmd.flags);
    const out = new Output({ json: getBool(args, 'json'), quiet: getBool(args, 'quiet') || json });
    return await cmd.run(args, out, argv);
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError || err?.name === 'UsageError' || err?.name === 'DataError' || err?.name === 'BudgetError') {
      io.err(`dplens ${name}: ${err.message}\n`);
      return 2;
    }
    io.err(`dplens ${name}: ${err?.message ?? String(e)}\n`);
    if (process.env.DPLENS_DEBUG) io.err((err?.stack ?? '') + '\n');
    return 1;
  }
}

const invokedDirectly = process.argv[1] && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1]);
if (invokedDirectly) {
  let settled = false;
  // `dplens … | head`: the reader closing the pipe is not an error of ours; stop quietly.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      settled = true;
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    });
  }
  // If every handle closes while the command's promise is still pending (a bug: an await that can
  // never resolve), Node would exit 0 silently; make that a visible failure instead.
  process.on('exit', (code) => {
    if (!settled && code === 0) {
      process.stderr.write(`dplens ${process.argv[2] ?? ''}: internal error: the command ended without finishing (a pending operation never completed)\n`);
      process.exitCode = 1;
    }
  });
  // Training commands run with glibc's mmap threshold fixed: no page faults on ONNX Runtime's
  // output copies (engine/malloc-tuning.ts; −25 % CPU for the eval CNN's training, issue 18).
  // Not `fed`: its parties are killed with SIGKILL by design (crash safety), and a relaunched
  // child would outlive its killed parent.
  const args = process.argv.slice(2);
  const relaunched = ['train', 'synth', 'eval', 'audit', 'attack'].includes(args[0] ?? '') && !args.includes('--help') ? relaunchWithMallocTuning() : undefined;
  (relaunched ?? main(args)).then(
    (code) => {
      settled = true;
      process.exitCode = code;
    },
    (e) => {
      settled = true;
      process.stderr.write(`dplens: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
