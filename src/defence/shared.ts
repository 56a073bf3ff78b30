// Bans shared across edges through etcd. A ban is the key `<prefix><ip>` under a lease whose TTL is the
// ban's remaining time: every edge watching the prefix applies it within the watch latency, and etcd deletes
// it by itself when the lease runs out (each edge then lifts it). The range-then-watch loop is the one backend
// discovery uses (PrefixWatch). While etcd is down the local ban table keeps working: bans decided meanwhile
// are published when etcd is back.
import { hostname } from 'node:os'
import type { Etcd3, IKeyValue } from 'etcd3'
import { pino, type Logger } from 'pino'
import { createEtcdClient, etcdErrorText, type EtcdConnectOptions } from '../discovery/etcd_client.js'
import { PrefixWatch, type PrefixWatchState } from '../discovery/prefix_watch.js'
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

export type SharedBansState = PrefixWatchState

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
  private readonly watch: PrefixWatch
  private readonly log: Logger
  private readonly edgeId: string
  private running = false
  /** Addresses this edge holds because of a key (so a snapshot without the key lifts them). */
  private readonly fromEtcd = new Set<string>()
  /** Local bans whose put failed (etcd down): published on the next sync if still in force. */
  private readonly pending = new Map<string, Ban>()

  constructor(defence: Defence, opts: SharedBansOptions) {
    this.defence = defence
    this.prefix = opts.prefix ?? DEFAULT_BAN_PREFIX
    if (!this.prefix.endsWith('/')) throw new Error(`etcd ban prefix must end with "/" (got "${this.prefix}")`)
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.edgeId = opts.edgeId ?? `${hostname()}:${process.pid}`
    const retryMinMs = opts.retryMinMs ?? 50
    this.client = createEtcdClient(opts)
    this.watch = new PrefixWatch(
      this.client,
      this.prefix,
      {
        snapshot: (kvs) => this.applySnapshot(kvs),
        put: (key, kv) => this.applyPut(key.slice(this.prefix.length), kv),
        delete: (key) => this.applyDelete(key.slice(this.prefix.length)),
        synced: ({ wasDown }) => this.onSynced(wasDown),
        failed: (err, first) => {
          if (first) this.log.warn({ err: etcdErrorText(err) }, 'etcd unreachable: enforcing local bans only, retrying')
        },
        stateChanged: (state) => this.onState?.(state),
      },
      { retryMinMs, retryMaxMs: Math.max(retryMinMs, opts.retryMaxMs ?? 500), log: this.log, what: 'bans' },
    )
  }

  get state(): SharedBansState {
    return this.watch.state
  }

  /** Starts sharing: hooks the defence's ban/lift events and syncs. Resolves after the first attempt. */
  start(): Promise<void> {
    if (!this.running) {
      this.running = true
      this.defence.onBan = (ban) => void this.publish(ban)
      this.defence.onLift = (address) => void this.remove(address)
    }
    return this.watch.start()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.defence.onBan = undefined
    this.defence.onLift = undefined
    await this.watch.stop()
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

  private applySnapshot(kvs: IKeyValue[]): void {
    const present = new Set<string>()
    for (const kv of kvs) {
      const address = kv.key.toString().slice(this.prefix.length)
      present.add(address)
      this.applyPut(address, kv)
    }
    for (const address of [...this.fromEtcd]) if (!present.has(address)) this.applyDelete(address)
  }

  private onSynced(wasDown: boolean): void {
    this.log.info({ bans: this.fromEtcd.size }, wasDown ? 'etcd reachable again: shared bans resynced' : 'shared bans synced')
    for (const ban of [...this.pending.values()]) {
      if (ban.until - Date.now() >= 1000 && this.defence.banOf(ban.address) !== undefined) void this.publish(ban)
      else this.pending.delete(ban.address)
    }
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
