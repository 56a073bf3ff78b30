// Run the SIPp scenarios of bench/sipp as real processes, bounded in time and counted from
// SIPp's own statistics file (-trace_stat), never from its screen.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './net.js';
import { spawnTracked, type Teardownable, type TrackedChild } from './proc.js';

export const SIPP_DIR: string = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/sipp');

let available: boolean | undefined;
export function sippAvailable(): boolean {
  available ??= spawnSync('sipp', ['-v'], { stdio: 'ignore', timeout: 5000 }).error === undefined;
  return available;
}

export interface SippResult {
  exitCode: number;
  successful: number;
  failed: number;
  retransmissions: number;
  outOfCallMsgs?: number;
  deadCallMsgs?: number;
  responseTimeMs?: { p50?: number; p99?: number; max?: number; count: number };
  /** Every (C) counter of the last statistics row, by SIPp's column name without "(C)". */
  counters: Record<string, number>;
  /** Lines written by <log> actions (uac scenarios log "backend=<ip:port> call_id=<id>"). */
  logs: string[];
  /** X-Backend of every answered call, in order, parsed from `logs`. */
  backends: string[];
  /** True when the hard time bound, not SIPp, ended the run. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Paths kept for debugging: the run's temp dir and its -trace_msg / -trace_err files. */
  dir: string;
  messages?: string;
  errors?: string;
}

type Transport = 'udp' | 'tcp';

interface CommonOptions {
  scenario: string;
  transport?: Transport;
  /** -trace_msg (default true; turn off for load runs). */
  traceMsg?: boolean;
  /** Remove the temp dir when this test ends (otherwise at process exit). */
  t?: Teardownable;
  extra?: string[];
}

export interface UacOptions extends CommonOptions {
  target: string;
  localIp?: string;
  localPort?: number;
  calls: number;
  rate?: number;
  ratePeriodMs?: number;
  durationMs?: number;
  timeoutS?: number;
  service?: string;
  /** -recv_timeout in ms, so a lost answer fails the call instead of stalling the run (default 10000). */
  recvTimeoutMs?: number;
}

export interface UasOptions extends CommonOptions {
  ip: string;
  port?: number;
  /** -d for the scenarios that pause (callee BYE / re-INVITE) */
  durationMs?: number;
}

export interface SippUas {
  ip: string;
  port: number;
  pid: number;
  /** 'ip:port' as the UAS writes it into X-Backend. */
  id: string;
  dir: string;
  running(): boolean;
  /** Soft stop (SIGUSR1: finish open calls), forced abort after `graceMs`, SIGKILL as last resort. */
  stop(graceMs?: number): Promise<SippResult>;
}

const KEEP = process.env.SIPEDGE_KEEP_SIPP === '1';
const tempDirs = new Set<string>();
process.on('exit', () => { if (!KEEP) for (const d of tempDirs) rmSync(d, { recursive: true, force: true }); });

function makeRunDir(t: Teardownable | undefined, tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sipedge-sipp-${tag}-`));
  tempDirs.add(dir);
  t?.teardown(() => {
    if (KEEP) return;
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  });
  return dir;
}

export function scenarioPath(scenario: string): string {
  if (isAbsolute(scenario)) return scenario;
  return join(SIPP_DIR, scenario.endsWith('.xml') ? scenario : `${scenario}.xml`);
}

/** Arguments shared by both roles: transport, statistics, traces. Files land in `dir` (SIPp's cwd). */
function commonArgs(o: CommonOptions, dir: string): string[] {
  const args = [
    '-sf', scenarioPath(o.scenario),
    '-t', o.transport === 'tcp' ? 't1' : 'u1',
    '-nostdin',
    '-trace_stat', '-stf', join(dir, 'stat.csv'), '-fd', '1',
    '-trace_err', '-error_file', join(dir, 'errors.log'),
    '-trace_logs', '-log_file', join(dir, 'logs.log'),
    '-trace_rtt', '-rtt_freq', '1',
  ];
  if (o.traceMsg !== false) args.push('-trace_msg', '-message_file', join(dir, 'messages.log'));
  return args;
}

export async function runUac(o: UacOptions): Promise<SippResult> {
  const dir = makeRunDir(o.t, 'uac');
  const timeoutS = o.timeoutS ?? 30;
  const args = [o.target, ...commonArgs(o, dir),
    '-i', o.localIp ?? '127.0.0.1', '-bind_local',
    '-m', String(o.calls),
    '-r', String(o.rate ?? 10),
    '-rp', `${o.ratePeriodMs ?? 1000}ms`,
    '-d', `${o.durationMs ?? 0}ms`,
    '-s', o.service ?? 'service',
    '-recv_timeout', `${o.recvTimeoutMs ?? 10000}ms`,
    // SIPp's own bound; ours below is the one that cannot fail.
    '-timeout', `${timeoutS}s`,
  ];
  // An explicit free port: SIPp would otherwise try 5060 first, which a neighbour may hold.
  args.push('-p', String(o.localPort ?? await freePort(o.localIp ?? '127.0.0.1')));
  args.push(...(o.extra ?? []));

  const proc = spawnTracked('sipp', args, { cwd: dir, t: o.t });
  let timedOut = false;
  const hardBound = setTimeout(() => {
    timedOut = true;
    void forceStop(proc, 1000);
  }, timeoutS * 1000 + 2000);
  const exitCode = await proc.exited;
  clearTimeout(hardBound);
  return collect(dir, proc, exitCode, timedOut);
}

export async function startUas(o: UasOptions): Promise<SippUas> {
  const dir = makeRunDir(o.t, 'uas');
  const port = o.port ?? await freePort(o.ip);
  const args = [...commonArgs(o, dir), '-i', o.ip, '-p', String(port), '-bind_local'];
  if (o.durationMs !== undefined) args.push('-d', `${o.durationMs}ms`);
  args.push(...(o.extra ?? []));

  const proc = spawnTracked('sipp', args, { cwd: dir, t: o.t });
  // SIPp writes the first statistics row once its sockets are bound and the traffic loop runs.
  const stat = join(dir, 'stat.csv');
  try {
    await waitFor(() => {
      if (proc.exitCode() !== undefined) throw new Error(`sipp exited with ${proc.exitCode()}: ${proc.output().stderr.trim()}`);
      return existsSync(stat) && readFileSync(stat, 'utf8').split('\n').length > 2;
    }, { timeoutMs: 5000, what: `sipp uas ${o.scenario} on ${o.ip}:${port}` });
  } catch (err) {
    await forceStop(proc, 200);
    const { stderr, stdout } = proc.output();
    throw new Error(`${(err as Error).message}\n${stderr || stdout.slice(-2000)}`);
  }

  let stopping: Promise<SippResult> | undefined;
  return {
    ip: o.ip,
    port,
    pid: proc.pid,
    id: `${o.ip}:${port}`,
    dir,
    running: () => proc.exitCode() === undefined,
    stop: (graceMs = 3000) => {
      stopping ??= (async () => {
        const timedOut = !(await softStop(proc, graceMs));
        return collect(dir, proc, await proc.exited, timedOut);
      })();
      return stopping;
    },
  };
}

/** SIGUSR1 asks SIPp to finish its open calls and exit, flushing the statistics file. */
async function softStop(proc: TrackedChild, graceMs: number): Promise<boolean> {
  if (proc.exitCode() !== undefined) return true;
  proc.kill('SIGUSR1');
  if (await exitsWithin(proc, graceMs)) return true;
  await forceStop(proc, 1000);
  return false;
}

/**
 * Two more SIGUSR1 make SIPp abort every call and write its statistics. That is not always enough
 * (calls answered by -aa stay "current" forever), so SIGTERM next and SIGKILL last; the periodic
 * (-fd 1) statistics rows are still there to read.
 */
async function forceStop(proc: TrackedChild, graceMs: number): Promise<void> {
  for (const sig of ['SIGUSR1', 'SIGTERM', 'SIGKILL'] as const) {
    proc.kill(sig);
    if (sig === 'SIGUSR1') proc.kill(sig);
    if (await exitsWithin(proc, graceMs)) return;
  }
  await proc.exited;
}

function exitsWithin(proc: TrackedChild, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void proc.exited.then(() => { clearTimeout(timer); resolve(true); });
  });
}

function collect(dir: string, proc: TrackedChild, exitCode: number, timedOut: boolean): SippResult {
  const counters = parseStatCsv(readIfExists(join(dir, 'stat.csv')));
  const logs = readIfExists(join(dir, 'logs.log')).split('\n').filter((l) => l.length > 0);
  const rttFile = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
  const { stdout, stderr } = proc.output();
  const messages = join(dir, 'messages.log');
  const errors = join(dir, 'errors.log');
  return {
    exitCode,
    successful: counters.SuccessfulCall ?? 0,
    failed: counters.FailedCall ?? 0,
    retransmissions: counters.Retransmissions ?? 0,
    outOfCallMsgs: counters.OutOfCallMsgs,
    deadCallMsgs: counters.DeadCallMsgs,
    responseTimeMs: rttFile ? rttPercentiles(readIfExists(join(dir, rttFile))) : undefined,
    counters,
    logs,
    backends: backendsFromLogs(logs),
    timedOut,
    stdout,
    stderr,
    dir,
    messages: existsSync(messages) ? messages : undefined,
    errors: existsSync(errors) ? errors : undefined,
  };
}

function readIfExists(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}

/**
 * SIPp's -trace_stat file: a ';'-separated header row, then one row per -fd period and a final row
 * at exit. Returns the cumulative "(C)" counters of the last complete row; durations are skipped.
 */
export function parseStatCsv(text: string): Record<string, number> {
  const rows = text.split('\n').filter((l) => l.includes(';'));
  const out: Record<string, number> = {};
  if (rows.length < 2) return out;
  const header = rows[0]!.split(';');
  const last = rows[rows.length - 1]!.split(';');
  for (let i = 0; i < header.length && i < last.length; i++) {
    const name = header[i]!;
    if (!name.endsWith('(C)')) continue;
    const value = Number(last[i]);
    if (last[i] !== '' && Number.isFinite(value)) out[name.slice(0, -3)] = value;
  }
  return out;
}

/** -trace_rtt rows are "date_ms;response_time_ms;rtd_no"; percentiles over every row (nearest rank). */
export function rttPercentiles(text: string): { p50?: number; p99?: number; max?: number; count: number } {
  const values: number[] = [];
  for (const line of text.split('\n')) {
    const cols = line.split(';');
    if (cols.length < 2) continue;
    const v = Number(cols[1]);
    if (cols[1] !== '' && Number.isFinite(v)) values.push(v);
  }
  values.sort((a, b) => a - b);
  const rank = (p: number): number | undefined =>
    values.length ? values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] : undefined;
  return { p50: rank(50), p99: rank(99), max: values[values.length - 1], count: values.length };
}

export function backendsFromLogs(logs: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of logs) {
    const m = /\bbackend=(\S*)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Tally of backends (e.g. to check round-robin spread or stickiness). */
export function countBackends(r: Pick<SippResult, 'backends'>): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const b of r.backends) tally[b] = (tally[b] ?? 0) + 1;
  return tally;
}

/** One-line summary plus the start of the error trace, for assertion messages. */
export function describe(r: SippResult): string {
  const err = r.errors ? readIfExists(r.errors).slice(0, 1500) : '';
  return `exit=${r.exitCode} ok=${r.successful} failed=${r.failed} retrans=${r.retransmissions}` +
    ` timedOut=${r.timedOut} dir=${r.dir}${err ? `\n${err}` : ''}${r.stderr ? `\n${r.stderr.slice(-1500)}` : ''}`;
}

export interface PairOptions {
  uas: string;
  uac: string;
  transport?: Transport;
  /** The UAS's address (a 127.0.1.x stands in for a container). */
  uasIp?: string;
  calls?: number;
  rate?: number;
  uacDurationMs?: number;
  uasDurationMs?: number;
  timeoutS?: number;
  t?: Teardownable;
  uacExtra?: string[];
  uasExtra?: string[];
}

/** One UAS and one UAC straight at each other (no proxy): the scenario pair's own proof. */
export async function runPair(o: PairOptions): Promise<{ uac: SippResult; uas: SippResult; uasId: string }> {
  const uas = await startUas({ scenario: o.uas, ip: o.uasIp ?? '127.0.1.2', transport: o.transport, durationMs: o.uasDurationMs, t: o.t, extra: o.uasExtra });
  try {
    const uac = await runUac({
      scenario: o.uac, target: uas.id, transport: o.transport, calls: o.calls ?? 20, rate: o.rate ?? 20,
      durationMs: o.uacDurationMs, timeoutS: o.timeoutS ?? 20, t: o.t, extra: o.uacExtra,
    });
    return { uac, uas: await uas.stop(), uasId: uas.id };
  } finally {
    await uas.stop();
  }
}
