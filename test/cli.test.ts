/**
 * The CLI contract shared by every command: --help exits 0 and shows examples; bad input exits 2
 * with exactly one line on stderr; --json prints exactly one JSON object on stdout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeFixtureRun } from './report-fixture.js';
import { dplensInProcess, spawnedDplens } from './cli-helper.js';

const MAIN = join('src', 'cli', 'main.ts');

const dplens = spawnedDplens(60_000);
// The per-command matrix below runs main() in this process (dplensInProcess): spawning would cost
// a Node + tsx start-up per case. The process-level contract is covered by the spawned tests.

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

test('ε ≤ 0 is rejected by every command that takes a budget, with one line naming the flag', async () => {
  const cases: [string[], string][] = [
    [['synth', '--data', 'mnist', '--epsilon', '0', '--out', 'runs/never'], 'dplens synth: --epsilon must be > 0, got 0\n'],
    [['synth', '--data', 'mnist', '--epsilon', '-1', '--out', 'runs/never'], 'dplens synth: --epsilon must be > 0, got -1\n'],
    [['train', '--target-epsilon', '0'], 'dplens train: --target-epsilon must be > 0, got 0\n'],
    [['train', '--target-epsilon', '-3'], 'dplens train: --target-epsilon must be > 0, got -3\n'],
    [['account', '--target-epsilon', '0', '--sample-rate', '0.01', '--steps', '10', '--delta', '1e-5'], 'dplens account: --target-epsilon must be > 0, got 0\n'],
    [['demo', '--epsilon', '-0.5'], 'dplens demo: --epsilon must be > 0, got -0.5\n'],
  ];
  for (const [argv, message] of cases) {
    const r = await dplensInProcess(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.stderr, message);
    assert.equal(r.stdout, '');
  }
});

test('dplens eval: a bad synthetic npz exits 2 with one line naming the file and the problem', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { writeNpz } = await import('../src/data/index.js');
  const { findPneumoniaNpz } = await import('../src/data/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'dplens-eval-bad-'));
  const n = 12;
  const images = { dtype: 'uint8' as const, shape: [n, 28, 28], data: new Uint8Array(n * 784) };
  const labels = Array.from({ length: n }, (_, i) => i % 2);
  const file = (name: string, arrays: Parameters<typeof writeNpz>[1]): string => {
    const f = join(dir, name);
    writeNpz(f, arrays);
    return f;
  };
  try {
    const cases: [string, RegExp][] = [
      [file('range.npz', { images, labels: { dtype: 'int64', shape: [n], data: labels.map((y, i) => (i === 5 ? 2 : y)) } }), /range\.npz:labels: label 2 at index 5 out of range \[0, 2\)$/],
      [file('neg.npz', { images, labels: { dtype: 'int32', shape: [n], data: labels.map((y, i) => (i === 3 ? -1 : y)) } }), /neg\.npz:labels: label -1 at index 3 out of range \[0, 2\)$/],
      [file('count.npz', { images, labels: { dtype: 'uint8', shape: [n - 1], data: labels.slice(1) } }), /count\.npz:labels: count mismatch: 11 labels for 12 images in images$/],
      [file('shape.npz', { images: { dtype: 'uint8', shape: [n, 32, 32], data: new Uint8Array(n * 1024) }, labels: { dtype: 'uint8', shape: [n], data: labels } }), /shape\.npz:images: shape mismatch: images are 32×32×1 \(H×W×C\), expected 28×28×1$/],
      [file('nan.npz', { images: { dtype: 'float32', shape: [n, 28, 28], data: Float32Array.from({ length: n * 784 }, (_, i) => (i === 9 ? Number.POSITIVE_INFINITY : 0.5)) }, labels: { dtype: 'uint8', shape: [n], data: labels } }), /nan\.npz:images: Inf pixel value at flat index 9$/],
      [file('keys.npz', { x: images }), /keys\.npz: .*images/],
      [file('empty.npz', { images: { dtype: 'uint8', shape: [0, 28, 28], data: new Uint8Array(0) }, labels: { dtype: 'uint8', shape: [0], data: [] } }), /empty\.npz: no synthetic images to train on$/],
      [join(dir, 'missing.npz'), /missing\.npz: cannot read \(ENOENT\)$/],
    ];
    const { writeFileSync } = await import('node:fs');
    const notZip = join(dir, 'notzip.npz');
    writeFileSync(notZip, 'hello, not a zip');
    cases.push([notZip, /notzip\.npz: not a zip\/\.npz archive \(wrong magic number/]);
    const data = findPneumoniaNpz() ? ['--data', 'pneumonia'] : undefined;
    if (!data) return; // the real test set is needed to know the class count
    for (const [f, re] of cases) {
      const r = await dplensInProcess('eval', '--synthetic', f, ...data, '--epochs', '1', '--json');
      assert.equal(r.code, 2, `${f}: ${r.stderr}`);
      assert.equal(ownLines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr.trim(), new RegExp(`^dplens eval: (/\\S*/)?${re.source}`));
      assert.equal(r.stdout, '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dplens synth records its exact command line (argv) in config.json, and the report shows it', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { findPneumoniaNpz } = await import('../src/data/index.js');
  if (!findPneumoniaNpz()) return;
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-synth-argv-')), 'run');
  try {
    const argv = ['synth', '--data', 'pneumonia', '--epsilon', '5', '--teachers', '10', '--samples', '20', '--steps', '1', '--out', dir, '--seed', '3', '--threads', '1', '--json'];
    const r = dplens(...argv);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { argv: string[] };
    assert.deepEqual(config.argv, ['dplens', ...argv]);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.ok(html.includes(`dplens ${argv.join(' ')}`), 'report shows the command line');
  } finally {
    rmSync(dirname(dir), { recursive: true, force: true });
  }
});

test('spawned: a reader that closes the pipe early (dplens … | true) is not an error', () => {
  const r = spawnSync('bash', ['-c', `"${process.execPath}" --import tsx ${MAIN} account --noise 1.1 --sample-rate 0.004 --steps 100 --delta 1e-5 | true; echo "status \${PIPESTATUS[0]}" >&2`], { encoding: 'utf8', timeout: 60_000 });
  assert.match(r.stderr, /status 0\n$/);
  assert.doesNotMatch(r.stderr, /EPIPE|Unhandled|internal error/);
});

test('dplens synth --method M --help lists only M\'s flags with M\'s help and M\'s relation', async () => {
  const { GENERATORS } = await import('../src/generate/index.js');
  const general = await dplensInProcess('synth', '--help');
  // The general description names each method's own relation, never one relation for all.
  for (const p of GENERATORS) assert.ok(general.stdout.includes(`${p.name} [${p.relation}]:`), `${p.name}'s relation named`);
  assert.ok(!/accounting under the replace-one neighbouring relation/.test(general.stdout), 'no blanket replace-one claim');
  for (const p of GENERATORS) {
    for (const argv of [['--method', p.name, '--help'], [`--method=${p.name}`, '-h']]) {
      const r = await dplensInProcess('synth', ...argv);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: dplens synth --method ${p.name}\\b`, 'm'));
      assert.ok(r.stdout.includes(`Neighbouring relation of its proof: ${p.relation}.`), `${p.name} relation`);
      const listed = new Set([...r.stdout.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]!));
      for (const h of p.hyperParameters) {
        assert.ok(listed.has(h.flag), `${p.name} lists --${h.flag}`);
        const line = r.stdout.split('\n').find((l) => l.startsWith(`  --${h.flag} `))!;
        assert.ok(line.endsWith(h.help), `--${h.flag} shows ${p.name}'s own help`);
      }
      for (const other of GENERATORS)
        for (const h of other.hyperParameters)
          if (!p.hyperParameters.some((o) => o.flag === h.flag)) assert.ok(!listed.has(h.flag), `${p.name} help omits ${other.name}'s --${h.flag}`);
    }
  }
});
