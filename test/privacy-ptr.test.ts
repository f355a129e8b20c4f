/**
 * PTR accounting (src/privacy/ptr.ts). Reference values come from an independent mpmath (50-digit)
 * evaluation of the same bounds written from the formulas in ptr.ts's file comment (script in
 * /tmp/notes/ptr.md): the PTR RDP bound is this repo's derivation along Wang et al. 2022 (the
 * paper's printed formula was not available offline, so it is not checked against the paper's
 * numbers); the Poisson amplification is Zhu & Wang 2019 Theorem 6, checked in addition against
 * the exact subsampled-Gaussian RDP at α = 2, where the general bound is exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DpEvents, makeAccountant, ptrApproxDpEpsilon, ptrThreshold, rdpPoissonSubsampledGeneral, rdpPtr, rdpGaussian, rdpSubsampledGaussian, rdpSubsampledPtr, validateEvent, RdpAccountant } from '../src/privacy/index.js';

const T = ptrThreshold(1, 1e-7);
const K = Math.ceil(T + 10);
const p = { testEpsilon: 1, threshold: T, noiseMultiplier: 2, gsRatio: 2, kMax: K };
const close = (a: number, b: number, rel = 1e-9) => assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${a} vs ${b}`);

test('PTR RDP bound matches the independent 50-digit evaluation', () => {
  close(T, 15.424948470398374);
  assert.equal(K, 26);
  close(rdpPtr(p, 1.5), 0.60343304982418978);
  close(rdpPtr(p, 2), 0.76371563448400168);
  close(rdpPtr(p, 8), 1.8402720874045256);
  close(rdpPtr(p, 32), 15.480061430614248);
});

test('Zhu & Wang general Poisson bound: reference values, exact at α = 2 for the Gaussian, ≥ the exact curve above', () => {
  const g = (a: number) => rdpGaussian(1.1, a);
  close(rdpPoissonSubsampledGeneral(0.01, g, 2), 0.0001285100816051618);
  close(rdpPoissonSubsampledGeneral(0.01, g, 3), 0.00020820643600520954);
  close(rdpPoissonSubsampledGeneral(0.01, g, 10), 0.0012637618378561674);
  close(rdpPoissonSubsampledGeneral(0.01, g, 2), rdpSubsampledGaussian(0.01, 1.1, 2), 1e-6);
  for (const a of [3, 5, 10, 20]) assert.ok(rdpPoissonSubsampledGeneral(0.01, g, a) >= rdpSubsampledGaussian(0.01, 1.1, a) * (1 - 1e-9));
  close(rdpSubsampledPtr(0.004, p, 2), 1.8339608662152076e-5, 1e-7);
  close(rdpSubsampledPtr(0.004, p, 5), 4.8695202174328509e-5, 1e-7);
  close(rdpSubsampledPtr(0.004, p, 16), 1.109224125302412, 1e-7);
  // fractional orders use ⌈α⌉ (RDP is non-decreasing in α)
  assert.equal(rdpSubsampledPtr(0.004, p, 4.3), rdpSubsampledPtr(0.004, p, 5));
});

test('PTR RDP: never below the Gaussian it releases; grows with GS/β; σ = 0 is infinite', () => {
  for (const a of [1.5, 2, 4, 16]) {
    assert.ok(rdpPtr(p, a) >= rdpGaussian(2, a));
    assert.ok(rdpPtr({ ...p, gsRatio: 4 }, a) >= rdpPtr(p, a));
  }
  assert.equal(rdpPtr({ ...p, noiseMultiplier: 0 }, 2), Infinity);
  assert.equal(rdpSubsampledPtr(0.01, { ...p, noiseMultiplier: 0 }, 2), Infinity);
});

test('PTR event: priced by the RDP accountant (add/remove only), refused by PLD, round-trips through JSON', () => {
  const ev = DpEvents.poissonSampled(0.004, DpEvents.ptr(p));
  const acc = makeAccountant('rdp').compose(ev, 250);
  const eps = acc.getEpsilon(1e-5);
  // paper's claim reproduced in this regime (GS/β = 2, σ = 2): the RDP bound is far tighter than (ε, δ)-PTR
  const approx = ptrApproxDpEpsilon(0.004, p, 250, 1e-5);
  assert.ok(eps > 0.3 && eps < 1, `rdp ε ${eps}`);
  assert.ok(approx > 5 * eps, `(ε, δ)-PTR ${approx} vs RDP ${eps}`);
  // … and not in every regime: a large GS/β makes the RDP "bad event" term dominate
  const wide = { ...p, noiseMultiplier: 1, gsRatio: 10 };
  assert.ok(makeAccountant('rdp').compose(DpEvents.poissonSampled(0.004, DpEvents.ptr(wide)), 250).getEpsilon(1e-5) > ptrApproxDpEpsilon(0.004, wide, 250, 1e-5));
  assert.throws(() => makeAccountant('pld').compose(ev, 1).getEpsilon(1e-5), /PLD accountant cannot price/);
  assert.throws(() => makeAccountant('pld').compose(DpEvents.ptr(p), 1).getEpsilon(1e-5), /use the RDP accountant/);
  assert.throws(() => new RdpAccountant(undefined, { relation: 'replace-one' }).compose(ev, 1), /add\/remove/);
  assert.deepEqual(validateEvent(JSON.parse(JSON.stringify(ev))), ev);
  assert.throws(() => DpEvents.ptr({ ...p, gsRatio: 0.5 }), /gsRatio/);
  assert.throws(() => DpEvents.ptr({ ...p, testEpsilon: 0 }), /testEpsilon/);
});
