/**
 * DP-FedAvg (dpfedavg.ts) between a real WebSocket server and N clients on loopback, all in this
 * process (each client has its own connection, keys and RandomSource; only the event loop is
 * shared). The caller's `record` is called once per round, after the survivor set is fixed and
 * BEFORE unmasking (the runner passes the ledger's tryRecord there): the model is updated only
 * from a sum whose release is already in the ledger. A round that aborts after `record` (too few
 * unmasking answers) stays charged — budget is never lost, and no round is recorded twice.
 *
 * Compression (compress.ts): the server draws a public seed per round (and, for topk-shared, the
 * support from the previous global update) and sends the plan with the round; every client
 * uploads its clipped, noised COMPRESSED vector (length m) into secure aggregation and keeps its
 * error-feedback residual; the server decompresses the noisy average (post-processing).
 *
 * Crash safety: after each committed round `onCommit` gets the round index, the model and the
 * public previous update (the runner persists them atomically); `start` continues from such a
 * state. A round charged by `record` but not committed before a crash stays charged (the ledger is
 * on disk first) and is redone under a new charge; a committed round is never charged again.
 */
import type { DpEvent, RandomSource } from '../privacy/index.js';
import { randomInt } from '../privacy/index.js';
import { runClient, type ClientResult, type DiePhase } from './client.js';
import { accuracy, ddgRoundEvent, decodeAverage, encodeClientUpdate, localUpdate, newModel, type DdgParams, type LabeledVectors, type LinearModel, type LocalTraining } from './dpfedavg.js';
import { SecAggError, defaultThreshold } from './secagg.js';
import { ErrorFeedback, compress, decompress, planFromInfo, planInfo, planRound, type CompressPlan, type CompressScheme, type CompressSpec } from './compress.js';
import { FedServer } from './server.js';

export interface DpFedAvgSimOptions {
  train: LabeledVectors;
  test: LabeledVectors;
  features: number;
  classes: number;
  clients: number;
  /** Examples per client (default: the training set split evenly). */
  examplesPerClient?: number;
  rounds: number;
  local: LocalTraining;
  serverLr: number;
  ddg: Omit<DdgParams, 'dim'>;
  phaseTimeoutMs?: number;
  /** Randomness of the data split (server side, simulation only). */
  splitRandom: RandomSource;
  /** Each client's own randomness (local SGD order, rounding, noise). */
  clientRandom: (id: number) => RandomSource;
  /** Records the round's release; must throw (e.g. BudgetError) to refuse it. */
  record: (event: DpEvent, meta: Record<string, unknown>) => void;
  dieAt?: (id: number, round: string) => DiePhase | undefined;
  onRound?: (r: RoundSummary) => void;
  log?: (line: string) => void;
  /** Serve clients that run elsewhere (`dplens fed client`) on this port instead of starting them here. */
  external?: { host: string; port: number };
  /** Upload compression (default none). */
  compress?: CompressSpec;
  /** Public per-round seeds of the compression plans (server side; not noise). */
  planRandom?: RandomSource;
  /** Continue after committed round `round` (resume): the model then and the previous global update. */
  start?: { round: number; params: Float64Array; previousUpdate?: Float64Array };
  /** Called after each committed round, before the next starts (the runner persists it). */
  onCommit?: (c: { round: number; params: Float64Array; previousUpdate: Float64Array }) => void;
  /** Tests: after recording round N, stop (log "holding after charging round N") and wait to be killed. */
  holdAfterCharge?: number;
  /** SecAgg+ neighbours per client (default: complete graph). The noise is calibrated to `threshold` survivors either way. */
  neighbors?: number;
}

export interface RoundSummary {
  round: number;
  survivors: number;
  threshold: number;
  testAccuracy: number;
  /** 'ok', or why the round was aborted (nothing revealed, model unchanged). */
  status: string;
  seconds: number;
}

export interface DpFedAvgSimResult {
  model: LinearModel;
  testAccuracy: number;
  roundsCompleted: number;
  roundsAborted: number;
  /** Rounds whose release was recorded (completed + aborted after recording). */
  roundsRecorded: number;
  threshold: number;
  /** All bytes on the wire, both directions, all clients. */
  bytesTotal: number;
  /** Mean bytes a client sent per completed round. */
  bytesPerClientRound: number;
  /** All bytes on the wire (both directions, all clients) per round played. */
  bytesPerRound: number;
  /** Length m of each upload vector (d without compression). */
  uploadDim: number;
  perRound: RoundSummary[];
  stoppedBy: 'rounds' | 'budget' | 'clients';
  seconds: number;
}

/** Contiguous blocks of a random permutation: shard k (1-based) for client id k. */
export function splitShards(data: LabeledVectors, features: number, n: number, per: number | undefined, rng: RandomSource): LabeledVectors[] {
  const perm = Array.from({ length: data.count }, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const m = per ?? Math.floor(data.count / n);
  if (m < 1 || m * n > data.count) throw new RangeError(`cannot give ${n} clients ${m} examples each from ${data.count}`);
  return Array.from({ length: n }, (_, k) => {
    const x = new Float32Array(m * features);
    const labels = new Int32Array(m);
    for (let q = 0; q < m; q++) {
      const i = perm[k * m + q]!;
      x.set(data.x.subarray(i * features, (i + 1) * features), q * features);
      labels[q] = data.labels[i]!;
    }
    return { x, labels, count: m };
  });
}

export async function simulateDpFedAvg(o: DpFedAvgSimOptions): Promise<DpFedAvgSimResult> {
  const t0 = performance.now();
  const model = newModel(o.features, o.classes);
  const modelDim = model.params.length;
  if (o.start) {
    if (o.start.params.length !== modelDim) throw new RangeError(`resume state has ${o.start.params.length} parameters, the model ${modelDim}`);
    model.params.set(o.start.params);
  }
  const spec: CompressSpec = o.compress ?? { scheme: 'none', ratio: 1 };
  let previousUpdate = o.start?.previousUpdate ?? new Float64Array(modelDim);
  const firstPlan = planRound(spec, modelDim, o.ddg.clip, 0, previousUpdate);
  const dim = firstPlan.m;
  const ddg: DdgParams = { ...o.ddg, dim };
  const shards = splitShards(o.train, o.features, o.clients, o.examplesPerClient, o.splitRandom);
  const maxPayload = 8 * modelDim + (1 << 20);
  const T = o.phaseTimeoutMs ?? 120_000;
  const server = await FedServer.listen({ maxPayload, phaseTimeoutMs: T, log: o.log, ...(o.external ?? {}) });
  if (o.external) o.log?.(`server listening on ${server.url}, waiting for ${o.clients} clients`);
  const threshold = defaultThreshold(o.clients);
  const clientRngs = new Map<number, RandomSource>();
  const runs: Promise<ClientResult>[] = [];
  for (let k = 0; k < (o.external ? 0 : o.clients); k++) {
    runs.push(
      runClient({
        url: server.url,
        maxPayload,
        idleTimeoutMs: T * 5,
        dieAt: o.dieAt,
        computeInput: (r, id) => clientInput(r.payload, r.info, shards[id - 1]!, model, ddg, rngOf(id), efOf(id), spec.scheme),
      }).catch((e: Error) => ({ id: 0, rounds: 0, bytesSent: 0, bytesReceived: 0, ended: e.message })),
    );
  }
  const efs = new Map<number, ErrorFeedback>();
  const efOf = (id: number) => {
    let e = efs.get(id);
    if (!e) efs.set(id, (e = new ErrorFeedback()));
    return e;
  };
  const rngOf = (id: number) => {
    let r = clientRngs.get(id);
    if (!r) clientRngs.set(id, (r = o.clientRandom(id)));
    return r;
  };
  const perRound: RoundSummary[] = [];
  let stoppedBy: DpFedAvgSimResult['stoppedBy'] = 'rounds';
  let recorded = 0;
  let sentInCompleted = 0;
  let bytesTotal = 0;
  try {
    // a loaded machine may take minutes to open 1,000 connections: allow at least a phase timeout
    await server.waitForClients(o.clients, o.external ? 600_000 : Math.max(60_000, T));
    const event = ddgRoundEvent(ddg, threshold);
    for (let round = (o.start?.round ?? 0) + 1; round <= o.rounds; round++) {
      const tr = performance.now();
      const id = `round-${round}`;
      const before = new Map(server.traffic().map((x) => [x.id, x.clientSent]));
      if (server.connectedIds.length < threshold) {
        stoppedBy = 'clients';
        break;
      }
      let status = 'ok';
      let survivors = 0;
      try {
        const params32 = Float32Array.from(model.params);
        const seed = o.planRandom ? o.planRandom.nextUint32() : round;
        const plan = planRound(spec, modelDim, ddg.clip, seed, previousUpdate);
        const r = await server.aggregate(id, {
          dim,
          threshold,
          ...(o.neighbors !== undefined ? { neighbors: o.neighbors } : {}),
          info: { protocol: 'dp-fedavg', lr: o.local.lr, epochs: o.local.epochs, batch: o.local.batch, clip: ddg.clip, scaleBits: ddg.scaleBits, sigma: ddg.sigma, compress: planInfo(plan, spec, seed) },
          payload: new Uint8Array(params32.buffer),
          beforeUnmask: (u3) => {
            o.record(event, { round, survivors: u3.length, threshold, clients: o.clients, ddgSigma: ddg.sigma, clip: ddg.clip, scaleBits: ddg.scaleBits, dim, ...(spec.scheme !== 'none' ? { compress: spec.scheme, modelDim } : {}) });
            recorded++;
            if (o.holdAfterCharge === round) {
              o.log?.(`holding after charging round ${round}`);
              return new Promise<never>(() => undefined);
            }
          },
        });
        survivors = r.u3.length;
        const avg = decompress(plan, decodeAverage(r.sum, ddg, survivors));
        previousUpdate = Float64Array.from(avg, (x) => o.serverLr * x);
        for (let j = 0; j < modelDim; j++) model.params[j]! += previousUpdate[j]!;
        o.onCommit?.({ round, params: model.params, previousUpdate });
        for (const x of server.traffic()) if (r.u3.includes(x.id)) sentInCompleted += x.clientSent - (before.get(x.id) ?? 0);
      } catch (e) {
        if ((e as Error).name === 'BudgetError') {
          stoppedBy = 'budget';
          o.log?.(`round ${round}: ${(e as Error).message}`);
          break;
        }
        if (!(e instanceof SecAggError)) throw e;
        status = `aborted: ${e.message}`;
      }
      const s: RoundSummary = { round, survivors, threshold, testAccuracy: accuracy(model, o.test), status, seconds: (performance.now() - tr) / 1000 };
      perRound.push(s);
      o.onRound?.(s);
    }
  } finally {
    const traffic = server.traffic();
    await server.close({ rounds: perRound.length });
    await Promise.all(runs);
    bytesTotal = traffic.reduce((s, x) => s + x.clientSent + x.serverSent, 0);
  }
  const completed = perRound.filter((r) => r.status === 'ok');
  const survivorRounds = completed.reduce((s, r) => s + r.survivors, 0);
  return {
    model,
    testAccuracy: accuracy(model, o.test),
    roundsCompleted: completed.length,
    roundsAborted: perRound.length - completed.length,
    roundsRecorded: recorded,
    threshold,
    bytesTotal,
    bytesPerClientRound: survivorRounds ? Math.round(sentInCompleted / survivorRounds) : 0,
    bytesPerRound: perRound.length ? Math.round(bytesTotal / perRound.length) : 0,
    uploadDim: dim,
    perRound,
    stoppedBy,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * One client's round: local training from the broadcast model, error feedback and compression
 * (plan from the round info), then the DDG encoding of the compressed vector (dimension ddg.dim = m).
 */
export function clientInput(payload: Uint8Array, info: Record<string, unknown>, shard: LabeledVectors, shape: LinearModel, ddg: DdgParams, rng: RandomSource, ef?: ErrorFeedback, expect?: CompressScheme): Uint32Array {
  const d = shape.params.length;
  if (payload.length !== 4 * d) throw new SecAggError(`model broadcast has ${payload.length} bytes, expected ${4 * d}`);
  // A client checks the public parameters it is asked to use: less noise than agreed would void the guarantee.
  if (info.sigma !== ddg.sigma || info.clip !== ddg.clip || info.scaleBits !== ddg.scaleBits) throw new SecAggError('round parameters differ from the agreed clip/scale/noise; refusing');
  let plan: CompressPlan;
  try {
    plan = planFromInfo(info.compress, d, ddg.clip, expect);
  } catch (e) {
    throw new SecAggError((e as Error).message);
  }
  if (plan.m !== ddg.dim) throw new SecAggError(`round asks for ${ddg.dim} values but its compression plan has ${plan.m}`);
  const start = Float64Array.from(new Float32Array(payload.buffer, payload.byteOffset, d));
  const local = { epochs: Number(info.epochs), batch: Number(info.batch), lr: Number(info.lr) };
  const update = localUpdate(shape, start, shard, local, rng);
  if (plan.scheme === 'none' && !ef) return encodeClientUpdate(update, ddg, rng);
  const v = ef ? ef.corrected(update) : update;
  const y = compress(plan, v);
  ef?.carry(plan, v, y);
  // clipAndRound (inside the encoding) clips the COMPRESSED vector to ‖y‖ <= c: the bound holds whatever v is
  return encodeClientUpdate(y, ddg, rng);
}
