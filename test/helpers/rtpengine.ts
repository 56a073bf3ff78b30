// Spawns a real rtpengine (Debian's rtpengine-daemon, userspace only: --table=-1) for tests: a free NG
// port (a second instance on the same NG port silently steals traffic), a media port range of its own,
// its own pid file, readiness by NG ping, stopped by PID at teardown.
// Interfaces: `internal/127.0.2.N` and `external/127.0.3.N` (loopback addresses inside test/netns.sh).
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeUdpPort } from './net.js'
import { spawnTracked, type Teardownable, type TrackedChild } from './proc.js'

export interface RtpengineOptions {
  t?: Teardownable
  /** Last octet of the interface addresses: internal 127.0.2.N, external 127.0.3.N (default 1). */
  n?: number
  /** Fixed NG port (e.g. to restart on the same one); a free one is picked when absent. */
  ngPort?: number
  startTimeoutMs?: number
  /** More command-line arguments. */
  args?: string[]
}

export interface RtpengineHandle {
  host: string
  ngPort: number
  /** `udp:127.0.0.1:PORT`, the form the pool takes. */
  spec: string
  internal: string
  external: string
  portMin: number
  portMax: number
  readonly pid: number
  /** The PID rtpengine wrote to its pid file. */
  pidFromFile(): number
  proc: TrackedChild
  stop(): Promise<number>
  kill(signal?: NodeJS.Signals): void
  log(): string
}

let rangeSeq = 0

/** Sends one NG ping and resolves true on a pong within `ms`. */
export function ngPing(host: string, port: number, ms = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    const done = (ok: boolean): void => { clearTimeout(timer); s.close(); resolve(ok) }
    const timer = setTimeout(() => done(false), ms)
    s.on('error', () => done(false))
    s.on('message', (m) => done(m.toString().includes('pong')))
    s.send(Buffer.from('helper-ping d7:command4:pinge'), port, host)
  })
}

export async function startRtpengine(opts: RtpengineOptions = {}): Promise<RtpengineHandle> {
  const n = opts.n ?? 1
  const host = '127.0.0.1'
  const ngPort = opts.ngPort ?? (await freeUdpPort(host))
  // Media ranges below the kernel's ephemeral range (32768+), spread by PID and a counter so
  // instances of parallel test files rarely overlap (rtpengine skips ports it cannot bind anyway).
  const slot = (process.pid * 7 + rangeSeq++) % 120
  const portMin = 20000 + slot * 100
  const portMax = portMin + 99
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-rtpengine-'))
  const pidfile = join(dir, 'rtpengine.pid')
  const internal = `127.0.2.${n}`
  const external = `127.0.3.${n}`
  const args = [
    '--config-file=none', '--foreground', '--log-stderr', '--log-level=6', '--table=-1',
    `--interface=internal/${internal}`, `--interface=external/${external}`,
    `--listen-ng=${host}:${ngPort}`, `--port-min=${portMin}`, `--port-max=${portMax}`,
    '--delete-delay=0', `--pidfile=${pidfile}`,
    ...(opts.args ?? []),
  ]
  const spawnOpts = opts.t === undefined ? {} : { t: opts.t }
  const proc = spawnTracked('rtpengine', args, spawnOpts)
  opts.t?.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000)
  for (;;) {
    if (proc.exitCode() !== undefined) throw new Error(`rtpengine exited early (${proc.exitCode()}): ${proc.output().stderr.slice(-1500)}`)
    if (await ngPing(host, ngPort)) break
    if (Date.now() > deadline) {
      await proc.stop(500)
      throw new Error(`rtpengine did not answer ping on ${host}:${ngPort}: ${proc.output().stderr.slice(-1500)}`)
    }
  }
  return {
    host, ngPort, spec: `udp:${host}:${ngPort}`, internal, external, portMin, portMax,
    get pid() { return proc.pid },
    pidFromFile: () => Number(readFileSync(pidfile, 'utf8').trim()),
    proc,
    stop: () => proc.stop(2000),
    kill: (signal: NodeJS.Signals = 'SIGKILL') => proc.kill(signal),
    log: () => proc.output().stderr,
  }
}
