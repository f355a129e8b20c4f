/**
 * Iterative radix-2 complex FFT on split Float64Arrays (re, im), with exact per-index twiddles
 * (cos/sin evaluated directly, not by recurrence, so the error stays ~1e-16 * log2(n)).
 */
export class Fft {
  readonly n: number;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly rev: Uint32Array;

  constructor(n: number) {
    if (!(Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0)) throw new RangeError(`FFT size must be a power of two, got ${n}`);
    this.n = n;
    const half = n >> 1;
    this.cos = new Float64Array(Math.max(half, 1));
    this.sin = new Float64Array(Math.max(half, 1));
    for (let k = 0; k < half; k++) {
      const a = (2 * Math.PI * k) / n;
      this.cos[k] = Math.cos(a);
      this.sin[k] = Math.sin(a);
    }
    this.rev = new Uint32Array(n);
    let bits = 0;
    while (1 << bits < n) bits++;
    for (let i = 1; i < n; i++) this.rev[i] = (this.rev[i >> 1] >> 1) | ((i & 1) << (bits - 1));
  }

  /** In-place transform. Forward uses e^{-2 pi i jk/n}; inverse uses e^{+...} and divides by n. */
  transform(re: Float64Array, im: Float64Array, inverse = false): void {
    const n = this.n;
    if (re.length !== n || im.length !== n) throw new RangeError(`FFT: arrays must have length ${n}`);
    const rev = this.rev;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (i < j) {
        let t = re[i];
        re[i] = re[j];
        re[j] = t;
        t = im[i];
        im[i] = im[j];
        im[j] = t;
      }
    }
    const cs = this.cos;
    const sn = this.sin;
    const sgn = inverse ? -1 : 1;
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let j = 0, k = 0; j < half; j++, k += step) {
          const c = cs[k];
          const s = sgn * sn[k];
          const a = start + j;
          const b = a + half;
          const br = re[b];
          const bi = im[b];
          // w = c - i s (forward)
          const tr = br * c + bi * s;
          const ti = bi * c - br * s;
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
    }
    if (inverse) {
      const inv = 1 / n;
      for (let i = 0; i < n; i++) {
        re[i] *= inv;
        im[i] *= inv;
      }
    }
  }
}

const fftCache = new Map<number, Fft>();
export function getFft(n: number): Fft {
  let f = fftCache.get(n);
  if (!f) {
    f = new Fft(n);
    if (fftCache.size > 4) fftCache.clear();
    fftCache.set(n, f);
  }
  return f;
}

/** Smallest power of two >= n. */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
