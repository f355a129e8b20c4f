/**
 * Runner behind `dplens fed simulate --protocol copml`: logistic regression trained across N
 * parties on Lagrange-coded data (src/federated/copml.ts), a server (decoder) and N parties over
 * WebSockets in one process, plus the plaintext references on the same data and iterations.
 *
 * COPML is NOT a differentially private protocol: its guarantee is information-theoretic secrecy
 * of each party's rows against any T colluding parties; the decoder learns the gradient of every
 * iteration and the model is released in the clear. So the run folder has no ledger, no budget,
 * and epsilon/delta are null; run.json says so in words.
 *
 * Data: `adult` = the Adult census train file (../shared/data/adult/adult.train.csv, or
 * --data-path FILE) through the repo's CSV loader, label Y (>50K), fnlwgt ignored (a sampling
 * weight), standardised numerics / one-hot categoricals, the loader's interleaved 80/20 split
 * (adult.test.csv is not used: its labels carry a trailing '.', which the loader rightly refuses).
 * `mnist` = MNIST digits 3 vs 5 (binary: label 1 = "5"), pixels / 255. Plus an intercept column.
 */
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadCsvDataset, loadDataset, repoRoot, resolveDataFlag, type TabularSplit } from '../data/index.js';
import { keyedFingerprint } from '../privacy/index.js';
import { P127, P61, accuracy, maxBlocks, needed, plaintextLogistic, sigmoidFit, type Binary } from '../federated/copml.js';
import { COPML_MAX_PAYLOAD, runCopmlParty, runCopmlServer, simulateCopml, type CopmlPartyResult, type CopmlServerResult } from '../federated/copml-simulate.js';
import { writeManifest, type RunManifest } from './manifest.js';
import { FedInputError, commandAfterProgram } from './fed.js';

export interface CopmlJob {
  data: 'adult' | 'mnist';
  dataPath?: string;
  out: string;
  clients: number;
  colluding: number;
  /** K data blocks (default: the largest the decoding threshold allows); smaller K tolerates more dropouts. */
  blocks?: number;
  /** Gradient-descent iterations (each one coded round). */
  rounds: number;
  degree: 1 | 3;
  lr: number;
  /** Interval [−R, R] of the least-squares sigmoid fit. */
  fitRange: number;
  /** Fixed-point bits of data, model, coefficients. */
  lx: number;
  lw: number;
  lc: number;
  /** Use at most this many training rows (tests). */
  maxTrain?: number;
  /** Parties that disconnect at iteration 1 (stragglers/dropouts beyond the decoding threshold are tolerated). */
  dropouts?: number;
  timeoutMs?: number;
  argv?: string[];
  onLog?: (line: string) => void;
  /**
   * `dplens fed server --protocol copml`: serve N parties that run elsewhere (`dplens fed client
   * --protocol copml`) on this address. The server then keeps only the public test split (it never
   * holds a training row), so the plaintext references are not computed (null).
   */
  external?: { host: string; port: number; joinTimeoutMs?: number };
}

export interface CopmlJobResult {
  protocol: 'copml';
  testAccuracy: number;
  /** Plaintext logistic regression on the same rows and iterations (null for a server of external parties: it holds no training rows). */
  plaintextTestAccuracy: number | null;
  plaintextApproxTestAccuracy: number | null;
  epsilon: null;
  delta: null;
  guarantee: string;
  rounds: number;
  clients: number;
  colluding: number;
  blocks: number;
  degree: number;
  resultsNeeded: number;
  prime: string;
  sigmoidCoefficients: number[];
  trainRows: number;
  testRows: number;
  features: number;
  bytesTotal: number;
  /** Results the decoder received per iteration (≥ resultsNeeded; fewer than N after dropouts). */
  respondersPerIteration: number[];
  transport: 'in-process' | 'separate processes';
  seconds: number;
  runDir: string;
}

/** The kept rows with an intercept column; `scale` multiplies the features (1/255 for pixels), converting only the kept rows. */
function withIntercept(features: Float32Array | Uint8Array, labels: Int32Array, count: number, d0: number, keep: (i: number) => boolean, label: (y: number) => number, limit = Infinity, scale = 1): Binary {
  const idx: number[] = [];
  for (let i = 0; i < count && idx.length < limit; i++) if (keep(i)) idx.push(i);
  const d = d0 + 1;
  const x = new Float32Array(idx.length * d);
  const y = new Int32Array(idx.length);
  idx.forEach((i, q) => {
    const o = q * d;
    const src = i * d0;
    for (let j = 0; j < d0; j++) x[o + j] = features[src + j]! * scale;
    x[o + d0] = 1;
    y[q] = label(labels[i]!);
  });
  return { x, y, count: idx.length, d };
}

function subset(b: Binary, keep: (i: number) => boolean): Binary {
  const idx = Array.from({ length: b.count }, (_, i) => i).filter(keep);
  const x = new Float32Array(idx.length * b.d);
  idx.forEach((i, q) => x.set(b.x.subarray(i * b.d, (i + 1) * b.d), q * b.d));
  return { x, y: Int32Array.from(idx, (i) => b.y[i]!), count: idx.length, d: b.d };
}

export function loadCopmlData(name: 'adult' | 'mnist', dataPath?: string, maxTrain?: number): { train: Binary; test: Binary; source: string; rawFingerprint: string; description: string } {
  if (name === 'adult') {
    const path = dataPath ?? [resolve(repoRoot(), '..', 'shared', 'data', 'adult', 'adult.train.csv'), resolve(process.cwd(), '..', 'shared', 'data', 'adult', 'adult.train.csv')].find((p) => existsSync(p));
    if (!path || !existsSync(path)) throw new FedInputError(`--data adult: ${path ?? '../shared/data/adult/adult.train.csv'} not found (give --data-path FILE)`);
    const ds = loadCsvDataset(path, { labelColumn: 'Y', columns: { fnlwgt: 'ignore' } });
    if (ds.numClasses !== 2) throw new FedInputError(`${path}: expected a binary label Y, found ${ds.numClasses} classes`);
    const pos = ds.classNames.findIndex((c) => c.includes('>'));
    const conv = (s: TabularSplit, lim?: number): Binary => withIntercept(s.features, s.labels, s.count, ds.numFeatures, () => true, (y) => (y === pos ? 1 : 0), lim);
    return { train: conv(ds.train, maxTrain), test: conv(ds.test), source: path, rawFingerprint: ds.rawFingerprint, description: `Adult census (${path}), label >50K, fnlwgt ignored, standardised numerics / one-hot categoricals, interleaved 80/20 split` };
  }
  const ds = loadDataset(resolveDataFlag('mnist', dataPath));
  if (ds.kind !== 'image') throw new FedInputError('--data mnist did not load an image dataset');
  const f = ds.height * ds.width * ds.channels;
  const conv = (s: { images: Uint8Array; labels: Int32Array; count: number }, lim?: number): Binary => withIntercept(s.images, s.labels, s.count, f, (i) => s.labels[i] === 3 || s.labels[i] === 5, (y) => (y === 5 ? 1 : 0), lim, 1 / 255);
  return { train: conv(ds.train, maxTrain), test: conv(ds.test), source: ds.source, rawFingerprint: ds.rawFingerprint, description: 'MNIST digits 3 vs 5 (label 1 = "5"), pixels / 255' };
}

export async function runCopml(j: CopmlJob): Promise<CopmlJobResult> {
  const t0 = Date.now();
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3 for copml, got ${j.clients}`);
  if (j.colluding < 1) throw new FedInputError(`--colluding must be >= 1, got ${j.colluding}`);
  const Kmax = maxBlocks(j.clients, j.colluding, j.degree);
  if (Kmax < 1) throw new FedInputError(`--clients ${j.clients} is too few for --colluding ${j.colluding} at sigmoid degree ${j.degree}: COPML needs N ≥ (2r+1)(K+T−1)+1 = ${needed(1, j.colluding, j.degree)} (K = 1)`);
  if (j.blocks !== undefined && !(Number.isInteger(j.blocks) && j.blocks >= 1 && j.blocks <= Kmax)) throw new FedInputError(`--blocks must be in [1, ${Kmax}] for --clients ${j.clients} --colluding ${j.colluding} at degree ${j.degree} (N ≥ (2r+1)(K+T−1)+1), got ${j.blocks}`);
  const K = j.blocks ?? Kmax;
  const outDir = resolve(j.out);
  if (existsSync(join(outDir, 'run.json'))) throw new FedInputError(`${join(outDir, 'run.json')} already exists: use a new --out folder`);
  const loaded = loadCopmlData(j.data, j.dataPath, j.maxTrain);
  // A server of external parties keeps no training row (only the public test split).
  const train: Binary | undefined = j.external ? undefined : loaded.train;
  const test = loaded.test;
  const d = loaded.train.d;
  mkdirSync(outDir, { recursive: true });
  const p = j.degree === 1 ? P61 : P127;
  const coef = sigmoidFit(j.degree, j.fitRange);
  const fingerprint = keyedFingerprint(loaded.rawFingerprint);
  const N = j.clients;
  const config = {
    command: j.external ? 'fed server' : 'fed simulate',
    argv: j.argv ?? null,
    protocol: 'copml',
    data: j.data,
    dataDescription: loaded.description,
    datasetFingerprint: fingerprint,
    clients: N,
    colluding: j.colluding,
    blocks: K,
    resultsNeeded: needed(K, j.colluding, j.degree),
    sigmoidDegree: j.degree,
    sigmoidFitRange: j.fitRange,
    sigmoidCoefficients: coef,
    prime: p === P61 ? '2^61 − 1' : '2^127 − 1',
    arithmetic: p === P61 ? 'GF(2^61 − 1) in Float64 21-bit limbs (copml-gf61.ts)' : 'GF(2^127 − 1) in BigInt',
    fixedPoint: { lx: j.lx, lw: j.lw, lc: j.lc },
    iterations: j.rounds,
    lr: j.lr,
    trainRows: train ? train.count : null as number | null,
    testRows: test.count,
    features: d,
    partition: `party k holds training rows i with i mod ${N} = k − 1`,
    guarantee: 'no differential privacy: information-theoretic secrecy of each party\'s rows against any T colluding parties; the decoder (server) learns every iteration\'s gradient and the model',
    transport: j.external
      ? `WebSocket (ws) server on ${j.external.host}:${j.external.port}; the ${N} parties are separate processes (dplens fed client --protocol copml --shard k --shards ${N}) that each load only their own rows; shares sealed with AES-256-GCM under pairwise X25519 keys, routed by the server`
      : 'WebSocket (ws) on loopback, one connection per party; shares sealed with AES-256-GCM under pairwise X25519 keys, routed by the server',
  };
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  const manifest: RunManifest = {
    version: 1,
    kind: 'fed',
    method: 'copml',
    description: `COPML / CodedPrivateML logistic regression: ${N} parties Lagrange-code their rows (K = ${K} blocks, T = ${j.colluding} random masks) over GF(${config.prime}); each computes the gradient polynomial (sigmoid replaced by a degree-${j.degree} polynomial) on its coded share and the server decodes only the sum gradient. NOT differentially private: no ε is claimed; the model and per-iteration gradients are released in the clear.`,
    createdAt: new Date(t0).toISOString(),
    updatedAt: new Date(t0).toISOString(),
    config,
    dataset: { name: j.data, source: loaded.source, fingerprint, trainSize: loaded.train.count, testSize: test.count, numClasses: 2 },
    metrics: 'metrics.jsonl',
    artifacts: [
      { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
      { path: 'metrics.jsonl', what: 'test accuracy of the model after each iteration', status: 'outside-guarantee', why: 'COPML has no DP guarantee: the model is a function of the private rows' },
      { path: 'model.json', what: 'logistic-regression weights (released in the clear)', status: 'outside-guarantee', why: 'COPML has no DP guarantee: the model is a function of the private rows' },
    ],
    attempts: [{ startedAt: new Date(t0).toISOString(), command: commandAfterProgram(j.argv), ledgerEntriesAtStart: 0 }],
  };
  writeManifest(outDir, manifest);
  const metricsPath = join(outDir, 'metrics.jsonl');
  j.onLog?.(`copml: ${N} parties, T = ${j.colluding}, K = ${K}, degree ${j.degree} (needs ${config.resultsNeeded} results per iteration), ${train ? `${train.count} training rows` : 'training rows held by the parties'} × ${d} features`);
  const plan = { p, N, K, T: j.colluding, r: j.degree, fp: { lx: j.lx, lw: j.lw, lc: j.lc }, coef, d, iterations: j.rounds, lr: j.lr, data: j.data };
  const onIteration = (it: number, w: Float64Array, responders: number): void => {
    const acc = accuracy(w, test);
    appendFileSync(metricsPath, JSON.stringify({ iteration: it, testAccuracy: acc, responders }) + '\n');
    if (it % 5 === 0 || it === j.rounds) j.onLog?.(`iteration ${it}: test accuracy ${(100 * acc).toFixed(2)}% (${responders} results)`);
  };
  let r: CopmlServerResult;
  try {
    if (j.external) {
      j.onLog?.(`copml server listening on ws://${j.external.host}:${j.external.port}, waiting for ${N} parties (dplens fed client --protocol copml --url ws://${j.external.host}:${j.external.port} --data ${j.data} --shard k --shards ${N})`);
      r = await runCopmlServer({ plan, test, timeoutMs: j.timeoutMs ?? 600_000, joinTimeoutMs: j.external.joinTimeoutMs ?? 600_000, maxPayload: COPML_MAX_PAYLOAD, host: j.external.host, port: j.external.port, log: j.onLog, onIteration });
    } else {
      const parts: Binary[] = Array.from({ length: N }, (_, k) => subset(train!, (i) => i % N === k));
      const dying = new Set<number>();
      for (let k = 0; k < (j.dropouts ?? 0); k++) dying.add(N - k);
      r = await simulateCopml({ plan, parts, test, timeoutMs: j.timeoutMs, dieAt: (id) => (dying.has(id) ? 1 : undefined), log: j.onLog, onIteration });
    }
  } catch (e) {
    // The attempt ends without a model: run.json says why (no result, no model.json).
    manifest.attempts[0]!.endedAt = new Date().toISOString();
    manifest.attempts[0]!.stoppedBy = `error: ${(e as Error).message}`.slice(0, 500);
    writeManifest(outDir, manifest);
    throw e;
  }
  const plainExact = train ? accuracy(plaintextLogistic(train, j.rounds, j.lr), test) : null;
  const plainApprox = train ? accuracy(plaintextLogistic(train, j.rounds, j.lr, coef), test) : null;
  writeFileSync(join(outDir, 'model.json'), JSON.stringify({ kind: 'logistic-regression', features: d, intercept: 'last', weights: Array.from(r.w) }));
  if (config.trainRows === null) {
    config.trainRows = r.trainRows;
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  }
  const result: CopmlJobResult = {
    protocol: 'copml',
    testAccuracy: r.testAccuracy,
    plaintextTestAccuracy: plainExact,
    plaintextApproxTestAccuracy: plainApprox,
    epsilon: null,
    delta: null,
    guarantee: config.guarantee,
    rounds: r.iterations,
    clients: N,
    colluding: j.colluding,
    blocks: K,
    degree: j.degree,
    resultsNeeded: config.resultsNeeded,
    prime: config.prime,
    sigmoidCoefficients: coef,
    trainRows: r.trainRows,
    testRows: test.count,
    features: d,
    bytesTotal: r.bytesTotal,
    respondersPerIteration: r.respondersPerIteration,
    transport: j.external ? 'separate processes' : 'in-process',
    seconds: (Date.now() - t0) / 1000,
    runDir: outDir,
  };
  const { seconds: _s, ...publicResult } = result;
  manifest.result = publicResult;
  manifest.config = config;
  manifest.attempts[0]!.endedAt = new Date().toISOString();
  manifest.attempts[0]!.stoppedBy = 'done';
  writeManifest(outDir, manifest);
  return result;
}

export interface CopmlClientJob {
  url: string;
  data: 'adult' | 'mnist';
  dataPath?: string;
  /** This party holds the training rows i with i mod shards = shard − 1 (the partition of `fed simulate`). */
  shard: number;
  shards: number;
  timeoutMs?: number;
  /** Tests: stop answering at this iteration and wait to be killed. */
  holdAtIteration?: number;
  onLog?: (line: string) => void;
}

/**
 * `dplens fed client --protocol copml`: one data owner and worker. It reads the data file with the
 * same public preprocessing as the server (standardisation constants and one-hot vocabulary of the
 * whole file, treated as public) and keeps only its own slice of training rows.
 */
export async function runCopmlClient(j: CopmlClientJob): Promise<CopmlPartyResult> {
  if (!(Number.isInteger(j.shard) && j.shard >= 1 && j.shard <= j.shards)) throw new FedInputError(`--shard must be in [1, --shards], got ${j.shard}`);
  const all = loadCopmlData(j.data, j.dataPath);
  const mine = subset(all.train, (i) => i % j.shards === j.shard - 1);
  j.onLog?.(`copml party: shard ${j.shard} of ${j.shards}, ${mine.count} own rows × ${mine.d} features`);
  return runCopmlParty({ url: j.url, data: mine, dataName: j.data, shard: { index: j.shard, of: j.shards }, timeoutMs: j.timeoutMs ?? 600_000, maxPayload: COPML_MAX_PAYLOAD, connectRetryMs: 120_000, ...(j.holdAtIteration !== undefined ? { holdAtIteration: j.holdAtIteration } : {}), log: j.onLog });
}
