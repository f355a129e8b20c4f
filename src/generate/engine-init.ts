/**
 * Starts the tensor engine once per process: the engine layer's initEngine() (ONNX Runtime backed)
 * when it is available, otherwise tfjs's pure-JS CPU backend. The engine module also registers the
 * tfjs gradients (tfjs-core's Node entry has none), so import it before any tf.grads call.
 */
import * as tf from '@tensorflow/tfjs-core';

let started: Promise<string> | undefined;

export function ensureEngine(opts: { threads?: number; backend?: string } = {}): Promise<string> {
  started ??= (async () => {
    const eng = (await import('../engine/index.js')) as { initEngine?: (o?: { backend?: string; threads?: number }) => Promise<string> };
    if (typeof eng.initEngine === 'function') return eng.initEngine(opts);
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    await tf.ready();
    return tf.getBackend();
  })();
  return started;
}
