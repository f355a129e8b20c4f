/**
 * COPML with every party a real OS process (issue 17 #5, slice copmlprocs): `dplens fed server
 * --protocol copml` and N × `dplens fed client --protocol copml --shard k --shards N` on loopback,
 * on a small Adult file (1,500 rows). One client holds before answering iteration 1 and is
 * SIGKILLed: with N = 5 (K = 1, T = 1: 4 results needed) the run completes on the other four and
 * its model equals the in-process simulation's on the same partition (decoding is exact); with
 * N = 4 (4 needed) the server stops with a one-line error, exit status 1, and writes no model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCopml } from '../src/runs/fed-copml.js';

const ADULT = join(import.meta.dirname, '..', '..', 'shared', 'data', 'adult', 'adult.train.csv');

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function dplens(args: string[], onStderr?: (all: string, p: Proc) => void): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', join('src', 'cli', 'main.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DPLENS_DEBUG: '' } });
  const p: Proc = { child, stdout: '', stderr: '', done: undefined as never };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (p.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    p.stderr += s;
    onStderr?.(p.stderr, p);
  });
  p.done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return p;
}

function smallAdult(dir: string): string {
  const path = join(dir, 'adult-small.csv');
  writeFileSync(path, readFileSync(ADULT, 'utf8').split('\n').slice(0, 1501).join('\n') + '\n');
  return path;
}

/** Starts the server and N clients (client `holder` holds at iteration 1 and is SIGKILLed once it says so). */
async function federation(n: number, holder: number, dir: string, csv: string): Promise<{ server: Proc; clients: Proc[] }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const out = join(dir, `run-${n}`);
  const server = dplens(['fed', 'server', '--protocol', 'copml', '--data', 'adult', '--data-path', csv, '--clients', String(n), '--rounds', '4', '--fit-range', '5', '--port', String(port), '--phase-timeout', '60', '--out', out, '--json']);
  const clients = Array.from({ length: n }, (_, k) =>
    dplens(['fed', 'client', '--protocol', 'copml', '--url', `ws://127.0.0.1:${port}`, '--data', 'adult', '--data-path', csv, '--shard', String(k + 1), '--shards', String(n), ...(k + 1 === holder ? ['--hold-at', 'masked'] : [])], (all, p) => {
      if (/holding at iteration 1/.test(all)) p.child.kill('SIGKILL');
    }),
  );
  await Promise.all([server.done, ...clients.map((c) => c.done)]);
  return { server, clients };
}

test('copml as separate processes: a party SIGKILLed mid-run is a dropout when N exceeds the results needed; the model equals the in-process run', { skip: !existsSync(ADULT) && 'Adult not found' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'copml-procs-'));
  const csv = smallAdult(dir);
  const { server, clients } = await federation(5, 5, dir, csv);
  assert.equal((await server.done).code, 0, server.stderr);
  const r = JSON.parse(server.stdout) as { testAccuracy: number; epsilon: null; plaintextTestAccuracy: null; rounds: number; resultsNeeded: number; respondersPerIteration: number[]; trainRows: number; transport: string };
  assert.equal(r.epsilon, null);
  assert.equal(r.rounds, 4);
  assert.equal(r.resultsNeeded, 4);
  assert.equal(r.transport, 'separate processes');
  assert.equal(r.trainRows, 1200, 'the parties declared the 1,200 training rows between them');
  assert.equal(r.plaintextTestAccuracy, null, 'the server holds no training row, so no plaintext reference');
  assert.ok(r.respondersPerIteration.every((k) => k === 4), `${r.respondersPerIteration}`);
  for (let k = 0; k < 4; k++) assert.equal((await clients[k]!.done).code, 0, clients[k]!.stderr);
  assert.equal((await clients[4]!.done).signal, 'SIGKILL');
  const run = JSON.parse(readFileSync(join(dir, 'run-5', 'run.json'), 'utf8')) as { attempts: { command: string[]; stoppedBy: string }[]; result: unknown };
  assert.deepEqual(run.attempts[0]!.command.slice(0, 4), ['fed', 'server', '--protocol', 'copml']);
  assert.equal(run.attempts[0]!.stoppedBy, 'done');
  assert.ok(existsSync(join(dir, 'run-5', 'report.html')));
  assert.ok(!existsSync(join(dir, 'run-5', 'ledger.jsonl')));
  // Decoding is exact and the partition is the same: the in-process run gives the same model.
  const sim = await runCopml({ data: 'adult', dataPath: csv, out: join(dir, 'sim'), clients: 5, colluding: 1, rounds: 4, degree: 1, lr: 2, fitRange: 5, lx: 8, lw: 10, lc: 8 });
  const wProcs = (JSON.parse(readFileSync(join(dir, 'run-5', 'model.json'), 'utf8')) as { weights: number[] }).weights;
  const wSim = (JSON.parse(readFileSync(join(dir, 'sim', 'model.json'), 'utf8')) as { weights: number[] }).weights;
  assert.deepEqual(wProcs, wSim);
  assert.equal(r.testAccuracy, sim.testAccuracy);
  assert.ok(Math.abs(sim.testAccuracy - sim.plaintextApproxTestAccuracy!) <= 0.01, `${sim.testAccuracy} vs plaintext (same polynomial) ${sim.plaintextApproxTestAccuracy}`);
});

test('copml as separate processes: fewer parties than needed → one-line error, exit 1, no model', { skip: !existsSync(ADULT) && 'Adult not found' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'copml-procs-'));
  const { server } = await federation(4, 2, dir, smallAdult(dir));
  assert.equal((await server.done).code, 1);
  const lines = server.stderr.trim().split('\n');
  assert.equal(lines.length, 1, server.stderr);
  assert.match(lines[0]!, /^dplens fed: iteration 1: 3 of 4 parties answered, 4 needed to decode; stopped, no model released$/);
  assert.equal(server.stdout, '');
  assert.ok(!existsSync(join(dir, 'run-4', 'model.json')));
  assert.ok(!existsSync(join(dir, 'run-4', 'report.html')));
  const run = JSON.parse(readFileSync(join(dir, 'run-4', 'run.json'), 'utf8')) as { attempts: { stoppedBy: string }[]; result?: unknown };
  assert.match(run.attempts[0]!.stoppedBy, /^error: iteration 1/);
  assert.equal(run.result, undefined);
});
