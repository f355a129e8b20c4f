/**
 * The CLI contract shared by every command: --help exits 0 and shows examples; bad input exits 2
 * with exactly one line on stderr; --json prints exactly one JSON object on stdout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixtureRun } from './report-fixture.js';

const MAIN = join('src', 'cli', 'main.ts');

function dplens(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, DPLENS_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs main() in this process with its output captured: the per-command matrix below would cost
 * a Node + tsx start-up per case if spawned. The process-level contract (exit status, streams) is
 * covered by the spawned tests.
 */
async function dplensInProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

const commands = readdirSync(join('src', 'cli', 'commands'))
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_') && !f.endsWith('.d.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

/** stderr lines other than Node's own warnings (e.g. experimental-feature notices). */
const ownLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.trim() && !/^\(node:\d+\)|--trace-warnings/.test(l));

test('top-level help lists every command', () => {
  const r = dplens('--help');
  assert.equal(r.code, 0, r.stderr);
  for (const c of commands) assert.match(r.stdout, new RegExp(`^  ${c}\\s`, 'm'), `command ${c} listed`);
  const bare = dplens();
  assert.equal(bare.code, 2, 'no command is a usage error');
  assert.match(bare.stdout, /Usage: dplens <command>/);
});

test('--version prints the package version', async () => {
  const { default: pkg } = await import('../package.json', { with: { type: 'json' } });
  const r = dplens('--version');
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

for (const name of commands) {
  test(`dplens ${name} --help exits 0 with usage and an example`, async () => {
    const r = await dplensInProcess(name, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: dplens ${name}\\b`, 'm'));
    assert.match(r.stdout, /^Examples:\n {2}dplens /m, 'at least one example');
    const examples = r.stdout.slice(r.stdout.indexOf('Examples:')).split('\n').filter((l) => /^ {2}\S/.test(l));
    for (const line of examples) assert.match(line, new RegExp(`\\bdplens ${name}\\b`), `example "${line}" uses this command`);
    assert.match(r.stdout, /--json/);
    assert.equal((await dplensInProcess(name, '-h')).stdout, r.stdout, '-h is --help');
  });

  test(`dplens ${name} rejects an unknown flag with exit 2 and one line`, async () => {
    const r = await dplensInProcess(name, '--no-such-flag-xyz', '1');
    assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
    const lines = ownLines(r.stderr);
    assert.equal(lines.length, 1, `one line, got: ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0]!, new RegExp(`^dplens ${name}: unknown flag --no-such-flag-xyz`));
    assert.equal(r.stdout, '');
  });
}

test('spawned: a command with an unknown flag exits 2 with one line and nothing on stdout', () => {
  const r = dplens('report', '--no-such-flag-xyz');
  assert.equal(r.code, 2);
  assert.deepEqual(ownLines(r.stderr), ['dplens report: unknown flag --no-such-flag-xyz (see --help)']);
  assert.equal(r.stdout, '');
});

test('an unknown command exits 2 with one line', () => {
  const r = dplens('frobnicate', '--json');
  assert.equal(r.code, 2);
  assert.deepEqual(ownLines(r.stderr), ['dplens: unknown command "frobnicate" (try dplens --help)']);
  assert.equal(r.stdout, '');
});

test('dplens report: --json prints one JSON object naming the report; bad folders exit 2', () => {
  const dir = makeFixtureRun();
  try {
    const r = dplens('report', '--run', dir, '--json');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'exactly one line on stdout');
    const obj = JSON.parse(lines[0]!) as { report: string };
    assert.equal(obj.report, join(dir, 'report.html'));
    assert.ok(existsSync(obj.report));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const missing = dplens('report', '--run', join(dir, 'nope'));
  assert.equal(missing.code, 2);
  assert.equal(ownLines(missing.stderr).length, 1);
  assert.match(missing.stderr, /^dplens report: run folder ".*nope" does not exist/);
  const none = dplens('report');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^dplens report: --run DIR is required/);
  const noValue = dplens('report', '--run');
  assert.equal(noValue.code, 2);
  assert.match(noValue.stderr, /^dplens report: flag --run needs a value/);
});

test('dplens demo rejects bad input before doing any work', async () => {
  const short = await dplensInProcess('demo', '--minutes', '1');
  assert.equal(short.code, 2);
  assert.equal(short.stderr, 'dplens demo: --minutes must be >= 2, got 1\n');
  const only = await dplensInProcess('demo', '--only', 'audit');
  assert.equal(only.code, 2);
  assert.equal(only.stderr, 'dplens demo: --only must be train or synth, got "audit"\n');
  const eps = await dplensInProcess('demo', '--epsilon', '0');
  assert.equal(eps.code, 2);
  assert.equal(eps.stderr, 'dplens demo: --epsilon must be > 0, got 0\n');
  const dir = makeFixtureRun();
  try {
    const busy = await dplensInProcess('demo', '--out', dir);
    assert.equal(busy.code, 2);
    assert.match(busy.stderr, /^dplens demo: --out .* is not empty: choose a new folder\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
