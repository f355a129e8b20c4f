/**
 * The privatizer seam of DP-SGD: what one registered privatizer provides. A privatizer turns the
 * per-sample gradient records of one logical batch into a noisy gradient estimate and names the
 * DP event of that step; its factory declares the CLI options it reads, so that `dplens train`
 * builds its choices, help and flag checks from the registry (privatizers/index.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DpEvent, NeighbouringRelation, RandomSource } from '../../privacy/index.js';
import type { GradTape, Param } from '../../nn/index.js';

export interface Privatizer {
  readonly name: string;
  /**
   * L2 norm of one example's contribution to the summed statistic (its add/remove sensitivity:
   * C for Gaussian, √k for TopAgg). Gradient canaries are inserted at this scale.
   */
  readonly sensitivity: number;
  /** DP event of one step at Poisson sampling rate q. */
  stepEvent(q: number): DpEvent;
  /** Sum statistic of one physical chunk, one tensor per parameter (caller adds chunks up). */
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[];
  /** Adds the noise to the summed statistic and returns gradient estimates (divided by `expectedBatch`). */
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[];
  /** Public parameters recorded with each ledger entry (noise multiplier, k, …). */
  ledgerMeta(): Record<string, number | string>;
  /**
   * Per-example privatizers only (vmf): the release of ONE example whose clipped gradient is `g`
   * (flat, all parameters), i.e. its contribution to the summed statistic. The trainer uses it for
   * gradient canaries, so an audited canary is perturbed exactly like a training example.
   */
  privatizeExample?(g: Float32Array, rng: RandomSource): Float32Array;
  /** Bytes one example's compressed contribution takes (compression privatizers); absent = dense float32 (4·P). */
  readonly bytesPerExample?: number;
}

/** One option of a registered method: its CLI flag (also its key in the config's option record). */
export interface MethodOption {
  flag: string;
  type: 'integer' | 'number' | 'boolean';
  help: string;
  /** Smallest allowed value (integer/number options). */
  min?: number;
  /** Extra check: true, or the reason the value is refused ("must be > 0"). */
  check?: (v: number) => true | string;
  /** false: a library-only option (set through the config, not offered as a CLI flag). */
  cli?: false;
}

/** Values of a method's options, keyed by flag name (absent = the method's default). */
export type MethodOptionValues = Record<string, number | boolean | undefined>;

/** Train settings shared by several privatizers; each factory says which ones it reads. */
export type SharedPrivatizerSetting = 'clip' | 'clipping';

export interface PrivatizerBuildContext {
  /** Noise multiplier σ (0 = explicitly non-private). */
  noiseMultiplier: number;
  /** --clip (per-sample L2 bound). */
  clip: number;
  /** --clipping. */
  clipping: 'flat' | 'per-layer';
  /** Number of model parameters (defaults that scale with the model, e.g. TopAgg's k). */
  paramCount: number;
  /** Planned number of steps T (privatizers whose options set a whole-run target, e.g. --vmf-epsilon). */
  steps?: number;
  /** Expected (public) logical batch size B (privatizers whose sensitivity is stated per B, e.g. ptr-robust). */
  expectedBatch?: number;
  options: MethodOptionValues;
}

export interface PrivatizerFactory {
  readonly name: string;
  /** One line for `--help`. */
  readonly summary: string;
  /** Shared train settings this privatizer reads; giving another one is an error. */
  readonly uses: readonly SharedPrivatizerSetting[];
  readonly options: readonly MethodOption[];
  create(ctx: PrivatizerBuildContext): Privatizer;
  /**
   * Set by privatizers whose guarantee is not (ε, δ)-DP and whose noise comes from their own
   * options, not from σ / --target-epsilon (vmf: metric DP under replace-one). The runner then
   * opens the ledger under `relation` and refuses --noise / --target-epsilon.
   */
  readonly ownAccounting?: { guarantee: 'metricDP'; relation: NeighbouringRelation; why: string };
}

/** Gaussian noise tensor from the privacy RandomSource (never Math.random / tfjs PRNG). */
export function gaussianNoise(shape: number[], std: number, rng: RandomSource): tf.Tensor {
  const buf = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (std > 0) rng.normal(buf, std);
  return tf.tensor(buf, shape, 'float32');
}

export function checkSigma(sigma: number): void {
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new RangeError(`noise multiplier must be a finite number >= 0, got ${sigma}`);
}
