/**
 * Samples of a dp-gan generator checkpoint (a running or finished run; post-processing only):
 * a grid PNG, and with a count also synthetic.npz for `dplens eval` (balanced labels).
 * node --import tsx bench/dpgan-peek.ts RUN/generator OUT.png [perClass] [--npz OUT.npz COUNT]
 */
import { ensureEngine } from '../src/engine/index.js';
import { dpGanPlugin } from '../src/generate/dp-gan.js';
import { seededRandom } from '../src/privacy/index.js';
import { writePngGrid } from '../src/data/png.js';
import { writeSamples } from '../src/runs/synth.js';
import { balancedLabels } from '../src/generate/voting-gan.js';

await ensureEngine();
const [dir, out, per, flag, npz, count] = process.argv.slice(2);
const k = Number(per ?? 10);
const s = dpGanPlugin.loadSampler(dir!);
const labels = Int32Array.from({ length: 10 * k }, (_, i) => Math.floor(i / k));
const set = await s.sample(labels.length, seededRandom(1), labels);
writePngGrid(out!, set.images, set.labels, { height: 28, width: 28, channels: 1, numClasses: 10, perClass: k });
if (flag === '--npz') {
  const rng = seededRandom(2);
  const n = Number(count);
  const all = await s.sample(n, rng, balancedLabels(rng, n, 10));
  writeSamples(all, 10, npz!, out!.replace(/\.png$/, '-all.png'));
}
console.log(`${s.steps} steps -> ${out}`);
s.dispose();
