/**
 * Central images of the warm-up curriculum (src/generate/warmup.ts): nearest-centroid accuracy of
 * the released central images on the real test split, per dataset × ε × warm-up kind.
 * By default (--share 0.999) the whole budget goes to the central images (an upper bound); a
 * generator's warm-up uses --share 0.1 (the default of WARMUP_DEFAULTS).
 * Usage: node --import tsx bench/warmup-central.ts [--data mnist,fashion-mnist] [--eps 1,10] [--share S]
 *        [--kinds class-means,kmeans] [--centroids K] [--iterations T] [--clip R] [--downsample f] [--q Q] [--smooth s] [--seed N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, type ImageDataset } from '../src/data/index.js';
import { PrivacyLedger, seededRandom, secureRandom } from '../src/privacy/index.js';
import { releaseCentralImages, WARMUP_DEFAULTS, type CentralImages, type WarmupHyper, type WarmupKind } from '../src/generate/warmup.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const list = (k: string, d: string) => (args.get(k) ?? d).split(',');

/** Accuracy on the test split of "label = class of the nearest central image". */
export function nearestCentroidAccuracy(central: CentralImages, data: ImageDataset): number {
  const d = central.height * central.width * central.channels;
  const { test } = data;
  let right = 0;
  for (let i = 0; i < test.count; i++) {
    let best = -1;
    let bd = Infinity;
    for (let j = 0; j < central.count; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) {
        const u = test.images[i * d + t]! / 255 - central.images[j * d + t]!;
        s += u * u;
      }
      if (s < bd) [bd, best] = [s, central.labels[j]!];
    }
    if (best === test.labels[i]) right++;
  }
  return right / test.count;
}

const seed = args.has('seed') ? Number(args.get('seed')) : undefined;
for (const name of list('data', 'mnist,fashion-mnist')) {
  const data = loadDataset(name);
  for (const eps of list('eps', '1,10').map(Number)) {
    for (const kind of list('kinds', 'class-means,kmeans') as WarmupKind[]) {
      const h: WarmupHyper = {
        ...WARMUP_DEFAULTS,
        warmup: kind,
        warmupShare: Number(args.get('share') ?? 0.999),
        warmupCentroids: Number(args.get('centroids') ?? (kind === 'kmeans' ? 4 : 1)),
        warmupIterations: Number(args.get('iterations') ?? 2),
        warmupClip: Number(args.get('clip') ?? WARMUP_DEFAULTS.warmupClip),
        warmupDownsample: Number(args.get('downsample') ?? WARMUP_DEFAULTS.warmupDownsample),
        warmupSampleRate: Number(args.get('q') ?? 1),
      };
      const dir = mkdtempSync(join(tmpdir(), 'dplens-warmup-bench-'));
      const rng = seed === undefined ? secureRandom() : seededRandom(seed);
      const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'), { accountant: 'rdp', relation: 'add-remove', randomness: rng.kind === 'seeded' ? { kind: 'seeded', seed: rng.seed! } : { kind: 'secure' }, budget: { epsilon: eps, delta: 1e-5 } });
      const t0 = Date.now();
      const central = await releaseCentralImages({ data, budget: { epsilon: eps, delta: 1e-5 }, ledger, random: rng }, h, { method: 'warmup-bench', smooth: Number(args.get('smooth') ?? 0) });
      const secs = (Date.now() - t0) / 1000;
      const acc = nearestCentroidAccuracy(central, data);
      console.log(JSON.stringify({ data: name, epsilon: eps, share: h.warmupShare, kind, centroids: h.warmupCentroids, iterations: h.warmupIterations, clip: h.warmupClip, downsample: h.warmupDownsample, q: h.warmupSampleRate, sigma: +central.plan.sigma.toFixed(3), warmupEpsilon: +central.plan.epsilon.toFixed(4), ledgerEpsilon: +ledger.spent(1e-5).toFixed(4), images: central.count, nearestCentroidAccuracy: acc, releaseSeconds: secs }));
      ledger.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
