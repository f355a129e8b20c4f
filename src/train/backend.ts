/**
 * Backend start-up for train entry points: the engine's `initEngine()` (ONNX Runtime kernels)
 * when it exists, else tfjs' plain CPU backend, so this layer never depends on which is active.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

let started: Promise<string> | undefined;

/** Starts the compute backend once; `backend: 'cpu'` forces the reference tfjs CPU backend. */
export function ensureEngine(opts: { backend?: string; threads?: number } = {}): Promise<string> {
  started ??= (async () => {
    const engine = (await import('../engine/index.js')) as { initEngine?: (o?: { backend?: string; threads?: number }) => Promise<string> };
    if (typeof engine.initEngine === 'function' && opts.backend !== 'cpu') return engine.initEngine(opts);
    await tf.setBackend('cpu');
    await tf.ready();
    return tf.getBackend();
  })();
  return started;
}
