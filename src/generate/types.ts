/**
 * The interface every DP generator implements (DataLens and G-PATE are the first two).
 *
 * Contract: a generator is configured with a privacy budget (ε, δ), the private data, a ledger and
 * a randomness source; `fit()` spends at most that budget, recording every release in the ledger
 * before its result is used, and stops (without applying) at the first step that would exceed it.
 * After fit, the generator is post-processing: `sample`, `save` and `load` touch no private data.
 */
import type { ImageBatch, ImageDataset } from '../data/types.js';
import type { DpEvent, PrivacyLedger, RandomSource } from '../privacy/index.js';

export interface PrivacyBudget {
  epsilon: number;
  delta: number;
}

/** One progress event per generator step. Only noised / post-processed quantities (P9). */
export interface GeneratorProgress {
  step: number;
  epoch: number;
  /** ε spent so far (ledger, at the budget's δ). */
  epsilon: number;
  /** Generator regression loss Σ(x̂ − G)² — a function of the noised aggregate only. */
  generatorLoss: number;
  /** Fraction of coordinates the aggregate moved (DataLens) / answered coordinates (G-PATE). */
  aggregateNonZero: number;
  seconds: number;
  timing: StepTiming;
}

/** Wall time per phase of the last step, milliseconds. */
export interface StepTiming {
  teacherTrainMs: number;
  voteMs: number;
  generatorMs: number;
}

export type StopReason = 'budget' | 'max-steps' | 'max-minutes' | 'aborted';

export interface FitResult {
  steps: number;
  epsilon: number;
  delta: number;
  stoppedBy: StopReason;
  seconds: number;
}

/**
 * A public dataset for pre-training (`--public-data`, issue 15). It is outside the guarantee: ε
 * protects the private records only. Its images have the private set's height, width and channels
 * (the runner checks); its labels may be of another label space (e.g. Fashion-MNIST public for MNIST).
 */
export interface PublicData {
  /** The name as given (mnist | fashion-mnist | a path), as written in the ledger header and report. */
  readonly name: string;
  /** Where it was read from. */
  readonly source: string;
  /** SHA-256 of its raw files (public data: the plain fingerprint may be written). */
  readonly fingerprint: string;
  readonly data: ImageDataset;
}

export interface GeneratorContext {
  data: ImageDataset;
  /** Public pre-training data (plugins with the 'public-data' run flag; undefined when not given). */
  publicData?: PublicData;
  /**
   * The keyed dataset fingerprint written into ledger entries (privacy/owner-key); default:
   * keyedFingerprint(data.rawFingerprint). Never the plain SHA-256 (issue 12 #2).
   */
  datasetFingerprint?: string;
  budget: PrivacyBudget;
  /**
   * An explicitly non-private run (`synth --non-private`, plugins with the 'non-private' run flag):
   * no budget (budget.epsilon is Infinity), noise may be 0, and the ledger records one
   * DpEvents.nonPrivate entry (ε = ∞) instead of the step events.
   */
  nonPrivate?: boolean;
  ledger: PrivacyLedger;
  random: RandomSource;
}

/** A batch of generated images: the one image-batch type of data/ (`ImageBatch`). */
export type SampleSet = ImageBatch;

export interface DpGenerator {
  readonly method: string;
  fit(opts?: { onProgress?: (p: GeneratorProgress) => void; signal?: AbortSignal }): Promise<FitResult>;
  /** n samples; labels default to a balanced, randomly ordered set (uniform, data-independent — P8). */
  sample(n: number, labels?: Int32Array): Promise<SampleSet>;
  /** Writes the generator (never the teachers — P9) to dir. */
  save(dir: string): Promise<void>;
  /** Restores generator parameters written by save(). */
  load(dir: string): Promise<void>;
  /** Generator steps (releases) done so far. */
  readonly steps: number;
  /** The data-independent worst-case DP event of one step (the runner's "can even one step fit?" check). */
  stepEvent?(): DpEvent;
  dispose(): void;
}

/**
 * The release as the audit replays it (src/audit/synth-audit.ts, replayGaussianRelease): length,
 * the charged event and the run's own noise code. Rebuilt from hyper-parameters and public facts.
 */
export interface GaussianReleaseMechanism {
  readonly method: string;
  /** Length of one released vector. */
  readonly dim: number;
  /** Releases the run makes. */
  readonly releases: number;
  /** σ the run adds (0 for a non-private run). */
  readonly sigma: number;
  /** L2 sensitivity Δ of one release under the plugin's relation. */
  readonly l2Sensitivity: number;
  /** The event each release is charged (a Gaussian with its L2 sensitivity), or nonPrivate. */
  readonly event: DpEvent;
  addNoise(r: Float64Array, rng: RandomSource): void;
}
