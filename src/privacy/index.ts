/**
 * dplens privacy core: DP events, accountants (RDP, PLD, PATE data-dependent), mechanisms,
 * randomness, calibration, the owner key and the privacy ledger. No tensors here.
 */
export * from './events.js';
export * from './rdp-accountant.js';
export { makeAccountant } from './accountants.js';
export { PldAccountant, clearPldCache } from './pld.js';
export type { PldAccountantOptions } from './pld.js';
export { rdpPtr, rdpSubsampledPtr, ptrApproxDpEpsilon, ptrThreshold, rdpPoissonSubsampledGeneral, type PtrParams } from './ptr.js';
export { DEFAULT_ORDERS, rdpSubsampledGaussian, rdpGaussian, rdpLaplace, rdpRandomizedResponse, rdpSampledWithoutReplacement, rdpToEpsilon } from './rdp.js';
export type { EpsilonResult } from './rdp.js';
export * as pate from './pate.js';
export * from './random.js';
export * from './ledger.js';
export * from './calibrate.js';
export * from './mechanisms.js';
export { OwnerKeyError, keyedFingerprint, loadOwnerKey, ownerKeyId, ownerKeyPath } from './owner-key.js';
export * from './metric-dp.js';
