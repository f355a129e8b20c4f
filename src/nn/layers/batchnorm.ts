// BatchNorm: registered only to refuse it with an explanation (it breaks per-sample gradients).
import { ModelError } from '../module.js';
import { registerLayer } from './registry.js';

/** Rejected: BatchNorm's statistics mix examples of a batch, so per-sample gradients (and DP) break. */
export class BatchNorm {
  constructor() {
    throw new ModelError(
      'BatchNorm is not supported for DP training: its batch statistics mix examples, so one example influences every other example\'s output and per-sample gradient clipping no longer bounds its influence. Use GroupNorm (e.g. groups=min(32, channels)), LayerNorm or InstanceNorm instead.',
    );
  }
}

registerLayer({
  types: ['batchnorm', 'batchnormalization'],
  build: () => new BatchNorm() as never,
});
