/**
 * DP-FedAvg with distributed discrete Gaussian noise: the sensitivity of one client's encoded
 * update (property test: replacing one client's update moves the rounded sum by <= Δ₂), the
 * distribution of the summed noise, the accounting formula (Kairouz et al. 2021 Prop. 14), and a
 * tiny end-to-end run on real MNIST over sockets: one ledger entry per round, recorded by the
 * server before unmasking, equal to the accountant's total; dropouts never double-count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { clipAndRound, ddgNoiseMultiplier, ddgSensitivity, ddgTau, encodeClientUpdate, sigmaForMultiplier, type DdgParams } from '../src/federated/dpfedavg.js';
import { runDpFedAvg } from '../src/runs/fed.js';

test('sensitivity: replacing one client moves the clipped, rounded sum by at most Δ₂ = 2(c/γ + √d)', () => {
  const rng = seededRandom(1);
  for (let trial = 0; trial < 200; trial++) {
    const dim = 1 + Math.floor(rng.nextDouble() * 50);
    const p: DdgParams = { clip: 0.1 + rng.nextDouble() * 5, scaleBits: 1 + Math.floor(rng.nextDouble() * 10), sigma: 1, dim };
    const scale = 10 ** (4 * rng.nextDouble() - 2);
    const a = Float64Array.from({ length: dim }, () => (rng.nextDouble() - 0.5) * scale);
    const b = Float64Array.from({ length: dim }, () => (rng.nextDouble() - 0.5) * scale);
    const qa = clipAndRound(a, p, rng);
    const qb = clipAndRound(b, p, rng);
    let d2 = 0;
    for (let i = 0; i < dim; i++) d2 += (qa[i]! - qb[i]!) ** 2;
    assert.ok(Math.sqrt(d2) <= ddgSensitivity(p) + 1e-9, `‖qa − qb‖ = ${Math.sqrt(d2)} > Δ₂ = ${ddgSensitivity(p)}`);
  }
});

test('the summed client noise is a centred sum of discrete Gaussians with variance n σ²', () => {
  const rng = seededRandom(2);
  const n = 5;
  const dim = 4000;
  const p: DdgParams = { clip: 1, scaleBits: 8, sigma: 3, dim };
  const sum = new Int32Array(dim);
  for (let c = 0; c < n; c++) {
    const y = new Int32Array(encodeClientUpdate(new Float64Array(dim), p, rng).buffer);
    for (let i = 0; i < dim; i++) sum[i] += y[i]!;
  }
  let m = 0;
  let v = 0;
  let k4 = 0;
  for (const x of sum) m += x / dim;
  for (const x of sum) {
    v += (x - m) ** 2 / dim;
    k4 += (x - m) ** 4 / dim;
  }
  // Var of N_Z(0, 9) is 9 up to 1e-70 (it is within exp(-2π²σ²) of σ²); the sum's is 45.
  const se = Math.sqrt((2 * 45 * 45) / dim);
  assert.ok(Math.abs(m) < 4 * Math.sqrt(45 / dim), `mean ${m}`);
  assert.ok(Math.abs(v - 45) < 4 * se, `variance ${v}, expected 45 ± ${4 * se}`);
  assert.ok(Math.abs(k4 / (v * v) - 3) < 0.3, `kurtosis ${k4 / (v * v)}`);
  for (const x of sum) assert.ok(Number.isInteger(x));
});

test('accounting: the DDG noise multiplier matches Prop. 14 and calibration inverts it', () => {
  const p: DdgParams = { clip: 1, scaleBits: 16, sigma: 50_000, dim: 7850 };
  const n = 67;
  const z = ddgNoiseMultiplier(p, n);
  const byHand = 1 / (ddgSensitivity(p) / (Math.sqrt(n) * p.sigma) + ddgTau(p.sigma, n) * Math.sqrt(p.dim));
  assert.equal(z, byHand);
  assert.ok(ddgTau(p.sigma, n) === 0, 'τ underflows for large σ');
  assert.ok(ddgTau(0.5, 10) > 0.01, 'τ matters for small σ');
  const s = sigmaForMultiplier(1.3, p, n);
  assert.ok(Math.abs(ddgNoiseMultiplier({ ...p, sigma: s }, n) - 1.3) < 1e-9);
  assert.throws(() => ddgNoiseMultiplier({ ...p, sigma: 0.4 }, n), /sigma must be >= 1\/2/);
});

test('end to end on MNIST over sockets: one ledger entry per round, before unmasking, equal to the accountant', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'dplens-fed-')), 'run');
  const r = await runDpFedAvg({ data: 'mnist', out, clients: 4, examplesPerClient: 40, rounds: 2, epsilon: 20, delta: 1e-5, clip: 1, localEpochs: 1, batch: 20, lr: 0.5, serverLr: 1, dropout: 0, seed: 3, phaseTimeoutMs: 30_000 });
  assert.equal(r.rounds, 2);
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  assert.equal(ledger.entries.length, 2);
  assert.equal(ledger.relation, 'replace-one');
  const acc = new RdpAccountant(undefined, { relation: 'replace-one' });
  for (const e of ledger.entries) acc.compose(e.event);
  assert.equal(ledger.spent(1e-5), acc.getEpsilon(1e-5));
  assert.ok(r.epsilon <= 20 && Math.abs(r.epsilon - acc.getEpsilon(1e-5)) < 1e-12);
  // The event is the calibrated per-round Gaussian-equivalent (2 rounds of it spend ≈ ε).
  const z = (ledger.entries[0]!.event as { noiseMultiplier: number }).noiseMultiplier;
  assert.ok(z >= r.noiseMultiplier - 1e-9);
  const two = new RdpAccountant(undefined, { relation: 'replace-one' });
  two.compose(DpEvents.selfComposed(DpEvents.gaussian(r.noiseMultiplier), 2));
  assert.ok(two.getEpsilon(1e-5) <= 20);
  const manifest = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(manifest.kind, 'fed');
  assert.equal(manifest.privacy.relation, 'replace-one');
  assert.ok(r.bytesTotal > 0 && r.testAccuracy >= 0);
});

test('clients crashing mid-round: aborted rounds are never charged twice, completed rounds once', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'dplens-fed-')), 'run');
  const r = await runDpFedAvg({ data: 'mnist', out, clients: 6, examplesPerClient: 20, rounds: 3, epsilon: 30, delta: 1e-5, clip: 1, localEpochs: 1, batch: 20, lr: 0.5, serverLr: 1, dropout: 0.3, seed: 5, phaseTimeoutMs: 30_000 });
  const ledger = PrivacyLedger.read(join(out, 'ledger.jsonl'));
  const rounds = ledger.entries.map((e) => e.meta?.round);
  assert.equal(new Set(rounds).size, rounds.length, 'no round recorded twice');
  assert.equal(ledger.entries.length, r.rounds, 'every completed round is recorded exactly once (dropouts before unmasking abort unrecorded)');
  for (const e of ledger.entries) assert.ok((e.meta!.survivors as number) >= 4);
});
