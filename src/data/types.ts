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
  /** sha256 (hex) over the training split's shape, pixels and labels: goes into the privacy ledger. */
  fingerprint: string;
  /** Where it was read from (path or package). */
  source: string;
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
    }
  | {
      name: string;
      kind: 'categorical';
      /** One-hot over these categories (sorted, from the training split; '' is the empty cell). Unseen test values encode as all zeros. */
      categories: string[];
      offset: number;
      width: number;
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
  /** sha256 (hex) over the schema and the training split's raw cells and labels. */
  fingerprint: string;
  source: string;
}

export type Dataset = ImageDataset | TabularDataset;
