// Per-kernel profile of the reference workloads (issue 18, item 1): MLP 784-512-10 and the
// reference CNN, forward+backward at batch 256 on real MNIST. For every kernel: calls per step,
// wall ms per step, the part inside ONNX Runtime's native run (its work + the binding's output
// copy), and the rest (JS around the call: feeds, tensor wrapping, host kernels). The step's
// remainder outside all kernels is tfjs itself (tape, tidy, gradient functions) and GC.
//
//   node --import tsx bench/engine-profile.ts [--reps N] [--json] [--graph-maxpoolgrad]
//
// --graph-maxpoolgrad: MaxPoolGrad on the former ONNX graph instead of the host pass (before/after).
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { engineStats, engineTuning, ensureEngine, resetEngineStats, setEngineTiming } from '../src/engine/index.js';
import { lossAndGrads, makeCnn, makeCnnFused, makeMlp, makeMlpFused, mnistBatch, type RefNet } from '../src/engine/reference-nets.js';
import { loadMnist } from '../src/data/index.js';
import { Classifier, HostAdam, SPEC7_CNN, shardGradients, toFloatImages } from '../src/evaluate/classifiers.js';

const argv = process.argv.slice(2);
const i = argv.indexOf('--reps');
const reps = i >= 0 ? Number(argv[i + 1]) : 30;

await ensureEngine();
if (argv.includes('--graph-maxpoolgrad')) engineTuning.hostMaxPoolGrad = false;
const mnist = loadMnist();
const x = mnistBatch(mnist.train.images, 0, 256);
const y = tf.tensor1d(mnist.train.labels.subarray(0, 256), 'int32');

const step = (net: RefNet) => () =>
  tf.tidy(() => {
    const { loss, grads } = lossAndGrads(net, x, y);
    loss.dataSync();
    for (const g of grads) g.dataSync();
  });

interface Row {
  kernel: string;
  calls: number;
  ms: number;
  ortRunMs: number;
  jsMs: number;
  cpuMs: number;
}

function profile(name: string, fn: () => void) {
  for (let k = 0; k < 5; k++) fn();
  // The step wall times are kept per repetition; the kernel table is the sum over all of them
  // divided by reps, next to the step time of the fastest repetitions (least disturbed by load).
  resetEngineStats();
  setEngineTiming(true);
  const walls: number[] = [];
  const c0 = process.cpuUsage();
  for (let k = 0; k < reps; k++) {
    const t0 = performance.now();
    fn();
    walls.push(performance.now() - t0);
  }
  const c = process.cpuUsage(c0);
  setEngineTiming(false);
  const s = engineStats();
  const rows: Row[] = Object.entries(s.kernelTimeMs)
    .map(([kernel, ms]) => ({
      kernel,
      calls: (s.kernelCalls[kernel] ?? 0) / reps,
      ms: ms / reps,
      ortRunMs: (s.kernelOrtRunMs[kernel] ?? 0) / reps,
      jsMs: (ms - (s.kernelOrtRunMs[kernel] ?? 0)) / reps,
      cpuMs: (s.kernelCpuMs[kernel] ?? 0) / reps,
    }))
    .sort((a, b) => b.cpuMs - a.cpuMs);
  const meanWall = walls.reduce((a, b) => a + b, 0) / reps;
  const sorted = walls.slice().sort((a, b) => a - b);
  const kernelsMs = rows.reduce((a, r) => a + r.ms, 0);
  return {
    name,
    stepMeanMs: meanWall,
    stepMinMs: sorted[0],
    stepMedianMs: sorted[reps >> 1],
    cpuMsPerStep: (c.user + c.system) / 1000 / reps,
    kernelsMs,
    ortRunMs: rows.reduce((a, r) => a + r.ortRunMs, 0),
    kernelsCpuMs: rows.reduce((a, r) => a + r.cpuMs, 0),
    outsideKernelsMs: meanWall - kernelsMs,
    rows,
  };
}

/**
 * One training step of the evaluation CNN (spec §7, `dplens eval`'s classifier) at batch 128 as
 * trainClassifier runs it on one shard: loss and gradients (per-example dropout), then the host
 * Adam step. With data parallelism each of the two threads runs this at batch 64.
 */
function evalStep(batch: number): () => void {
  const train = toFloatImages({ ...mnist.train, height: 28, width: 28, channels: 1 }, Int32Array.from({ length: batch }, (_, k) => k));
  const order = Int32Array.from({ length: batch }, (_, k) => k);
  const net = new Classifier(SPEC7_CNN, train, 10, 1);
  const opt = new HostAdam(SPEC7_CNN.learningRate);
  let seed = 1;
  return () => {
    const r = shardGradients(net, train, order, 0, batch, 0, batch, (seed += 97));
    opt.applyGradients(net.vars, r.grads);
  };
}

const load0 = os.loadavg()[0];
const results = [
  profile('MLP 784-512-10', step(makeMlp(0))),
  profile('reference CNN', step(makeCnn(0))),
  profile('MLP 784-512-10, fused layers', step(makeMlpFused(0))),
  profile('reference CNN, fused layers', step(makeCnnFused(0))),
  profile('eval CNN (spec §7) training step, batch 128, Adam', evalStep(128)),
  profile('eval CNN training step, batch 64 (one of two data-parallel shards)', evalStep(64)),
];
const load1 = os.loadavg()[0];
if (argv.includes('--json')) console.log(JSON.stringify({ reps, hostMaxPoolGrad: engineTuning.hostMaxPoolGrad, loadAverage: [load0, load1], results }));
else {
  const f = (v: number) => v.toFixed(2);
  console.log(`reps ${reps}, hostMaxPoolGrad ${engineTuning.hostMaxPoolGrad}, load average ${load0.toFixed(1)} → ${load1.toFixed(1)} (2 cores)`);
  for (const r of results) {
    console.log(`\n### ${r.name}: step mean ${f(r.stepMeanMs)} ms (min ${f(r.stepMinMs)}, median ${f(r.stepMedianMs)}), CPU ${f(r.cpuMsPerStep)} ms/step`);
    console.log(`kernels ${f(r.kernelsMs)} ms wall (inside ORT run ${f(r.ortRunMs)}), ${f(r.kernelsCpuMs)} ms CPU; outside kernels (tfjs tape/tidy, GC) ${f(r.outsideKernelsMs)} ms wall, ${f(r.cpuMsPerStep - r.kernelsCpuMs)} ms CPU\n`);
    console.log('| kernel | calls/step | CPU ms/step | wall ms/step | wall in ORT run | wall JS around / host |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const k of r.rows) if (k.ms >= 0.01) console.log(`| ${k.kernel} | ${k.calls} | ${f(k.cpuMs)} | ${f(k.ms)} | ${f(k.ortRunMs)} | ${f(k.jsMs)} |`);
  }
}
