/**
 * psg (private set generation): the DP-SGD release's sensitivity (one record added/removed moves
 * the clipped gradient sum by ≤ C), the synthetic-side ConvNet equals the nn modules' ConvNet
 * (gradients agree), the second-order matching gradient against finite differences, and a tiny
 * end-to-end run on real MNIST through the synth runner and the CLI contract.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { loadMnist, readNpz, type ImageDataset } from '../src/data/index.js';
import { ensureEngine, findGenerator } from '../src/generate/index.js';
import { buildConvNet, clippedGradientSum, convNetLogits, convNetParamCount, matchDistance, psgNoiseMultiplier, psgRelease, releaseNoisyGradient, synthGradients } from '../src/generate/psg.js';
import { replayPsgRelease } from '../src/audit/psg-audit.js';
import { summarizeAudit } from '../src/audit/index.js';
import { auditRun } from '../src/runs/audit.js';
import { setInitSeed } from '../src/nn/index.js';
import { runSynthesis } from '../src/runs/synth.js';
import { spawnedDplens } from './cli-helper.js';

let mnist: ImageDataset;
before(async () => {
  await ensureEngine();
  mnist = loadMnist();
});

const dims = { height: 28, width: 28, channels: 1 };
const NORM: [number, number] = [0.1307, 0.3081];
const l2 = (a: Float32Array[], b: Float32Array[]): number => Math.sqrt(a.reduce((s, x, j) => s + x.reduce((t, v, i) => t + (v - b[j]![i]!) ** 2, 0), 0));

test('psg release: adding or removing one record moves the clipped gradient sum by at most C (property, real MNIST)', () => {
  setInitSeed(7);
  const net = buildConvNet(1, 28, 28, 10, 4);
  const rng = seededRandom(3);
  for (const clip of [0.1, 1]) {
    for (let trial = 0; trial < 4; trial++) {
      const idx = Int32Array.from({ length: 12 }, () => Math.floor(rng.nextDouble() * mnist.train.count));
      const full = clippedGradientSum(net, mnist.train.images, mnist.train.labels, idx, dims, NORM, clip);
      const drop = Math.floor(rng.nextDouble() * idx.length);
      const less = clippedGradientSum(net, mnist.train.images, mnist.train.labels, idx.filter((_, k) => k !== drop), dims, NORM, clip);
      const d = l2(full, less);
      assert.ok(d <= clip * (1 + 1e-4), `‖Δ‖ = ${d} > C = ${clip}`);
      assert.ok(d > 0, 'the removed record changed nothing');
    }
  }
  // A large C leaves gradients unclipped: then the change is the record's own gradient norm (> 0.1 here).
  const idx = Int32Array.from([0, 1, 2]);
  const a = clippedGradientSum(net, mnist.train.images, mnist.train.labels, idx, dims, NORM, 1e6);
  const b = clippedGradientSum(net, mnist.train.images, mnist.train.labels, idx.subarray(0, 2), dims, NORM, 1e6);
  assert.ok(l2(a, b) > 0.1, `unclipped gradient norm ${l2(a, b)}`);
  net.parameters().forEach((p) => p.value.dispose());
});

test('psg release: noise std σ per coordinate and division by the public expected batch', () => {
  const sums = [new Float32Array(20000)];
  const out = releaseNoisyGradient(sums, 2, 4, seededRandom(1))[0]!;
  let s2 = 0;
  for (const v of out) s2 += v * v;
  const std = Math.sqrt(s2 / out.length);
  assert.ok(Math.abs(std - 0.5) < 0.01, `std ${std}`);
});

test('psg ConvNet: the twice-differentiable tfjs function equals the nn modules (unclipped gradient sums agree)', () => {
  setInitSeed(11);
  const net = buildConvNet(1, 28, 28, 10, 4);
  const params = net.parameters();
  const idx = Int32Array.from([5, 17, 99, 1234]);
  const nnSum = clippedGradientSum(net, mnist.train.images, mnist.train.labels, idx, dims, NORM, 1e9);
  const buf = new Float32Array(idx.length * 784);
  const oh = new Float32Array(idx.length * 10);
  idx.forEach((i, k) => {
    for (let t = 0; t < 784; t++) buf[k * 784 + t] = (mnist.train.images[i * 784 + t]! / 255 - NORM[0]) / NORM[1];
    oh[k * 10 + mnist.train.labels[i]!] = 1;
  });
  const g = tf.tidy(() => synthGradients(params.map((p) => p.value), tf.tensor4d(buf, [idx.length, 28, 28, 1]), tf.tensor2d(oh, [idx.length, 10])).map((t) => tf.mul(t, idx.length)));
  g.forEach((t, j) => {
    const a = t.dataSync();
    const b = nnSum[j]!;
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += b[i]! ** 2;
    }
    assert.ok(Math.sqrt(num) <= 1e-3 * Math.sqrt(den) + 1e-6, `${params[j]!.name}: relative error ${Math.sqrt(num / den)}`);
  });
  tf.dispose(g);
  params.forEach((p) => p.value.dispose());
});

test('psg matching gradient (second order through the ConvNet) agrees with finite differences', () => {
  setInitSeed(5);
  const net = buildConvNet(1, 8, 8, 3, 3);
  const pv = net.parameters().map((p) => p.value as tf.Tensor);
  const rng = seededRandom(9);
  const xs = new Float32Array(3 * 64);
  rng.normal(xs, 1);
  const oh = tf.tensor2d([1, 0, 0, 0, 1, 0, 0, 0, 1], [3, 3]);
  const target = tf.tidy(() => synthGradients(pv, tf.tensor4d(Float32Array.from(xs, (v) => -v), [3, 8, 8, 1]), oh).map((t) => tf.add(t, 0.01)));
  const f = (x: Float32Array): number => tf.tidy(() => matchDistance(synthGradients(pv, tf.tensor4d(x, [3, 8, 8, 1]), oh), target).dataSync()[0]!);
  const grad = tf.tidy(() => tf.grad((x: tf.Tensor) => matchDistance(synthGradients(pv, x as tf.Tensor4D, oh), target))(tf.tensor4d(xs, [3, 8, 8, 1])).dataSync());
  for (const i of [0, 9, 27, 70, 130, 191]) {
    const h = 3e-3;
    const p = Float32Array.from(xs);
    const m = Float32Array.from(xs);
    p[i]! += h;
    m[i]! -= h;
    const fd = (f(p) - f(m)) / (2 * h);
    assert.ok(Math.abs(fd - grad[i]!) <= 0.05 * Math.abs(fd) + 2e-3, `pixel ${i}: autodiff ${grad[i]} vs finite difference ${fd}`);
  }
  assert.equal(convNetLogits(pv, tf.zeros([1, 8, 8, 1])).shape.join(','), '1,3');
  tf.dispose([oh, ...target]);
  pv.forEach((p) => p.dispose());
});

test('psg end to end on real MNIST: one Poisson-subsampled Gaussian per step, add/remove, recorded before use, ε ≤ target', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-psg-'));
  try {
    const hyper = { imagesPerClass: 1, iterations: 2, outerLoop: 2, batchLoop: 1, innerLoop: 1, batchReal: 64, width: 4 };
    const r = await runSynthesis({ method: 'psg', data: 'mnist', epsilon: 1, delta: 1e-5, out: dir, samples: 200, seed: 4, hyper }, { dataOverride: mnist });
    const ledger = PrivacyLedger.read(join(dir, 'ledger.jsonl'));
    assert.equal(ledger.relation, 'add-remove');
    assert.equal(ledger.entries.length, 4);
    assert.equal(r.generatorSteps, 4);
    const q = 64 / mnist.train.count;
    const z = psgNoiseMultiplier(4, q, 1, 1e-5);
    for (const e of ledger.entries) assert.deepEqual(e.event, DpEvents.poissonSampled(q, DpEvents.gaussian(z)));
    const core = new RdpAccountant().compose(DpEvents.poissonSampled(q, DpEvents.gaussian(z)), 4).getEpsilon(1e-5);
    assert.ok(r.epsilon <= 1 && Math.abs(r.epsilon - core) < 1e-9, `ε ${r.epsilon} vs ${core}`);
    const npz = readNpz(r.syntheticPath);
    assert.deepEqual(npz.images!.shape, [200, 28, 28]);
    const counts = new Array(10).fill(0);
    for (const l of npz.labels!.data as Uint8Array) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(20));
    assert.ok(existsSync(join(dir, 'samples.png')));
    // The saved set reloads for sampling only (no data, no budget).
    const s = findGenerator('psg')!.loadSampler(join(dir, 'generator'));
    assert.equal(s.steps, 4);
    assert.equal((await s.sample(10, seededRandom(1))).count, 10);
    // dplens audit replays the run's release with gradient canaries: no private data, no ε, no violation.
    const a = (await auditRun(dir, { seed: 5, canaries: 200 })) as unknown as Record<string, unknown>;
    assert.equal(a.privateDataUsed, false);
    assert.equal(a.violation, false);
    assert.equal(a.steps, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dplens synth --method psg --json: the CLI contract (epsilon ≤ E, delta, seconds, syntheticPath, report)', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dplens-psg-cli-')), 'run');
  try {
    const r = spawnedDplens(300_000)('synth', '--method', 'psg', '--data', 'mnist', '--epsilon', '1', '--delta', '1e-5', '--images-per-class', '1', '--iterations', '1', '--outer-loop', '2', '--batch-loop', '1', '--batch-real', '32', '--net-width', '4', '--samples', '100', '--out', dir, '--seed', '3', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.ok((out.epsilon as number) <= 1 && (out.epsilon as number) > 0);
    assert.equal(out.delta, 1e-5);
    assert.equal(typeof out.seconds, 'number');
    for (const f of ['synthetic.npz', 'samples.png', 'ledger.jsonl', 'report.html']) assert.ok(existsSync(join(dir, f)), f);
    assert.equal(out.syntheticPath, join(dir, 'synthetic.npz'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('psg audit: the replayed release at the run\'s σ stays below its claim; σ = 0 (a release that adds no noise) is flagged well above it', () => {
  const hyper = { iterations: 100, outerLoop: 1, batchLoop: 2, batchReal: 1200, clip: 0.1 };
  const release = psgRelease(hyper, 60000, { epsilon: 1, delta: 1e-5 });
  const claimed = new RdpAccountant().compose(release.event, 200).getEpsilon(1e-5);
  assert.ok(claimed <= 1);
  assert.equal(convNetParamCount(1, 28, 28, 10, 16), buildParamCount());
  const run = (noiseCode?: typeof releaseNoisyGradient) => {
    const r = replayPsgRelease({ release, dim: 3000, steps: 200, m: 1000, rng: seededRandom(1), noise: seededRandom(2), ...(noiseCode ? { noiseCode } : {}) });
    return summarizeAudit(r.scores, r.included, { claimedEpsilon: claimed, delta: 1e-5, confidence: 0.95, attack: 'test', strategy: r.plan.strategy, seconds: 0 });
  };
  const honest = run();
  assert.ok(!honest.violation && honest.empiricalEpsilonLowerBound <= claimed, `honest bound ${honest.empiricalEpsilonLowerBound} vs claim ${claimed}`);
  const silent = run((sums, _sigma, b, rng) => releaseNoisyGradient(sums, 0, b, rng));
  assert.ok(silent.violation && silent.empiricalEpsilonLowerBound > 2 * claimed, `σ = 0 bound ${silent.empiricalEpsilonLowerBound} vs claim ${claimed}`);
});

function buildParamCount(): number {
  const net = buildConvNet(1, 28, 28, 10, 16);
  const n = net.parameters().reduce((s, p) => s + p.value.size, 0);
  net.parameters().forEach((p) => p.value.dispose());
  return n;
}

test('psg --generator-prior: the set is G(z) of a small generator; same releases, same ledger', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-psg-prior-'));
  try {
    const hyper = { imagesPerClass: 2, iterations: 1, outerLoop: 2, batchLoop: 1, innerLoop: 1, batchReal: 32, width: 4, generatorPrior: true, optimizer: 'sgd' as const, lrImg: 0.1 };
    const r = await runSynthesis({ method: 'psg', data: 'mnist', epsilon: 2, delta: 1e-5, out: dir, samples: 50, seed: 8, hyper }, { dataOverride: mnist });
    assert.equal(r.generatorSteps, 2);
    assert.equal(PrivacyLedger.read(join(dir, 'ledger.jsonl')).entries.length, 2);
    assert.ok(r.epsilon <= 2);
    assert.deepEqual(readNpz(r.syntheticPath).images!.shape, [50, 28, 28]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
