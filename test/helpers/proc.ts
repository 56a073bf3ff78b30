// Child processes that cannot outlive the test: every spawned child is remembered by PID and
// killed at tap teardown (when a test object is given), at process exit and on SIGINT/SIGTERM/SIGHUP.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** The part of a tap Test this module needs (keeps the helper independent of tap's types). */
export interface Teardownable { teardown(fn: () => unknown): void }

export interface SpawnTrackedOptions extends SpawnOptions {
  /** Kill the child when this test ends. */
  t?: Teardownable;
  /** Keep at most this many characters of stdout/stderr in `output()` (default 256 KiB each). */
  maxOutput?: number;
}

export interface TrackedChild {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or 128+signal number) once the process is gone. */
  exited: Promise<number>;
  exitCode(): number | undefined;
  output(): { stdout: string; stderr: string };
  /** Signal by PID; no-op once exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
}

const live = new Map<number, ChildProcess>();
let hooksInstalled = false;

function killPid(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

/** SIGKILL every tracked child that is still running (sync: usable from an 'exit' handler). */
export function killAllTracked(): void {
  for (const pid of live.keys()) killPid(pid, 'SIGKILL');
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllTracked);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllTracked();
      // Restore the default action when nobody else handles the signal, so the process still dies.
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGTERM: 15 };

/** Spawn `cmd` (no shell) and track it until it exits. Throws if the spawn itself fails (ENOENT). */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnTrackedOptions = {}): TrackedChild {
  installHooks();
  const { t, maxOutput = 256 * 1024, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
  if (child.pid === undefined) throw new Error(`cannot spawn ${cmd}`);
  const pid = child.pid;
  live.set(pid, child);

  let stdout = '';
  let stderr = '';
  // Keep the tail: the end of a SIPp/etcd log is where the summary or the fatal error is.
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { stdout = (stdout + s).slice(-maxOutput); });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-maxOutput); });

  let code: number | undefined;
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => { /* reported through 'close' with code null */ });
    child.once('close', (c, sig) => {
      live.delete(pid);
      code = c ?? 128 + (sig ? SIGNAL_NUMBERS[sig] ?? 0 : 0);
      resolve(code);
    });
  });

  const tracked: TrackedChild = {
    child,
    pid,
    exited,
    exitCode: () => code,
    output: () => ({ stdout, stderr }),
    kill: (signal = 'SIGTERM') => { if (code === undefined) killPid(pid, signal); },
    stop: async (graceMs = 2000) => {
      if (code !== undefined) return code;
      killPid(pid, 'SIGTERM');
      const timer = setTimeout(() => killPid(pid, 'SIGKILL'), graceMs);
      try { return await exited; } finally { clearTimeout(timer); }
    },
  };
  t?.teardown(() => tracked.stop(1000));
  return tracked;
}

/** Resolve with the first line of stdout or stderr matching `re`; reject on timeout or exit. */
export function waitForLine(tc: TrackedChild | ChildProcess, re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
  const child = 'child' in tc ? tc.child : tc;
  return new Promise((resolve, reject) => {
    const partial: Record<'out' | 'err', string> = { out: '', err: '' };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('close', onClose);
    };
    const scan = (which: 'out' | 'err', chunk: Buffer | string): void => {
      const lines = (partial[which] + chunk.toString()).split(/\r?\n/);
      partial[which] = lines.pop() ?? '';
      for (const line of lines) {
        const m = line.match(re);
        if (m) { cleanup(); resolve(m); return; }
      }
    };
    const onOut = (c: Buffer | string): void => scan('out', c);
    const onErr = (c: Buffer | string): void => scan('err', c);
    const onClose = (c: number | null): void => { cleanup(); reject(new Error(`process exited (${c}) before printing ${re}`)); };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no line matching ${re} within ${timeoutMs} ms`)); }, timeoutMs);
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('close', onClose);
  });
}
