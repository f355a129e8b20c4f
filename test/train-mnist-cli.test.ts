import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEngine } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { loadMnist } from '../src/data/index.js';
import { main } from '../src/cli/main.js';
import { spawnSync } from 'node:child_process';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND });
});

test('DP-SGD on real MNIST (reference CNN, σ 1.3, C 1.5, 100 steps of q = 240/60000) beats chance by far', async () => {
  const ds = loadMnist();
  const r = await runTraining({ epochs: 0.4, batch: 240, noise: 1.3, clip: 1.5, lr: 0.25, delta: 1e-5, seed: 11 }, { dataOverride: ds });
  assert.equal(r.steps, 100);
  assert.ok(r.testAccuracy! > 0.5, `test accuracy ${r.testAccuracy}`);
  assert.ok(r.epsilon! > 0.2 && r.epsilon! < 0.5, `ε ${r.epsilon}`);
  console.log(`# MNIST 100 steps: test accuracy ${r.testAccuracy}, ε ${r.epsilon?.toFixed(3)}, ${(r.seconds * 1000 / r.steps).toFixed(1)} ms/step`);
});

/** Runs the CLI in-process, capturing stderr (stdout carries the test runner's own protocol). */
async function cli(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const e = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), err };
  } finally {
    process.stderr.write = e;
  }
}

test('dplens train rejects bad input with exit 2 and a one-line message', async () => {
  const base = ['train', '--data', 'mnist', '--epochs', '0.01', '--json'];
  const cases: [string[], RegExp][] = [
    [[...base, '--noise', '-1'], /--noise must be >= 0/],
    [[...base, '--noise', 'abc'], /--noise must be a finite number/],
    [[...base], /give --noise/],
    [[...base, '--noise', '1', '--target-epsilon', '2'], /either --noise or --target-epsilon/],
    [[...base, '--noise', '1', '--batch', '0'], /--batch must be >= 1/],
    [[...base, '--noise', '1', '--batch', '2.5'], /--batch must be an integer/],
    [[...base, '--noise', '1', '--delta', '1'], /--delta must be in \(0, 1\)/],
    [[...base, '--noise', '1', '--privatizer', 'laplace'], /--privatizer must be one of gaussian\|topagg/],
    [[...base, '--noise', '1', '--accountant', 'moments'], /--accountant must be one of rdp\|pld/],
    [[...base, '--noise', '1', '--model', 'resnet'], /--model must be one of cnn\|.*mlp, got "resnet"/],
    [[...base, '--noise', '1', '--clip', '0'], /--clip must be > 0/],
    [[...base, '--noise', '1', '--target-epsilon', '0'], /--target-epsilon must be > 0/],
    [['train', '--data', '/no/such/place', '--noise', '1', '--json'], /no\/such\/place/],
    [['train', '--noise', '1', '--bogus', '1'], /unknown flag --bogus/],
    [['train', '--noise', '1', '--resume'], /--resume needs --out/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')} → exit ${r.code}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dplens-cli-'));
  const big = await cli(['train', '--data', 'mnist', '--noise', '1', '--batch', '70000', '--out', join(dir, 'x'), '--json']);
  assert.equal(big.code, 2);
  assert.match(big.err, /batch must be an integer in \[1, 60000\]/);
});

test('dplens train --json prints one JSON object with epsilon, testAccuracy, seconds, samplesPerSecond', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-cli-'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--data', 'mnist', '--model', 'mlp', '--epochs', '0.02', '--batch', '240', '--noise', '1.3', '--clip', '1.5', '--lr', '0.25', '--delta', '1e-5', '--json', '--seed', '3', '--out', join(dir, 'run')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  for (const k of ['epsilon', 'testAccuracy', 'seconds', 'samplesPerSecond']) assert.equal(typeof j[k], 'number', k);
  assert.equal(j.steps, 5);
  assert.equal(j.randomness, 'seeded');
});
