/**
 * The GAN attack of Hitaj, Ateniese & Perez-Cruz, "Deep Models Under the GAN: Information Leakage
 * from Collaborative Deep Learning" (CCS 2017), in the collaborative setting they study
 * (distributed selective SGD of Shokri & Shmatikov, CCS 2015).
 *
 * Setting. Parties agree on a classifier (here an MLP pixels → hidden ReLU → K + 1 logits: the K real
 * classes plus one class the adversary declares as its own, the "fake" class) and take turns each
 * round: download a fraction θd of the global parameters (those that differ most from the party's
 * local copy), run local SGD steps on their own data, upload the fraction θu of the update with the
 * largest magnitude, which the parameter server adds to the global parameters. The victim holds
 * class v (and other classes); the adversary holds other classes, never v.
 *
 * Attack. Each round the adversary, after downloading, (1) trains a local generator G so that its local copy of the shared model — the discriminator — labels G(z) as v
 * (minimise cross-entropy to v, the shared model frozen); (2) labels G's samples as the fake class
 * and trains its local model on its own data plus these fakes, then uploads as usual. The shared
 * model thus learns to separate G's output from real v, which the victim can only keep doing by
 * releasing more of what distinguishes its class: the shared model becomes the GAN's discriminator
 * with the victim's class as the real data. The attack's output is G: prototypes of class v.
 *
 * Record-level DP on the shared updates (optional, the victim's): every local step of the victim
 * is a DP-SGD step — Poisson sampling with rate q over the victim's records, per-example clipping to
 * C (per-example gradient norms of the MLP in closed form: ‖x_i‖²‖δ1_i‖² + ‖δ1_i‖² + ‖a_i‖²‖δ2_i‖² +
 * ‖δ2_i‖²), Gaussian noise of std σC on the sum — so what the victim uploads (a selected part of
 * the difference of its parameters before and after the steps) is post-processing of DP-SGD
 * releases. Guarantee for the victim's records: (ε, δ)-DP under add/remove of one record, the
 * victim's record count, the hyper-parameters and every other party's data treated as public;
 * accounted as `poissonSampled(q, gaussian(σ))` per step, each block of steps offered to the
 * caller's `record` (the run's ledger) BEFORE the steps run. The adversary trains without DP (its
 * own data). Sampling and noise come from the caller's RandomSource. Note the difference between
 * the claim and the attack: DP bounds what the releases say about one record; the attack recovers
 * what a whole class looks like, which DP does not hide (only the noise slows it down).
 *
 * What differs from the paper: an MLP shared model and an MLP generator instead of their CNN/DCGAN
 * (CPU budget: the study runs in minutes on 2 cores); two parties in one process, the parameter
 * server a function call (no sockets: the attack does not depend on the transport); the DP variant
 * is DP-SGD with Poisson sampling and an RDP accountant rather than Shokri's per-parameter Laplace
 * budget with sparse-vector selection (a clearer guarantee: the selection of θu is then post-
 * processing). Initialisation, shuffling and G's latent draws use a seeded PRNG (experimental
 * design, not privacy noise).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from '../util/prng.js';
import type { RandomSource } from '../privacy/index.js';

/** Images as floats in [0, 1] (count × pixels) with labels. */
export interface PartyData {
  x: Float32Array;
  y: Int32Array;
  count: number;
}

export interface HitajDp {
  noiseMultiplier: number;
  clip: number;
  /** Poisson sampling and Gaussian noise of the victim's DP-SGD. */
  rng: RandomSource;
  /**
   * Called before each block of victim steps with the block's size and sampling rate; returns how
   * many of them may run (the ledger's answer; fewer near the budget, 0 when it refuses).
   */
  record: (steps: number, sampleRate: number) => number;
}

export interface HitajOptions {
  victim: PartyData;
  adversary: PartyData;
  /** Pixels per image (H·W·C). */
  pixels: number;
  /** Real classes K; the shared model has K + 1 outputs, K being the adversary's fake class. */
  classes: number;
  victimClass: number;
  rounds: number;
  victimSteps?: number;
  adversarySteps?: number;
  generatorSteps?: number;
  /** Batch size (expected batch size q·n for the DP victim). */
  batchSize?: number;
  hidden?: number;
  latentDim?: number;
  generatorHidden?: number;
  learningRate?: number;
  generatorLearningRate?: number;
  /** θu: fraction of the local update uploaded (largest magnitudes). */
  uploadFraction?: number;
  /** θd: fraction of the global parameters downloaded (largest differences to the local copy). */
  downloadFraction?: number;
  /** Share of fake (generated) examples in the adversary's local batches. */
  fakeShare?: number;
  dp?: HitajDp;
  seed: number;
  onRound?: (round: number, s: HitajRoundStats, sample: (n: number) => Float32Array) => void;
}

export interface HitajRoundStats {
  round: number;
  victimSteps: number;
  /** Mean probability the adversary's copy of the shared model gives class v on G's samples (after the G steps). */
  discriminatorVictimProb: number;
  generatorLoss: number;
}

export interface HitajResult {
  /** Draws n generator samples (count × pixels, in [0, 1]). */
  sample: (n: number) => Float32Array;
  /** Global shared-model parameters [W1, b1, W2, b2] (pixels×h, h, h×(K+1), K+1). */
  shared: Float32Array[];
  /** Accuracy of the global model on a labelled set (real classes only). */
  accuracy: (d: PartyData) => number;
  victimStepsRun: number;
  /** Rounds in which the victim trained (it stops when the budget refuses). */
  rounds: number;
  stoppedBy: 'rounds' | 'budget';
  parameters: number;
  dispose: () => void;
}

function glorot(rows: number, cols: number, rnd: () => number): Float32Array {
  const lim = Math.sqrt(6 / (rows + cols));
  const v = new Float32Array(rows * cols);
  for (let i = 0; i < v.length; i++) v[i] = (2 * rnd() - 1) * lim;
  return v;
}

function gaussianFill(out: Float32Array, rnd: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    const u = Math.max(rnd(), 1e-300);
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * rnd();
    out[i] = r * Math.cos(t);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
  }
}

/** Indices of the `k` entries of largest |v| (k ≥ 1). */
export function topMagnitude(v: Float32Array, k: number): Int32Array {
  if (k >= v.length) return Int32Array.from({ length: v.length }, (_, i) => i);
  const abs = Float32Array.from(v, Math.abs).sort();
  const thr = abs[v.length - k]!;
  const out = new Int32Array(k);
  let n = 0;
  for (let i = 0; i < v.length && n < k; i++) if (Math.abs(v[i]!) > thr) out[n++] = i;
  for (let i = 0; i < v.length && n < k; i++) if (Math.abs(v[i]!) === thr) out[n++] = i;
  return out;
}

/** Parameters flattened into one vector and back. */
function flatten(ps: Float32Array[]): Float32Array {
  const n = ps.reduce((a, p) => a + p.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const p of ps) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function unflatten(v: Float32Array, like: Float32Array[]): Float32Array[] {
  let o = 0;
  return like.map((p) => {
    const s = v.slice(o, o + p.length);
    o += p.length;
    return s;
  });
}

/**
 * Local SGD steps of a party on the shared MLP. `batches()` yields (x, labels, weights) per step:
 * weights are per-example multipliers (0 for padding); with `clip`, each example's gradient is
 * clipped to it and `noiseStd` Gaussian noise (from `normal`) is added to the summed gradient,
 * which is divided by `denominator` (the expected batch size).
 */
export function mlpLocalSteps(
  params: Float32Array[],
  dims: { P: number; H: number; O: number },
  steps: { x: Float32Array; y: Int32Array; n: number }[],
  o: { lr: number; clip?: number; noiseStd?: number; normal?: (out: Float32Array) => void; denominator?: number },
): Float32Array[] {
  const { P, H, O } = dims;
  let [W1, b1, W2, b2] = [tf.tensor2d(params[0]!, [P, H]), tf.tensor1d(params[1]!), tf.tensor2d(params[2]!, [H, O]), tf.tensor1d(params[3]!)];
  for (const st of steps) {
    const next = tf.tidy(() => {
      const grads: tf.Tensor[] = [];
      if (st.n > 0) {
        const X = tf.tensor2d(st.x, [st.n, P]);
        const Z1 = tf.add(tf.matMul(X, W1), b1);
        const A = tf.relu(Z1);
        const Z2 = tf.add(tf.matMul(A, W2), b2);
        const Y = tf.oneHot(tf.tensor1d(st.y, 'int32'), O);
        let D2 = tf.sub(tf.softmax(Z2), Y) as tf.Tensor2D;
        let D1 = tf.mul(tf.matMul(D2, W2, false, true), tf.step(Z1)) as tf.Tensor2D;
        if (o.clip !== undefined) {
          // per-example squared norm of the whole gradient (dense layers: outer products)
          const sq = (t: tf.Tensor2D): tf.Tensor1D => tf.sum(tf.square(t), 1);
          const n2 = tf.add(tf.add(tf.mul(sq(X), sq(D1)), sq(D1)), tf.add(tf.mul(sq(A as tf.Tensor2D), sq(D2)), sq(D2)));
          const c = tf.reshape(tf.minimum(1, tf.div(o.clip, tf.maximum(tf.sqrt(n2), 1e-12))), [st.n, 1]);
          D2 = tf.mul(D2, c) as tf.Tensor2D;
          D1 = tf.mul(D1, c) as tf.Tensor2D;
        }
        grads.push(tf.matMul(X, D1, true, false), tf.sum(D1, 0), tf.matMul(A, D2, true, false), tf.sum(D2, 0));
      } else grads.push(tf.zerosLike(W1), tf.zerosLike(b1), tf.zerosLike(W2), tf.zerosLike(b2));
      if (o.clip !== undefined) {
        for (let i = 0; i < 4; i++) {
          const g = grads[i]!;
          if ((o.noiseStd ?? 0) > 0) {
            const z = new Float32Array(g.size);
            o.normal!(z);
            grads[i] = tf.add(g, tf.mul(tf.tensor(z, g.shape), o.noiseStd!));
          }
        }
      }
      const s = o.lr / (o.clip !== undefined ? o.denominator! : Math.max(1, st.n));
      return [W1, b1, W2, b2].map((w, i) => tf.sub(w, tf.mul(grads[i]!, s)));
    });
    tf.dispose([W1, b1, W2, b2]);
    [W1, b1, W2, b2] = next as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D];
  }
  const out = [W1, b1, W2, b2].map((t) => t.dataSync() as Float32Array).map((a) => a.slice());
  tf.dispose([W1, b1, W2, b2]);
  return out;
}

/** Runs the collaborative training with the adversary's GAN attack (see the file comment). */
export function runHitajAttack(o: HitajOptions): HitajResult {
  const K = o.classes;
  const O = K + 1;
  const P = o.pixels;
  const H = o.hidden ?? 256;
  const Z = o.latentDim ?? 64;
  const GH = o.generatorHidden ?? 256;
  const B = o.batchSize ?? 64;
  const vSteps = o.victimSteps ?? 5;
  const aSteps = o.adversarySteps ?? 5;
  const gSteps = o.generatorSteps ?? 5;
  const lr = o.learningRate ?? 0.1;
  const thetaU = o.uploadFraction ?? 1;
  const thetaD = o.downloadFraction ?? 1;
  const fakeShare = o.fakeShare ?? 0.5;
  if (!(thetaU > 0 && thetaU <= 1)) throw new RangeError(`upload fraction must be in (0, 1], got ${thetaU}`);
  if (!(thetaD > 0 && thetaD <= 1)) throw new RangeError(`download fraction must be in (0, 1], got ${thetaD}`);
  if (o.victimClass < 0 || o.victimClass >= K) throw new RangeError(`victim class must be in [0, ${K}), got ${o.victimClass}`);
  for (let i = 0; i < o.adversary.count; i++) if (o.adversary.y[i] === o.victimClass) throw new RangeError('the adversary must not hold the victim class');
  const rnd = mulberry32(o.seed);
  const dims = { P, H, O };
  const init = [glorot(P, H, rnd), new Float32Array(H), glorot(H, O, rnd), new Float32Array(O)];
  const global: Float32Array = flatten(init);
  const nParams = global.length;
  const local: { victim: Float32Array; adversary: Float32Array } = { victim: global.slice(), adversary: global.slice() };
  // generator: z → GH ReLU → P sigmoid (tfjs variables, Adam)
  const G = [tf.variable(tf.tensor2d(glorot(Z, GH, rnd), [Z, GH])), tf.variable(tf.zeros([GH])), tf.variable(tf.tensor2d(glorot(GH, P, rnd), [GH, P])), tf.variable(tf.zeros([P]))];
  const gOpt = tf.train.adam(o.generatorLearningRate ?? 2e-3, 0.5);
  const latent = (n: number): tf.Tensor2D => {
    const z = new Float32Array(n * Z);
    gaussianFill(z, rnd);
    return tf.tensor2d(z, [n, Z]);
  };
  const gen = (z: tf.Tensor2D): tf.Tensor2D => tf.sigmoid(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(z, G[0]!), G[1]!)), G[2]!), G[3]!)) as tf.Tensor2D;
  const sample = (n: number): Float32Array => tf.tidy(() => gen(latent(n)).dataSync() as Float32Array).slice();

  const download = (loc: Float32Array): void => {
    if (thetaD >= 1) {
      loc.set(global);
      return;
    }
    const diff = new Float32Array(nParams);
    for (let i = 0; i < nParams; i++) diff[i] = global[i]! - loc[i]!;
    for (const i of topMagnitude(diff, Math.max(1, Math.round(thetaD * nParams)))) loc[i] = global[i]!;
  };
  const upload = (before: Float32Array, after: Float32Array): void => {
    const delta = new Float32Array(nParams);
    for (let i = 0; i < nParams; i++) delta[i] = after[i]! - before[i]!;
    const sel = thetaU >= 1 ? null : topMagnitude(delta, Math.max(1, Math.round(thetaU * nParams)));
    if (!sel) for (let i = 0; i < nParams; i++) global[i]! += delta[i]!;
    else for (const i of sel) global[i]! += delta[i]!;
  };
  const batchOf = (d: PartyData, idx: ArrayLike<number>): { x: Float32Array; y: Int32Array; n: number } => {
    const n = idx.length;
    const x = new Float32Array(n * P);
    const y = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const i = idx[r]!;
      x.set(d.x.subarray(i * P, (i + 1) * P), r * P);
      y[r] = d.y[i]!;
    }
    return { x, y, n };
  };
  const randomIdx = (n: number, k: number): Int32Array => Int32Array.from({ length: k }, () => Math.floor(rnd() * n));

  let victimStepsRun = 0;
  let stoppedBy: 'rounds' | 'budget' = 'rounds';
  let roundsRun = 0;
  const q = B / o.victim.count;
  for (let round = 1; round <= o.rounds; round++) {
    // ---- victim
    download(local.victim);
    let allowed = vSteps;
    if (o.dp) allowed = o.dp.record(vSteps, q);
    if (allowed > 0) {
      const steps: { x: Float32Array; y: Int32Array; n: number }[] = [];
      for (let s = 0; s < allowed; s++) {
        if (o.dp) {
          const idx: number[] = [];
          for (let i = 0; i < o.victim.count; i++) if (o.dp.rng.nextDouble() < q) idx.push(i);
          steps.push(batchOf(o.victim, idx));
        } else steps.push(batchOf(o.victim, randomIdx(o.victim.count, B)));
      }
      const before = local.victim.slice();
      const dp = o.dp;
      const after = mlpLocalSteps(unflatten(local.victim, init), dims, steps, dp ? { lr, clip: dp.clip, noiseStd: dp.noiseMultiplier * dp.clip, normal: (z) => dp.rng.normal(z), denominator: B } : { lr });
      local.victim = flatten(after);
      upload(before, local.victim);
      victimStepsRun += allowed;
    }
    if (allowed < vSteps) {
      stoppedBy = 'budget';
      roundsRun = round - (allowed > 0 ? 0 : 1);
      break;
    }
    roundsRun = round;
    // ---- adversary: download, train G against its copy of the shared model, train locally with fakes
    download(local.adversary);
    const [aW1, ab1, aW2, ab2] = unflatten(local.adversary, init);
    const Dw = [tf.tensor2d(aW1!, [P, H]), tf.tensor1d(ab1!), tf.tensor2d(aW2!, [H, O]), tf.tensor1d(ab2!)];
    const target = tf.oneHot(tf.fill([B], o.victimClass, 'int32') as tf.Tensor1D, O);
    let gLoss = 0;
    let pv = 0;
    for (let s = 0; s < gSteps; s++) {
      const z = latent(B);
      const loss = gOpt.minimize(
        () => {
          const logits = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(gen(z), Dw[0]!), Dw[1]!)), Dw[2]!), Dw[3]!);
          return tf.losses.softmaxCrossEntropy(target, logits) as tf.Scalar;
        },
        true,
        G,
      );
      gLoss = loss ? loss.dataSync()[0]! : NaN;
      loss?.dispose();
      z.dispose();
    }
    pv = tf.tidy(() => {
      const logits = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(gen(latent(B)), Dw[0]!), Dw[1]!)), Dw[2]!), Dw[3]!);
      return tf.mean(tf.slice(tf.softmax(logits), [0, o.victimClass], [B, 1])).dataSync()[0]!;
    });
    tf.dispose([...Dw, target]);
    const nFake = Math.round(B * fakeShare);
    const aBatches: { x: Float32Array; y: Int32Array; n: number }[] = [];
    for (let s = 0; s < aSteps; s++) {
      const real = batchOf(o.adversary, randomIdx(o.adversary.count, B - nFake));
      const x = new Float32Array(B * P);
      x.set(real.x);
      x.set(sample(nFake), (B - nFake) * P);
      const y = new Int32Array(B);
      y.set(real.y);
      y.fill(K, B - nFake);
      aBatches.push({ x, y, n: B });
    }
    const aBefore = local.adversary.slice();
    local.adversary = flatten(mlpLocalSteps(unflatten(local.adversary, init), dims, aBatches, { lr }));
    upload(aBefore, local.adversary);
    o.onRound?.(round, { round, victimSteps: allowed, discriminatorVictimProb: pv, generatorLoss: gLoss }, sample);
  }
  const shared = unflatten(global, init);
  const accuracy = (d: PartyData): number => {
    let correct = 0;
    for (let s = 0; s < d.count; s += 1000) {
      const e = Math.min(d.count, s + 1000);
      const pred = tf.tidy(() => {
        const X = tf.tensor2d(d.x.subarray(s * P, e * P), [e - s, P]);
        const logits = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(X, tf.tensor2d(shared[0]!, [P, H])), shared[1]!)), tf.tensor2d(shared[2]!, [H, O])), shared[3]!);
        return tf.argMax(tf.slice(logits, [0, 0], [e - s, K]), 1).dataSync();
      });
      for (let i = 0; i < pred.length; i++) if (pred[i] === d.y[s + i]) correct++;
    }
    return correct / d.count;
  };
  return {
    sample,
    shared,
    accuracy,
    victimStepsRun,
    rounds: roundsRun,
    stoppedBy,
    parameters: nParams,
    dispose: () => {
      gOpt.dispose();
      tf.dispose(G);
    },
  };
}
