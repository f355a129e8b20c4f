/**
 * TEMPORARY shim: the DP-SGD job runner moved to src/runs/train.ts (issue 13: runners live in
 * runs/, libraries do no run-folder I/O). This re-export keeps callers that still import
 * runTraining from train/ compiling until they switch to '../runs/train.js'; delete it then
 * (it is an upward import, train → runs).
 */
// eslint-disable-next-line no-restricted-imports -- TEMPORARY shim until audit/mia-train.ts imports runs/train.js (see /tmp/notes/train.md)
export { publicTrainResult, runTraining, type TrainConfig, type TrainHooks, type TrainResult } from '../runs/train.js';
