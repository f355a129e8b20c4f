import type { Command } from '../command.js';
import { getInteger, getNumber, getString, UsageError, stringFlags } from '../args.js';
import { dataFlagSpecs, loadDataset, resolveDataFlag, writePngGrid } from '../../data/index.js';
import { CLASS_FLAGS, declaredClasses } from '../flags.js';
import { COLLAB_ATTACK_FLAGS, checkAttackFlags, runHitajCommand, runLeakageCommand } from '../attack-collab.js';

const command: Command = {
  name: 'attack',
  summary: 'attacks on models: gradient inversion (reconstruct a training image from its shared gradient), the GAN attack on collaborative learning (hitaj-gan), layer-wise gradient leakage (gradient-leakage)',
  usage: 'dplens attack invert --model cnn|RUN_DIR [--index 0] [--split train|test] [--noise σ --clip C] [--method layerwise|gradient-matching] [--iterations N] [--restarts 2] [--out DIR] [--json]\n       dplens attack hitaj-gan --out DIR [--victim-class 3 --rounds 100 --upload-fraction 1 --epsilon E | --noise σ --clip 1 --control] [--json]\n       dplens attack gradient-leakage --out DIR [--model cnn|RUN_DIR --split test --clients 1000 --targets 600 --aggregation 1,10,100 --noise σ --clip C] [--json]',
  description:
    'invert: computes the gradient of one example (--index of the --split of --data) under the reference CNN — a fresh one (--model cnn, seeded by --seed) or the trained weights of a `dplens train` run folder — optionally clips it to --clip and adds Gaussian noise of std noise·clip (what one DP-SGD step with that example releases; noise from the privacy core), then reconstructs the image. Method layerwise (default): label from the sign of the last bias gradient (iDLG), the fc1 input from the dense-layer gradient ratio, the conv2 input from the null space of the conv2 weight gradient\'s orthogonal complement, then pixels fitted to those conv1 features (projected Adam, restarts ranked by the attack\'s own loss). Method gradient-matching: optimise a dummy image and soft label so that their gradient matches (cosine distance, Adam with signed steps, TV prior; "Inverting Gradients", Geiping et al. 2020). Prints PSNR and SSIM against the true image (and flatPsnr, the PSNR of the best flat image: what an image without spatial information scores); with --out writes invert.png (truth | reconstruction) and invert.json.',
  flags: {
    model: { type: 'string', help: 'cnn (fresh reference CNN) or a run folder from dplens train (required)' },
    ...dataFlagSpecs('mnist'),
    ...CLASS_FLAGS,
    ...COLLAB_ATTACK_FLAGS,
    ...stringFlags({
      index: 'example to attack (default 0)',
      split: 'train (default) or test: which split --index refers to',
      noise: 'noise multiplier σ of the released gradient (default 0 = exact gradient)',
      clip: 'clip bound C of the released gradient (default: no clipping; 1 when --noise > 0)',
      method: 'layerwise (default) or gradient-matching',
      iterations: 'optimisation steps per restart (default 1500 layerwise, 600 gradient-matching)',
      restarts: 'restarts of the layerwise pixel fit (default 2)',
      tv: 'total-variation weight (default 0 layerwise, 0.01 gradient-matching)',
    }),
  },
  examples: ['dplens attack invert --model cnn --index 0 --json', 'dplens attack invert --model cnn --noise 1 --clip 1 --json', 'dplens attack invert --model runs/m1 --index 7 --out runs/m1/attack', 'dplens attack hitaj-gan --out runs/hitaj --json', 'dplens attack hitaj-gan --epsilon 1 --out runs/hitaj-e1', 'dplens attack gradient-leakage --out runs/leak --json'],
  async run(args, out, argv) {
    const [sub, ...rest] = args.positionals;
    if (sub === 'hitaj-gan' || sub === 'gradient-leakage' || sub === 'invert') checkAttackFlags(args, sub);
    if (sub === 'hitaj-gan' || sub === 'gradient-leakage') {
      if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
      return sub === 'hitaj-gan' ? runHitajCommand(args, out, argv) : runLeakageCommand(args, out, argv);
    }
    if (sub !== 'invert') throw new UsageError(sub ? `unknown attack "${sub}" (available: invert, hitaj-gan, gradient-leakage)` : 'which attack? dplens attack invert|hitaj-gan|gradient-leakage ...');
    if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const modelArg = getString(args, 'model');
    if (!modelArg) throw new UsageError('--model is required: cnn (fresh reference CNN) or a run folder from dplens train');
    const index = getInteger(args, 'index', 0, 0)!;
    const noise = getNumber(args, 'noise', 0, (x) => x >= 0 || 'must be >= 0')!;
    const clipArg = getNumber(args, 'clip', undefined, (x) => x > 0 || 'must be > 0');
    const clip = clipArg ?? (noise > 0 ? 1 : undefined);
    const method = getString(args, 'method', 'layerwise');
    if (method !== 'layerwise' && method !== 'gradient-matching') throw new UsageError(`--method must be layerwise or gradient-matching, got "${method}"`);
    const split = getString(args, 'split', 'train');
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split must be train or test, got "${split}"`);
    const iterations = getInteger(args, 'iterations', method === 'layerwise' ? 1500 : 600, 1)!;
    const restarts = getInteger(args, 'restarts', 2, 1)!;
    const tvWeight = getNumber(args, 'tv', method === 'layerwise' ? 0 : 0.01, (x) => x >= 0 || 'must be >= 0')!;
    const seed = getInteger(args, 'seed', undefined, 0);
    const { ensureEngine } = await import('../../engine/index.js');
    await ensureEngine();
    const { existsSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const audit = await import('../../audit/index.js');
    const { secureRandom, seededRandom } = await import('../../privacy/index.js');
    const dataName = getString(args, 'data', 'mnist');
    const ds = loadDataset({ ...resolveDataFlag(dataName, getString(args, 'data-path')), ...declaredClasses(args) });
    const part = split === 'test' ? ds.test : ds.train;
    if (index >= part.count) throw new UsageError(`--index must be < ${part.count} (${split} examples of ${ds.name})`);
    let params;
    if (modelArg === 'cnn') params = audit.initRefCnn(seed ?? 1, ds.height, ds.width, ds.channels, ds.numClasses);
    else {
      if (!existsSync(join(modelArg, 'model.json'))) throw new UsageError(`--model ${modelArg}: not "cnn" and no model.json there`);
      params = await audit.loadRefCnnParams(modelArg);
    }
    const rng = seed !== undefined ? seededRandom(seed) : secureRandom();
    out.log(`inverting the ${noise > 0 ? `DP (σ = ${noise}, C = ${clip})` : clip ? `clipped (C = ${clip})` : 'exact'} gradient of ${ds.name} ${split} example ${index} (${method}, ${iterations} iterations${method === 'layerwise' ? ` × ${restarts} restarts` : ''})`);
    const total = method === 'layerwise' ? iterations * restarts : iterations;
    const progress = out.progress(total, 'invert');
    const r = audit.runInversion(params, ds, { index, split, method, noise, clip, rng, iterations, restarts, tvWeight, seed, onProgress: (it, loss) => progress.update(it + 1, { loss }) });
    progress.done();
    const outDir = getString(args, 'out');
    let png: string | undefined;
    const { truth, reconstruction, ...summary } = r;
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      const per = ds.height * ds.width * ds.channels;
      const both = new Uint8Array(2 * per);
      for (let i = 0; i < per; i++) {
        both[i] = Math.round(truth[i]! * 255);
        both[per + i] = Math.round(Math.min(1, Math.max(0, reconstruction[i]!)) * 255);
      }
      png = join(outDir, 'invert.png');
      // one row: truth | reconstruction
      writePngGrid(png, both, [0, 0], { height: ds.height, width: ds.width, channels: ds.channels, numClasses: 1, perClass: 2, scale: 4 });
      writeFileSync(join(outDir, 'invert.json'), JSON.stringify({ ...summary, png }, null, 1) + '\n');
    }
    const attack =
      method === 'layerwise'
        ? 'gradient inversion (layer-wise: iDLG label, dense-layer ratio, conv2-gradient null space, conv1 feature fit)'
        : 'gradient inversion (inverting gradients: cosine matching, Adam, TV prior)';
    out.result({ attack, model: modelArg, dataset: ds.name, ...summary, png });
    return 0;
  },
};

export default command;
