// Admission and request checks, the first step a request meets: source filters (ACL) and the per-source rate
// limit before any work, then validation, Max-Forwards, loop detection (RFC 3261 §16.3, RFC 5393) and the
// transaction ceiling. Unparsable and invalid messages are answered (or dropped) here too.
import { H, SipParseError, buildResponse, parseMessage, validateRequest, type SipMessage } from '../sip/index.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { responseDestination } from './addressing.js'
import type { ProxyCore } from './core.js'
import { RateLimiter, type SourceFilter } from './guard.js'
import { branchCarries, loopHash } from './loop.js'
import type { ProxyOptions } from './options.js'
import type { Topology } from './topology.js'

export class Admission {
  private limiter: RateLimiter | undefined
  private rateReply = true
  private publicFilter: SourceFilter | undefined
  private internalFilter: SourceFilter | undefined
  private readonly maxTransactions: number

  constructor(
    private readonly core: ProxyCore,
    private readonly topology: Topology,
    opts: ProxyOptions,
  ) {
    this.maxTransactions = opts.maxTransactions ?? 200_000
    this.reconfigure(opts, undefined)
  }

  /** SIGHUP: filters and rate limit (a limiter with the same figures keeps its buckets). */
  reconfigure(o: Pick<ProxyOptions, 'rateLimit' | 'filters'>, before: ProxyOptions['rateLimit']): void {
    const rl = o.rateLimit
    const same = rl && before && rl.rps === before.rps && rl.burst === before.burst
    if (!same) this.limiter = rl && rl.rps > 0 ? new RateLimiter(rl.rps, Math.max(1, rl.burst)) : undefined
    this.rateReply = rl?.action !== 'drop'
    this.publicFilter = o.filters?.public?.active ? o.filters.public : undefined
    this.internalFilter = o.filters?.internal?.active ? o.filters.internal : undefined
  }

  /** Source filters and the per-source rate limit, before any work beyond the parse index. */
  admit(inb: Inbound, side: Side): boolean {
    const core = this.core
    const address = inb.source.address
    const filter = side === 'public' ? this.publicFilter : this.internalFilter
    if (filter && !filter.permits(address)) {
      core.observer.request(side, inb.msg.method)
      core.observer.refused('acl', side)
      core.once.warn('acl:' + address, { src: address, side }, 'source not allowed, dropping its requests')
      return false
    }
    if (side === 'public' && core.defence) {
      // Banned or fingerprinted: nothing more is done for it (no log per packet: the ban was logged once).
      const verdict = core.defence.screen(inb.msg, address)
      if (verdict !== 0) {
        if (verdict === 2 && inb.msg.method !== 'ACK') {
          try {
            core.replyTo(inb, 403, 'Forbidden')
          } catch {
            // Too broken to answer: dropping is the answer.
          }
        }
        return false
      }
    }
    if (side === 'public' && this.limiter && !this.limiter.allow(address, Date.now())) {
      core.observer.request(side, inb.msg.method)
      core.observer.refused('rate', side)
      core.once.warn('rate:' + address, { src: address }, 'source over its request rate, limiting')
      if (this.rateReply && inb.msg.method !== 'ACK') {
        try {
          core.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', '10']])
        } catch {
          // Too broken to answer: dropping is the answer.
        }
      }
      return false
    }
    return true
  }

  /** A request taken in: checked for the headers a proxy needs (throws SipParseError), and counted. */
  receive(msg: SipMessage, side: Side): void {
    validateRequest(msg)
    this.core.observer.request(side, msg.method)
  }

  /**
   * The checks a new (non-ACK, non-CANCEL, not retransmitted) request passes before routing: Max-Forwards,
   * loop, transaction ceiling. False when refused (answered here).
   */
  checkNew(inb: Inbound, side: Side, transactions: number): boolean {
    const core = this.core
    if (inb.msg.maxForwards === 0) {
      core.observer.refused('hops', side)
      core.replyTo(inb, 483, 'Too Many Hops')
      return false
    }
    if (this.isLooped(inb.msg)) {
      core.observer.refused('loop', side)
      core.replyTo(inb, 482, 'Loop Detected')
      return false
    }
    if (transactions >= this.maxTransactions) {
      core.observer.refused('overload', side)
      core.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', '5']])
      return false
    }
    return true
  }

  /** A message that failed a check (SipParseError from the lazy parse or validation): 4xx for a request. */
  badMessage(inb: Inbound, side: Side, err: SipParseError): void {
    this.core.observer.parseError(side)
    this.core.once.warn('bad:' + inb.source.address, { err: err.message, src: inb.source.address, status: err.status }, 'bad message')
    if (inb.msg.isRequest && inb.msg.method !== 'ACK') {
      try {
        this.core.replyTo(inb, err.status, shortReason(err), err.headers)
      } catch {
        // Not even a response can be built from it: drop.
      }
    }
  }

  /** Bytes that did not parse: answer 400 when enough of a request is there to build a response. */
  parseError(err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number): void {
    const core = this.core
    const side = core.sides.sideOf(listener, source)
    if (side === 'public' && core.defence?.isBanned(source.address)) return
    core.observer.parseError(side)
    core.once.warn('bad:' + source.address, { err: err.message, src: source.address }, 'unparsable message')
    // A truncated or broken message cannot be answered reliably; a best-effort 400 needs Via/From/To/Call-ID/CSeq.
    try {
      const msg = parseMessage(buf)
      if (!msg.isRequest || msg.method === 'ACK') return
      const status = err instanceof SipParseError ? err.status : 400
      const out = buildResponse(msg, status, shortReason(err))
      core.observer.localReply(status)
      core.observer.responseSent(side, status)
      core.transports.send(out, responseDestination(msg.via, source), listener, connId)
    } catch {
      // Not even the headers a response needs: drop silently (RFC 3261 §16.3 / §18.3).
    }
  }

  /**
   * RFC 3261 §16.3 step 4: a Via of ours whose branch carries the hash of this very request means a loop;
   * a Via of ours with another hash means a spiral (new Request-URI or route), which is forwarded.
   */
  private isLooped(msg: SipMessage): boolean {
    // The edge always writes its Via as host:port of a listener. A byte search per Via line first: no Via
    // list is built and nothing is hashed for the common case of a request that has not been here.
    const buf = msg.buf
    const own = this.core.sides.listeners
    for (let i = msg.indexOf(H.Via); i >= 0; i = msg.indexOf(H.Via, i + 1)) {
      const start = msg.headerValueStart(i)
      const end = msg.headerValueEnd(i)
      for (let k = 0; k < own.length; k++) {
        const hp = own[k]!.hostport
        for (let at = buf.indexOf(hp, start, 'latin1'); at >= 0 && at + hp.length <= end; at = buf.indexOf(hp, at + 1, 'latin1')) {
          const next = at + hp.length < end ? buf[at + hp.length]! : 0
          if (next < 48 || next > 57) return this.ownBranchMatches(msg) // not followed by another digit of a longer port
        }
      }
    }
    return false
  }

  private ownBranchMatches(msg: SipMessage): boolean {
    const hash36 = loopHash(msg, this.topology.unmasked(msg.callId)).toString(36)
    for (const v of msg.vias) {
      if (v.branch !== undefined && this.core.sides.isOwn(v.host, v.port) && branchCarries(v.branch, hash36)) return true
    }
    return false
  }
}

export function shortReason(err: Error): string {
  const m = err.message.replace(/[\r\n]+/g, ' ')
  return m.length > 60 ? m.slice(0, 60) : m
}
