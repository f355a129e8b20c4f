/**
 * `dplens eval`: utility and fidelity of a synthetic set — train classifiers on it, test on the real
 * test split (`--protocol default`: the spec §7 CNN, final epoch, plus the optimistic best epoch;
 * `--protocol dpimagebench`: three CNNs with the epoch selected on a synthetic validation split),
 * FID / precision / recall against the real test split, per-class counts; writes eval.json next to
 * the synthetic file.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError, getBool, getChoice, getInteger, getNumber, getString, noPositionals, stringFlags } from '../args.js';
import { CLASS_FLAGS, declaredClasses } from '../flags.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DATA_FLAG_SPECS } from '../../data/index.js';
import { runEval } from '../../runs/eval.js';
import { EVAL_PROTOCOLS } from '../../evaluate/index.js';
import { writeReport } from '../../report/index.js';

const positive = (x: number): true | string => x > 0 || 'must be > 0';

const command: Command = {
  name: 'eval',
  summary: 'utility and fidelity of synthetic data: train CNNs on it, test on the real test set; FID, precision, recall',
  usage: 'dplens eval --synthetic FILE.npz --data mnist|fashion-mnist|pneumonia|PATH [--protocol default|dpimagebench] [--epochs E] [--no-fidelity] [--json]',
  description:
    'Trains classifiers only on the synthetic images/labels in FILE (npz with images N×H×W uint8 and labels N) and tests them on the real test split of --data. --protocol default: the evaluation CNN (Conv32-MaxPool-Conv64-Dense64, spec §7) on the whole set, tested after every epoch; testAccuracy is the final epoch (no selection on the test set), bestEpochTestAccuracy the maximum over epochs (the optimistic protocol of the DataLens/G-PATE papers). --protocol dpimagebench (DPImageBench, Chen et al. 2025): a seeded 55k/5k (1/12) train/validation split of the synthetic set; LeNet-5 (8 epochs), a strided CNN (3) and a small VGG-style CNN (3) each pick their epoch on the synthetic validation split only; testAccuracy is the mean real test accuracy of the three. Both protocols report fid, precision and recall (Kynkäänniemi et al. 2019, k = 5) of up to 10k synthetic vs 10k real test images in the features of a CNN trained on the real training split (cached in $DPLENS_CACHE_DIR or ~/.cache/dplens; these figures are outside the DP guarantee) and classCounts. Writes eval.json into the folder of FILE.',
  flags: {
    synthetic: { type: 'string', help: 'synthetic.npz written by dplens synth' },
    ...DATA_FLAG_SPECS,
    ...CLASS_FLAGS,
    'no-fidelity': { type: 'boolean', help: 'skip fid / precision / recall (they need a feature net trained on the real training split)' },
    ...stringFlags({
      protocol: 'default (spec §7 CNN) or dpimagebench (three CNNs, epoch selected on a synthetic validation split)',
      epochs: 'training epochs (default 5; dpimagebench: each classifier\'s own default)',
      batch: 'batch size (default 128; default protocol only)',
      lr: 'learning rate (default 1e-3 Adam, 2e-3 SGD; default protocol only)',
      optimizer: 'adam (default) or sgd (the papers\' choice, needs many more epochs; default protocol only)',
      'max-minutes': 'start no new epoch after this many minutes (dpimagebench: a third per classifier)',
      limit: 'train on only the first N synthetic images (quick checks)',
    }),
  },
  examples: ['dplens eval --synthetic runs/dl-mnist-eps1/synthetic.npz --data mnist --json', 'dplens eval --synthetic runs/dl-mnist-eps1/synthetic.npz --data mnist --protocol dpimagebench --json'],
  async run(args: ParsedArgs, out: Output): Promise<number> {
    noPositionals(args);
    const file = getString(args, 'synthetic');
    if (!file) throw new UsageError('--synthetic is required (an npz with images and labels)');
    const dataName = getString(args, 'data');
    if (!dataName) throw new UsageError('--data is required (the real test set to evaluate on)');
    const protocol = getChoice(args, 'protocol', EVAL_PROTOCOLS, 'default');
    if (protocol === 'dpimagebench') {
      for (const f of ['batch', 'lr', 'optimizer']) if (args.flags.has(f)) throw new UsageError(`--${f} applies to --protocol default only (dpimagebench uses each classifier's documented recipe)`);
    }
    const epochs = getInteger(args, 'epochs', protocol === 'default' ? 5 : undefined, 1);
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
      protocol,
      fidelity: !getBool(args, 'no-fidelity'),
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
    out.result({
      protocol: r.protocol,
      testAccuracy: r.testAccuracy,
      ...(r.protocol === 'default' ? { bestEpochTestAccuracy: r.bestEpochTestAccuracy, bestEpoch: r.bestEpoch, epochs: r.epochs } : {}),
      ...(r.classifiers ? { classifiers: r.classifiers.map((c) => ({ name: c.name, testAccuracy: c.testAccuracy, selectedEpoch: c.selectedEpoch, valAccuracy: c.valAccuracy, epochs: c.epochs, seconds: c.seconds })), valCount: r.valCount } : {}),
      fid: r.fid ?? null,
      precision: r.precision ?? null,
      recall: r.recall ?? null,
      classCounts: r.classCounts,
      trainCount: r.trainCount,
      testCount: r.testCount,
      seconds: r.seconds,
      protocolDescription: r.protocolDescription,
      ...(r.fidelityDescription ? { fidelityDescription: r.fidelityDescription } : {}),
      evalJson: r.evalJson,
    });
    return 0;
  },
};

export default command;
