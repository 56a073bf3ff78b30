// Follows one etcd prefix. One cycle = range read of the prefix at revision R, then a watch from R+1 (no gap,
// no duplicate). Any watch trouble (disconnect, compaction, server cancel) ends the cycle and starts a new
// one at once: the full re-read makes the view correct whatever happened meanwhile. A failed range read is
// retried with capped backoff. Backend discovery and shared bans both sit on this loop; they only say what a
// snapshot, a put and a delete mean to them.
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3'
import type { Logger } from 'pino'
import { etcdErrorText } from './etcd_client.js'

export type PrefixWatchState = 'connecting' | 'synced' | 'down'

export interface PrefixWatchHandler {
  /** A full range read at `revision`: apply it and drop what it no longer holds. */
  snapshot(kvs: IKeyValue[], revision: string): void
  put(key: string, kv: IKeyValue): void
  delete(key: string): void
  /** After each watch batch (the view now reflects `revision`). */
  advanced?(revision: string): void
  /** The range read after which the watch runs; `wasDown` when etcd had been unreachable. */
  synced(info: { revision: string; tookMs: number; wasDown: boolean }): void
  /** A range read failed; the state is already `down`. */
  failed(err: unknown, firstFailure: boolean): void
  stateChanged?(state: PrefixWatchState): void
}

export interface PrefixWatchOptions {
  retryMinMs: number
  retryMaxMs: number
  log: Logger
  /** Names the watched thing in the resync log line (`watching: "backends"`). */
  what: string
}

export class PrefixWatch {
  private readonly client: Etcd3
  private readonly prefix: string
  private readonly handler: PrefixWatchHandler
  private readonly opts: PrefixWatchOptions
  private currentState: PrefixWatchState = 'connecting'
  /** Bumped whenever a cycle ends, so late callbacks of an old cycle are ignored. */
  private generation = 0
  private running = false
  private watcher: Watcher | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryDelay: number
  private firstAttempt: Promise<void> | undefined
  private resolveFirst: (() => void) | undefined

  constructor(client: Etcd3, prefix: string, handler: PrefixWatchHandler, opts: PrefixWatchOptions) {
    this.client = client
    this.prefix = prefix
    this.handler = handler
    this.opts = opts
    this.retryDelay = opts.retryMinMs
  }

  get state(): PrefixWatchState {
    return this.currentState
  }

  /** Starts the cycles. Resolves after the first attempt, synced or not; never rejects. */
  start(): Promise<void> {
    if (this.firstAttempt) return this.firstAttempt
    this.running = true
    this.firstAttempt = new Promise((resolve) => {
      this.resolveFirst = resolve
    })
    void this.cycle()
    return this.firstAttempt
  }

  /** Stops watching (the client stays open: its owner closes it). */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.generation++
    clearTimeout(this.retryTimer)
    this.resolveFirst?.()
    const w = this.watcher
    this.watcher = undefined
    if (w) await w.cancel().catch(() => undefined)
  }

  private setState(state: PrefixWatchState): void {
    if (state === this.currentState) return
    this.currentState = state
    try {
      this.handler.stateChanged?.(state)
    } catch (err) {
      this.opts.log.error({ err }, 'onState callback threw')
    }
  }

  private async cycle(): Promise<void> {
    const gen = ++this.generation
    const started = Date.now()
    try {
      const res = await this.client.getAll().prefix(this.prefix).exec()
      if (!this.running || gen !== this.generation) return
      this.handler.snapshot(res.kvs, res.header.revision)
      this.startWatch(res.header.revision, gen)
      const wasDown = this.currentState === 'down'
      this.retryDelay = this.opts.retryMinMs
      this.setState('synced')
      this.handler.synced({ revision: res.header.revision, tookMs: Date.now() - started, wasDown })
    } catch (err) {
      if (!this.running || gen !== this.generation) return
      const first = this.currentState !== 'down'
      this.setState('down')
      this.handler.failed(err, first)
      const delay = this.retryDelay
      this.retryDelay = Math.min(this.opts.retryMaxMs, this.retryDelay * 2)
      clearTimeout(this.retryTimer)
      this.retryTimer = setTimeout(() => void this.cycle(), delay)
    } finally {
      this.resolveFirst?.()
      this.resolveFirst = undefined
    }
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
      if (ev.type === 'Put') this.handler.put(key, ev.kv)
      else this.handler.delete(key)
    }
    this.handler.advanced?.(res.header.revision)
  }

  /** Ends the cycle (compaction, disconnect, server cancel) and starts a full resync right away. */
  private onWatchEnded(gen: number, why: string, err: unknown): void {
    if (!this.running || gen !== this.generation) return
    this.generation++
    const w = this.watcher
    this.watcher = undefined
    if (w) void w.cancel().catch(() => undefined)
    this.opts.log.info({ watching: this.opts.what, err: err === undefined ? undefined : etcdErrorText(err) }, `etcd ${why}: resyncing`)
    this.retryDelay = this.opts.retryMinMs
    void this.cycle()
  }
}
