import type { Output } from './output.js';
import type { FlagSpec, ParsedArgs } from './args.js';

/**
 * One `dplens` sub-command. Each lives in src/cli/commands/<name>.ts and default-exports a Command;
 * main.ts loads it by name, so adding a command needs no edit anywhere else.
 */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  description: string;
  flags: Record<string, FlagSpec>;
  examples: string[];
  /**
   * Help specialised by the other arguments of a `--help` call (e.g. `dplens synth --method dp-gan
   * --help` lists only dp-gan's flags, with dp-gan's own help text); undefined = the general help.
   */
  helpFor?(argv: string[]): Pick<Command, 'usage' | 'description' | 'flags' | 'examples'> | undefined;
  /** Returns the process exit code. Throw UsageError for bad input (exit 2, one line). */
  run(args: ParsedArgs, out: Output, argv: string[]): Promise<number>;
}
