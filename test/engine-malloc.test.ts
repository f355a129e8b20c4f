// glibc malloc tuning for engine processes (issue 18, engine/malloc-tuning.ts): the relaunch
// re-runs the entry point once with the tunables set, passes arguments and the exit status through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GLIBC_MALLOC_TUNABLES } from '../src/engine/malloc-tuning.js';

test('relaunchWithMallocTuning: one relaunch with GLIBC_TUNABLES set, arguments and exit status passed through', { skip: process.platform !== 'linux' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-malloc-'));
  const script = join(dir, 'entry.mjs');
  const mod = pathToFileURL(join(import.meta.dirname, '..', 'src', 'engine', 'malloc-tuning.ts')).href;
  writeFileSync(
    script,
    `const m = await import(${JSON.stringify(mod)});\nconst r = m.relaunchWithMallocTuning();\nif (r) process.exit(await r);\nconsole.log(JSON.stringify({ active: m.mallocTuningActive(), tunables: process.env.GLIBC_TUNABLES, args: process.argv.slice(2) }));\nprocess.exit(3);\n`,
  );
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  delete env.DPLENS_MALLOC_RELAUNCH;
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, 'a', '--b'], { encoding: 'utf8', env });
  assert.equal(r.status, 3, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'the entry point ran once after the relaunch');
  const o = JSON.parse(lines[0]!) as { active: boolean; tunables: string; args: string[] };
  assert.equal(o.active, true);
  assert.equal(o.tunables, GLIBC_MALLOC_TUNABLES);
  assert.deepEqual(o.args, ['a', '--b']);
});

/** A launcher process whose entry point relaunches itself with the tuning; the relaunched child idles. */
async function startLauncher(): Promise<{ launcher: ReturnType<typeof spawn>; childPid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-malloc-'));
  const script = join(dir, 'entry.mjs');
  const pidFile = join(dir, 'child.pid');
  const mod = pathToFileURL(join(import.meta.dirname, '..', 'src', 'engine', 'malloc-tuning.ts')).href;
  writeFileSync(
    script,
    `const m = await import(${JSON.stringify(mod)});\nconst r = m.relaunchWithMallocTuning();\nif (r) process.exit(await r);\n(await import('node:fs')).writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));\nsetInterval(() => {}, 1000);\n`,
  );
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  delete env.DPLENS_MALLOC_RELAUNCH;
  const launcher = spawn(process.execPath, ['--import', 'tsx', script], { env, stdio: 'ignore' });
  const t0 = Date.now();
  while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8') === '') {
    if (Date.now() - t0 > 60_000) throw new Error('relaunched child did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { launcher, childPid: Number(readFileSync(pidFile, 'utf8')) };
}

/** Whether process `pid` ends within `ms`. */
async function endsWithin(pid: number, ms: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 100))) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
  }
  return false;
}

test('relaunchWithMallocTuning: SIGTERM to the launcher ends the relaunched process too', { skip: process.platform !== 'linux' }, async () => {
  const { launcher, childPid } = await startLauncher();
  const exited = new Promise<number | null>((r) => launcher.on('exit', (code) => r(code)));
  launcher.kill('SIGTERM');
  assert.equal(await exited, 128 + 15, 'the launcher exits with the child status (terminated by SIGTERM)');
  const alive = !(await endsWithin(childPid, 5000));
  assert.equal(alive, false, 'the relaunched process ended');
});

test('relaunchWithMallocTuning: kill -9 of the launcher ends the relaunched process too (no orphaned run)', { skip: process.platform !== 'linux' }, async () => {
  const { launcher, childPid } = await startLauncher();
  const exited = new Promise<void>((r) => launcher.on('exit', () => r()));
  launcher.kill('SIGKILL');
  await exited;
  const alive = !(await endsWithin(childPid, 10000));
  assert.equal(alive, false, 'the relaunched process ended with its launcher');
});
