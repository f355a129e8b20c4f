/** Shared fixture of the train tests: a small synthetic image dataset (class = brightest quadrant). */
import { seededRandom } from '../src/privacy/index.js';
import type { ImageDataset } from '../src/data/index.js';

/** n training and `testCount` test 8×8 images of 4 classes; `rawFingerprint` defaults to `${name}-${seed}`. */
export function toyDataset(n: number, seed: number, o: { name?: string; testCount?: number; rawFingerprint?: string } = {}): ImageDataset {
  const name = o.name ?? 'toy';
  const rng = seededRandom(seed);
  const mk = (count: number) => {
    const images = new Uint8Array(count * 64);
    const labels = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const c = Math.floor(rng.nextDouble() * 4);
      labels[i] = c;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) images[i * 64 + y * 8 + x] = Math.floor(rng.nextDouble() * 80) + ((y < 4 ? 0 : 2) + (x < 4 ? 0 : 1) === c ? 150 : 0);
    }
    return { images, labels, count };
  };
  return { kind: 'image', name, height: 8, width: 8, channels: 1, numClasses: 4, train: mk(n), test: mk(o.testCount ?? 100), rawFingerprint: o.rawFingerprint ?? `${name}-${seed}`, source: 'test' } as ImageDataset;
}
