/**
 * Plain data types of the evaluation classifiers (re-exported by classifiers.ts). A file of its
 * own so that data-parallel.ts, which classifiers.ts imports, can use them without an import cycle.
 */
export type LayerDef =
  | { kind: 'conv'; filters: number; size: number; stride: number; pad: 'valid' | 'same' }
  | { kind: 'maxpool'; size: number; stride: number }
  | { kind: 'dropout'; rate: number }
  | { kind: 'dense'; units: number };

export interface ClassifierArch {
  /** Stable name used in JSON output and cache keys. */
  name: string;
  /** One line for docs and the report. */
  description: string;
  /** Hidden layers; the final Dense(classes) layer is added by `buildClassifier`. */
  layers: LayerDef[];
  /** Default training recipe (Adam). */
  epochs: number;
  batchSize: number;
  learningRate: number;
}

/** Images as floats in [0, 1], converted once per set (batches are then row copies). */
export interface FloatImages {
  data: Float32Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}
