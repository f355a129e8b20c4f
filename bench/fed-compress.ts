/**
 * Compressed DP-FedAvg uploads on MNIST over loopback WebSockets (issue 17 item 6): one run per
 * compression scheme with the same clients, rounds, ε and seed. Prints one JSON line per scheme:
 * uploadDim (m), bytesPerClientRound (what a client sends per committed round: keys, shares,
 * masked m-vector, unmasking shares), bytesPerRound (all bytes, both directions, all clients),
 * testAccuracy, epsilon, cpuSeconds (this process: all parties), seconds.
 *
 *   npm run bench:fed-compress                                    # 10 clients × 200, 10 rounds, ε 4, R 10
 *   node --import tsx bench/fed-compress.ts --clients 20 --examples 500 --rounds 20 --epsilon 4 --ratio 10 --schemes none,randk
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDpFedAvg } from '../src/runs/fed.js';
import type { CompressScheme } from '../src/federated/compress.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const dir = mkdtempSync(join(tmpdir(), 'dplens-bench-fedcomp-'));
const clients = Number(arg('clients', '10'));
const examplesPerClient = Number(arg('examples', '200'));
const rounds = Number(arg('rounds', '10'));
const epsilon = Number(arg('epsilon', '4'));
const ratio = Number(arg('ratio', '10'));
const seed = Number(arg('seed', '1'));
const schemes = arg('schemes', 'none,randk,topk-shared,sketch,sign').split(',') as CompressScheme[];
for (const scheme of schemes) {
  const cpu0 = process.cpuUsage();
  const r = await runDpFedAvg({ data: 'mnist', out: join(dir, scheme), clients, examplesPerClient, rounds, epsilon, delta: 1e-5, clip: 1, localEpochs: 1, batch: 32, lr: 0.5, serverLr: 1, dropout: 0, seed, compress: { scheme, ratio }, phaseTimeoutMs: 600_000 });
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    JSON.stringify({ scheme, ratio: r.compression.ratio, uploadDim: r.compression.uploadDim, modelDim: r.compression.modelDim, clients, examplesPerClient, rounds: r.rounds, bytesPerClientRound: r.bytesPerClientRound, bytesPerRound: r.bytesPerRound, testAccuracy: r.testAccuracy, epsilon: r.epsilon, cpuSeconds: (cpu.user + cpu.system) / 1e6, seconds: r.seconds }) + '\n',
  );
}
