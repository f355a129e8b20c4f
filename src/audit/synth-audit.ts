/**
 * One-run audit of a DP generator (DataLens, G-PATE — anything `runSynthesis` runs behind the
 * common generator interface) with input-space canaries: m held-out images with a random wrong
 * label (out of distribution for that class) are each added to the private training set with
 * probability ½; the generator runs once; the adversary sees only the released synthetic data and
 * scores a canary by minus its distance to the closest synthetic record of the canary's label.
 * A generator that memorises (or whose noise is broken) reproduces included canaries. The runner
 * that re-runs the generator with them is `auditSynthesis` in src/runs/audit.ts.
 */
import type { ImageDataset } from '../data/index.js';

/** Inserts m mislabeled held-out canaries (each w.p. ½) into the training split. */
export function insertInputCanaries(ds: ImageDataset, m: number, rng: { nextDouble(): number }): { data: ImageDataset; canaries: { images: Uint8Array; labels: Int32Array; count: number }; included: boolean[] } {
  const per = ds.height * ds.width * ds.channels;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (ds.test.count < m) throw new RangeError(`input canaries come from the test split, which has only ${ds.test.count} images (< m = ${m})`);
  if (ds.numClasses < 2) throw new RangeError('input canaries need at least two classes (they carry a wrong label)');
  const order = Int32Array.from({ length: ds.test.count }, (_, i) => i);
  for (let j = 0; j < m; j++) {
    const r = j + Math.floor(rng.nextDouble() * (ds.test.count - j));
    [order[j], order[r]] = [order[r]!, order[j]!];
  }
  const images = new Uint8Array(m * per);
  const labels = new Int32Array(m);
  for (let j = 0; j < m; j++) {
    images.set(ds.test.images.subarray(order[j]! * per, (order[j]! + 1) * per), j * per);
    labels[j] = (ds.test.labels[order[j]!]! + 1 + Math.floor(rng.nextDouble() * (ds.numClasses - 1))) % ds.numClasses;
  }
  const included = Array.from({ length: m }, () => rng.nextDouble() < 0.5);
  const inIdx = included.flatMap((b, j) => (b ? [j] : []));
  const n = ds.train.count + inIdx.length;
  const trainImages = new Uint8Array(n * per);
  trainImages.set(ds.train.images.subarray(0, ds.train.count * per));
  const trainLabels = new Int32Array(n);
  trainLabels.set(ds.train.labels.subarray(0, ds.train.count));
  inIdx.forEach((j, k) => {
    trainImages.set(images.subarray(j * per, (j + 1) * per), (ds.train.count + k) * per);
    trainLabels[ds.train.count + k] = labels[j]!;
  });
  return { data: { ...ds, train: { images: trainImages, labels: trainLabels, count: n }, rawFingerprint: `${ds.rawFingerprint}+input-canaries` }, canaries: { images, labels, count: m }, included };
}
