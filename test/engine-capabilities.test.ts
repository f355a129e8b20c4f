// Issue 13 item 5/6: code asks the engine for capabilities instead of comparing backend names, and
// one starter (ensureEngine in src/engine) honours backend 'cpu' | 'ort' and threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { engineCapabilities, engineStats, ensureEngine } from '../src/engine/index.js';
import { buildModel, forwardBackward, setInitSeed } from '../src/nn/index.js';

test('ensureEngine: honours backend cpu, keeps the running backend when none is asked, switches and applies threads on request', async () => {
  assert.equal(await ensureEngine({ backend: 'cpu' }), 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(await ensureEngine(), 'cpu', 'a bare call keeps the running backend');
  assert.equal(await ensureEngine({ backend: 'ort', threads: 1 }), 'ort');
  assert.equal(engineStats().threads, 1);
  assert.equal(await ensureEngine({ threads: 2 }), 'ort');
  assert.equal(engineStats().threads, 2);
  await assert.rejects(ensureEngine({ backend: 'no-such-backend' }), /not registered/);
  assert.equal(await ensureEngine(), 'ort', 'a failed switch leaves the engine running');
});

test('capabilities: cpu keeps tensors on the host without native kernels; ort adds the native paths', () => {
  assert.deepEqual(engineCapabilities('cpu'), { hostMemory: true, nativeConvBackpropInput: false, fusedReluBackprop: false, onnxRuntime: false });
  assert.deepEqual(engineCapabilities('ort'), { hostMemory: true, nativeConvBackpropInput: true, fusedReluBackprop: true, onnxRuntime: true });
  assert.equal(engineCapabilities('some-gpu-backend').hostMemory, false, 'unknown backends get the portable tfjs paths');
});

// The second convolution needs an input gradient: native transposed convolution on 'ort', host col2im on 'cpu'.
test('conv2d per-sample gradients agree whichever input-gradient path the capabilities pick', async () => {
  const run = async (backend: 'cpu' | 'ort') => {
    await ensureEngine({ backend });
    setInitSeed(5);
    const m = buildModel([{ type: 'conv2d', filters: 3, kernel: 3, padding: 1 }, { type: 'tanh' }, { type: 'conv2d', filters: 2, kernel: 3, stride: 2 }, { type: 'flatten' }, { type: 'dense', units: 2 }], [6, 6, 1]);
    const x = tf.randomNormal([3, 6, 6, 1], 0, 1, 'float32', 9);
    const r = forwardBackward(m, x, tf.tensor1d([0, 1, 0], 'int32'));
    return Array.from(r.tape.records.flatMap((rec) => rec.sqNorms()).flatMap((t) => Array.from(t.dataSync())));
  };
  const a = await run('cpu');
  const b = await run('ort');
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-4 * Math.max(1, Math.abs(v)), `norm ${i}: ${v} vs ${b[i]}`));
});

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no code outside the engine compares the backend by name', () => {
  const offenders = sources('src')
    .filter((p) => !p.startsWith(join('src', 'engine')) && !p.startsWith(join('src', 'cli')))
    .filter((p) => /getBackend\(\)\s*[!=]==|backendName\s*[!=]==|[!=]==\s*'(ort|cpu)'|'(ort|cpu)'\s*[!=]==/.test(readFileSync(p, 'utf8')));
  assert.deepEqual(offenders, []);
});
