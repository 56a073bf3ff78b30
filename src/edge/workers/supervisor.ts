/**
 * The primary of `--workers N`: it binds no SIP socket. It forks N workers (each the edge itself, listeners
 * bound with SO_REUSEPORT, see worker.ts), restarts one that dies without touching the others, holds the
 * admin API (metrics summed over workers by prom-client's AggregatorRegistry, backends and readiness from
 * the workers' reports, drain and bans fanned out to every worker), spreads the least-calls counts, and
 * passes SIGTERM/SIGINT (drain) and SIGHUP (reload) on to every worker.
 */
import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from 'pino'
import { startAdmin, type AdminReply, type AdminServer, type AdminTarget, type DialogPage } from '../admin.js'
import type { EdgeConfig } from '../config.js'
import { parseListenSpec } from '../../transport/listen-spec.js'
import { ENV_INDEX, ENV_SETTLED, isMessage, SYNC_MS, type BackendReport, type ToPrimary, type ToWorker } from './messages.js'

/** What every worker must share, settled once by the primary (a random secret would differ per worker). */
export interface Settled {
  secret: string
  workers: number
}

export interface PrimaryOptions {
  config: EdgeConfig
  workers: number
  /** The CLI's own path and arguments: each worker runs the same command. */
  exec: string
  argv: string[]
  log: Logger
  signals: EventEmitter
  /** Exit code of a drain that cut calls (the CLI's EXIT_CALLS_CUT). */
  callsCutCode: number
  /** SIGHUP in the primary itself: re-read the config for its own log levels. */
  reloadOwn?: () => void
}

/** A worker that dies is forked again after this long (a worker failing at start does not spin). */
const RESTART_DELAY_MS = 500

interface Slot {
  worker: Worker | undefined
  relayPort: number
  status: Extract<ToPrimary, { t: 'sipedge:status' }> | undefined
  restarts: number
}

/** Why the config cannot run as workers, or undefined. */
export function workersProblem(config: EdgeConfig): string | undefined {
  for (const s of [...config.listen, ...config.internalListen]) {
    const spec = parseListenSpec(s, 'public')
    if (typeof spec !== 'string' && spec.port === 0) {
      return `workers: listener "${s}" has port 0: every worker would bind a port of its own; give a fixed port`
    }
  }
  return undefined
}

export async function runPrimary(o: PrimaryOptions): Promise<number> {
  const { config, log, workers: n } = o
  const settled: Settled = { secret: config.secret || randomBytes(24).toString('base64url'), workers: n }
  const slots: Slot[] = Array.from({ length: n }, () => ({ worker: undefined, relayPort: 0, status: undefined, restarts: 0 }))
  const exits = new Map<number, number>() // worker index -> exit code, once stopping
  let stopping = false
  let admin: AdminServer | undefined
  const aggregator = new AggregatorRegistry()
  const asks = new Map<number, (value: unknown) => void>()
  let askId = 0
  /** The SIGHUP being applied: workers yet to answer, and what those that did said. */
  let reload: { pending: Set<number>; results: Array<Extract<ToPrimary, { t: 'sipedge:reloaded' }>>; timer: NodeJS.Timeout } | undefined
  const reloadDone = (): void => {
    if (!reload) return
    clearTimeout(reload.timer)
    const { results, pending } = reload
    reload = undefined
    const errors = results.flatMap((r) => r.errors ?? [])
    if (errors.length > 0) return void log.error({ errors: [...new Set(errors)] }, 'SIGHUP: config invalid, keeping the running one')
    const first = results[0]
    if (pending.size > 0) log.warn({ workers: [...pending] }, 'SIGHUP: some workers did not answer the reload')
    log.info({ applied: first?.applied ?? [], workers: results.length }, 'SIGHUP: config reloaded')
    const restart = [...new Set(results.flatMap((r) => r.restart))]
    if (restart.length > 0) log.warn({ keys: restart }, 'SIGHUP: these keys need a restart to take effect, kept as they were')
  }
  /** Who holds each peer's connection (TCP/TLS/WS accepted by a worker): peer key -> worker. */
  const flows = new Map<string, number>()
  const tellOthers = (except: number, m: ToWorker): void => {
    slots.forEach((s, i) => {
      if (i !== except) s.worker?.send(m)
    })
  }

  cluster.setupPrimary({ exec: o.exec, args: o.argv })

  const broadcastPorts = (): void => {
    const ports = slots.map((s) => s.relayPort)
    for (const s of slots) s.worker?.send({ t: 'sipedge:relay-ports', ports } satisfies ToWorker)
  }

  let firstStart: ((ok: boolean) => void) | undefined
  let startedCount = 0
  const fork = (i: number): void => {
    const w = cluster.fork({ [ENV_INDEX]: String(i), [ENV_SETTLED]: JSON.stringify(settled) })
    const slot = slots[i]!
    slot.worker = w
    w.on('message', (m: unknown) => {
      if (!isMessage<ToPrimary>(m)) return
      if (m.t === 'sipedge:relay-port') {
        slot.relayPort = m.port
        w.send({ t: 'sipedge:flows', snapshot: true, flows: [...flows].filter(([, o]) => o !== i) } satisfies ToWorker)
        broadcastPorts()
      } else if (m.t === 'sipedge:started') {
        if (firstStart && ++startedCount === n) firstStart(true)
      } else if (m.t === 'sipedge:status') {
        slot.status = m
      } else if (m.t === 'sipedge:reloaded') {
        if (!reload?.pending.delete(i)) return
        reload.results.push(m)
        if (reload.pending.size === 0) reloadDone()
      } else if (m.t === 'sipedge:flow') {
        if (m.open) flows.set(m.key, i)
        else if (flows.get(m.key) === i) flows.delete(m.key)
        else return // another worker holds a newer connection from that peer
        tellOthers(i, { t: 'sipedge:flows', snapshot: false, flows: [[m.key, m.open ? i : null]] })
      } else if (m.t === 'sipedge:answer') {
        asks.get(m.id)?.(m.value)
        asks.delete(m.id)
      }
    })
    w.on('exit', (code, signal) => {
      slot.worker = undefined
      slot.relayPort = 0
      slot.status = undefined
      // Its connections died with it.
      const gone: Array<[string, null]> = []
      for (const [key, o] of flows) if (o === i) gone.push([key, null])
      for (const [key] of gone) flows.delete(key)
      if (gone.length > 0) tellOthers(i, { t: 'sipedge:flows', snapshot: false, flows: gone })
      if (stopping) {
        exits.set(i, code ?? 1)
        return
      }
      broadcastPorts()
      if (firstStart) {
        log.fatal({ worker: i, code, signal }, 'worker failed to start')
        firstStart(false)
        return
      }
      slot.restarts++
      log.error({ worker: i, pid: w.process.pid, code, signal, restarts: slot.restarts }, 'worker died: restarting it (the other workers and their calls are untouched)')
      setTimeout(() => {
        if (!stopping) fork(i)
      }, RESTART_DELAY_MS).unref()
    })
  }

  const started = await new Promise<boolean>((resolve) => {
    firstStart = resolve
    for (let i = 0; i < n; i++) fork(i)
  })
  firstStart = undefined
  if (!started) {
    stopping = true
    await killAll('SIGKILL')
    return 1
  }

  // Least-calls across workers: each worker learns what the others carry per backend, every SYNC_MS; and the
  // health the one probing worker found (one set of OPTIONS probes per edge, not one per worker).
  const sync = setInterval(() => {
    const total = new Map<string, number>()
    for (const s of slots) for (const b of s.status?.backends ?? []) total.set(b.id, (total.get(b.id) ?? 0) + b.activeCalls)
    const prober = slots.find((s) => s.status?.probing)?.status
    let health: Record<string, string> | undefined
    if (prober) {
      health = {}
      for (const b of prober.backends) health[b.id] = b.health
    }
    for (const s of slots) {
      if (!s.worker || !s.status) continue
      const calls: Record<string, number> = {}
      for (const [id, c] of total) calls[id] = c
      for (const b of s.status.backends) calls[b.id] = (calls[b.id] ?? 0) - b.activeCalls
      s.worker.send({ t: 'sipedge:others', calls, ...(health && s.status !== prober ? { health } : {}) } satisfies ToWorker)
    }
  }, SYNC_MS)

  const askAll = async (make: (id: number) => ToWorker): Promise<unknown[]> => {
    const live = slots.filter((s) => s.worker?.isConnected())
    return Promise.all(
      live.map(
        (s) =>
          new Promise<unknown>((resolve) => {
            const id = ++askId
            const timer = setTimeout(() => {
              asks.delete(id)
              resolve(undefined)
            }, 2000)
            asks.set(id, (v) => {
              clearTimeout(timer)
              resolve(v)
            })
            s.worker!.send(make(id))
          }),
      ),
    )
  }

  if (config.admin) {
    const target: AdminTarget = {
      metrics: () => aggregator.clusterMetrics(),
      contentType: aggregator.contentType,
      ready: () => {
        if (slots.some((s) => !s.status)) return { ready: false, reason: 'a worker is starting' }
        if (slots.some((s) => s.status!.draining)) return { ready: false, reason: 'draining' }
        if (!mergedBackends(slots).some((b) => b.admin === 'active' && b.health !== 'down')) return { ready: false, reason: 'no eligible backend' }
        const unready = slots.find((s) => s.status!.unready !== undefined)?.status!.unready
        if (unready !== undefined) return { ready: false, reason: unready }
        return { ready: true }
      },
      backends: () => mergedBackends(slots),
      dialogs: async (offset, limit): Promise<DialogPage> => {
        const pages = (await askAll((id) => ({ t: 'sipedge:ask', id, what: 'dialogs', offset: 0, limit: offset + limit }))) as DialogPage[]
        const items = pages.flatMap((p) => p?.items ?? [])
        return { total: pages.reduce((a, p) => a + (p?.total ?? 0), 0), items: items.slice(offset, offset + limit) }
      },
      setAdmin: async (backend, state) => {
        const answers = await askAll((id) => ({ t: 'sipedge:ask', id, what: 'setAdmin', backend, state }))
        return answers.some((a) => a === true)
      },
      bans: async (method, path, query) => {
        if (path !== '/bans' && !path.startsWith('/bans/')) return undefined
        const answers = (await askAll((id) => ({ t: 'sipedge:ask', id, what: 'bans', method, path, query: query.toString() }))) as Array<AdminReply | null>
        const replies = answers.filter((a): a is AdminReply => a !== null && a !== undefined)
        if (path === '/bans' && replies.every((r) => r.status === 200)) {
          // Each worker bans the sources it sees: the list is their union, one entry per address.
          const byAddress = new Map<unknown, unknown>()
          for (const r of replies) for (const b of Array.isArray(r.body) ? r.body : []) byAddress.set((b as { address?: unknown }).address, b)
          return { status: 200, body: [...byAddress.values()] }
        }
        return replies.find((r) => r.status < 300) ?? replies[0]
      },
    }
    try {
      admin = await startAdmin(target, { listen: config.admin, ...(config.adminToken ? { token: config.adminToken } : {}), log: log.child({ component: 'admin' }) })
    } catch (err) {
      log.fatal({ err }, 'admin API failed to start')
      stopping = true
      clearInterval(sync)
      await killAll('SIGKILL')
      return 1
    }
  }
  log.info({ workers: n, pids: slots.map((s) => s.worker?.process.pid) }, 'sipedge running (SIGTERM/SIGINT drain, SIGHUP reloads)')

  async function killAll(signal: NodeJS.Signals): Promise<void> {
    const live = slots.map((s) => s.worker).filter((w): w is Worker => w !== undefined && w.process.exitCode === null)
    await Promise.all(
      live.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve())
            w.process.kill(signal)
          }),
      ),
    )
  }

  return new Promise<number>((resolve) => {
    let signalled = 0
    const stop = (signal: NodeJS.Signals): void => {
      signalled++
      stopping = true
      log.info({ signal }, signalled > 1 ? 'second signal: passed on to the workers (they exit at once)' : 'shutdown requested: every worker drains')
      for (const s of slots) s.worker?.process.kill(signal)
      if (signalled > 1) return
      void (async () => {
        await new Promise<void>((done) => {
          const check = (): void => {
            if (slots.every((s) => s.worker === undefined)) done()
            else setTimeout(check, 20)
          }
          check()
        })
        clearInterval(sync)
        await admin?.close()
        cleanup()
        const codes = [...exits.values()]
        const cut = codes.includes(o.callsCutCode)
        const code = codes.some((c) => c !== 0 && c !== o.callsCutCode) ? 1 : cut ? o.callsCutCode : 0
        log.info({ exitCodes: codes }, 'sipedge stopped')
        resolve(code)
      })()
    }
    const onTerm = (): void => stop('SIGTERM')
    const onInt = (): void => stop('SIGINT')
    const onHup = (): void => {
      if (stopping || reload) return
      o.reloadOwn?.()
      const live = slots.flatMap((s, i) => (s.worker && s.status ? [i] : []))
      reload = { pending: new Set(live), results: [], timer: setTimeout(reloadDone, 10_000) }
      log.debug({ workers: live }, 'SIGHUP: passed on to every worker (each reloads the config)')
      for (const i of live) slots[i]!.worker?.process.kill('SIGHUP')
    }
    o.signals.on('SIGTERM', onTerm)
    o.signals.on('SIGINT', onInt)
    o.signals.on('SIGHUP', onHup)
    function cleanup(): void {
      o.signals.off('SIGTERM', onTerm)
      o.signals.off('SIGINT', onInt)
      o.signals.off('SIGHUP', onHup)
    }
  })
}

/** The backends as one edge shows them: the first reporting worker's view, active calls summed over all. */
function mergedBackends(slots: Slot[]): BackendReport[] {
  const first = slots.find((s) => s.status)?.status
  if (!first) return []
  const calls = new Map<string, number>()
  for (const s of slots) for (const b of s.status?.backends ?? []) calls.set(b.id, (calls.get(b.id) ?? 0) + b.activeCalls)
  return first.backends.map((b) => ({ ...b, activeCalls: calls.get(b.id) ?? 0 }))
}

/** In a worker: its number, or undefined in the primary and in a single-process edge. */
export function workerIndex(env: NodeJS.ProcessEnv): number | undefined {
  if (!cluster.isWorker) return undefined
  const v = env[ENV_INDEX]
  return v === undefined ? undefined : Number(v)
}

/** In a worker: the config with what the primary settled for all workers (and no admin API of its own). */
export function applySettled(config: EdgeConfig, env: NodeJS.ProcessEnv): EdgeConfig {
  const s = JSON.parse(env[ENV_SETTLED] ?? '{}') as Partial<Settled>
  const { admin: _admin, ...rest } = config
  // Worker 0 alone sends the OPTIONS probes; the primary hands the health it finds to the others.
  const probe = workerIndex(env) === 0 ? config.probe : { ...config.probe, enabled: false }
  return { ...rest, probe, ...(s.secret ? { secret: s.secret } : {}), workers: s.workers ?? config.workers } as EdgeConfig
}
