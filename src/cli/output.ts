/**
 * Output conventions of every command: with --json exactly one JSON object goes to stdout and
 * everything else (logs, progress) to stderr; --quiet silences progress.
 */
export interface OutputOptions {
  json: boolean;
  quiet: boolean;
}

export class Output {
  constructor(readonly opts: OutputOptions) {}

  /** Human-readable log line (stderr, so stdout stays machine-readable). */
  log(msg: string): void {
    if (!this.opts.quiet) process.stderr.write(msg + '\n');
  }

  /** Final result: JSON on stdout in --json mode, otherwise a readable key: value listing. */
  result(obj: Record<string, unknown>): void {
    if (this.opts.json) {
      process.stdout.write(JSON.stringify(obj) + '\n');
    } else {
      for (const [k, v] of Object.entries(obj)) {
        process.stdout.write(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
      }
    }
  }

  /** A progress bar on stderr, only when interactive output is wanted (not --json, not --quiet). */
  progress(total: number, label: string): Progress {
    return new Progress(total, label, !this.opts.json && !this.opts.quiet);
  }
}

export class Progress {
  private readonly start = Date.now();
  private lastDraw = 0;
  constructor(
    readonly total: number,
    readonly label: string,
    private readonly enabled: boolean,
  ) {}

  /** Update to `done` of `total`; `info` holds e.g. { loss, eps }. Redraws at most 10×/s. */
  update(done: number, info: Record<string, number | string> = {}): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 ? elapsed * (1 / frac - 1) : NaN;
    const extra = Object.entries(info)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNum(v) : v}`)
      .join('  ');
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total}  ${extra}  ${formatSecs(elapsed)} elapsed, ETA ${Number.isFinite(eta) ? formatSecs(eta) : '?'}`;
    process.stderr.write((process.stderr.isTTY ? '\r\x1b[K' : '') + line + (process.stderr.isTTY ? '' : '\n'));
  }

  done(): void {
    if (this.enabled && process.stderr.isTTY) process.stderr.write('\n');
  }
}

function formatNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a < 10 ? 4 : 2);
}

function formatSecs(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
