/**
 * Parties over real loopback WebSockets: one secure-aggregation round with crashing clients, a
 * malformed and an oversized message (rejected with a clear reason; the sender is a dropout, the
 * round goes on), and a client PROCESS killed with SIGKILL mid-round.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { secureRandom } from '../src/privacy/index.js';
import { FedServer } from '../src/federated/server.js';
import { runClient } from '../src/federated/client.js';
import { simulateSecAgg } from '../src/federated/simulate-secagg.js';
import { encode } from '../src/federated/wire.js';
import { spawnedDplens } from './cli-helper.js';

test('secagg over sockets: correct sum of the survivors with 30 % of the clients crashing mid-round', async () => {
  const r = await simulateSecAgg({ clients: 7, dim: 300, dropout: 0.3, rng: secureRandom(), phaseTimeoutMs: 20_000 });
  assert.equal(r.sumCorrect, true);
  assert.equal(r.survivors, 5);
  assert.equal(r.threshold, 5);
  assert.ok(r.expansion > 1 && r.bytesPerClient > 4 * 300);
});

function rawClient(url: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; errors: string[] }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const errors: string[] = [];
    ws.on('message', (d: Buffer) => {
      const n = d.readUInt32BE(0);
      const h = JSON.parse(d.subarray(4, 4 + n).toString());
      if (h.type === 'error') errors.push(h.message);
    });
    const closed = new Promise<{ code: number; errors: string[] }>((res) => ws.on('close', (code) => res({ code, errors })));
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

test('malformed and oversized messages are rejected with a clear error; the good clients aggregate', async () => {
  const dim = 50;
  const server = await FedServer.listen({ maxPayload: 4096, phaseTimeoutMs: 10_000 });
  const joining = server.waitForClients(3, 20_000);
  // A text frame and a header that lies about its length: closed with code 1007 and the reason.
  const bad1 = await rawClient(server.url);
  bad1.ws.send('hello?');
  const c1 = await bad1.closed;
  assert.equal(c1.code, 1007);
  assert.match(c1.errors[0]!, /malformed message .*text frame/);
  const bad2 = await rawClient(server.url);
  const frame = Buffer.alloc(8);
  frame.writeUInt32BE(1000, 0);
  bad2.ws.send(frame, { binary: true });
  assert.match((await bad2.closed).errors[0]!, /header length 1000 exceeds the frame/);
  // Over maxPayload: ws refuses it before buffering it whole (close code 1009).
  const bad3 = await rawClient(server.url);
  bad3.ws.send(Buffer.alloc(10_000), { binary: true });
  assert.equal((await bad3.closed).code, 1009);
  // Unknown type and wrong protocol version.
  const bad4 = await rawClient(server.url);
  bad4.ws.send(encode({ type: 'hello', version: 99 }), { binary: true });
  assert.match((await bad4.closed).errors[0]!, /protocol version 99/);
  const inputs = new Map<number, Uint32Array>();
  const clients = [0, 1, 2].map(() =>
    runClient({
      url: server.url,
      maxPayload: 4096,
      idleTimeoutMs: 20_000,
      computeInput: (r, id) => {
        const x = Uint32Array.from({ length: r.dim }, (_, i) => id * 1000 + i);
        inputs.set(id, x);
        return x;
      },
    }),
  );
  await joining;
  const r = await server.aggregate('t1', { dim });
  for (let i = 0; i < dim; i++) assert.equal(r.sum[i], [...inputs.values()].reduce((s, x) => s + x[i]!, 0));
  await server.close();
  for (const c of await Promise.all(clients)) assert.equal(c.ended, 'done');
});

test('a client process killed with SIGKILL mid-round is a dropout: the round completes without it', async () => {
  const dim = 40;
  const server = await FedServer.listen({ maxPayload: 1 << 20, phaseTimeoutMs: 60_000 });
  const joining = server.waitForClients(4, 90_000);
  const inputs = new Map<number, Uint32Array>();
  const local = [0, 1, 2].map(() =>
    runClient({
      url: server.url,
      maxPayload: 1 << 20,
      idleTimeoutMs: 120_000,
      computeInput: (r, id) => {
        const x = Uint32Array.from({ length: r.dim }, () => id);
        inputs.set(id, x);
        return x;
      },
    }),
  );
  // The fourth party is a real `dplens fed client` process that stops answering once it has
  // shared its keys (it is in U2) and is then killed with SIGKILL.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'fed', 'client', '--url', server.url, '--hold-at', 'masked'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let killed = false;
  child.stderr.on('data', (d: Buffer) => {
    if (!killed && /holding at masked/.test(d.toString())) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  try {
    await joining;
    // Round names end in -<round number>; the child holds in round 1.
    const r = await server.aggregate('kill-1', { dim });
    assert.ok(killed, 'the client process was killed mid-round');
    assert.equal(r.u2.length, 4);
    assert.equal(r.u3.length, 3);
    assert.ok(r.dropouts.some((d) => d.phase === 'masked' && /disconnected/.test(d.reason)));
    for (let i = 0; i < dim; i++) assert.equal(r.sum[i], [...inputs.values()].reduce((s, x) => s + x[i]!, 0));
  } finally {
    if (!killed) child.kill('SIGKILL');
    await server.close();
    await Promise.all(local);
  }
});

test('CLI contract: fed simulate --protocol secagg prints one JSON object with the required fields', () => {
  const dplens = spawnedDplens(120_000);
  const r = dplens('fed', 'simulate', '--protocol', 'secagg', '--clients', '4', '--dim', '64', '--dropout', '0.25', '--json');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  for (const k of ['sumCorrect', 'survivors', 'bytesPerClient', 'expansion', 'seconds']) assert.ok(k in j, k);
  assert.equal(j.sumCorrect, true);
  assert.equal(j.survivors, 3);
  const bad = dplens('fed', 'simulate', '--protocol', 'secagg', '--clients', '4', '--dim', '8', '--epsilon', '1');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--epsilon does not apply to fed simulate secagg/);
});
