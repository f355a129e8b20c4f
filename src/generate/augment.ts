/**
 * Public-prior augmentation of generated images (post-processing: it reads only the generator's
 * output and public randomness, never the private data, so it costs no privacy).
 *
 * A DP generator at ε ≈ 1 learns little more than a few modes per class; a classifier trained on
 * those modes alone overfits them. Small random affine maps (rotation, scale, shear, shift) encode
 * the public prior that a handwritten or photographed object stays in its class under small
 * geometric changes — the same prior every image classifier's training augmentation uses.
 */
import type { RandomSource } from '../privacy/index.js';

export interface AffineAugmentOptions {
  /** Max rotation, degrees (uniform in ±). */
  rotateDeg: number;
  /** Max relative scale change (uniform in 1 ± scale). */
  scale: number;
  /** Max shear (uniform in ±, x += shear·y). */
  shear: number;
  /** Max shift, pixels (uniform in ±). */
  shiftPx: number;
}

export const DEFAULT_AFFINE: AffineAugmentOptions = { rotateDeg: 12, scale: 0.12, shear: 0.15, shiftPx: 2 };

/** Pixel (y, x) of an h×w image, 0 outside. */
function pixelAt(src: Float32Array, h: number, w: number, y: number, x: number): number {
  return y >= 0 && y < h && x >= 0 && x < w ? src[y * w + x]! : 0;
}

/**
 * In-place random affine map of n single-channel h×w uint8 images (bilinear, zero outside).
 * Each image gets its own map about the image centre.
 */
export function augmentAffine(images: Uint8Array, n: number, h: number, w: number, rng: RandomSource, o: AffineAugmentOptions = DEFAULT_AFFINE): void {
  if (images.length !== n * h * w) throw new RangeError(`augmentAffine: expected ${n}×${h}×${w} pixels, got ${images.length}`);
  const u = new Float64Array(5);
  const src = new Float32Array(h * w);
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  for (let m = 0; m < n; m++) {
    rng.uniform(u);
    const th = ((2 * u[0]! - 1) * o.rotateDeg * Math.PI) / 180;
    const s = 1 + (2 * u[1]! - 1) * o.scale;
    const sh = (2 * u[2]! - 1) * o.shear;
    const tx = (2 * u[3]! - 1) * o.shiftPx;
    const ty = (2 * u[4]! - 1) * o.shiftPx;
    // Forward map A = s·R(θ)·Shear; we sample the source at A⁻¹(p − c − t) + c.
    const c = Math.cos(th);
    const si = Math.sin(th);
    const a00 = s * c;
    const a01 = s * (c * sh - si);
    const a10 = s * si;
    const a11 = s * (si * sh + c);
    const det = a00 * a11 - a01 * a10;
    const i00 = a11 / det;
    const i01 = -a01 / det;
    const i10 = -a10 / det;
    const i11 = a00 / det;
    const off = m * h * w;
    for (let p = 0; p < h * w; p++) src[p] = images[off + p]!;
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const dx = xx - cx - tx;
        const dy = yy - cy - ty;
        const sx = i00 * dx + i01 * dy + cx;
        const sy = i10 * dx + i11 * dy + cy;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        const v = (1 - fy) * ((1 - fx) * pixelAt(src, h, w, y0, x0) + fx * pixelAt(src, h, w, y0, x0 + 1)) + fy * ((1 - fx) * pixelAt(src, h, w, y0 + 1, x0) + fx * pixelAt(src, h, w, y0 + 1, x0 + 1));
        images[off + yy * w + xx] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
}
