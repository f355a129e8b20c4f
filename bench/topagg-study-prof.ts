/**
 * Step profile of the TopAgg-SGD study (issue 16 item 6): wall and CPU time per DP-SGD step of the
 * reference CNN on MNIST at batch 240, TopAgg (k = 1 % of the parameters, new defaults) or, with
 * argument `g`, the Gaussian privatizer; then per-kernel times of 10 more steps. CPU time moves far
 * less with other people's load than wall time does on a shared machine.
 *   node --import tsx bench/topagg-study-prof.ts      # TopAgg
 *   node --import tsx bench/topagg-study-prof.ts g    # Gaussian
 */
import { initEngine, engineStats, resetEngineStats, setEngineTiming } from '../src/engine/index.js';
import { loadMnist } from '../src/data/index.js';
import { buildModel, referenceCnnSpec } from '../src/nn/index.js';
import { imageData, makePrivate, SGD, TopAggPrivatizer } from '../src/train/index.js';
import { seededRandom } from '../src/privacy/index.js';

await initEngine();
const ds = loadMnist();
const model = buildModel(referenceCnnSpec(10), [28, 28, 1]);
const P = model.parameters().reduce((s, p) => s + p.value.size, 0);
const gaussian = process.argv[2] === 'g';
const priv = gaussian ? undefined : new TopAggPrivatizer({ k: Math.round(P * 0.01), noiseMultiplier: 1 });
const tr = makePrivate({ model, optimizer: new SGD(0.05), data: imageData(ds.train, ds, { mean: [0.1307], std: [0.3081] }), noiseMultiplier: 1, maxGradNorm: 1.5, delta: 1e-5, batchSize: 240, rng: seededRandom(1), privatizer: priv });
tr.fit({ steps: 2 });
const c0 = process.cpuUsage();
const t0 = performance.now();
tr.fit({ steps: 10 });
const cpu = process.cpuUsage(c0);
console.log(JSON.stringify({ privatizer: gaussian ? 'gaussian' : 'topagg', params: P, wallMsPerStep: +((performance.now() - t0) / 10).toFixed(1), cpuMsPerStep: +((cpu.user + cpu.system) / 10000).toFixed(1) }));
setEngineTiming(true);
resetEngineStats();
tr.fit({ steps: 10 });
const ms = engineStats().kernelTimeMs;
console.log(JSON.stringify(Object.fromEntries(Object.entries(ms).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => [k, +(v / 10).toFixed(1)]))));
