/**
 * Runner behind `dplens attack hitaj-gan`: the GAN attack of Hitaj et al. (CCS 2017) on
 * collaborative training with selective parameter sharing (src/audit/hitaj-gan.ts), into a run
 * folder: config.json, ledger.jsonl (the VICTIM's DP-SGD steps, or one nonPrivate entry), metrics.jsonl
 * (judged generator output every few rounds), samples.png (100 generator samples), attack.json, run.json.
 *
 * The judge: the evaluation feature net of `dplens eval` (runs/eval.ts `featureNetFor`: a strided
 * CNN trained on the REAL training split with a fixed seed, cached outside any run folder). It is an
 * instrument of the study and no party sees it. Figures: the share of generator samples it labels as
 * the victim class, and its mean probability of that class (chance: 1/K); and a template judge
 * (prototypeJudge: correlation with each class's mean real test image), which noise that happens
 * to fool the CNN judge does not pass. `--control` runs the same
 * study with the victim's class-v records removed: what the adversary's generator reaches when the
 * shared model never saw class v (the attack's baseline).
 *
 * The victim's party: class v plus the next four classes (cyclically) of the dataset; the adversary
 * the remaining K − 5 classes. Records per class: the first `perClass` of the training split.
 * The parties run in one process; the parameter server is a function call (the attack does not
 * depend on the transport; dplens fed has the socket protocols).
 */
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadDataset, resolveDataFlag, writePngGrid, type ImageDataset } from '../data/index.js';
import { ensureEngine } from '../engine/index.js';
import { runHitajAttack, type PartyData } from '../audit/hitaj-gan.js';
import { BudgetError, DpEvents, PrivacyLedger, calibrateNoiseMultiplier, dpsgdEpsilon, keyedFingerprint, secureRandom, seededRandom } from '../privacy/index.js';
import { featureNetFor } from './eval.js';
import { LEDGER_TIMESTAMPS } from './released.js';
import { writeManifest, type RunManifest } from './manifest.js';

export class AttackInputError extends Error {
  override name = 'UsageError';
}

export interface HitajJob {
  data: string;
  out: string;
  victimClass: number;
  perClass: number;
  rounds: number;
  victimSteps: number;
  adversarySteps: number;
  generatorSteps: number;
  batchSize: number;
  uploadFraction: number;
  downloadFraction: number;
  learningRate: number;
  /** Victim DP: target ε (σ calibrated for the planned steps) or σ directly; neither = no DP. */
  epsilon?: number;
  noise?: number;
  delta: number;
  clip: number;
  /** The victim does not hold class v (baseline). */
  control: boolean;
  /** Generator samples judged at the end (and 200 every `evalEvery` rounds). */
  samples: number;
  evalEvery: number;
  seed?: number;
  argv?: string[];
  /** Tests: judge trained on the first N real training images / for E epochs (cached separately). */
  judgeTrainLimit?: number;
  judgeEpochs?: number;
  testLimit?: number;
  onLog?: (line: string) => void;
}

export interface HitajJobResult {
  attack: 'hitaj-gan';
  victimClass: number;
  /** Share of judged generator samples the real-data classifier labels as the victim class. */
  victimClassShare: number;
  /** Mean probability of the victim class given by the judge. */
  victimClassConfidence: number;
  /** Template judge: share of samples whose most correlated real class-mean image is class v. */
  prototypeShare: number;
  /** Template judge: mean Pearson correlation of the samples with the real class-v mean image. */
  prototypeCorrelation: number;
  /**
   * Means over the judged checkpoints of the second half of training (every --eval-every rounds,
   * 200 samples each): the generator oscillates between modes, so one final snapshot is noisy.
   */
  lateMean: { checkpoints: number; victimClassShare: number; victimClassConfidence: number; prototypeShare: number; prototypeCorrelation: number };
  chance: number;
  samples: number;
  /** Accuracy of the final shared model on the real test split (K classes). */
  sharedModelTestAccuracy: number;
  dp: boolean;
  epsilon: number | null;
  delta: number;
  noiseMultiplier: number | null;
  clip: number | null;
  sampleRate: number;
  victimSteps: number;
  rounds: number;
  stoppedBy: string;
  control: boolean;
  victimRecords: number;
  adversaryRecords: number;
  victimClasses: number[];
  adversaryClasses: number[];
  uploadFraction: number;
  downloadFraction: number;
  parameters: number;
  judgeTestAccuracy: number;
  randomness: 'secure' | 'seeded';
  png: string;
  seconds: number;
  runDir: string;
}

function party(ds: ImageDataset, classes: number[], perClass: number): PartyData {
  const per = ds.height * ds.width * ds.channels;
  const idx: number[] = [];
  const cnt = new Map<number, number>();
  for (let i = 0; i < ds.train.count; i++) {
    const y = ds.train.labels[i]!;
    if (classes.includes(y) && (cnt.get(y) ?? 0) < perClass) {
      idx.push(i);
      cnt.set(y, (cnt.get(y) ?? 0) + 1);
    }
  }
  const x = new Float32Array(idx.length * per);
  const y = new Int32Array(idx.length);
  idx.forEach((i, r) => {
    for (let t = 0; t < per; t++) x[r * per + t] = ds.train.images[i * per + t]! / 255;
    y[r] = ds.train.labels[i]!;
  });
  return { x, y, count: idx.length };
}

/**
 * A second, non-learned judge (template matching): Pearson correlation of each sample with each
 * class's mean REAL test image. A learned judge can be fooled by noise patterns (adversarial
 * examples for it); a sample whose best-correlated class mean is v, with a high correlation, looks
 * like a class-v prototype to the pixel eye.
 */
export function prototypeJudge(imgs: Float32Array, n: number, test: PartyData, per: number, classes: number, v: number): { share: number; correlation: number } {
  const means = Array.from({ length: classes }, () => new Float64Array(per));
  const cnt = new Float64Array(classes);
  for (let i = 0; i < test.count; i++) {
    const y = test.y[i]!;
    cnt[y]! += 1;
    const m = means[y]!;
    for (let t = 0; t < per; t++) m[t]! += test.x[i * per + t]!;
  }
  const centred = means.map((m, k) => {
    const c = m.map((x) => x / Math.max(cnt[k]!, 1));
    const mu = c.reduce((a, b) => a + b, 0) / per;
    const z = c.map((x) => x - mu);
    const nz = Math.hypot(...z) || 1;
    return z.map((x) => x / nz);
  });
  let hits = 0;
  let corrV = 0;
  for (let i = 0; i < n; i++) {
    const x = imgs.subarray(i * per, (i + 1) * per);
    let mu = 0;
    for (let t = 0; t < per; t++) mu += x[t]! / per;
    let nx = 0;
    for (let t = 0; t < per; t++) nx += (x[t]! - mu) ** 2;
    nx = Math.sqrt(nx) || 1;
    let best = -1;
    let bestC = -Infinity;
    for (let k = 0; k < classes; k++) {
      let c = 0;
      const m = centred[k]!;
      for (let t = 0; t < per; t++) c += (x[t]! - mu) * m[t]!;
      c /= nx;
      if (k === v) corrV += c / n;
      if (c > bestC) {
        bestC = c;
        best = k;
      }
    }
    if (best === v) hits++;
  }
  return { share: hits / n, correlation: corrV };
}

export async function runHitajJob(j: HitajJob): Promise<HitajJobResult> {
  const t0 = Date.now();
  const data = loadDataset(resolveDataFlag(j.data));
  const K = data.numClasses;
  if (K < 6) throw new AttackInputError(`--data ${j.data}: the attack study needs ≥ 6 classes (victim 5, adversary ≥ 1), got ${K}`);
  if (!Number.isInteger(j.victimClass) || j.victimClass < 0 || j.victimClass >= K) throw new AttackInputError(`--victim-class must be an integer in [0, ${K - 1}], got ${j.victimClass}`);
  if (j.epsilon !== undefined && j.noise !== undefined) throw new AttackInputError('give --epsilon (σ calibrated) or --noise σ, not both');
  if (j.epsilon !== undefined && !(j.epsilon > 0 && Number.isFinite(j.epsilon))) throw new AttackInputError(`--epsilon must be a finite number > 0, got ${j.epsilon}`);
  if (j.noise !== undefined && !(j.noise > 0)) throw new AttackInputError(`--noise must be > 0 (leave it out for no DP), got ${j.noise}`);
  if (!(j.delta > 0 && j.delta < 1)) throw new AttackInputError(`--delta must be in (0, 1), got ${j.delta}`);
  if (!(j.uploadFraction > 0 && j.uploadFraction <= 1)) throw new AttackInputError(`--upload-fraction must be in (0, 1], got ${j.uploadFraction}`);
  if (!(j.downloadFraction > 0 && j.downloadFraction <= 1)) throw new AttackInputError(`--download-fraction must be in (0, 1], got ${j.downloadFraction}`);
  const outDir = resolve(j.out);
  const ledgerPath = join(outDir, 'ledger.jsonl');
  if (existsSync(ledgerPath)) throw new AttackInputError(`${ledgerPath} already exists: use a new --out folder`);
  mkdirSync(outDir, { recursive: true });
  await ensureEngine({});
  const v = j.victimClass;
  const victimClasses = [0, 1, 2, 3, 4].map((k) => (v + k) % K);
  const adversaryClasses = Array.from({ length: K }, (_, k) => k).filter((k) => !victimClasses.includes(k));
  const victim = party(data, j.control ? victimClasses.slice(1) : victimClasses, j.perClass);
  const adversary = party(data, adversaryClasses, j.perClass);
  if (victim.count < j.batchSize) throw new AttackInputError(`--batch-size ${j.batchSize} exceeds the victim's ${victim.count} records`);
  const dpOn = j.epsilon !== undefined || j.noise !== undefined;
  const q = j.batchSize / victim.count;
  const plannedSteps = j.rounds * j.victimSteps;
  const sigma = j.noise ?? (j.epsilon !== undefined ? calibrateNoiseMultiplier({ targetEpsilon: j.epsilon, delta: j.delta, sampleRate: q, steps: plannedSteps, accountant: 'rdp' }) : undefined);
  const randomness = j.seed !== undefined ? { kind: 'seeded' as const, seed: j.seed } : { kind: 'secure' as const };
  const rng = j.seed !== undefined ? seededRandom(j.seed) : secureRandom();
  const fingerprint = keyedFingerprint(data.rawFingerprint);
  const ledger = PrivacyLedger.open(ledgerPath, {
    accountant: 'rdp',
    relation: 'add-remove',
    randomness,
    ...(j.epsilon !== undefined ? { budget: { epsilon: j.epsilon, delta: j.delta } } : {}),
    meta: { command: 'attack hitaj-gan', method: 'attack-hitaj-gan', role: 'victim', dataset: data.name },
  });
  try {
    const config = {
      command: 'attack hitaj-gan',
      argv: j.argv ?? null,
      attack: 'hitaj-gan',
      paper: 'Hitaj, Ateniese & Perez-Cruz, Deep Models Under the GAN (CCS 2017)',
      data: data.name,
      datasetFingerprint: fingerprint,
      victimClass: v,
      victimClasses: j.control ? victimClasses.slice(1) : victimClasses,
      adversaryClasses,
      control: j.control,
      perClass: j.perClass,
      victimRecords: victim.count,
      adversaryRecords: adversary.count,
      rounds: j.rounds,
      victimSteps: j.victimSteps,
      adversarySteps: j.adversarySteps,
      generatorSteps: j.generatorSteps,
      batchSize: j.batchSize,
      learningRate: j.learningRate,
      uploadFraction: j.uploadFraction,
      downloadFraction: j.downloadFraction,
      sharedModel: `MLP ${data.height * data.width * data.channels} → 256 ReLU → ${K + 1} (class ${K} = the adversary's fake class)`,
      generator: 'MLP 64 → 256 ReLU → pixels sigmoid, Adam 2e-3 (β1 0.5)',
      dp: dpOn ? { noiseMultiplier: sigma, clip: j.clip, sampleRate: q, plannedSteps, targetEpsilon: j.epsilon ?? null, delta: j.delta, accounting: 'DP-SGD of the victim: poissonSampled(q, gaussian(σ)) per step, RDP, add/remove of one victim record' } : null,
      judge: 'evaluation feature net of dplens eval (strided CNN trained on the real training split)',
      randomness: randomness.kind,
      seed: j.seed ?? null,
      transport: 'in-process (parties and parameter server as function calls)',
    };
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2));
    const manifest: RunManifest = {
      version: 1,
      kind: 'audit',
      method: 'attack-hitaj-gan',
      description: `GAN attack of Hitaj et al. on collaborative learning: the adversary (classes ${adversaryClasses.join(',')}) trains a generator against the shared model to obtain prototypes of the victim's class ${v}${j.control ? ' (control: the victim does not hold class ' + v + ')' : ''}; ${dpOn ? `the victim's updates are DP-SGD (σ ${sigma!.toFixed(3)}, C ${j.clip})` : 'no DP'}.`,
      createdAt: new Date(t0).toISOString(),
      updatedAt: new Date(t0).toISOString(),
      config,
      dataset: { name: data.name, source: data.source, fingerprint, trainSize: data.train.count, testSize: data.test.count, numClasses: K },
      privacy: {
        relation: 'add-remove',
        treatedAsPublic: ["the victim's record count", 'the hyper-parameters and the class split', "the adversary's own data", 'the test split (public holdout)'],
        accountant: 'rdp',
        delta: j.delta,
        ...(j.epsilon !== undefined ? { budget: { epsilon: j.epsilon, delta: j.delta } } : {}),
        ledger: 'ledger.jsonl',
        randomness,
        released: [LEDGER_TIMESTAMPS, { what: 'total wall time (seconds)', where: ['stdout', 'attack.json'], status: 'outside-guarantee', why: 'local training time can depend on the data' }],
      },
      metrics: 'metrics.jsonl',
      artifacts: [
        { path: 'config.json', what: 'resolved configuration (keyed dataset fingerprint)', status: 'public' },
        { path: 'ledger.jsonl', what: "the victim's privacy ledger (its DP-SGD steps, or one nonPrivate entry)", status: 'public' },
        { path: 'samples.png', what: "100 samples of the adversary's generator", status: dpOn ? 'covered' : 'outside-guarantee', ...(dpOn ? {} : { why: 'no DP: the shared model and so the generator depend on the victim data without a guarantee' }) },
        { path: 'metrics.jsonl', what: 'judged generator output every few rounds', status: dpOn ? 'covered' : 'outside-guarantee', ...(dpOn ? {} : { why: 'no DP' }) },
        { path: 'attack.json', what: 'attack figures', status: dpOn ? 'covered' : 'outside-guarantee', ...(dpOn ? {} : { why: 'no DP' }) },
      ],
      attempts: [{ startedAt: new Date(t0).toISOString(), command: j.argv?.slice(1), ledgerEntriesAtStart: 0 }],
    };
    writeManifest(outDir, manifest);
    if (!dpOn) {
      const r = ledger.tryRecord({ event: DpEvents.nonPrivate('hitaj-gan study without DP: the victim shares exact updates'), method: 'attack-hitaj-gan', datasetFingerprint: fingerprint, meta: { role: 'victim' } });
      if (!r.ok) throw new BudgetError(r.reason);
    }
    const { net: judge, cachePath } = featureNetFor(data, { trainLimit: j.judgeTrainLimit, epochs: j.judgeEpochs, onLog: j.onLog });
    const shape = [data.height, data.width, data.channels] as const;
    const judgeImages = (imgs: Float32Array, n: number): { share: number; confidence: number } =>
      tf.tidy(() => {
        const p = tf.softmax(judge.logits(tf.tensor4d(imgs, [n, ...shape]), false));
        const arg = tf.argMax(p, 1).dataSync();
        let s = 0;
        for (const a of arg) if (a === v) s++;
        return { share: s / n, confidence: tf.mean(tf.slice(p, [0, v], [n, 1])).dataSync()[0]! };
      });
    const checkpoints: { round: number; share: number; confidence: number; pShare: number; pCorr: number }[] = [];
    const testN = Math.min(j.testLimit ?? data.test.count, data.test.count);
    const per = data.height * data.width * data.channels;
    const test: PartyData = { x: Float32Array.from(data.test.images.subarray(0, testN * per), (b) => b / 255), y: Int32Array.from(data.test.labels.subarray(0, testN)), count: testN };
    const judgeAcc = tf.tidy(() => {
      let c = 0;
      for (let s = 0; s < testN; s += 1000) {
        const e = Math.min(testN, s + 1000);
        const a = tf.argMax(judge.logits(tf.tensor4d(test.x.subarray(s * per, e * per), [e - s, ...shape]), false), 1).dataSync();
        for (let i = 0; i < a.length; i++) if (a[i] === test.y[s + i]) c++;
      }
      return c / testN;
    });
    j.onLog?.(`judge: ${cachePath} (test accuracy ${judgeAcc.toFixed(4)}); victim ${victim.count} records of classes ${config.victimClasses.join(',')}, adversary ${adversary.count} of ${adversaryClasses.join(',')}${dpOn ? `; victim DP-SGD σ ${sigma!.toFixed(4)}, C ${j.clip}, q ${q.toPrecision(3)}, ${plannedSteps} planned steps` : ''}`);
    const res = runHitajAttack({
      victim,
      adversary,
      pixels: per,
      classes: K,
      victimClass: v,
      rounds: j.rounds,
      victimSteps: j.victimSteps,
      adversarySteps: j.adversarySteps,
      generatorSteps: j.generatorSteps,
      batchSize: j.batchSize,
      learningRate: j.learningRate,
      uploadFraction: j.uploadFraction,
      downloadFraction: j.downloadFraction,
      seed: (j.seed ?? (rng.nextUint32() >>> 0)) ^ 0x6a09e667,
      ...(dpOn
        ? {
            dp: {
              noiseMultiplier: sigma!,
              clip: j.clip,
              rng,
              record: (steps: number, sampleRate: number): number => {
                // the ledger decides before the steps run: the whole block, else single steps until it refuses
                const ev = DpEvents.poissonSampled(sampleRate, DpEvents.gaussian(sigma!));
                const rec = (m: number): boolean => ledger.tryRecord({ event: m === 1 ? ev : DpEvents.selfComposed(ev, m), method: 'attack-hitaj-gan', datasetFingerprint: fingerprint, meta: { role: 'victim', steps: m, sampleRate, clip: j.clip } }).ok;
                if (rec(steps)) return steps;
                let done = 0;
                while (done < steps && rec(1)) done++;
                return done;
              },
            },
          }
        : {}),
      onRound: (round, s, sample) => {
        if (round % j.evalEvery !== 0 && round !== j.rounds) return;
        const imgs200 = sample(200);
        const jd = judgeImages(imgs200, 200);
        const proto = prototypeJudge(imgs200, 200, test, per, K, v);
        const eps = dpOn ? ledger.spent(j.delta) : null;
        checkpoints.push({ round, share: jd.share, confidence: jd.confidence, pShare: proto.share, pCorr: proto.correlation });
        appendFileSync(join(outDir, 'metrics.jsonl'), JSON.stringify({ step: round, round, victimClassShare: jd.share, victimClassConfidence: jd.confidence, prototypeShare: proto.share, prototypeCorrelation: proto.correlation, discriminatorVictimProb: s.discriminatorVictimProb, epsilon: eps }) + '\n');
        j.onLog?.(`round ${round}: judge labels ${(100 * jd.share).toFixed(1)} % of 200 samples as ${v} (mean p ${jd.confidence.toFixed(3)}), correlation with the real ${v} mean ${proto.correlation.toFixed(3)}; shared model's p(${v}) on them ${s.discriminatorVictimProb.toFixed(3)}`);
      },
    });
    try {
      const imgs = res.sample(j.samples);
      const jd = judgeImages(imgs, j.samples);
      const proto = prototypeJudge(imgs, j.samples, test, per, K, v);
      const grid = Uint8Array.from(imgs.subarray(0, 100 * per), (x) => Math.round(Math.min(1, Math.max(0, x)) * 255));
      const png = join(outDir, 'samples.png');
      writePngGrid(png, grid, Array.from({ length: 100 }, (_, i) => Math.floor(i / 10)), { height: data.height, width: data.width, channels: data.channels, numClasses: 10, perClass: 10, scale: 2 });
      const acc = res.accuracy(test);
      const late = checkpoints.filter((c) => c.round > j.rounds / 2);
      const avg = (f: (c: (typeof late)[number]) => number): number => (late.length ? late.reduce((a, c) => a + f(c), 0) / late.length : NaN);
      const eps = dpOn ? ledger.spent(j.delta) : null;
      const result: HitajJobResult = {
        attack: 'hitaj-gan',
        victimClass: v,
        victimClassShare: jd.share,
        victimClassConfidence: jd.confidence,
        prototypeShare: proto.share,
        prototypeCorrelation: proto.correlation,
        lateMean: { checkpoints: late.length, victimClassShare: avg((c) => c.share), victimClassConfidence: avg((c) => c.confidence), prototypeShare: avg((c) => c.pShare), prototypeCorrelation: avg((c) => c.pCorr) },
        chance: 1 / K,
        samples: j.samples,
        sharedModelTestAccuracy: acc,
        dp: dpOn,
        epsilon: eps,
        delta: j.delta,
        noiseMultiplier: sigma ?? null,
        clip: dpOn ? j.clip : null,
        sampleRate: q,
        victimSteps: res.victimStepsRun,
        rounds: res.rounds,
        stoppedBy: res.stoppedBy,
        control: j.control,
        victimRecords: victim.count,
        adversaryRecords: adversary.count,
        victimClasses: config.victimClasses,
        adversaryClasses,
        uploadFraction: j.uploadFraction,
        downloadFraction: j.downloadFraction,
        parameters: res.parameters,
        judgeTestAccuracy: judgeAcc,
        randomness: randomness.kind,
        png,
        seconds: (Date.now() - t0) / 1000,
        runDir: outDir,
      };
      if (dpOn && eps !== null) {
        // ledger total = accountant's figure for the steps that ran (same events, same accountant)
        const expect = dpsgdEpsilon({ noiseMultiplier: sigma!, sampleRate: q, steps: res.victimStepsRun, delta: j.delta });
        if (Math.abs(expect - eps) > 1e-6 * Math.max(1, expect)) j.onLog?.(`warning: ledger ε ${eps} differs from the accountant's ${expect}`);
      }
      writeFileSync(join(outDir, 'attack.json'), JSON.stringify(result, null, 1) + '\n');
      manifest.result = result as unknown as Record<string, unknown>;
      manifest.attempts[0]!.endedAt = new Date().toISOString();
      manifest.attempts[0]!.stoppedBy = res.stoppedBy;
      writeManifest(outDir, manifest);
      return result;
    } finally {
      res.dispose();
      judge.dispose();
    }
  } finally {
    ledger.close();
  }
}
