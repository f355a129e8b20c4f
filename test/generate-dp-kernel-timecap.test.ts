/**
 * dp-kernel's time cap (issue 14 "Speed": every default preset ≤ 30 minutes). The generator steps
 * after the one release are post-processing, so the cap stops training without losing ε: the run
 * still holds exactly one ledger entry, its ε is the release's, and it says it was stopped by time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../src/data/index.js';
import { dpKernelPlugin, dpMerfPlugin, ensureEngine } from '../src/generate/index.js';
import { resolvePluginHyper } from '../src/generate/plugin.js';
import { PrivacyLedger } from '../src/privacy/index.js';
import { runSynthesis } from '../src/runs/synth.js';

const mnist = loadMnist();
const small = { ...mnist, train: { images: mnist.train.images.slice(0, 1000 * 784), labels: mnist.train.labels.slice(0, 1000), count: 1000 }, rawFingerprint: `${mnist.rawFingerprint}:first-1000` };

test('dp-kernel: every preset has a time cap of at most 22 minutes; dp-merf (≤ 2 min) has none', () => {
  for (const name of Object.keys(dpKernelPlugin.presets)) {
    const h = resolvePluginHyper(dpKernelPlugin, name, {});
    assert.ok(h.timeCap > 0 && h.timeCap <= 22, `${name}: timeCap ${h.timeCap}`);
  }
  assert.ok(dpKernelPlugin.hyperParameters.some((s) => s.key === 'timeCap' && s.flag === 'time-cap'));
  assert.ok(!dpMerfPlugin.hyperParameters.some((s) => s.key === 'timeCap'));
});

test('dp-kernel: the time cap stops generator training early, with the one release spent and recorded (tiny run on real MNIST)', async () => {
  await ensureEngine();
  const root = mkdtempSync(join(tmpdir(), 'dplens-kernel-cap-'));
  try {
    // 1e-6 min = 0.06 ms from the start of fit(): the release alone takes longer, so only the one
    // step the generator always gets (the release is spent; a run with no step has nothing to sample)
    const capped = join(root, 'capped');
    const res = await runSynthesis({ method: 'dp-kernel', data: 'mnist', epsilon: 1, delta: 1e-5, out: capped, samples: 20, seed: 3, hyper: { features: 120, iterations: 100000, perClass: 2, timeCap: 1e-6 } }, { dataOverride: small });
    assert.equal(res.stoppedBy, 'max-minutes');
    assert.equal(res.generatorSteps, 1);
    assert.ok(res.epsilon > 0.99 && res.epsilon <= 1, `ε ${res.epsilon}`);
    assert.equal(PrivacyLedger.read(join(capped, 'ledger.jsonl')).entries.length, 1);
    // timeCap 0 = no cap: all planned steps run
    const full = join(root, 'full');
    const res2 = await runSynthesis({ method: 'dp-kernel', data: 'mnist', epsilon: 1, delta: 1e-5, out: full, samples: 20, seed: 3, hyper: { features: 120, iterations: 3, perClass: 2, timeCap: 0 } }, { dataOverride: small });
    assert.equal(res2.stoppedBy, 'max-steps');
    assert.equal(res2.generatorSteps, 3);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
