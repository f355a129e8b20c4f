/**
 * dp-svm with the server and the parties as separate network parties (`fed server --protocol
 * dp-svm` + `fed client --protocol dp-svm`): the server holds no training data, each party trains on
 * its own slice, checks the public round parameters (records per party, feature-net digest) and
 * sends its noisy share; one ledger entry, recorded before unmasking.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrivacyLedger } from '../src/privacy/index.js';
import { dpSvmPartyInput, runDpSvm } from '../src/runs/fed-dpsvm.js';
import { runFedClient } from '../src/runs/fed.js';

test('dp-svm server with external parties over sockets: one secure summation, one ledger entry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-svm-parties-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const net = { featureNetTrainLimit: 600, featureNetEpochs: 1 };
  const server = runDpSvm({ data: 'mnist', out: join(dir, 'run'), clients: 3, examplesPerClient: 30, epsilon: 2, delta: 1e-5, lambda: 0.01, iterations: 40, dropout: 0, seed: 5, ...net, testLimit: 300, phaseTimeoutMs: 60_000, external: { host: '127.0.0.1', port } });
  const parties = [1, 2, 3].map(async (shard) => {
    const svmInput = await dpSvmPartyInput({ data: 'mnist', shard, shards: 3, seed: 8, ...net });
    return runFedClient({ url: `ws://127.0.0.1:${port}`, svmInput, timeoutMs: 120_000 });
  });
  const [r, ...ends] = await Promise.all([server, ...parties]);
  for (const e of ends) assert.equal(e.ended, 'done');
  assert.equal(r.survivors, 3);
  assert.ok(r.bytesPerClient > 0);
  const ledger = PrivacyLedger.read(join(dir, 'run', 'ledger.jsonl'));
  assert.equal(ledger.entries.length, 1);
  assert.ok(r.epsilon <= 2);
});

test('a dp-svm party refuses a round whose record count or feature net differs from its own', async () => {
  const svmInput = await dpSvmPartyInput({ data: 'mnist', shard: 1, shards: 3, seed: 8, featureNetTrainLimit: 600, featureNetEpochs: 1 });
  const round = { round: 'dp-svm-1', dim: 10, threshold: 2, payload: new Uint8Array(0) };
  await assert.rejects(svmInput({ ...round, info: { examplesPerClient: 10 ** 6, featureData: 'fashion-mnist', featureNet: 'x' } }), /holds 20000 records, the round assumes 1000000/);
  await assert.rejects(svmInput({ ...round, info: { examplesPerClient: 30, featureData: 'fashion-mnist', featureNet: 'not-the-net' } }), /feature net .* differs from the server's not-the-net/);
});
