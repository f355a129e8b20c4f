import type { Accountant, EpsilonDetails } from './rdp-accountant.js';
import type { DpEvent } from './events.js';
export interface PldAccountantOptions {
  valueDiscretizationInterval?: number;
}
export class PldAccountant implements Accountant {
  readonly kind = 'pld' as const;
  constructor(_opts: PldAccountantOptions = {}) {
    throw new Error('PLD accountant: landing shortly');
  }
  compose(_e: DpEvent, _c = 1): this {
    return this;
  }
  getEpsilon(_d: number): number {
    return NaN;
  }
  getEpsilonDetails(_d: number): EpsilonDetails {
    throw new Error('x');
  }
  epsilonIf(_e: DpEvent, _d: number): number {
    return NaN;
  }
}
