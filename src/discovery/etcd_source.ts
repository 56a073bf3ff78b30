// Live backend sets from an etcd prefix. One cycle = range read of the prefix at revision R, apply the
// diff against what the sink already has, then watch from R+1 (no gap, no duplicate). Any watch trouble
// (disconnect, compaction, cancel) ends the cycle and starts a new one: the full re-read makes it correct
// whatever happened meanwhile. While etcd is unreachable nothing is removed: the last known set stays.
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3'
import { pino, type Logger } from 'pino'
import type { BackendSink, BackendSpec } from '../dispatch/types.js'
import { DEFAULT_PREFIX, parseBackendValue, splitBackendKey } from './backend_value.js'
import { createEtcdClient, etcdErrorText, type EtcdConnectOptions } from './etcd_client.js'

export type EtcdSourceState = 'connecting' | 'synced' | 'down'

export interface EtcdSourceOptions extends EtcdConnectOptions {
  /** Default `/sipedge/backends/`. */
  prefix?: string
  /** Default: silent. */
  logger?: Logger
  /** First retry delay after a failure. Default 50 ms. */
  retryMinMs?: number
  /** Retry delay cap while etcd is down; bounds convergence time after it returns. Default 500 ms. */
  retryMaxMs?: number
}

interface Applied {
  spec: BackendSpec
  modRevision: string
}

/** While down, repeat the warning at most this often; other failures log at debug. */
const DOWN_WARN_EVERY_MS = 30_000

export class EtcdSource {
  readonly prefix: string
  /** Called on every state change. */
  onState?: (state: EtcdSourceState) => void
  /** Wall clock (ms) of the last successful range read. */
  lastSyncAt?: number

  private readonly sink: BackendSink
  private readonly log: Logger
  private readonly client: Etcd3
  private readonly retryMinMs: number
  private readonly retryMaxMs: number
  private currentState: EtcdSourceState = 'connecting'
  private currentRevision = '0'
  /** etcd key -> what the sink was given for it. */
  private readonly applied = new Map<string, Applied>()
  /** etcd key -> mod revision of the invalid value already logged (log once per key+revision). */
  private readonly invalidLogged = new Map<string, string>()
  /** Bumped whenever a cycle ends, so late callbacks of an old cycle are ignored. */
  private generation = 0
  private running = false
  private watcher: Watcher | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryDelay: number
  private downSince = 0
  private lastDownWarn = 0
  private firstAttempt: Promise<void> | undefined
  private resolveFirst: (() => void) | undefined

  constructor(sink: BackendSink, opts: EtcdSourceOptions) {
    this.sink = sink
    this.prefix = opts.prefix ?? DEFAULT_PREFIX
    if (!this.prefix.endsWith('/')) throw new Error(`etcd prefix must end with "/" (got "${this.prefix}")`)
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.retryMinMs = opts.retryMinMs ?? 50
    this.retryMaxMs = Math.max(this.retryMinMs, opts.retryMaxMs ?? 500)
    this.retryDelay = this.retryMinMs
    this.client = createEtcdClient(opts)
  }

  get state(): EtcdSourceState {
    return this.currentState
  }

  /** etcd revision the current view reflects ('0' before the first sync). */
  get revision(): string {
    return this.currentRevision
  }

  /** The backends currently given to the sink. */
  backends(): BackendSpec[] {
    return [...this.applied.values()].map((a) => a.spec)
  }

  /**
   * Starts syncing. Resolves after the first attempt, synced or not; never rejects: when etcd is down
   * the source keeps retrying in the background.
   */
  start(): Promise<void> {
    if (this.firstAttempt) return this.firstAttempt
    this.running = true
    this.firstAttempt = new Promise((resolve) => {
      this.resolveFirst = resolve
    })
    this.log.info({ prefix: this.prefix }, 'etcd discovery starting')
    void this.cycle()
    return this.firstAttempt
  }

  /** Stops watching and closes the client. Backends already given to the sink stay. */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.generation++
    clearTimeout(this.retryTimer)
    const w = this.watcher
    this.watcher = undefined
    this.resolveFirst?.()
    if (w) await w.cancel().catch(() => undefined)
    this.client.close()
    this.log.info('etcd discovery stopped')
  }

  private setState(state: EtcdSourceState): void {
    if (state === this.currentState) return
    this.currentState = state
    try {
      this.onState?.(state)
    } catch (err) {
      this.log.error({ err }, 'onState callback threw')
    }
  }

  /** One range read + watch. On failure, schedules the next attempt with capped backoff. */
  private async cycle(): Promise<void> {
    const gen = ++this.generation
    const started = Date.now()
    try {
      const res = await this.client.getAll().prefix(this.prefix).exec()
      if (!this.running || gen !== this.generation) return
      const changes = this.applySnapshot(res.kvs)
      this.currentRevision = res.header.revision
      this.startWatch(res.header.revision, gen)
      const wasDown = this.currentState === 'down'
      this.lastSyncAt = Date.now()
      this.retryDelay = this.retryMinMs
      this.setState('synced')
      this.log.info(
        {
          revision: this.currentRevision,
          backends: this.applied.size,
          changes,
          tookMs: this.lastSyncAt - started,
          ...(wasDown ? { downMs: this.lastSyncAt - this.downSince } : {}),
        },
        wasDown ? 'etcd reachable again: resynced backends' : 'etcd backends synced',
      )
    } catch (err) {
      if (!this.running || gen !== this.generation) return
      this.noteDown(err)
      this.scheduleRetry()
    } finally {
      this.resolveFirst?.()
      this.resolveFirst = undefined
    }
  }

  private noteDown(err: unknown): void {
    const now = Date.now()
    if (this.currentState !== 'down') {
      this.downSince = now
      this.lastDownWarn = now
      this.log.warn(
        { err: etcdErrorText(err), backends: this.applied.size, retryMaxMs: this.retryMaxMs },
        'etcd unreachable: keeping the last known backends and retrying',
      )
    } else if (now - this.lastDownWarn >= DOWN_WARN_EVERY_MS) {
      this.lastDownWarn = now
      this.log.warn({ err: etcdErrorText(err), downMs: now - this.downSince }, 'etcd still unreachable')
    } else {
      this.log.debug({ err: etcdErrorText(err) }, 'etcd attempt failed')
    }
    this.setState('down')
  }

  private scheduleRetry(): void {
    const delay = this.retryDelay
    this.retryDelay = Math.min(this.retryMaxMs, this.retryDelay * 2)
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => void this.cycle(), delay)
  }

  private startWatch(revision: string, gen: number): void {
    const next = (BigInt(revision) + 1n).toString()
    const w = this.client.watch().prefix(this.prefix).startRevision(next).watcher()
    this.watcher = w
    w.on('data', (res: IWatchResponse) => this.onWatchData(res, gen))
    w.on('disconnected', (err) => this.onWatchEnded(gen, 'watch disconnected', err))
    w.on('error', (err) => this.onWatchEnded(gen, 'watch canceled', err))
    w.on('end', () => this.onWatchEnded(gen, 'watch ended', undefined))
  }

  private onWatchData(res: IWatchResponse, gen: number): void {
    if (gen !== this.generation) return
    for (const ev of res.events) {
      const key = ev.kv.key.toString()
      if (ev.type === 'Put') this.applyPut(key, ev.kv)
      else this.applyDelete(key)
    }
    this.currentRevision = res.header.revision
  }

  /** Ends the cycle (compaction, disconnect, server cancel) and starts a full resync right away. */
  private onWatchEnded(gen: number, why: string, err: unknown): void {
    if (!this.running || gen !== this.generation) return
    this.generation++
    const w = this.watcher
    this.watcher = undefined
    if (w) void w.cancel().catch(() => undefined)
    this.log.info({ err: err === undefined ? undefined : etcdErrorText(err), revision: this.currentRevision }, `etcd ${why}: resyncing`)
    this.retryDelay = this.retryMinMs
    void this.cycle()
  }

  /** Applies a full range read: upsert what changed, remove what vanished. Returns the change count. */
  private applySnapshot(kvs: IKeyValue[]): number {
    let changes = 0
    const present = new Set<string>()
    for (const kv of kvs) {
      const key = kv.key.toString()
      present.add(key)
      if (this.applyPut(key, kv)) changes++
    }
    for (const key of [...this.applied.keys()]) {
      if (!present.has(key) && this.applyDelete(key)) changes++
    }
    for (const key of [...this.invalidLogged.keys()]) {
      if (!present.has(key)) this.invalidLogged.delete(key)
    }
    return changes
  }

  private applyPut(key: string, kv: IKeyValue): boolean {
    const prev = this.applied.get(key)
    if (prev && prev.modRevision === kv.mod_revision) return false
    const spec = this.parse(key, kv)
    if (typeof spec === 'string') {
      if (this.invalidLogged.get(key) !== kv.mod_revision) {
        this.invalidLogged.set(key, kv.mod_revision)
        this.log.warn(
          { key, revision: kv.mod_revision, reason: spec, keeping: prev ? prev.spec.uri : undefined },
          prev ? 'invalid backend value skipped; keeping the previous one' : 'invalid backend value skipped',
        )
      }
      return false
    }
    this.invalidLogged.delete(key)
    this.applied.set(key, { spec, modRevision: kv.mod_revision })
    try {
      this.sink.upsert(spec)
    } catch (err) {
      this.log.error({ err, key }, 'backend sink upsert threw')
    }
    this.log.info({ key, uri: spec.uri, state: spec.admin, weight: spec.weight, priority: spec.priority, revision: kv.mod_revision }, 'backend upserted')
    return true
  }

  private applyDelete(key: string): boolean {
    this.invalidLogged.delete(key)
    const prev = this.applied.get(key)
    if (!prev) return false
    this.applied.delete(key)
    try {
      this.sink.remove(prev.spec.id)
    } catch (err) {
      this.log.error({ err, key }, 'backend sink remove threw')
    }
    this.log.info({ key, uri: prev.spec.uri }, 'backend removed')
    return true
  }

  private parse(key: string, kv: IKeyValue): BackendSpec | string {
    const where = splitBackendKey(this.prefix, key)
    if (typeof where === 'string') return where
    return parseBackendValue(where.set, where.id, kv.value.toString())
  }
}
