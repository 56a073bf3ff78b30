// Bans shared across edges through etcd. A ban is the key `<prefix><ip>` under a lease whose TTL is the
// ban's remaining time: every edge watching the prefix applies it within the watch latency, and etcd deletes
// it by itself when the lease runs out (each edge then lifts it). The watch cycle is EtcdSource's: range
// read at revision R, then watch from R+1; any watch trouble starts a new cycle. While etcd is down the
// local ban table keeps working: bans decided meanwhile are published when etcd is back.
import { hostname } from 'node:os'
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3'
import { pino, type Logger } from 'pino'
import { createEtcdClient, etcdErrorText, type EtcdConnectOptions } from '../discovery/etcd_client.js'
import { BAN_REASONS, DEFAULT_BAN_PREFIX, validAddress, type Ban, type BanReason } from './bans.js'
import type { Defence } from './defence.js'

export { DEFAULT_BAN_PREFIX }

export interface SharedBansOptions extends EtcdConnectOptions {
  /** Default `/sipedge/bans/`. */
  prefix?: string
  logger?: Logger
  /** Named in the values this edge writes (operators see who banned). Default hostname:pid. */
  edgeId?: string
  retryMinMs?: number
  retryMaxMs?: number
}

export type SharedBansState = 'connecting' | 'synced' | 'down'

/** The value under a ban key. */
interface BanValue {
  reason: BanReason
  /** Wall clock (ms) when the ban ends; the lease ends it in etcd too. */
  until: number
  edge: string
  detail?: string
}

const MAX_VALUE = 1024

export class SharedBans {
  readonly prefix: string
  onState?: (state: SharedBansState) => void
  private readonly defence: Defence
  private readonly client: Etcd3
  private readonly log: Logger
  private readonly edgeId: string
  private readonly retryMinMs: number
  private readonly retryMaxMs: number
  private retryDelay: number
  private currentState: SharedBansState = 'connecting'
  private generation = 0
  private running = false
  private watcher: Watcher | undefined
  private retryTimer: NodeJS.Timeout | undefined
  /** Addresses this edge holds because of a key (so a snapshot without the key lifts them). */
  private readonly fromEtcd = new Set<string>()
  /** Local bans whose put failed (etcd down): published on the next sync if still in force. */
  private readonly pending = new Map<string, Ban>()
  private firstAttempt: Promise<void> | undefined
  private resolveFirst: (() => void) | undefined

  constructor(defence: Defence, opts: SharedBansOptions) {
    this.defence = defence
    this.prefix = opts.prefix ?? DEFAULT_BAN_PREFIX
    if (!this.prefix.endsWith('/')) throw new Error(`etcd ban prefix must end with "/" (got "${this.prefix}")`)
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.edgeId = opts.edgeId ?? `${hostname()}:${process.pid}`
    this.retryMinMs = opts.retryMinMs ?? 50
    this.retryMaxMs = Math.max(this.retryMinMs, opts.retryMaxMs ?? 500)
    this.retryDelay = this.retryMinMs
    this.client = createEtcdClient(opts)
  }

  get state(): SharedBansState {
    return this.currentState
  }

  /** Starts sharing: hooks the defence's ban/lift events and syncs. Resolves after the first attempt. */
  start(): Promise<void> {
    if (this.firstAttempt) return this.firstAttempt
    this.running = true
    this.defence.onBan = (ban) => void this.publish(ban)
    this.defence.onLift = (address) => void this.remove(address)
    this.firstAttempt = new Promise((resolve) => {
      this.resolveFirst = resolve
    })
    void this.cycle()
    return this.firstAttempt
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.generation++
    this.defence.onBan = undefined
    this.defence.onLift = undefined
    clearTimeout(this.retryTimer)
    this.resolveFirst?.()
    const w = this.watcher
    this.watcher = undefined
    if (w) await w.cancel().catch(() => undefined)
    this.client.close()
  }

  /** Puts the ban under a lease of its remaining time. Never rejects: a failure leaves it pending. */
  async publish(ban: Ban): Promise<boolean> {
    if (!this.running) return false
    const ttl = Math.ceil((ban.until - Date.now()) / 1000)
    if (ttl < 1) return false
    const value: BanValue = { reason: ban.reason, until: ban.until, edge: this.edgeId, ...(ban.detail ? { detail: ban.detail } : {}) }
    const lease = this.client.lease(ttl, { autoKeepAlive: false })
    lease.on('lost', () => undefined) // a failed grant also rejects the put below, handled there
    try {
      await lease.put(this.prefix + ban.address).value(JSON.stringify(value))
      this.pending.delete(ban.address)
      return true
    } catch (err) {
      this.pending.set(ban.address, ban)
      this.log.debug({ err: etcdErrorText(err), src: ban.address }, 'ban not shared yet (etcd unreachable): kept locally')
      return false
    } finally {
      lease.release()
    }
  }

  /** Deletes the key: every edge lifts the ban. */
  async remove(address: string): Promise<boolean> {
    this.pending.delete(address)
    if (!this.running) return false
    try {
      await this.client.delete().key(this.prefix + address).exec()
      return true
    } catch (err) {
      this.log.warn({ err: etcdErrorText(err), src: address }, 'could not lift the shared ban (etcd unreachable); it expires by itself')
      return false
    }
  }

  private setState(state: SharedBansState): void {
    if (state === this.currentState) return
    this.currentState = state
    try {
      this.onState?.(state)
    } catch (err) {
      this.log.error({ err }, 'onState callback threw')
    }
  }

  private async cycle(): Promise<void> {
    const gen = ++this.generation
    try {
      const res = await this.client.getAll().prefix(this.prefix).exec()
      if (!this.running || gen !== this.generation) return
      const present = new Set<string>()
      for (const kv of res.kvs) {
        const address = kv.key.toString().slice(this.prefix.length)
        present.add(address)
        this.applyPut(address, kv)
      }
      for (const address of [...this.fromEtcd]) if (!present.has(address)) this.applyDelete(address)
      this.startWatch(res.header.revision, gen)
      const wasDown = this.currentState === 'down'
      this.retryDelay = this.retryMinMs
      this.setState('synced')
      this.log.info({ bans: present.size }, wasDown ? 'etcd reachable again: shared bans resynced' : 'shared bans synced')
      for (const ban of [...this.pending.values()]) {
        if (ban.until - Date.now() >= 1000 && this.defence.banOf(ban.address) !== undefined) void this.publish(ban)
        else this.pending.delete(ban.address)
      }
    } catch (err) {
      if (!this.running || gen !== this.generation) return
      if (this.currentState !== 'down') this.log.warn({ err: etcdErrorText(err) }, 'etcd unreachable: enforcing local bans only, retrying')
      this.setState('down')
      const delay = this.retryDelay
      this.retryDelay = Math.min(this.retryMaxMs, this.retryDelay * 2)
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
    w.on('data', (res: IWatchResponse) => {
      if (gen !== this.generation) return
      for (const ev of res.events) {
        const address = ev.kv.key.toString().slice(this.prefix.length)
        if (ev.type === 'Put') this.applyPut(address, ev.kv)
        else this.applyDelete(address)
      }
    })
    const ended = (err: unknown) => {
      if (!this.running || gen !== this.generation) return
      this.generation++
      const old = this.watcher
      this.watcher = undefined
      if (old) void old.cancel().catch(() => undefined)
      this.log.debug({ err: err === undefined ? undefined : etcdErrorText(err) }, 'ban watch ended: resyncing')
      this.retryDelay = this.retryMinMs
      void this.cycle()
    }
    w.on('disconnected', ended)
    w.on('error', ended)
    w.on('end', () => ended(undefined))
  }

  private applyPut(address: string, kv: IKeyValue): void {
    const value = parseBanValue(address, kv.value)
    if (typeof value === 'string') {
      this.log.warn({ key: kv.key.toString().slice(0, 200), reason: value }, 'invalid shared ban skipped')
      return
    }
    this.fromEtcd.add(address)
    // Our own put comes back through the watch: the ban is already in the table with the same end.
    this.defence.applyShared(address, value.until, value.reason, value.edge === this.edgeId ? value.detail : `${value.edge}${value.detail ? ': ' + value.detail : ''}`)
  }

  private applyDelete(address: string): void {
    this.fromEtcd.delete(address)
    if (validAddress(address)) this.defence.liftShared(address)
  }
}

/** Validates a ban key's address and value; a string says what is wrong. Never throws. */
export function parseBanValue(address: string, raw: Buffer): BanValue | string {
  if (!validAddress(address)) return 'key is not <prefix><ip>'
  if (raw.length > MAX_VALUE) return 'value too large'
  let v: unknown
  try {
    v = JSON.parse(raw.toString('utf8'))
  } catch {
    return 'value is not JSON'
  }
  if (typeof v !== 'object' || v === null) return 'value is not an object'
  const o = v as Record<string, unknown>
  if (typeof o.until !== 'number' || !Number.isFinite(o.until)) return 'until must be a number (ms)'
  const reason = typeof o.reason === 'string' && (BAN_REASONS as readonly string[]).includes(o.reason) ? (o.reason as BanReason) : 'shared'
  const edge = typeof o.edge === 'string' ? o.edge.slice(0, 100) : '?'
  return { reason, until: o.until, edge, ...(typeof o.detail === 'string' ? { detail: o.detail.slice(0, 200) } : {}) }
}
