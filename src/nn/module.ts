/**
 * The module contract behind per-sample gradients.
 *
 * A module runs `forward` with plain tfjs ops (so it works on every backend) and, when training,
 * caches what its backward needs (usually its input activations A). `backward` receives the
 * gradient B of the SUMMED loss at the module's output, returns the gradient at its input, and —
 * for modules with parameters — pushes one {@link GradSampleRecord} onto the tape. A record knows
 * A and B and can produce, without ever materialising per-sample weight gradients unless asked:
 *   - the per-sample squared gradient norms of each parameter ([N] vectors),
 *   - the weighted sum Σ_i w_i g_i of the per-sample gradients (the clipped sum when w_i are the
 *     clip factors), computed as a re-weighted backward (Aᵀ(w⊙B) for a dense layer),
 *   - the per-sample gradients themselves ([N, ...shape]) for privatizers that need them
 *     (TopAgg-SGD's per-sample top-k).
 *
 * Writing a custom module: implement {@link Module}. `forward(x, training)` must be per-sample
 * independent (row i of the output depends only on row i of the input — that is what makes the
 * per-sample gradients exact and the DP analysis valid; BatchNorm violates it). In `backward`,
 * compute the input gradient and, for each parameter tensor, push a record (the helpers in
 * layers.ts — e.g. `perSampleRecord` — build one from materialised per-sample gradients if you
 * have no cheaper formula). The test helper `checkPerSampleGradients` in test/nn-persample.test.ts
 * shows how to verify a new module against a per-example autodiff loop.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A trainable parameter: a tfjs variable with a stable, path-like name ("0.weight"). */
export interface Param {
  name: string;
  value: tf.Variable;
}

/** Per-sample gradient information of a group of parameters of one layer, for one batch. */
export interface GradSampleRecord {
  /** The parameters this record covers, in order. */
  readonly params: Param[];
  /** Per-sample squared L2 norms [N], one vector per parameter. */
  sqNorms(): tf.Tensor1D[];
  /** Σ_i w_i · g_i (shape of each parameter) for weights w [N]. */
  weightedSum(w: tf.Tensor1D): tf.Tensor[];
  /** Materialised per-sample gradients, one [N, ...paramShape] tensor per parameter. */
  perSample(): tf.Tensor[];
}

/** Collects records during one backward pass. */
export class GradTape {
  readonly records: GradSampleRecord[] = [];
  push(r: GradSampleRecord): void {
    this.records.push(r);
  }
}

/** JSON description of a module, enough to rebuild it (see spec.ts). */
export type LayerSpec = { type: string } & Record<string, unknown>;

export interface Module {
  /** Layer type name, e.g. 'conv2d'. */
  readonly type: string;
  /** Trainable parameters in a stable order (names are prefixed by containers). */
  parameters(): Param[];
  /** Runs the layer. With `training`, caches activations for `backward` (and applies dropout). */
  forward(x: tf.Tensor, training: boolean): tf.Tensor;
  /**
   * Gradient at the input given the gradient `dy` of the summed loss at the output; pushes the
   * per-sample gradient records of this module's parameters onto `tape`. Only valid after a
   * `forward(x, true)` in the same tidy scope. With `needInputGrad === false` (the first layer
   * of a model) the module may skip the input gradient and return an empty tensor.
   */
  backward(dy: tf.Tensor, tape: GradTape, needInputGrad?: boolean): tf.Tensor;
  /** JSON spec for serialisation (weights are stored separately). */
  spec(): LayerSpec;
}

/** Error for invalid model definitions or inputs (wrong shapes, unsupported layers). */
export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelError';
  }
}

/** A record built from per-sample gradients that were materialised anyway (cheap layers). */
export function perSampleRecord(params: Param[], perSample: tf.Tensor[]): GradSampleRecord {
  return {
    params,
    sqNorms: () => perSample.map((g) => tf.sum(tf.square(tf.reshape(g, [g.shape[0]!, -1])), 1) as tf.Tensor1D),
    weightedSum: (w) =>
      perSample.map((g, j) => {
        const n = g.shape[0]!;
        return tf.reshape(tf.matMul(tf.reshape(w, [1, n]), tf.reshape(g, [n, -1])), params[j]!.value.shape);
      }),
    perSample: () => perSample,
  };
}
