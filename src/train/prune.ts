/**
 * Magnitude pruning for DP-SGD (sparse private models), `dplens train --prune S [--prune-at F]`.
 *
 * Method: layer-wise magnitude pruning (Han et al. 2015; the one-shot variant used by Huang et
 * al. 2020, "Privacy-preserving learning via deep net pruning"): in every weight tensor (rank ≥ 2:
 * conv kernels and dense matrices; biases and normalisation parameters are never pruned) the
 * fraction S of entries with the smallest |w| is set to zero and kept at zero for the rest of
 * training (the mask is fixed once chosen).
 *
 * Where the mask comes from, and why that costs no privacy:
 *   - F = 0 (`--prune-at 0`): from the initial weights, before any step — public information (the
 *     initialisation never reads the data).
 *   - F ∈ (0, 1] (default 0.5): from the DP-SGD iterate after round(F·steps) steps. Every step up
 *     to then has been recorded in the ledger as a Gaussian release, and the weights are a
 *     function of those releases, so the mask is post-processing of DP outputs.
 *   After the mask is fixed, each step's noisy update is released in full (recorded as before) and
 *   the masked coordinates are reset to zero after the optimizer step — post-processing again. So
 *   a pruned DP-SGD run has exactly the (ε, δ) of the same run unpruned; the white-box audit
 *   (gradient canaries read the noisy update before the mask) is unchanged by construction.
 *
 * Pruning alone (σ = 0) is NOT differential privacy. Huang et al. prove that pruning a layer of an
 * over-parameterised network (wide layer, weights near their random initialisation, bounded
 * inputs) acts like adding noise to that layer's hidden activations of one input — a statement
 * about inverting an activation release, not (ε, δ)-DP of the training set. dplens therefore
 * reports pruning without noise as non-private (ε = ∞) and gives empirical figures only
 * (`dplens audit` lower bound, membership-inference AUC of input canaries); see src/train/README.md.
 *
 * Re-zeroing after each step (rather than masking inside the optimizer) keeps the optimizers and
 * privatizers untouched; with momentum/Adam the state of pruned coordinates keeps evolving but is
 * never seen: the coordinate is zeroed after every step. EMA weights (if any) are masked too.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Param } from '../nn/index.js';

export interface PruneOptions {
  /** Fraction S ∈ [0, 1) of each weight tensor's entries set to zero. */
  sparsity: number;
  /** Fraction F ∈ [0, 1] of the planned steps after which the mask is chosen (0 = at init). Default 0.5. */
  at?: number;
}

export function checkPruneOptions(o: PruneOptions): void {
  if (!(o.sparsity >= 0 && o.sparsity < 1)) throw new RangeError(`prune sparsity must be in [0, 1), got ${o.sparsity}`);
  if (o.at !== undefined && !(o.at >= 0 && o.at <= 1)) throw new RangeError(`prune-at must be in [0, 1], got ${o.at}`);
}

/** Parameters pruning applies to: weight tensors of rank ≥ 2 (biases/norm parameters are kept). */
export function prunableParams(params: Param[]): Param[] {
  return params.filter((p) => p.value.rank >= 2);
}

/** 0/1 mask of one tensor keeping the ⌈(1−S)·n⌉ largest |w| (ties: the earlier entries). */
export function magnitudeMask(values: Float32Array, sparsity: number): Float32Array {
  const n = values.length;
  const drop = Math.min(n, Math.floor(sparsity * n));
  const mask = new Float32Array(n).fill(1);
  if (drop === 0) return mask;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => Math.abs(values[a]!) - Math.abs(values[b]!) || b - a);
  for (let i = 0; i < drop; i++) mask[order[i]!] = 0;
  return mask;
}

export class MagnitudePruner {
  readonly sparsity: number;
  readonly at: number;
  private masks: Map<Param, tf.Tensor> | undefined;
  /** Step (1-based count of steps done) at which the mask was fixed; undefined while not yet. */
  maskStep: number | undefined;

  constructor(
    readonly params: Param[],
    o: PruneOptions,
    /** Extra weight sets to mask alongside (e.g. EMA shadow weights), same order as params. */
    private readonly shadows: () => tf.Tensor[][] = () => [],
  ) {
    checkPruneOptions(o);
    this.sparsity = o.sparsity;
    this.at = o.at ?? 0.5;
  }

  /** Step count after which the mask is chosen for a run of totalSteps steps. */
  pruneStep(totalSteps: number): number {
    return Math.round(this.at * totalSteps);
  }

  /** Call before training (with the number of steps already done, for resume). */
  start(stepsDone: number, totalSteps: number): void {
    if (this.sparsity === 0) return;
    const ps = this.pruneStep(totalSteps);
    if (stepsDone === 0 && ps === 0) this.fix(0);
    else if (stepsDone > 0 && stepsDone >= ps) this.fix(stepsDone, true);
  }

  /** Call after every optimizer step (step = steps done so far, 1-based). */
  afterStep(step: number, totalSteps: number): void {
    if (this.sparsity === 0) return;
    if (!this.masks && step >= this.pruneStep(totalSteps)) this.fix(step);
    else if (this.masks) this.apply();
  }

  /** Chooses the mask from the current weights (or, on resume, from the zeros they already hold). */
  private fix(step: number, fromZeros = false): void {
    this.masks = new Map();
    for (const p of prunableParams(this.params)) {
      const v = p.value.dataSync() as Float32Array;
      const m = fromZeros ? Float32Array.from(v, (x) => (x !== 0 ? 1 : 0)) : magnitudeMask(v, this.sparsity);
      this.masks.set(p, tf.keep(tf.tensor(m, p.value.shape, 'float32')));
    }
    this.maskStep = step;
    this.apply();
  }

  /** Zeroes the pruned coordinates of the weights (and of the shadow weight sets). */
  apply(): void {
    if (!this.masks) return;
    const shadows = this.shadows();
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const m = this.masks!.get(p);
        if (!m) return;
        p.value.assign(tf.mul(p.value, m));
        for (const s of shadows) {
          const t = s[i];
          if (t instanceof tf.Variable) t.assign(tf.mul(t, m));
        }
      });
    });
  }

  /** Fraction of prunable weights that are zero now (the achieved sparsity). */
  measuredSparsity(): number {
    let zero = 0;
    let total = 0;
    for (const p of prunableParams(this.params)) {
      const v = p.value.dataSync();
      total += v.length;
      for (let i = 0; i < v.length; i++) if (v[i] === 0) zero++;
    }
    return total ? zero / total : 0;
  }

  dispose(): void {
    this.masks?.forEach((m) => m.dispose());
    this.masks = undefined;
  }
}
