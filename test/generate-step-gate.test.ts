/**
 * StepReleaseGate (src/generate/step-gate.ts): the one place the DP-SGD generators charge a step.
 * Properties: a step is charged before the caller proceeds and refused once the budget is spent
 * (nothing recorded past it); a non-private run records exactly one nonPrivate event, also when
 * a second gate is opened on the same ledger (a resume); the deadline waits for minSteps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpEvents, PrivacyLedger, RdpAccountant, seededRandom } from '../src/privacy/index.js';
import { fitDeadline, StepReleaseGate } from '../src/generate/step-gate.js';
import type { GeneratorContext } from '../src/generate/types.js';
import type { ImageDataset } from '../src/data/index.js';

const data = { name: 'tiny', rawFingerprint: 'ab'.repeat(32) } as unknown as ImageDataset;

function withLedger(budget: number | undefined, f: (path: string, l: PrivacyLedger) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dplens-gate-'));
  const path = join(dir, 'ledger.jsonl');
  const ledger = PrivacyLedger.open(path, { accountant: 'rdp', relation: 'add-remove', randomness: { kind: 'seeded', seed: 1 }, ...(budget !== undefined ? { budget: { epsilon: budget, delta: 1e-5 } } : {}) });
  try {
    f(path, ledger);
  } finally {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function ctxOf(ledger: PrivacyLedger, nonPrivate: boolean): GeneratorContext {
  return { data, ledger, nonPrivate, budget: { epsilon: nonPrivate ? Infinity : 1, delta: 1e-5 }, random: seededRandom(2) };
}

test('a private gate charges each step until the budget refuses, and records nothing past it', () => {
  withLedger(1, (_p, ledger) => {
    const event = DpEvents.poissonSampled(0.01, DpEvents.gaussian(2.0));
    const gate = new StepReleaseGate(ctxOf(ledger, false), { method: 'test', event, deadline: Infinity });
    let steps = 0;
    while (gate.charge(steps + 1, { release: 'test' })) steps++;
    assert.equal(ledger.entries.length, steps);
    assert.ok(steps >= 10, `only ${steps} steps fit`);
    // the accountant's own figure for the recorded steps is within the budget, one more step is not
    assert.ok(new RdpAccountant().compose(event, steps).getEpsilon(1e-5) <= 1);
    assert.ok(new RdpAccountant().compose(event, steps + 1).getEpsilon(1e-5) > 1);
    assert.deepEqual(ledger.entries.map((e) => (e.meta as { step: number }).step), Array.from({ length: steps }, (_, i) => i + 1));
  });
});

test('a non-private run records one nonPrivate event, also across a second gate on the same ledger (resume)', () => {
  withLedger(undefined, (_p, ledger) => {
    const event = DpEvents.nonPrivate('test: --non-private');
    const first = new StepReleaseGate(ctxOf(ledger, true), { method: 'test', event, deadline: Infinity });
    for (let s = 1; s <= 5; s++) assert.equal(first.charge(s, {}), true);
    const resumed = new StepReleaseGate(ctxOf(ledger, true), { method: 'test', event, deadline: Infinity });
    for (let s = 6; s <= 8; s++) assert.equal(resumed.charge(s, {}), true);
    assert.equal(ledger.entries.length, 1);
    assert.equal(ledger.entries[0]!.event.kind, 'nonPrivate');
  });
});

test('stopBefore: abort first, the deadline only after minSteps; fitDeadline prefers --max-minutes over the time cap', () => {
  withLedger(1, (_p, ledger) => {
    const event = DpEvents.gaussian(1);
    const past = Date.now() - 1;
    const ac = new AbortController();
    const gate = new StepReleaseGate(ctxOf(ledger, false), { method: 'test', event, deadline: past, signal: ac.signal, minSteps: 1 });
    assert.equal(gate.stopBefore(0), null);
    assert.equal(gate.stopBefore(1), 'max-minutes');
    ac.abort();
    assert.equal(gate.stopBefore(0), 'aborted');
  });
  assert.equal(fitDeadline(1000, { maxSteps: 1, maxMinutes: 2 }, 50), 1000 + 120_000);
  assert.equal(fitDeadline(1000, { maxSteps: 1, maxMinutes: Infinity }, 50), 1000 + 3_000_000);
  assert.equal(fitDeadline(1000, { maxSteps: 1, maxMinutes: Infinity }, 0), Infinity);
});
