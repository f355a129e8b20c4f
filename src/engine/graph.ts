// Small helpers to build per-kernel ONNX graphs and to move tensors between the tfjs CPU data
// store and ONNX Runtime without copying.
import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { attr, OnnxType, type AttrValue, type InitTensor, type OnnxGraph, type OnnxNode, type OnnxTypeCode, type ValueInfo } from './onnx-proto.js';
import type { OrtData, OrtDType, OrtIn } from './ort-runtime.js';

export { attr };

export function onnxType(dtype: DataType | OrtDType): OnnxTypeCode {
  switch (dtype) {
    case 'float32':
      return OnnxType.FLOAT;
    case 'int32':
      return OnnxType.INT32;
    case 'bool':
      return OnnxType.BOOL;
    case 'int64':
      return OnnxType.INT64;
    case 'uint8':
      return OnnxType.UINT8;
    default:
      throw new Error(`engine: no ONNX type for dtype ${dtype}`);
  }
}

/** Graph builder: inputs are named i0, i1, ... in the order given, outputs o0, o1, ... */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly inits: InitTensor[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private counter = 0;

  /** Declares the next graph input. dims: number (fixed) or string (symbolic); default all symbolic. */
  input(type: DataType | OrtDType, rankOrDims: number | readonly (number | string)[]): string {
    const name = `i${this.inputs.length}`;
    const dims = typeof rankOrDims === 'number' ? Array.from({ length: rankOrDims }, (_, k) => `${name}_${k}`) : rankOrDims;
    this.inputs.push({ name, type: onnxType(type), dims });
    return name;
  }

  tmp(): string {
    return `t${this.counter++}`;
  }

  op(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, domain?: string): string {
    const out = this.tmp();
    this.nodes.push({ op, inputs, outputs: [out], attrs, domain });
    return out;
  }

  opN(op: string, inputs: readonly string[], nOut: number, attrs?: Record<string, AttrValue>, domain?: string): string[] {
    const outs = Array.from({ length: nOut }, () => this.tmp());
    this.nodes.push({ op, inputs, outputs: outs, attrs, domain });
    return outs;
  }

  constI64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.tmp();
    this.inits.push({ name, type: OnnxType.INT64, dims, values });
    return name;
  }

  constF32(values: readonly number[], dims: readonly number[] = []): string {
    const name = this.tmp();
    this.inits.push({ name, type: OnnxType.FLOAT, dims, values });
    return name;
  }

  constOf(type: DataType, values: readonly number[], dims: readonly number[] = []): string {
    const name = this.tmp();
    this.inits.push({ name, type: onnxType(type), dims, values });
    return name;
  }

  transpose(x: string, perm: readonly number[]): string {
    return this.op('Transpose', [x], { perm: attr.ints(perm) });
  }

  /** Marks `value` as the next graph output (by inserting an Identity under the output name). */
  output(value: string, type: DataType | OrtDType): void {
    const name = `o${this.outputs.length}`;
    this.nodes.push({ op: 'Identity', inputs: [value], outputs: [name] });
    this.outputs.push({ name, type: onnxType(type) });
  }

  build(opset = 18): OnnxGraph {
    return { nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers: this.inits, opset };
  }
}

export type Values = OrtData | string[] | Uint8Array[];

export function ortDType(dtype: DataType): OrtDType | undefined {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'bool' ? dtype : undefined;
}

/**
 * tfjs tensors normally store float32 in Float32Array, int32 in Int32Array and bool in
 * Uint8Array, but some CPU kernels leave e.g. an int32 tensor backed by a Float32Array.
 * ONNX Runtime checks the array type, so those (rare) cases are converted here.
 */
export function feed(t: TensorInfo, values: Values): OrtIn {
  let data = values as OrtData;
  switch (t.dtype) {
    case 'float32':
      if (!(data instanceof Float32Array)) data = Float32Array.from(data as ArrayLike<number>);
      break;
    case 'int32':
      if (!(data instanceof Int32Array)) data = Int32Array.from(data as ArrayLike<number>);
      break;
    case 'bool':
      if (!(data instanceof Uint8Array)) data = Uint8Array.from(data as ArrayLike<number>);
      break;
    default:
      throw new Error(`engine: cannot pass a ${t.dtype} tensor to ONNX Runtime`);
  }
  return { type: t.dtype as OrtDType, data, dims: t.shape };
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
