/**
 * Library helpers of synthesis that need no run folder. The job runner (`runSynthesis`: config,
 * ledger, run.json, metrics, synthetic.npz, generator checkpoints) lives in src/runs/synth.ts.
 */
import { loadDataset, resolveDataFlag, type ImageDataset } from '../data/index.js';

/**
 * @deprecated The one dataset loader is data's `loadDataset(spec)`: call
 * `loadDataset(resolveDataFlag(name, dataPath))` (or pass numClasses/classNames in the spec).
 * Kept as a thin alias so existing callers compile.
 */
export async function loadNamedDataset(name: string, dataPath?: string): Promise<ImageDataset> {
  return loadDataset(resolveDataFlag(name, dataPath));
}
