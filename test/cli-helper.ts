// Runs the dplens CLI from tests: in a fresh Node process (the process-level contract: exit
// status, streams) or in this process with its output captured (no Node + tsx start-up per case).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A runner of `dplens <args>` in a child process, killed after `timeoutMs`. */
export function spawnedDplens(timeoutMs: number): (...args: string[]) => CliResult {
  return (...args) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join('src', 'cli', 'main.ts'), ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, DPLENS_DEBUG: '' } });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
}

/** Runs main() in this process with stdout/stderr captured. */
export async function dplensInProcess(...args: string[]): Promise<CliResult> {
  const { main } = await import('../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  return { code, stdout, stderr };
}
