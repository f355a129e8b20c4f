/**
 * One forward + one backward pass of the summed loss, then per-sample norms and clipped sums
 * from the layers' gradient records. Call inside tf.tidy; results are plain tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GradTape, ModelError, type Module, type Param } from './module.js';

export interface LossOutput {
  /** Σ_i loss_i (scalar). */
  lossSum: tf.Scalar;
  /** Gradient of lossSum w.r.t. the logits (row i only depends on example i). */
  dlogits: tf.Tensor;
  /** Number of correctly classified examples (scalar). */
  correct: tf.Scalar;
}

/** Softmax cross-entropy with integer labels [N] on logits [N, C]. */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor1D): LossOutput {
  if (logits.rank !== 2) throw new ModelError(`cross-entropy expects logits [N, classes], got [${logits.shape.join(', ')}]`);
  const [n, c] = logits.shape as [number, number];
  if (labels.shape[0] !== n) throw new ModelError(`cross-entropy: ${labels.shape[0]} labels for ${n} rows of logits`);
  const logp = tf.logSoftmax(logits);
  const onehot = tf.cast(tf.oneHot(labels, c), 'float32');
  const lossSum = tf.neg(tf.sum(tf.mul(logp, onehot))) as tf.Scalar;
  const dlogits = tf.sub(tf.exp(logp), onehot);
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32')) as tf.Scalar;
  return { lossSum, dlogits, correct };
}

export interface ForwardBackward extends LossOutput {
  tape: GradTape;
  logits: tf.Tensor;
}

/** Training forward, loss, and one backward pass collecting per-sample gradient records. */
export function forwardBackward(model: Module, x: tf.Tensor, labels: tf.Tensor1D, loss = softmaxCrossEntropy): ForwardBackward {
  const logits = model.forward(x, true);
  const l = loss(logits, labels);
  const tape = new GradTape();
  model.backward(l.dlogits, tape, false); // the input gradient is never needed
  return { ...l, tape, logits };
}

export interface ClippingOptions {
  /** Flat clipping: total L2 norm bound C over all parameters. */
  maxGradNorm: number;
  /**
   * 'flat' (default) clips each example's whole gradient to C; 'per-layer' clips each parameter
   * tensor j to C_j, with C_j = perLayerNorms[j] if given, else C/√P so that Σ_j C_j² = C² and
   * the total sensitivity stays C.
   */
  mode?: 'flat' | 'per-layer';
  perLayerNorms?: number[];
}

export interface ClippedSum {
  /** Σ_i clip(g_i), one tensor per model parameter (same order as model.parameters()). */
  grads: tf.Tensor[];
  /** Per-sample total gradient norms before clipping [N]. */
  norms: tf.Tensor1D;
}

/** Maps each record's parameters to indices in `params` and checks full coverage. */
function recordIndex(tape: GradTape, params: Param[]): number[][] {
  const pos = new Map<tf.Variable, number>();
  params.forEach((p, i) => pos.set(p.value, i));
  const seen = new Set<number>();
  const idx = tape.records.map((r) =>
    r.params.map((p) => {
      const i = pos.get(p.value);
      if (i === undefined) throw new ModelError(`parameter ${p.name} produced a gradient record but is not among the model's parameters`);
      seen.add(i);
      return i;
    }),
  );
  if (seen.size !== params.length) throw new ModelError(`backward produced gradient records for ${seen.size} of ${params.length} parameters (a custom module must push a record for each parameter)`);
  return idx;
}

/** Clipped per-sample gradient sum from a tape (norms + re-weighted sums; no per-sample weights). */
export function clippedSum(tape: GradTape, params: Param[], opts: ClippingOptions): ClippedSum {
  const C = opts.maxGradNorm;
  if (!(C > 0 && Number.isFinite(C))) throw new ModelError(`maxGradNorm must be a positive finite number, got ${C}`);
  const idx = recordIndex(tape, params);
  const sq = tape.records.map((r) => r.sqNorms());
  const total = tf.addN(sq.flat()) as tf.Tensor1D;
  const norms = tf.sqrt(total) as tf.Tensor1D;
  const grads: tf.Tensor[] = new Array(params.length);
  if ((opts.mode ?? 'flat') === 'flat') {
    // c_i = min(1, C / ||g_i||): Opacus adds 1e-6 to the norm; we divide exactly and guard 0.
    const factor = tf.minimum(1, tf.div(C, tf.maximum(norms, 1e-12))) as tf.Tensor1D;
    tape.records.forEach((r, k) => r.weightedSum(factor).forEach((g, j) => (grads[idx[k]![j]!] = g)));
  } else {
    const P = params.length;
    const per = opts.perLayerNorms ?? new Array(P).fill(C / Math.sqrt(P));
    if (per.length !== P || !per.every((c) => c > 0 && Number.isFinite(c))) throw new ModelError(`perLayerNorms must hold ${P} positive numbers (one per parameter)`);
    const budget = per.reduce((s, c) => s + c * c, 0);
    if (budget > C * C * (1 + 1e-9)) throw new ModelError(`per-layer clip norms have total norm ${Math.sqrt(budget).toPrecision(4)} > maxGradNorm ${C}`);
    tape.records.forEach((r, k) => {
      r.params.forEach((_, j) => {
        const pi = idx[k]![j]!;
        const f = tf.minimum(1, tf.div(per[pi]!, tf.maximum(tf.sqrt(sq[k]![j]!), 1e-12))) as tf.Tensor1D;
        grads[pi] = r.weightedSum(f)[j]!;
      });
    });
  }
  return { grads, norms };
}

/** Per-sample gradients flattened and concatenated in parameter order: [N, totalParams]. */
export function perSampleFlat(tape: GradTape, params: Param[]): tf.Tensor2D {
  const idx = recordIndex(tape, params);
  const parts: tf.Tensor[] = new Array(params.length);
  tape.records.forEach((r, k) => r.perSample().forEach((g, j) => (parts[idx[k]![j]!] = tf.reshape(g, [g.shape[0]!, -1]))));
  return tf.concat(parts, 1) as tf.Tensor2D;
}

/** Runs the model in inference mode over batches and returns accuracy and mean loss. */
export function evaluate(model: Module, x: (start: number, end: number) => tf.Tensor, labels: Int32Array, batch = 1000): { accuracy: number; loss: number } {
  let correct = 0;
  let loss = 0;
  const n = labels.length;
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const [c, l] = tf.tidy(() => {
      const logits = model.forward(x(s, e), false);
      const y = tf.tensor1d(labels.subarray(s, e), 'int32');
      const out = softmaxCrossEntropy(logits, y);
      return [out.correct, out.lossSum];
    });
    correct += c!.dataSync()[0]!;
    loss += l!.dataSync()[0]!;
    c!.dispose();
    l!.dispose();
  }
  return { accuracy: n ? correct / n : NaN, loss: n ? loss / n : NaN };
}
