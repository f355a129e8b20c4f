/**
 * Runner behind `dplens attack gradient-leakage`: layer-wise gradient-leakage measures of the
 * reference CNN (src/audit/gradient-leakage.ts) into a run folder: leakage.json (all figures),
 * metrics.jsonl (one row per aggregation level), config.json, run.json.
 *
 * Examples come from the chosen split (default: the test split, the user's public holdout, so the
 * figures release nothing private; with --split train they are statistics of private records
 * outside any guarantee, and run.json says so). The model: a fresh reference CNN (`cnn`, seeded) or
 * the weights of a `dplens train --model cnn` run folder.
 */
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, resolveDataFlag } from '../data/index.js';
import { ensureEngine } from '../engine/index.js';
import { initRefCnn, loadRefCnnParams } from '../audit/index.js';
import { hostParams, refCnnDims } from '../audit/refcnn-host.js';
import { gradientVInformation, latentSubspaceDistance, layerSensitivity, LEAKAGE_LAYERS, type LeakageExamples, type SensitivityResult, type SubspaceResult, type VInfoRow } from '../audit/gradient-leakage.js';
import { keyedFingerprint, secureRandom, seededRandom } from '../privacy/index.js';
import { AttackInputError } from './attack-hitaj.js';
import { writeManifest, type RunManifest } from './manifest.js';

export interface LeakageJob {
  data: string;
  out: string;
  model: string;
  split: 'train' | 'test';
  /** Clients in the pool (one example each): targets + others. */
  clients: number;
  targets: number;
  aggregation: number[];
  projectDim: number;
  sensitivityExamples: number;
  subspacePerClass: number;
  /** Optional per-client DP release before aggregation. */
  noise?: number;
  clip?: number;
  seed?: number;
  argv?: string[];
  onLog?: (line: string) => void;
}

export interface LeakageJobResult {
  attack: 'gradient-leakage';
  model: string;
  split: string;
  layers: readonly string[];
  vInformation: VInfoRow[];
  sensitivity: SensitivityResult[];
  subspace: SubspaceResult[];
  /** Layer with the largest effective rank of the input Jacobian (original information) / latent subspace distance. */
  mostOriginal: string;
  mostLatent: string;
  /** Label V-information (bits) of the best layer at each aggregation level. */
  labelBitsByAggregation: { aggregation: number; bestLayer: string; labelBits: number; imageBits: number }[];
  release: { clip: number; noiseMultiplier: number } | null;
  clients: number;
  targets: number;
  seconds: number;
  runDir: string;
}

export async function runLeakageJob(j: LeakageJob): Promise<LeakageJobResult> {
  const t0 = Date.now();
  if (j.targets < 8 || j.targets > j.clients) throw new AttackInputError(`--targets must be in [8, --clients], got ${j.targets}`);
  if (j.aggregation.some((a) => !Number.isInteger(a) || a < 1)) throw new AttackInputError(`--aggregation must list integers >= 1, got ${j.aggregation.join(',')}`);
  const maxA = Math.max(...j.aggregation);
  if (maxA - 1 > j.clients - j.targets) throw new AttackInputError(`--aggregation ${maxA} needs ${maxA - 1} other clients; --clients ${j.clients} − --targets ${j.targets} = ${j.clients - j.targets}`);
  if (j.noise !== undefined && !(j.noise >= 0)) throw new AttackInputError(`--noise must be >= 0, got ${j.noise}`);
  const data = loadDataset(resolveDataFlag(j.data));
  const part = j.split === 'test' ? data.test : data.train;
  const need = Math.max(j.clients, j.sensitivityExamples);
  if (part.count < need) throw new AttackInputError(`--clients ${j.clients}: the ${j.split} split of ${data.name} has only ${part.count} examples`);
  const outDir = resolve(j.out);
  if (existsSync(join(outDir, 'leakage.json'))) throw new AttackInputError(`${join(outDir, 'leakage.json')} already exists: use a new --out folder`);
  mkdirSync(outDir, { recursive: true });
  await ensureEngine({});
  let params;
  if (j.model === 'cnn') params = initRefCnn(j.seed ?? 1, data.height, data.width, data.channels, data.numClasses);
  else {
    if (!existsSync(join(j.model, 'model.json'))) throw new AttackInputError(`--model ${j.model}: not "cnn" and no model.json there`);
    params = await loadRefCnnParams(j.model);
  }
  const p = hostParams(params.map((t) => t.dataSync()));
  for (const t of params) t.dispose();
  const d = refCnnDims(data.height, data.width, data.channels, data.numClasses);
  const per = data.height * data.width * data.channels;
  // a fixed, seeded permutation of the split's examples (which clients exist is a design choice)
  const n = Math.min(part.count, Math.max(need, 40 * data.numClasses));
  const order = Int32Array.from({ length: part.count }, (_, i) => i);
  const shuffleRnd = seededRandom(j.seed ?? 1);
  for (let i = order.length - 1; i > 0; i--) {
    const k = Math.floor(shuffleRnd.nextDouble() * (i + 1));
    [order[i], order[k]] = [order[k]!, order[i]!];
  }
  const ex: LeakageExamples = { pixels: new Float64Array(n * per), labels: new Int32Array(n), count: n };
  for (let r = 0; r < n; r++) {
    const i = order[r]!;
    for (let t = 0; t < per; t++) ex.pixels[r * per + t] = part.images[i * per + t]! / 255;
    ex.labels[r] = part.labels[i]!;
  }
  const release = j.noise !== undefined ? { clip: j.clip ?? 1, noiseMultiplier: j.noise, rng: j.seed !== undefined ? seededRandom(j.seed ^ 0x3c6ef372) : secureRandom() } : undefined;
  j.onLog?.('attack-independent measures: input sensitivity of each layer gradient, class-subspace distances');
  const sensitivity = layerSensitivity(d, p, ex, { examples: j.sensitivityExamples, seed: j.seed ?? 1 });
  const subspace = latentSubspaceDistance(d, p, ex, { perClass: j.subspacePerClass });
  j.onLog?.(`V-information over aggregation ${j.aggregation.join(', ')} (${j.clients} clients, ${j.targets} targets, projection ${j.projectDim})`);
  const pool: LeakageExamples = { pixels: ex.pixels.subarray(0, j.clients * per), labels: ex.labels.subarray(0, j.clients), count: j.clients };
  const vInformation = gradientVInformation(d, p, pool, { aggregation: j.aggregation, targets: j.targets, projectDim: j.projectDim, seed: j.seed ?? 1, ...(release ? { release } : {}), onProgress: j.onLog });
  const arg = <T>(rows: T[], f: (r: T) => number): T => rows.reduce((a, b) => (f(b) > f(a) ? b : a));
  const labelBitsByAggregation = j.aggregation.map((A) => {
    const rows = vInformation.filter((r) => r.aggregation === A);
    const best = arg(rows, (r) => r.labelBits);
    return { aggregation: A, bestLayer: best.layer, labelBits: best.labelBits, imageBits: Math.max(...rows.map((r) => r.imageBits)) };
  });
  for (const row of labelBitsByAggregation) {
    const m: Record<string, number> = { step: row.aggregation, aggregation: row.aggregation };
    for (const r of vInformation.filter((x) => x.aggregation === row.aggregation)) {
      m[`${r.layer}LabelBits`] = r.labelBits;
      m[`${r.layer}ImageBits`] = r.imageBits;
    }
    appendFileSync(join(outDir, 'metrics.jsonl'), JSON.stringify(m) + '\n');
  }
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const result: LeakageJobResult = {
    attack: 'gradient-leakage',
    model: j.model,
    split: j.split,
    layers: LEAKAGE_LAYERS,
    vInformation,
    sensitivity,
    subspace,
    mostOriginal: arg(sensitivity, (r) => r.effectiveRank).layer,
    mostLatent: arg(subspace, (r) => r.latent).layer,
    labelBitsByAggregation,
    release: release ? { clip: release.clip, noiseMultiplier: release.noiseMultiplier } : null,
    clients: j.clients,
    targets: j.targets,
    seconds: (Date.now() - t0) / 1000,
    runDir: outDir,
  };
  const status = j.split === 'test' ? ('public' as const) : ('outside-guarantee' as const);
  const why = j.split === 'test' ? undefined : 'statistics of gradients of private training records, no DP';
  const config = {
    command: 'attack gradient-leakage',
    argv: j.argv ?? null,
    attack: 'gradient-leakage',
    paper: 'Mo et al., Quantifying and Localizing Usable Information Leakage from Neural Network Gradients (arXiv 2105.13929)',
    data: data.name,
    datasetFingerprint: fingerprint,
    split: j.split,
    model: j.model === 'cnn' ? `fresh reference CNN (seed ${j.seed ?? 1})` : j.model,
    clients: j.clients,
    examplesPerClient: 1,
    targets: j.targets,
    aggregation: j.aggregation,
    projectDim: j.projectDim,
    sensitivityExamples: j.sensitivityExamples,
    subspacePerClass: j.subspacePerClass,
    release: result.release,
    families: {
      label: `linear-softmax (LDA fit, shrinkage chosen on 5-fold cross-validation on the fit rows, "ignore G" included) on a seeded random ${j.projectDim}-d projection of the layer gradient's direction`,
      image: 'linear-Gaussian (ridge, λ chosen by 5-fold cross-validation, λ = ∞ = "ignore G" included) to the 7×7 average-pooled image',
    },
    seed: j.seed ?? null,
  };
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(outDir, 'leakage.json'), JSON.stringify(result, null, 1) + '\n');
  const manifest: RunManifest = {
    version: 1,
    kind: 'audit',
    method: 'attack-gradient-leakage',
    description: `Layer-wise gradient leakage of the reference CNN: V-information of a client's label and image from its gradient averaged with ${j.aggregation.join('/')} clients, and attack-independent sensitivity / subspace measures.`,
    createdAt: new Date(t0).toISOString(),
    updatedAt: new Date().toISOString(),
    config,
    dataset: { name: data.name, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: data.numClasses },
    metrics: 'metrics.jsonl',
    artifacts: [
      { path: 'config.json', what: 'resolved configuration', status: 'public' },
      { path: 'leakage.json', what: 'all leakage figures', status, ...(why ? { why } : {}) },
      { path: 'metrics.jsonl', what: 'V-information per layer and aggregation level', status, ...(why ? { why } : {}) },
    ],
    attempts: [{ startedAt: new Date(t0).toISOString(), command: j.argv?.slice(1), ledgerEntriesAtStart: 0, endedAt: new Date().toISOString(), stoppedBy: 'done' }],
    result: result as unknown as Record<string, unknown>,
  };
  writeManifest(outDir, manifest);
  return result;
}
