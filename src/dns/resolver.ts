// Next hops by name, cached: RFC 3263 answers kept for their TTL (the smallest along NAPTR → SRV → A), refreshed
// ahead of expiry in the background while the name is in use, and served stale for `staleMs` past expiry while
// the resolvers fail (RFC 8767's serve-stale). A cached name therefore never waits for DNS on the request's
// path; only a name's first use (or one unused for a long time) does. Names that do not exist are cached as
// such for a while (no query per request for a typo'd host).
//
// Why a wire client (client.ts) rather than node:dns: Resolver.resolveSrv/resolveNaptr return no TTL, and a
// fixed refresh interval would either hammer the resolvers or keep following a carrier's old SRV targets
// long after it moved them. A ~300-line UDP stub resolver gives every TTL of the chain.
import type { Peer, TransportProto } from '../transport/types.js'
import { DnsClient, type DnsClientOptions } from './client.js'
import { orderTargets, type Weighted } from './order.js'
import { NoSuchTarget, resolveHop, type HopName, type Resolution } from './rfc3263.js'

export interface DnsLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface NextHopResolverOptions extends DnsClientOptions {
  /** How long past its TTL an answer is still used while the resolvers fail (default 1 h). */
  staleMs?: number
  /** Transports the edge can send on toward the next hops (NAPTR/SRV for others are skipped). */
  transports: ReadonlySet<TransportProto>
  ipv6?: boolean
  log?: DnsLog
  /** For tests: the random source of the weighted draw. */
  random?: () => number
}

/** TTLs are kept within these bounds: 0 would mean a query per request, days would outlive a carrier's move. */
const MIN_TTL_MS = 1000
const MAX_TTL_MS = 86_400_000
/** A name that does not exist is asked again after this long. */
const NEGATIVE_MS = 30_000
/** While the resolvers fail, a cached name is retried this often. */
const RETRY_MS = 2000
/** A name nobody used for this long is no longer refreshed ahead (it is dropped once stale). */
const IDLE_MS = 600_000
/** A target that failed (timeout, 503, ICMP) goes last for this long. */
const DEMOTE_MS = 30_000
const MAX_NAMES = 10_000

interface Entry {
  name: HopName
  targets: Weighted[] | undefined
  via: string
  expiresAt: number
  refreshAt: number
  staleUntil: number
  /** Set when the name is known not to resolve (NXDOMAIN, no records, or never answered). */
  failedUntil: number
  failure: string | undefined
  usedAt: number
  pinned: boolean
  inflight: Promise<void> | undefined
}

export class NextHopResolver {
  private readonly client: DnsClient
  private readonly entries = new Map<string, Entry>()
  private readonly demoted = new Map<string, number>()
  private readonly staleMs: number
  private readonly random: () => number
  private timer: NodeJS.Timeout | undefined
  private readonly isDemoted = (p: Peer): boolean => {
    const until = this.demoted.get(peerKey(p))
    return until !== undefined && until > Date.now()
  }

  constructor(private readonly o: NextHopResolverOptions) {
    this.client = new DnsClient(o)
    this.staleMs = o.staleMs ?? 3_600_000
    this.random = o.random ?? Math.random
  }

  /** Resolutions done, by outcome (metrics: sipedge_dns_resolutions_total). */
  readonly resolutions = { ok: 0, nxdomain: 0, error: 0 }

  /** Names cached now, by state (metrics: sipedge_dns_names): answer in its TTL, served stale, or failing. */
  names(now = Date.now()): { fresh: number; stale: number; failing: number } {
    const n = { fresh: 0, stale: 0, failing: 0 }
    for (const e of this.entries.values()) {
      if (e.targets && now < e.expiresAt) n.fresh++
      else if (e.targets && now < e.staleUntil) n.stale++
      else if (e.failure !== undefined) n.failing++
    }
    return n
  }

  /** The resolvers asked (for the start-up log). */
  get servers(): string[] {
    return this.client.serverList.map((s) => `${s.address}:${s.port}`)
  }

  start(): void {
    this.timer ??= setInterval(() => this.sweep(), 250)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.client.close()
  }

  /**
   * The peers to try for a name, in order, from the cache only: never waits. Undefined when the name is not
   * cached (call resolve), null when it is known not to resolve.
   */
  lookup(name: HopName): Peer[] | null | undefined {
    const e = this.entries.get(name.key)
    if (!e) return undefined
    const now = Date.now()
    e.usedAt = now
    if (e.targets && now < e.staleUntil) {
      if (now >= e.refreshAt && !e.inflight) this.refresh(e)
      return orderTargets(e.targets, this.random, this.demoted.size > 0 ? this.isDemoted : undefined)
    }
    if (e.failedUntil > now) return null
    return undefined
  }

  /** Resolves a name (joining a query in flight); null when it does not resolve. */
  async resolve(name: HopName): Promise<Peer[] | null> {
    const cached = this.lookup(name)
    if (cached !== undefined) return cached
    let e = this.entries.get(name.key)
    if (!e) {
      if (this.entries.size >= MAX_NAMES) this.entries.delete(this.entries.keys().next().value!)
      e = { name, targets: undefined, via: '', expiresAt: 0, refreshAt: 0, staleUntil: 0, failedUntil: 0, failure: undefined, usedAt: Date.now(), pinned: false, inflight: undefined }
      this.entries.set(name.key, e)
    }
    await (e.inflight ?? this.refresh(e))
    return this.lookup(name) ?? null
  }

  /** Keep a name fresh whether or not requests use it (the trunk). */
  async keep(name: HopName): Promise<Peer[] | null> {
    const peers = await this.resolve(name)
    this.entries.get(name.key)!.pinned = true
    return peers
  }

  /** A target did not answer, answered 503 or was unreachable: try it last for a while. */
  failed(peer: Peer): void {
    if (this.demoted.size >= MAX_NAMES) this.demoted.clear()
    this.demoted.set(peerKey(peer), Date.now() + DEMOTE_MS)
  }

  private refresh(e: Entry): Promise<void> {
    const started = Date.now()
    const p = resolveHop(this.client, e.name, { transports: this.o.transports, ipv6: this.o.ipv6 ?? false })
      .then((r) => this.resolved(e, r, started), (err: Error) => this.failedResolving(e, err, started))
      .finally(() => {
        e.inflight = undefined
      })
    e.inflight = p
    return p
  }

  private resolved(e: Entry, r: Resolution, now: number): void {
    this.resolutions.ok++
    const ttlMs = Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, r.ttlS * 1000))
    const servername = e.name.host
    const targets: Weighted[] = r.targets.map((t) => ({
      priority: t.priority,
      weight: t.weight,
      peers: t.addresses.map((address) => (t.proto === 'tls' ? { proto: t.proto, address, port: t.port, servername } : { proto: t.proto, address, port: t.port })),
    }))
    const changed = !e.targets || describe(e.targets) !== describe(targets)
    if (e.failure || changed) {
      this.o.log?.info({ name: e.name.host, via: r.via, ttlS: r.ttlS, targets: describe(targets) }, e.failure ? 'next hop resolves again' : 'next hop resolved')
    }
    e.targets = targets
    e.via = r.via
    e.expiresAt = now + ttlMs
    // Ahead of expiry: a tenth of the TTL before it (at least 250 ms), so a name in use never expires.
    e.refreshAt = e.expiresAt - Math.max(250, ttlMs / 10)
    e.staleUntil = e.expiresAt + this.staleMs
    e.failedUntil = 0
    e.failure = undefined
  }

  private failedResolving(e: Entry, err: Error, now: number): void {
    const authoritative = err instanceof NoSuchTarget
    if (authoritative) this.resolutions.nxdomain++
    else this.resolutions.error++
    const first = e.failure === undefined
    e.failure = err.message
    if (authoritative) {
      // The name is gone (or never was): an answer, not an outage. Nothing stale to keep.
      e.targets = undefined
      e.failedUntil = now + NEGATIVE_MS
      e.refreshAt = e.failedUntil
    } else if (e.targets && now < e.staleUntil) {
      // Resolvers unreachable or failing: keep the cached answer (stale-while-error), retry soon.
      e.refreshAt = now + RETRY_MS
    } else {
      e.targets = undefined
      e.failedUntil = now + RETRY_MS
      e.refreshAt = e.failedUntil
    }
    if (first) {
      const stale = e.targets !== undefined
      this.o.log?.warn(
        { name: e.name.host, err: err.message, ...(stale ? { staleUntil: new Date(e.staleUntil).toISOString() } : {}) },
        stale ? 'next hop name does not resolve now: using the cached answer' : 'next hop name does not resolve: requests to it get 503',
      )
    }
  }

  /** Refresh names in use ahead of expiry; drop names unused and stale. */
  private sweep(): void {
    const now = Date.now()
    for (const [key, e] of this.entries) {
      const inUse = e.pinned || now - e.usedAt < IDLE_MS
      if (inUse && !e.inflight && now >= e.refreshAt) void this.refresh(e)
      else if (!inUse && now >= e.staleUntil && now >= e.failedUntil && !e.inflight) this.entries.delete(key)
    }
    if (this.demoted.size > 0) for (const [k, until] of this.demoted) if (until <= now) this.demoted.delete(k)
  }
}

function peerKey(p: Peer): string {
  return p.proto + ':' + p.address + ':' + p.port
}

function describe(targets: readonly Weighted[]): string {
  return targets.map((t) => `${t.peers.map((p) => `${p.proto}:${p.address}:${p.port}`).join('|')} p${t.priority} w${t.weight}`).join(', ')
}
