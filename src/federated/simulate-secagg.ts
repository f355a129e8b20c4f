/**
 * `dplens fed simulate --protocol secagg`: one secure-aggregation round between a server and N
 * clients, each with its own WebSocket connection and keys, on loopback in this process (the
 * parties only share the event loop; every byte between them crosses a real socket). A fraction
 * `dropout` of the clients crash (socket terminated) after sharing their keys and before sending
 * their masked input — the case where the server must reconstruct their mask keys.
 * Inputs are uniform in [-1, 1]^d, quantised with headroom for N summands.
 * `neighbors` < N − 1 runs SecAgg+ (secagg-graph.ts): masks and shares only along a public random
 * k-regular graph.
 */
import { randomInt } from 'node:crypto';
import type { RandomSource } from '../privacy/index.js';
import { runClient, type ClientResult } from './client.js';
import { headroomScale, quantize } from './quantize.js';
import { FedServer } from './server.js';
import { defaultNeighbors } from './secagg-graph.js';

export interface SecAggSimOptions {
  clients: number;
  dim: number;
  /** Fraction of clients that drop out (0 <= dropout < 1/3 for the round to succeed). */
  dropout: number;
  /** SecAgg+ neighbours per client (default: defaultNeighbors(N); N − 1 = complete graph). */
  neighbors?: number;
  phaseTimeoutMs?: number;
  rng: RandomSource;
  log?: (line: string) => void;
}

export interface SecAggSimResult {
  sumCorrect: boolean;
  clients: number;
  dim: number;
  /** Fewest survivors the round could finish with (n − ⌊n/3⌋). */
  threshold: number;
  /** Neighbours per client (clients − 1: complete graph, Bonawitz et al.; fewer: SecAgg+). */
  neighbors: number;
  /** Shares needed to reconstruct one client's secret (of its neighbours + itself). */
  shamirThreshold: number;
  survivors: number;
  dropouts: number;
  /** Mean bytes a surviving client sent (WebSocket payloads incl. our headers), whole round. */
  bytesPerClient: number;
  /** bytesPerClient / (4 · dim): vs uploading the same uint32 vector in the clear. */
  expansion: number;
  /** Mean bytes the server sent to a surviving client. */
  bytesToClient: number;
  seconds: number;
  /** Time of the round alone (keys → unmasked sum), excluding connection setup. */
  roundSeconds: number;
}

export async function simulateSecAgg(o: SecAggSimOptions): Promise<SecAggSimResult> {
  const t0 = performance.now();
  const { clients: n, dim } = o;
  const maxPayload = 4 * dim + (1 << 20);
  const server = await FedServer.listen({ maxPayload, phaseTimeoutMs: o.phaseTimeoutMs ?? 120_000, log: o.log });
  const round = 'secagg-1';
  const scale = headroomScale(n, 1);
  // Who drops out is decided up front (by id), independent of any input.
  const order = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = n - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const dying = new Set(order.slice(0, Math.round(o.dropout * n)));
  const inputs = new Map<number, Uint32Array>();
  const runs: Promise<ClientResult>[] = [];
  for (let k = 1; k <= n; k++) {
    runs.push(
      runClient({
        url: server.url,
        maxPayload,
        idleTimeoutMs: (o.phaseTimeoutMs ?? 120_000) * 5,
        computeInput: (r, id) => {
          const x = new Float64Array(r.dim);
          for (let i = 0; i < r.dim; i++) x[i] = 2 * o.rng.nextDouble() - 1;
          const q = quantize(x, scale, o.rng);
          inputs.set(id, q);
          return q;
        },
        dieAt: (id, r) => (r === round && dying.has(id) ? 'masked' : undefined),
      }),
    );
  }
  await server.waitForClients(n, Math.max(30_000, o.phaseTimeoutMs ?? 120_000));
  const tr = performance.now();
  const r = await server.aggregate(round, { dim, neighbors: o.neighbors ?? defaultNeighbors(n) });
  const roundSeconds = (performance.now() - tr) / 1000;
  const plain = new Uint32Array(dim);
  for (const id of r.u3) {
    const x = inputs.get(id)!;
    for (let i = 0; i < dim; i++) plain[i] += x[i]!;
  }
  let sumCorrect = true;
  for (let i = 0; i < dim; i++) if (plain[i] !== r.sum[i]) sumCorrect = false;
  const traffic = new Map(server.traffic().map((x) => [x.id, x]));
  await server.close({ round, survivors: r.u3.length });
  await Promise.all(runs);
  const surv = r.u3.map((id) => traffic.get(id)!);
  const bytesPerClient = surv.reduce((s, x) => s + x.clientSent, 0) / surv.length;
  const bytesToClient = surv.reduce((s, x) => s + x.serverSent, 0) / surv.length;
  return {
    sumCorrect,
    clients: n,
    dim,
    threshold: r.threshold,
    neighbors: r.neighbors,
    shamirThreshold: r.shamirThreshold,
    survivors: r.u3.length,
    dropouts: n - r.u3.length,
    bytesPerClient: Math.round(bytesPerClient),
    expansion: bytesPerClient / (4 * dim),
    bytesToClient: Math.round(bytesToClient),
    seconds: (performance.now() - t0) / 1000,
    roundSeconds,
  };
}
