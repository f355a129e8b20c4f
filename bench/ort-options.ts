// ONNX Runtime session options vs MatMul speed (issue 18, item 2): GFLOP/s of one MatMul session
// for 1024³ and the MLP 784-512-10 shapes at batch 256, under each option set, timed interleaved
// (one call of every variant per round, so load changes hit all alike); min and median per call.
//
//   node --import tsx bench/ort-options.ts [--binding DIR] [--reps N] [--json]
//
// --binding DIR: an unpacked onnxruntime-node package (e.g. `npm pack onnxruntime-node@X` then
// tar xzf) to compare versions in the same process (default: the installed one). The internal
// binding is loaded directly, as src/engine/ort-runtime.ts does.
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../src/engine/graph.js';
import { encodeModel } from '../src/engine/onnx-proto.js';

const require = createRequire(import.meta.url);
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const reps = Number(opt('reps') ?? 15);
const bindingDir = opt('binding');

interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, null>, options: object): Record<string, { data: Float32Array }>;
}
const mod = require(bindingDir ? join(bindingDir, 'dist', 'binding') : 'onnxruntime-node/dist/binding') as {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
};
mod.initOrt();
const version = (require(bindingDir ? join(bindingDir, 'package.json') : 'onnxruntime-node/package.json') as { version: string }).version;

interface Variant {
  name: string;
  options: object;
}
const spin = (on: boolean) => ({ session: { intra_op: { allow_spinning: on ? '1' : '0' }, inter_op: { allow_spinning: on ? '1' : '0' } } });
const base = { interOpNumThreads: 1, graphOptimizationLevel: 'extended', executionMode: 'sequential' };
const variants: Variant[] = [
  { name: 'engine (2 thr, spin off, extended)', options: { ...base, intraOpNumThreads: 2, extra: spin(false) } },
  { name: '2 thr, spin on', options: { ...base, intraOpNumThreads: 2, extra: spin(true) } },
  { name: '1 thr', options: { ...base, intraOpNumThreads: 1, extra: spin(false) } },
  { name: '2 thr, opt all', options: { ...base, graphOptimizationLevel: 'all', intraOpNumThreads: 2, extra: spin(false) } },
  { name: '2 thr, opt disabled', options: { ...base, graphOptimizationLevel: 'disabled', intraOpNumThreads: 2, extra: spin(false) } },
  { name: '2 thr, no cpu arena', options: { ...base, enableCpuMemArena: false, intraOpNumThreads: 2, extra: spin(false) } },
  { name: '2 thr, parallel exec', options: { ...base, executionMode: 'parallel', intraOpNumThreads: 2, extra: spin(false) } },
  { name: '2 thr, spin off, dynamic block base 4', options: { ...base, intraOpNumThreads: 2, extra: { session: { ...spin(false).session, dynamic_block_base: '4' } } } },
];

/** MatMul shapes [m, k, n]: 1024³, then the MLP's forward and backward products at batch 256. */
const shapes: [string, number, number, number][] = [
  ['1024^3', 1024, 1024, 1024],
  ['mlp fwd 256x784x512', 256, 784, 512],
  ['mlp dW1 784x256x512', 784, 256, 512],
  ['mlp fwd2 256x512x10', 256, 512, 10],
  ['mlp dX2 256x10x512', 256, 10, 512],
];

function model(): Uint8Array {
  const g = new GraphBuilder();
  const a = g.input('float32', 2);
  const b = g.input('float32', 2);
  g.output(g.op('MatMul', [a, b]), 'float32');
  return encodeModel(g.build());
}

const bytes = model();
const sessions = variants.map((v) => {
  const s = new mod.binding.InferenceSession();
  s.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, v.options);
  return s;
});
const fetches = { o0: null };

const results: Record<string, Record<string, { minGflops: number; medianGflops: number }>> = {};
const loadBefore = os.loadavg()[0];
for (const [label, m, k, n] of shapes) {
  const a = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const b = new Float32Array(k * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const feeds = { i0: { type: 'float32', data: a, dims: [m, k], location: 'cpu' }, i1: { type: 'float32', data: b, dims: [k, n], location: 'cpu' } };
  const ts: number[][] = variants.map(() => []);
  const inner = Math.max(1, Math.round(2e8 / (2 * m * k * n)));
  for (let r = 0; r < reps + 2; r++) {
    for (let v = 0; v < variants.length; v++) {
      const t0 = performance.now();
      for (let j = 0; j < inner; j++) sessions[v].run(feeds, fetches, {});
      if (r >= 2) ts[v].push((performance.now() - t0) / inner);
    }
  }
  const flop = 2 * m * k * n;
  results[label] = {};
  variants.forEach((v, i) => {
    const s = ts[i].slice().sort((x, y) => x - y);
    results[label][v.name] = { minGflops: +(flop / s[0] / 1e6).toFixed(1), medianGflops: +(flop / s[s.length >> 1] / 1e6).toFixed(1) };
  });
}
const out = { onnxruntimeNode: version, reps, loadAverage: [loadBefore, os.loadavg()[0]], results };
if (argv.includes('--json')) console.log(JSON.stringify(out));
else {
  console.log(`onnxruntime-node ${version}, load ${out.loadAverage.map((l) => l.toFixed(1)).join(' → ')}, GFLOP/s min-time (median-time)`);
  for (const [label, row] of Object.entries(results)) {
    console.log(label);
    for (const [name, r] of Object.entries(row)) console.log(`  ${name.padEnd(40)} ${String(r.minGflops).padStart(7)} (${r.medianGflops})`);
  }
}
