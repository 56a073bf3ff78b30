// Spawns a real single-node `etcd` on loopback for tests: free ports, a temp data dir, health wait.
// Works in a fresh network namespace (only `lo`): everything binds 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeTcpPort, waitFor as pollFor } from './net.js'

export interface EtcdOptions {
  /** Reuse an existing data dir (e.g. to edit the data of a stopped instance on another port). */
  dataDir?: string
  /** Fixed client port; a free one is picked when absent. */
  clientPort?: number
  peerPort?: number
  /** Milliseconds to wait for /health. */
  startTimeoutMs?: number
}

export interface EtcdHandle {
  /** `http://127.0.0.1:<port>` */
  endpoint: string
  clientPort: number
  peerPort: number
  dataDir: string
  /** PID of the current etcd process (changes after restart). */
  readonly pid: number
  /** Graceful stop (SIGTERM, then SIGKILL after 3 s); the data dir is kept until `cleanup()`. */
  stop(): Promise<void>
  /** Start again on the same ports and data dir; resolves when healthy. */
  restart(): Promise<void>
  /** Send a signal to the current process (SIGSTOP / SIGCONT / SIGKILL ...). */
  kill(signal?: NodeJS.Signals): void
  /** Stop and delete the data dir (unless it was given by the caller). */
  cleanup(): Promise<void>
}

/** A TCP port free on 127.0.0.1 (etcd's client and peer ports). */
export function freePort(): Promise<number> {
  return freeTcpPort('127.0.0.1')
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) })
    const body = (await res.json()) as { health?: string }
    return body.health === 'true'
  } catch {
    return false
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  const ownDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'sipedge-etcd-'))
  const clientPort = opts.clientPort ?? (await freePort())
  const peerPort = opts.peerPort ?? (await freePort())
  const endpoint = `http://127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000
  let child: ChildProcess | undefined
  let stderrTail = ''

  const launch = async (): Promise<void> => {
    const args = [
      '--name', 'test',
      '--data-dir', dataDir,
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`,
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'error',
    ]
    const proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    child = proc
    proc.stderr?.on('data', (b: Buffer) => {
      stderrTail = (stderrTail + b.toString()).slice(-2000)
    })
    const deadline = Date.now() + startTimeoutMs
    while (Date.now() < deadline) {
      if (exited(proc)) throw new Error(`etcd exited early (${proc.exitCode ?? proc.signalCode}): ${stderrTail}`)
      if (await healthy(endpoint)) return
      await new Promise((r) => setTimeout(r, 50))
    }
    proc.kill('SIGKILL')
    throw new Error(`etcd not healthy after ${startTimeoutMs} ms: ${stderrTail}`)
  }

  const stop = async (): Promise<void> => {
    const proc = child
    if (!proc || exited(proc)) return
    const done = new Promise<void>((r) => proc.once('exit', () => r()))
    proc.kill('SIGCONT') // a SIGSTOPped etcd would never act on SIGTERM
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
    await done
    clearTimeout(timer)
  }

  await launch()
  return {
    endpoint,
    clientPort,
    peerPort,
    dataDir,
    get pid() {
      return child?.pid ?? -1
    },
    stop,
    restart: async () => {
      await stop()
      await launch()
    },
    kill: (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child && !exited(child)) child.kill(signal)
    },
    cleanup: async () => {
      await stop()
      if (ownDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** Polls `check` every `everyMs` until it returns a truthy value; rejects after `timeoutMs` with `what`. */
export function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000, everyMs = 10): Promise<NonNullable<T>> {
  return pollFor(check, { what, timeoutMs, intervalMs: everyMs }) as Promise<NonNullable<T>>
}
