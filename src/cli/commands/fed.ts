/**
 * `dplens fed simulate|server|client`: federated protocols between real processes over WebSockets.
 *   simulate  a server and N clients (own connections and keys) on loopback, torn down at the end
 *   server    one server party; clients connect with `dplens fed client --url ws://HOST:PORT`
 *   client    one client party
 * Protocols: secagg (one secure-aggregation round, Bonawitz et al. 2017) and dp-fedavg (user-level
 * DP federated averaging with distributed discrete Gaussian noise and secure aggregation).
 */
import { UsageError, getBool, getChoice, getInteger, getNumber, getSeed, getString, stringFlags } from '../args.js';
import type { Command } from '../command.js';
import type { Output } from '../output.js';
import type { ParsedArgs } from '../args.js';
import { DATA_FLAG_SPECS } from '../../data/index.js';
import { runDpFedAvg, runFedClient, runSecAggServer, runSecAggSimulation } from '../../runs/fed.js';
import { dpSvmPartyInput, runDpSvm } from '../../runs/fed-dpsvm.js';
import { writeReport } from '../../report/index.js';
import { runCopml, runCopmlClient } from '../../runs/fed-copml.js';
import { COMPRESS_SCHEMES } from '../../federated/compress.js';

const SUBCOMMANDS = ['simulate', 'server', 'client'] as const;
const PROTOCOLS = ['secagg', 'dp-fedavg', 'copml', 'dp-svm'] as const;
const PHASES = ['keys', 'shares', 'masked', 'unmask'] as const;

const FLAGS = {
  protocol: 'secagg (secure aggregation alone), dp-fedavg, or dp-svm (locally trained models averaged with one secure summation, record-level DP; simulate, or server + clients started with fed client --protocol dp-svm); copml (logistic regression on Lagrange-coded data, not DP; simulate, or server + clients started with fed client --protocol copml --data --shard K --shards N)',
  clients: 'number of clients N',
  colluding: 'copml: T, how many colluding parties learn nothing about the data (default 1); needs N ≥ (2r+1)(K+T−1)+1',
  degree: 'copml: degree r of the polynomial sigmoid approximation, 1 or 3 (default 1)',
  blocks: 'copml: K, the number of data blocks (default: the largest with (2r+1)(K+T−1)+1 ≤ N); a smaller K needs fewer results per iteration, so more parties may drop out',
  'fit-range': 'copml: the sigmoid polynomial is the least-squares fit on [−R, R] (default 2)',
  dim: 'secagg: vector length D',
  neighbors: 'secagg/dp-fedavg/dp-svm: SecAgg+ (Bell et al. CCS 2020): each client masks and shares keys only with K neighbours on a public random K-regular graph (even K; K >= clients − 1 = complete graph). Default: SecAgg+\'s K for ≤ 10 % colluding clients, ≤ 1/3 dropouts, 2^-40 / 2^-20 (e.g. 236 at 1,000 clients), the complete graph while that K is above clients/2',
  dropout: 'fraction of clients that crash after sharing keys (simulate; per round for dp-fedavg; < 1/3 to succeed)',
  rounds: 'number of rounds (dp-fedavg default 20; copml: gradient-descent iterations, default 30; secagg server default 1)',
  epsilon: 'dp-fedavg: total ε of all rounds (user level, replace-one); the noise is calibrated to it',
  delta: 'dp-fedavg: δ (default 1e-5)',
  clip: 'dp-fedavg: L2 clipping norm of each client update (default 1)',
  'local-epochs': 'dp-fedavg: local epochs per round (default 1)',
  batch: 'dp-fedavg: local batch size (default 32)',
  lr: 'dp-fedavg: client learning rate (default 0.5); copml: full-batch gradient-descent step on the mean gradient (default 2; use ~0.2 for mnist)',
  'server-lr': 'dp-fedavg: server learning rate applied to the average update (default 1)',
  'examples-per-client': 'dp-fedavg simulate: training examples per client (default: all, split evenly)',
  lambda: 'dp-svm: L2 regularisation λ of each party\'s one-vs-rest logistic model (default 0.003)',
  iterations: 'dp-svm: full-batch gradient-descent iterations per party (default 700)',
  'phase-timeout': 'seconds a protocol phase waits for answers before counting the silent clients as dropouts (default 120)',
  host: 'server: address to listen on (default 127.0.0.1)',
  port: 'server: port (default 8765)',
  url: 'client: server address, e.g. ws://127.0.0.1:8765',
  shard: 'client, dp-fedavg/dp-svm: this party holds training examples i with i mod --shards = K − 1',
  shards: 'client, dp-fedavg/dp-svm: number of slices N',
  'hold-at': 'client, testing: stop answering at this phase of round 1 (keys|shares|masked|unmask) and wait to be killed',
  compress: 'dp-fedavg: client upload compression none|sketch|randk|topk-shared|sign (default none), with client-side error feedback; every scheme composes with secure aggregation (public per-round plan) and is clipped after compression. client: refuse rounds with another scheme',
  'compress-ratio': 'dp-fedavg: upload reduction factor R for sketch/randk/topk-shared: m ≈ d/R values per client (default 10)',
  'hold-after-charge': 'dp-fedavg, testing: after charging round N in the ledger (before unmasking), stop and wait to be killed',
};

/** Which flags apply to (sub-command, protocol); anything else given is an error. */
const APPLIES: Record<string, readonly string[]> = {
  'simulate secagg': ['protocol', 'clients', 'dim', 'dropout', 'phase-timeout', 'seed', 'neighbors'],
  'simulate copml': ['protocol', 'clients', 'colluding', 'blocks', 'degree', 'fit-range', 'rounds', 'lr', 'dropout', 'phase-timeout', 'data', 'data-path', 'out'],
  'simulate dp-fedavg': ['protocol', 'clients', 'dropout', 'rounds', 'epsilon', 'delta', 'clip', 'local-epochs', 'batch', 'lr', 'server-lr', 'examples-per-client', 'phase-timeout', 'data', 'data-path', 'out', 'seed', 'compress', 'compress-ratio', 'hold-after-charge', 'neighbors'],
  'resume dp-fedavg': ['protocol', 'resume', 'out', 'data-path', 'phase-timeout', 'host', 'port', 'hold-after-charge'],
  'simulate dp-svm': ['protocol', 'clients', 'dropout', 'epsilon', 'delta', 'lambda', 'iterations', 'examples-per-client', 'phase-timeout', 'data', 'out', 'seed', 'neighbors'],
  'server secagg': ['protocol', 'clients', 'dim', 'rounds', 'host', 'port', 'phase-timeout', 'neighbors'],
  'server dp-fedavg': ['protocol', 'clients', 'rounds', 'epsilon', 'delta', 'clip', 'local-epochs', 'batch', 'lr', 'server-lr', 'phase-timeout', 'data', 'data-path', 'out', 'seed', 'host', 'port', 'compress', 'compress-ratio', 'hold-after-charge', 'neighbors'],
  client: ['url', 'data', 'data-path', 'shard', 'shards', 'seed', 'hold-at', 'phase-timeout', 'compress', 'protocol'],
  'server copml': ['protocol', 'clients', 'colluding', 'blocks', 'degree', 'fit-range', 'rounds', 'lr', 'phase-timeout', 'data', 'data-path', 'out', 'host', 'port'],
  'server dp-svm': ['protocol', 'clients', 'epsilon', 'delta', 'lambda', 'iterations', 'examples-per-client', 'phase-timeout', 'data', 'out', 'seed', 'host', 'port', 'neighbors'],
};
const ALWAYS = new Set(['json', 'quiet', 'help', 'threads']);

function checkApplicable(args: ParsedArgs, key: string): void {
  const ok = new Set(APPLIES[key]);
  for (const name of args.flags.keys()) {
    if (!ALWAYS.has(name) && !ok.has(name)) throw new UsageError(`--${name} does not apply to fed ${key}`);
  }
}

const command: Command = {
  name: 'fed',
  summary: 'federated protocols over real sockets: secure aggregation (Bonawitz, SecAgg+), DP-FedAvg, DP-SVM averaging, COPML',
  usage: 'dplens fed simulate|server|client --protocol secagg|dp-fedavg|dp-svm|copml [options]',
  description:
    'Parties talk over WebSockets (library ws; per-message size limit, phase timeouts). A client that disconnects, times out, or sends a malformed or oversized message is a dropout, not a crash. secagg: one round of secure aggregation (Bonawitz et al. CCS 2017: X25519, AES-CTR masks, Shamir shares of mask keys and self-mask seeds, AES-GCM routed shares, Z_2^32, tolerates up to 1/3 dropouts); prints sumCorrect, survivors, bytesPerClient, expansion, seconds. dp-fedavg: user-level DP federated averaging (softmax regression) with client-side clipping and distributed discrete Gaussian noise (Kairouz et al. 2021) through secure aggregation; each round is recorded in the server\'s ledger before the sum is unmasked; writes a run folder with a report. The guarantee is user-level replace-one (ε, δ)-DP: the clients and their number are public. --compress: clients upload a compressed vector (public per-round plan, error feedback, clipped after compression; bytesPerRound and compression in the JSON). --resume: continue a crashed dp-fedavg server from its last committed round (fed-state.json; charged-but-uncommitted rounds stay charged).',
  flags: { ...stringFlags(FLAGS), ...DATA_FLAG_SPECS, resume: { type: 'boolean', help: 'dp-fedavg (simulate|server): continue the run in --out from its last committed round with its stored configuration (other flags but --data-path, --phase-timeout, --host, --port are refused); the ledger keeps every charge' } },
  examples: [
    'dplens fed simulate --protocol secagg --clients 100 --dim 100000 --dropout 0.3 --json',
    'dplens fed simulate --protocol dp-fedavg --data mnist --clients 20 --rounds 20 --epsilon 4 --out runs/fedavg --json',
    'dplens fed simulate --protocol dp-fedavg --data mnist --clients 20 --rounds 20 --epsilon 4 --compress randk --compress-ratio 10 --out runs/fedavg-rk --json',
    'dplens fed simulate --protocol dp-fedavg --resume --out runs/fedavg   # after a crash: continue from the last committed round',
    'dplens fed simulate --protocol copml --data adult --clients 7 --colluding 1 --rounds 30 --out runs/copml --json',
    'dplens fed server --protocol copml --data adult --clients 5 --port 8766 --out runs/copml-procs   # then, for k = 1..5:',
    'dplens fed client --protocol copml --url ws://127.0.0.1:8766 --data adult --shard k --shards 5',
    'dplens fed server --protocol secagg --clients 3 --dim 1000 --port 8765   # then, three times:',
    'dplens fed client --url ws://127.0.0.1:8765',
  ],
  async run(args: ParsedArgs, out: Output, argv: string[]): Promise<number> {
    const sub = args.positionals[0];
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`fed needs a sub-command: ${SUBCOMMANDS.join('|')}`);
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
    const phaseTimeoutMs = 1000 * getNumber(args, 'phase-timeout', 120, (x) => x > 0 || 'must be > 0')!;
    if (sub === 'client') {
      checkApplicable(args, 'client');
      const url = getString(args, 'url');
      if (!url || !/^wss?:\/\/[^\s]+$/.test(url)) throw new UsageError('--url is required (ws://HOST:PORT)');
      const holdAt = args.flags.has('hold-at') ? getChoice(args, 'hold-at', PHASES, 'keys') : undefined;
      const compress = args.flags.has('compress') ? getChoice(args, 'compress', COMPRESS_SCHEMES, 'none') : undefined;
      // dp-svm parties prepare the public feature map before connecting; other protocols are told by the server
      const clientProtocol = args.flags.has('protocol') ? getChoice(args, 'protocol', ['secagg', 'dp-fedavg', 'dp-svm', 'copml'] as const, 'secagg') : undefined;
      if (clientProtocol === 'copml') {
        // a copml party: its own slice of rows, Lagrange-coded to the others (runs/fed-copml.ts)
        const shard = getInteger(args, 'shard', undefined, 1);
        const shards = getInteger(args, 'shards', undefined, 1);
        if (!args.flags.has('data') || shard === undefined || shards === undefined) throw new UsageError('a copml client needs --data adult|mnist, --shard K and --shards N');
        if (shard > shards) throw new UsageError(`--shard must be in [1, --shards], got ${shard}`);
        if (compress || args.flags.has('seed')) throw new UsageError(`--${compress ? 'compress' : 'seed'} does not apply to copml (its masks come from node:crypto)`);
        if (holdAt !== undefined && holdAt !== 'masked') throw new UsageError('copml clients hold only at --hold-at masked (before answering iteration 1)');
        const r = await runCopmlClient({ url, data: getChoice(args, 'data', ['adult', 'mnist'] as const, 'adult'), dataPath: getString(args, 'data-path'), shard, shards, timeoutMs: phaseTimeoutMs * 5, ...(holdAt ? { holdAtIteration: 1 } : {}), onLog: (l) => out.log(l) });
        out.result({ protocol: 'copml', id: r.id, iterations: r.iterations, bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, ended: r.ended });
        if (r.ended !== 'done') out.log(`copml party ended early: ${r.ended}`);
        return r.ended === 'done' ? 0 : 1;
      }
      let svmInput: Awaited<ReturnType<typeof dpSvmPartyInput>> | undefined;
      if (clientProtocol === 'dp-svm') {
        const data = getString(args, 'data');
        const shard = getInteger(args, 'shard', undefined, 1);
        const shards = getInteger(args, 'shards', undefined, 1);
        if (!data || shard === undefined || shards === undefined) throw new UsageError('a dp-svm client needs --data, --shard K and --shards N');
        if (shard > shards) throw new UsageError(`--shard must be in [1, --shards], got ${shard}`);
        if (compress) throw new UsageError('--compress does not apply to dp-svm');
        const seed = getSeed(args);
        svmInput = await dpSvmPartyInput({ data, dataPath: getString(args, 'data-path'), shard, shards, ...(seed !== undefined ? { seed } : {}), onLog: (l) => out.log(l) });
      }
      const r = await runFedClient({ url, data: getString(args, 'data'), dataPath: getString(args, 'data-path'), shard: getInteger(args, 'shard', undefined, 1), shards: getInteger(args, 'shards', undefined, 1), seed: getSeed(args), holdAt, timeoutMs: phaseTimeoutMs * 5, ...(compress ? { compress } : {}), ...(svmInput ? { svmInput } : {}), onLog: (l) => out.log(l) });
      out.result({ id: r.id, rounds: r.rounds, bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, ended: r.ended });
      return r.ended === 'done' ? 0 : 1;
    }
    const protocol = getChoice(args, 'protocol', PROTOCOLS, 'secagg');
    const resume = getBool(args, 'resume');
    if (resume && protocol !== 'dp-fedavg') throw new UsageError('--resume applies only to --protocol dp-fedavg');
    checkApplicable(args, resume ? 'resume dp-fedavg' : `${sub} ${protocol}`);
    const host = getString(args, 'host', '127.0.0.1');
    const port = getInteger(args, 'port', 8765, 0)!;
    if (resume) {
      const outDir = getString(args, 'out');
      if (!outDir) throw new UsageError('--resume needs --out (the run folder to continue)');
      // the stored job wins: every numeric field below is replaced by the run's config.json
      const r = await runDpFedAvg({
        data: '',
        dataPath: getString(args, 'data-path'),
        out: outDir,
        clients: 0,
        rounds: 0,
        epsilon: 0,
        delta: 0,
        clip: 0,
        localEpochs: 0,
        batch: 0,
        lr: 0,
        serverLr: 0,
        dropout: 0,
        resume: true,
        phaseTimeoutMs,
        argv: ['dplens', ...argv],
        ...(sub === 'server' ? { external: { host, port } } : {}),
        ...(args.flags.has('hold-after-charge') ? { holdAfterCharge: getInteger(args, 'hold-after-charge', undefined, 1)! } : {}),
        onLog: (l) => out.log(l),
        onRound: (s) => out.log(`round ${s.round}: ${s.status === 'ok' ? `${s.survivors} survivors` : s.status}, test accuracy ${(100 * s.testAccuracy).toFixed(2)}%, ε ${s.epsilon.toFixed(3)}`),
      });
      out.log(`report: ${await writeReport(r.runDir)}`);
      const { datasetFingerprint: _fp, ...shown } = r;
      out.result({ protocol, ...shown, report: `${r.runDir}/report.html` });
      return 0;
    }
    const clients = getInteger(args, 'clients', undefined, 3);
    if (clients === undefined) throw new UsageError('--clients is required (>= 3)');
    const dropout = getNumber(args, 'dropout', 0, (x) => (x >= 0 && x < 1) || 'must be in [0, 1)')!;
    if (protocol === 'secagg') {
      const dim = getInteger(args, 'dim', undefined, 1);
      if (dim === undefined) throw new UsageError('--dim is required for secagg');
      if (sub === 'server') {
        const r = await runSecAggServer({ clients, dim, rounds: getInteger(args, 'rounds', 1, 1)!, host, port, phaseTimeoutMs, neighbors: getInteger(args, 'neighbors', undefined, 2), onLog: (l) => out.log(l) });
        out.result(r);
        return 0;
      }
      const r = await runSecAggSimulation({ clients, dim, dropout, seed: getSeed(args), phaseTimeoutMs, neighbors: getInteger(args, 'neighbors', undefined, 2), onLog: (l) => out.log(l) });
      out.result({ protocol, ...r });
      return r.sumCorrect ? 0 : 1;
    }
    if (protocol === 'copml') {
      const copmlOut = getString(args, 'out');
      if (!copmlOut) throw new UsageError('--out is required for copml (the run folder: config, metrics, model, report)');
      const r = await runCopml({
        data: getChoice(args, 'data', ['adult', 'mnist'] as const, 'adult'),
        dataPath: getString(args, 'data-path'),
        out: copmlOut,
        clients,
        colluding: getInteger(args, 'colluding', 1, 1)!,
        rounds: getInteger(args, 'rounds', 30, 1)!,
        degree: getChoice(args, 'degree', ['1', '3'] as const, '1') === '3' ? 3 : 1,
        ...(args.flags.has('blocks') ? { blocks: getInteger(args, 'blocks', undefined, 1)! } : {}),
        lr: getNumber(args, 'lr', 2, (x) => x > 0 || 'must be > 0')!,
        fitRange: getNumber(args, 'fit-range', 2, (x) => x > 0 || 'must be > 0')!,
        lx: 8,
        lw: 10,
        lc: 8,
        dropouts: Math.round(dropout * clients),
        timeoutMs: phaseTimeoutMs,
        ...(sub === 'server' ? { external: { host, port } } : {}),
        argv: ['dplens', ...argv],
        onLog: (l) => out.log(l),
      });
      out.log(`report: ${await writeReport(r.runDir)}`);
      out.result({ ...r, report: `${r.runDir}/report.html` });
      return 0;
    }
    if (protocol === 'dp-svm') {
      const data = getString(args, 'data');
      if (!data) throw new UsageError('--data is required for dp-svm (mnist or fashion-mnist)');
      const outDir = getString(args, 'out');
      if (!outDir) throw new UsageError('--out is required for dp-svm (the run folder: ledger, config, report)');
      const epsilon = getNumber(args, 'epsilon', undefined, (x) => x > 0 || 'must be > 0');
      if (epsilon === undefined) throw new UsageError('--epsilon is required for dp-svm');
      const r = await runDpSvm({
        data,
        out: outDir,
        clients,
        examplesPerClient: getInteger(args, 'examples-per-client', 50, 1)!,
        epsilon,
        delta: getNumber(args, 'delta', 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!,
        lambda: getNumber(args, 'lambda', 0.003, (x) => x > 0 || 'must be > 0')!,
        iterations: getInteger(args, 'iterations', 700, 1)!,
        neighbors: getInteger(args, 'neighbors', undefined, 2),
        dropout,
        seed: getSeed(args),
        phaseTimeoutMs,
        argv: ['dplens', ...argv],
        ...(sub === 'server' ? { external: { host, port } } : {}),
        onLog: (l) => out.log(l),
      });
      out.log(`report: ${await writeReport(r.runDir)}`);
      const { datasetFingerprint: _fp, ...shown } = r;
      out.result({ protocol, ...shown, report: `${r.runDir}/report.html` });
      return 0;
    }
    const data = getString(args, 'data');
    if (!data) throw new UsageError('--data is required for dp-fedavg (e.g. mnist)');
    const outDir = getString(args, 'out');
    if (!outDir) throw new UsageError('--out is required for dp-fedavg (the run folder: ledger, config, report)');
    const epsilon = getNumber(args, 'epsilon', undefined, (x) => x > 0 || 'must be > 0');
    if (epsilon === undefined) throw new UsageError('--epsilon is required for dp-fedavg');
    const positive = (x: number): true | string => x > 0 || 'must be > 0';
    const scheme = getChoice(args, 'compress', COMPRESS_SCHEMES, 'none');
    if (args.flags.has('compress-ratio') && (scheme === 'none' || scheme === 'sign')) throw new UsageError(`--compress-ratio does not apply to --compress ${scheme} (it uploads all d coordinates)`);
    const r = await runDpFedAvg({
      data,
      dataPath: getString(args, 'data-path'),
      out: outDir,
      clients,
      examplesPerClient: getInteger(args, 'examples-per-client', undefined, 1),
      rounds: getInteger(args, 'rounds', 20, 1)!,
      epsilon,
      delta: getNumber(args, 'delta', 1e-5, (x) => (x > 0 && x < 1) || 'must be in (0, 1)')!,
      clip: getNumber(args, 'clip', 1, positive)!,
      localEpochs: getInteger(args, 'local-epochs', 1, 1)!,
      batch: getInteger(args, 'batch', 32, 1)!,
      lr: getNumber(args, 'lr', 0.5, positive)!,
      serverLr: getNumber(args, 'server-lr', 1, positive)!,
      neighbors: getInteger(args, 'neighbors', undefined, 2),
      dropout,
      seed: getSeed(args),
      phaseTimeoutMs,
      argv: ['dplens', ...argv],
      compress: { scheme, ratio: getNumber(args, 'compress-ratio', 10, (x) => (x >= 1 && Number.isFinite(x)) || 'must be a finite number >= 1')! },
      ...(args.flags.has('hold-after-charge') ? { holdAfterCharge: getInteger(args, 'hold-after-charge', undefined, 1)! } : {}),
      ...(sub === 'server' ? { external: { host, port } } : {}),
      onLog: (l) => out.log(l),
      onRound: (s) => out.log(`round ${s.round}: ${s.status === 'ok' ? `${s.survivors} survivors` : s.status}, test accuracy ${(100 * s.testAccuracy).toFixed(2)}%, ε ${s.epsilon.toFixed(3)}`),
    });
    out.log(`report: ${await writeReport(r.runDir)}`);
    const { datasetFingerprint: _fp, ...shown } = r;
    out.result({ protocol, ...shown, report: `${r.runDir}/report.html` });
    return 0;
  },
};

export default command;
