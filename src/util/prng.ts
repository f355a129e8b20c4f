/**
 * The project's one seeded PRNG module (public permutations, model/attack initialisation, test
 * data). NOT for DP noise: privacy noise comes from privacy/ (node:crypto unless a seed is asked for).
 * Several algorithms because seeded outputs already published depend on which one a caller used:
 * mulberry32 (shards, teachers, synthetic eval, kernel-teacher dithering), xorshift32 (audit
 * model and attack initialisation), both uniforms in [0, 1) with 32 bits of resolution, and the
 * LCG step that derives tfjs seeds for nn/ initialisers and dropout.
 */

/** mulberry32 stream from `seed` (uniforms in [0, 1)). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fills `out` with the mulberry32 stream from `seed` (the same numbers as `mulberry32(seed)` called
 * out.length times), without a closure: hot loops that start a fresh stream per (query, teacher)
 * measured 33 % slower with a closure each.
 */
export function fillMulberry32(seed: number, out: Float64Array | Float32Array): void {
  let a = seed >>> 0;
  for (let s = 0; s < out.length; s++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[s] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * One step of the LCG (a·x + c mod 2³², glibc constants) that seeds tfjs' initialisers and dropout
 * masks in nn/. Float arithmetic on purpose (not Math.imul): the product rounds above 2⁵³, and
 * seeded model inits already published depend on exactly these seeds.
 */
export function lcgStep(state: number): number {
  return (state * 1103515245 + 12345) >>> 0;
}

/**
 * xorshift32 (shifts 13, 17, 5) from the initial state `state` (0 is replaced by 1: the all-zero
 * state is a fixed point); uniforms in [0, 1).
 */
export function xorshift32(state: number): () => number {
  let s = state >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
