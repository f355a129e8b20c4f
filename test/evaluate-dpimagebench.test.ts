/**
 * The DPImageBench protocol (evaluate/synthetic-eval.ts `evaluateDpImageBench`): 55k/5k split
 * (1/12 validation) of the synthetic set, epoch selected on the synthetic validation split only,
 * testAccuracy = mean over the classifiers; and the `dplens eval --protocol` CLI contract.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadMnist, type ImageDataset } from '../src/data/index.js';
import { ensureEngine } from '../src/engine/index.js';
import { LENET5, STRIDED_CNN, evaluateDpImageBench, splitTrainVal, validationCount } from '../src/evaluate/index.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const take = (s: ImageDataset['train'], n: number, off = 0) => ({ images: s.images.subarray(off * 784, (off + n) * 784), labels: s.labels.subarray(off, off + n), count: n, height: 28, width: 28, channels: 1 });

test('train/validation split: 55k/5k for 60k, 1/12 otherwise, seeded, disjoint', () => {
  assert.equal(validationCount(60000), 5000);
  assert.equal(validationCount(600), 50);
  assert.equal(validationCount(2), 1);
  assert.throws(() => validationCount(1), /at least 2 synthetic images/);
  const a = splitTrainVal(1200, 5);
  assert.equal(a.val.length, 100);
  assert.equal(a.train.length, 1100);
  assert.equal(new Set([...a.train, ...a.val]).size, 1200);
  assert.deepEqual(splitTrainVal(1200, 5).val, a.val);
  assert.notDeepEqual(splitTrainVal(1200, 6).val, a.val);
});

test('each classifier selects its epoch on the synthetic validation split only; testAccuracy is the mean', () => {
  const synthetic = take(mnist.train, 720);
  const realTest = take(mnist.test, 400);
  const archs = [LENET5, STRIDED_CNN];
  const r = evaluateDpImageBench({ synthetic, realTest, seed: 4, epochs: 3, archs });
  assert.equal(r.protocol, 'dpimagebench');
  assert.equal(r.trainCount, 660);
  assert.equal(r.valCount, 60);
  assert.equal(r.classifiers.length, 2);
  for (const c of r.classifiers) {
    assert.equal(c.epochs, 3);
    const best = Math.max(...c.perEpoch.map((e) => e.valAccuracy));
    assert.equal(c.valAccuracy, best);
    assert.equal(c.selectedEpoch, c.perEpoch.find((e) => e.valAccuracy === best)!.epoch);
  }
  assert.ok(Math.abs(r.testAccuracy - (r.classifiers[0]!.testAccuracy + r.classifiers[1]!.testAccuracy) / 2) < 1e-12);
  assert.ok(r.testAccuracy > 0.5, `real images as "synthetic" learn: ${r.testAccuracy}`);
  // The real test set plays no part in the selection: scrambled test labels change the test
  // accuracy, not the selected epochs or the validation figures.
  const scrambled = { ...realTest, labels: Int32Array.from(realTest.labels, (l) => (l + 1) % 10) };
  const s = evaluateDpImageBench({ synthetic, realTest: scrambled, seed: 4, epochs: 3, archs });
  assert.deepEqual(
    s.classifiers.map((c) => [c.selectedEpoch, c.valAccuracy]),
    r.classifiers.map((c) => [c.selectedEpoch, c.valAccuracy]),
  );
  assert.ok(s.testAccuracy < 0.3);
});

test('dplens eval --protocol dpimagebench --json: the CLI contract keys; an unknown protocol is a one-line error', async () => {
  const { mkdtempSync, mkdirSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { writeNpz } = await import('../src/data/index.js');
  const { dplensInProcess } = await import('./cli-helper.js');
  const dir = mkdtempSync(join(tmpdir(), 'dplens-eval-bench-'));
  const saved = process.env.DPLENS_CACHE_DIR;
  process.env.DPLENS_CACHE_DIR = join(dir, 'cache');
  try {
    const part = (s: ImageDataset['train'], n: number, off: number) => ({
      images: { dtype: 'uint8' as const, shape: [n, 28, 28], data: s.images.subarray(off * 784, (off + n) * 784) },
      labels: { dtype: 'uint8' as const, shape: [n], data: Uint8Array.from(s.labels.subarray(off, off + n)) },
    });
    // a small real dataset (so the feature net trains in seconds) and a "synthetic" set from other real images
    const tr = part(mnist.train, 400, 0);
    const te = part(mnist.test, 120, 0);
    const data = join(dir, 'small.npz');
    writeNpz(data, { train_images: tr.images, train_labels: tr.labels, test_images: te.images, test_labels: te.labels });
    mkdirSync(join(dir, 'syn'));
    const synth = join(dir, 'syn', 'synthetic.npz');
    writeNpz(synth, part(mnist.train, 240, 1000));
    // --json results go to process.stdout: capture it
    const origWrite = process.stdout.write.bind(process.stdout);
    let stdout = '';
    process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
    let r: Awaited<ReturnType<typeof dplensInProcess>>;
    try {
      r = await dplensInProcess('eval', '--synthetic', synth, '--data', data, '--num-classes', '10', '--protocol', 'dpimagebench', '--epochs', '1', '--json');
    } finally {
      process.stdout.write = origWrite;
    }
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse((r.stdout + stdout).trim().split('\n').pop()!);
    for (const k of ['testAccuracy', 'fid', 'precision', 'recall', 'protocol', 'classCounts', 'classifiers']) assert.ok(k in out, k);
    assert.equal(out.protocol, 'dpimagebench');
    assert.equal(out.classifiers.length, 3);
    assert.equal(out.valCount, 20);
    assert.equal(out.classCounts.length, 10);
    const written = JSON.parse(readFileSync(join(dir, 'syn', 'eval.json'), 'utf8'));
    assert.equal(written.protocol, 'dpimagebench');
    assert.equal(written.fid, out.fid);
    const bad = await dplensInProcess('eval', '--synthetic', synth, '--data', data, '--protocol', 'dpimagebenchx', '--json');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr.trim(), /^dplens eval: --protocol must be one of default\|dpimagebench, got "dpimagebenchx"$/);
  } finally {
    if (saved === undefined) delete process.env.DPLENS_CACHE_DIR;
    else process.env.DPLENS_CACHE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
