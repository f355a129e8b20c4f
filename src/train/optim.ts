/**
 * Optimizers (SGD with momentum/Nesterov, Adam, AdamW), learning-rate schedules and an EMA of the
 * weights. They consume already-privatized gradients, so they add no privacy cost.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Param } from '../nn/index.js';

/** Learning-rate multiplier at `step` (0-based) of `total` steps. */
export type LrSchedule = (step: number, total: number) => number;

export const schedules = {
  constant: (): LrSchedule => () => 1,
  /** Cosine decay from 1 to `floor` over the run. */
  cosine: (floor = 0): LrSchedule => (s, t) => floor + (1 - floor) * 0.5 * (1 + Math.cos((Math.PI * Math.min(s, t)) / Math.max(1, t))),
  /** Multiply by `gamma` every `every` steps. */
  step: (every: number, gamma = 0.1): LrSchedule => (s) => gamma ** Math.floor(s / every),
  exponential: (gamma: number): LrSchedule => (s) => gamma ** s,
  /** Linear warm-up over `steps` steps, then `after`. */
  warmup: (steps: number, after: LrSchedule = () => 1): LrSchedule => (s, t) => (s < steps ? (s + 1) / steps : after(s, t)),
};

/**
 * What a resumed run needs to continue an optimizer exactly: its slot tensors (SGD 'velocity',
 * Adam 'm' and 'v', aligned with the parameters) and its update count `t` (Adam's bias correction).
 */
export interface OptimizerState {
  name: string;
  t: number;
  slots: Record<string, tf.Tensor[]>;
}

function restoreSlot(name: string, slot: string, saved: tf.Tensor[] | undefined, params: Param[]): tf.Variable[] | undefined {
  if (!saved) return undefined;
  if (saved.length !== params.length) throw new RangeError(`${name} state: slot ${slot} has ${saved.length} tensors for ${params.length} parameters`);
  return saved.map((t, i) => {
    if (!tf.util.arraysEqual(t.shape, params[i]!.value.shape)) throw new RangeError(`${name} state: slot ${slot}[${i}] has shape [${t.shape}], parameter ${params[i]!.name} is [${params[i]!.value.shape}]`);
    return tf.variable(t.clone(), false);
  });
}

export interface Optimizer {
  readonly name: string;
  /** Base learning rate (the schedule multiplies it). */
  lr: number;
  schedule: LrSchedule;
  /** Applies one update with gradient estimates aligned with `params`; disposes nothing it did not create. */
  step(params: Param[], grads: tf.Tensor[], stepIndex: number, totalSteps: number): void;
  /** Current state (tensors are the optimizer's own: copy before disposing anything); needed for exact resume. */
  getState?(): OptimizerState;
  /** Restores a state from getState() (copies the tensors) for `params`. */
  setState?(state: OptimizerState, params: Param[]): void;
}

function checkLr(lr: number): void {
  if (!(lr > 0 && Number.isFinite(lr))) throw new RangeError(`learning rate must be a positive finite number, got ${lr}`);
}

export class SGD implements Optimizer {
  readonly name = 'sgd';
  private velocity?: tf.Variable[];
  constructor(
    public lr: number,
    readonly opts: { momentum?: number; nesterov?: boolean; weightDecay?: number } = {},
    public schedule: LrSchedule = schedules.constant(),
  ) {
    checkLr(lr);
    const m = opts.momentum ?? 0;
    if (!(m >= 0 && m < 1)) throw new RangeError(`momentum must be in [0, 1), got ${m}`);
    if (opts.nesterov && m === 0) throw new RangeError('Nesterov momentum needs momentum > 0');
  }
  step(params: Param[], grads: tf.Tensor[], t: number, total: number): void {
    const lr = this.lr * this.schedule(t, total);
    const mu = this.opts.momentum ?? 0;
    const wd = this.opts.weightDecay ?? 0;
    if (mu > 0) this.velocity ??= params.map((p) => tf.variable(tf.zerosLike(p.value), false));
    tf.tidy(() => {
      params.forEach((p, i) => {
        let g = grads[i]!;
        if (wd) g = tf.add(g, tf.mul(p.value, wd));
        if (mu > 0) {
          const v = this.velocity![i]!;
          v.assign(tf.add(tf.mul(v, mu), g));
          g = this.opts.nesterov ? tf.add(g, tf.mul(v, mu)) : v;
        }
        p.value.assign(tf.sub(p.value, tf.mul(g, lr)));
      });
    });
  }
  getState(): OptimizerState {
    return { name: this.name, t: 0, slots: this.velocity ? { velocity: this.velocity } : {} };
  }
  setState(state: OptimizerState, params: Param[]): void {
    if (state.name !== this.name) throw new RangeError(`cannot load ${state.name} state into ${this.name}`);
    tf.dispose(this.velocity ?? []);
    this.velocity = restoreSlot(this.name, 'velocity', state.slots.velocity, params);
  }
}

export class Adam implements Optimizer {
  readonly name: string = 'adam';
  private m?: tf.Variable[];
  private v?: tf.Variable[];
  private t = 0;
  constructor(
    public lr: number,
    readonly opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean } = {},
    public schedule: LrSchedule = schedules.constant(),
  ) {
    checkLr(lr);
  }
  step(params: Param[], grads: tf.Tensor[], step: number, total: number): void {
    const lr = this.lr * this.schedule(step, total);
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.999;
    const eps = this.opts.eps ?? 1e-8;
    const wd = this.opts.weightDecay ?? 0;
    this.m ??= params.map((p) => tf.variable(tf.zerosLike(p.value), false));
    this.v ??= params.map((p) => tf.variable(tf.zerosLike(p.value), false));
    this.t++;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      params.forEach((p, i) => {
        let g = grads[i]!;
        if (wd && !this.opts.decoupled) g = tf.add(g, tf.mul(p.value, wd));
        const m = this.m![i]!;
        const v = this.v![i]!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        let upd = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        if (wd && this.opts.decoupled) upd = tf.add(upd, tf.mul(p.value, wd));
        p.value.assign(tf.sub(p.value, tf.mul(upd, lr)));
      });
    });
  }
  getState(): OptimizerState {
    return { name: this.name, t: this.t, slots: this.m && this.v ? { m: this.m, v: this.v } : {} };
  }
  setState(state: OptimizerState, params: Param[]): void {
    if (state.name !== this.name) throw new RangeError(`cannot load ${state.name} state into ${this.name}`);
    if (!(Number.isInteger(state.t) && state.t >= 0)) throw new RangeError(`${this.name} state: bad step count ${state.t}`);
    tf.dispose([...(this.m ?? []), ...(this.v ?? [])]);
    this.m = restoreSlot(this.name, 'm', state.slots.m, params);
    this.v = restoreSlot(this.name, 'v', state.slots.v, params);
    this.t = state.t;
  }
}

/** Adam with decoupled weight decay (Loshchilov & Hutter). */
export class AdamW extends Adam {
  override readonly name = 'adamw';
  constructor(lr: number, opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number } = {}, schedule?: LrSchedule) {
    super(lr, { weightDecay: 0.01, ...opts, decoupled: true }, schedule);
  }
}

/** Exponential moving average of the weights; `swap` evaluates with the averaged weights. */
export class Ema {
  private shadow: tf.Variable[];
  constructor(
    readonly params: Param[],
    readonly decay = 0.999,
  ) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`EMA decay must be in (0, 1), got ${decay}`);
    this.shadow = params.map((p) => tf.variable(p.value.clone(), false));
  }
  update(): void {
    tf.tidy(() => this.shadow.forEach((s, i) => s.assign(tf.add(tf.mul(s, this.decay), tf.mul(this.params[i]!.value, 1 - this.decay)))));
  }
  /** The averaged weights (the EMA's own tensors, aligned with `params`). */
  getShadow(): tf.Tensor[] {
    return this.shadow;
  }
  /** Restores averaged weights saved by a previous run (copied). */
  setShadow(saved: tf.Tensor[]): void {
    const fresh = restoreSlot('EMA', 'shadow', saved, this.params)!;
    tf.dispose(this.shadow);
    this.shadow = fresh;
  }
  /** Swaps live and averaged weights (call twice to restore). */
  swap(): void {
    tf.tidy(() =>
      this.shadow.forEach((s, i) => {
        const live = this.params[i]!.value.clone();
        this.params[i]!.value.assign(s);
        s.assign(live);
      }),
    );
  }
}
