/**
 * Secure aggregation over loopback WebSockets at scale: one round per configuration, default
 * 100 clients × 100,000-dimensional uint32 vectors with 0 %, 10 % and 30 % of the clients crashing
 * after sharing their keys (the case where the server must reconstruct their mask keys).
 * Prints one JSON line per configuration: sumCorrect, survivors, bytesPerClient, expansion,
 * roundSeconds (keys → unmasked sum; all parties share this process's one thread), seconds.
 *
 *   npm run bench:fed                       # 100 × 100k at 0, 0.1, 0.3
 *   node --import tsx bench/fed-secagg.ts --clients 20 --dim 10000 --dropouts 0,0.3
 *   node --import tsx bench/fed-secagg.ts --neighbors 68      # SecAgg+: masks along a k-regular graph
 *
 * Without --neighbors the protocol's default is used (complete graph up to 2k clients, SecAgg+ above;
 * secagg-graph.ts); --neighbors K forces K (N − 1 = the complete graph, Bonawitz et al.).
 */
import { loadavg } from 'node:os';
import { secureRandom } from '../src/privacy/index.js';
import { simulateSecAgg } from '../src/federated/simulate-secagg.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const clients = Number(arg('clients', '100'));
const dim = Number(arg('dim', '100000'));
const dropouts = arg('dropouts', '0,0.1,0.3').split(',').map(Number);
const neighborsArg = arg('neighbors', '');
const neighbors = neighborsArg === '' ? undefined : Number(neighborsArg);
if (neighbors !== undefined && !(Number.isInteger(neighbors) && neighbors >= 1 && neighbors <= clients - 1)) {
  process.stderr.write(`bench:fed: --neighbors must be an integer in [1, ${clients - 1}], got "${neighborsArg}"\n`);
  process.exit(2);
}
for (const dropout of dropouts) {
  const load = loadavg()[0];
  const cpu0 = process.cpuUsage();
  const r = await simulateSecAgg({ clients, dim, dropout, rng: secureRandom(), phaseTimeoutMs: 600_000, ...(neighbors !== undefined ? { neighbors } : {}) });
  const cpu = process.cpuUsage(cpu0);
  // cpuSeconds: CPU time of this process (all parties) — the wall time scales with the CPU share it got.
  process.stdout.write(JSON.stringify({ ...r, dropout, cpuSeconds: (cpu.user + cpu.system) / 1e6, loadAverageAtStart: load }) + '\n');
}
