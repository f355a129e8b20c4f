/**
 * WebAssembly SIMD host kernels for the training hot loops that are pure data movement: im2col
 * (copying contiguous kernel-row runs out of a padded input), col2im (adding them back), and the
 * ReLU-fused max pooling (four channels per 128-bit lane group). JS executes these loops one
 * float at a time; v128 moves and compares do four, which took the reference CNN's host work per
 * step from ~14 ms to a few ms.
 *
 * The module is assembled here from opcodes (no toolchain, nothing fetched) and validated once;
 * where WebAssembly SIMD is unavailable `simdAvailable()` is false and callers keep their JS loops.
 * Each user owns a {@link HostArena}: its own WebAssembly.Memory, so growing one layer's arena
 * never detaches another layer's views. Views handed out by an arena stay valid until that
 * arena's next `reserve` (callers reserve everything a training step needs in its forward pass).
 */

// ---------------------------------------------------------------------------------------------
// A minimal WebAssembly assembler

type Code = number[];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const I32 = 0x7f;
const V128 = 0x7b;
const simd = (op: number): Code => [0xfd, ...uleb(op)];
const mem = (align: number): Code => [align, 0]; // memarg: log2 alignment hint, offset 0

const get = (i: number): Code => [0x20, ...uleb(i)];
const set = (i: number): Code => [0x21, ...uleb(i)];
const c32 = (v: number): Code => [0x41, ...sleb(v)];
const add = [0x6a];
const sub = [0x6b];
const mul = [0x6c];
const geS = [0x4e];
const i32load = [0x28, ...mem(2)];
const i32store = [0x36, ...mem(2)];
const f32load = [0x2a, ...mem(2)];
const f32store = [0x38, ...mem(2)];
const f32add = [0x92];
const v128load = [...simd(0x00), ...mem(0)];
const v128store = [...simd(0x0b), ...mem(0)];
const i32x4splat = simd(0x11);
const i32x4gtS = simd(0x3b);
const v128andnot = simd(0x4f);
const v128bitselect = simd(0x52);
const i32x4shrS = simd(0xac);
const f32x4add = simd(0xe4);
const v128const = (lanes: number[]): Code => {
  const b = new Uint8Array(new Int32Array(lanes).buffer);
  return [...simd(0x0c), ...b];
};

/** i = from; while (i < to) { body; i += step } — `to`/`step` are evaluated every iteration. */
function loop(i: number, from: Code, to: Code, step: Code, body: Code): Code {
  return [...from, ...set(i), 0x02, 0x40, 0x03, 0x40, ...get(i), ...to, ...geS, 0x0d, 1, ...body, ...get(i), ...step, ...add, ...set(i), 0x0c, 0, 0x0b, 0x0b];
}
/** local[i] += expr */
const inc = (i: number, e: Code): Code => [...get(i), ...e, ...add, ...set(i)];

interface Func {
  name: string;
  params: number;
  locals: { i32: number; v128: number };
  body: Code;
}

function assemble(funcs: Func[]): Uint8Array<ArrayBuffer> {
  const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const str = (s: string) => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
  const types = vec(funcs.map((f) => [0x60, ...uleb(f.params), ...new Array(f.params).fill(I32), 0]));
  const imports = vec([[...str('env'), ...str('mem'), 0x02, 0x00, ...uleb(1)]]);
  const fsec = vec(funcs.map((_, i) => uleb(i)));
  const exports = vec(funcs.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]));
  const code = vec(
    funcs.map((f) => {
      const decl: number[][] = [];
      if (f.locals.i32) decl.push([...uleb(f.locals.i32), I32]);
      if (f.locals.v128) decl.push([...uleb(f.locals.v128), V128]);
      const body = [...vec(decl), ...f.body, 0x0b];
      return [...uleb(body.length), ...body];
    }),
  );
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...section(1, types), ...section(2, imports), ...section(3, fsec), ...section(7, exports), ...section(10, code)]);
}

// ---------------------------------------------------------------------------------------------
// Kernels (all addresses in bytes)

/**
 * copyRuns(dst, src, tab, tabBytes, runBytes, samples, srcStride): for each sample s and each
 * table entry t (byte offsets), copies runBytes from src + s·srcStride + t to the next dst bytes.
 */
function copyRunsFunc(add4: boolean): Func {
  // params 0 dst, 1 src, 2 tab, 3 tabBytes, 4 runBytes, 5 samples, 6 srcStride
  // locals 7 s, 8 r, 9 sp, 10 i, 11 d, 12 sb, 13 vec end
  const [dst, src, tab, tabBytes, runBytes, samples, srcStride] = [0, 1, 2, 3, 4, 5, 6];
  const [s, r, sp, i, d, sb, vend] = [7, 8, 9, 10, 11, 12, 13];
  // copy: d[i] = sp[i]; add: sp[i] += d[i] (col2im direction: d walks the patch gradients)
  const vecBody = add4
    ? [...get(sp), ...get(i), ...add, ...get(sp), ...get(i), ...add, ...v128load, ...get(d), ...get(i), ...add, ...v128load, ...f32x4add, ...v128store]
    : [...get(d), ...get(i), ...add, ...get(sp), ...get(i), ...add, ...v128load, ...v128store];
  const tailBody = add4
    ? [...get(sp), ...get(i), ...add, ...get(sp), ...get(i), ...add, ...f32load, ...get(d), ...get(i), ...add, ...f32load, ...f32add, ...f32store]
    : [...get(d), ...get(i), ...add, ...get(sp), ...get(i), ...add, ...i32load, ...i32store];
  const body = [
    ...get(dst),
    ...set(d),
    // vend = runBytes - 15 (vector loop runs while i < vend, i.e. i + 16 <= runBytes)
    ...get(runBytes),
    ...c32(15),
    ...sub,
    ...set(vend),
    ...loop(s, c32(0), get(samples), c32(1), [
      ...get(src),
      ...get(s),
      ...get(srcStride),
      ...mul,
      ...add,
      ...set(sb),
      ...loop(r, c32(0), get(tabBytes), c32(4), [
        ...get(sb),
        ...get(tab),
        ...get(r),
        ...add,
        ...i32load,
        ...add,
        ...set(sp),
        ...loop(i, c32(0), get(vend), c32(16), vecBody),
        // scalar tail: i continues from where the vector loop stopped
        0x02,
        0x40,
        0x03,
        0x40,
        ...get(i),
        ...get(runBytes),
        ...geS,
        0x0d,
        1,
        ...tailBody,
        ...inc(i, c32(4)),
        0x0c,
        0,
        0x0b,
        0x0b,
        ...inc(d, get(runBytes)),
      ]),
    ]),
  ];
  return { name: add4 ? 'addRuns' : 'copyRuns', params: 7, locals: { i32: 7, v128: 0 }, body };
}

/**
 * maxPoolRelu4(x, out, code, n, h, w, c, kh, kw, sh, sw, ho, wo): relu(maxpool(x)) over NHWC with
 * c % 4 == 0, 'valid' windows; code = window position ky·kw + kx of the first maximum, −1 where
 * the output is 0. Same integer-bit trick as the JS loop (non-negative float32 order = int32
 * order), four lanes.
 */
function maxPoolRelu4Func(): Func {
  const [x, out, arg, n, h, w, c, kh, kw, sh, sw, ho, wo] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [b, oy, ox, ch, ky, kx, o, p0, r, xb] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const [best, bi, v, m] = [23, 24, 25, 26];
  const vget = get;
  const vset = set;
  const inner = [
    // r = p0 + (ky·w + kx)·c + ch
    ...get(p0),
    ...get(ky),
    ...get(w),
    ...mul,
    ...get(kx),
    ...add,
    ...get(c),
    ...mul,
    ...add,
    ...get(ch),
    ...add,
    ...set(r),
    // v = load(x + 4r); v = v & ~(v >> 31)
    ...get(x),
    ...get(r),
    ...c32(2),
    0x74, // i32.shl
    ...add,
    ...v128load,
    ...vset(v),
    ...vget(v),
    ...vget(v),
    ...c32(31),
    ...i32x4shrS,
    ...v128andnot,
    ...vset(v),
    // m = v > best; best = m ? v : best; bi = m ? (r + lane) : bi
    ...vget(v),
    ...vget(best),
    ...i32x4gtS,
    ...vset(m),
    ...vget(v),
    ...vget(best),
    ...vget(m),
    ...v128bitselect,
    ...vset(best),
    // window code ky·kw + kx (the backward adds dy at that tap)
    ...get(ky),
    ...get(kw),
    ...mul,
    ...get(kx),
    ...add,
    ...i32x4splat,
    ...vget(bi),
    ...vget(m),
    ...v128bitselect,
    ...vset(bi),
  ];
  const perChannelGroup = [
    ...v128const([0, 0, 0, 0]),
    ...vset(best),
    ...v128const([-1, -1, -1, -1]),
    ...vset(bi),
    ...loop(ky, c32(0), get(kh), c32(1), loop(kx, c32(0), get(kw), c32(1), inner)),
    // store best at out + 4o, bi at arg + 4o; o += 4
    ...get(out),
    ...get(o),
    ...c32(2),
    0x74,
    ...add,
    ...vget(best),
    ...v128store,
    ...get(arg),
    ...get(o),
    ...c32(2),
    0x74,
    ...add,
    ...vget(bi),
    ...v128store,
    ...inc(o, c32(4)),
  ];
  const body = [
    ...c32(0),
    ...set(o),
    ...loop(b, c32(0), get(n), c32(1), [
      ...get(b),
      ...get(h),
      ...mul,
      ...get(w),
      ...mul,
      ...get(c),
      ...mul,
      ...set(xb),
      ...loop(oy, c32(0), get(ho), c32(1),
        loop(ox, c32(0), get(wo), c32(1), [
          // p0 = xb + (oy·sh·w + ox·sw)·c
          ...get(xb),
          ...get(oy),
          ...get(sh),
          ...mul,
          ...get(w),
          ...mul,
          ...get(ox),
          ...get(sw),
          ...mul,
          ...add,
          ...get(c),
          ...mul,
          ...add,
          ...set(p0),
          ...loop(ch, c32(0), get(c), c32(4), perChannelGroup),
        ]),
      ),
    ]),
  ];
  return { name: 'maxPoolRelu4', params: 13, locals: { i32: 10, v128: 4 }, body };
}

/**
 * maxPoolBack4(dy, code, dx, n, h, w, c, kh, kw, sh, sw, ho, wo): dx (zeroed by the caller) +=
 * dy routed to each output's window code, four channels at a time: for every tap k the lanes
 * whose code is k add their dy there (masked adds instead of a scatter). Outputs are visited in
 * order, so every dx element sums its contributions in the same order as the JS scatter.
 */
function maxPoolBack4Func(): Func {
  const [dy, code, dx, n, h, w, c, kh, kw, sh, sw, ho, wo] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [b, oy, ox, ch, ky, kx, o, p0, a, xb] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const [g, cd] = [23, 24];
  const inner = [
    // a = dx + 4·(p0 + (ky·w + kx)·c + ch)
    ...get(dx),
    ...get(p0),
    ...get(ky),
    ...get(w),
    ...mul,
    ...get(kx),
    ...add,
    ...get(c),
    ...mul,
    ...add,
    ...get(ch),
    ...add,
    ...c32(2),
    0x74,
    ...add,
    ...set(a),
    // dx[a] += g & (cd == ky·kw + kx)
    ...get(a),
    ...get(a),
    ...v128load,
    ...get(g),
    ...get(cd),
    ...get(ky),
    ...get(kw),
    ...mul,
    ...get(kx),
    ...add,
    ...i32x4splat,
    ...simd(0x37), // i32x4.eq
    ...simd(0x4e), // v128.and
    ...f32x4add,
    ...v128store,
  ];
  const perChannelGroup = [
    ...get(dy),
    ...get(o),
    ...c32(2),
    0x74,
    ...add,
    ...v128load,
    ...set(g),
    ...get(code),
    ...get(o),
    ...c32(2),
    0x74,
    ...add,
    ...v128load,
    ...set(cd),
    ...loop(ky, c32(0), get(kh), c32(1), loop(kx, c32(0), get(kw), c32(1), inner)),
    ...inc(o, c32(4)),
  ];
  const body = [
    ...c32(0),
    ...set(o),
    ...loop(b, c32(0), get(n), c32(1), [
      ...get(b),
      ...get(h),
      ...mul,
      ...get(w),
      ...mul,
      ...get(c),
      ...mul,
      ...set(xb),
      ...loop(oy, c32(0), get(ho), c32(1),
        loop(ox, c32(0), get(wo), c32(1), [
          ...get(xb),
          ...get(oy),
          ...get(sh),
          ...mul,
          ...get(w),
          ...mul,
          ...get(ox),
          ...get(sw),
          ...mul,
          ...add,
          ...get(c),
          ...mul,
          ...add,
          ...set(p0),
          ...loop(ch, c32(0), get(c), c32(4), perChannelGroup),
        ]),
      ),
    ]),
  ];
  return { name: 'maxPoolBack4', params: 13, locals: { i32: 10, v128: 2 }, body };
}

/**
 * maxPoolGradEq4(x, y, dy, dx, n, h, w, c, kh, kw, sh, sw, ho, wo): max-pooling backward from the
 * pooling input x and output y ('valid' windows, NHWC, c a multiple of 4; dx zeroed by the
 * caller), four channels at a time: per window tap, eq = (x == y) lane-wise, the first tap that
 * matches gets dy (mask eq & ~taken), taken |= eq. f32x4.eq equates ±0 and never matches NaN,
 * i.e. the `===` rule of host/pool.ts (tfjs' first maximum). Outputs are visited in order.
 */
function maxPoolGradEq4Func(): Func {
  const [x, y, dy, dx, n, h, w, c, kh, kw, sh, sw, ho, wo] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const [b, oy, ox, ch, ky, kx, o, p0, a, xb] = [14, 15, 16, 17, 18, 19, 20, 21, 22, 23];
  const [yv, dyv, taken, eq] = [24, 25, 26, 27];
  const shl = [0x74];
  const inner = [
    // a = 4·(p0 + (ky·w + kx)·c + ch)
    ...get(p0),
    ...get(ky),
    ...get(w),
    ...mul,
    ...get(kx),
    ...add,
    ...get(c),
    ...mul,
    ...add,
    ...get(ch),
    ...add,
    ...c32(2),
    ...shl,
    ...set(a),
    // eq = x[a] == y (f32x4.eq)
    ...get(x),
    ...get(a),
    ...add,
    ...v128load,
    ...get(yv),
    ...simd(0x41),
    ...set(eq),
    // dx[a] += dy & (eq & ~taken)
    ...get(dx),
    ...get(a),
    ...add,
    ...get(dx),
    ...get(a),
    ...add,
    ...v128load,
    ...get(dyv),
    ...get(eq),
    ...get(taken),
    ...v128andnot,
    ...simd(0x4e), // v128.and
    ...f32x4add,
    ...v128store,
    // taken |= eq
    ...get(taken),
    ...get(eq),
    ...simd(0x50), // v128.or
    ...set(taken),
  ];
  const perChannelGroup = [
    ...get(y),
    ...get(o),
    ...c32(2),
    ...shl,
    ...add,
    ...v128load,
    ...set(yv),
    ...get(dy),
    ...get(o),
    ...c32(2),
    ...shl,
    ...add,
    ...v128load,
    ...set(dyv),
    ...v128const([0, 0, 0, 0]),
    ...set(taken),
    ...loop(ky, c32(0), get(kh), c32(1), loop(kx, c32(0), get(kw), c32(1), inner)),
    ...inc(o, c32(4)),
  ];
  const body = [
    ...c32(0),
    ...set(o),
    ...loop(b, c32(0), get(n), c32(1), [
      ...get(b),
      ...get(h),
      ...mul,
      ...get(w),
      ...mul,
      ...get(c),
      ...mul,
      ...set(xb),
      ...loop(oy, c32(0), get(ho), c32(1),
        loop(ox, c32(0), get(wo), c32(1), [
          ...get(xb),
          ...get(oy),
          ...get(sh),
          ...mul,
          ...get(w),
          ...mul,
          ...get(ox),
          ...get(sw),
          ...mul,
          ...add,
          ...get(c),
          ...mul,
          ...add,
          ...set(p0),
          ...loop(ch, c32(0), get(c), c32(4), perChannelGroup),
        ]),
      ),
    ]),
  ];
  return { name: 'maxPoolGradEq4', params: 14, locals: { i32: 10, v128: 4 }, body };
}

// ---------------------------------------------------------------------------------------------
// Module and arenas

/**
 * adam4(p, g, m, v, out, nBytes, scal): one Adam step on nBytes/4 floats (nBytes a multiple of
 * 16), four lanes at a time, in tfjs' operation order (engine/host/adam.ts):
 * m = m·β1 + g·(1−β1); v = v·β2 + (g·g)·(1−β2); out = ((m/c1) / (√(v/c2) + ε))·(−lr) + p.
 * Every f32x4 operation is an IEEE binary32 operation, i.e. exactly the `Math.fround` chain of the
 * JS loop. scal: 8 floats β1, 1−β1, β2, 1−β2, c1, c2, ε, −lr.
 */
function adam4Func(): Func {
  const [p, g, m, v, out, nBytes, scal] = [0, 1, 2, 3, 4, 5, 6];
  const i = 7;
  const [b1, omb1, b2, omb2, c1, c2, eps, nlr, gi, mi, vi] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
  const splat = (k: number): Code => [...get(scal), ...simd(0x09), ...mem(2).slice(0, 1), ...uleb(4 * k)];
  const [f4sqrt, f4add, f4mul, f4div] = [simd(0xe3), simd(0xe4), simd(0xe6), simd(0xe7)];
  const tee = (k: number): Code => [0x22, ...uleb(k)];
  const at = (base: number): Code => [...get(base), ...get(i), ...add];
  const body = [
    ...[b1, omb1, b2, omb2, c1, c2, eps, nlr].flatMap((loc, k) => [...splat(k), ...set(loc)]),
    ...loop(i, c32(0), get(nBytes), c32(16), [
      ...at(g),
      ...v128load,
      ...set(gi),
      // m = m·β1 + g·(1−β1)
      ...at(m),
      ...at(m),
      ...v128load,
      ...get(b1),
      ...f4mul,
      ...get(gi),
      ...get(omb1),
      ...f4mul,
      ...f4add,
      ...tee(mi),
      ...v128store,
      // v = v·β2 + (g·g)·(1−β2)
      ...at(v),
      ...at(v),
      ...v128load,
      ...get(b2),
      ...f4mul,
      ...get(gi),
      ...get(gi),
      ...f4mul,
      ...get(omb2),
      ...f4mul,
      ...f4add,
      ...tee(vi),
      ...v128store,
      // out = ((m/c1) / (√(v/c2) + ε))·(−lr) + p
      ...at(out),
      ...get(mi),
      ...get(c1),
      ...f4div,
      ...get(vi),
      ...get(c2),
      ...f4div,
      ...f4sqrt,
      ...get(eps),
      ...f4add,
      ...f4div,
      ...get(nlr),
      ...f4mul,
      ...at(p),
      ...v128load,
      ...f4add,
      ...v128store,
    ]),
  ];
  return { name: 'adam4', params: 7, locals: { i32: 1, v128: 11 }, body };
}

/**
 * dropMask4(out, groups, perBytes, seeds, threshold, keepBits): inverted-dropout masks of
 * 4·groups rows of perBytes/4 floats each, one mulberry32 stream per row (the seeds, 4 per group,
 * at `seeds`), four rows per vector: lane k of group g draws row 4g + k. Value keepBits (the
 * float 1/(1 − rate)) where the unsigned draw ≥ threshold, else +0 — the int32 JS loop of
 * host/dropout.ts bit for bit.
 */
function dropMask4Func(): Func {
  const [out, groups, perBytes, seeds, thr, keepBits] = [0, 1, 2, 3, 4, 5];
  const [g, i, base, addr] = [6, 7, 8, 9];
  const [sv, tv, thrV, keepV] = [10, 11, 12, 13];
  const [i4add, i4mul, i4shrU, vxor, vor, vand, i4geU] = [simd(0xae), simd(0xb5), simd(0xad), simd(0x51), simd(0x50), simd(0x4e), simd(0x40)];
  const store32Lane = (lane: number): Code => [...simd(0x5a), ...mem(2), lane];
  const splatC = (v: number): Code => v128const([v, v, v, v]);
  // t op (t >>> k)
  const xorShr = (loc: number, k: number): Code => [...get(loc), ...get(loc), ...c32(k), ...i4shrU, ...vxor];
  const lane = (k: number): Code => [...get(addr), ...c32(k), ...get(perBytes), ...mul, ...add, 0x20, ...uleb(tv), ...store32Lane(k)];
  const body = [
    ...get(thr),
    ...i32x4splat,
    ...set(thrV),
    ...get(keepBits),
    ...i32x4splat,
    ...set(keepV),
    ...loop(g, c32(0), get(groups), c32(1), [
      ...get(seeds),
      ...get(g),
      ...c32(16),
      ...mul,
      ...add,
      ...v128load,
      ...set(sv),
      ...get(out),
      ...get(g),
      ...get(perBytes),
      ...mul,
      ...c32(4),
      ...mul,
      ...add,
      ...set(base),
      ...loop(i, c32(0), get(perBytes), c32(4), [
        // s = s + 0x6d2b79f5
        ...get(sv),
        ...splatC(0x6d2b79f5),
        ...i4add,
        ...set(sv),
        // t = imul(s ^ (s >>> 15), s | 1)
        ...xorShr(sv, 15),
        ...get(sv),
        ...splatC(1),
        ...vor,
        ...i4mul,
        ...set(tv),
        // t = t ^ (t + imul(t ^ (t >>> 7), t | 61))
        ...get(tv),
        ...get(tv),
        ...xorShr(tv, 7),
        ...get(tv),
        ...splatC(61),
        ...vor,
        ...i4mul,
        ...i4add,
        ...vxor,
        ...set(tv),
        // mask = (t ^ (t >>> 14)) >=u threshold ? keepBits : 0
        ...xorShr(tv, 14),
        ...get(thrV),
        ...i4geU,
        ...get(keepV),
        ...vand,
        ...set(tv),
        ...get(base),
        ...get(i),
        ...add,
        ...set(addr),
        ...lane(0),
        ...lane(1),
        ...lane(2),
        ...lane(3),
      ]),
    ]),
  ];
  return { name: 'dropMask4', params: 6, locals: { i32: 4, v128: 4 }, body };
}

interface Exports {
  dropMask4(out: number, groups: number, perBytes: number, seeds: number, threshold: number, keepBits: number): void;
  adam4(p: number, g: number, m: number, v: number, out: number, nBytes: number, scal: number): void;
  copyRuns(dst: number, src: number, tab: number, tabBytes: number, runBytes: number, samples: number, srcStride: number): void;
  addRuns(dst: number, src: number, tab: number, tabBytes: number, runBytes: number, samples: number, srcStride: number): void;
  maxPoolRelu4(x: number, out: number, code: number, n: number, h: number, w: number, c: number, kh: number, kw: number, sh: number, sw: number, ho: number, wo: number): void;
  maxPoolBack4(dy: number, code: number, dx: number, n: number, h: number, w: number, c: number, kh: number, kw: number, sh: number, sw: number, ho: number, wo: number): void;
  maxPoolGradEq4(x: number, y: number, dy: number, dx: number, n: number, h: number, w: number, c: number, kh: number, kw: number, sh: number, sw: number, ho: number, wo: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (process?.env?.DPLENS_NO_SIMD) return compiled;
  try {
    const bytes = assemble([copyRunsFunc(false), copyRunsFunc(true), maxPoolRelu4Func(), maxPoolBack4Func(), maxPoolGradEq4Func(), adam4Func(), dropMask4Func()]);
    if (typeof WebAssembly === 'object' && WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  } catch {
    compiled = null;
  }
  return compiled;
}

/** True when the WebAssembly SIMD kernels can run here (else callers use their JS loops). */
export function simdAvailable(): boolean {
  return module() !== null;
}

const PAGE = 65536;
/** wasm32 limit: 65536 pages of 64 KiB = 4 GiB. */
const MAX_PAGES = 65536;

/** One WebAssembly memory with the kernels bound to it, carved into named regions per step. */
export class HostArena {
  readonly memory: WebAssembly.Memory;
  readonly k: Exports;
  f32: Float32Array;
  i32: Int32Array;
  constructor() {
    const m = module();
    if (!m) throw new Error('WebAssembly SIMD is not available');
    this.memory = new WebAssembly.Memory({ initial: 1 });
    this.k = new WebAssembly.Instance(m, { env: { mem: this.memory } }).exports as unknown as Exports;
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }
  /**
   * Lays out regions of the given sizes (in 4-byte elements, each 16-byte aligned) and returns
   * their element offsets. Grows the memory when needed, which invalidates all earlier views.
   * Returns undefined when the memory cannot grow that far (wasm32 tops out at 4 GiB): callers
   * then take their JS path.
   */
  reserve(sizes: number[]): number[] | undefined {
    const offs: number[] = [];
    let end = 0;
    for (const s of sizes) {
      offs.push(end);
      end += Math.ceil(s / 4) * 4;
    }
    const bytes = end * 4;
    if (bytes > this.memory.buffer.byteLength) {
      // 25% headroom: Poisson batch sizes fluctuate from step to step
      const have = this.memory.buffer.byteLength / PAGE;
      if (Math.ceil(bytes / PAGE) > MAX_PAGES) return undefined;
      try {
        this.memory.grow(Math.min(MAX_PAGES, Math.ceil((bytes * 1.25) / PAGE)) - have);
      } catch {
        return undefined; // the engine refused the allocation
      }
      this.f32 = new Float32Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
    }
    return offs;
  }
}
