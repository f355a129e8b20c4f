/**
 * Issue 12 #12 acceptance figures: 1-epoch MNIST DP-SGD runs at σ = 0 and σ = 1.3 (CNN, batch 240,
 * C = 1.5, lr 0.25, δ = 1e-5), each audited with 1,000 gradient canaries through the CLI, exactly
 * as a user would: `dplens train ... --out R && dplens audit --run R --json`. Prints bound, claim,
 * extra ε spent by the audit and wall times. About 4 minutes on 2 cores.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = mkdtempSync(join(tmpdir(), 'dplens-bench-audit-'));
const cli = (args: string[]): Record<string, unknown> => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--json', '--quiet'], { encoding: 'utf8', maxBuffer: 1 << 26 })) as Record<string, unknown>;
try {
  for (const noise of ['0', '1.3']) {
    const dir = join(root, `s${noise}`);
    let t = Date.now();
    cli(['train', '--data', 'mnist', '--model', 'cnn', '--epochs', '1', '--batch', '240', '--noise', noise, '--clip', '1.5', '--lr', '0.25', '--delta', '1e-5', '--out', dir]);
    const trainWall = (Date.now() - t) / 1000;
    t = Date.now();
    const a = cli(['audit', '--run', dir]);
    const auditWall = (Date.now() - t) / 1000;
    console.log(JSON.stringify({ noise: Number(noise), claimedEpsilon: a.claimedEpsilon, empiricalEpsilonLowerBound: a.empiricalEpsilonLowerBound, auc: a.auc, guesses: a.guesses, additionalEpsilonSpent: a.additionalEpsilonSpent, trainWallSeconds: trainWall, auditWallSeconds: auditWall }));
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
