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
