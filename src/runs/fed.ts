/**
 * Runner behind `dplens fed simulate`: secure aggregation alone (a figure, no run folder needed)
 * or DP-FedAvg into a run folder (ledger.jsonl owned by the SERVER, config.json, metrics.jsonl,
 * model.json, run.json; the CLI then writes report.html).
 *
 * DP-FedAvg's guarantee is user-level (ε, δ)-DP under REPLACE-ONE of one client's whole dataset;
 * the list of clients, their number, each round's survivor count and the hyper-parameters are
 * public. Each round's release is recorded in the ledger (tryRecord, the only budget gate) after
 * the survivors are known and before the server unmasks the sum.
 */
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, resolveDataFlag } from '../data/index.js';
import { BudgetError, PrivacyLedger, keyedFingerprint, randomFromSeed, seededRandom, secureRandom, type DpEvent, type RandomSource } from '../privacy/index.js';
import { calibrateRounds, ddgNoiseMultiplier, imagesToVectors, maxScaleBits, sigmaForMultiplier } from '../federated/dpfedavg.js';
import { simulateDpFedAvg, type RoundSummary } from '../federated/simulate-dpfedavg.js';
import { simulateSecAgg, type SecAggSimResult } from '../federated/simulate-secagg.js';
import { defaultThreshold } from '../federated/secagg.js';
import { FedServer } from '../federated/server.js';
import { runClient, type ClientResult, type DiePhase, type RoundStart } from '../federated/client.js';
import { clientInput } from '../federated/simulate-dpfedavg.js';
import { newModel, type LabeledVectors } from '../federated/dpfedavg.js';
import { createHash } from 'node:crypto';
import { LEDGER_TIMESTAMPS } from './released.js';
import { writeManifest, type RunManifest } from './manifest.js';

export class FedInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface SecAggJob {
  clients: number;
  dim: number;
  dropout: number;
  seed?: number;
  phaseTimeoutMs?: number;
  onLog?: (line: string) => void;
}

export async function runSecAggSimulation(j: SecAggJob): Promise<SecAggSimResult> {
  if (!(j.dropout >= 0 && j.dropout < 1)) throw new FedInputError(`--dropout must be in [0, 1), got ${j.dropout}`);
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3 for secure aggregation, got ${j.clients}`);
  const t = defaultThreshold(j.clients);
  if (j.clients - Math.round(j.dropout * j.clients) < t) j.onLog?.(`note: ${Math.round(j.dropout * j.clients)} dropouts leave fewer than the threshold ${t}: the round will abort`);
  return simulateSecAgg({ clients: j.clients, dim: j.dim, dropout: j.dropout, rng: randomFromSeed(j.seed), phaseTimeoutMs: j.phaseTimeoutMs, log: j.onLog });
}

export interface DpFedAvgJob {
  data: string;
  dataPath?: string;
  out: string;
  clients: number;
  examplesPerClient?: number;
  rounds: number;
  epsilon: number;
  delta: number;
  clip: number;
  localEpochs: number;
  batch: number;
  lr: number;
  serverLr: number;
  /** Fraction of clients that crash in each round (after sharing keys), simulation only. */
  dropout: number;
  seed?: number;
  phaseTimeoutMs?: number;
  argv?: string[];
  /** `dplens fed server`: serve external clients on this address instead of starting them here. */
  external?: { host: string; port: number };
  onLog?: (line: string) => void;
  onRound?: (r: RoundSummary & { epsilon: number }) => void;
}

export interface DpFedAvgJobResult {
  testAccuracy: number;
  epsilon: number;
  delta: number;
  rounds: number;
  roundsAborted: number;
  clients: number;
  threshold: number;
  noiseMultiplier: number;
  ddgSigma: number;
  bytesTotal: number;
  bytesPerClientRound: number;
  stoppedBy: string;
  relation: 'replace-one';
  randomness: 'secure' | 'seeded';
  datasetFingerprint: string;
  seconds: number;
  runDir: string;
}

export async function runDpFedAvg(j: DpFedAvgJob): Promise<DpFedAvgJobResult> {
  const t0 = Date.now();
  if (!(j.epsilon > 0 && Number.isFinite(j.epsilon))) throw new FedInputError(`--epsilon must be a finite number > 0, got ${j.epsilon}`);
  if (!(j.delta > 0 && j.delta < 1)) throw new FedInputError(`--delta must be in (0, 1), got ${j.delta}`);
  if (!(j.dropout >= 0 && j.dropout < 1 / 3)) throw new FedInputError(`--dropout must be in [0, 1/3) for DP-FedAvg (more would abort every round), got ${j.dropout}`);
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3, got ${j.clients}`);
  const data = loadDataset(resolveDataFlag(j.data, j.dataPath));
  const features = data.height * data.width * data.channels;
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const outDir = resolve(j.out);
  const ledgerPath = join(outDir, 'ledger.jsonl');
  if (existsSync(ledgerPath)) throw new FedInputError(`${ledgerPath} already exists: use a new --out folder`);
  mkdirSync(outDir, { recursive: true });
  const threshold = defaultThreshold(j.clients);
  const cal = calibrateRounds(j.epsilon, j.delta, j.rounds);
  const dim = data.numClasses * features + data.numClasses;
  const scaleBits = maxScaleBits(j.clients, dim, cal.noiseMultiplier, threshold);
  // Calibrated on the Gaussian-equivalent multiplier; the exact DDG multiplier (with τ) is checked to be no smaller.
  let sigma = sigmaForMultiplier(cal.noiseMultiplier, { scaleBits, dim }, threshold);
  while (ddgNoiseMultiplier({ clip: j.clip, scaleBits, sigma, dim }, threshold) < cal.noiseMultiplier) sigma *= 1.0001;
  const ddg = { clip: j.clip, scaleBits, sigma };
  const randomness = j.seed !== undefined ? { kind: 'seeded' as const, seed: j.seed } : { kind: 'secure' as const };
  const ledger = PrivacyLedger.open(ledgerPath, { accountant: 'rdp', relation: 'replace-one', randomness, budget: { epsilon: j.epsilon, delta: j.delta }, meta: { command: 'fed simulate', method: 'dp-fedavg', role: 'server' } });
  const config = {
    command: 'fed simulate',
    argv: j.argv ?? null,
    protocol: 'dp-fedavg',
    data: data.name,
    dataSource: data.source,
    datasetFingerprint: fingerprint,
    relation: 'replace-one',
    unit: 'user (one client\'s whole dataset)',
    epsilon: j.epsilon,
    delta: j.delta,
    clients: j.clients,
    examplesPerClient: j.examplesPerClient ?? Math.floor(data.train.count / j.clients),
    threshold,
    rounds: j.rounds,
    noiseMultiplierPerRound: cal.noiseMultiplier,
    ddg: { ...ddg, dim, gamma: j.clip / 2 ** scaleBits },
    local: { epochs: j.localEpochs, batch: j.batch, lr: j.lr },
    serverLr: j.serverLr,
    dropout: j.dropout,
    model: `softmax regression ${features}→${data.numClasses} (${dim} parameters)`,
    randomness: randomness.kind,
    seed: j.seed ?? null,
    accounting: 'distributed discrete Gaussian (Kairouz et al. 2021, Prop. 14) as Gaussian-equivalent RDP, replace-one, no sampling amplification, δ fixed',
    transport: j.external ? `WebSocket (ws) server on ${j.external.host}:${j.external.port}, clients in their own processes` : 'WebSocket (ws) on loopback, one connection per client',
  };
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  const manifest: RunManifest = {
    version: 1,
    kind: 'fed',
    method: 'dp-fedavg',
    description: `User-level DP federated averaging: ${j.clients} clients train locally, clip, add distributed discrete Gaussian noise and send the result through secure aggregation; the server only sees the noisy sum.`,
    createdAt: new Date(t0).toISOString(),
    updatedAt: new Date(t0).toISOString(),
    config,
    dataset: { name: data.name, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: data.numClasses },
    privacy: {
      relation: 'replace-one',
      treatedAsPublic: ['the set and number of clients (a "record" is one client\'s whole dataset)', 'the number of survivors of each round', 'the hyper-parameters', 'the test split (public holdout)'],
      accountant: 'rdp',
      delta: j.delta,
      budget: { epsilon: j.epsilon, delta: j.delta },
      ledger: 'ledger.jsonl',
      randomness,
      released: [
        { what: `number of clients (${j.clients}) and survivors per round`, where: ['config.json', 'ledger.jsonl', 'metrics.jsonl'], status: 'public-by-assumption', why: 'the replace-one proof treats the participants as public' },
        { what: 'total wall time (seconds)', where: ['stdout'], status: 'outside-guarantee', why: 'local training time can depend on the data' },
        LEDGER_TIMESTAMPS,
      ],
    },
    metrics: 'metrics.jsonl',
    artifacts: [
      { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
      { path: 'ledger.jsonl', what: 'the server\'s privacy ledger (one entry per round, before unmasking)', status: 'public' },
      { path: 'ledger.jsonl.tip', what: 'ledger tip (signed with the owner key)', status: 'public' },
      { path: 'metrics.jsonl', what: 'per-round ε, survivors and test accuracy of the global model', status: 'covered' },
      { path: 'model.json', what: 'global model (post-processing of the noisy sums)', status: 'covered' },
    ],
    attempts: [{ startedAt: new Date(t0).toISOString(), command: j.argv?.slice(1), ledgerEntriesAtStart: 0 }],
  };
  writeManifest(outDir, manifest);
  const metricsPath = join(outDir, 'metrics.jsonl');
  const clientSeedBase = j.seed;
  try {
    const train = imagesToVectors(data.train.images, data.train.labels, data.train.count, features);
    const test = imagesToVectors(data.test.images, data.test.labels, data.test.count, features);
    const dying = (id: number, round: string): 'masked' | undefined => {
      if (j.dropout <= 0) return undefined;
      // Deterministic per (round, id) so a seeded run is reproducible; independent of the data.
      const r = Number(round.replace(/\D/g, ''));
      const h = ((id * 2654435761) ^ (r * 40503)) >>> 0;
      return h / 2 ** 32 < j.dropout ? 'masked' : undefined;
    };
    j.onLog?.(`dp-fedavg: ${j.clients} clients, threshold ${threshold}, ${j.rounds} rounds, noise multiplier ${cal.noiseMultiplier.toFixed(4)} per round (σ = ${sigma.toFixed(1)} quantised units per client), ${dim} parameters`);
    const r = await simulateDpFedAvg({
      train,
      test,
      features,
      classes: data.numClasses,
      clients: j.clients,
      examplesPerClient: j.examplesPerClient,
      rounds: j.rounds,
      local: { epochs: j.localEpochs, batch: j.batch, lr: j.lr },
      serverLr: j.serverLr,
      ddg,
      phaseTimeoutMs: j.phaseTimeoutMs,
      splitRandom: j.seed !== undefined ? seededRandom(j.seed) : secureRandom(),
      clientRandom: (id: number): RandomSource => (clientSeedBase !== undefined ? seededRandom((clientSeedBase + 7919 * id) >>> 0) : secureRandom()),
      record: (event: DpEvent, meta) => {
        const res = ledger.tryRecord({ event, method: 'dp-fedavg', datasetFingerprint: fingerprint, meta });
        if (!res.ok) throw new BudgetError(res.reason);
      },
      ...(j.dropout > 0 ? { dieAt: dying } : {}),
      ...(j.external ? { external: j.external } : {}),
      onRound: (s) => {
        const eps = ledger.spent(j.delta);
        // Round wall times stay out of metrics.jsonl (local training time can depend on the data).
        const { seconds: _secs, ...covered } = s;
        appendFileSync(metricsPath, JSON.stringify({ ...covered, epsilon: eps }) + '\n');
        j.onRound?.({ ...s, epsilon: eps });
      },
      log: j.onLog,
    });
    writeFileSync(join(outDir, 'model.json'), JSON.stringify({ kind: 'softmax-regression', features, classes: data.numClasses, params: Array.from(r.model.params) }));
    const result: DpFedAvgJobResult = {
      testAccuracy: r.testAccuracy,
      epsilon: ledger.spent(j.delta),
      delta: j.delta,
      rounds: r.roundsCompleted,
      roundsAborted: r.roundsAborted,
      clients: j.clients,
      threshold,
      noiseMultiplier: cal.noiseMultiplier,
      ddgSigma: sigma,
      bytesTotal: r.bytesTotal,
      bytesPerClientRound: r.bytesPerClientRound,
      stoppedBy: r.stoppedBy,
      relation: 'replace-one',
      randomness: randomness.kind,
      datasetFingerprint: fingerprint,
      seconds: (Date.now() - t0) / 1000,
      runDir: outDir,
    };
    const { seconds: _s, ...publicResult } = result;
    manifest.result = publicResult;
    manifest.attempts[0]!.endedAt = new Date().toISOString();
    manifest.attempts[0]!.stoppedBy = r.stoppedBy;
    writeManifest(outDir, manifest);
    return result;
  } finally {
    ledger.close();
  }
}

// ---------------------------------------------------------------- standalone parties ----

export interface SecAggServerJob {
  clients: number;
  dim: number;
  rounds: number;
  host: string;
  port: number;
  phaseTimeoutMs?: number;
  onLog?: (line: string) => void;
}

/** `dplens fed server --protocol secagg`: secure-aggregation rounds with external clients. */
export async function runSecAggServer(j: SecAggServerJob): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const server = await FedServer.listen({ host: j.host, port: j.port, maxPayload: 4 * j.dim + (1 << 20), phaseTimeoutMs: j.phaseTimeoutMs ?? 120_000, log: j.onLog });
  j.onLog?.(`server listening on ${server.url}, waiting for ${j.clients} clients`);
  const rounds: Record<string, unknown>[] = [];
  try {
    await server.waitForClients(j.clients, 600_000);
    for (let r = 1; r <= j.rounds; r++) {
      const tr = performance.now();
      const res = await server.aggregate(`secagg-${r}`, { dim: j.dim, info: { protocol: 'secagg' } });
      const digest = createHash('sha256').update(res.sum).digest('hex').slice(0, 16);
      rounds.push({ round: r, survivors: res.u3.length, threshold: res.threshold, dropouts: res.dropouts.map((d) => `${d.id}@${d.phase}`), sumSha256: digest, seconds: (performance.now() - tr) / 1000 });
      j.onLog?.(`round ${r}: ${res.u3.length} survivors, sum sha256 ${digest}`);
    }
  } finally {
    await server.close({ rounds: rounds.length });
  }
  return { protocol: 'secagg', clients: j.clients, dim: j.dim, rounds, seconds: (performance.now() - t0) / 1000 };
}

export interface ClientJob {
  url: string;
  /** dp-fedavg: this party's data (a --data value) and its slice: training examples i with i mod shards = shard − 1. */
  data?: string;
  dataPath?: string;
  shard?: number;
  shards?: number;
  seed?: number;
  /** Testing: stop answering at this phase of round `holdRound` (the test then kills the process). */
  holdAt?: DiePhase;
  holdRound?: number;
  timeoutMs?: number;
  onLog?: (line: string) => void;
}

/** `dplens fed client`: one party. secagg rounds get a random input (a demo); dp-fedavg rounds train on the slice. */
export async function runFedClient(j: ClientJob): Promise<ClientResult> {
  let shard: LabeledVectors | undefined;
  let features = 0;
  let classes = 0;
  if (j.data !== undefined) {
    if (j.shard === undefined || j.shards === undefined) throw new FedInputError('--data needs --shard K and --shards N (this client holds training examples i with i mod N = K − 1)');
    if (!(j.shard >= 1 && j.shard <= j.shards)) throw new FedInputError(`--shard must be in [1, --shards], got ${j.shard}`);
    const data = loadDataset(resolveDataFlag(j.data, j.dataPath));
    features = data.height * data.width * data.channels;
    classes = data.numClasses;
    const all = imagesToVectors(data.train.images, data.train.labels, data.train.count, features);
    const idx = Array.from({ length: all.count }, (_, i) => i).filter((i) => i % j.shards! === j.shard! - 1);
    const x = new Float32Array(idx.length * features);
    idx.forEach((i, q) => x.set(all.x.subarray(i * features, (i + 1) * features), q * features));
    shard = { x, labels: Int32Array.from(idx, (i) => all.labels[i]!), count: idx.length };
  }
  const rng = randomFromSeed(j.seed);
  const holdRound = j.holdRound ?? 1;
  return runClient({
    url: j.url,
    maxPayload: 256 << 20,
    idleTimeoutMs: j.timeoutMs ?? 600_000,
    connectRetryMs: 120_000,
    log: j.onLog,
    computeInput: (r: RoundStart) => {
      if (r.info.protocol === 'dp-fedavg') {
        if (!shard) throw new Error('the server runs dp-fedavg: start this client with --data, --shard and --shards');
        const ddg = { clip: Number(r.info.clip), scaleBits: Number(r.info.scaleBits), sigma: Number(r.info.sigma), dim: r.dim };
        return clientInput(r.payload, r.info, shard, newModel(features, classes), ddg, rng);
      }
      const x = new Uint32Array(r.dim);
      for (let i = 0; i < r.dim; i++) x[i] = rng.nextUint32();
      return x;
    },
    ...(j.holdAt ? { holdAt: (_id: number, round: string) => (round.endsWith(`-${holdRound}`) ? j.holdAt : undefined) } : {}),
  });
}
