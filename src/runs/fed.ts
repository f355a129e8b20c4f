/**
 * Runner behind `dplens fed simulate`: secure aggregation alone (a figure, no run folder needed)
 * or DP-FedAvg into a run folder (ledger.jsonl owned by the SERVER, config.json, metrics.jsonl,
 * model.json, run.json; the CLI then writes report.html).
 *
 * DP-FedAvg's guarantee is user-level (ε, δ)-DP under REPLACE-ONE of one client's whole dataset;
 * the list of clients, their number, each round's survivor count and the hyper-parameters are
 * public. Each round's release is recorded in the ledger (tryRecord, the only budget gate) after
 * the survivors are known and before the server unmasks the sum.
 *
 * Crash safety (issue 17): after every committed round the server writes fed-state.json (the
 * round index, the model, the public previous update and the ledger position) atomically (temp
 * file, fsync, rename). `--resume` continues from the last committed round with the same config;
 * the ledger is appended to, never recreated: a round that was charged (before unmasking) but not
 * committed when the server died stays charged, and is redone under a new charge; a committed
 * round is never charged again. Simulated clients restart with empty error-feedback residuals.
 */
import { existsSync, mkdirSync, writeFileSync, appendFileSync, readFileSync, openSync, writeSync, fsyncSync, closeSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, resolveDataFlag } from '../data/index.js';
import { BudgetError, PrivacyLedger, keyedFingerprint, randomFromSeed, seededRandom, secureRandom, type DpEvent, type RandomSource } from '../privacy/index.js';
import { calibrateRounds, ddgNoiseMultiplier, imagesToVectors, maxScaleBits, sigmaForMultiplier } from '../federated/dpfedavg.js';
import { simulateDpFedAvg, type RoundSummary } from '../federated/simulate-dpfedavg.js';
import { simulateSecAgg, type SecAggSimResult } from '../federated/simulate-secagg.js';
import { defaultThreshold } from '../federated/secagg.js';
import { DEFAULT_THREAT, defaultNeighbors, secAggPlusBounds, secAggPlusParams, secAggPlusThreshold } from '../federated/secagg-graph.js';
import { FedServer } from '../federated/server.js';
import { runClient, type ClientResult, type DiePhase, type RoundStart } from '../federated/client.js';
import { clientInput } from '../federated/simulate-dpfedavg.js';
import { newModel, type LabeledVectors } from '../federated/dpfedavg.js';
import { createHash } from 'node:crypto';
import { LEDGER_TIMESTAMPS } from './released.js';
import { readManifest, writeManifest, type RunManifest } from './manifest.js';
import { ErrorFeedback, checkSpec, compressedLength, type CompressScheme, type CompressSpec } from '../federated/compress.js';

/**
 * The argv a run folder records in run.json `attempts[].command`: everything after the program
 * name (the report prepends "dplens"). The CLI passes ['dplens', 'fed', 'simulate', …]; a library
 * caller may pass ['fed', 'simulate', …]: only a leading "dplens" is dropped, never "fed".
 */
export function commandAfterProgram(argv: readonly string[] | undefined): string[] | undefined {
  if (!argv) return undefined;
  return argv[0] === 'dplens' ? argv.slice(1) : argv.slice();
}

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
  /** SecAgg+ neighbours per client (default defaultNeighbors(clients); clients − 1 = complete graph). */
  neighbors?: number;
  seed?: number;
  phaseTimeoutMs?: number;
  onLog?: (line: string) => void;
}

export async function runSecAggSimulation(j: SecAggJob): Promise<SecAggSimResult> {
  if (!(j.dropout >= 0 && j.dropout < 1)) throw new FedInputError(`--dropout must be in [0, 1), got ${j.dropout}`);
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3 for secure aggregation, got ${j.clients}`);
  const t = defaultThreshold(j.clients);
  if (j.clients - Math.round(j.dropout * j.clients) < t) j.onLog?.(`note: ${Math.round(j.dropout * j.clients)} dropouts leave fewer than the threshold ${t}: the round will abort`);
  const neighbors = checkNeighbors(j.clients, j.neighbors, j.onLog);
  return simulateSecAgg({ clients: j.clients, dim: j.dim, dropout: j.dropout, neighbors, rng: randomFromSeed(j.seed), phaseTimeoutMs: j.phaseTimeoutMs, log: j.onLog });
}

/**
 * --neighbors K: even, 2 <= K, K >= clients − 1 means the complete graph; default SecAgg+'s k for
 * the clients (complete graph while that is above clients/2). Logs the graph's security bounds.
 */
export function checkNeighbors(clients: number, neighbors: number | undefined, log?: (line: string) => void): number {
  const k = neighbors === undefined ? defaultNeighbors(clients) : Math.min(neighbors, clients - 1);
  if (k < clients - 1) {
    if (k < 2 || k % 2 !== 0) throw new FedInputError(`--neighbors must be an even number >= 2 (or >= --clients − 1 for the complete graph), got ${neighbors}`);
    const t = secAggPlusThreshold(clients, k);
    const b = secAggPlusBounds(clients, k, t);
    log?.(`SecAgg+: ${k} neighbours per client, ${t} of ${k + 1} shares per secret; P(reveals more than the sum) <= 2^${b.log2Insecure.toFixed(1)} (≤ ${Math.round(100 * DEFAULT_THREAT.corrupt)} % colluding clients), P(cannot finish with ≤ 1/3 dropouts) <= 2^${b.log2Incomplete.toFixed(1)}`);
    if (b.log2Insecure > -DEFAULT_THREAT.sigma || b.log2Incomplete > -DEFAULT_THREAT.eta) log?.(`warning: --neighbors ${k} is below SecAgg+'s choice for ${clients} clients (${secAggPlusParams(clients)?.k ?? clients - 1}): the bounds above are weaker than 2^-${DEFAULT_THREAT.sigma} / 2^-${DEFAULT_THREAT.eta}`);
  }
  return k;
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
  /** Upload compression (default none). */
  compress?: CompressSpec;
  /** Continue the run in `out` from its last committed round (the stored config wins; see resumeJob). */
  resume?: boolean;
  /** Tests: stop after charging round N and wait to be killed. */
  holdAfterCharge?: number;
  /** SecAgg+ neighbours per client (default defaultNeighbors(clients): complete graph up to a few hundred clients). */
  neighbors?: number;
  onLog?: (line: string) => void;
  onRound?: (r: RoundSummary & { epsilon: number }) => void;
}

/** What fed-state.json holds: the last committed round and what the next one starts from. */
interface FedState {
  version: 1;
  /** Last committed round (0: none yet). */
  round: number;
  /** Ledger entries when it was committed (a resume refuses a ledger with fewer). */
  ledgerEntries: number;
  /** Seed of the simulated data split (kept so every attempt gives each client the same data). */
  splitSeed: number;
  /** Float64 little-endian, base64. */
  params?: string;
  previousUpdate?: string;
}

const STATE_FILE = 'fed-state.json';

/** Atomic replace: write a temp file, fsync it, rename over the target (a crash leaves the old or the new file, never half of one). */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

const f64ToB64 = (x: Float64Array): string => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');
function b64ToF64(s: string, n: number, what: string): Float64Array {
  const b = Buffer.from(s, 'base64');
  if (b.length !== 8 * n) throw new FedInputError(`${what}: expected ${n} float64 values, found ${b.length} bytes`);
  const out = new Float64Array(n);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function readState(dir: string): FedState {
  const p = join(dir, STATE_FILE);
  if (!existsSync(p)) throw new FedInputError(`--resume: ${p} not found (not a dp-fedavg run folder, or it died before its first write)`);
  let st: FedState;
  try {
    st = JSON.parse(readFileSync(p, 'utf8')) as FedState;
  } catch {
    throw new FedInputError(`--resume: ${p} is not valid JSON`);
  }
  if (st.version !== 1 || !Number.isInteger(st.round) || st.round < 0 || !Number.isInteger(st.ledgerEntries) || !Number.isInteger(st.splitSeed)) throw new FedInputError(`--resume: ${p} is malformed`);
  return st;
}

/** Seeded resume must not replay a noise stream: mix the seed with the ledger's entry count (it strictly grows between attempts that charged). */
function attemptSeed(seed: number, entriesAtStart: number, salt: number): number {
  return entriesAtStart === 0 && salt === 0 ? seed : (seed ^ Math.imul(entriesAtStart + 1, 0x9e3779b1) ^ Math.imul(salt + 1, 0x5bd1e995)) >>> 0;
}

/** The stored job of the run in `out` (a resume runs the same configuration; only transport options come from the caller). */
function resumeJob(j: DpFedAvgJob): DpFedAvgJob {
  const p = join(resolve(j.out), 'config.json');
  if (!existsSync(p)) throw new FedInputError(`--resume: ${p} not found; nothing to resume`);
  const c = JSON.parse(readFileSync(p, 'utf8')) as { protocol?: string; job?: DpFedAvgJob };
  if (c.protocol !== 'dp-fedavg' || !c.job) throw new FedInputError(`--resume: ${p} is not a resumable dp-fedavg run`);
  const stored = c.job as DpFedAvgJob;
  return { ...stored, dataPath: j.dataPath ?? stored.dataPath, out: j.out, argv: j.argv, phaseTimeoutMs: j.phaseTimeoutMs, external: j.external, resume: true, holdAfterCharge: j.holdAfterCharge, onLog: j.onLog, onRound: j.onRound };
}

export interface DpFedAvgJobResult {
  testAccuracy: number;
  epsilon: number;
  delta: number;
  rounds: number;
  roundsAborted: number;
  clients: number;
  threshold: number;
  /** Neighbours per client in secure aggregation (clients − 1: complete graph; fewer: SecAgg+). */
  neighbors: number;
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
  /** All bytes on the wire (both directions, all clients) per round. */
  bytesPerRound: number;
  compression: { scheme: CompressScheme; ratio: number; uploadDim: number; modelDim: number; serverLearns: string };
  /** Round the run continued from (0 for a fresh run). */
  resumedFromRound: number;
  /** Ledger entries charged for rounds that were never committed (crashes, aborts after charging). */
  chargedNotCommitted: number;
}

const SERVER_LEARNS: Record<CompressScheme, string> = {
  none: 'the noisy sum of the clipped, rounded client updates',
  randk: 'the noisy sum of the clients\' clipped updates restricted to a public random coordinate set S (S from a public round seed)',
  'topk-shared': 'the noisy sum of the clients\' clipped updates restricted to S = the top half of the previous global update (public) plus public random coordinates',
  sketch: 'the noisy sum of the clients\' clipped count sketches (public hashes) = a noisy sketch of the summed update, not the sum itself',
  sign: 'the noisy sum of the clients\' scaled sign vectors (a noisy majority vote); 32 bits per coordinate under Z_2^32 secure aggregation',
};

export async function runDpFedAvg(job: DpFedAvgJob): Promise<DpFedAvgJobResult> {
  const t0 = Date.now();
  const j = job.resume ? resumeJob(job) : job;
  const asked: CompressSpec = j.compress ?? { scheme: 'none', ratio: 1 };
  // none and sign upload all d coordinates: the ratio means nothing there
  const spec: CompressSpec = asked.scheme === 'none' || asked.scheme === 'sign' ? { ...asked, ratio: 1 } : asked;
  try {
    checkSpec(spec);
  } catch (e) {
    throw new FedInputError((e as Error).message);
  }
  if (!(j.epsilon > 0 && Number.isFinite(j.epsilon))) throw new FedInputError(`--epsilon must be a finite number > 0, got ${j.epsilon}`);
  if (!(j.delta > 0 && j.delta < 1)) throw new FedInputError(`--delta must be in (0, 1), got ${j.delta}`);
  if (!(j.dropout >= 0 && j.dropout < 1 / 3)) throw new FedInputError(`--dropout must be in [0, 1/3) for DP-FedAvg (more would abort every round), got ${j.dropout}`);
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3, got ${j.clients}`);
  const data = loadDataset(resolveDataFlag(j.data, j.dataPath));
  const features = data.height * data.width * data.channels;
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const outDir = resolve(j.out);
  const ledgerPath = join(outDir, 'ledger.jsonl');
  if (!j.resume && existsSync(ledgerPath)) throw new FedInputError(`${ledgerPath} already exists: use a new --out folder (or --resume to continue that run)`);
  if (j.resume && !existsSync(ledgerPath)) throw new FedInputError(`--resume: ${ledgerPath} is missing; refusing to continue (the budget it recorded would be lost)`);
  const state: FedState = j.resume ? readState(outDir) : { version: 1, round: 0, ledgerEntries: 0, splitSeed: j.seed ?? secureRandom().nextUint32() };
  mkdirSync(outDir, { recursive: true });
  const threshold = defaultThreshold(j.clients);
  const neighbors = checkNeighbors(j.clients, j.neighbors, j.onLog);
  const cal = calibrateRounds(j.epsilon, j.delta, j.rounds);
  const modelDim = data.numClasses * features + data.numClasses;
  // Noise is calibrated in the dimension actually summed: the compressed length m.
  const dim = compressedLength(spec, modelDim);
  const scaleBits = maxScaleBits(j.clients, dim, cal.noiseMultiplier, threshold);
  // Calibrated on the Gaussian-equivalent multiplier; the exact DDG multiplier (with τ) is checked to be no smaller.
  let sigma = sigmaForMultiplier(cal.noiseMultiplier, { scaleBits, dim }, threshold);
  while (ddgNoiseMultiplier({ clip: j.clip, scaleBits, sigma, dim }, threshold) < cal.noiseMultiplier) sigma *= 1.0001;
  const ddg = { clip: j.clip, scaleBits, sigma };
  const randomness = j.seed !== undefined ? { kind: 'seeded' as const, seed: j.seed } : { kind: 'secure' as const };
  const ledger = PrivacyLedger.open(ledgerPath, { accountant: 'rdp', relation: 'replace-one', randomness, budget: { epsilon: j.epsilon, delta: j.delta }, create: !j.resume, meta: { command: 'fed simulate', method: 'dp-fedavg', role: 'server' } });
  const entriesAtStart = ledger.entries.length;
  if (entriesAtStart < state.ledgerEntries) {
    ledger.close();
    throw new FedInputError(`--resume: ${ledgerPath} has ${entriesAtStart} entries but round ${state.round} was committed at ${state.ledgerEntries}; the ledger was truncated or replaced, refusing to continue`);
  }
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
    compression: { scheme: spec.scheme, ratio: spec.ratio, uploadDim: dim, modelDim, serverLearns: SERVER_LEARNS[spec.scheme], clipping: 'after compression (‖C(v)‖₂ ≤ clip), sensitivity 2(clip/γ + √m) in the summed dimension m', errorFeedback: spec.scheme === 'none' ? 'none' : 'client-side residual v − D(C(v)) carried across rounds (lost when a simulated client restarts)' },
    local: { epochs: j.localEpochs, batch: j.batch, lr: j.lr },
    serverLr: j.serverLr,
    dropout: j.dropout,
    model: `softmax regression ${features}→${data.numClasses} (${modelDim} parameters)`,
    randomness: randomness.kind,
    seed: j.seed ?? null,
    accounting: 'distributed discrete Gaussian (Kairouz et al. 2021, Prop. 14) as Gaussian-equivalent RDP, replace-one, no sampling amplification, δ fixed',
    transport: j.external ? `WebSocket (ws) server on ${j.external.host}:${j.external.port}, clients in their own processes` : 'WebSocket (ws) on loopback, one connection per client',
    // what --resume runs again (the stored configuration wins over flags)
    job: { data: j.data, dataPath: j.dataPath, clients: j.clients, examplesPerClient: j.examplesPerClient, rounds: j.rounds, epsilon: j.epsilon, delta: j.delta, clip: j.clip, localEpochs: j.localEpochs, batch: j.batch, lr: j.lr, serverLr: j.serverLr, dropout: j.dropout, seed: j.seed, compress: spec },
  };
  const stored = j.resume ? (JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8')) as { datasetFingerprint?: string }) : undefined;
  if (stored && stored.datasetFingerprint !== fingerprint) {
    ledger.close();
    throw new FedInputError(`--resume: ${outDir} was run on other data (fingerprint mismatch); give the run's own --data-path`);
  }
  if (!j.resume) {
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
    writeFileAtomic(join(outDir, STATE_FILE), JSON.stringify(state));
  }
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
      { path: STATE_FILE, what: 'resume state: last committed round, its model and previous update (post-processing of the noisy sums), ledger position, seed of the simulated data split', status: 'covered' },
      { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
      { path: 'ledger.jsonl', what: 'the server\'s privacy ledger (one entry per round, before unmasking)', status: 'public' },
      { path: 'ledger.jsonl.tip', what: 'ledger tip (signed with the owner key)', status: 'public' },
      { path: 'metrics.jsonl', what: 'per-round ε, survivors and test accuracy of the global model', status: 'covered' },
      { path: 'model.json', what: 'global model (post-processing of the noisy sums)', status: 'covered' },
    ],
    attempts: [{ startedAt: new Date(t0).toISOString(), command: commandAfterProgram(j.argv), ledgerEntriesAtStart: entriesAtStart, ...(j.resume ? { resumedFromStep: state.round } : {}) }],
  };
  if (j.resume) {
    const old = readManifest(outDir);
    if (old) {
      manifest.createdAt = old.createdAt;
      manifest.attempts = [...old.attempts, ...manifest.attempts];
    }
  }
  const attemptIndex = manifest.attempts.length - 1;
  writeManifest(outDir, manifest);
  const metricsPath = join(outDir, 'metrics.jsonl');
  if (j.resume && existsSync(metricsPath)) {
    // rounds after the committed one were not committed: their lines (if any) go
    const kept = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim() && (JSON.parse(l) as { round: number }).round <= state.round);
    writeFileAtomic(metricsPath, kept.map((l) => l + '\n').join(''));
  }
  const clientSeedBase = j.seed === undefined ? undefined : attemptSeed(j.seed, entriesAtStart, attemptIndex);
  if (j.resume) j.onLog?.(`resuming after committed round ${state.round} (${outDir}); the ledger keeps its ${entriesAtStart} entries${entriesAtStart > state.ledgerEntries ? `, ${entriesAtStart - state.ledgerEntries} of them charged for a round that was not committed (it is redone)` : ''}`);
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
    j.onLog?.(`dp-fedavg: ${j.clients} clients, threshold ${threshold}, ${j.rounds} rounds, noise multiplier ${cal.noiseMultiplier.toFixed(4)} per round (σ = ${sigma.toFixed(1)} quantised units per client), ${modelDim} parameters${spec.scheme !== 'none' ? `, uploads compressed by ${spec.scheme} to ${dim} values` : ''}`);
    const start = state.round > 0 && state.params ? { round: state.round, params: b64ToF64(state.params, modelDim, STATE_FILE), ...(state.previousUpdate ? { previousUpdate: b64ToF64(state.previousUpdate, modelDim, STATE_FILE) } : {}) } : undefined;
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
      splitRandom: seededRandom(state.splitSeed),
      clientRandom: (id: number): RandomSource => (clientSeedBase !== undefined ? seededRandom((clientSeedBase + 7919 * id) >>> 0) : secureRandom()),
      record: (event: DpEvent, meta) => {
        const res = ledger.tryRecord({ event, method: 'dp-fedavg', datasetFingerprint: fingerprint, meta: { ...meta, attempt: attemptIndex + 1 } });
        if (!res.ok) throw new BudgetError(res.reason);
      },
      compress: spec,
      planRandom: clientSeedBase !== undefined ? seededRandom(attemptSeed(clientSeedBase, 1, 7)) : secureRandom(),
      ...(start ? { start } : {}),
      onCommit: (c) => {
        // the ledger entry of this round is already on disk (tryRecord before unmasking)
        writeFileAtomic(join(outDir, STATE_FILE), JSON.stringify({ ...state, round: c.round, ledgerEntries: ledger.entries.length, params: f64ToB64(c.params), previousUpdate: f64ToB64(c.previousUpdate) } satisfies FedState));
      },
      ...(j.holdAfterCharge !== undefined ? { holdAfterCharge: j.holdAfterCharge } : {}),
      ...(j.dropout > 0 ? { dieAt: dying } : {}),
      ...(j.external ? { external: j.external } : {}),
      neighbors,
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
      rounds: state.round + r.roundsCompleted,
      roundsAborted: r.roundsAborted,
      clients: j.clients,
      threshold,
      neighbors,
      noiseMultiplier: cal.noiseMultiplier,
      ddgSigma: sigma,
      bytesTotal: r.bytesTotal,
      bytesPerClientRound: r.bytesPerClientRound,
      bytesPerRound: r.bytesPerRound,
      compression: { scheme: spec.scheme, ratio: spec.ratio, uploadDim: r.uploadDim, modelDim, serverLearns: SERVER_LEARNS[spec.scheme] },
      resumedFromRound: state.round,
      chargedNotCommitted: ledger.entries.length - (r.roundsCompleted + state.round),
      stoppedBy: r.stoppedBy,
      relation: 'replace-one',
      randomness: randomness.kind,
      datasetFingerprint: fingerprint,
      seconds: (Date.now() - t0) / 1000,
      runDir: outDir,
    };
    const { seconds: _s, ...publicResult } = result;
    manifest.result = publicResult;
    manifest.attempts[attemptIndex]!.endedAt = new Date().toISOString();
    manifest.attempts[attemptIndex]!.stoppedBy = r.stoppedBy;
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
  neighbors?: number;
  onLog?: (line: string) => void;
}

/** `dplens fed server --protocol secagg`: secure-aggregation rounds with external clients. */
export async function runSecAggServer(j: SecAggServerJob): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const neighbors = checkNeighbors(j.clients, j.neighbors, j.onLog);
  const server = await FedServer.listen({ host: j.host, port: j.port, maxPayload: 4 * j.dim + (1 << 20), phaseTimeoutMs: j.phaseTimeoutMs ?? 120_000, log: j.onLog });
  j.onLog?.(`server listening on ${server.url}, waiting for ${j.clients} clients`);
  const rounds: Record<string, unknown>[] = [];
  try {
    await server.waitForClients(j.clients, 600_000);
    for (let r = 1; r <= j.rounds; r++) {
      const tr = performance.now();
      const res = await server.aggregate(`secagg-${r}`, { dim: j.dim, neighbors, info: { protocol: 'secagg' } });
      const digest = createHash('sha256').update(res.sum).digest('hex').slice(0, 16);
      rounds.push({ round: r, survivors: res.u3.length, threshold: res.threshold, dropouts: res.dropouts.map((d) => `${d.id}@${d.phase}`), sumSha256: digest, seconds: (performance.now() - tr) / 1000 });
      j.onLog?.(`round ${r}: ${res.u3.length} survivors, sum sha256 ${digest}`);
    }
  } finally {
    await server.close({ rounds: rounds.length });
  }
  return { protocol: 'secagg', clients: j.clients, dim: j.dim, neighbors, rounds, seconds: (performance.now() - t0) / 1000 };
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
  /** dp-fedavg: refuse rounds whose compression scheme is not this one (the server's plan is used otherwise). */
  compress?: CompressScheme;
  /** dp-svm: this party's input for the round (runs/fed-dpsvm.ts dpSvmPartyInput); its data is loaded there. */
  svmInput?: (r: RoundStart) => Promise<Uint32Array>;
  onLog?: (line: string) => void;
}

/** `dplens fed client`: one party. secagg rounds get a random input (a demo); dp-fedavg rounds train on the slice. */
export async function runFedClient(j: ClientJob): Promise<ClientResult> {
  let shard: LabeledVectors | undefined;
  let features = 0;
  let classes = 0;
  if (j.data !== undefined && !j.svmInput) {
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
  // this party's error-feedback memory (lives as long as the process)
  const ef = new ErrorFeedback();
  return runClient({
    url: j.url,
    maxPayload: 256 << 20,
    idleTimeoutMs: j.timeoutMs ?? 600_000,
    connectRetryMs: 120_000,
    log: j.onLog,
    computeInput: (r: RoundStart) => {
      if (r.info.protocol === 'dp-svm') {
        if (!j.svmInput) throw new Error('the server runs dp-svm: start this client with --protocol dp-svm --data, --shard and --shards');
        return j.svmInput(r);
      }
      if (j.svmInput) throw new Error(`this client was started for dp-svm, the server runs ${String(r.info.protocol)}; refusing`);
      if (r.info.protocol === 'dp-fedavg') {
        if (!shard) throw new Error('the server runs dp-fedavg: start this client with --data, --shard and --shards');
        const ddg = { clip: Number(r.info.clip), scaleBits: Number(r.info.scaleBits), sigma: Number(r.info.sigma), dim: r.dim };
        return clientInput(r.payload, r.info, shard, newModel(features, classes), ddg, rng, ef, j.compress);
      }
      const x = new Uint32Array(r.dim);
      for (let i = 0; i < r.dim; i++) x[i] = rng.nextUint32();
      return x;
    },
    ...(j.holdAt ? { holdAt: (_id: number, round: string) => (round.endsWith(`-${holdRound}`) ? j.holdAt : undefined) } : {}),
  });
}
