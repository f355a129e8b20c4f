/**
 * The fidelity feature network: a fixed CNN trained with a fixed seed only on the REAL TRAINING
 * split of a dataset, whose penultimate activations are the feature space of FID / precision /
 * recall (fidelity.ts). It is an evaluation instrument: no generator may read it.
 *
 * Architecture: the strided CNN of classifiers.ts (Conv32 s2 → Conv64 s2 → Dense 128 → Dense C),
 * 128 features, Adam lr 1e-3, batch 128, 3 epochs (≈ 99 % MNIST test accuracy). Deterministic for
 * a given dataset and seed (seeded init, shuffling and dropout; the engine's float sums may
 * differ in the last bits between thread counts). The runner caches its weights outside any run
 * folder, keyed by the dataset's keyed fingerprint, so all runs on one dataset share one instrument.
 */
import type { ImageBatch } from '../data/types.js';
import { Classifier, STRIDED_CNN, toFloatImages, trainClassifier, type ClassifierArch } from './classifiers.js';

export const FEATURE_NET_ARCH: ClassifierArch = STRIDED_CNN;
export const FEATURE_NET_SEED = 20190923;
export const FEATURE_NET_EPOCHS = 3;

export interface FeatureNetConfig {
  arch: string;
  seed: number;
  epochs: number;
  /** Real training images used (all of the split unless a test limits it). */
  trainCount: number;
}

/** Cache identity of a feature net (goes into the cache file name with the keyed fingerprint). */
export function featureNetKey(c: FeatureNetConfig): string {
  return `${c.arch}-v1-s${c.seed}-e${c.epochs}-n${c.trainCount}`;
}

export interface SavedFeatureNet {
  version: 1;
  config: FeatureNetConfig;
  numClasses: number;
  height: number;
  width: number;
  channels: number;
  /** Weights in variable order, little-endian float32, base64. */
  weights: string[];
}

/** Trains the feature net on (the first `trainCount` images of) the real training split. */
export function trainFeatureNet(realTrain: ImageBatch, numClasses: number, trainCount = realTrain.count, epochs = FEATURE_NET_EPOCHS): { net: Classifier; saved: SavedFeatureNet } {
  const n = Math.min(trainCount, realTrain.count);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  const train = toFloatImages(realTrain, idx);
  const net = new Classifier(FEATURE_NET_ARCH, realTrain, numClasses, FEATURE_NET_SEED);
  trainClassifier(net, train, { seed: FEATURE_NET_SEED, epochs });
  const saved: SavedFeatureNet = {
    version: 1,
    config: { arch: FEATURE_NET_ARCH.name, seed: FEATURE_NET_SEED, epochs, trainCount: n },
    numClasses,
    height: realTrain.height,
    width: realTrain.width,
    channels: realTrain.channels,
    weights: net.snapshot().map((w) => Buffer.from(w.buffer, w.byteOffset, w.byteLength).toString('base64')),
  };
  return { net, saved };
}

/** Rebuilds a saved feature net; throws when it does not match the expected config or geometry. */
export function loadFeatureNet(s: SavedFeatureNet, expect: { config: FeatureNetConfig; numClasses: number; height: number; width: number; channels: number }): Classifier {
  if (s.version !== 1 || featureNetKey(s.config) !== featureNetKey(expect.config) || s.numClasses !== expect.numClasses || s.height !== expect.height || s.width !== expect.width || s.channels !== expect.channels) {
    throw new RangeError('cached feature net does not match this dataset or configuration');
  }
  const net = new Classifier(FEATURE_NET_ARCH, s, s.numClasses, FEATURE_NET_SEED);
  try {
    net.restore(
      s.weights.map((b64) => {
        const buf = Buffer.from(b64, 'base64');
        return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
      }),
    );
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}
