/**
 * The issue's comparison over real sockets: DP-SVM averaging (one secure summation) against
 * DP-FedAvg on the SAME split of MNIST into 1,000 users × 50 records, at ε ≈ 0.6 (δ = 1e-5), both
 * through SecAgg+ secure aggregation (each of the 1,000 clients has its own WebSocket connection
 * and keys; all share this process). The split is the same because both runners draw one
 * Fisher–Yates permutation of the 60,000 training indices from seededRandom(--seed) and give user
 * u the block [50(u−1), 50u) (runs/fed-dpsvm.ts, federated/simulate-dpfedavg.ts splitShards).
 * Prints one JSON object: both rows (testAccuracy, epsilon, bytesTotal, seconds, cpuSeconds) and
 * bytesRatio = DP-FedAvg bytes / DP-SVM bytes.
 *
 *   npm run bench:fed-1000
 *   node --import tsx bench/fed-1000.ts --clients 100 --rounds 2      # a quick look
 * Flags: --clients 1000 --per 50 --epsilon 0.6 --rounds 5 (DP-FedAvg) --neighbors K (default
 * SecAgg+'s k) --seed 1 --out /tmp/dplens-fed-1000 --only svm|fedavg --reference (also the DP-SVM
 * average without noise: outside any guarantee, a diagnostic of features vs noise)
 */
import { loadavg } from 'node:os';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runDpSvm } from '../src/runs/fed-dpsvm.js';
import { runDpFedAvg } from '../src/runs/fed.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const clients = Number(arg('clients', '1000'));
const per = Number(arg('per', '50'));
const epsilon = Number(arg('epsilon', '0.6'));
const delta = 1e-5;
const rounds = Number(arg('rounds', '5'));
const seed = Number(arg('seed', '1'));
const only = arg('only', 'both');
const neighbors = process.argv.includes('--neighbors') ? Number(arg('neighbors', '0')) : undefined;
const base = arg('out', '/tmp/dplens-fed-1000');
const log = (l: string) => process.stderr.write(`${l}\n`);
const phaseTimeoutMs = 900_000;
const reference = process.argv.includes('--reference');

async function measured<T>(f: () => Promise<T>): Promise<{ r: T; wallSeconds: number; cpuSeconds: number; loadAverageAtStart: number }> {
  const load = loadavg()[0]!;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await f();
  const cpu = process.cpuUsage(cpu0);
  return { r, wallSeconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, loadAverageAtStart: load };
}

const out: Record<string, unknown> = { clients, examplesPerClient: per, epsilonTarget: epsilon, delta, seed };
let svmBytes: number | undefined;
let fedBytes: number | undefined;
if (only !== 'fedavg') {
  const dir = join(base, 'dp-svm');
  rmSync(dir, { recursive: true, force: true });
  const m = await measured(() => runDpSvm({ data: 'mnist', out: dir, clients, examplesPerClient: per, epsilon, delta, lambda: 0.003, iterations: 700, dropout: 0, seed, phaseTimeoutMs, neighbors, nonPrivateReference: reference, onLog: log }));
  const { testAccuracy, epsilon: eps, bytesTotal, survivors, neighbors: k, nonPrivateAccuracy } = m.r;
  svmBytes = bytesTotal;
  out.dpSvm = { testAccuracy, ...(nonPrivateAccuracy !== undefined ? { nonPrivateAccuracy } : {}), epsilon: eps, bytesTotal, survivors, neighbors: k, rounds: 1, seconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, loadAverageAtStart: m.loadAverageAtStart, runDir: dir };
  log(JSON.stringify(out.dpSvm));
}
if (only !== 'svm') {
  const dir = join(base, 'dp-fedavg');
  rmSync(dir, { recursive: true, force: true });
  const m = await measured(() =>
    runDpFedAvg({ data: 'mnist', out: dir, clients, examplesPerClient: per, rounds, epsilon, delta, clip: 1, localEpochs: 5, batch: 10, lr: 0.5, serverLr: 1, dropout: 0, seed, phaseTimeoutMs, neighbors, onLog: log, onRound: (s) => log(`round ${s.round}: ${s.status}, test accuracy ${(100 * s.testAccuracy).toFixed(2)} %, ${s.seconds.toFixed(1)} s`) }),
  );
  const { testAccuracy, epsilon: eps, bytesTotal, rounds: done, neighbors: k } = m.r;
  fedBytes = bytesTotal;
  out.dpFedAvg = { testAccuracy, epsilon: eps, bytesTotal, rounds: done, neighbors: k, localEpochs: 5, batch: 10, lr: 0.5, clip: 1, seconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, loadAverageAtStart: m.loadAverageAtStart, runDir: dir };
  log(JSON.stringify(out.dpFedAvg));
}
if (svmBytes && fedBytes) out.bytesRatio = fedBytes / svmBytes;
process.stdout.write(JSON.stringify(out) + '\n');
