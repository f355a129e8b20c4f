/**
 * Mechanism-level white-box audit of generators whose only private contact is Gaussian releases of
 * a fixed-length vector (dp-merf, dp-kernel: `GeneratorPlugin.gaussianMechanism`). The run's own
 * release (its length, its charged event and its noise code, rebuilt from the run's
 * hyper-parameters, public facts and budget) is replayed with CANARY COORDINATES instead of records.
 *
 * Threat model as in synth-audit.ts (white box, Steinke, Nasr & Jagielski 2023): the adversary knows
 * every record but the canaries, so it can subtract the background; the auditor puts the background
 * at 0. Canary j owns one coordinate of each release it is assigned to (round robin over the
 * releases) and contributes +Δ/2 there when included (S_j = 1) and −Δ/2 when not: the two values
 * differ by exactly the charged L2 sensitivity Δ, a replace-one change, and canaries own disjoint
 * coordinates. The Gaussian guarantee holds for any two vectors within Δ, so this audits the release
 * code and its accounting (a σ smaller than charged, or σ = 0, is caught); the sensitivity proof of
 * the feature map is property-tested in test/generate-dp-merf.test.ts instead.
 * Score: the released value at the canary's coordinates, summed. No private data is read: no ε.
 */
import type { GaussianReleaseMechanism } from '../generate/index.js';
import { RdpAccountant, type RandomSource } from '../privacy/index.js';

export interface GaussianReleaseReplay {
  scores: number[];
  included: boolean[];
  /** ε of the replayed releases at `delta` (RDP accountant): the mechanism's own claim; ∞ for σ = 0. */
  replayEpsilon(delta: number): number;
  /** Canaries that own at least one coordinate. */
  covered: number;
  declaredNoise: number;
}

/** Replays `mech` with m canary coordinates (see the header). */
export function replayGaussianRelease(o: { mechanism: GaussianReleaseMechanism; m: number; rng: RandomSource; noise: RandomSource }): GaussianReleaseReplay {
  const { mechanism: mech, m } = o;
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`number of canaries must be an integer ≥ 2, got ${m}`);
  if (!(Number.isInteger(mech.releases) && mech.releases >= 1)) throw new RangeError(`gaussian release audit: the run makes no release (releases = ${mech.releases})`);
  const delta = mech.l2Sensitivity;
  if (!(delta > 0)) throw new RangeError(`gaussian release audit: sensitivity must be > 0, got ${delta}`);
  const included = Array.from({ length: m }, () => o.rng.nextDouble() < 0.5);
  const scores = new Float64Array(m);
  const touched = new Uint8Array(m);
  const v = new Float64Array(mech.dim);
  let next = 0;
  for (let t = 0; t < mech.releases; t++) {
    v.fill(0);
    // one coordinate per canary per release (at most dim canaries a release), round robin
    const owners = Math.min(m, mech.dim);
    const owner: number[] = [];
    for (let e = 0; e < owners; e++) {
      const c = next;
      next = (next + 1) % m;
      owner.push(c);
      v[e] = (included[c] ? 1 : -1) * (delta / 2);
      touched[c] = 1;
    }
    mech.addNoise(v, o.noise);
    for (let e = 0; e < owners; e++) scores[owner[e]!]! += v[e]!;
  }
  return {
    scores: Array.from(scores, (s) => (Number.isFinite(s) ? s : 0)),
    included,
    replayEpsilon: (d: number) => (mech.event.kind === 'nonPrivate' ? Number.POSITIVE_INFINITY : new RdpAccountant().compose(mech.event, mech.releases).getEpsilon(d)),
    covered: touched.reduce((s, x) => s + x, 0),
    declaredNoise: mech.sigma,
  };
}
