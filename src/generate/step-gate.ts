/**
 * The loop control every Poisson-sampled DP-SGD generator shares (dp-sinkhorn, dp-gan, dp2-vae,
 * dpmi): the wall-clock deadline (--max-minutes, else the preset's time cap), when to stop before
 * the next step, and the ONE place that charges a step's release to the ledger before any private
 * record is read. One copy, so the "recorded before use" rule and the bookkeeping of non-private
 * runs (one `nonPrivate` event per run, also across a resume) cannot drift apart between methods.
 */
import { keyedFingerprint, type DpEvent } from '../privacy/index.js';
import type { GeneratorLimits } from './plugin.js';
import type { GeneratorContext, StopReason } from './types.js';

/** Epoch ms at which fit() stops: --max-minutes when given, else the preset's `timeCap` minutes (0 = none). */
export function fitDeadline(t0: number, limits: GeneratorLimits, timeCap: number): number {
  const minutes = Number.isFinite(limits.maxMinutes) ? limits.maxMinutes : timeCap > 0 ? timeCap : Number.POSITIVE_INFINITY;
  return t0 + minutes * 60_000;
}

export class StepReleaseGate {
  private readonly fingerprint: string;
  private nonPrivateRecorded: boolean;

  constructor(
    private readonly ctx: GeneratorContext,
    private readonly o: {
      method: string;
      /** The per-step event (the plugin's stepEvent(): nonPrivate for a --non-private run). */
      event: DpEvent;
      deadline: number;
      signal?: AbortSignal;
      /** Steps that are made even past the deadline (dp-gan: 1, so a run whose warm-up outlasted it still trains its generator). */
      minSteps?: number;
    },
  ) {
    this.fingerprint = ctx.datasetFingerprint ?? keyedFingerprint(ctx.data.rawFingerprint);
    // a resumed non-private run already holds its one nonPrivate event
    this.nonPrivateRecorded = ctx.ledger.entries.some((e) => e.event.kind === 'nonPrivate');
  }

  /** Why the loop stops before step `stepsDone + 1`, or null to go on. */
  stopBefore(stepsDone: number): StopReason | null {
    if (this.o.signal?.aborted) return 'aborted';
    if (Date.now() > this.o.deadline && stepsDone >= (this.o.minSteps ?? 0)) return 'max-minutes';
    return null;
  }

  /**
   * Records step `step`'s release (meta describes it) before the caller samples or reads any record;
   * false when the ledger refuses it (the budget is spent): the caller stops with 'budget'. The
   * ledger is the only budget gate. A non-private run records one nonPrivate event and no more.
   */
  charge(step: number, meta: Record<string, unknown>): boolean {
    if (this.ctx.nonPrivate && this.nonPrivateRecorded) return true;
    const ok = this.ctx.ledger.tryRecord({ event: this.o.event, method: this.o.method, datasetFingerprint: this.fingerprint, meta: { step, ...meta } });
    if (!ok.ok) return false;
    this.nonPrivateRecorded = true;
    return true;
  }
}
