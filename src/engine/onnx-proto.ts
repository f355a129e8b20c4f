// Minimal protobuf writer for the parts of the ONNX schema (onnx.proto3) that the engine's
// per-kernel models need: ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto. Writing the wire format directly avoids a protobuf dependency; only the
// field numbers below matter, and they are fixed by the ONNX spec.

/** ONNX TensorProto.DataType values used by the engine. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  DOUBLE: 11,
} as const;
export type OnnxTypeCode = (typeof OnnxType)[keyof typeof OnnxType];

class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(v: number | bigint): void {
    // int64 fields: negative values are written as 10-byte two's complement.
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'tensor'; value: InitTensor };

export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
  ints: (value: readonly number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: readonly number[]): AttrValue => ({ kind: 'floats', value }),
  tensor: (value: InitTensor): AttrValue => ({ kind: 'tensor', value }),
};

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

/** A constant tensor embedded in the model (weights, axes, shapes). */
export interface InitTensor {
  name: string;
  type: OnnxTypeCode;
  dims: readonly number[];
  /** Values; int64 values are given as numbers and written as int64. */
  values: ArrayLike<number>;
}

/** A graph input/output: element type and dims (number = fixed size, string = symbolic dim_param). */
export interface ValueInfo {
  name: string;
  type: OnnxTypeCode;
  /** Omitted: rank unknown (outputs whose shape ONNX Runtime infers). */
  dims?: readonly (number | string)[];
}

export interface OnnxGraph {
  nodes: readonly OnnxNode[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  initializers?: readonly InitTensor[];
  /** opset version for the default domain (defaults to 18). */
  opset?: number;
}

function writeTensor(w: Writer, t: InitTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.type);
  w.string(8, t.name);
  const n = t.values.length;
  let raw: Uint8Array;
  switch (t.type) {
    case OnnxType.FLOAT: {
      const a = Float32Array.from(t.values);
      raw = new Uint8Array(a.buffer);
      break;
    }
    case OnnxType.DOUBLE: {
      const a = Float64Array.from(t.values);
      raw = new Uint8Array(a.buffer);
      break;
    }
    case OnnxType.INT32: {
      const a = Int32Array.from(t.values);
      raw = new Uint8Array(a.buffer);
      break;
    }
    case OnnxType.INT64: {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = BigInt(Math.trunc(t.values[i]));
      raw = new Uint8Array(a.buffer);
      break;
    }
    case OnnxType.UINT8:
    case OnnxType.BOOL:
    case OnnxType.INT8: {
      const a = t.type === OnnxType.INT8 ? Int8Array.from(t.values) : Uint8Array.from(t.values);
      raw = new Uint8Array(a.buffer);
      break;
    }
    default:
      throw new Error(`onnx-proto: unsupported initializer type ${String(t.type)}`);
  }
  w.bytes(9, raw);
}

function writeAttr(w: Writer, name: string, a: AttrValue): void {
  w.string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case 'int':
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case 'string':
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case 'tensor':
      w.message(5, (t) => writeTensor(t, a.value));
      w.int(20, 4);
      break;
    case 'floats':
      for (const v of a.value) w.float(7, v);
      w.int(20, 6);
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
  }
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) => {
    type.message(1, (tt) => {
      tt.int(1, v.type);
      const dims = v.dims;
      if (!dims) return;
      tt.message(2, (shape) => {
        for (const d of dims) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    });
  });
}

/** Serialises a single-graph ONNX model (IR version 8, default opset 18 plus com.microsoft 1). */
export function encodeModel(g: OnnxGraph): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'dplens-engine');
  w.message(7, (gw) => {
    g.nodes.forEach((n, i) => {
      gw.message(1, (nw) => {
        for (const s of n.inputs) nw.string(1, s);
        for (const s of n.outputs) nw.string(2, s);
        nw.string(3, `n${i}`);
        nw.string(4, n.op);
        for (const [k, v] of Object.entries(n.attrs ?? {})) nw.message(5, (aw) => writeAttr(aw, k, v));
        if (n.domain) nw.string(7, n.domain);
      });
    });
    gw.string(2, 'g');
    for (const t of g.initializers ?? []) gw.message(5, (tw) => writeTensor(tw, t));
    for (const v of g.inputs) gw.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of g.outputs) gw.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, g.opset ?? 18);
  });
  w.message(8, (o) => {
    o.string(1, 'com.microsoft');
    o.int(2, 1);
  });
  return w.finish();
}
