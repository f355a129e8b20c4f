/**
 * Federated protocols between real parties over WebSockets: secure aggregation (Bonawitz et al.
 * 2017) and user-level DP-FedAvg with distributed discrete Gaussian noise (Kairouz et al. 2021).
 * See README.md in this folder.
 */
export * from './shamir.js';
export * from './secagg.js';
export * from './wire.js';
export * from './transport.js';
export * from './server.js';
export * from './client.js';
export * from './quantize.js';
export * from './dpfedavg.js';
export * from './simulate-secagg.js';
export * from './simulate-dpfedavg.js';
export * from './dp-svm.js';
export * from './dp-svm-simulate.js';
export * from './compress.js';
