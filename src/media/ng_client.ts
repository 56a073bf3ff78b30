// rtpengine NG control protocol over UDP: each datagram is `<cookie> <bencoded dict>`, the reply carries
// the same cookie. rtpengine caches replies by cookie, so a retransmission with the same cookie is
// answered from that cache and never executes a command twice (an offer is not allocated twice).
import { randomBytes } from 'node:crypto'
import { type RemoteInfo, type Socket } from 'node:dgram'
import { performance } from 'node:perf_hooks'
import { bindClientSockets } from '../util/client_sockets.js'
import { BencodeError, decode, encode, isDict, type BDict, type BInput, type BValue } from './bencode.js'

export interface NgTarget {
  readonly host: string
  readonly port: number
}

export type NgCommand = 'ping' | 'offer' | 'answer' | 'delete' | 'query' | 'list' | (string & {})
export type NgOutcome = 'ok' | 'error' | 'timeout' | 'closed'

export type NgErrorKind =
  | 'error' // rtpengine answered `result: error` (or another non-ok result such as `load limit`)
  | 'timeout' // no reply within the total timeout, retransmissions included
  | 'protocol' // a reply with our cookie that is not a bencoded dict with a result
  | 'closed' // the client was closed while the request was in flight
  | 'overload' // too many requests in flight: refused before sending

export class NgError extends Error {
  readonly kind: NgErrorKind
  readonly command: string
  readonly target: string
  /** rtpengine's `error-reason` (kind 'error'). */
  readonly reason: string | undefined
  constructor(kind: NgErrorKind, command: string, target: NgTarget, detail: string, reason?: string) {
    super(`rtpengine ${target.host}:${target.port} ${command}: ${detail}`)
    this.name = 'NgError'
    this.kind = kind
    this.command = command
    this.target = `${target.host}:${target.port}`
    this.reason = reason
  }
}

export interface NgClientOptions {
  /** Local address to bind (e.g. the internal side's address). Default: any. */
  localAddress?: string
  /** First retransmission after this; then doubling (Kamailio's rtpengine_tout_ms). Default 500. */
  retransmitMs?: number
  /** Total time for one request, retransmissions included. Default 2500. */
  timeoutMs?: number
  /** Requests in flight at most; beyond it requests fail at once with kind 'overload'. Default 10000. */
  maxPending?: number
  /**
   * Called once per request when it settles: for latency histograms and per-instance error counters.
   * `ms` is from the first send to the reply (or to the give-up).
   */
  onCommand?: (command: string, target: NgTarget, ms: number, outcome: NgOutcome, retransmits: number) => void
}

/** Arguments of call commands. Dict values left undefined are not sent. */
export interface NgCallArgs {
  'call-id': string
  'from-tag'?: string
  'to-tag'?: string
  'via-branch'?: string
  [key: string]: BInput | undefined
}

export interface NgSdpReply {
  /** The rewritten SDP. */
  sdp: Buffer
  /** The whole reply (e.g. `warning`). */
  reply: BDict
}

export interface NgClientStats {
  sent: number
  retransmits: number
  timeouts: number
  errors: number
  /** Replies whose cookie matched nothing in flight (late replies after a timeout, strays). */
  unmatched: number
  pending: number
}

interface Pending {
  readonly cookie: string
  readonly command: string
  readonly target: NgTarget
  readonly msg: Buffer
  readonly sock: Socket
  readonly start: number
  readonly deadline: number
  interval: number
  /** When the shared tick next acts on this request: a retransmission, or the give-up when `final`. */
  due: number
  retransmits: number
  /** The next action is the give-up, not a retransmission. */
  final: boolean
  resolve: (v: BDict) => void
  reject: (e: Error) => void
}

/**
 * One UDP socket per address family serving any number of rtpengine instances. Requests are matched
 * by cookie (and the reply's source must be the target), retransmitted with the same bytes on a
 * doubling interval, and given up after `timeoutMs`. One shared timer ticks while requests are in flight
 * (every retransmitMs/8, 2 to 50 ms) and acts on those that are due, rather than a timer set and cleared per
 * command: replies mostly come within a millisecond, so per-command timers were almost all cleared unused.
 * Retransmissions and give-ups are late by at most one tick.
 */
export class NgClient {
  private readonly retransmitMs: number
  private readonly timeoutMs: number
  private readonly maxPending: number
  private readonly localAddress: string | undefined
  private readonly onCommand: NgClientOptions['onCommand']
  private readonly pending = new Map<string, Pending>()
  // A random prefix per client: rtpengine caches replies by cookie for a while, so a restarted edge
  // counting from 1 again must not be answered with the previous process's cached replies.
  private readonly cookiePrefix = randomBytes(6).toString('base64url')
  private seq = 0
  private udp4: Socket | undefined
  private udp6: Socket | undefined
  private binding: Promise<void> | undefined
  private closed = false
  private readonly tickMs: number
  private ticker: NodeJS.Timeout | undefined
  readonly stats: NgClientStats = { sent: 0, retransmits: 0, timeouts: 0, errors: 0, unmatched: 0, pending: 0 }

  constructor(opts: NgClientOptions = {}) {
    this.retransmitMs = Math.max(1, opts.retransmitMs ?? 500)
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? 2500)
    this.maxPending = Math.max(1, opts.maxPending ?? 10_000)
    this.localAddress = opts.localAddress
    this.onCommand = opts.onCommand
    this.tickMs = Math.min(50, Math.max(2, Math.floor(Math.min(this.retransmitMs, this.timeoutMs) / 8)))
    this.onMessage = this.onMessage.bind(this)
    this.onTick = this.onTick.bind(this)
  }

  /** Binds the sockets (also done by the first request). */
  start(): Promise<void> {
    this.binding ??= this.bind()
    return this.binding
  }

  /** Fails every request in flight with kind 'closed' and closes the sockets. */
  async close(): Promise<void> {
    this.closed = true
    for (const p of [...this.pending.values()]) this.settle(p, 'closed', undefined, new NgError('closed', p.command, p.target, 'client closed'))
    if (this.ticker !== undefined) clearInterval(this.ticker)
    this.ticker = undefined
    await this.binding?.catch(() => undefined)
    const closing: Array<Promise<void>> = []
    for (const s of [this.udp4, this.udp6]) if (s !== undefined) closing.push(new Promise<void>((r) => s.close(() => r())))
    this.udp4 = this.udp6 = undefined
    await Promise.all(closing)
  }

  /** The local UDP port of the IPv4 socket (after start), for tests and logs. */
  get localPort(): number | undefined {
    return this.udp4?.address().port
  }

  /**
   * Sends `command` with `args` to `target` and resolves with the reply dict when `result` is `ok` or
   * `pong`. Rejects with NgError: 'error' (rtpengine's error-reason), 'timeout', 'protocol', 'closed'.
   */
  async request(target: NgTarget, command: NgCommand, args?: { readonly [key: string]: BInput | undefined }, timeoutMs = this.timeoutMs): Promise<BDict> {
    if (this.closed) throw new NgError('closed', command, target, 'client closed')
    if (this.udp4 === undefined) await this.start()
    if (this.pending.size >= this.maxPending) {
      throw new NgError('overload', command, target, `${this.pending.size} requests in flight`)
    }
    // Targets are IP literals (no regex per command): only an IPv6 one has a colon.
    const sock = target.host.includes(':') ? this.udp6 : this.udp4
    if (sock === undefined) throw new NgError('closed', command, target, 'no socket for this address family')
    const cookie = `${this.cookiePrefix}${(this.seq++).toString(36)}`
    const msg = encode(args === undefined ? { command } : { ...args, command }, `${cookie} `)
    return new Promise<BDict>((resolve, reject) => {
      const start = performance.now()
      const interval = Math.min(this.retransmitMs, timeoutMs)
      const p: Pending = {
        cookie, command, target, msg, sock, start,
        deadline: start + timeoutMs,
        interval, due: start + interval,
        retransmits: 0, final: this.retransmitMs >= timeoutMs, resolve, reject,
      }
      this.pending.set(cookie, p)
      this.stats.pending = this.pending.size
      this.armTicker()
      this.stats.sent++
      // No callback: an unconnected UDP socket learns nothing from ICMP; loss shows as a timeout.
      sock.send(msg, target.port, target.host)
    })
  }

  /** Resolves with the round-trip time in ms. */
  async ping(target: NgTarget, timeoutMs?: number): Promise<number> {
    const t0 = performance.now()
    await this.request(target, 'ping', undefined, timeoutMs)
    return performance.now() - t0
  }

  offer(target: NgTarget, args: NgCallArgs & { sdp: Buffer | string }): Promise<NgSdpReply> {
    return this.sdpCommand(target, 'offer', args)
  }

  answer(target: NgTarget, args: NgCallArgs & { sdp: Buffer | string; 'to-tag': string }): Promise<NgSdpReply> {
    return this.sdpCommand(target, 'answer', args)
  }

  /** Deleting an unknown call is not an error for rtpengine (it answers ok with a `warning`). */
  delete(target: NgTarget, args: NgCallArgs): Promise<BDict> {
    return this.request(target, 'delete', args)
  }

  query(target: NgTarget, args: NgCallArgs): Promise<BDict> {
    return this.request(target, 'query', args)
  }

  /** Call-IDs rtpengine holds (at most `limit`, rtpengine's default 32). */
  async list(target: NgTarget, limit?: number): Promise<string[]> {
    const reply = await this.request(target, 'list', limit === undefined ? undefined : { limit })
    const calls = reply['calls']
    if (!Array.isArray(calls)) throw new NgError('protocol', 'list', target, 'reply without a calls list')
    return calls.filter((c): c is string => typeof c === 'string')
  }

  private async sdpCommand(target: NgTarget, command: 'offer' | 'answer', args: NgCallArgs): Promise<NgSdpReply> {
    const reply = await this.request(target, command, args)
    const sdp = reply['sdp']
    if (typeof sdp !== 'string') throw new NgError('protocol', command, target, 'ok reply without sdp')
    return { sdp: Buffer.from(sdp, 'latin1'), reply }
  }

  /**
   * The shared timer runs while requests are in flight and holds the process open only then (the
   * sockets never do). It is started once and keeps running through busy periods: stopping and
   * starting it on every idle gap would cost what a timer per command cost.
   */
  private armTicker(): void {
    if (this.ticker === undefined) this.ticker = setInterval(this.onTick, this.tickMs)
    else if (!this.ticker.hasRef()) this.ticker.ref()
  }

  private onTick(): void {
    if (this.pending.size === 0) {
      // Idle for a whole tick: stop until the next request.
      clearInterval(this.ticker)
      this.ticker = undefined
      return
    }
    const now = performance.now()
    for (const p of this.pending.values()) {
      // Settling deletes from the Map being iterated: allowed, the iteration goes on with the next entry.
      if (p.due <= now + 1) this.due(p, now)
    }
  }

  private due(p: Pending, now: number): void {
    const left = p.deadline - now
    if (p.final || left <= 1) {
      this.stats.timeouts++
      const ms = Math.round(now - p.start)
      this.settle(p, 'timeout', undefined, new NgError('timeout', p.command, p.target, `no reply in ${ms} ms (${p.retransmits} retransmissions)`))
      return
    }
    // Same bytes, same cookie: rtpengine answers a repeat from its cookie cache.
    p.retransmits++
    this.stats.retransmits++
    p.sock.send(p.msg, p.target.port, p.target.host)
    p.interval *= 2
    p.final = p.interval >= left
    p.due = now + (p.final ? left : p.interval)
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    // The cookie is short: look for its space in the first bytes only.
    const sp = msg.subarray(0, 64).indexOf(0x20)
    if (sp <= 0) { this.stats.unmatched++; return }
    const p = this.pending.get(msg.toString('latin1', 0, sp))
    // Only the instance we asked may answer (a stray or spoofed datagram is ignored, not fatal).
    if (p === undefined || rinfo.port !== p.target.port || !sameHost(rinfo.address, p.target.host)) {
      this.stats.unmatched++
      return
    }
    let reply: BValue
    try {
      // Nobody reads a delete's per-stream statistics: they are checked, not built.
      reply = decode(msg, { offset: sp + 1, shallow: p.command === 'delete' })
    } catch (err) {
      const why = err instanceof BencodeError ? err.message : String(err)
      this.settle(p, 'error', undefined, new NgError('protocol', p.command, p.target, `undecodable reply: ${why}`))
      return
    }
    if (!isDict(reply) || typeof reply['result'] !== 'string') {
      this.settle(p, 'error', undefined, new NgError('protocol', p.command, p.target, 'reply is not a dict with a result'))
      return
    }
    const result = reply['result']
    if (result === 'ok' || result === 'pong') {
      this.settle(p, 'ok', reply, undefined)
      return
    }
    const reason = typeof reply['error-reason'] === 'string' ? reply['error-reason'] : result
    this.settle(p, 'error', undefined, new NgError('error', p.command, p.target, `${result}: ${reason}`, reason))
  }

  private settle(p: Pending, outcome: NgOutcome, reply: BDict | undefined, err: Error | undefined): void {
    if (this.pending.get(p.cookie) !== p) return
    this.pending.delete(p.cookie)
    this.stats.pending = this.pending.size
    // Nothing waits: the ticker no longer holds the process (it stops itself at its next tick).
    if (this.pending.size === 0) this.ticker?.unref()
    if (outcome === 'error') this.stats.errors++
    if (this.onCommand !== undefined) {
      try {
        this.onCommand(p.command, p.target, performance.now() - p.start, outcome, p.retransmits)
      } catch { /* a metrics hook must not break the request */ }
    }
    if (err !== undefined) p.reject(err)
    else p.resolve(reply as BDict)
  }

  private async bind(): Promise<void> {
    // The sockets never hold the process open: the ticker does while a request waits.
    const { udp4, udp6 } = await bindClientSockets(this.localAddress, this.onMessage, () => false)
    this.udp4 = udp4
    this.udp6 = udp6
    if (this.closed) {
      for (const s of [this.udp4, this.udp6]) s?.close()
      this.udp4 = this.udp6 = undefined
    }
  }
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true
  // A v4 target reached through a dual-stack socket shows as ::ffff:a.b.c.d.
  return a.startsWith('::ffff:') && a.slice(7) === b
}
