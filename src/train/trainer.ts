/**
 * DP-SGD trainer: Poisson-sampled logical batches split into physical chunks, one backward pass
 * per chunk, privatized update, optimizer step — with every step's DP event recorded (in the
 * privacy ledger when one is given) BEFORE the step's noisy gradient is used.
 *
 * Ledger records are batched: before a block of m steps runs, one entry selfComposed(stepEvent, m)
 * is recorded (m = `recordEvery`, the last block exactly the remaining steps), so the ledger never
 * lags the releases; a run cut short (error, time limit) has recorded at most one block more than
 * it used, which only over-states ε.
 *
 * With a ledger, the ledger is the only budget gate: each block is offered with `tryRecord`, and
 * when the ledger refuses it the trainer offers single steps until the ledger refuses one, then
 * stops (stoppedBy 'budget'). Without a ledger (library use), `maxEpsilon` caps an in-memory
 * accountant the same way.
 *
 * `StepInfo.loss`, `.accuracy` and `.batchSize` are computed on the private Poisson batch without
 * noise: they are private diagnostics, never to be released (the runner writes them to
 * private-diagnostics.jsonl).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type AccountantKind, type Accountant, BudgetError, calibrateNoiseMultiplier, type DpEvent, DpEvents, type Guarantee, guaranteeOf, makeAccountant, type NeighbouringRelation, type PrivacyLedger, type RandomSource, secureRandom, withMetricDp } from '../privacy/index.js';
import { evaluate, forwardBackward, type LossOutput, type Module, type Param } from '../nn/index.js';
import type { ImageSplit } from '../data/index.js';
import { type Optimizer, Ema } from './optim.js';
import { GaussianPrivatizer, type Privatizer } from './privatizers/index.js';
import { permutation, physicalChunks, poissonSample } from './sampler.js';

/** Training data as the trainer sees it: labels plus a way to build an input batch. */
export interface TrainData {
  count: number;
  labels: Int32Array;
  /** Input tensor for the given example indices (caller disposes; may share a host buffer with the previous batch, so use it before asking for the next). */
  batch(indices: Int32Array): tf.Tensor;
  /** Input tensor for examples [start, end) (evaluation). */
  range(start: number, end: number): tf.Tensor;
}

/** Wraps an ImageSplit (raw bytes NHWC) with per-channel normalisation (x/255 − mean)/std. */
export function imageData(split: ImageSplit, shape: { height: number; width: number; channels: number }, norm: { mean: number[]; std: number[] }): TrainData {
  const per = shape.height * shape.width * shape.channels;
  const C = shape.channels;
  const scale = norm.std.map((s) => 1 / (255 * s));
  const shift = norm.mean.map((m, c) => -m / norm.std[c]!);
  // Precomputed byte → float tables, one per channel.
  const lut = Array.from({ length: C }, (_, c) => Float32Array.from({ length: 256 }, (_, v) => v * scale[c]! + shift[c]!));
  if (split.images.length < split.count * per) throw new RangeError(`image split holds ${split.images.length} bytes, expected ${split.count * per}`);
  // One reused host buffer per TrainData: batches are consumed within the step that builds them,
  // and first-touching fresh pages costs more than filling them.
  let scratch = new Float32Array(0);
  const take = (size: number) => {
    if (scratch.length < size) scratch = new Float32Array(Math.ceil(size * 1.25));
    return scratch.subarray(0, size);
  };
  const fill = (buf: Float32Array, dst: number, src: number) => {
    const im = split.images;
    if (C === 1) {
      const t = lut[0]!;
      for (let j = 0; j < per; j++) buf[dst + j] = t[im[src + j]!]!;
    } else for (let j = 0; j < per; j++) buf[dst + j] = lut[j % C]![im[src + j]!]!;
  };
  return {
    count: split.count,
    labels: split.labels,
    batch(indices) {
      const buf = take(indices.length * per);
      for (let i = 0; i < indices.length; i++) fill(buf, i * per, indices[i]! * per);
      return tf.tensor4d(buf, [indices.length, shape.height, shape.width, C]);
    },
    range(s, e) {
      const buf = take((e - s) * per);
      for (let i = s; i < e; i++) fill(buf, (i - s) * per, i * per);
      return tf.tensor4d(buf, [e - s, shape.height, shape.width, C]);
    },
  };
}

/** Wraps a TabularSplit (encoded CSV features, count × numFeatures float32) as [batch, numFeatures] inputs. */
export function tabularData(split: { features: Float32Array; labels: Int32Array; count: number }, numFeatures: number): TrainData {
  if (split.features.length !== split.count * numFeatures) throw new RangeError(`table split holds ${split.features.length} features, expected ${split.count}×${numFeatures}`);
  return {
    count: split.count,
    labels: split.labels,
    batch(indices) {
      const buf = new Float32Array(indices.length * numFeatures);
      for (let i = 0; i < indices.length; i++) buf.set(split.features.subarray(indices[i]! * numFeatures, (indices[i]! + 1) * numFeatures), i * numFeatures);
      return tf.tensor2d(buf, [indices.length, numFeatures]);
    },
    range(s, e) {
      return tf.tensor2d(split.features.slice(s * numFeatures, e * numFeatures), [e - s, numFeatures]);
    },
  };
}

/**
 * Gradient-space canaries for privacy auditing: fixed directions u_j in the flattened parameter
 * space (order of model.parameters(), each normalised to unit L2 norm). At every step each canary
 * is included independently with probability `probability` (default ½) as if it were the clipped
 * per-sample gradient of one extra example: C·u_j is added to the clipped sum before the noise
 * (so with noise std σC it is exactly the worst-case example of the DP analysis). After the noise,
 * `onStep` receives ⟨noisy sum, u_j⟩/C for every canary and which ones were included.
 */
export interface GradientCanaries {
  directions: Float32Array[] | ((paramCount: number) => Float32Array[]);
  /** Per-step inclusion probability: one for all canaries, or one per canary (0 = never, e.g. an audit's held-out canaries). */
  probability?: number | number[];
  onStep(info: { step: number; included: boolean[]; dots: number[] }): void;
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  epoch: number;
  /** Fraction of the planned steps done. */
  fraction: number;
  /** Mean training loss of the step's examples (NaN for an empty batch). */
  loss: number;
  /** Training accuracy of the step's examples. */
  accuracy: number;
  batchSize: number;
  /** ε spent so far (recorded), at the trainer's δ. */
  epsilon: number;
  lr: number;
}

export interface PrivateTrainerOptions {
  model: Module;
  optimizer: Optimizer;
  data: TrainData;
  /** σ. 0 = explicitly non-private (recorded as DpEvents.nonPrivate, ε = ∞). Ignored with a custom privatizer. */
  noiseMultiplier: number;
  /** Clip bound C. */
  maxGradNorm: number;
  delta: number;
  /** Expected logical batch size (sampling rate = batchSize / data.count). */
  batchSize: number;
  /** Largest chunk run through the model at once (default 256). */
  maxPhysicalBatch?: number;
  /** 'poisson' (default, DP) or 'shuffle' (fixed-size shuffled batches; recorded as non-private). */
  sampling?: 'poisson' | 'shuffle';
  clipping?: 'flat' | 'per-layer';
  perLayerNorms?: number[];
  privatizer?: Privatizer;
  accountant?: AccountantKind;
  /** Neighbouring relation of the in-memory accountant (without a ledger; default add-remove; vmf: replace-one). */
  relation?: NeighbouringRelation;
  /** Ledger to record into (else an in-memory accountant); its budget, if any, is the only budget gate. */
  ledger?: PrivacyLedger;
  datasetFingerprint?: string;
  /** Noise/sampling randomness (default: secureRandom()). */
  rng?: RandomSource;
  /** Without a ledger: stop before exceeding this ε (at `delta`). With a ledger, give the ledger a budget instead. */
  maxEpsilon?: number;
  /** Steps per ledger entry (default 25). */
  recordEvery?: number;
  /** EMA decay of the weights (evaluation uses the average). */
  emaDecay?: number;
  gradientCanaries?: GradientCanaries;
  /**
   * Robustness experiments only (train/corrupt.ts): the loss used for one physical chunk of record
   * indices (undefined = cross-entropy). Byzantine records replace their loss gradient through it.
   */
  lossForChunk?: (chunk: Int32Array) => ((logits: tf.Tensor, labels: tf.Tensor1D) => LossOutput) | undefined;
}

export interface FitOptions {
  epochs?: number;
  steps?: number;
  /** Wall-clock limit in seconds (stops after the current step). */
  maxSeconds?: number;
  onStep?: (info: StepInfo) => void;
  /** Test data to evaluate after training. */
  test?: TrainData;
  /** First step index (resume). */
  startStep?: number;
}

export interface FitResult {
  steps: number;
  epochs: number;
  /** Mean training loss over the last epoch's worth of steps. */
  loss: number;
  /** Training accuracy over the last epoch's worth of steps. */
  accuracy: number;
  testAccuracy?: number;
  testLoss?: number;
  /** ε at delta (Infinity for a non-private run). */
  epsilon: number;
  delta: number;
  examplesProcessed: number;
  seconds: number;
  stoppedBy: 'steps' | 'budget' | 'time';
}

export class PrivateTrainer {
  readonly params: Param[];
  readonly privatizer: Privatizer;
  readonly sampleRate: number;
  readonly rng: RandomSource;
  private readonly accountant?: Accountant;
  /** The weight EMA (run.ts saves/restores it on resume). */
  readonly ema?: Ema;
  private recordedSteps = 0;
  /** Why the ledger last refused a record (budget), if it did. */
  refusal?: string;
  private canaryMatrix?: tf.Tensor2D;
  private canaryDirs?: Float32Array[];
  constructor(readonly o: PrivateTrainerOptions) {
    if (!(o.delta > 0 && o.delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${o.delta}`);
    if (!(Number.isInteger(o.batchSize) && o.batchSize > 0)) throw new RangeError(`batch size must be a positive integer, got ${o.batchSize}`);
    if (o.batchSize > o.data.count) throw new RangeError(`batch size ${o.batchSize} exceeds the ${o.data.count} training examples`);
    this.params = o.model.parameters();
    this.sampleRate = o.batchSize / o.data.count;
    this.rng = o.rng ?? secureRandom();
    this.privatizer = o.privatizer ?? new GaussianPrivatizer(o.noiseMultiplier, { maxGradNorm: o.maxGradNorm, mode: o.clipping ?? 'flat', perLayerNorms: o.perLayerNorms });
    // metric-DP steps (vmf) are tallied in their own terms, never priced as (ε, δ) (privacy/metric-dp.ts)
    if (!o.ledger) this.accountant = withMetricDp(makeAccountant(o.accountant ?? 'rdp', { relation: o.relation ?? 'add-remove' }));
    else if (o.maxEpsilon !== undefined) throw new RangeError('with a ledger, the budget is the ledger\'s (open it with a budget) instead of maxEpsilon');
    if (o.emaDecay !== undefined) this.ema = new Ema(this.params, o.emaDecay);
  }

  /** The event of one step (non-private for shuffled batches or σ = 0). */
  stepEvent(): DpEvent {
    if ((this.o.sampling ?? 'poisson') === 'shuffle') return DpEvents.nonPrivate('shuffled fixed-size batches: sampling not covered by the accountant');
    return this.privatizer.stepEvent(this.sampleRate);
  }

  /** ε spent so far at the trainer's δ (by the ledger if any). */
  epsilon(): number {
    return this.o.ledger ? this.o.ledger.spent(this.o.delta) : this.accountant!.getEpsilon(this.o.delta);
  }

  /** What the recorded steps guarantee: (ε, δ) at the trainer's δ, metric DP (vmf), or none. */
  guarantee(): Guarantee {
    return this.o.ledger ? this.o.ledger.guarantee(this.o.delta) : guaranteeOf(this.accountant!, this.o.delta);
  }

  /** Records `m` steps (before they run); returns how many were recorded (fewer near a budget). */
  private recordBlock(m: number, startStep: number): number {
    const ev = this.stepEvent();
    if (ev.kind === 'nonPrivate') {
      // One entry says it all (ε = ∞ from the first step); budget caps cannot admit it.
      if (this.o.maxEpsilon !== undefined) throw new BudgetError(`a non-private run (${(ev as { reason: string }).reason}) cannot respect an ε budget of ${this.o.maxEpsilon}`);
      if (this.recordedSteps === 0 && !(this.o.ledger?.entries.some((e) => e.event.kind === 'nonPrivate') ?? false)) {
        if (!this.commit(ev, m, startStep)) return 0;
      }
      this.recordedSteps += m;
      return m;
    }
    if (this.o.ledger) {
      // The ledger decides: the whole block, else single steps until it refuses one.
      if (this.commit(m === 1 ? ev : DpEvents.selfComposed(ev, m), m, startStep)) {
        this.recordedSteps += m;
        return m;
      }
      let done = 0;
      if (m > 1) while (done < m && this.commit(ev, 1, startStep + done)) done++;
      this.recordedSteps += done;
      return done;
    }
    const cap = this.o.maxEpsilon;
    if (cap !== undefined && this.accountant!.epsilonIf(DpEvents.selfComposed(ev, m), this.o.delta) > cap) {
      let lo = 0;
      let hi = m;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (this.accountant!.epsilonIf(DpEvents.selfComposed(ev, mid), this.o.delta) <= cap) lo = mid;
        else hi = mid;
      }
      m = lo;
    }
    if (m > 0) this.commit(m === 1 ? ev : DpEvents.selfComposed(ev, m), m, startStep);
    this.recordedSteps += m;
    return m;
  }

  /** Records `ev` (m steps); false when the ledger refuses it (budget). */
  private commit(ev: DpEvent, m: number, startStep: number): boolean {
    if (this.o.ledger) {
      const r = this.o.ledger.tryRecord({
        event: ev,
        method: `dpsgd-${this.privatizer.name}`,
        datasetFingerprint: this.o.datasetFingerprint ?? 'unknown',
        meta: { steps: m, firstStep: startStep, sampleRate: this.sampleRate, ...this.privatizer.ledgerMeta(), sensitivity: this.privatizer.sensitivity, batchSize: this.o.batchSize },
      });
      if (!r.ok) this.refusal = r.reason;
      return r.ok;
    }
    this.accountant!.compose(ev);
    return true;
  }

  /** Σ over included canaries of the privatizer's release of C·u_j (per-example privatizers only), as [1, P]. */
  private privatizedCanaries(matrix: tf.Tensor2D, included: boolean[]): tf.Tensor2D {
    const [m, P] = matrix.shape;
    const unit = matrix.dataSync();
    const out = new Float32Array(P);
    const C = this.privatizer.sensitivity;
    for (let j = 0; j < m; j++) {
      if (!included[j]) continue;
      const g = new Float32Array(P);
      for (let i = 0; i < P; i++) g[i] = C * unit[j * P + i]!;
      const r = this.privatizer.privatizeExample!(g, this.rng);
      for (let i = 0; i < P; i++) out[i] += r[i]!;
    }
    return tf.tensor2d(out, [1, P]);
  }

  private canaries(): { matrix: tf.Tensor2D; dirs: Float32Array[] } | undefined {
    const gc = this.o.gradientCanaries;
    if (!gc) return undefined;
    if (!this.canaryMatrix) {
      const P = this.params.reduce((s, p) => s + p.value.size, 0);
      const dirs = typeof gc.directions === 'function' ? gc.directions(P) : gc.directions;
      const flat = new Float32Array(dirs.length * P);
      dirs.forEach((d, j) => {
        if (d.length !== P) throw new RangeError(`gradient canary ${j} has ${d.length} entries, the model has ${P} parameters`);
        let nn = 0;
        for (const v of d) nn += v * v;
        if (!(nn > 0)) throw new RangeError(`gradient canary ${j} is zero`);
        const inv = 1 / Math.sqrt(nn);
        for (let i = 0; i < P; i++) flat[j * P + i] = d[i]! * inv;
      });
      this.canaryDirs = dirs;
      this.canaryMatrix = tf.keep(tf.tensor2d(flat, [dirs.length, P]));
    }
    return { matrix: this.canaryMatrix, dirs: this.canaryDirs! };
  }

  /** One privatized step on the given logical batch; returns loss sum and correct count. */
  step(indices: Int32Array, stepIndex: number, totalSteps: number): { lossSum: number; correct: number; n: number } {
    const maxPhys = this.o.maxPhysicalBatch ?? 256;
    let sum: tf.Tensor[] | undefined;
    let lossSum = 0;
    let correct = 0;
    const stats: tf.Tensor[] = [];
    for (const chunk of physicalChunks(indices, maxPhys)) {
      const res = tf.tidy(() => {
        const x = this.o.data.batch(chunk);
        const y = tf.tensor1d(Int32Array.from(chunk, (i) => this.o.data.labels[i]!), 'int32');
        const fb = forwardBackward(this.o.model, x, y, this.o.lossForChunk?.(chunk));
        const s = this.privatizer.chunkSum(fb.tape, this.params, this.rng);
        return { s: sum ? s.map((g, i) => tf.add(g, sum![i]!)) : s, loss: fb.lossSum, correct: fb.correct };
      });
      if (sum) sum.forEach((t) => t.dispose());
      sum = res.s;
      stats.push(res.loss, res.correct);
    }
    // An empty Poisson batch still takes a (pure-noise) step: the accountant assumes it does.
    sum ??= this.params.map((p) => tf.zeros(p.value.shape));
    const can = this.canaries();
    let included: boolean[] = [];
    if (can) {
      const prob = this.o.gradientCanaries!.probability ?? 0.5;
      included = can.dirs.map((_, j) => this.rng.nextDouble() < (typeof prob === 'number' ? prob : prob[j]!));
      const C = this.privatizer.sensitivity;
      const w = tf.tensor2d(included.map((b) => (b ? C : 0)), [1, can.dirs.length]);
      // A privatizer that perturbs each example (vmf) perturbs an included canary like any example.
      const add = this.privatizer.privatizeExample ? this.privatizedCanaries(can.matrix, included) : tf.matMul(w, can.matrix);
      let off = 0;
      sum = sum.map((s) => {
        const r = tf.tidy(() => tf.add(s, tf.reshape(tf.slice(add, [0, off], [1, s.size]), s.shape)));
        off += s.size;
        s.dispose();
        return r;
      });
      w.dispose();
      add.dispose();
    }
    const expected = this.o.batchSize;
    const grads = this.privatizer.finalize(sum, expected, this.rng);
    sum.forEach((t) => t.dispose());
    if (can) {
      const dots = tf.tidy(() => {
        const flat = tf.concat(grads.map((g) => tf.reshape(g, [-1])));
        // grads = noisy sum / expected  →  ⟨noisy sum, u⟩/C = ⟨grads, u⟩·expected/C
        return tf.mul(tf.matMul(can.matrix, tf.reshape(flat, [-1, 1])), expected / this.privatizer.sensitivity);
      });
      const d = Array.from(dots.dataSync());
      dots.dispose();
      this.o.gradientCanaries!.onStep({ step: stepIndex, included, dots: d });
    }
    this.o.optimizer.step(this.params, grads, stepIndex, totalSteps);
    grads.forEach((g) => g.dispose());
    this.ema?.update();
    for (let i = 0; i < stats.length; i += 2) {
      lossSum += stats[i]!.dataSync()[0]!;
      correct += stats[i + 1]!.dataSync()[0]!;
    }
    stats.forEach((t) => t.dispose());
    return { lossSum, correct, n: indices.length };
  }

  /** Trains for `epochs` (steps = round(epochs / q)) or `steps`. */
  fit(f: FitOptions = {}): FitResult {
    const q = this.sampleRate;
    const total = f.steps ?? Math.max(1, Math.round((f.epochs ?? 1) / q));
    if (!(Number.isInteger(total) && total > 0)) throw new RangeError(`steps must be a positive integer, got ${total}`);
    const start = f.startStep ?? 0;
    const recordEvery = this.o.recordEvery ?? 25;
    const stepsPerEpoch = Math.max(1, Math.round(1 / q));
    const t0 = performance.now();
    let allowed = 0; // steps recorded but not yet run
    let stoppedBy: FitResult['stoppedBy'] = 'steps';
    const window: { loss: number; correct: number; n: number }[] = [];
    let examples = 0;
    let perm: Int32Array | undefined;
    let done = 0;
    const shuffle = (this.o.sampling ?? 'poisson') === 'shuffle';
    let epsilon = this.epsilon(); // changes only when a block is recorded
    for (let t = start; t < total; t++) {
      if (allowed === 0) {
        const want = Math.min(recordEvery, total - t);
        allowed = this.recordBlock(want, t);
        if (allowed === 0) {
          stoppedBy = 'budget';
          break;
        }
        epsilon = this.epsilon();
      }
      let idx: Int32Array;
      if (shuffle) {
        const pos = (t * this.o.batchSize) % this.o.data.count;
        if (!perm || pos < this.o.batchSize) perm = permutation(this.o.data.count, this.rng);
        idx = perm.subarray(pos, Math.min(this.o.data.count, pos + this.o.batchSize));
      } else idx = poissonSample(this.o.data.count, q, this.rng);
      const r = this.step(idx, t, total);
      allowed--;
      done++;
      examples += r.n;
      window.push({ loss: r.lossSum, correct: r.correct, n: r.n });
      if (window.length > stepsPerEpoch) window.shift();
      if (f.onStep) {
        f.onStep({
          step: t + 1,
          totalSteps: total,
          epoch: (t + 1) * q,
          fraction: (t + 1) / total,
          loss: r.n ? r.lossSum / r.n : NaN,
          accuracy: r.n ? r.correct / r.n : NaN,
          batchSize: r.n,
          epsilon,
          lr: this.o.optimizer.lr * this.o.optimizer.schedule(t, total),
        });
      }
      if (f.maxSeconds !== undefined && (performance.now() - t0) / 1000 >= f.maxSeconds && t + 1 < total) {
        stoppedBy = 'time';
        break;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const wn = window.reduce((s, w) => s + w.n, 0);
    const res: FitResult = {
      steps: start + done,
      epochs: (start + done) * q,
      loss: wn ? window.reduce((s, w) => s + w.loss, 0) / wn : NaN,
      accuracy: wn ? window.reduce((s, w) => s + w.correct, 0) / wn : NaN,
      epsilon: this.epsilon(),
      delta: this.o.delta,
      examplesProcessed: examples,
      seconds,
      stoppedBy,
    };
    if (f.test) Object.assign(res, this.evaluate(f.test));
    return res;
  }

  /** Test accuracy/loss (with the EMA weights when EMA is on). */
  evaluate(test: TrainData): { testAccuracy: number; testLoss: number } {
    this.ema?.swap();
    try {
      const r = evaluate(this.o.model, (s, e) => test.range(s, e), test.labels);
      return { testAccuracy: r.accuracy, testLoss: r.loss };
    } finally {
      this.ema?.swap();
    }
  }
}

/** Opacus-like entry point: a trainer for a fixed noise multiplier σ. */
export function makePrivate(o: PrivateTrainerOptions): PrivateTrainer {
  return new PrivateTrainer(o);
}

/**
 * Calibrates σ so that `epochs` of Poisson-sampled DP-SGD at batchSize/n reach `targetEpsilon`
 * at `delta` (by the chosen accountant), then builds the trainer; the target also becomes the
 * trainer's ε cap.
 */
export function makePrivateWithEpsilon(o: Omit<PrivateTrainerOptions, 'noiseMultiplier'> & { targetEpsilon: number; epochs: number }): PrivateTrainer & { noiseMultiplier: number; plannedSteps: number } {
  if (!(o.targetEpsilon > 0 && Number.isFinite(o.targetEpsilon))) throw new RangeError(`target epsilon must be a positive finite number, got ${o.targetEpsilon}`);
  if (!(o.epochs > 0)) throw new RangeError(`epochs must be > 0, got ${o.epochs}`);
  const q = o.batchSize / o.data.count;
  const steps = Math.max(1, Math.round(o.epochs / q));
  const sigma = calibrateNoiseMultiplier({ targetEpsilon: o.targetEpsilon, delta: o.delta, sampleRate: q, steps, accountant: o.accountant ?? 'rdp' });
  const t = new PrivateTrainer({ ...o, noiseMultiplier: sigma, maxEpsilon: o.maxEpsilon ?? o.targetEpsilon * (1 + 1e-9) });
  return Object.assign(t, { noiseMultiplier: sigma, plannedSteps: steps });
}
