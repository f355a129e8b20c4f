/**
 * Membership inference attacks.
 *
 * Classifiers:
 *  - loss threshold (Yeom et al. 2018): score = −loss of the example under the target model;
 *  - LiRA, offline variant (Carlini et al. 2022): for each example, fit a Gaussian to the
 *    logit-scaled confidence φ = log(p_y / (1 − p_y)) of shadow models trained WITHOUT it; score =
 *    the one-sided likelihood that the target's φ is that high, Φ((φ − μ_out)/σ_out). With few
 *    shadows per example a global σ_out is more stable (their "fixed variance" option).
 * Synthetic data:
 *  - distance to closest record (DCR): score = −min distance from the candidate to a synthetic
 *    record (of the same label, if labels are given);
 *  - shadow-generator attack: run the generator on data with/without the candidate and use the
 *    DCR shift (see `auditSynthesis` in synth-audit.ts, which does it in one run with canaries).
 * All attacks produce per-example scores (higher = "member"); `attackMetrics` in stats.ts turns
 * them into ROC, AUC and TPR at 0.1% / 1% FPR.
 */
import * as tf from '@tensorflow/tfjs-core';
import { attackMetrics, type AttackMetrics } from './stats.js';
import { tidyRead } from '../engine/tidy-read.js';

/** Per-example cross-entropy loss and logit-scaled confidence from logits [N, K]. */
export function lossAndConfidence(logits: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number): { loss: Float64Array; phi: Float64Array } {
  const n = labels.length;
  if (logits.length !== n * numClasses) throw new RangeError(`logits have ${logits.length} entries, expected ${n}×${numClasses}`);
  const loss = new Float64Array(n);
  const phi = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let k = 0; k < numClasses; k++) mx = Math.max(mx, logits[i * numClasses + k]!);
    let se = 0;
    for (let k = 0; k < numClasses; k++) se += Math.exp(logits[i * numClasses + k]! - mx);
    const y = labels[i]!;
    if (!(y >= 0 && y < numClasses)) throw new RangeError(`label ${y} of example ${i} is outside [0, ${numClasses})`);
    const zy = logits[i * numClasses + y]! - mx;
    const logp = zy - Math.log(se);
    loss[i] = -logp;
    // log p − log(1 − p), computed stably as z_y − log Σ_{k≠y} e^{z_k}
    let other = 0;
    for (let k = 0; k < numClasses; k++) if (k !== y) other += Math.exp(logits[i * numClasses + k]! - mx);
    phi[i] = zy - Math.log(Math.max(other, 1e-300));
  }
  return { loss, phi };
}

/** Loss-threshold attack: metrics of score = −loss. */
export function lossThresholdAttack(losses: ArrayLike<number>, isMember: ArrayLike<boolean | number>): AttackMetrics & { scores: number[] } {
  const scores = Array.from(losses, (l) => -l);
  return { ...attackMetrics(scores, isMember), scores };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/**
 * Offline LiRA scores. `targetPhi[i]`: the target model's φ on example i; `outPhi[i]`: φ of the
 * shadow models that did NOT train on example i. Returns the standardised z = (φ − μ_out)/σ_out
 * (higher = member); the one-sided likelihood Φ(z) is monotone in z, so z gives the same ROC
 * without losing resolution where Φ rounds to 1.
 */
export function liraOfflineScores(targetPhi: ArrayLike<number>, outPhi: ArrayLike<number>[], opts: { globalVariance?: boolean } = {}): number[] {
  if (outPhi.length !== targetPhi.length) throw new RangeError(`outPhi has ${outPhi.length} rows for ${targetPhi.length} examples`);
  const means: number[] = [];
  const vars: number[] = [];
  let pooled = 0;
  let pooledN = 0;
  for (let i = 0; i < targetPhi.length; i++) {
    const o = outPhi[i]!;
    if (o.length === 0) throw new RangeError(`example ${i} has no OUT shadow model (train more shadows)`);
    let m = 0;
    for (let k = 0; k < o.length; k++) m += o[k]!;
    m /= o.length;
    let v = 0;
    for (let k = 0; k < o.length; k++) v += (o[k]! - m) ** 2;
    means.push(m);
    vars.push(o.length > 1 ? v / (o.length - 1) : NaN);
    if (o.length > 1) {
      pooled += v;
      pooledN += o.length - 1;
    }
  }
  const globalVar = pooledN > 0 ? pooled / pooledN : 1;
  return Array.from(targetPhi, (phi, i) => {
    const v = opts.globalVariance || !Number.isFinite(vars[i]!) ? globalVar : vars[i]!;
    return (phi - means[i]!) / Math.sqrt(Math.max(v, 1e-12));
  });
}

/**
 * Distance from every candidate to its closest synthetic record (Euclidean on raw bytes scaled to
 * [0, 1]); with labels, only synthetic records of the same label count. Batched on the tfjs
 * backend through ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b.
 */
export function distanceToClosestRecord(
  candidates: { images: Uint8Array; labels?: Int32Array; count: number },
  synthetic: { images: Uint8Array; labels?: Int32Array; count: number },
  dim: number,
): Float64Array {
  if (candidates.images.length !== candidates.count * dim || synthetic.images.length !== synthetic.count * dim) throw new RangeError('distanceToClosestRecord: image buffers do not match count × dim');
  if (synthetic.count === 0) throw new RangeError('distanceToClosestRecord: no synthetic records');
  const useLabels = !!(candidates.labels && synthetic.labels);
  const out = new Float64Array(candidates.count).fill(Infinity);
  const toFloat = (src: Uint8Array, start: number, end: number): Float32Array => {
    const f = new Float32Array((end - start) * dim);
    for (let i = 0; i < f.length; i++) f[i] = src[start * dim + i]! / 255;
    return f;
  };
  const CB = 512;
  const SB = 4096;
  for (let s0 = 0; s0 < synthetic.count; s0 += SB) {
    const s1 = Math.min(synthetic.count, s0 + SB);
    const S = tf.tensor2d(toFloat(synthetic.images, s0, s1), [s1 - s0, dim]);
    const sNorm = tf.sum(tf.square(S), 1);
    for (let c0 = 0; c0 < candidates.count; c0 += CB) {
      const c1 = Math.min(candidates.count, c0 + CB);
      const d2 = tidyRead(() => {
        const A = tf.tensor2d(toFloat(candidates.images, c0, c1), [c1 - c0, dim]);
        const aNorm = tf.sum(tf.square(A), 1, true);
        return tf.add(tf.sub(aNorm, tf.mul(2, tf.matMul(A, S, false, true))), sNorm);
      });
      const w = s1 - s0;
      for (let i = 0; i < c1 - c0; i++) {
        let best = out[c0 + i]!;
        const li = useLabels ? candidates.labels![c0 + i] : -1;
        for (let j = 0; j < w; j++) {
          if (useLabels && synthetic.labels![s0 + j] !== li) continue;
          const v = d2[i * w + j]!;
          if (v < best) best = v;
        }
        out[c0 + i] = best;
      }
    }
    S.dispose();
    sNorm.dispose();
  }
  for (let i = 0; i < out.length; i++) out[i] = Number.isFinite(out[i]!) ? Math.sqrt(Math.max(0, out[i]!)) : Infinity;
  return out;
}

/** DCR attack: metrics of score = −DCR (closer to the synthetic data = member). */
export function dcrAttack(dcr: ArrayLike<number>, isMember: ArrayLike<boolean | number>): AttackMetrics & { scores: number[] } {
  const scores = Array.from(dcr, (d) => (Number.isFinite(d) ? -d : -1e9));
  return { ...attackMetrics(scores, isMember), scores };
}
