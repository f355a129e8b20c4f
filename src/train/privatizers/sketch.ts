/**
 * Count-sketch DP-SGD (sketched gradients as in Ivkin et al. 2019 / Rothchild et al. 2020,
 * FetchSGD), accounted exactly: each step draws public hashes h_r: [P] → [w] and signs
 * s_r: [P] → ±1 for r = 1..R rows (from the RandomSource, independent of the data). Each example's
 * gradient is sketched, S_i[r, b] = Σ_{j: h_r(j)=b} s_r(j)·g_ij, and the SKETCH is clipped to
 * L2 ≤ C (a sketch of a norm-C vector can be longer than C when coordinates collide, so clipping
 * the gradient first would not bound it); the clipped sketches are summed and N(0, σ²C²) is added
 * to each of the R·w counters.
 *   Sensitivity (add/remove): one example changes the summed sketch by its clipped sketch, norm
 *   ≤ C: poissonSampled(q, gaussian(σ)).
 * Decoding is post-processing: ĝ_j = (1/R)·Σ_r s_r(j)·S[r, h_r(j)] (the mean over rows — linear,
 * so the noise can be added after decoding as the decoded noise vector; the paper's median decoder
 * is not linear), divided by the expected batch. bytesPerExample = 4·R·w.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DpEvent, DpEvents, type RandomSource } from '../../privacy/index.js';
import { type GradTape, type Param, perSampleFlat } from '../../nn/index.js';
import { paramShapes, splitFlat } from './compress.js';
import { checkSigma, type Privatizer, type PrivatizerFactory } from './types.js';

interface Hashes {
  bucket: Int32Array; // [R·P]
  sign: Float32Array; // [R·P]
}

export class SketchPrivatizer implements Privatizer {
  readonly name = 'sketch';
  private hashes: Hashes | undefined;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly clip: number,
    readonly noiseMultiplier: number,
  ) {
    checkSigma(noiseMultiplier);
    if (!(Number.isInteger(rows) && rows > 0)) throw new RangeError(`--sketch-rows must be a positive integer, got ${rows}`);
    if (!(Number.isInteger(cols) && cols > 0)) throw new RangeError(`--sketch-cols must be a positive integer, got ${cols}`);
    if (!(clip > 0 && Number.isFinite(clip))) throw new RangeError(`clip must be a positive finite number, got ${clip}`);
  }
  get sensitivity(): number {
    return this.clip;
  }
  get bytesPerExample(): number {
    return 4 * this.rows * this.cols;
  }
  stepEvent(q: number): DpEvent {
    if (this.noiseMultiplier === 0) return DpEvents.nonPrivate('count-sketch DP-SGD with noise multiplier 0');
    return DpEvents.poissonSampled(q, DpEvents.gaussian(this.noiseMultiplier));
  }
  private hashesFor(P: number, rng: RandomSource): Hashes {
    if (this.hashes) return this.hashes;
    const u = new Float64Array(2 * this.rows * P);
    rng.uniform(u);
    const bucket = new Int32Array(this.rows * P);
    const sign = new Float32Array(this.rows * P);
    for (let i = 0; i < bucket.length; i++) {
      bucket[i] = Math.min(this.cols - 1, Math.floor(u[2 * i]! * this.cols));
      sign[i] = u[2 * i + 1]! < 0.5 ? -1 : 1;
    }
    this.hashes = { bucket, sign };
    return this.hashes;
  }
  /** Linear decoder (mean over rows) of a flat sketch [R·w] into [P]. */
  private decode(sk: tf.Tensor1D, h: Hashes, P: number): tf.Tensor1D {
    return tf.tidy(() => {
      let acc: tf.Tensor1D | undefined;
      for (let r = 0; r < this.rows; r++) {
        const idx = tf.tensor1d(h.bucket.subarray(r * P, (r + 1) * P).map((b) => b + r * this.cols), 'int32');
        const v = tf.mul(tf.gather(sk, idx), tf.tensor1d(h.sign.subarray(r * P, (r + 1) * P))) as tf.Tensor1D;
        acc = acc ? (tf.add(acc, v) as tf.Tensor1D) : v;
      }
      return tf.div(acc!, this.rows);
    });
  }
  chunkSum(tape: GradTape, params: Param[], rng: RandomSource): tf.Tensor[] {
    const P = params.reduce((s, p) => s + p.value.size, 0);
    const h = this.hashesFor(P, rng);
    return tf.tidy(() => splitFlat(this.decode(tf.sum(this.clippedSketches(perSampleFlat(tape, params), rng), 1) as tf.Tensor1D, h, P), paramShapes(params)));
  }
  /** Per-example sketches of the rows of G [n, P] under this step's hashes, each clipped to L2 ≤ C: [R·w, n]. */
  clippedSketches(G: tf.Tensor2D, rng: RandomSource): tf.Tensor2D {
    const P = G.shape[1];
    const h = this.hashesFor(P, rng);
    return tf.tidy(() => {
      const Gt = tf.transpose(G); // [P, n]
      const parts: tf.Tensor[] = [];
      for (let r = 0; r < this.rows; r++) {
        const sg = tf.reshape(tf.tensor1d(h.sign.subarray(r * P, (r + 1) * P)), [P, 1]);
        parts.push(tf.unsortedSegmentSum(tf.mul(Gt, sg), tf.tensor1d(h.bucket.subarray(r * P, (r + 1) * P), 'int32'), this.cols));
      }
      const sk = tf.concat(parts, 0); // [R·w, n]
      const norms = tf.sqrt(tf.sum(tf.square(sk), 0, true));
      return tf.mul(sk, tf.minimum(1, tf.div(this.clip, tf.maximum(norms, 1e-12)))) as tf.Tensor2D;
    });
  }
  finalize(sum: tf.Tensor[], expectedBatch: number, rng: RandomSource): tf.Tensor[] {
    const P = sum.reduce((s, x) => s + x.size, 0);
    const h = this.hashes ?? this.hashesFor(P, rng);
    this.hashes = undefined;
    const noise = new Float32Array(this.rows * this.cols);
    const std = this.noiseMultiplier * this.clip;
    if (std > 0) rng.normal(noise, std);
    const dn = tf.tidy(() => this.decode(tf.tensor1d(noise), h, P));
    const parts = splitFlat(dn, sum.map((s) => s.shape));
    dn.dispose();
    const out = sum.map((s, i) => tf.tidy(() => tf.div(tf.add(s, parts[i]!), expectedBatch)));
    parts.forEach((t) => t.dispose());
    return out;
  }
  ledgerMeta(): Record<string, number | string> {
    return { noiseMultiplier: this.noiseMultiplier, sketchRows: this.rows, sketchCols: this.cols };
  }
}

export const sketchFactory: PrivatizerFactory = {
  name: 'sketch',
  summary: 'count-sketch: per-example sketch (public per-step hashes) clipped to --clip, N(0, σ²C²) per counter, linear decode',
  uses: ['clip'],
  options: [
    { flag: 'sketch-rows', type: 'integer', min: 1, help: 'sketch: rows R (default 1)' },
    { flag: 'sketch-cols', type: 'integer', min: 1, help: 'sketch: counters per row w (default 5% of parameters)' },
  ],
  create: (ctx) => new SketchPrivatizer((ctx.options['sketch-rows'] as number | undefined) ?? 1, (ctx.options['sketch-cols'] as number | undefined) ?? Math.max(1, Math.round(ctx.paramCount * 0.05)), ctx.clip, ctx.noiseMultiplier),
};
