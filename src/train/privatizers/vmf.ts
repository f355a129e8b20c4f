/**
 * Directional privatizer `vmf`: DirDP-SGD (Faustini, Fernandes, Tonni, McIver & Dras 2023,
 * "Directional Privacy for Deep Learning").
 *
 * Mechanism. Each example's gradient g_i (all parameters, flattened) is replaced by C·z_i with
 * z_i ~ VMF(g_i/‖g_i‖, κ) on the unit sphere S^{P−1}; the step uses Σ_i C·z_i / B (B = expected
 * batch). Clipping to C does not change the direction, so the released vector depends on the
 * example only through its direction. z_i is drawn as w·u + √(1 − w²)·v: w from Wood's (1994)
 * rejection sampler (privacy/mechanisms.ts `vmfSampleW`), v uniform on the sphere orthogonal to u
 * (a Gaussian vector from the RandomSource with its u-component removed, normalised).
 *
 * Guarantee (privacy/metric-dp.ts). VMF is εd-private with ε = κ for the chordal distance, hence
 * for the angle θ between the two directions (‖u − u'‖ = 2 sin(θ/2) ≤ θ). Replacing one record
 * changes only that record's VMF input (its Poisson inclusion is the same slot), everything else in
 * the step is post-processing, and steps compose sequentially: a run of T steps is (T·κ)d-private
 * (metric DP, angular metric, replace-one), recorded as `metricDp(κ)` per step. It is NOT (ε, δ)-DP
 * in dplens's accounting: the ledger reports it as metric DP, `--json` prints `epsilon: null` and
 * `guarantee: {kind: 'metricDP', epsilon: Tκ, metric: 'angular'}`. Add/remove is not covered (an
 * added record adds a whole vector of norm C), so the ledger is opened under replace-one.
 *
 * Differs from the paper: (1) the output is rescaled to the public C, not to the example's
 * gradient norm: VMF protects only the direction, so releasing ‖g_i‖ would leak outside the
 * guarantee; (2) no subsampling amplification is claimed (none is proved for εd-privacy): every
 * record is charged κ at every step; (3) a zero gradient (no direction) is perturbed around the
 * fixed public direction e_1, which the metric guarantee covers like any other input direction.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource, vmfSampleW } from '../../privacy/index.js';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';
import type { Privatizer, PrivatizerFactory } from './types.js';

export class VmfPrivatizer implements Privatizer {
  readonly name = 'vmf';
  constructor(
    /** Concentration κ per example per step (Infinity = no noise, recorded as non-private). */
    readonly kappa: number,
    /** Output norm C of each example's release (--clip). */
    readonly scale: number,
    /** Number of model parameters P (the sphere is S^{P−1}). */
    private readonly P: number,
  ) {
    if (!(kappa >= 0) || Number.isNaN(kappa)) throw new RangeError(`--vmf-kappa must be >= 0, got ${kappa}`);
    if (!(scale > 0 && Number.isFinite(scale))) throw new RangeError(`--clip must be a positive finite number, got ${scale}`);
    if (!(Number.isInteger(P) && P >= 2)) throw new RangeError('vmf needs at least 2 model parameters');
  }
  get sensitivity(): number {
    return this.scale;
  }
  stepEvent(): DpEvent {
    if (this.kappa === Infinity) return DpEvents.nonPrivate('VMF with kappa = Infinity (no noise)');
    return DpEvents.metricDp(this.kappa, 'angular', 'vmf');
  }
  /** Adds C·z, z ~ VMF(g/‖g‖, κ), to `acc` (length P); `g` is read from `src` at offset `off`. */
  private perturbInto(src: ArrayLike<number>, off: number, acc: Float64Array, rng: RandomSource, noise: Float32Array, u: Float64Array): void {
    const P = this.P;
    let nn = 0;
    for (let i = 0; i < P; i++) nn += src[off + i]! * src[off + i]!;
    const norm = Math.sqrt(nn);
    // u = g/‖g‖ (e_1 for a zero gradient, see the file comment)
    if (norm > 0 && Number.isFinite(norm)) for (let i = 0; i < P; i++) u[i] = src[off + i]! / norm;
    else {
      u.fill(0);
      u[0] = 1;
    }
    const C = this.scale;
    if (this.kappa === Infinity) {
      for (let i = 0; i < P; i++) acc[i] += C * u[i]!;
      return;
    }
    const w = vmfSampleW(P, this.kappa, rng);
    // v ∝ noise − ⟨noise, u⟩u: uniform unit vector orthogonal to u
    let vn = 0;
    let dot = 0;
    do {
      rng.normal(noise, 1);
      dot = 0;
      let zz = 0;
      for (let i = 0; i < P; i++) {
        dot += noise[i]! * u[i]!;
        zz += noise[i]! * noise[i]!;
      }
      vn = zz - dot * dot; // ‖noise − dot·u‖² (‖u‖ = 1)
    } while (!(vn > 0));
    const a = C * w;
    const b = (C * Math.sqrt(Math.max(0, 1 - w * w))) / Math.sqrt(vn);
    for (let i = 0; i < P; i++) acc[i] += (a - b * dot) * u[i]! + b * noise[i]!;
  }
  privatizeExample(g: Float32Array, rng: RandomSource): Float32Array {
    if (g.length !== this.P) throw new RangeError(`example gradient has ${g.length} entries, the model has ${this.P}`);
    const acc = new Float64Array(this.P);
    this.perturbInto(g, 0, acc, rng, new Float32Array(this.P), new Float64Array(this.P));
    return Float32Array.from(acc);
  }
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[] {
    const flat = perSampleFlat(tape, params);
    const [N, P] = flat.shape;
    if (P !== this.P) throw new RangeError(`per-sample gradients have ${P} entries, expected ${this.P}`);
    const data = flat.dataSync();
    flat.dispose();
    const acc = new Float64Array(P);
    const noise = new Float32Array(P);
    const u = new Float64Array(P);
    for (let n = 0; n < N; n++) this.perturbInto(data, n * P, acc, rng, noise, u);
    const out: tf.Tensor[] = [];
    let off = 0;
    for (const p of params) {
      const size = p.value.size;
      out.push(tf.tensor(Float32Array.from(acc.subarray(off, off + size)), p.value.shape, 'float32'));
      off += size;
    }
    return out;
  }
  finalize(sum: tf.Tensor[], expectedBatch: number): tf.Tensor[] {
    // all noise was added per example in chunkSum
    return sum.map((s) => tf.div(s, expectedBatch));
  }
  ledgerMeta(): Record<string, number | string> {
    return { kappa: this.kappa === Infinity ? 'Infinity' : this.kappa, metric: 'angular', outputNorm: this.scale };
  }
}

export const vmfFactory: PrivatizerFactory = {
  name: 'vmf',
  summary: 'DirDP-SGD: each per-sample gradient direction perturbed by von Mises–Fisher noise (κ), released at norm --clip; metric DP (angular), not (ε, δ)',
  uses: ['clip'],
  options: [
    { flag: 'vmf-kappa', type: 'number', help: 'VMF concentration κ per example per step (larger = less noise); the run is (T·κ)d-private (metric DP, angular)', check: (v) => v > 0 || 'must be > 0' },
    { flag: 'vmf-epsilon', type: 'number', help: 'target metric-DP ε of the whole run (per radian of angular distance): κ = ε / T', check: (v) => (v > 0 && Number.isFinite(v)) || 'must be a positive finite number' },
  ],
  ownAccounting: { guarantee: 'metricDP', relation: 'replace-one', why: 'vmf is metric DP with its own --vmf-kappa / --vmf-epsilon' },
  create: (ctx) => {
    const k = ctx.options['vmf-kappa'];
    const e = ctx.options['vmf-epsilon'];
    if ((k === undefined) === (e === undefined)) throw new RangeError('--privatizer vmf needs exactly one of --vmf-kappa or --vmf-epsilon');
    let kappa: number;
    if (k !== undefined) kappa = Number(k);
    else {
      if (!(ctx.steps !== undefined && ctx.steps > 0)) throw new RangeError('--vmf-epsilon needs the planned number of steps');
      kappa = Number(e) / ctx.steps;
    }
    return new VmfPrivatizer(kappa, ctx.clip, ctx.paramCount);
  },
};
