/**
 * Compressed uploads in DP-FedAvg (issue 17 item 6): the count sketch (and the shared-support
 * schemes) sum correctly under real secure aggregation with a dropout; error feedback carries the
 * residual across rounds (telescoping identity); clipping after compression keeps the per-client
 * sensitivity 2(c/γ + √m) whatever the residual; the bytes a client sends per round drop by
 * exactly 4(d − m) (the masked vector) on a tiny MNIST run over sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../src/privacy/index.js';
import { COMPRESS_SCHEMES, ErrorFeedback, compress, compressedLength, decompress, planFromInfo, planInfo, planRound, type CompressScheme } from '../src/federated/compress.js';
import { FedServer } from '../src/federated/server.js';
import { runClient } from '../src/federated/client.js';
import { clipAndRound, ddgSensitivity, type DdgParams } from '../src/federated/dpfedavg.js';
import { runDpFedAvg } from '../src/runs/fed.js';
import { dplensInProcess } from './cli-helper.js';

const randVec = (rng: ReturnType<typeof seededRandom>, d: number, scale = 1) => Float64Array.from({ length: d }, () => (rng.nextDouble() - 0.5) * scale);

test('linear schemes: C(a + b) = C(a) + C(b) and D(C(a) + C(b)) = D(C(a)) + D(C(b)) (sketch, randk, topk-shared, none)', () => {
  const rng = seededRandom(11);
  for (const scheme of ['sketch', 'randk', 'topk-shared', 'none'] as const) {
    const d = 500;
    const plan = planRound({ scheme, ratio: 7 }, d, 1, 1234, randVec(rng, d));
    const a = randVec(rng, d);
    const b = randVec(rng, d);
    const ab = compress(plan, Float64Array.from(a, (x, i) => x + b[i]!));
    const ca = compress(plan, a);
    const cb = compress(plan, b);
    assert.equal(ab.length, compressedLength({ scheme, ratio: 7 }, d));
    for (let i = 0; i < ab.length; i++) assert.ok(Math.abs(ab[i]! - ca[i]! - cb[i]!) < 1e-12, `${scheme}[${i}]`);
    // decoding is linear too: the server's decoding of the sum = the sum of the clients' own decodings (error feedback stays exact)
    const dab = decompress(plan, ab);
    const da = decompress(plan, ca);
    const db = decompress(plan, cb);
    for (let j = 0; j < d; j++) assert.ok(Math.abs(dab[j]! - da[j]! - db[j]!) < 1e-12, `${scheme}: D linear at ${j}`);
  }
});

test('sketch linearity under secure aggregation: the unmasked sum of the clients\' sketches is the sketch of the survivors\' sum', async () => {
  const d = 3000;
  const n = 5;
  const rng = seededRandom(5);
  const spec = { scheme: 'sketch' as const, ratio: 10 };
  const seed = 987654;
  const plan = planRound(spec, d, 1, seed);
  // integer-valued inputs: the sketch is exact in Z_2^32 (no rounding), so equality is exact
  const inputs = Array.from({ length: n }, () => Float64Array.from({ length: d }, () => Math.floor(rng.nextDouble() * 2001) - 1000));
  const server = await FedServer.listen({ maxPayload: 1 << 22, phaseTimeoutMs: 20_000 });
  const runs = inputs.map(() =>
    runClient({
      url: server.url,
      maxPayload: 1 << 22,
      idleTimeoutMs: 60_000,
      // client 3 crashes after sharing its keys: its masks must still cancel
      dieAt: (id) => (id === 3 ? 'masked' : undefined),
      computeInput: (r, id) => {
        // each client rebuilds the plan from the public round info alone
        const p = planFromInfo(r.info.compress, d, 1);
        const y = compress(p, inputs[id - 1]!);
        return Uint32Array.from(y, (v) => v >>> 0);
      },
    }),
  );
  try {
    await server.waitForClients(n, 20_000);
    const res = await server.aggregate('sk-1', { dim: plan.m, info: { compress: planInfo(plan, spec, seed) } });
    assert.deepEqual(res.u3, [1, 2, 4, 5]);
    const survivorsSum = new Float64Array(d);
    for (const id of res.u3) inputs[id - 1]!.forEach((v, j) => (survivorsSum[j]! += v));
    const expected = compress(plan, survivorsSum);
    const got = new Int32Array(res.sum.buffer, res.sum.byteOffset, res.sum.length);
    assert.deepEqual(Array.from(got), Array.from(expected));
  } finally {
    await server.close();
    await Promise.all(runs);
  }
});

test('error feedback: the residual is carried, and Σ_t D(C(v_t)) + e_T = Σ_t u_t for every scheme', () => {
  const rng = seededRandom(21);
  const d = 400;
  for (const scheme of COMPRESS_SCHEMES) {
    const ef = new ErrorFeedback();
    const total = new Float64Array(d);
    const sent = new Float64Array(d);
    let prev: Float64Array | undefined;
    for (let t = 1; t <= 6; t++) {
      const u = randVec(rng, d, 0.1);
      u.forEach((x, j) => (total[j]! += x));
      const plan = planRound({ scheme, ratio: 8 }, d, 1, 100 + t, prev);
      const before = ef.residual ? Float64Array.from(ef.residual) : new Float64Array(d);
      const v = ef.corrected(u);
      // the upload is built from the update PLUS last round's residual
      for (let j = 0; j < d; j++) assert.ok(Math.abs(v[j]! - u[j]! - before[j]!) < 1e-15);
      const y = compress(plan, v);
      ef.carry(plan, v, y);
      const dy = decompress(plan, y);
      dy.forEach((x, j) => (sent[j]! += x));
      prev = dy;
    }
    for (let j = 0; j < d; j++) assert.ok(Math.abs(sent[j]! + ef.residual![j]! - total[j]!) < 1e-9, `${scheme}: telescoping at ${j}`);
    if (scheme === 'none') assert.ok(ef.norm < 1e-12);
    else assert.ok(ef.norm > 0, `${scheme}: something is left for later rounds`);
  }
});

test('sensitivity: clip after compression bounds one client\'s rounded upload by 2(c/γ + √m), whatever its residual', () => {
  const rng = seededRandom(31);
  const d = 300;
  for (const scheme of ['sketch', 'randk', 'sign'] as CompressScheme[]) {
    const plan = planRound({ scheme, ratio: 5 }, d, 0.7, 77);
    const p: DdgParams = { clip: 0.7, scaleBits: 6, sigma: 1, dim: plan.m };
    for (let trial = 0; trial < 50; trial++) {
      // huge, adversarial inputs (a residual can be much larger than one update)
      const a = compress(plan, randVec(rng, d, 10 ** (4 * rng.nextDouble())));
      const b = compress(plan, randVec(rng, d, 10 ** (4 * rng.nextDouble())));
      const qa = clipAndRound(a, p, rng);
      const qb = clipAndRound(b, p, rng);
      let d2 = 0;
      for (let i = 0; i < plan.m; i++) d2 += (qa[i]! - qb[i]!) ** 2;
      assert.ok(Math.sqrt(d2) <= ddgSensitivity(p) + 1e-9, `${scheme}: ${Math.sqrt(d2)} > ${ddgSensitivity(p)}`);
    }
  }
});

test('topk-shared: half of S is the top of the previous global update, the other half explores (S never freezes)', () => {
  const d = 1000;
  const spec = { scheme: 'topk-shared' as const, ratio: 10 };
  const rng = seededRandom(41);
  let prev: Float64Array | undefined;
  let last: Int32Array | undefined;
  const seen = new Set<number>();
  for (let t = 1; t <= 20; t++) {
    const plan = planRound(spec, d, 1, 500 + t, prev);
    assert.equal(plan.support!.length, 100);
    if (prev) {
      const top = new Set(Array.from(plan.support!));
      const best = Array.from({ length: d }, (_, j) => j).sort((a, b) => Math.abs(prev![b]!) - Math.abs(prev![a]!)).slice(0, 50);
      for (const j of best) assert.ok(top.has(j), 'the top half of the previous update is in S');
      assert.notDeepEqual(Array.from(plan.support!), Array.from(last!), 'S changes from round to round');
    }
    plan.support!.forEach((j) => seen.add(j));
    // the next previous update lives on S only (as a decompressed average does)
    prev = decompress(plan, Float64Array.from({ length: plan.m }, () => rng.nextDouble() - 0.5));
    last = plan.support;
  }
  assert.ok(seen.size > 500, `20 rounds visit ${seen.size} of ${d} coordinates`);
});

test('a client refuses a plan it cannot check (bad support) or another scheme than it was started with', () => {
  const plan = planRound({ scheme: 'topk-shared', ratio: 4 }, 100, 1, 3, Float64Array.from({ length: 100 }, (_, i) => i));
  const info = planInfo(plan, { scheme: 'topk-shared', ratio: 4 }, 3);
  assert.deepEqual(Array.from(planFromInfo(info, 100, 1).support!), Array.from(plan.support!));
  assert.throws(() => planFromInfo({ ...info, support: [5, 3, ...(info.support as number[]).slice(2)] }, 100, 1), /strictly increasing/);
  assert.throws(() => planFromInfo(info, 100, 1, 'sketch'), /started with --compress sketch/);
});

test('bytes per round on MNIST over sockets: each client sends 4(d − m) bytes less, the rest is protocol overhead', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-fedcomp-'));
  const base = { data: 'mnist', clients: 3, examplesPerClient: 20, rounds: 2, epsilon: 20, delta: 1e-5, clip: 1, localEpochs: 1, batch: 20, lr: 0.5, serverLr: 1, dropout: 0, seed: 4, phaseTimeoutMs: 30_000 };
  const none = await runDpFedAvg({ ...base, out: join(dir, 'none') });
  const d = none.compression.modelDim;
  for (const scheme of ['sketch', 'topk-shared'] as const) {
    const r = await runDpFedAvg({ ...base, out: join(dir, scheme), compress: { scheme, ratio: 10 } });
    const m = r.compression.uploadDim;
    assert.ok(m <= Math.ceil(d / 10) + 3 && m >= d / 10);
    assert.equal(r.rounds, 2);
    const saved = none.bytesPerClientRound - r.bytesPerClientRound;
    // the masked vector is 4 bytes per value; keys and Shamir shares do not depend on d
    assert.ok(Math.abs(saved - 4 * (d - m)) <= 64, `${scheme}: saved ${saved} bytes per client round, expected ${4 * (d - m)}`);
    assert.ok(r.bytesPerRound < none.bytesPerRound);
    assert.ok(r.testAccuracy >= 0 && r.testAccuracy <= 1);
    assert.equal(r.chargedNotCommitted, 0);
  }
});

test('CLI: --compress-ratio does not apply to sign; unknown schemes are refused', async () => {
  const a = await dplensInProcess('fed', 'simulate', '--protocol', 'dp-fedavg', '--data', 'mnist', '--clients', '3', '--epsilon', '1', '--out', join(tmpdir(), 'never'), '--compress', 'sign', '--compress-ratio', '4');
  assert.notEqual(a.code, 0);
  assert.match(a.stderr, /--compress-ratio does not apply to --compress sign/);
  const b = await dplensInProcess('fed', 'simulate', '--protocol', 'dp-fedavg', '--data', 'mnist', '--clients', '3', '--epsilon', '1', '--out', join(tmpdir(), 'never'), '--compress', 'topk');
  assert.notEqual(b.code, 0);
  assert.match(b.stderr, /--compress/);
});
