/**
 * Magnitude pruning with DP-SGD (src/train/prune.ts, `dplens train --prune`): the mask keeps the
 * largest magnitudes, pruned coordinates stay exactly zero through training (with momentum and
 * EMA), the mask is fixed once chosen, and pruning changes nothing in the accounting.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, setInitSeed } from '../src/nn/index.js';
import { seededRandom } from '../src/privacy/index.js';
import { ensureEngine, imageData, magnitudeMask, MagnitudePruner, makePrivate, prunableParams, SGD } from '../src/train/index.js';
import { runTraining } from '../src/runs/train.js';
import { main } from '../src/cli/main.js';
import { toyDataset } from './train-fixture.js';

before(async () => {
  await ensureEngine({ backend: process.env.DPLENS_TEST_BACKEND });
});

test('magnitudeMask drops the floor(S·n) smallest |w| (ties: later entries first)', () => {
  const w = Float32Array.from([0.5, -0.1, 0.3, -0.9, 0.1, 0, 2]);
  assert.deepEqual(Array.from(magnitudeMask(w, 0.5)), [1, 0, 1, 1, 0, 0, 1]);
  assert.deepEqual(Array.from(magnitudeMask(w, 0)), [1, 1, 1, 1, 1, 1, 1]);
  assert.equal(Array.from(magnitudeMask(w, 0.99)).filter((x) => x === 0).length, 6);
  const ties = Float32Array.from([1, 1, 1, 1]);
  assert.deepEqual(Array.from(magnitudeMask(ties, 0.5)), [1, 1, 0, 0]);
});

test('pruned coordinates stay exactly zero through training (SGD momentum, EMA); the mask is fixed once chosen', () => {
  const ds = toyDataset(400, 2, { testCount: 50 });
  for (const at of [0, 0.4]) {
    setInitSeed(4);
    const model = buildModel([{ type: 'flatten' }, { type: 'dense', units: 32 }, { type: 'relu' }, { type: 'dense', units: 4 }], [8, 8, 1]);
    const params = model.parameters();
    const norm = { mean: [0.5], std: [0.5] };
    const tr = makePrivate({ model, optimizer: new SGD(0.5, { momentum: 0.9 }), data: imageData(ds.train, ds, norm), noiseMultiplier: 0.8, maxGradNorm: 1, delta: 1e-5, batchSize: 40, rng: seededRandom(3), emaDecay: 0.9 });
    const pruner = new MagnitudePruner(params, { sparsity: 0.7, at }, () => [tr.ema!.getShadow()]);
    const total = 30;
    pruner.start(0, total);
    let zerosAtMask: boolean[][] | undefined;
    let checked = 0;
    tr.fit({
      steps: total,
      onStep: (i) => {
        pruner.afterStep(i.step, total);
        if (pruner.maskStep === undefined) return;
        const now = prunableParams(params).map((p) => Array.from(p.value.dataSync(), (v) => v === 0));
        if (!zerosAtMask) {
          zerosAtMask = now;
          assert.equal(pruner.maskStep, Math.round(at * total));
          for (const z of now) assert.ok(z.filter(Boolean).length >= Math.floor(0.7 * z.length), 'sparsity reached at mask time');
          return;
        }
        // every coordinate zeroed at mask time is still exactly zero, after momentum updates
        zerosAtMask.forEach((z, j) => z.forEach((wasZero, t) => wasZero && assert.equal(now[j]![t], true, `param ${j} coord ${t} step ${i.step}`)));
        checked++;
      },
    });
    assert.ok(checked >= total * (1 - at) - 2, `checked ${checked} steps`);
    assert.ok(pruner.measuredSparsity() > 0.69, `${pruner.measuredSparsity()}`);
    // biases are never pruned; the EMA shadow of a pruned weight is zero too
    const shadow = tr.ema!.getShadow();
    params.forEach((p, i) => {
      if (p.value.rank < 2) return;
      const w = p.value.dataSync();
      const s = shadow[i]!.dataSync();
      for (let t = 0; t < w.length; t++) if (w[t] === 0 && zerosAtMask![prunableParams(params).indexOf(p)]![t]) assert.ok(s[t] === 0, `EMA shadow ${s[t]}`);
    });
    pruner.dispose();
  }
});

test('runTraining --prune: same ε as the unpruned run, result and model report the sparsity, bad values refused', async () => {
  const ds = toyDataset(600, 1, { testCount: 100 });
  const dir = mkdtempSync(join(tmpdir(), 'dplens-prune-'));
  const base = { epochs: 0.5, batch: 30, noise: 1.1, clip: 1, lr: 0.5, delta: 1e-5, seed: 7, model: 'mlp' as const };
  const plain = await runTraining({ ...base, out: join(dir, 'a') }, { dataOverride: ds });
  const pruned = await runTraining({ ...base, prune: 0.8, pruneAt: 0.5, out: join(dir, 'b') }, { dataOverride: ds });
  assert.equal(pruned.epsilon, plain.epsilon);
  assert.equal(pruned.steps, plain.steps);
  assert.deepEqual({ ...pruned.prune!, measuredSparsity: undefined }, { sparsity: 0.8, at: 0.5, maskStep: Math.round(0.5 * plain.steps), measuredSparsity: undefined });
  assert.ok(pruned.prune!.measuredSparsity > 0.79, `${pruned.prune!.measuredSparsity}`);
  const result = JSON.parse(readFileSync(join(dir, 'b', 'result.json'), 'utf8'));
  assert.equal(result.prune.sparsity, 0.8);
  await assert.rejects(runTraining({ ...base, prune: 1 }, { dataOverride: ds }), /sparsity must be in \[0, 1\)/);
  await assert.rejects(runTraining({ ...base, pruneAt: 0.5 }, { dataOverride: ds }), /--prune-at needs --prune/);
});

test('dplens train: --prune-at without --prune and --prune outside [0, 1) are usage errors', async () => {
  const e = process.stderr.write.bind(process.stderr);
  let err = '';
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const base = ['train', '--data', 'mnist', '--epochs', '0.01', '--noise', '1', '--json'];
    assert.equal(await main([...base, '--prune-at', '0.5']), 2);
    assert.match(err, /--prune-at needs --prune/);
    err = '';
    assert.equal(await main([...base, '--prune', '1.5']), 2);
    assert.match(err, /--prune must be in \[0, 1\)/);
  } finally {
    process.stderr.write = e;
  }
});
