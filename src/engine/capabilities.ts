// What the active tfjs backend can do, so code above the engine asks for a capability instead of
// comparing backend names. No ONNX Runtime import: nn/ layers use this in the browser too.
import * as tf from '@tensorflow/tfjs-core';

export interface EngineCapabilities {
  /** Tensors live in host memory, so dataSync() is a free read (host loops beat extra kernels). */
  hostMemory: boolean;
  /** Conv2DBackpropInput runs natively and beats the host col2im path for undilated kernels. */
  nativeConvBackpropInput: boolean;
  /** The fused ReLU-gradient kernel (DplensReluBackprop) is registered for this backend. */
  fusedReluBackprop: boolean;
  /** Kernels run on ONNX Runtime sessions (raw-session benchmarks apply). */
  onnxRuntime: boolean;
}

const NONE: EngineCapabilities = Object.freeze({ hostMemory: false, nativeConvBackpropInput: false, fusedReluBackprop: false, onnxRuntime: false });

// tfjs' reference CPU backend keeps tensors in host memory and has no native kernels.
const table = new Map<string, EngineCapabilities>([['cpu', Object.freeze({ ...NONE, hostMemory: true })]]);

/** Declares what backend `name` can do (a backend registers this next to its kernels). */
export function declareBackendCapabilities(name: string, caps: Partial<EngineCapabilities>): void {
  table.set(name, Object.freeze({ ...NONE, ...caps }));
}

/** Capabilities of the active backend (or of `backend`); unknown backends have none. */
export function engineCapabilities(backend: string = tf.getBackend()): EngineCapabilities {
  return table.get(backend) ?? NONE;
}
