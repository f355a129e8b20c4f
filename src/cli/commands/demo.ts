/**
 * `dplens demo`: the newcomer's first run. On real MNIST it trains a small model with DP-SGD and
 * synthesises private data with DataLens, both at small ε, evaluates the synthetic data against a
 * non-private reference, and writes one report per run plus an index page linking both.
 *
 * Time budget (--minutes, default 10): training 35 %, synthesis 45 % (their runners stop at the time
 * limit or when the budget is spent, whichever comes first), evaluation 15 %.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { UsageError, getNumber, getString, getInteger } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ImageDataset } from '../../data/types.js';
import { writeReport, readRunFolder, summarizePrivacy, escapeHtml } from '../../report/index.js';

interface StageResult {
  name: string;
  dir: string;
  report?: string;
  epsilon?: number;
  delta: number;
  seconds: number;
  headline: Record<string, number | string>;
  error?: string;
}

const DELTA = 1e-5;
/**
 * DataLens settings: the default preset (kernel teachers, one per record: about 60 steps of a few
 * seconds each on 2 cores). DPLENS_DEMO_TEACHERS overrides the teacher count (fewer teachers, each
 * holding several records; the step charge then uses the several-records sensitivity).
 */
const DEMO_SYNTH_HYPER = process.env.DPLENS_DEMO_TEACHERS ? { teachers: Number(process.env.DPLENS_DEMO_TEACHERS) } : {};
/** Synthetic images written and used for the utility evaluation (kept small: evaluation time ∝ count). */
const DEMO_SAMPLES = 5000;
/** Planned DP-SGD epochs (σ is calibrated for them); see trainStage. */
const DEMO_TRAIN_EPOCHS = 3;

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

/** The exact command line, as a user would retype it. */
function commandLine(argv: string[]): string[] {
  return ['dplens', ...argv];
}

async function loadMnistOnce(out: Output): Promise<ImageDataset> {
  const t0 = Date.now();
  const data = await import('../../data/index.js');
  const ds = data.loadMnist();
  out.log(`MNIST loaded: ${ds.train.count} train / ${ds.test.count} test images (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return ds;
}

async function trainStage(ds: ImageDataset, dir: string, minutes: number, epsilon: number, seed: number | undefined, argv: string[], out: Output): Promise<StageResult> {
  const t0 = Date.now();
  const { runTraining } = await import('../../runs/train.js');
  out.log(`\n[1/2] DP-SGD on MNIST at ε = ${epsilon}, δ = ${DELTA} (≤ ${minutes.toFixed(1)} min) → ${dir}`);
  let bar: ReturnType<Output['progress']> | undefined;
  // σ is calibrated so that DEMO_TRAIN_EPOCHS epochs spend exactly ε; the time limit may stop earlier
  // (then less than ε is spent — the report shows the recomputed figure).
  const res = await runTraining(
    { data: 'mnist', model: 'cnn', epochs: DEMO_TRAIN_EPOCHS, targetEpsilon: epsilon, delta: DELTA, out: dir, maxMinutes: minutes, seed, command: commandLine(argv) },
    {
      dataOverride: ds,
      onStep: (p) => {
        bar ??= out.progress(p.totalSteps, 'dp-sgd');
        bar.update(p.step, { eps: p.epsilon }); // batch loss/accuracy are private diagnostics
      },
      log: (m) => out.log(m),
    },
  );
  bar?.done();
  const report = await writeReport(dir);
  const priv = summarizePrivacy(readRunFolder(dir));
  const headline: Record<string, number | string> = { steps: res.steps, epochs: +res.epochs.toFixed(3), stoppedBy: res.stoppedBy };
  if (res.testAccuracy !== null) headline.testAccuracy = res.testAccuracy;
  return { name: 'DP-SGD training', dir, report, epsilon: priv.epsilon, delta: DELTA, seconds: (Date.now() - t0) / 1000, headline };
}

async function synthStage(ds: ImageDataset, dir: string, minutes: number, evalMinutes: number, epsilon: number, seed: number | undefined, argv: string[], out: Output): Promise<StageResult> {
  const t0 = Date.now();
  const gen = await import('../../runs/synth.js');
  const { evaluateSynthetic } = await import('../../evaluate/index.js');
  const { listEvalJson } = await import('../../runs/eval.js');
  const { readNpz, toInt32Array } = await import('../../data/index.js');
  out.log(`\n[2/2] DataLens synthetic MNIST at ε = ${epsilon}, δ = ${DELTA} (≤ ${minutes.toFixed(1)} min) → ${dir}`);
  const bar = out.progress(100, 'datalens');
  const res = await gen.runSynthesis(
    { method: 'datalens', data: 'mnist', epsilon, delta: DELTA, out: dir, samples: DEMO_SAMPLES, maxMinutes: minutes, seed, hyper: DEMO_SYNTH_HYPER, argv: commandLine(argv) },
    {
      dataOverride: ds,
      onStep: (p) => bar.update(Math.min(99, Math.round((100 * (Date.now() - t0)) / 60000 / minutes)), { step: String(p.step), eps: p.epsilon, loss: p.generatorLoss }),
    },
  );
  bar.update(100, { eps: res.epsilon });
  bar.done();

  // Utility: a classifier trained only on the synthetic data, tested on the real test set, next to
  // the same classifier trained on as many real images (the non-private reference).
  out.log(`evaluating: classifier trained on ${res.samples} synthetic images vs on ${res.samples} real ones (≤ ${evalMinutes.toFixed(1)} min)`);
  const npz = readNpz(res.syntheticPath);
  const images = npz.images!;
  const synthetic = {
    images: images.data as Uint8Array,
    labels: toInt32Array(npz.labels!, 'labels'),
    count: images.shape[0]!,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
  };
  const realTest = { images: ds.test.images, labels: ds.test.labels, count: ds.test.count, height: ds.height, width: ds.width, channels: ds.channels };
  const half = (evalMinutes * 60) / 2;
  const onSynthetic = await evaluateSynthetic({ synthetic, realTest, numClasses: ds.numClasses, maxSeconds: half, seed: 1 });
  const n = Math.min(synthetic.count, ds.train.count);
  const per = ds.height * ds.width * ds.channels;
  const realSubset = { images: ds.train.images.subarray(0, n * per), labels: ds.train.labels.subarray(0, n), count: n, height: ds.height, width: ds.width, channels: ds.channels };
  const reference = await evaluateSynthetic({ synthetic: realSubset, realTest, numClasses: ds.numClasses, maxSeconds: half, seed: 1 });
  const strip = (r: typeof onSynthetic) => ({ testAccuracy: r.testAccuracy, bestEpochTestAccuracy: r.bestEpochTestAccuracy, epochs: r.epochs, trainImages: r.trainCount, testImages: r.testCount, seconds: +r.seconds.toFixed(1) });
  writeFileSync(
    join(dir, 'eval.json'),
    JSON.stringify(
      {
        synthetic: strip(onSynthetic),
        reference: strip(reference),
        protocol: `${onSynthetic.protocolDescription} The reference trains the same classifier for the same time on ${n} REAL training images without privacy: an engineering benchmark, not a private release.`,
      },
      null,
      2,
    ),
  );
  // The reference is trained WITHOUT privacy on real training images: its figures are released outside ε.
  listEvalJson(dir, {
    what: 'utility of the synthetic set, next to a non-private reference classifier trained on real training images',
    status: 'outside-guarantee',
    why: 'the reference figures come from a classifier trained on private training images without noise',
  });
  const report = await writeReport(dir);
  const priv = summarizePrivacy(readRunFolder(dir));
  return {
    name: 'DataLens synthetic data',
    dir,
    report,
    epsilon: priv.epsilon,
    delta: DELTA,
    seconds: (Date.now() - t0) / 1000,
    headline: { generatorSteps: res.generatorSteps, stoppedBy: res.stoppedBy, syntheticTestAccuracy: onSynthetic.testAccuracy, referenceTestAccuracy: reference.testAccuracy },
  };
}

function indexHtml(outDir: string, stages: StageResult[]): string {
  const rows = stages
    .map((s) => {
      const link = s.report ? `<a href="${escapeHtml(relative(outDir, s.report))}">${escapeHtml(s.name)}</a>` : escapeHtml(s.name);
      const eps = s.epsilon === undefined ? '—' : s.epsilon.toPrecision(3);
      const head = s.error
        ? `<span class="bad">failed: ${escapeHtml(s.error)}</span>`
        : Object.entries(s.headline)
            .map(([k, v]) => `${escapeHtml(k)} ${escapeHtml(typeof v === 'number' ? String(+v.toPrecision(4)) : v)}`)
            .join(' · ');
      return `<tr><td>${link}</td><td>${eps}</td><td>${s.delta}</td><td>${head}</td><td class="t">${s.seconds.toFixed(0)} s</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>dplens demo</title>
<style>body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:960px;margin:32px auto;padding:0 24px;color:#1d2430}
table{border-collapse:collapse}th,td{border-bottom:1px solid #e3e6eb;padding:6px 10px;text-align:left}thead th{background:#f7f8fa}a{color:#1f5fbf}.bad{color:#b3261e}.t{white-space:nowrap}</style>
</head><body>
<h1>dplens demo</h1>
<p>Two private runs on real MNIST. Each link opens a self-contained report: what was protected and how, samples, curves, utility and the exact command.</p>
<table><thead><tr><th>run</th><th>ε</th><th>δ</th><th>result</th><th>time</th></tr></thead><tbody>
${rows}
</tbody></table>
</body></html>
`;
}

const command: Command = {
  name: 'demo',
  summary: 'short DP-SGD training + DataLens synthesis on real MNIST, with reports (~10 min)',
  usage: 'dplens demo [--out DIR] [--minutes M] [--epsilon E]',
  description: [
    'Runs, on real MNIST (60,000 training images): a short DP-SGD training of a small CNN and a short',
    'DataLens synthesis of private synthetic digits, both at small ε with δ = 1e-5; then evaluates the',
    'synthetic data (classifier trained on it, tested on the real test set) against a non-private reference.',
    'Writes DIR/train/ and DIR/synth/ (each a run folder with its own self-contained report.html) and',
    'DIR/index.html linking both, and prints their paths. Randomness is cryptographically secure unless',
    '--seed is given. Total time is about --minutes on 2 cores.',
  ].join('\n'),
  flags: {
    minutes: { type: 'string', help: 'total time budget in minutes (default 10; minimum 2)' },
    epsilon: { type: 'string', help: 'ε for each of the two runs (default 1)' },
    only: { type: 'string', help: 'run only one stage: train | synth' },
  },
  examples: ['dplens demo', 'dplens demo --out runs/my-demo --minutes 5', 'dplens demo --only synth --epsilon 2 --json'],
  async run(args, out, argv) {
    const minutes = getNumber(args, 'minutes', 10, (x) => x >= 2 || 'must be >= 2')!;
    const epsilon = getNumber(args, 'epsilon', 1, (x) => x > 0 || 'must be > 0')!;
    const seed = getInteger(args, 'seed');
    const only = getString(args, 'only');
    if (only !== undefined && only !== 'train' && only !== 'synth') throw new UsageError(`--only must be train or synth, got "${only}"`);
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const outDir = resolve(getString(args, 'out') ?? join('runs', `demo-${timestamp()}`));
    if (existsSync(outDir) && readdirSync(outDir).length > 0) throw new UsageError(`--out ${outDir} is not empty: choose a new folder`);
    mkdirSync(outDir, { recursive: true });
    const t0 = Date.now();
    const { ensureEngine } = await import('../../generate/index.js');
    const threads = getInteger(args, 'threads', undefined, 1);
    const backend = await ensureEngine(threads ? { threads } : {});
    out.log(`dplens demo → ${outDir} (compute backend: ${backend}; ${seed === undefined ? 'secure randomness' : `SEEDED randomness (seed ${seed}) — not for real releases`})`);
    const ds = await loadMnistOnce(out);
    const stages: StageResult[] = [];
    const twoStages = only === undefined;
    // Shares of --minutes: DP-SGD 35 %, DataLens 45 %, utility evaluation 15 %, loading/reports the rest.
    if (only !== 'synth') stages.push(await trainStage(ds, join(outDir, 'train'), minutes * (twoStages ? 0.35 : 0.8), epsilon, seed, argv, out));
    if (only !== 'train') stages.push(await synthStage(ds, join(outDir, 'synth'), minutes * (twoStages ? 0.45 : 0.6), minutes * (twoStages ? 0.15 : 0.3), epsilon, seed, argv, out));
    const index = join(outDir, 'index.html');
    writeFileSync(index, indexHtml(outDir, stages));
    const seconds = (Date.now() - t0) / 1000;
    out.log(`\ndone in ${(seconds / 60).toFixed(1)} min. Open ${index}`);
    out.result({
      index,
      reports: stages.map((s) => s.report),
      seconds: +seconds.toFixed(1),
      runs: stages.map((s) => ({ name: s.name, dir: s.dir, epsilon: s.epsilon, delta: s.delta, ...s.headline })),
    });
    return 0;
  },
};
export default command;
