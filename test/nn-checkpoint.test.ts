// One checkpoint format (issue 13 item 6) and file-naming errors for models (issue 12: error
// messages without the file name).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ensureEngine } from '../src/engine/index.js';
import { buildModel, importTfjsLayersModel, loadModel, mlpSpec, saveModel, setInitSeed } from '../src/nn/index.js';
import { CheckpointError, readCheckpoint, writeCheckpoint } from '../src/nn/checkpoint.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND ?? 'cpu' });
  setInitSeed(11);
});

function savedModelDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-ckpt-')), 'model');
  saveModel(dir, buildModel(mlpSpec(3, 5), [2, 2]), [2, 2], { note: 'x' });
  return dir;
}

/** The error loadModel(dir) throws: one line, naming `file`. */
function loadError(dir: string, file: string): Error {
  let err: unknown;
  try {
    loadModel(dir);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, 'loadModel threw');
  assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
  assert.ok(err.message.includes(join(dir, file)), `names ${file}: ${err.message}`);
  return err;
}

test('saveModel/loadModel round-trip: same spec, weights and meta; model.json keeps its documented fields', () => {
  const dir = savedModelDir();
  const { model, inputShape, meta } = loadModel(dir);
  assert.deepEqual(inputShape, [2, 2]);
  assert.deepEqual(meta, { note: 'x' });
  const j = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  assert.equal(j.format, 'dplens-model/1');
  assert.equal(j.weights, 'weights.bin');
  assert.deepEqual(j.params.map((e: { name: string }) => e.name), model.parameters().map((p) => p.name));
  const bin = new Float32Array(new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer);
  assert.deepEqual(Array.from(model.parameters()[0]!.value.dataSync()), Array.from(bin.subarray(j.params[0].offset, j.params[0].offset + j.params[0].length)));
});

test('missing or corrupt model.json / weights.bin give a one-line error naming the file', () => {
  const missing = join(mkdtempSync(join(tmpdir(), 'dplens-ckpt-')), 'nothing-here');
  loadError(missing, 'model.json');

  const badJson = savedModelDir();
  writeFileSync(join(badJson, 'model.json'), '{"format": "dplens-model/1", "params": [');
  assert.match(loadError(badJson, 'model.json').message, /not valid JSON/);

  const wrongFormat = savedModelDir();
  writeFileSync(join(wrongFormat, 'model.json'), JSON.stringify({ format: 'something-else' }));
  assert.match(loadError(wrongFormat, 'model.json').message, /unknown format "something-else"/);

  const noWeights = savedModelDir();
  rmSync(join(noWeights, 'weights.bin'));
  assert.match(loadError(noWeights, 'weights.bin').message, /not found/);

  const truncated = savedModelDir();
  const raw = readFileSync(join(truncated, 'weights.bin'));
  writeFileSync(join(truncated, 'weights.bin'), raw.subarray(0, raw.byteLength - 8));
  assert.match(loadError(truncated, 'weights.bin').message, /truncated/);

  const ragged = savedModelDir();
  writeFileSync(join(ragged, 'weights.bin'), Buffer.concat([readFileSync(join(ragged, 'weights.bin')), Buffer.from([1, 2])]));
  loadError(ragged, 'weights.bin');

  const badSpec = savedModelDir();
  const j = JSON.parse(readFileSync(join(badSpec, 'model.json'), 'utf8'));
  j.spec.layers[1].type = 'nosuchlayer';
  writeFileSync(join(badSpec, 'model.json'), JSON.stringify(j));
  assert.match(loadError(badSpec, 'model.json').message, /unknown layer type/);
});

test('checkpoints written by the former generator writer (entries without length, no blob name) still read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-ckpt-gen-'));
  const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const b = Float32Array.from([7, 8]);
  writeFileSync(join(dir, 'generator.bin'), new Uint8Array(Float32Array.from([...a, ...b]).buffer));
  writeFileSync(join(dir, 'generator.json'), JSON.stringify({ format: 'dplens-generator-1', method: 'datalens', steps: 3, config: {}, params: [{ name: 'w', shape: [2, 3], offset: 0 }, { name: 'b', shape: [2], offset: 6 }] }, null, 1));
  const layout = { header: 'generator.json', blob: 'generator.bin', format: 'dplens-generator-1' };
  const r = readCheckpoint(dir, layout);
  assert.equal(r.header.steps, 3);
  assert.deepEqual(r.tensors.map((t) => [t.entry.name, t.entry.shape, Array.from(t.data)]), [['w', [2, 3], [1, 2, 3, 4, 5, 6]], ['b', [2], [7, 8]]]);
  // and the one writer reproduces the same values under the same layout
  const out = join(dir, 'rewritten');
  mkdirSync(out);
  writeCheckpoint(out, layout, { method: 'datalens', steps: 3, config: {} }, r.tensors.map((t) => ({ shape: t.entry.shape, data: t.data, labels: { name: t.entry.name } })));
  assert.deepEqual(Array.from(readCheckpoint(out, layout).blob), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => readCheckpoint(out, { ...layout, format: 'dplens-model/1' }), (e: unknown) => e instanceof CheckpointError && e instanceof RangeError && e.message.startsWith(join(out, 'generator.json')));
});

test('a loaded model computes what the saved one did', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-ckpt-')), 'm');
  const m = buildModel([{ type: 'conv2d', filters: 3, kernel: 3 }, { type: 'relu' }, { type: 'flatten' }, { type: 'dense', units: 2 }], [5, 5, 1]);
  saveModel(dir, m, [5, 5, 1]);
  const x = tf.randomNormal([2, 5, 5, 1], 0, 1, 'float32', 5);
  assert.deepEqual(Array.from(loadModel(dir).model.forward(x, false).dataSync()), Array.from(m.forward(x, false).dataSync()));
});

test('tfjs-layers import: corrupt model.json or a missing weight shard is a one-line error naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-tfjs-'));
  const path = join(dir, 'model.json');
  writeFileSync(path, '{"modelTopology": ');
  assert.throws(() => importTfjsLayersModel(path), (e: unknown) => e instanceof Error && e.message.startsWith(`${path}: not valid JSON`) && !e.message.includes('\n'));
  const topology = { class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 2, use_bias: true, activation: 'linear', batch_input_shape: [null, 3] } }] } };
  writeFileSync(path, JSON.stringify({ format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['shard.bin'], weights: [{ name: 'k', shape: [3, 2], dtype: 'float32' }, { name: 'b', shape: [2], dtype: 'float32' }] }] }));
  assert.throws(() => importTfjsLayersModel(path), (e: unknown) => e instanceof Error && e.message.startsWith(join(dir, 'shard.bin')));
});
