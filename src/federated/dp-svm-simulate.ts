/**
 * DP-SVM averaging (dp-svm.ts) between a real WebSocket server and N clients on loopback, all in
 * this process (each client its own connection, keys and RandomSource). ONE secure-aggregation
 * round: each client trains on its shard, encodes model + its discrete Gaussian share; the caller's
 * `record` is called once, after the survivor set is fixed and BEFORE unmasking (the runner passes
 * the ledger's tryRecord), so the averaged model is computed only from a sum whose release is
 * already in the ledger. An abort after `record` stays charged.
 * With `external`, the server serves parties that run elsewhere (`dplens fed client`): it holds no
 * shards, and each party trains on its own data (runs/fed-dpsvm.ts `dpSvmPartyInput`).
 */
import type { DpEvent, RandomSource } from '../privacy/index.js';
import { runClient, type ClientResult, type DiePhase } from './client.js';
import { decodeSvmAverage, encodeSvmShare, svmAccuracy, svmReleaseEvent, trainLocalSvm, type SvmData, type SvmNoiseParams, type SvmTraining } from './dp-svm.js';
import { SecAggError, defaultThreshold } from './secagg.js';
import { FedServer } from './server.js';

export interface DpSvmSimOptions {
  /** One shard per client (already normalised features). */
  shards: SvmData[];
  test: SvmData;
  classes: number;
  training: SvmTraining;
  noise: SvmNoiseParams;
  phaseTimeoutMs?: number;
  clientRandom: (id: number) => RandomSource;
  record: (event: DpEvent, meta: Record<string, unknown>) => void;
  dieAt?: (id: number, round: string) => DiePhase | undefined;
  log?: (line: string) => void;
  /** Serve `clients` parties that run elsewhere on this address instead of starting them here (`shards` unused). */
  external?: { host: string; port: number; clients: number };
  /** Extra public round information for the parties (e.g. records per party, feature-net digest). */
  info?: Record<string, unknown>;
  /** SecAgg+ neighbours per client (default: complete graph). The noise is calibrated to `threshold` survivors either way. */
  neighbors?: number;
}

export interface DpSvmSimResult {
  model: Float64Array | undefined;
  testAccuracy: number;
  survivors: number;
  threshold: number;
  recorded: boolean;
  status: string;
  bytesTotal: number;
  bytesPerClient: number;
  seconds: number;
}

export async function simulateDpSvm(o: DpSvmSimOptions): Promise<DpSvmSimResult> {
  const t0 = performance.now();
  const clients = o.external ? o.external.clients : o.shards.length;
  const dim = o.noise.dim;
  if (dim !== o.classes * o.test.dim) throw new RangeError(`noise dim ${dim} != classes × features ${o.classes * o.test.dim}`);
  const maxPayload = 8 * dim + (1 << 20);
  const T = o.phaseTimeoutMs ?? 120_000;
  const server = await FedServer.listen({ maxPayload, phaseTimeoutMs: T, log: o.log, ...(o.external ? { host: o.external.host, port: o.external.port } : {}) });
  if (o.external) o.log?.(`server listening on ${server.url}, waiting for ${clients} parties`);
  const threshold = defaultThreshold(clients);
  const agreed = { protocol: 'dp-svm', lambda: o.training.lambda, iterations: o.training.iterations, clip: o.noise.clip, scaleBits: o.noise.scaleBits, sigma: o.noise.sigma };
  const runs: Promise<ClientResult>[] = [];
  for (let k = 0; k < (o.external ? 0 : clients); k++) {
    runs.push(
      runClient({
        url: server.url,
        maxPayload,
        idleTimeoutMs: T * 5,
        dieAt: o.dieAt,
        computeInput: (r, id) => {
          // A party checks the public parameters: less noise than agreed would void the guarantee.
          for (const [key, v] of Object.entries(agreed)) if (r.info[key] !== v) throw new SecAggError(`round parameter ${key} differs from the agreed value; refusing`);
          const shard = o.shards[id - 1]!;
          const model = trainLocalSvm(shard, o.classes, o.training);
          return encodeSvmShare(model, o.noise, o.clientRandom(id));
        },
      }).catch((e: Error) => ({ id: 0, rounds: 0, bytesSent: 0, bytesReceived: 0, ended: e.message })),
    );
  }
  let model: Float64Array | undefined;
  let survivors = 0;
  let recorded = false;
  let status = 'ok';
  let bytesTotal = 0;
  let sentBySurvivors = 0;
  try {
    // a loaded machine may take minutes to open 1,000 connections: allow at least a phase timeout
    await server.waitForClients(clients, o.external ? 600_000 : Math.max(120_000, T));
    try {
      const r = await server.aggregate('dp-svm-1', {
        dim,
        threshold,
        ...(o.neighbors !== undefined ? { neighbors: o.neighbors } : {}),
        info: { ...(o.info ?? {}), ...agreed },
        beforeUnmask: (u3) => {
          o.record(svmReleaseEvent(o.noise, threshold), { round: 1, survivors: u3.length, threshold, clients, sigma: o.noise.sigma, clip: o.noise.clip, scaleBits: o.noise.scaleBits, dim, sensitivity: o.noise.sensitivity });
          recorded = true;
        },
      });
      survivors = r.u3.length;
      model = decodeSvmAverage(r.sum, o.noise, survivors);
      for (const x of server.traffic()) if (r.u3.includes(x.id)) sentBySurvivors += x.clientSent;
    } catch (e) {
      if (!(e instanceof SecAggError)) throw e;
      status = `aborted: ${e.message}`;
    }
  } finally {
    const traffic = server.traffic();
    await server.close({ rounds: 1 });
    await Promise.all(runs);
    bytesTotal = traffic.reduce((s, x) => s + x.clientSent + x.serverSent, 0);
  }
  return {
    model,
    testAccuracy: model ? svmAccuracy(model, o.classes, o.test) : 0,
    survivors,
    threshold,
    recorded,
    status,
    bytesTotal,
    bytesPerClient: survivors ? Math.round(sentBySurvivors / survivors) : 0,
    seconds: (performance.now() - t0) / 1000,
  };
}
