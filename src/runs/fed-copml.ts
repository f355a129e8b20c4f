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
import { simulateCopml } from '../federated/copml-simulate.js';
import { writeManifest, type RunManifest } from './manifest.js';
import { FedInputError } from './fed.js';

export interface CopmlJob {
  data: 'adult' | 'mnist';
  dataPath?: string;
  out: string;
  clients: number;
  colluding: number;
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
}

export interface CopmlJobResult {
  protocol: 'copml';
  testAccuracy: number;
  plaintextTestAccuracy: number;
  plaintextApproxTestAccuracy: number;
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
  seconds: number;
  runDir: string;
}

function withIntercept(features: Float32Array, labels: Int32Array, count: number, d0: number, keep: (i: number) => boolean, label: (y: number) => number, limit = Infinity): Binary {
  const idx: number[] = [];
  for (let i = 0; i < count && idx.length < limit; i++) if (keep(i)) idx.push(i);
  const d = d0 + 1;
  const x = new Float32Array(idx.length * d);
  const y = new Int32Array(idx.length);
  idx.forEach((i, q) => {
    x.set(features.subarray(i * d0, (i + 1) * d0), q * d);
    x[q * d + d0] = 1;
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
  const toFloat = (imgs: Uint8Array): Float32Array => Float32Array.from(imgs, (v) => v / 255);
  const conv = (s: { images: Uint8Array; labels: Int32Array; count: number }, lim?: number): Binary => withIntercept(toFloat(s.images.subarray(0, s.count * f)), s.labels, s.count, f, (i) => s.labels[i] === 3 || s.labels[i] === 5, (y) => (y === 5 ? 1 : 0), lim);
  return { train: conv(ds.train, maxTrain), test: conv(ds.test), source: ds.source, rawFingerprint: ds.rawFingerprint, description: 'MNIST digits 3 vs 5 (label 1 = "5"), pixels / 255' };
}

export async function runCopml(j: CopmlJob): Promise<CopmlJobResult> {
  const t0 = Date.now();
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3 for copml, got ${j.clients}`);
  if (j.colluding < 1) throw new FedInputError(`--colluding must be >= 1, got ${j.colluding}`);
  const K = maxBlocks(j.clients, j.colluding, j.degree);
  if (K < 1) throw new FedInputError(`--clients ${j.clients} is too few for --colluding ${j.colluding} at sigmoid degree ${j.degree}: COPML needs N ≥ (2r+1)(K+T−1)+1 = ${needed(1, j.colluding, j.degree)} (K = 1)`);
  const outDir = resolve(j.out);
  if (existsSync(join(outDir, 'run.json'))) throw new FedInputError(`${join(outDir, 'run.json')} already exists: use a new --out folder`);
  const data = loadCopmlData(j.data, j.dataPath, j.maxTrain);
  mkdirSync(outDir, { recursive: true });
  const p = j.degree === 1 ? P61 : P127;
  const coef = sigmoidFit(j.degree, j.fitRange);
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const N = j.clients;
  const parts: Binary[] = Array.from({ length: N }, (_, k) => subset(data.train, (i) => i % N === k));
  const config = {
    command: 'fed simulate',
    argv: j.argv ?? null,
    protocol: 'copml',
    data: j.data,
    dataDescription: data.description,
    datasetFingerprint: fingerprint,
    clients: N,
    colluding: j.colluding,
    blocks: K,
    resultsNeeded: needed(K, j.colluding, j.degree),
    sigmoidDegree: j.degree,
    sigmoidFitRange: j.fitRange,
    sigmoidCoefficients: coef,
    prime: p === P61 ? '2^61 − 1' : '2^127 − 1',
    fixedPoint: { lx: j.lx, lw: j.lw, lc: j.lc },
    iterations: j.rounds,
    lr: j.lr,
    trainRows: data.train.count,
    testRows: data.test.count,
    features: data.train.d,
    partition: `party k holds training rows i with i mod ${N} = k − 1`,
    guarantee: 'no differential privacy: information-theoretic secrecy of each party\'s rows against any T colluding parties; the decoder (server) learns every iteration\'s gradient and the model',
    transport: 'WebSocket (ws) on loopback, one connection per party; shares sealed with AES-256-GCM under pairwise X25519 keys, routed by the server',
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
    dataset: { name: j.data, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: 2 },
    metrics: 'metrics.jsonl',
    artifacts: [
      { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
      { path: 'metrics.jsonl', what: 'test accuracy of the model after each iteration', status: 'outside-guarantee', why: 'COPML has no DP guarantee: the model is a function of the private rows' },
      { path: 'model.json', what: 'logistic-regression weights (released in the clear)', status: 'outside-guarantee', why: 'COPML has no DP guarantee: the model is a function of the private rows' },
    ],
    attempts: [{ startedAt: new Date(t0).toISOString(), command: j.argv, ledgerEntriesAtStart: 0 }],
  };
  writeManifest(outDir, manifest);
  const metricsPath = join(outDir, 'metrics.jsonl');
  j.onLog?.(`copml: ${N} parties, T = ${j.colluding}, K = ${K}, degree ${j.degree} (needs ${config.resultsNeeded} results per iteration), ${data.train.count} training rows × ${data.train.d} features`);
  const dying = new Set<number>();
  for (let k = 0; k < (j.dropouts ?? 0); k++) dying.add(N - k);
  const r = await simulateCopml({
    plan: { p, N, K, T: j.colluding, r: j.degree, fp: { lx: j.lx, lw: j.lw, lc: j.lc }, coef, d: data.train.d, iterations: j.rounds, lr: j.lr, m: data.train.count },
    parts,
    test: data.test,
    timeoutMs: j.timeoutMs,
    dieAt: (id) => (dying.has(id) ? 1 : undefined),
    log: j.onLog,
    onIteration: (it, w, responders) => {
      const acc = accuracy(w, data.test);
      appendFileSync(metricsPath, JSON.stringify({ iteration: it, testAccuracy: acc, responders }) + '\n');
      if (it % 5 === 0 || it === j.rounds) j.onLog?.(`iteration ${it}: test accuracy ${(100 * acc).toFixed(2)}% (${responders} results)`);
    },
  });
  const plainExact = accuracy(plaintextLogistic(data.train, j.rounds, j.lr), data.test);
  const plainApprox = accuracy(plaintextLogistic(data.train, j.rounds, j.lr, coef), data.test);
  writeFileSync(join(outDir, 'model.json'), JSON.stringify({ kind: 'logistic-regression', features: data.train.d, intercept: 'last', weights: Array.from(r.w) }));
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
    trainRows: data.train.count,
    testRows: data.test.count,
    features: data.train.d,
    bytesTotal: r.bytesTotal,
    seconds: (Date.now() - t0) / 1000,
    runDir: outDir,
  };
  const { seconds: _s, ...publicResult } = result;
  manifest.result = publicResult;
  manifest.attempts[0]!.endedAt = new Date().toISOString();
  manifest.attempts[0]!.stoppedBy = 'done';
  writeManifest(outDir, manifest);
  return result;
}
