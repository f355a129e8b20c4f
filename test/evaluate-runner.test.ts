/**
 * The `dplens eval` job runner (runs/eval.ts): the evaluate/ library does no file I/O; the runner
 * writes eval.json next to the synthetic set and, in a run folder with a manifest, lists it in
 * run.json so the report shows it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, writeNpz } from '../src/data/index.js';
import { runEval } from '../src/runs/eval.js';
import { readManifest, writeManifest } from '../src/runs/manifest.js';
import { buildReport } from '../src/report/index.js';

test('runEval writes eval.json next to the synthetic set and lists it in the folder’s run.json', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-eval-runner-'));
  try {
    const mnist = loadMnist();
    const n = 256;
    writeNpz(join(dir, 'synthetic.npz'), {
      images: { dtype: 'uint8', shape: [n, 28, 28], data: mnist.train.images.subarray(0, n * 784) },
      labels: { dtype: 'uint8', shape: [n], data: Uint8Array.from(mnist.train.labels.subarray(0, n)) },
    });
    const now = new Date().toISOString();
    writeManifest(dir, { version: 1, kind: 'synth', method: 'class-mean', createdAt: now, updatedAt: now, config: {}, artifacts: [{ path: 'synthetic.npz', what: 'synthetic images', status: 'covered' }], attempts: [] });
    const logs: string[] = [];
    // a small fidelity feature net (1000 real training images, 1 epoch), cached in a temporary folder
    process.env.DPLENS_CACHE_DIR = join(dir, 'cache');
    const r = await runEval({ synthetic: join(dir, 'synthetic.npz'), data: 'mnist', epochs: 1, batchSize: 64, seed: 3, featureNetTrainLimit: 1000, featureNetEpochs: 1, onLog: (l) => logs.push(l) });
    assert.equal(r.evalJson, join(dir, 'eval.json'));
    assert.equal(r.trainCount, n);
    assert.equal(r.manifestUpdated, dir);
    const written = JSON.parse(readFileSync(r.evalJson, 'utf8'));
    assert.equal(written.testAccuracy, r.testAccuracy);
    assert.equal(written.data, 'mnist');
    assert.equal(written.evalJson, undefined, 'eval.json keeps its original shape');
    assert.equal(written.protocol, 'default');
    for (const k of ['fid', 'precision', 'recall']) assert.equal(typeof written[k], 'number', k);
    assert.equal(written.fidelityCount, n);
    assert.equal(written.classCounts.reduce((a: number, b: number) => a + b, 0), n);
    assert.ok(existsSync(join(dir, 'cache', 'feature-net')), 'feature net cached outside the run folder');
    // fidelity uses a net trained on private data: eval.json is released outside the guarantee
    const m = readManifest(dir)!;
    assert.deepEqual(m.artifacts.map((a) => [a.path, a.status]), [['synthetic.npz', 'covered'], ['eval.json', 'outside-guarantee']]);
    assert.match(m.artifacts[1]!.why!, /private training split/);
    assert.match(logs.join('\n'), /256 synthetic images/);
    // The report's utility table shows it.
    assert.match(await buildReport(dir), /this run \(eval\.json\)/);
    // Again: eval.json is listed once.
    await runEval({ synthetic: join(dir, 'synthetic.npz'), data: 'mnist', epochs: 1, limit: 64, seed: 3, fidelity: false });
    assert.equal(readManifest(dir)!.artifacts.filter((a) => a.path === 'eval.json').length, 1);
    // without fidelity the accuracy figures are post-processing of the synthetic set
    assert.equal(readManifest(dir)!.artifacts.find((a) => a.path === 'eval.json')!.status, 'covered');
    assert.ok(existsSync(join(dir, 'eval.json')));
  } finally {
    delete process.env.DPLENS_CACHE_DIR;
    rmSync(dir, { recursive: true, force: true });
  }
});
