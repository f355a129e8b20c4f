import { unzipSync, zipSync, type Zippable } from 'fflate';
import { readFileBytes, writeFileBytes } from './fs.js';
import { DataError } from './types.js';

/**
 * NumPy `.npy` / `.npz` reader and writer (format spec: numpy/lib/format.py, versions 1.0–3.0).
 *
 * A `.npy` file is: magic `\x93NUMPY`, major and minor version bytes, the header length (uint16 LE
 * for v1, uint32 LE for v2/v3), an ASCII (v3: UTF-8) Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a newline so
 * the data starts on a 64-byte boundary, then the raw element bytes. A `.npz` is a zip archive of
 * `<name>.npy` members (stored or deflated). We write v1.0 little-endian C-order files that
 * `numpy.load` reads; we read any byte order and Fortran order (converted to C order).
 */

export type NpyDtype = 'bool' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';

export type NpyData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/**
 * One array. On read, `data` is the typed array matching `dtype` (bool → Uint8Array of 0/1,
 * int64 → BigInt64Array so values are exact). On write, `data` may be any typed array or number
 * array whose values fit `dtype` exactly; they are converted and range-checked.
 */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: NpyData;
}

/** What writeNpy/writeNpz accept: like NpyArray, but data may be any numeric array. */
export interface NpyArrayInput {
  dtype: NpyDtype;
  shape: readonly number[];
  data: NpyData | ArrayLike<number>;
}

interface DtypeInfo {
  bytes: number;
  /** numpy type character(s) after the byte-order mark. */
  code: string;
  make: (n: number) => NpyData;
  min?: number;
  max?: number;
  integer: boolean;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  bool: { bytes: 1, code: 'b1', make: (n) => new Uint8Array(n), min: 0, max: 1, integer: true },
  int8: { bytes: 1, code: 'i1', make: (n) => new Int8Array(n), min: -128, max: 127, integer: true },
  uint8: { bytes: 1, code: 'u1', make: (n) => new Uint8Array(n), min: 0, max: 255, integer: true },
  int16: { bytes: 2, code: 'i2', make: (n) => new Int16Array(n), min: -32768, max: 32767, integer: true },
  uint16: { bytes: 2, code: 'u2', make: (n) => new Uint16Array(n), min: 0, max: 65535, integer: true },
  int32: { bytes: 4, code: 'i4', make: (n) => new Int32Array(n), min: -2147483648, max: 2147483647, integer: true },
  uint32: { bytes: 4, code: 'u4', make: (n) => new Uint32Array(n), min: 0, max: 4294967295, integer: true },
  int64: { bytes: 8, code: 'i8', make: (n) => new BigInt64Array(n), min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, integer: true },
  uint64: { bytes: 8, code: 'u8', make: (n) => new BigUint64Array(n), min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
  float32: { bytes: 4, code: 'f4', make: (n) => new Float32Array(n), integer: false },
  float64: { bytes: 8, code: 'f8', make: (n) => new Float64Array(n), integer: false },
};

const CODE_TO_DTYPE: Record<string, NpyDtype> = Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [v.code, k as NpyDtype]));
// numpy also spells bool as '?' and bytes as 'b'/'B' in some contexts.
CODE_TO_DTYPE['?'] = 'bool';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Number of elements in a shape (1 for a scalar, shape []). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------- header dict parsing

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Minimal parser for the Python literal subset numpy writes in headers (dicts, tuples, lists, str, int, bool, None). */
function parsePyLiteral(src: string, file: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new DataError(`${file}: malformed .npy header (${what} at offset ${i}): ${JSON.stringify(src.slice(0, 120))}`);
  };
  const ws = () => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      const obj: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (src[i] === '}') {
          i++;
          return obj;
        }
        const k = value();
        if (typeof k !== 'string') fail('non-string dict key');
        ws();
        if (src[i] !== ':') fail("expected ':'");
        i++;
        obj[k as string] = value();
        ws();
        if (src[i] === ',') i++;
        else if (src[i] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const arr: PyValue[] = [];
      for (;;) {
        ws();
        if (src[i] === close) {
          i++;
          return arr;
        }
        arr.push(value());
        ws();
        if (src[i] === ',') i++;
        else if (src[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const q = c;
      i++;
      let s = '';
      while (i < src.length && src[i] !== q) {
        if (src[i] === '\\') i++;
        s += src[i++];
      }
      if (i >= src.length) fail('unterminated string');
      i++;
      return s;
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(src.slice(i));
    if (!m) return fail('unexpected token');
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number.parseInt(m[0], 10);
  };
  const v = value();
  ws();
  if (i !== src.length) fail('trailing characters');
  return v;
}

interface NpyHeader {
  dtype: NpyDtype;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  dataOffset: number;
}

function parseHeader(buf: Uint8Array, file: string): NpyHeader {
  if (buf.length < 10) throw new DataError(`${file}: truncated .npy file (${buf.length} bytes, no header)`);
  for (let k = 0; k < MAGIC.length; k++) {
    if (buf[k] !== MAGIC[k]) {
      throw new DataError(`${file}: wrong magic number 0x${Buffer.from(buf.subarray(0, 6)).toString('hex')} (expected 0x934e554d5059, "\\x93NUMPY"): not a .npy file`);
    }
  }
  const major = buf[6]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new DataError(`${file}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new DataError(`${file}: unsupported .npy format version ${major}.${buf[7]}`);
  }
  if (buf.length < start + headerLen) throw new DataError(`${file}: truncated .npy header (needs ${headerLen} bytes, file has ${buf.length - start})`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(start, start + headerLen)).trim();
  const dict = parsePyLiteral(text, file);
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw new DataError(`${file}: .npy header is not a dict: ${text}`);
  const { descr, fortran_order: fortranOrder, shape } = dict;
  if (typeof descr !== 'string') throw new DataError(`${file}: .npy header has no string 'descr' (structured dtypes are not supported): ${text}`);
  if (typeof fortranOrder !== 'boolean') throw new DataError(`${file}: .npy header has no boolean 'fortran_order': ${text}`);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    throw new DataError(`${file}: .npy header has an invalid 'shape': ${text}`);
  }
  const order = descr[0]!;
  let code = descr;
  let littleEndian = true;
  if (order === '<' || order === '>' || order === '|' || order === '=') {
    code = descr.slice(1);
    littleEndian = order !== '>';
  }
  const dtype = CODE_TO_DTYPE[code];
  if (!dtype) throw new DataError(`${file}: unsupported .npy dtype '${descr}' (supported: bool, int8/16/32/64, uint8/16/32/64, float32, float64)`);
  return { dtype, littleEndian, fortranOrder, shape: shape as number[], dataOffset: start + headerLen };
}

/** Converts a Fortran-order (column-major) flat array to C order (row-major). */
function fortranToC<T extends NpyData>(src: T, shape: number[], make: (n: number) => NpyData): T {
  const n = src.length;
  const rank = shape.length;
  if (rank < 2) return src;
  const out = make(n) as T;
  // Strides of the Fortran layout: first axis varies fastest.
  const fStrides = new Array<number>(rank);
  let s = 1;
  for (let a = 0; a < rank; a++) {
    fStrides[a] = s;
    s *= shape[a]!;
  }
  const idx = new Array<number>(rank).fill(0);
  for (let c = 0; c < n; c++) {
    let f = 0;
    for (let a = 0; a < rank; a++) f += idx[a]! * fStrides[a]!;
    (out as unknown as Record<number, number | bigint>)[c] = (src as unknown as Record<number, number | bigint>)[f]!;
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Parses the bytes of one .npy file. `file` names it in error messages. */
export function parseNpy(buf: Uint8Array, file: string): NpyArray {
  const h = parseHeader(buf, file);
  const info = DTYPES[h.dtype];
  const count = shapeSize(h.shape);
  const need = count * info.bytes;
  const have = buf.length - h.dataOffset;
  if (have < need) throw new DataError(`${file}: truncated file: header promises shape (${h.shape.join(', ')}) of ${h.dtype} = ${need} bytes of data, found ${have}`);
  if (have > need) throw new DataError(`${file}: ${have - need} unexpected trailing bytes after shape (${h.shape.join(', ')}) ${h.dtype} data`);
  // Copy into a fresh, aligned buffer (the data offset inside a zip member is rarely aligned).
  const bytes = new Uint8Array(need);
  bytes.set(buf.subarray(h.dataOffset, h.dataOffset + need));
  if (!h.littleEndian && info.bytes > 1) {
    for (let p = 0; p < need; p += info.bytes) bytes.subarray(p, p + info.bytes).reverse();
  }
  let data: NpyData;
  switch (h.dtype) {
    case 'bool':
    case 'uint8':
      data = bytes;
      if (h.dtype === 'bool') {
        for (let k = 0; k < bytes.length; k++) if (bytes[k]! > 1) bytes[k] = 1;
      }
      break;
    case 'int8':
      data = new Int8Array(bytes.buffer);
      break;
    case 'int16':
      data = new Int16Array(bytes.buffer);
      break;
    case 'uint16':
      data = new Uint16Array(bytes.buffer);
      break;
    case 'int32':
      data = new Int32Array(bytes.buffer);
      break;
    case 'uint32':
      data = new Uint32Array(bytes.buffer);
      break;
    case 'int64':
      data = new BigInt64Array(bytes.buffer);
      break;
    case 'uint64':
      data = new BigUint64Array(bytes.buffer);
      break;
    case 'float32':
      data = new Float32Array(bytes.buffer);
      break;
    case 'float64':
      data = new Float64Array(bytes.buffer);
      break;
  }
  if (h.fortranOrder) data = fortranToC(data, h.shape, info.make);
  return { dtype: h.dtype, shape: h.shape, data };
}

/** Reads one .npy file. */
export function readNpy(file: string): NpyArray {
  return parseNpy(readBytes(file), file);
}

// ---------------------------------------------------------------- writing

/** Converts `data` to the typed array for `dtype`, checking that every value is representable. */
function toDtype(a: NpyArrayInput, name: string): NpyData {
  const info = DTYPES[a.dtype];
  if (!info) throw new DataError(`${name}: unknown dtype '${String(a.dtype)}'`);
  for (const d of a.shape) {
    if (!Number.isInteger(d) || d < 0) throw new DataError(`${name}: invalid shape [${a.shape.join(', ')}]`);
  }
  const n = shapeSize(a.shape);
  if (a.data.length !== n) throw new DataError(`${name}: shape [${a.shape.join(', ')}] needs ${n} elements, data has ${a.data.length}`);
  const src = a.data as ArrayLike<number | bigint>;
  const out = info.make(n);
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let k = 0; k < n; k++) {
      const v = src[k]!;
      if (typeof v === 'bigint') {
        (out as BigInt64Array)[k] = v;
        if ((out as BigInt64Array)[k] !== v) throw new DataError(`${name}: value ${v} at index ${k} does not fit ${a.dtype}`);
      } else {
        if (!Number.isInteger(v) || v < info.min! || v > info.max!) throw new DataError(`${name}: value ${v} at index ${k} is not an exact ${a.dtype}`);
        (out as BigInt64Array)[k] = BigInt(v);
      }
    }
    return out;
  }
  if (src.constructor === out.constructor && a.dtype !== 'bool') {
    (out as Float64Array).set(src as Float64Array);
    return out;
  }
  const o = out as Float64Array;
  for (let k = 0; k < n; k++) {
    const v = Number(src[k]!);
    if (info.integer) {
      if (!Number.isInteger(v) || v < info.min! || v > info.max!) throw new DataError(`${name}: value ${v} at index ${k} is not an exact ${a.dtype}`);
    }
    o[k] = v;
  }
  return out;
}

/** Encodes one array as .npy bytes (format 1.0, little-endian, C order). */
export function encodeNpy(a: NpyArrayInput, name = 'array'): Uint8Array {
  const data = toDtype(a, name);
  const info = DTYPES[a.dtype];
  const descr = (info.bytes === 1 ? '|' : '<') + info.code;
  const shapeStr = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad so magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64, as numpy does.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  if (total - 10 > 65535) throw new DataError(`${name}: .npy header too long (rank ${a.shape.length})`);
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const bytes = new Uint8Array(total + data.byteLength);
  bytes.set(MAGIC, 0);
  bytes[6] = 1;
  bytes[7] = 0;
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  for (let k = 0; k < header.length; k++) bytes[10 + k] = header.charCodeAt(k);
  // Typed arrays are little-endian on every platform Node supports (x86, ARM).
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return bytes;
}

export function writeNpy(file: string, a: NpyArrayInput): void {
  writeFileBytes(file, encodeNpy(a, file));
}

// ---------------------------------------------------------------- npz

const readBytes = readFileBytes;

/** Parses the bytes of an .npz archive into arrays keyed by name (without `.npy`). */
export function parseNpz(buf: Uint8Array, file: string): Record<string, NpyArray> {
  if (buf.length < 4 || buf[0] !== 0x50 || buf[1] !== 0x4b) {
    const head = Buffer.from(buf.subarray(0, 4)).toString('hex');
    throw new DataError(`${file}: not a zip/.npz archive (wrong magic number 0x${head}, expected 0x504b "PK")`);
  }
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(buf);
  } catch (e) {
    throw new DataError(`${file}: corrupt zip/.npz archive (${(e as Error).message})`);
  }
  const out: Record<string, NpyArray> = {};
  for (const [member, bytes] of Object.entries(members)) {
    if (member.endsWith('/')) continue;
    if (!member.endsWith('.npy')) throw new DataError(`${file}: unexpected member '${member}' (an .npz holds only .npy files)`);
    out[member.slice(0, -4)] = parseNpy(bytes, `${file}:${member}`);
  }
  if (Object.keys(out).length === 0) throw new DataError(`${file}: empty .npz archive (no arrays)`);
  return out;
}

/** Reads an .npz archive (numpy.savez or savez_compressed). */
export function readNpz(file: string): Record<string, NpyArray> {
  return parseNpz(readBytes(file), file);
}

/** Encodes arrays as an .npz archive; `compress` (default true) deflates members like numpy.savez_compressed. */
export function encodeNpz(arrays: Record<string, NpyArrayInput>, opts: { compress?: boolean } = {}, file = 'npz'): Uint8Array {
  const entries: Zippable = {};
  const names = Object.keys(arrays);
  if (names.length === 0) throw new DataError(`${file}: no arrays to write`);
  for (const name of names) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new DataError(`${file}: invalid array name '${name}' (use letters, digits, _ . -)`);
    entries[`${name}.npy`] = [encodeNpy(arrays[name]!, `${file}:${name}`), { level: opts.compress === false ? 0 : 6 }];
  }
  // A fixed timestamp makes the archive bytes a pure function of the arrays (reproducible outputs).
  return zipSync(entries, { mtime: new Date('1980-01-01T00:00:00Z') });
}

/** Writes an .npz archive that numpy.load reads. */
export function writeNpz(file: string, arrays: Record<string, NpyArrayInput>, opts: { compress?: boolean } = {}): void {
  writeFileBytes(file, encodeNpz(arrays, opts, file));
}

/** Fetches a named array from an npz result, with an error that lists what the archive does hold. */
export function requireArray(arrays: Record<string, NpyArray>, name: string, file: string): NpyArray {
  const a = arrays[name];
  if (!a) throw new DataError(`${file}: missing array '${name}' (archive holds: ${Object.keys(arrays).sort().join(', ') || 'nothing'})`);
  return a;
}

/** Converts an integer array (any int/uint/bool dtype, int64 included) to Int32Array, checking range. */
export function toInt32Array(a: NpyArray, what: string): Int32Array {
  if (a.dtype === 'float32' || a.dtype === 'float64') {
    const out = new Int32Array(a.data.length);
    const d = a.data as Float64Array;
    for (let k = 0; k < d.length; k++) {
      const v = d[k]!;
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) throw new DataError(`${what}: value ${v} at index ${k} is not an integer`);
      out[k] = v;
    }
    return out;
  }
  if (a.data instanceof Int32Array) return a.data;
  const out = new Int32Array(a.data.length);
  const d = a.data as ArrayLike<number | bigint>;
  for (let k = 0; k < d.length; k++) {
    const v = Number(d[k]!);
    if (v < -2147483648 || v > 2147483647) throw new DataError(`${what}: value ${d[k]} at index ${k} does not fit int32`);
    out[k] = v;
  }
  return out;
}
