/**
 * Runner behind `dplens fed simulate --protocol dp-svm`: DP-SVM averaging with one secure summation
 * (src/federated/dp-svm.ts) into a run folder (ledger.jsonl owned by the SERVER, config.json,
 * metrics.jsonl, model.json, run.json; the CLI then writes report.html).
 *
 * Features: the penultimate layer of a small CNN trained ONLY on a different, public dataset
 * (Fashion-MNIST for --data mnist, MNIST for --data fashion-mnist) — the stand-in for the paper's
 * SimCLR features. The net is the evaluation feature net (runs/eval.ts `featureNetFor`), cached the
 * same way. It never sees the private dataset, so the feature map is public.
 *
 * Guarantee: record-level (ε, δ)-DP under REPLACE-ONE of one record of one party; the parties,
 * their record counts, the survivor count, λ, T and the feature map are public. One Gaussian-
 * equivalent release, recorded with tryRecord after the survivors are known and before unmasking.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { loadDataset, resolveDataFlag, type ImageDataset } from '../data/index.js';
import { ensureEngine } from '../engine/index.js';
import { featuresOf, toFloatImages } from '../evaluate/index.js';
import { BudgetError, PrivacyLedger, keyedFingerprint, randomInt, seededRandom, secureRandom, type DpEvent, type RandomSource } from '../privacy/index.js';
import { calibrateRounds, encodeClientUpdate } from '../federated/dpfedavg.js';
import { modelNormBound, normaliseFeatures, partySensitivity, svmAccuracy, svmNoisePlan, trainLocalSvm, type SvmData } from '../federated/dp-svm.js';
import { simulateDpSvm } from '../federated/dp-svm-simulate.js';
import { SecAggError } from '../federated/secagg.js';
import type { RoundStart } from '../federated/client.js';
import { defaultThreshold } from '../federated/secagg.js';
import { featureNetFor } from './eval.js';
import { FedInputError, checkNeighbors, commandAfterProgram } from './fed.js';
import { LEDGER_TIMESTAMPS } from './released.js';
import { writeManifest, type RunManifest } from './manifest.js';

/** The public dataset whose CNN gives the features for each private one. */
export const PUBLIC_FEATURE_DATA: Record<string, string> = { mnist: 'fashion-mnist', 'fashion-mnist': 'mnist' };

export interface DpSvmJob {
  data: string;
  out: string;
  clients: number;
  examplesPerClient: number;
  epsilon: number;
  delta: number;
  lambda: number;
  iterations: number;
  dropout: number;
  seed?: number;
  phaseTimeoutMs?: number;
  argv?: string[];
  /** Tests: train the public feature net on only the first N public images / for E epochs (cached separately). */
  featureNetTrainLimit?: number;
  featureNetEpochs?: number;
  /** Tests: evaluate on the first N test images only. */
  testLimit?: number;
  onLog?: (line: string) => void;
  /** Also train the noiseless average (outside the guarantee; see DpSvmJobResult.nonPrivateAccuracy). */
  nonPrivateReference?: boolean;
  /** `dplens fed server --protocol dp-svm`: serve parties that run elsewhere (`dplens fed client`) on this address. */
  external?: { host: string; port: number };
  /** SecAgg+ neighbours per client (default defaultNeighbors(clients): complete graph up to a few hundred clients). */
  neighbors?: number;
}

export interface DpSvmJobResult {
  testAccuracy: number;
  /**
   * Accuracy of the same average without noise: a function of the private data that no guarantee
   * covers, so it is computed only when `nonPrivateReference` is set (library use, benchmarks) and
   * never written to the run folder or printed by the CLI.
   */
  nonPrivateAccuracy?: number;
  epsilon: number;
  delta: number;
  rounds: number;
  clients: number;
  survivors: number;
  threshold: number;
  /** Neighbours per client in secure aggregation (clients − 1: complete graph; fewer: SecAgg+). */
  neighbors: number;
  noiseMultiplier: number;
  sensitivity: number;
  ddgSigma: number;
  bytesTotal: number;
  bytesPerClient: number;
  relation: 'replace-one';
  unit: 'record';
  featureData: string;
  randomness: 'secure' | 'seeded';
  datasetFingerprint: string;
  seconds: number;
  runDir: string;
}

function rawFeatures(net: Parameters<typeof featuresOf>[0], d: ImageDataset, split: ImageDataset['train'], idx: ArrayLike<number>): { data: Float32Array; dim: number } {
  return featuresOf(net, toFloatImages({ ...split, height: d.height, width: d.width, channels: d.channels }, idx));
}

function features(net: Parameters<typeof featuresOf>[0], d: ImageDataset, split: ImageDataset['train'], idx: ArrayLike<number>, centre: Float64Array): SvmData {
  const f = rawFeatures(net, d, split, idx);
  return normaliseFeatures(f.data, Int32Array.from(idx, (i) => split.labels[i]!), idx.length, f.dim, centre);
}

/** Mean feature of (up to) the first 5,000 PUBLIC training images: the public centre (centring helps the one-vs-rest models, ReLU features all lie in one orthant). */
function publicCentre(net: Parameters<typeof featuresOf>[0], pub: ImageDataset): Float64Array {
  const n = Math.min(5000, pub.train.count);
  const f = rawFeatures(net, pub, pub.train, Int32Array.from({ length: n }, (_, i) => i));
  const mu = new Float64Array(f.dim);
  for (let i = 0; i < n; i++) for (let q = 0; q < f.dim; q++) mu[q]! += f.data[i * f.dim + q]! / n;
  return mu;
}

/** sha256 of the cached feature net (server and parties must use the same public feature map). */
function featureNetDigest(cachePath: string): string {
  return existsSync(cachePath) ? createHash('sha256').update(readFileSync(cachePath)).digest('hex').slice(0, 32) : 'uncached';
}

/**
 * `dplens fed client` for dp-svm: one party holding the training examples i ≡ shard − 1 (mod
 * shards) of `data`. On the round it checks the public parameters (records per party, feature-net
 * digest), computes its features with the public CNN, trains on exactly the first n records of its
 * slice (n is public: the sensitivity the server accounts assumes it), and returns its noisy share.
 */
export async function dpSvmPartyInput(p: { data: string; dataPath?: string; shard: number; shards: number; seed?: number; featureNetTrainLimit?: number; featureNetEpochs?: number; onLog?: (line: string) => void }): Promise<(r: RoundStart) => Promise<Uint32Array>> {
  // the party's own noise: secure unless the user seeds it
  const rng: RandomSource = p.seed !== undefined ? seededRandom((p.seed + 7919 * p.shard) >>> 0) : secureRandom();
  const publicName = PUBLIC_FEATURE_DATA[p.data];
  if (!publicName) throw new FedInputError(`--data ${p.data}: dp-svm needs a public feature dataset; supported: ${Object.keys(PUBLIC_FEATURE_DATA).join(', ')}`);
  const data = loadDataset(resolveDataFlag(p.data, p.dataPath));
  const slice = Int32Array.from({ length: data.train.count }, (_, i) => i).filter((i) => i % p.shards === p.shard - 1);
  // the public feature map is ready before the party connects (training it can take minutes)
  await ensureEngine({});
  const publicData = loadDataset(resolveDataFlag(publicName));
  const { net, cachePath } = featureNetFor(publicData, { trainLimit: p.featureNetTrainLimit, epochs: p.featureNetEpochs, onLog: p.onLog });
  const digest = featureNetDigest(cachePath);
  const centre = publicCentre(net, publicData);
  return async (r: RoundStart) => {
    const n = Number(r.info.examplesPerClient);
    if (!Number.isInteger(n) || n < 1) throw new SecAggError('dp-svm round without a valid examplesPerClient');
    if (slice.length < n) throw new SecAggError(`this party holds ${slice.length} records, the round assumes ${n}; refusing`);
    if (r.info.featureData !== publicName) throw new SecAggError(`the server uses features from ${String(r.info.featureData)}, this party ${publicName}; refusing`);
    if (r.info.featureNet !== digest) throw new SecAggError(`feature net ${digest} differs from the server's ${String(r.info.featureNet)}; refusing`);
    const mine = features(net, data, data.train, slice.subarray(0, n), centre);
    const classes = data.numClasses;
    if (r.dim !== classes * mine.dim) throw new SecAggError(`round dimension ${r.dim} is not ${classes} × ${mine.dim}`);
    const model = trainLocalSvm(mine, classes, { lambda: Number(r.info.lambda), iterations: Number(r.info.iterations) });
    return encodeClientUpdate(model, { clip: Number(r.info.clip), scaleBits: Number(r.info.scaleBits), sigma: Number(r.info.sigma), dim: r.dim }, rng);
  };
}

export async function runDpSvm(j: DpSvmJob): Promise<DpSvmJobResult> {
  const t0 = Date.now();
  if (!(j.epsilon > 0 && Number.isFinite(j.epsilon))) throw new FedInputError(`--epsilon must be a finite number > 0, got ${j.epsilon}`);
  if (!(j.delta > 0 && j.delta < 1)) throw new FedInputError(`--delta must be in (0, 1), got ${j.delta}`);
  if (!(j.dropout >= 0 && j.dropout < 1 / 3)) throw new FedInputError(`--dropout must be in [0, 1/3) for dp-svm, got ${j.dropout}`);
  if (j.clients < 3) throw new FedInputError(`--clients must be >= 3, got ${j.clients}`);
  if (!(j.lambda > 0)) throw new FedInputError(`--lambda must be > 0, got ${j.lambda}`);
  const publicName = PUBLIC_FEATURE_DATA[j.data];
  if (!publicName) throw new FedInputError(`--data ${j.data}: dp-svm needs a public feature dataset; supported: ${Object.keys(PUBLIC_FEATURE_DATA).join(', ')}`);
  const data = loadDataset(resolveDataFlag(j.data));
  if (j.clients * j.examplesPerClient > data.train.count) throw new FedInputError(`--clients × --examples-per-client = ${j.clients * j.examplesPerClient} exceeds the ${data.train.count} training examples of ${j.data}`);
  const outDir = resolve(j.out);
  const ledgerPath = join(outDir, 'ledger.jsonl');
  if (existsSync(ledgerPath)) throw new FedInputError(`${ledgerPath} already exists: use a new --out folder`);
  mkdirSync(outDir, { recursive: true });
  await ensureEngine({});
  const publicData = loadDataset(resolveDataFlag(publicName));
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const classes = data.numClasses;
  const threshold = defaultThreshold(j.clients);
  const neighbors = checkNeighbors(j.clients, j.neighbors, j.onLog);
  const training = { lambda: j.lambda, iterations: j.iterations };
  const sensitivity = partySensitivity(j.examplesPerClient, classes, training);
  const cal = calibrateRounds(j.epsilon, j.delta, 1);
  const randomness = j.seed !== undefined ? { kind: 'seeded' as const, seed: j.seed } : { kind: 'secure' as const };
  const ledger = PrivacyLedger.open(ledgerPath, { accountant: 'rdp', relation: 'replace-one', randomness, budget: { epsilon: j.epsilon, delta: j.delta }, meta: { command: 'fed simulate', method: 'dp-svm', role: 'server' } });
  try {
    j.onLog?.(`dp-svm: features from a CNN trained on public ${publicName} only`);
    const { net, cachePath, cached } = featureNetFor(publicData, { trainLimit: j.featureNetTrainLimit, epochs: j.featureNetEpochs, onLog: j.onLog });
    j.onLog?.(`feature net ${cached ? 'from cache' : 'trained'}: ${cachePath}`);
    const centre = publicCentre(net, publicData);
    // The split is data-independent: a random permutation of indices.
    const splitRng = j.seed !== undefined ? seededRandom(j.seed) : secureRandom();
    const perm = Int32Array.from({ length: data.train.count }, (_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) {
      const k = randomInt(splitRng, i + 1);
      [perm[i], perm[k]] = [perm[k]!, perm[i]!];
    }
    // a server of external parties holds no training data: only the public test split is featurised
    const used = perm.subarray(0, j.clients * j.examplesPerClient);
    const all = j.external ? undefined : features(net, data, data.train, used, centre);
    const testIdx = Int32Array.from({ length: Math.min(j.testLimit ?? data.test.count, data.test.count) }, (_, i) => i);
    const test = features(net, data, data.test, testIdx, centre);
    const D = test.dim;
    const shards: SvmData[] = [];
    for (let c = 0; c < (j.external ? 0 : j.clients); c++) {
      const a = c * j.examplesPerClient;
      const b = a + j.examplesPerClient;
      shards.push({ x: all!.x.slice(a * D, b * D), labels: all!.labels.slice(a, b), count: j.examplesPerClient, dim: D });
    }
    const dim = classes * D;
    const noise = svmNoisePlan(cal.noiseMultiplier, { parties: j.clients, minNoisy: threshold, dim, sensitivity, clip: modelNormBound(classes, j.lambda) });
    j.onLog?.(`dp-svm: ${j.clients} parties × ${j.examplesPerClient} records, threshold ${threshold}, ${dim} parameters, Δ_party ${sensitivity.toExponential(3)}, noise multiplier ${cal.noiseMultiplier.toFixed(3)} (σ = ${noise.sigma.toFixed(1)} quantised units per party, scaleBits ${noise.scaleBits})`);
    const config = {
      command: 'fed simulate',
      argv: j.argv ?? null,
      protocol: 'dp-svm',
      data: data.name,
      datasetFingerprint: fingerprint,
      featureData: publicName,
      featureNet: { cachePath, centre: `mean feature of the first ${Math.min(5000, publicData.train.count)} public ${publicName} training images`, trainLimit: j.featureNetTrainLimit ?? null, epochs: j.featureNetEpochs ?? null, dim: D - 1 },
      relation: 'replace-one',
      unit: 'record (one record of one party)',
      epsilon: j.epsilon,
      delta: j.delta,
      clients: j.clients,
      examplesPerClient: j.examplesPerClient,
      threshold,
      rounds: 1,
      model: `one-vs-rest L2-regularised logistic regression ${D}→${classes} (${dim} parameters)`,
      lambda: j.lambda,
      iterations: j.iterations,
      sensitivity,
      noiseMultiplier: cal.noiseMultiplier,
      ddg: { clip: noise.clip, scaleBits: noise.scaleBits, sigma: noise.sigma, dim },
      dropout: j.dropout,
      randomness: randomness.kind,
      seed: j.seed ?? null,
      accounting: 'output perturbation (Chaudhuri et al. 2011 / Wu et al. 2017 stability bound for full-batch GD) with distributed discrete Gaussian shares (Kairouz et al. 2021 Prop. 14) as Gaussian-equivalent RDP, replace-one, one release',
      transport: j.external ? `WebSocket (ws) server on ${j.external.host}:${j.external.port}, parties in their own processes (dplens fed client), one secure-aggregation round` : 'WebSocket (ws) on loopback, one connection per client, one secure-aggregation round',
    };
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
    const manifest: RunManifest = {
      version: 1,
      kind: 'fed',
      method: 'dp-svm',
      description: `DP-SVM averaging: ${j.clients} parties each train an L2-regularised one-vs-rest logistic model on ${j.examplesPerClient} records, add their share of the output-perturbation noise, and one secure summation gives the server only the noisy sum, which it averages.`,
      createdAt: new Date(t0).toISOString(),
      updatedAt: new Date(t0).toISOString(),
      config,
      dataset: { name: data.name, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: classes },
      privacy: {
        relation: 'replace-one',
        treatedAsPublic: ['the set and number of parties and each party\'s record count', 'the survivor count', 'the hyper-parameters (λ, T)', `the feature CNN (trained on public ${publicName} only)`, 'the test split (public holdout)'],
        accountant: 'rdp',
        delta: j.delta,
        budget: { epsilon: j.epsilon, delta: j.delta },
        ledger: 'ledger.jsonl',
        randomness,
        released: [
          { what: `number of parties (${j.clients}) and survivors`, where: ['config.json', 'ledger.jsonl', 'metrics.jsonl'], status: 'public-by-assumption', why: 'the replace-one proof treats the parties and their record counts as public' },
          { what: 'total wall time (seconds)', where: ['stdout'], status: 'outside-guarantee', why: 'local training time can depend on the data' },
          LEDGER_TIMESTAMPS,
        ],
      },
      metrics: 'metrics.jsonl',
      artifacts: [
        { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
        { path: 'ledger.jsonl', what: 'the server\'s privacy ledger (one entry, before unmasking)', status: 'public' },
        { path: 'ledger.jsonl.tip', what: 'ledger tip (signed with the owner key)', status: 'public' },
        { path: 'metrics.jsonl', what: 'ε, survivors and test accuracy of the averaged model', status: 'covered' },
        { path: 'model.json', what: 'averaged model (post-processing of the noisy sum)', status: 'covered' },
      ],
      attempts: [{ startedAt: new Date(t0).toISOString(), command: commandAfterProgram(j.argv), ledgerEntriesAtStart: 0 }],
    };
    writeManifest(outDir, manifest);
    const seedBase = j.seed;
    const dying = j.dropout > 0 ? (id: number): 'masked' | undefined => ((((id * 2654435761) ^ 40503) >>> 0) / 2 ** 32 < j.dropout ? 'masked' : undefined) : undefined;
    const r = await simulateDpSvm({
      shards,
      test,
      classes,
      training,
      noise,
      phaseTimeoutMs: j.phaseTimeoutMs,
      clientRandom: (id: number): RandomSource => (seedBase !== undefined ? seededRandom((seedBase + 7919 * id) >>> 0) : secureRandom()),
      record: (event: DpEvent, meta) => {
        const res = ledger.tryRecord({ event, method: 'dp-svm', datasetFingerprint: fingerprint, meta });
        if (!res.ok) throw new BudgetError(res.reason);
      },
      ...(dying ? { dieAt: dying } : {}),
      ...(j.external ? { external: { ...j.external, clients: j.clients } } : {}),
      info: { examplesPerClient: j.examplesPerClient, featureData: publicName, featureNet: featureNetDigest(cachePath) },
      neighbors,
      log: j.onLog,
    });
    if (!r.model) throw new FedInputError(`dp-svm: the secure summation did not complete (${r.status})${r.recorded ? '; its release stays charged in the ledger' : ''}`);
    const eps = ledger.spent(j.delta);
    appendFileSync(join(outDir, 'metrics.jsonl'), JSON.stringify({ round: 1, survivors: r.survivors, threshold, testAccuracy: r.testAccuracy, epsilon: eps }) + '\n');
    writeFileSync(join(outDir, 'model.json'), JSON.stringify({ kind: 'one-vs-rest-logistic', features: D, classes, params: Array.from(r.model) }));
    // Reference only (outside the guarantee; opt-in, never printed by the CLI): the average without noise.
    let nonPrivateAccuracy: number | undefined;
    if (j.nonPrivateReference && !j.external) {
      const plain = new Float64Array(dim);
      for (const s of shards) {
        const w = trainLocalSvm(s, classes, training);
        for (let q = 0; q < dim; q++) plain[q]! += w[q]! / shards.length;
      }
      nonPrivateAccuracy = svmAccuracy(plain, classes, test);
    }
    const result: DpSvmJobResult = {
      testAccuracy: r.testAccuracy,
      ...(nonPrivateAccuracy !== undefined ? { nonPrivateAccuracy } : {}),
      epsilon: eps,
      delta: j.delta,
      rounds: 1,
      clients: j.clients,
      survivors: r.survivors,
      threshold,
      neighbors,
      noiseMultiplier: cal.noiseMultiplier,
      sensitivity,
      ddgSigma: noise.sigma,
      bytesTotal: r.bytesTotal,
      bytesPerClient: r.bytesPerClient,
      relation: 'replace-one',
      unit: 'record',
      featureData: publicName,
      randomness: randomness.kind,
      datasetFingerprint: fingerprint,
      seconds: (Date.now() - t0) / 1000,
      runDir: outDir,
    };
    const { seconds: _s, nonPrivateAccuracy: _np, ...publicResult } = result;
    manifest.result = publicResult;
    manifest.attempts[0]!.endedAt = new Date().toISOString();
    manifest.attempts[0]!.stoppedBy = 'rounds';
    writeManifest(outDir, manifest);
    return result;
  } finally {
    ledger.close();
  }
}
