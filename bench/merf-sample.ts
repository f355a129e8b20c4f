/**
 * Samples N images from a saved mean-embedding generator (post-processing; no data, no budget) and
 * writes DIR/synthetic.npz, optionally with the affine prior:
 *   node --import tsx bench/merf-sample.ts RUN_DIR OUT_DIR N [affine]
 * Used to salvage a run killed while sampling (the generator checkpoint is written before sampling).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { augmentAffine, ensureEngine, getGenerator } from '../src/generate/index.js';
import { seededRandom } from '../src/privacy/index.js';
import { writeSamples } from '../src/runs/synth.js';

const [dir, out, nRaw, aug] = process.argv.slice(2);
if (!dir || !out) throw new Error('usage: merf-sample.ts RUN_DIR OUT_DIR N [affine]');
await ensureEngine();
const s = getGenerator('dp-kernel').loadSampler(join(dir, 'generator'));
const rng = seededRandom(7);
const set = await s.sample(Number(nRaw ?? 10000), rng);
if (aug === 'affine') augmentAffine(set.images, set.count, set.height, set.width, rng);
mkdirSync(out, { recursive: true });
writeSamples(set, 10, join(out, 'synthetic.npz'), join(out, 'samples.png'));
console.log(join(out, 'synthetic.npz'));
