// One seeded PRNG module (issue 13 item 6): the streams equal those of the copies it replaced
// (golden values recorded from the original shards.ts mulberry32, kernel-teachers.ts dithering
// and audit/refcnn.ts xorshift32 initialisation), so seeded runs give the same numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { fillMulberry32, lcgStep, mulberry32, xorshift32 } from '../src/util/prng.js';
import { mulberry32 as shardsMulberry32 } from '../src/generate/shards.js';
import { ditherUniforms } from '../src/generate/kernel-teachers.js';
import { initRefCnn } from '../src/audit/refcnn.js';

test('mulberry32 reproduces the former copies, and fillMulberry32 is the same stream without a closure', () => {
  const r = mulberry32(307);
  assert.deepEqual([r(), r(), r()], [0.002243409864604473, 0.8610423256177455, 0.46854984830133617]);
  const z = mulberry32(0);
  assert.deepEqual([z(), z()], [0.26642920868471265, 0.0003297457005828619]);
  assert.equal(shardsMulberry32, mulberry32, 'generate/shards re-exports the one implementation');
  const out = new Float64Array(50);
  fillMulberry32(0xdeadbeef, out);
  const s = mulberry32(0xdeadbeef);
  assert.deepEqual(Array.from(out), Array.from({ length: 50 }, () => s()));
  const d = new Float64Array(4);
  ditherUniforms(12345, 3, 7, d);
  assert.deepEqual(Array.from(d), [0.7534479030873626, 0.7261846475303173, 0.9473933014087379, 0.03565925033763051]);
});

test('xorshift32 reproduces the audit initialisation it replaced; state 0 is mapped to 1', () => {
  const w = initRefCnn(0);
  assert.deepEqual(Array.from(w[0]!.dataSync().slice(0, 3)), [-0.04585161805152893, 0.09392674267292023, -0.004174959380179644]);
  assert.deepEqual(Array.from(w[7]!.dataSync().slice(0, 2)), [-0.06123838201165199, -0.0682716965675354]);
  assert.deepEqual(Array.from(initRefCnn(42)[0]!.dataSync().slice(0, 3)), [-0.045284222811460495, -0.0535721555352211, -0.02356671914458275]);
  const a = xorshift32(0);
  const b = xorshift32(1);
  assert.equal(a(), b());
  const c = xorshift32(123);
  for (let i = 0; i < 1000; i++) {
    const v = c();
    assert.ok(v >= 0 && v < 1);
  }
});

test('lcgStep is the float LCG nn/ used inline for init and dropout seeds (not Math.imul)', () => {
  // values of the former inline `(s * 1103515245 + 12345) >>> 0` from nn/layers.ts
  const seeds: number[] = [];
  let s = 12345;
  for (let i = 0; i < 3; i++) seeds.push((s = lcgStep(s)));
  assert.deepEqual(seeds, [3554416254, 2802067456, 1358247936]);
  assert.equal(lcgStep(777), 2732865806);
  // the product rounds above 2^53; Math.imul would give 3191464396 here
  assert.equal(lcgStep(0xffffffff), 3191463936);
});
