/**
 * `dplens account`: privacy accounting for DP-SGD style training (Poisson-subsampled Gaussian).
 *  - epsilon mode:     --noise S --sample-rate Q --steps T|--epochs E --delta D  -> {"epsilon", ...}
 *  - calibration mode: --target-epsilon E --sample-rate Q --steps T|--epochs E --delta D -> {"noise", "achievedEpsilon", ...}
 */
import { UsageError, getChoice, getInteger, getNumber, stringFlags } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DpEvents, makeAccountant, calibrateNoise, describeRelation } from '../../privacy/index.js';
import type { AccountantKind } from '../../privacy/index.js';

const inUnitOpen = (x: number): true | string => (x > 0 && x < 1) || 'must be in (0, 1)';
const rate = (x: number): true | string => (x > 0 && x <= 1) || 'must be in (0, 1]';
const positive = (x: number): true | string => x > 0 || 'must be > 0';

function stepsOf(args: ParsedArgs, q: number): { steps: number; epochs?: number } {
  const hasSteps = args.flags.has('steps');
  const hasEpochs = args.flags.has('epochs');
  if (hasSteps && hasEpochs) throw new UsageError('give either --steps or --epochs, not both');
  if (!hasSteps && !hasEpochs) throw new UsageError('--steps (or --epochs) is required');
  if (hasSteps) return { steps: getInteger(args, 'steps', undefined, 1)! };
  const epochs = getNumber(args, 'epochs', undefined, positive)!;
  const steps = Math.floor(epochs / q);
  if (steps < 1) throw new UsageError(`--epochs ${epochs} at --sample-rate ${q} gives no step`);
  return { steps, epochs };
}

const command: Command = {
  name: 'account',
  summary: 'epsilon of DP-SGD (Poisson-subsampled Gaussian) steps, or the noise for a target epsilon',
  usage: 'dplens account (--noise S | --target-epsilon E) --sample-rate Q (--steps T | --epochs E) --delta D [--accountant rdp|pld] [--json]',
  description:
    'Poisson sampling is analysed under the add/remove neighbouring relation, which the output states. Computes epsilon for T steps of the Poisson-subsampled Gaussian mechanism (noise multiplier S, sampling rate Q) at delta D with the RDP accountant (Opacus-exact, default orders) or the PLD accountant (tight, FFT). With --target-epsilon instead of --noise it calibrates the smallest noise multiplier reaching the target (Opacus get_noise_multiplier bisection); when the target cannot be reached the error says why (at small targets the RDP order list is the limit: use --accountant pld). --epochs E means steps = floor(E / Q).',
  flags: {
    ...stringFlags({
      noise: 'noise multiplier sigma (std / clipping norm), > 0',
      'target-epsilon': 'calibrate: target epsilon (> 0) instead of --noise',
      'sample-rate': 'Poisson sampling rate q in (0, 1] (batch size / dataset size)',
      steps: 'number of steps (positive integer)',
      epochs: 'number of epochs instead of --steps (steps = floor(epochs / q))',
      delta: 'delta in (0, 1)',
      accountant: 'rdp (default) or pld',
      'epsilon-tolerance': 'calibration tolerance on epsilon (default 0.01)',
    }),
  },
  examples: [
    'dplens account --noise 1.1 --sample-rate 0.0042667 --steps 14062 --delta 1e-5 --json',
    'dplens account --target-epsilon 3 --sample-rate 0.004 --epochs 15 --delta 1e-5 --accountant pld',
  ],
  async run(args: ParsedArgs, out: Output): Promise<number> {
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const accountant = getChoice<AccountantKind>(args, 'accountant', ['rdp', 'pld'], 'rdp');
    const hasNoise = args.flags.has('noise');
    const hasTarget = args.flags.has('target-epsilon');
    if (hasNoise && hasTarget) throw new UsageError('give either --noise or --target-epsilon, not both');
    if (!hasNoise && !hasTarget) throw new UsageError('--noise (or --target-epsilon) is required');
    const q = getNumber(args, 'sample-rate', undefined, rate);
    if (q === undefined) throw new UsageError('--sample-rate is required');
    const delta = getNumber(args, 'delta', undefined, inUnitOpen);
    if (delta === undefined) throw new UsageError('--delta is required');
    const { steps, epochs } = stepsOf(args, q);
    const t0 = performance.now();
    if (hasNoise) {
      const noise = getNumber(args, 'noise', undefined, positive)!;
      const acc = makeAccountant(accountant, { relation: 'add-remove' }).compose(DpEvents.poissonSampled(q, DpEvents.gaussian(noise)), steps);
      const d = acc.getEpsilonDetails(delta);
      const res: Record<string, unknown> = { epsilon: d.epsilon, delta, accountant, noise, sampleRate: q, steps, relation: acc.relation, relationDescription: describeRelation(acc.relation) };
      if (epochs !== undefined) res.epochs = epochs;
      if (d.optimalOrder !== undefined) res.optimalOrder = d.optimalOrder;
      res.warnings = d.warnings;
      res.seconds = (performance.now() - t0) / 1000;
      for (const w of d.warnings) out.log(`warning: ${w}`);
      out.result(res);
      return 0;
    }
    const target = getNumber(args, 'target-epsilon', undefined, positive)!;
    const tol = getNumber(args, 'epsilon-tolerance', 0.01, positive)!;
    let r;
    try {
      r = calibrateNoise({ targetEpsilon: target, delta, sampleRate: q, steps, accountant, epsilonTolerance: tol });
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
    const res: Record<string, unknown> = { noise: r.noiseMultiplier, achievedEpsilon: r.achievedEpsilon, targetEpsilon: target, delta, accountant, sampleRate: q, steps, relation: 'add-remove', relationDescription: describeRelation('add-remove') };
    if (epochs !== undefined) res.epochs = epochs;
    res.epsilonTolerance = tol;
    res.evaluations = r.evaluations;
    res.seconds = (performance.now() - t0) / 1000;
    out.result(res);
    return 0;
  },
};

export default command;
