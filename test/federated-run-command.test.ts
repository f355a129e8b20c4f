/**
 * Federated run folders record the command that made them (issue 17, slice copmlprocs): run.json
 * `attempts[0].command` is the argv after the program name, so the report's reproduce line reads
 * `dplens fed simulate …` (an earlier build recorded `simulate …`, dropping "fed").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandAfterProgram } from '../src/runs/fed.js';
import { runDpSvm } from '../src/runs/fed-dpsvm.js';
import { writeReport } from '../src/report/index.js';
import { dplensInProcess } from './cli-helper.js';

function attemptCommand(dir: string): string[] {
  return (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { attempts: { command: string[] }[] }).attempts[0]!.command;
}

test('commandAfterProgram drops only a leading "dplens"', () => {
  assert.deepEqual(commandAfterProgram(['dplens', 'fed', 'simulate', '--json']), ['fed', 'simulate', '--json']);
  assert.deepEqual(commandAfterProgram(['fed', 'simulate']), ['fed', 'simulate']);
  assert.equal(commandAfterProgram(undefined), undefined);
});

test('dp-fedavg through the CLI: run.json and the report say "dplens fed simulate …"', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-fedcmd-')), 'run');
  const args = ['fed', 'simulate', '--protocol', 'dp-fedavg', '--data', 'mnist', '--clients', '3', '--examples-per-client', '20', '--rounds', '1', '--epsilon', '30', '--batch', '20', '--seed', '9', '--out', dir, '--json'];
  const r = await dplensInProcess(...args);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(attemptCommand(dir), args);
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /dplens fed simulate --protocol dp-fedavg --data mnist/);
});

test('dp-svm: run.json records "fed simulate …" from the argv the CLI passes', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-fedcmd-')), 'run');
  const argv = ['dplens', 'fed', 'simulate', '--protocol', 'dp-svm', '--data', 'mnist', '--clients', '3', '--epsilon', '2', '--out', dir];
  await runDpSvm({ data: 'mnist', out: dir, clients: 3, examplesPerClient: 30, epsilon: 2, delta: 1e-5, lambda: 0.01, iterations: 20, dropout: 0, seed: 5, featureNetTrainLimit: 600, featureNetEpochs: 1, testLimit: 200, argv });
  assert.deepEqual(attemptCommand(dir), argv.slice(1));
  const html = readFileSync(await writeReport(dir), 'utf8');
  assert.match(html, /dplens fed simulate --protocol dp-svm --data mnist/);
});
