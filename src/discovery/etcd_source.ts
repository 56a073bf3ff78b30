// Live backend sets from an etcd prefix (the range-then-watch loop is PrefixWatch's): each range read is
// applied as a diff against what the sink already has. While etcd is unreachable nothing is removed: the
// last known set stays.
import type { Etcd3, IKeyValue } from 'etcd3'
import { pino, type Logger } from 'pino'
import type { BackendSink, BackendSpec } from '../dispatch/types.js'
import { DEFAULT_PREFIX, parseBackendValue, splitBackendKey } from './backend_value.js'
import { createEtcdClient, etcdErrorText, type EtcdConnectOptions } from './etcd_client.js'
import { PrefixWatch, type PrefixWatchState } from './prefix_watch.js'

export type EtcdSourceState = PrefixWatchState

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
  private readonly watch: PrefixWatch
  private readonly retryMaxMs: number
  private currentRevision = '0'
  /** etcd key -> what the sink was given for it. */
  private readonly applied = new Map<string, Applied>()
  /** etcd key -> mod revision of the invalid value already logged (log once per key+revision). */
  private readonly invalidLogged = new Map<string, string>()
  private running = false
  /** Changes the last range read made (logged with the sync). */
  private lastChanges = 0
  private downSince = 0
  private lastDownWarn = 0

  constructor(sink: BackendSink, opts: EtcdSourceOptions) {
    this.sink = sink
    this.prefix = opts.prefix ?? DEFAULT_PREFIX
    if (!this.prefix.endsWith('/')) throw new Error(`etcd prefix must end with "/" (got "${this.prefix}")`)
    this.log = opts.logger ?? pino({ level: 'silent' })
    const retryMinMs = opts.retryMinMs ?? 50
    this.retryMaxMs = Math.max(retryMinMs, opts.retryMaxMs ?? 500)
    this.client = createEtcdClient(opts)
    this.watch = new PrefixWatch(
      this.client,
      this.prefix,
      {
        snapshot: (kvs, revision) => {
          this.lastChanges = this.applySnapshot(kvs)
          this.currentRevision = revision
        },
        put: (key, kv) => void this.applyPut(key, kv),
        delete: (key) => void this.applyDelete(key),
        advanced: (revision) => {
          this.currentRevision = revision
        },
        synced: (info) => this.onSynced(info),
        failed: (err, first) => this.noteDown(err, first),
        stateChanged: (state) => this.onState?.(state),
      },
      { retryMinMs, retryMaxMs: this.retryMaxMs, log: this.log, what: 'backends' },
    )
  }

  get state(): EtcdSourceState {
    return this.watch.state
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
    if (!this.running) this.log.info({ prefix: this.prefix }, 'etcd discovery starting')
    this.running = true
    return this.watch.start()
  }

  /** Stops watching and closes the client. Backends already given to the sink stay. */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    await this.watch.stop()
    this.client.close()
    this.log.info('etcd discovery stopped')
  }

  private onSynced(info: { revision: string; tookMs: number; wasDown: boolean }): void {
    this.lastSyncAt = Date.now()
    this.log.info(
      {
        revision: info.revision,
        backends: this.applied.size,
        changes: this.lastChanges,
        tookMs: info.tookMs,
        ...(info.wasDown ? { downMs: this.lastSyncAt - this.downSince } : {}),
      },
      info.wasDown ? 'etcd reachable again: resynced backends' : 'etcd backends synced',
    )
  }

  private noteDown(err: unknown, first: boolean): void {
    const now = Date.now()
    if (first) {
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
