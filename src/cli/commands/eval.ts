/**
 * `dplens eval`: utility of a synthetic set — train the evaluation CNN on it, test on the real test
 * split. Prints testAccuracy (final epoch) and bestEpochTestAccuracy (optimistic, selected on the
 * test set: the papers' protocol) and writes eval.json next to the synthetic file.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError, getChoice, getInteger, getNumber, getString, noPositionals, stringFlags } from '../args.js';
import { CLASS_FLAGS, declaredClasses } from '../flags.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DATA_FLAG_SPECS } from '../../data/index.js';
import { runEval } from '../../runs/eval.js';
import { writeReport } from '../../report/index.js';

const positive = (x: number): true | string => x > 0 || 'must be > 0';

const command: Command = {
  name: 'eval',
  summary: 'utility of synthetic data: train a CNN on it, test on the real test set',
  usage: 'dplens eval --synthetic FILE.npz --data mnist|fashion-mnist|pneumonia|PATH [--epochs E] [--json]',
  description:
    'Trains the evaluation CNN (Conv32-MaxPool-Conv64-Dense64, spec §7) only on the synthetic images/labels in FILE (npz with images N×H×W uint8 and labels N) and tests it on the real test split of --data after every epoch. testAccuracy is the final epoch (no selection on the test set); bestEpochTestAccuracy is the maximum over epochs, the optimistic protocol of the DataLens/G-PATE papers. Writes eval.json into the folder of FILE.',
  flags: {
    synthetic: { type: 'string', help: 'synthetic.npz written by dplens synth' },
    ...DATA_FLAG_SPECS,
    ...CLASS_FLAGS,
    ...stringFlags({
      epochs: 'training epochs (default 5)',
      batch: 'batch size (default 128)',
      lr: 'learning rate (default 1e-3 Adam, 2e-3 SGD)',
      optimizer: 'adam (default) or sgd (the papers\' choice, needs many more epochs)',
      'max-minutes': 'start no new epoch after this many minutes',
      limit: 'train on only the first N synthetic images (quick checks)',
    }),
  },
  examples: ['dplens eval --synthetic runs/dl-mnist-eps1/synthetic.npz --data mnist --json'],
  async run(args: ParsedArgs, out: Output): Promise<number> {
    noPositionals(args);
    const file = getString(args, 'synthetic');
    if (!file) throw new UsageError('--synthetic is required (an npz with images and labels)');
    const dataName = getString(args, 'data');
    if (!dataName) throw new UsageError('--data is required (the real test set to evaluate on)');
    const epochs = getInteger(args, 'epochs', 5, 1)!;
    const batchSize = getInteger(args, 'batch', 128, 1)!;
    const optimizer = getChoice(args, 'optimizer', ['adam', 'sgd'] as const, 'adam');
    const learningRate = getNumber(args, 'lr', undefined, positive);
    const maxMinutes = getNumber(args, 'max-minutes', undefined, positive);
    const seed = getInteger(args, 'seed', 1, 0)!;
    const threads = getInteger(args, 'threads', undefined, 1);
    const r = await runEval({
      synthetic: file,
      data: dataName,
      dataPath: getString(args, 'data-path'),
      ...declaredClasses(args),
      epochs,
      batchSize,
      optimizer,
      learningRate,
      seed,
      maxMinutes,
      limit: getInteger(args, 'limit', undefined, 1),
      threads,
      onLog: (line) => out.log(line),
      onEpoch: (e) => out.log(`epoch ${e.epoch}: loss ${e.trainLoss.toFixed(4)}, real test accuracy ${(100 * e.testAccuracy).toFixed(2)}% (${e.seconds.toFixed(0)} s)`),
    });
    // A run folder that already has a report gets it rebuilt, so its utility table shows this evaluation.
    const runDir = dirname(r.evalJson);
    if (r.manifestUpdated && existsSync(join(runDir, 'report.html'))) out.log(`report updated: ${await writeReport(runDir)}`);
    out.result({ testAccuracy: r.testAccuracy, bestEpochTestAccuracy: r.bestEpochTestAccuracy, bestEpoch: r.bestEpoch, epochs: r.epochs, trainCount: r.trainCount, testCount: r.testCount, seconds: r.seconds, protocol: r.protocol, evalJson: r.evalJson });
    return 0;
  },
};

export default command;
