/**
 * COPML's fast GF(2^61 − 1) kernels (src/federated/copml-gf61.ts) against the BigInt reference in
 * copml.ts: combination (encode/decode), the coded gradient, scalar ops, wire checks, edge values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { P61, codeParams, codedGradient, lagrangeBasisAt, lccEncode, mod, type FieldRandom } from '../src/federated/copml.js';
import { f61AddInto, f61Bytes, f61CodedGradient, f61Combine, f61FromBigints, f61FromBytes, f61FromInt, f61MulInto, f61Random, f61SubInto, f61ToBigints } from '../src/federated/copml-gf61.js';

const p = P61;
const EDGE = [0n, 1n, 2n, p - 1n, p - 2n, (1n << 60n), (1n << 42n) - 1n, (1n << 21n), p / 2n, p / 2n + 1n];
function rnd(n: number): bigint[] {
  const b = randomBytes(8 * n);
  return Array.from({ length: n }, (_, i) => b.readBigUInt64LE(8 * i) % p);
}

test('gf61: scalar mul/add/sub equal BigInt mod p, edge values included', () => {
  const xs = [...EDGE, ...rnd(200)];
  const ys = [...EDGE.slice().reverse(), ...rnd(200)];
  const a = f61FromBigints(xs);
  const b = f61FromBigints(ys);
  const out = new Uint32Array(2);
  for (let q = 0; q < xs.length; q++) {
    f61MulInto(a, q, b, q, out, 0);
    assert.equal(f61ToBigints(out)[0], (xs[q]! * ys[q]!) % p, `mul ${xs[q]} ${ys[q]}`);
    f61AddInto(a, q, b, q, out, 0);
    assert.equal(f61ToBigints(out)[0], (xs[q]! + ys[q]!) % p);
    f61SubInto(a, q, b, q, out, 0);
    assert.equal(f61ToBigints(out)[0], mod(xs[q]! - ys[q]!, p));
  }
  for (const n of [0, 1, -1, 255, -256, 2 ** 40 + 3, -(2 ** 40 + 3), 2 ** 52, -(2 ** 52)]) {
    f61FromInt(n, out, 0);
    assert.equal(f61ToBigints(out)[0], mod(BigInt(n), p), `int ${n}`);
  }
});

test('gf61: Lagrange encoding by f61Combine equals lccEncode; random elements are in range', () => {
  const c = codeParams(p, 7, 2, 1);
  const len = 300;
  const blocks = [[...EDGE, ...rnd(len - EDGE.length)], rnd(len)];
  const mask = rnd(len);
  const rand: FieldRandom = () => mask;
  const want = lccEncode(blocks, c, rand);
  const vecs = [...blocks, mask].map(f61FromBigints);
  c.alphas.forEach((a, i) => assert.deepEqual(f61ToBigints(f61Combine(lagrangeBasisAt(c.betas, a, p), vecs)), want[i]));
  const r = f61Random(5000);
  assert.ok(f61ToBigints(r).every((v) => v >= 0n && v < p));
  // about half of the top bits set: not stuck at zero
  const top = f61ToBigints(r).filter((v) => v >= 1n << 60n).length;
  assert.ok(top > 2200 && top < 2800, `${top}`);
});

test('gf61: the coded gradient equals the BigInt codedGradient (rows longer than one accumulation chunk)', () => {
  for (const [count, d] of [[7, 5], [600, 3], [3, 1100]] as const) {
    const rows = rnd(count * (d + 1));
    rows[0] = p - 1n;
    const w = rnd(d);
    const c = [rnd(1)[0]!, p - 1n];
    const yScale = 1n << 26n;
    const want = codedGradient(rows, count, d, w, c, yScale, p);
    const got = f61ToBigints(f61CodedGradient(f61FromBigints(rows), count, d, f61FromBigints(w), c, yScale));
    assert.deepEqual(got, want, `count ${count} d ${d}`);
  }
});

test('gf61: wire bytes round trip; out-of-range elements and wrong lengths are rejected', () => {
  const v = f61FromBigints([0n, p - 1n, 12345n]);
  assert.deepEqual(f61ToBigints(f61FromBytes(new Uint8Array(f61Bytes(v)), 3)), [0n, p - 1n, 12345n]);
  // unaligned view is copied
  const shifted = new Uint8Array(25);
  shifted.set(f61Bytes(v), 1);
  assert.deepEqual(f61ToBigints(f61FromBytes(shifted.subarray(1), 3)), [0n, p - 1n, 12345n]);
  const bad = new Uint32Array([0xffffffff, 0x1fffffff]);
  assert.throws(() => f61FromBytes(new Uint8Array(bad.buffer)), /out of range/);
  assert.throws(() => f61FromBytes(new Uint8Array(new Uint32Array([0, 0x20000000]).buffer)), /out of range/);
  assert.throws(() => f61FromBytes(new Uint8Array(12)), /field vector/);
  assert.throws(() => f61FromBytes(new Uint8Array(16), 3), /expected 3/);
});
