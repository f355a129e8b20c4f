/** Accountant factory shared by the ledger, the CLI and the training/synthesis runners. */
import type { Accountant, AccountantKind, RdpAccountantOptions } from './rdp-accountant.js';
import { RdpAccountant } from './rdp-accountant.js';
import { PldAccountant } from './pld.js';
import type { PldAccountantOptions } from './pld.js';

export function makeAccountant(kind: AccountantKind, opts: RdpAccountantOptions & PldAccountantOptions & { orders?: readonly number[] } = {}): Accountant {
  if (kind === 'rdp') return new RdpAccountant(opts.orders, opts);
  if (kind === 'pld') return new PldAccountant(opts);
  throw new RangeError(`accountant must be rdp or pld, got ${String(kind)}`);
}
