/**
 * glibc malloc tuning for processes that run the engine (issue 18, measured 2026-12-07).
 *
 * onnxruntime-node copies every kernel output into a fresh ArrayBuffer (calloc). In a Node
 * process glibc served these multi-MB buffers with a fresh mmap each time (its dynamic mmap
 * threshold did not adapt), so the binding's copy page-faulted every page of every large output:
 * a 1024³ MatMul (4 MB output) cost 4.7–7.4 ms of *system* time per call on top of ~12 ms of
 * GEMM CPU (the 2-core VM runs with PTI, so faults are dear), which is why `bench:engine`'s
 * 1024³ figure (107 GFLOP/s on a quiet machine) stayed far below what MLAS computes
 * (176 GFLOP/s per core). A fixed mmap threshold above the largest tensor (and a trim threshold
 * that keeps freed heap) makes glibc reuse heap memory instead: system time per call ~0.
 *
 * Tunables are read by the dynamic loader at exec time only, so a process cannot set them for
 * itself: `relaunchWithMallocTuning()` re-executes the current entry point once with them set
 * (for benchmarks and CLI entry points; call it before any work and wait for its status). Memory freed by tensors then
 * stays in the process (RSS keeps its peak) instead of going back to the OS.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';

/** mmap only above 256 MiB; trim the heap only above 512 MiB free. */
export const GLIBC_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=536870912';

/** Whether this process was started with a fixed glibc mmap threshold. */
export function mallocTuningActive(): boolean {
  return /(^|:)glibc\.malloc\.mmap_threshold=/.test(process.env.GLIBC_TUNABLES ?? '');
}

/**
 * Re-runs this process's entry point with GLIBC_MALLOC_TUNABLES added to GLIBC_TUNABLES (same
 * node flags, arguments, stdio). Returns undefined when no relaunch is needed (not Linux, tuning
 * already active, or inside such a relaunch: then just carry on); otherwise a promise of the
 * child's exit status (128 + signal number if a signal ended it), and the caller must do no work
 * of its own. SIGINT, SIGTERM and SIGHUP are forwarded to the child, so a time-out or Ctrl-C
 * that hits this process does not leave the relaunched one running. Other C libraries ignore
 * GLIBC_TUNABLES.
 */
export function relaunchWithMallocTuning(): Promise<number> | undefined {
  if (process.env.DPLENS_MALLOC_RELAUNCH === '1') {
    exitWithLauncher();
    return undefined;
  }
  if (process.platform !== 'linux' || mallocTuningActive()) return undefined;
  const tunables = [process.env.GLIBC_TUNABLES, GLIBC_MALLOC_TUNABLES].filter((t) => t).join(':');
  // fd 3: a pipe whose write end only the launcher holds; it closes when the launcher dies in
  // any way (kill -9 included), and the relaunched process then ends itself (exitWithLauncher).
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
    env: { ...process.env, GLIBC_TUNABLES: tunables, DPLENS_MALLOC_RELAUNCH: '1', DPLENS_LAUNCHER_FD: '3' },
  });
  const forward = (sig: NodeJS.Signals) => () => void child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forward(sig));
  return new Promise((resolve) => {
    child.on('error', () => resolve(1));
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)));
  });
}

let watchingLauncher = false;

/**
 * In a relaunched process: end it (SIGKILL, as its launcher got) as soon as the launcher is gone.
 * A `kill -9` of the launcher cannot be forwarded, and an orphaned run would go on writing its
 * run folder beside a resumed one (the ledger lock would refuse the resume, but the orphan would
 * still spend CPU). The watch is unref'd: it never keeps the process alive by itself.
 */
function exitWithLauncher(): void {
  const fd = Number(process.env.DPLENS_LAUNCHER_FD);
  if (watchingLauncher || !Number.isInteger(fd) || fd < 3) return;
  watchingLauncher = true;
  delete process.env.DPLENS_LAUNCHER_FD; // not inherited by this process's own children
  try {
    const pipe = new net.Socket({ fd, readable: true, writable: false });
    const gone = (): void => void process.kill(process.pid, 'SIGKILL');
    pipe.on('end', gone);
    pipe.on('error', gone);
    pipe.resume();
    pipe.unref();
  } catch {
    // no such pipe (started by hand with the variable set): nothing to watch
  }
}
