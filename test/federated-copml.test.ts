/**
 * COPML (src/federated/copml*.ts): Lagrange coding round trip, T-privacy of the shares (exact
 * enumeration over a small field and the MDS condition over the real field), the coded gradient
 * equal to the fixed-point plaintext gradient, and a tiny end-to-end run over real sockets on Adult
 * whose accuracy is within a point of plaintext logistic regression.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  P61,
  codeParams,
  codedGradient,
  dequantize,
  fieldCoefficients,
  gradientBits,
  interpolateAt,
  isTPrivate,
  lccDecodeSum,
  lccEncode,
  maxBlocks,
  mod,
  needed,
  polyEval,
  quantize,
  sigmoidFit,
  toBlocks,
  type FieldRandom,
} from '../src/federated/copml.js';
import { bufferToField, fieldToBuffer } from '../src/federated/copml-simulate.js';
import { runCopml } from '../src/runs/fed-copml.js';

const ADULT = join(import.meta.dirname, '..', '..', 'shared', 'data', 'adult', 'adult.train.csv');

test('copml: Lagrange encoding then decoding from any (2r+1)(K+T−1)+1 results recovers Σ_k f(X_k)', () => {
  const p = P61;
  for (const [N, T, r] of [[7, 1, 1], [10, 2, 1], [8, 1, 3]] as const) {
    const K = maxBlocks(N, T, r);
    assert.ok(K >= 1 && needed(K, T, r) <= N);
    const c = codeParams(p, N, K, T);
    const blocks = Array.from({ length: K }, (_, k) => [BigInt(3 + k), BigInt(7 * k + 1), p - 5n]);
    const shares = lccEncode(blocks, c);
    // Round trip of the encoding itself: interpolating u from K+T shares gives u(β_k) = X_k.
    const ids = Array.from({ length: K + T }, (_, i) => N - i);
    const back = interpolateAt(ids.map((i) => c.alphas[i - 1]!), ids.map((i) => shares[i - 1]!), c.betas.slice(0, K), p);
    assert.deepEqual(back, blocks);
    // A polynomial f of degree 2r+1 applied share-wise (elementwise v^(2r+1)) decodes to Σ_k f(X_k).
    const f = (v: bigint[]): bigint[] => v.map((x) => mod(x ** BigInt(2 * r + 1), p));
    const need = needed(K, T, r);
    const some = [...Array(N).keys()].map((i) => i + 1).sort(() => 0.5 - Math.random()).slice(0, need);
    const got = lccDecodeSum(c, some, some.map((i) => f(shares[i - 1]!)));
    const want = blocks.map(f).reduce((a, b) => a.map((x, q) => mod(x + b[q]!, p)));
    assert.deepEqual(got, want);
  }
});

test('copml: T colluding shares are identically distributed for any two datasets (exact enumeration, p = 13)', () => {
  // Small field so the law of the shares can be enumerated over every mask value.
  const p = 13n;
  for (const [N, K, T] of [[4, 1, 1], [5, 2, 1], [5, 1, 2]] as const) {
    const c = codeParams(p, N, K, T);
    const subsets = T === 1 ? [...Array(N).keys()].map((i) => [i + 1]) : [[1, 2], [2, 4], [3, 5]];
    const law = (data: bigint[]): Map<string, number>[] =>
      subsets.map((S) => {
        const counts = new Map<string, number>();
        // Every mask tuple (Z_1..Z_T) ∈ GF(13)^T, each once: the exact distribution.
        for (let z = 0; z < 13 ** T; z++) {
          const masks = Array.from({ length: T }, (_, t) => BigInt(Math.floor(z / 13 ** t) % 13));
          let t = 0;
          const rand: FieldRandom = (n) => Array.from({ length: n }, () => masks[t++]!);
          const shares = lccEncode(data.map((x) => [x]), c, rand);
          const key = S.map((i) => shares[i - 1]![0]!.toString()).join(',');
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        return counts;
      });
    const a = law(Array.from({ length: K }, () => 0n));
    const b = law(Array.from({ length: K }, (_, k) => BigInt(5 + 3 * k)));
    assert.deepEqual(a, b, `N=${N} K=${K} T=${T}`);
    // Uniform: every T-tuple of share values appears exactly once.
    for (const m of a) assert.equal(m.size, 13 ** T);
  }
  // Over the real field the same holds because the mask matrix of every T-subset is invertible.
  const c = codeParams(P61, 10, 2, 2);
  for (let i = 1; i <= 10; i++) for (let j = i + 1; j <= 10; j++) assert.ok(isTPrivate(c, [i, j]));
});

test('copml: the coded gradient decodes to the fixed-point plaintext gradient (degree 1 and 3)', () => {
  const d = 4;
  const n = 9;
  const x = Float32Array.from({ length: n * d }, (_, i) => (i % d === d - 1 ? 1 : Math.sin(i) * 1.5));
  const y = Int32Array.from({ length: n }, (_, i) => i % 2);
  const w = [0.3, -0.2, 0.5, 0.1];
  for (const r of [1, 3]) {
    const p = r === 1 ? P61 : (1n << 127n) - 1n;
    const fp = { lx: 8, lw: 10, lc: 8 };
    const coef = sigmoidFit(r, 5);
    const N = needed(2, 1, r);
    const c = codeParams(p, N, 2, 1);
    const { blocks, rowsPerBlock } = toBlocks(x, y, n, d, 2, fp.lx, p);
    const shares = lccEncode(blocks, c);
    const wq = w.map((v) => quantize(v, fp.lw, p));
    const wShares = lccEncode([wq, wq], c);
    const { c: cf, yScale } = fieldCoefficients(coef, fp, p);
    const results = shares.map((s, i) => codedGradient(s, rowsPerBlock, d, wShares[i]!, cf, yScale, p));
    const ids = [...Array(N).keys()].map((i) => i + 1);
    const grad = lccDecodeSum(c, ids, results).map((v) => dequantize(v, gradientBits(fp, r), p));
    const plain = new Array<number>(d).fill(0);
    for (let i = 0; i < n; i++) {
      let z = 0;
      for (let j = 0; j < d; j++) z += x[i * d + j]! * w[j]!;
      const e = polyEval(coef, z) - y[i]!;
      for (let j = 0; j < d; j++) plain[j]! += x[i * d + j]! * e;
    }
    for (let j = 0; j < d; j++) assert.ok(Math.abs(grad[j]! - plain[j]!) < 0.05 * n, `r=${r} j=${j}: ${grad[j]} vs ${plain[j]}`);
  }
});

test('copml: field vectors survive the wire encoding; out-of-range elements are rejected', () => {
  const v = [0n, 1n, P61 - 1n, 123456789012345n];
  assert.deepEqual(bufferToField(fieldToBuffer(v, P61), P61, 4), v);
  const p127 = (1n << 127n) - 1n;
  const u = [p127 - 1n, 1n << 100n];
  assert.deepEqual(bufferToField(fieldToBuffer(u, p127), p127, 2), u);
  assert.throws(() => bufferToField(fieldToBuffer([P61], P61), P61), /out of range/);
  assert.throws(() => bufferToField(new Uint8Array(5), P61), /field vector/);
});

test('copml: end to end over real sockets on Adult (4 parties, 1,200 rows; then 5 parties with one dropout) within a point of plaintext', { skip: !existsSync(ADULT) && 'Adult not found' }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'copml-'));
  const r = await runCopml({ data: 'adult', out, clients: 4, colluding: 1, rounds: 10, degree: 1, lr: 2, fitRange: 5, lx: 8, lw: 10, lc: 8, maxTrain: 1200 });
  assert.equal(r.epsilon, null);
  assert.equal(r.delta, null);
  assert.equal(r.rounds, 10);
  assert.ok(r.bytesTotal > 0);
  assert.ok(Math.abs(r.testAccuracy - r.plaintextApproxTestAccuracy!) <= 0.01, `${r.testAccuracy} vs approx ${r.plaintextApproxTestAccuracy}`);
  assert.ok(Math.abs(r.testAccuracy - r.plaintextTestAccuracy!) <= 0.01, `${r.testAccuracy} vs exact ${r.plaintextTestAccuracy}`);
  const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { kind: string; method: string; privacy?: unknown; result: { epsilon: unknown } };
  assert.equal(run.kind, 'fed');
  assert.equal(run.method, 'copml');
  assert.equal(run.privacy, undefined, 'no DP claim: no privacy section, no ledger');
  assert.equal(run.result.epsilon, null);
  assert.ok(!existsSync(join(out, 'ledger.jsonl')));
  // A dropout beyond the decoding threshold is tolerated: 5 parties, K = 1, T = 1 need 4 results.
  const out2 = mkdtempSync(join(tmpdir(), 'copml-'));
  const r2 = await runCopml({ data: 'adult', out: out2, clients: 5, colluding: 1, rounds: 3, degree: 1, lr: 2, fitRange: 5, lx: 8, lw: 10, lc: 8, maxTrain: 300, dropouts: 1 });
  assert.equal(r2.rounds, 3);
});

test('copml: --blocks trades speed for dropout tolerance (7 parties, K = 1 needs 4 results: 3 dropouts tolerated); out-of-range K refused', { skip: !existsSync(ADULT) && 'Adult not found' }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'copml-'));
  const r = await runCopml({ data: 'adult', out, clients: 7, colluding: 1, blocks: 1, rounds: 2, degree: 1, lr: 2, fitRange: 5, lx: 8, lw: 10, lc: 8, maxTrain: 300, dropouts: 3 });
  assert.equal(r.blocks, 1);
  assert.equal(r.resultsNeeded, 4);
  assert.deepEqual(r.respondersPerIteration, [4, 4]);
  await assert.rejects(runCopml({ data: 'adult', out: mkdtempSync(join(tmpdir(), 'copml-')), clients: 7, colluding: 1, blocks: 3, rounds: 1, degree: 1, lr: 2, fitRange: 5, lx: 8, lw: 10, lc: 8, maxTrain: 100 }), /--blocks must be in \[1, 2\]/);
});
