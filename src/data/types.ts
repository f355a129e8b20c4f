/**
 * In-memory dataset shapes shared by every layer above `data/`.
 * Images are kept as raw bytes (0..255, row-major H×W×C per image) so a 60k MNIST split is 47 MB;
 * models normalise on the fly.
 */
export interface ImageSplit {
  /** count × height × width × channels bytes. */
  images: Uint8Array;
  /** count class indices in [0, numClasses). */
  labels: Int32Array;
  count: number;
}

/**
 * THE batch-of-images type: labelled raw images with their geometry. Used for generator samples
 * (generate's `SampleSet`), an npz of images read back (`readImageNpz`), the sets the evaluator
 * trains and tests on, and canaries. An ImageSplit plus H, W, C, so it travels on its own.
 */
export interface ImageBatch extends ImageSplit {
  height: number;
  width: number;
  channels: number;
}

/**
 * Where a fact about the data that a run may release came from:
 * - 'builtin': fixed by a built-in dataset (MNIST's 10 digits), public;
 * - 'declared': given by the user as public input (`numClasses`, `classNames`, `columns` in the spec), public;
 * - 'folder-names': the class subfolder names of a PNG folder (the data owner's layout, not record
 *   contents; public only if the layout is — declare `classNames` to make that explicit);
 * - 'derived-from-data': computed from the private records (e.g. max label + 1): NOT covered by ε.
 */
export type DataFactSource = 'builtin' | 'declared' | 'folder-names' | 'derived-from-data';

/** One data-derived statistic a released file would reveal, stated exactly. */
export interface DisclosedStatistic {
  /** Column (CSV) or 'label'. */
  column: string;
  /** What it is, e.g. 'mean and population std over the 2,400 training rows'. */
  what: string;
  /** What it reveals about individual records, in plain words. */
  reveals: string;
}

/**
 * What a loaded dataset's public-looking facts (class count, class names, CSV schema and encoding
 * statistics) were derived from, so runners can list them in the run manifest's
 * `privacy.released` (see `disclosedFacts()`): anything 'derived-from-data' that a run writes is
 * released OUTSIDE the DP guarantee.
 */
export interface DataDisclosure {
  numClasses: DataFactSource;
  /** Absent when the dataset has no class names. */
  classNames?: DataFactSource;
  /** CSV: column kinds (numeric/categorical/ignore) and the label column. */
  schema?: 'declared' | 'derived-from-data';
  /**
   * CSV: encoding statistics computed from the private training split (means, stds, category
   * lists). Empty when every column's encoding was declared. These are not released by default:
   * `publicColumns()` gives the part of the encoding that is safe to write to config.json.
   */
  statistics?: DisclosedStatistic[];
}

export interface ImageDataset {
  kind: 'image';
  /** Short name, e.g. 'mnist', 'fashion-mnist', 'pneumonia', or a file name. */
  name: string;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames?: string[];
  train: ImageSplit;
  test: ImageSplit;
  val?: ImageSplit;
  /**
   * PLAIN sha256 (hex) over the training split's shape, pixels and labels. INTERNAL ONLY: anyone
   * who knows all records but one can hash each candidate and learn membership (ε = ∞). Pass it
   * through privacy's `keyedFingerprint()` before it goes into any released file (ledger entry,
   * config.json, run.json, report, stdout/JSON).
   */
  rawFingerprint: string;
  /** Where it was read from (path or package). */
  source: string;
  /**
   * Where the class count / names came from (data-derived facts are released outside ε). Every
   * loader sets it; absent on hand-built datasets, where `disclosedFacts()` assumes 'derived-from-data'.
   */
  disclosure?: DataDisclosure;
}

/** A problem with input data: the message names the file and what is wrong. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** How one CSV column is turned into model features. */
export type ColumnEncoding =
  | {
      name: string;
      kind: 'numeric';
      /** Standardisation constants from the training split: feature = (x − mean) / std. */
      mean: number;
      std: number;
      /** Index of this column's single feature. */
      offset: number;
      width: 1;
      /** true when mean/std come from a declared public range (centre, half-width), not from the data. */
      declared?: true;
    }
  | {
      name: string;
      kind: 'categorical';
      /** One-hot over these categories (sorted, from the training split; '' is the empty cell). Unseen test values encode as all zeros. */
      categories: string[];
      offset: number;
      width: number;
      /** true when the categories were declared as public input, not collected from the data. */
      declared?: true;
    };

export interface TabularSplit {
  /** count × numFeatures encoded features (standardised numerics, one-hot categoricals). */
  features: Float32Array;
  labels: Int32Array;
  count: number;
}

/** A table with a label column, encoded for classifiers. */
export interface TabularDataset {
  kind: 'tabular';
  name: string;
  /** Name of the label column in the file. */
  labelColumn: string;
  numClasses: number;
  /** Class index → label text as it appears in the file. */
  classNames: string[];
  /** Encoded feature columns in file order (ignored columns and the label are absent). */
  columns: ColumnEncoding[];
  numFeatures: number;
  train: TabularSplit;
  test: TabularSplit;
  /**
   * PLAIN sha256 (hex) over the schema and the training split's encoded cells and labels.
   * INTERNAL ONLY: pass it through privacy's `keyedFingerprint()` before any release (see ImageDataset).
   */
  rawFingerprint: string;
  source: string;
  /** What the schema, class list and encoding statistics were derived from (set by the CSV loader). */
  disclosure?: DataDisclosure;
}

export type Dataset = ImageDataset | TabularDataset;
