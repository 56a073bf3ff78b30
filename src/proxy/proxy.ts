import type { Logger } from 'pino'
import { targetKey, type Backend } from '../dispatch/backend.js'
import type { Dispatcher } from '../dispatch/dispatcher.js'
import {
  H,
  SipParseError,
  buildAck,
  buildCancel,
  buildResponse,
  newBranch,
  newTag,
  parseMessage,
  validateRequest,
  type MessageEditor,
  type NameAddr,
  type SipMessage,
} from '../sip/index.js'
import { protoOfVia, uriTransportParam, viaTransport } from '../transport/protos.js'
import type { Transports } from '../transport/transports.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { Sides, bareHost, hostport, peerFromUri, responseDestination } from './addressing.js'
import { DialogTable, type Dialog } from './dialogs.js'
import type { ProxyHooks, RequestContext } from './hooks.js'
import { TimerWheel } from './timer_wheel.js'
import { branchCarries, loopBranch, loopHash } from './loop.js'
import { isStrictRoute, rewriteRoutes } from './route_set.js'
import { isReplaces, redirectContacts, replacesCallId, rewriteTransferHeaders, type RewriteContext } from './uri_rewrite.js'
import { RateLimiter, SourceFilter } from './guard.js'
import type { Defence } from '../defence/defence.js'
import { LogOnce } from '../util/log-once.js'
import { MASK_PREFIX, TokenCodec, type RouteToken } from './tokens.js'
import { ClientTx, ServerTx, FR_TIMER, T1, T2, T4, TIMER_B, TIMER_C, TIMER_L, WAIT, enumState, serverKey } from './transactions.js'
import { fillReceived } from './via_received.js'
import { RecentSet } from './recent_set.js'
import { findSdp } from '../media/sdp_body.js'
import type { MediaResult } from '../media/anchor.js'
import { buildDialogEnd, spliceBody, type CallMedia, type ProxyMedia } from './media_step.js'

/** Counters the edge exposes as metrics; every method is called on the hot path, so keep them cheap. */
export interface ProxyObserver {
  /** A request received on `side` (counted before admission: rate-limited and denied ones too). */
  request(side: Side, method: string): void
  /** A request sent out of `side` (forwarded, ACK, CANCEL). */
  requestSent(side: Side, method: string): void
  /** A response received on `side`. */
  response(side: Side, status: number): void
  /** A response sent out of `side` (relayed or generated here). */
  responseSent(side: Side, status: number): void
  /** A response the edge generated itself (also counted by responseSent). */
  localReply(status: number): void
  parseError(side: Side): void
  refused(reason: 'relay' | 'token' | 'draining' | 'overload' | 'acl' | 'rate' | 'loop' | 'hops', side: Side): void
  failover(from: Backend): void
  /** A new INVITE taken for routing (a server transaction exists). */
  callOffered(): void
  /** A new INVITE answered 2xx: the dialog exists. */
  callStarted(backend: Backend | undefined, setupMs: number): void
  /** A new INVITE ended with a final response >= 300 (including 487 after CANCEL). */
  callFailed(status: number): void
  callEnded(backend: Backend | undefined, reason: string): void
  retransmission(): void
}

const NO_OBSERVER: ProxyObserver = {
  request() {},
  requestSent() {},
  response() {},
  responseSent() {},
  localReply() {},
  parseError() {},
  refused() {},
  failover() {},
  callOffered() {},
  callStarted() {},
  callFailed() {},
  callEnded() {},
  retransmission() {},
}

export interface ProxyOptions {
  secret: string
  /** Backend set for new calls from the public side when no hook chooses one. */
  defaultSet?: string
  /** timerCMs: a ringing INVITE branch is CANCELled after this long without a new provisional (default 181 s). */
  failover?: { maxTries?: number; inviteTimeoutMs?: number; codes?: readonly number[]; timerCMs?: number }
  maxTransactions?: number
  maxDialogs?: number
  dialogTtlS?: number
  /** Outbound gateway for calls placed by backends (their R-URI is kept; the packet goes to the trunk). */
  trunk?: Peer
  /** Answer 503 with this Retry-After to new calls while draining. */
  retryAfterS?: number
  hooks?: ProxyHooks
  observer?: ProxyObserver
  /** Per-source request limit on the public side (Kamailio pike); rps 0 = off. */
  rateLimit?: { rps: number; burst: number; action: 'reply' | 'drop' }
  /** Mask the Call-ID of calls placed by backends toward the public side (restored on the way back). */
  maskCallId?: boolean
  /** Source filters per side; requests from other sources are dropped (logged once per source). */
  filters?: { public?: SourceFilter; internal?: SourceFilter }
  /** Scanner/toll-fraud defence: screens public requests, learns from the answers relayed to public sources. */
  defence?: Defence
  /** rtpengine anchoring of SDP (src/media); off when absent. */
  media?: ProxyMedia
}

const RR_PARAM = 'sk'
const CONTACT_PARAM = 'ct'

/**
 * The stateful proxy core (RFC 3261 §16 + §17): validates, routes (loose routing, Record-Route tokens,
 * dispatch), forwards by splicing the received bytes, and runs the transactions that make failover,
 * CANCEL and retransmissions work. One instance per process; every handler is synchronous.
 */
export class Proxy {
  readonly dialogs: DialogTable
  readonly tokens: TokenCodec
  // 25 ms resolution: SIP timers are hundreds of ms; 40 wake-ups a second cost nothing measurable.
  readonly wheel = new TimerWheel(25, 8192)
  draining = false

  private readonly servers = new Map<string, ServerTx>()
  private readonly clients = new Map<string, ClientTx>()
  private maxTries: number
  private inviteTimeoutMs: number
  private timerCMs: number
  /**
   * RFC 6026 timer L, past the 5 s hold of the full transaction: the keys of answered INVITEs, so that a copy
   * retransmitted late is absorbed rather than taken for a new call. Their 2xx retransmissions meanwhile
   * go by the Vias (received/rport filled in, topology hidden): see forwardStateless.
   */
  private readonly answered = new RecentSet(TIMER_L - WAIT)
  private failoverCodes: ReadonlySet<number>
  private readonly maxTransactions: number
  private readonly defaultSet: string
  private readonly observer: ProxyObserver
  private readonly hooks: ProxyHooks
  private readonly fireServer = (tx: ServerTx, now: number): void => this.onServerTimer(tx, now)
  private readonly fireClient = (tx: ClientTx, now: number): void => this.onClientTimer(tx, now)
  private limiter: RateLimiter | undefined
  private rateReply: boolean
  private publicFilter: SourceFilter | undefined
  private internalFilter: SourceFilter | undefined
  private readonly defence: Defence | undefined
  private readonly once: LogOnce
  /** What the Refer-To / Replaces / 3xx rewrites need from the edge (bound once, not per message). */
  private readonly rewriteCtx: RewriteContext = {
    isInternal: (host) => this.isInternalHost(host),
    isOwn: (host, port) => this.sides.isOwn(host, port),
    sealContact: (uri, peer) => this.tokens.sealContact(uri, peer),
    openContact: (token) => {
      const c = this.tokens.openContact(token)
      return typeof c === 'string' ? undefined : c.uri
    },
    crossCallId: (callId, inward) => this.crossEmbeddedCallId(callId, inward),
  }
  /** Local tag for responses the edge itself generates (stable per process, enough to be unique per call). */
  private readonly localTag = newTag()
  private readonly media: ProxyMedia | undefined
  /** Media state of held/anchored request transactions (weak: goes with the transaction). */
  private readonly callMedia = new WeakMap<ServerTx, CallMedia>()
  /** Branches whose 2xx the edge ended itself (answer not anchored under policy reject). */
  private readonly endedBranches = new WeakSet<ClientTx>()

  constructor(
    private readonly transports: Transports,
    readonly sides: Sides,
    private readonly dispatcher: Dispatcher,
    private readonly opts: ProxyOptions,
    private readonly log: Logger,
  ) {
    this.tokens = new TokenCodec(opts.secret)
    this.maxTries = opts.failover?.maxTries ?? 3
    this.inviteTimeoutMs = opts.failover?.inviteTimeoutMs ?? 2000
    this.timerCMs = opts.failover?.timerCMs ?? TIMER_C
    this.failoverCodes = new Set(opts.failover?.codes ?? [408, 500, 503])
    this.maxTransactions = opts.maxTransactions ?? 200_000
    this.defaultSet = opts.defaultSet ?? 'default'
    this.observer = opts.observer ?? NO_OBSERVER
    this.hooks = opts.hooks ?? {}
    this.media = opts.media
    const rl = opts.rateLimit
    this.limiter = rl && rl.rps > 0 ? new RateLimiter(rl.rps, Math.max(1, rl.burst)) : undefined
    this.rateReply = rl?.action !== 'drop'
    this.publicFilter = opts.filters?.public?.active ? opts.filters.public : undefined
    this.internalFilter = opts.filters?.internal?.active ? opts.filters.internal : undefined
    this.defence = opts.defence
    this.once = new LogOnce(log, 10_000, 60_000)
    this.dialogs = new DialogTable({
      max: opts.maxDialogs ?? 200_000,
      ttlS: opts.dialogTtlS ?? 4 * 3600,
      onEnd: (d, reason) => {
        if (d.backend) this.dispatcher.callEnded(d.backend)
        this.observer.callEnded(d.backend, reason)
        this.hooks.onDialogEnd?.(d, reason)
      },
    })
  }

  start(): void {
    this.wheel.start()
  }

  /** SIGHUP: what can change on a running proxy. Transactions in progress keep the values they started with. */
  reconfigure(o: Pick<ProxyOptions, 'rateLimit' | 'filters' | 'failover' | 'maskCallId'>): void {
    this.maxTries = o.failover?.maxTries ?? 3
    this.inviteTimeoutMs = o.failover?.inviteTimeoutMs ?? 2000
    this.timerCMs = o.failover?.timerCMs ?? TIMER_C
    this.failoverCodes = new Set(o.failover?.codes ?? [408, 500, 503])
    const rl = o.rateLimit
    const same = rl && this.opts.rateLimit && rl.rps === this.opts.rateLimit.rps && rl.burst === this.opts.rateLimit.burst
    if (!same) this.limiter = rl && rl.rps > 0 ? new RateLimiter(rl.rps, Math.max(1, rl.burst)) : undefined
    this.rateReply = rl?.action !== 'drop'
    this.publicFilter = o.filters?.public?.active ? o.filters.public : undefined
    this.internalFilter = o.filters?.internal?.active ? o.filters.internal : undefined
    Object.assign(this.opts, o)
  }

  stop(): void {
    this.wheel.stop()
  }

  get transactionCount(): number {
    return this.servers.size + this.clients.size
  }

  /**
   * Calls still being set up or carried (for draining): dialogs, and transactions still waiting for their
   * final response. Finished transactions absorbing retransmissions (timers J/K, 5 s) do not hold a drain.
   */
  get busy(): number {
    let pending = 0
    for (const st of this.servers.values()) if (st.state < enumState.completed) pending++
    return this.dialogs.size + pending
  }

  // ---------------------------------------------------------------- inbound entry points (transport handlers)

  handleMessage(inb: Inbound): void {
    const side = this.sides.sideOf(inb.listener, inb.source)
    if (inb.msg.isRequest && !this.admit(inb, side)) return
    try {
      if (inb.msg.isRequest) this.onRequest(inb, side)
      else this.onResponse(inb, side)
    } catch (err) {
      if (err instanceof SipParseError) {
        this.observer.parseError(side)
        this.once.warn('bad:' + inb.source.address, { err: err.message, src: inb.source.address, status: err.status }, 'bad message')
        if (inb.msg.isRequest && inb.msg.method !== 'ACK') {
          try {
            this.replyTo(inb, err.status, shortReason(err), err.headers)
          } catch {
            // Not even a response can be built from it: drop.
          }
        }
      } else {
        this.log.error({ err, src: inb.source.address }, 'proxy failed on a message')
      }
    }
  }

  /** Source filters and the per-source rate limit, before any work beyond the parse index. */
  private admit(inb: Inbound, side: Side): boolean {
    const address = inb.source.address
    const filter = side === 'public' ? this.publicFilter : this.internalFilter
    if (filter && !filter.permits(address)) {
      this.observer.request(side, inb.msg.method)
      this.observer.refused('acl', side)
      this.once.warn('acl:' + address, { src: address, side }, 'source not allowed, dropping its requests')
      return false
    }
    if (side === 'public' && this.defence) {
      // Banned or fingerprinted: nothing more is done for it (no log per packet: the ban was logged once).
      const verdict = this.defence.screen(inb.msg, address)
      if (verdict !== 0) {
        if (verdict === 2 && inb.msg.method !== 'ACK') {
          try {
            this.replyTo(inb, 403, 'Forbidden')
          } catch {
            // Too broken to answer: dropping is the answer.
          }
        }
        return false
      }
    }
    if (side === 'public' && this.limiter && !this.limiter.allow(address, Date.now())) {
      this.observer.request(side, inb.msg.method)
      this.observer.refused('rate', side)
      this.once.warn('rate:' + address, { src: address }, 'source over its request rate, limiting')
      if (this.rateReply && inb.msg.method !== 'ACK') {
        try {
          this.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', '10']])
        } catch {
          // Too broken to answer: dropping is the answer.
        }
      }
      return false
    }
    return true
  }

  /** Bytes that did not parse: answer 400 when enough of a request is there to build a response. */
  handleParseError(err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number): void {
    const side = this.sides.sideOf(listener, source)
    if (side === 'public' && this.defence?.isBanned(source.address)) return
    this.observer.parseError(side)
    this.once.warn('bad:' + source.address, { err: err.message, src: source.address }, 'unparsable message')
    // A truncated or broken message cannot be answered reliably; a best-effort 400 needs Via/From/To/Call-ID/CSeq.
    try {
      const msg = parseMessage(buf)
      if (!msg.isRequest || msg.method === 'ACK') return
      const status = err instanceof SipParseError ? err.status : 400
      const out = buildResponse(msg, status, shortReason(err))
      this.observer.localReply(status)
      this.observer.responseSent(side, status)
      this.transports.send(out, responseDestination(msg.via, source), listener, connId)
    } catch {
      // Not even the headers a response needs: drop silently (RFC 3261 §16.3 / §18.3).
    }
  }

  /** A send failed (ICMP unreachable, refused, reset): fail the client transactions waiting on that peer now. */
  handleSendError(err: Error, dest: Peer): void {
    // A WebSocket client's connection is gone (RFC 7118: never connected back to): 430 Flow Failed (RFC 5626 §5.3).
    const flowGone = (err as { code?: string }).code === 'ENOTCONN'
    for (const ct of this.clients.values()) {
      if (ct.state !== enumState.trying || ct.target.port !== dest.port || ct.target.address !== dest.address) continue
      if (ct.abandoned) {
        this.completeClient(ct)
        continue
      }
      const fallback = ct.udpFallback
      if (fallback && dest.proto === 'tcp') {
        // The next hop takes no TCP: send the UDP copy of the same branch and go on with UDP timers.
        ct.udpFallback = undefined
        ct.target = fallback.target
        ct.listener = fallback.listener
        ct.out = fallback.out
        const now = Date.now()
        ct.retransMs = T1
        ct.retransAt = now + T1
        this.armClient(ct, now)
        this.transports.send(fallback.out, fallback.target, fallback.listener)
        continue
      }
      this.clientFailed(ct, flowGone ? 'flow gone' : 'transport error', flowGone ? 430 : 503)
    }
    // RFC 3261 §17.2.4: a response that cannot be sent ends its server transaction; waiting for an ACK
    // (timer H) or for retransmissions from a peer that is gone only holds memory.
    for (const st of this.servers.values()) {
      const d = st.responseDest
      if (st.state === enumState.completed && d.port === dest.port && d.address === dest.address && d.proto === dest.proto) {
        this.wheel.disarm(st)
        this.servers.delete(st.key)
        st.state = enumState.terminated
      }
    }
  }

  // ---------------------------------------------------------------- requests

  private onRequest(inb: Inbound, side: Side): void {
    const msg = inb.msg
    validateRequest(msg)
    const method = msg.method
    this.observer.request(side, method)
    if (method === 'ACK') return this.onAck(inb, side)
    if (method === 'CANCEL') return this.onCancel(inb, side)

    const key = serverKey(msg, method)
    const existing = this.servers.get(key)
    if (existing) return this.onRetransmission(existing, inb)
    if (method === 'INVITE' && this.answered.has(key, Date.now())) return this.observer.retransmission()

    const mf = msg.maxForwards
    if (mf === 0) {
      this.observer.refused('hops', side)
      return this.replyTo(inb, 483, 'Too Many Hops')
    }
    if (this.isLooped(msg)) {
      this.observer.refused('loop', side)
      return this.replyTo(inb, 482, 'Loop Detected')
    }
    if (this.servers.size >= this.maxTransactions) {
      this.observer.refused('overload', side)
      return this.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', '5']])
    }

    const route = this.processRoutes(msg)
    if (route === 'forged') {
      this.observer.refused('token', side)
      return this.replyTo(inb, 403, 'Forbidden')
    }
    if (route === 'stale') return this.replyTo(inb, 404, 'Not Found')

    const inDialog = msg.toTag !== undefined
    if (inDialog) return this.forwardInDialog(inb, side, route, key)
    return this.forwardInitial(inb, side, route, key)
  }

  /** Retransmitted request: answer from the last response, or absorb it (the client is still waiting). */
  private onRetransmission(st: ServerTx, inb: Inbound): void {
    this.observer.retransmission()
    if (st.lastResponse && st.state !== enumState.accepted) {
      // Over TCP the copy may come on a new connection (the old one broke): answer on the one it came on.
      this.transports.send(st.lastResponse, st.responseDest, st.listener, inb.connId ?? st.connId)
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
    const own = this.sides.listeners
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
    const hash36 = loopHash(msg, this.unmasked(msg.callId)).toString(36)
    for (const v of msg.vias) {
      if (v.branch !== undefined && this.sides.isOwn(v.host, v.port) && branchCarries(v.branch, hash36)) return true
    }
    return false
  }

  /** The Call-ID a dialog has inside (a masked one unmasked), so that masking does not hide a loop. */
  private plainCallId(callId: string): string {
    return callId.startsWith(MASK_PREFIX) ? (this.tokens.unmaskCallId(callId) ?? callId) : callId
  }

  /** The unmasked Call-ID when `callId` is one of our masked ones, else undefined. */
  private unmasked(callId: string): string | undefined {
    return callId.startsWith(MASK_PREFIX) ? this.tokens.unmaskCallId(callId) : undefined
  }

  /**
   * Loose routing (RFC 3261 §16.4): pop the edge's own Route entries (two when the Record-Route was doubled
   * across sides), and undo a strict router's rewrite (R-URI is our Record-Route URI). Returns the routing
   * state carried by our token, or none when the request did not carry one.
   */
  private processRoutes(msg: SipMessage): RouteState | 'forged' | 'stale' {
    const state: RouteState = { token: undefined, popped: [], newRuri: undefined, contact: undefined, callId: undefined, strict: false }
    const routes = msg.has(H.Route) ? msg.routes : EMPTY
    let firstOther = 0
    const ruri = msg.uri
    const ruriIsOwn = this.sides.isOwn(ruri.host, ruri.port)
    if (ruriIsOwn && typeof ruri.params[RR_PARAM] === 'string' && routes.length > 0) {
      // Strict router before us: it put our Record-Route URI in the R-URI and the real target last in Route.
      const last = routes[routes.length - 1]!
      state.newRuri = last.uriText
      state.popped.push(last)
      const t = this.tokens.openRoute(ruri.params[RR_PARAM] as string)
      if (typeof t === 'string') return t
      state.token = t
      // That last entry is the remote target; when it is one of our Contact aliases, it stands for the backend's.
      const lu = last.uri
      const ct = lu.params[CONTACT_PARAM]
      if (typeof ct === 'string' && this.sides.isOwn(lu.host, lu.port)) {
        const c = this.tokens.openContact(ct)
        if (typeof c === 'string') return c
        state.newRuri = c.uri
        state.contact = c.peer
      }
    } else if (ruriIsOwn && typeof ruri.params[CONTACT_PARAM] === 'string') {
      const c = this.tokens.openContact(ruri.params[CONTACT_PARAM] as string)
      if (typeof c === 'string') return c
      state.newRuri = c.uri
      state.contact = c.peer
    }
    for (; firstOther < routes.length && firstOther < 2; firstOther++) {
      const r = routes[firstOther]!
      if (state.popped.includes(r)) break
      if (!this.sides.isOwn(r.uri.host, r.uri.port)) break
      state.popped.push(r)
      const sk = r.uri.params[RR_PARAM]
      if (typeof sk === 'string' && !state.token) {
        const t = this.tokens.openRoute(sk)
        if (typeof t === 'string') return t
        state.token = t
      }
    }
    state.nextRoute = routes[firstOther] && !state.popped.includes(routes[firstOther]!) ? routes[firstOther] : undefined
    return state
  }

  /**
   * Call-ID masking across the sides: a masked Call-ID coming in from the public side is restored; the
   * Call-ID of a dialog created from inside is masked going out. Returns the Call-ID the forwarded request
   * must carry, or undefined to keep it.
   */
  private crossCallId(msg: SipMessage, outSide: Side, outbound: boolean): string | undefined {
    const callId = msg.callId
    if (outSide === 'internal') {
      if (!callId.startsWith(MASK_PREFIX)) return undefined
      return this.tokens.unmaskCallId(callId)
    }
    return this.opts.maskCallId && outbound ? this.tokens.maskCallId(callId) : undefined
  }

  // ------------------------------------------------------------ in-dialog requests

  /**
   * Where an in-dialog request goes: from our Record-Route token (either direction), from a Contact alias in
   * the R-URI, or, for clients that ignore Record-Route, from the dialog table. Undefined when none knows.
   */
  private dialogHop(inb: Inbound, side: Side, route: RouteState): { target: Peer; outSide: Side } | undefined {
    let flows: { internal: Peer; external: Peer } | undefined = route.token
    if (!flows) {
      if (route.contact) return { target: route.contact, outSide: 'internal' }
      flows = this.dialogs.get(this.tokens.unmaskCallId(inb.msg.callId) ?? inb.msg.callId)
      if (!flows) return undefined
    }
    const fromInternal = this.sides.twoSided ? side === 'internal' : isFrom(inb.source, flows.internal, flows.external)
    return fromInternal ? { target: flows.external, outSide: 'public' } : { target: flows.internal, outSide: 'internal' }
  }

  /**
   * The rest of the route set (RFC 3261 §16.12): once the edge's own Route entries are popped, a request going
   * out to the public side goes to the next entry (a carrier's SBC), not to the flow in our token. A strict
   * router there (no `lr`) gets the Request-URI/Route swap of §16.6 step 6. Toward the inside the token
   * decides: a public client cannot steer a request to another internal host with a Route of its own.
   * Undefined: no next entry, or one that names no IP literal (no DNS while forwarding).
   */
  private routeSetHop(route: RouteState, outSide: Side): Peer | undefined {
    const next = route.nextRoute
    if (!next || outSide !== 'public') return undefined
    const peer = peerFromUri(next.uri)
    if (peer) route.strict = isStrictRoute(next)
    return peer
  }

  /** The routing edits every forwarded request gets: R-URI, Call-ID across sides, our Routes off, Max-Forwards - 1. */
  private applyRouting(msg: SipMessage, ed: MessageEditor, route: RouteState): void {
    if (route.strict) rewriteRoutes(msg, ed, route.popped, route.newRuri ?? msg.requestUri)
    else {
      if (route.newRuri !== undefined) ed.setRequestUri(route.newRuri)
      rewriteRoutes(msg, ed, route.popped, undefined)
    }
    if (route.callId !== undefined) ed.setHeader(H.CallId, route.callId)
    const mf = msg.maxForwards
    // RFC 3261 §16.6 step 3: a request without Max-Forwards gets one, 70.
    ed.setMaxForwards(mf === undefined ? 70 : Math.min(mf, 256) - 1)
  }

  private forwardInDialog(inb: Inbound, side: Side, route: RouteState, key: string): void {
    const msg = inb.msg
    let target: Peer | undefined
    let outSide: Side
    const t = route.token
    const hop = this.dialogHop(inb, side, route)
    if (hop) {
      target = hop.target
      outSide = hop.outSide
      route.flow = outSide === 'public' // the public party's flow, as recorded when the dialog was created
    } else {
      // No token and no dialog: a request addressed past us.
      if (route.nextRoute || !this.sides.isOwn(msg.uri.host, msg.uri.port)) {
        if (side === 'public') {
          this.observer.refused('relay', side)
          return this.replyTo(inb, 403, 'Forbidden')
        }
        target = peerFromUri(route.nextRoute ? route.nextRoute.uri : msg.uri)
        outSide = 'public'
        if (!target) return this.replyTo(inb, 404, 'Not Found')
      } else {
        return this.replyTo(inb, 481, 'Call/Transaction Does Not Exist')
      }
    }
    const next = this.routeSetHop(route, outSide)
    if (next) {
      target = next
      route.flow = false
    }
    route.callId = this.crossCallId(msg, outSide, t?.outbound ?? false)
    const st = this.newServerTx(inb, side, key)
    if (route.callId && outSide === 'internal') st.maskedCallId = true
    // §17.2.1 / §16.2: a re-INVITE gets its 100 Trying from the edge, or the sender retransmits until the far end rings.
    if (msg.method === 'INVITE') this.sendProvisional(st, 100, 'Trying')
    // The call's rtpengine: from the token, or from the dialog cache for clients that ignore the Route set.
    const mediaId = this.media ? (t?.media ?? this.dialogs.get(this.internalCallId(msg.callId, side))?.media) : undefined
    if (mediaId !== undefined && (msg.method === 'INVITE' || msg.method === 'UPDATE')) {
      // A re-offer (either side): held until rtpengine answers, then forwarded.
      const hop = target
      return this.anchorOffer(st, side, outSide, mediaId, () => { this.sendDownstream(st, inb, outSide, hop, route, undefined) })
    }
    this.sendDownstream(st, inb, outSide, target, route, undefined)
    if (msg.method === 'BYE') {
      this.dialogs.end(outSide === 'internal' && route.callId ? route.callId : msg.callId)
      // After the BYE left: ending the media never delays the signalling.
      if (mediaId !== undefined) void this.media!.anchor.delete({ callId: this.internalCallId(msg.callId, side) }, mediaId)
    }
  }

  // ------------------------------------------------------------ new requests

  private forwardInitial(inb: Inbound, side: Side, route: RouteState, key: string): void {
    const msg = inb.msg
    const method = msg.method
    const ruriIsOwn = this.sides.isOwn(msg.uri.host, msg.uri.port)
    if (side === 'public' && (route.nextRoute || (!ruriIsOwn && !route.token))) {
      // Routed past us, or not for us and not in a dialog we know: never relay for the outside.
      this.observer.refused('relay', side)
      return this.replyTo(inb, 403, 'Forbidden')
    }
    if (method === 'OPTIONS' && ruriIsOwn && msg.uri.user === undefined) {
      return this.replyTo(inb, 200, 'OK', [['Allow', ALLOW], ['Accept', 'application/sdp']])
    }
    if (this.draining && method === 'INVITE') {
      this.observer.refused('draining', side)
      return this.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', String(this.opts.retryAfterS ?? 30)]])
    }

    // From inside, a call goes out: to the trunk when one is configured, else to the R-URI's host. A request
    // from inside addressed to the edge itself with no trunk is a backend-to-backend call: dispatch it.
    const goesOut = side === 'internal' && (this.opts.trunk !== undefined || !ruriIsOwn)
    let ctx: RequestContext | undefined
    if (this.hooks.onRequest) {
      ctx = { msg, source: inb.source, side, edit: msg.edit(), set: this.defaultSet }
      this.hooks.onRequest(ctx)
      if (ctx.reject) return this.replyTo(inb, ctx.reject.status, ctx.reject.reason)
    }

    const st = this.newServerTx(inb, side, key)
    if (method === 'INVITE') {
      this.observer.callOffered()
      this.sendProvisional(st, 100, 'Trying')
    }

    if (route.contact && !ctx?.target && !ctx?.backend) {
      // The Request-URI is an alias the edge handed out (an internal 3xx Contact, a Refer-To target, a
      // backend's Contact): straight to the internal target it stands for, with its URI restored. Not
      // dispatched: the backend that redirected or referred chose that target.
      this.sendDownstream(st, inb, 'internal', route.contact, route, ctx?.edit, this.backendAt(route.contact))
      return
    }
    if (ctx?.target || goesOut) {
      const target = ctx?.target ?? this.opts.trunk ?? (route.nextRoute ? peerFromUri(route.nextRoute.uri) : peerFromUri(msg.uri))
      if (!target) return this.finalLocal(st, 404, 'Not Found')
      route.callId = this.crossCallId(msg, 'public', true)
      if (this.media && method === 'INVITE') {
        return this.anchorOffer(st, side, 'public', undefined, () => { this.sendDownstream(st, inb, 'public', target, route, ctx?.edit) })
      }
      this.sendDownstream(st, inb, 'public', target, route, ctx?.edit)
      return
    }
    st.set = ctx?.set ?? this.defaultSet
    let forced = ctx?.backend
    st.hookEdit = ctx?.edit
    if (!forced && method === 'INVITE') {
      // RFC 3891: an INVITE with Replaces (attended transfer, call pickup) must reach the backend that holds
      // the replaced dialog, whatever the set's algorithm would pick.
      const replaced = this.replacedDialog(msg)
      if (replaced) {
        forced = replaced.backend ?? this.backendAt(replaced.internal)
        if (!forced) {
          const to = replaced.internal
          if (this.media) return this.anchorOffer(st, side, 'internal', undefined, () => { this.sendDownstream(st, inb, 'internal', to, NO_ROUTE, ctx?.edit) })
          this.sendDownstream(st, inb, 'internal', replaced.internal, NO_ROUTE, ctx?.edit)
          return
        }
      }
    }
    if (this.media && method === 'INVITE') {
      return this.anchorOffer(st, side, 'internal', undefined, () => {
        if (!this.tryBackend(st, forced, ctx?.edit)) this.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
      })
    }
    if (!this.tryBackend(st, forced, ctx?.edit)) this.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
  }

  // ------------------------------------------------------------ media (rtpengine)

  /**
   * Offers the request's SDP to rtpengine, then calls `go` (which forwards it). The server transaction
   * exists already, so retransmissions of the request are absorbed meanwhile (one offer per
   * transaction); every failover branch then reuses the anchored body. `instance`: the call's rtpengine
   * from the token (a re-offer); undefined for a new call.
   */
  private anchorOffer(st: ServerTx, inSide: Side, outSide: Side, instance: string | undefined, go: () => void): void {
    const media = this.media!
    const msg = st.request!
    const conf = instance === undefined ? (media.forSet?.(st.set) ?? { mode: 'anchor' as const, extra: undefined }) : { mode: 'anchor' as const, extra: undefined }
    if (conf.mode === 'off') return go()
    const callId = this.internalCallId(msg.callId, inSide)
    const initial = msg.toTag === undefined
    const loc = findSdp(msg.contentType, msg.body)
    if (loc === undefined) {
      // No offer (late offer, or no media yet): the instance is chosen now so that the token names it.
      const id = instance ?? media.anchor.pool.select()?.id
      if (id !== undefined) this.callMedia.set(st, { instance: id, callId, offered: false, body: undefined, contentLength: 0, initial, extra: conf.extra, chain: undefined })
      return go()
    }
    const sdp = msg.body.subarray(loc.start, loc.end)
    const call = { callId, offererTag: msg.fromTag ?? '', ...(msg.toTag !== undefined ? { answererTag: msg.toTag } : {}) }
    media.anchor.offer(call, inSide, outSide, sdp, { ...(instance !== undefined ? { instance } : {}), ...(conf.extra ? { extra: conf.extra } : {}) }).then((r) => {
      if (st.cancelled || st.lastStatus >= 200) {
        // CANCELled while rtpengine was asked: nothing went downstream, end it here.
        if (r.action === 'anchored' && initial) void media.anchor.delete({ callId }, r.instance)
        if (st.cancelled) this.finalLocal(st, 487, 'Request Terminated')
        return
      }
      if (r.action === 'reject') {
        this.log.warn({ callId: msg.callId, reason: r.reason }, 'media: offer failed, request rejected')
        return this.finalLocal(st, r.status, 'Service Unavailable', [['Retry-After', '5']])
      }
      if (r.action === 'anchored') {
        const body = spliceBody(msg.body, loc, r)
        this.callMedia.set(st, { instance: r.instance, callId, offered: true, body, contentLength: Buffer.byteLength(body), initial, extra: conf.extra, chain: undefined })
      } else {
        this.log.warn({ callId: msg.callId, reason: r.reason }, 'media: offer failed, SDP passed through')
      }
      go()
    }, (err: unknown) => {
      this.log.error({ err, callId: msg.callId }, 'media: offer step failed')
      this.finalLocal(st, 500, 'Server Internal Error')
    })
  }

  /**
   * A response of an anchored transaction: held when it carries SDP (answer, or a late offer in a 2xx),
   * or when an earlier one is still held (order kept). True when taken; it is relayed later.
   */
  private holdForMedia(st: ServerTx, ct: ClientTx, msg: SipMessage, cm: CallMedia): boolean {
    const status = msg.status
    const loc = status > 100 && status < 300 ? findSdp(msg.contentType, msg.body) : undefined
    if (loc === undefined && cm.chain === undefined) return false
    const media = this.media!
    const step = async (): Promise<void> => {
      // A copy of a 2xx queued before the edge ended the dialog: only the ACK again.
      if (status >= 200 && this.endedBranches.has(ct)) return this.endAnswered(ct, msg)
      let body: string | undefined
      if (loc !== undefined) {
        const sdp = msg.body.subarray(loc.start, loc.end)
        const from: Side = this.isInternalPeer(ct) ? 'internal' : 'public'
        const fromTag = msg.fromTag ?? ''
        const toTag = msg.toTag ?? ''
        const o = cm.extra ? { extra: cm.extra } : {}
        // No offer in the request: a 2xx with SDP offers (the UAS is the offerer), the ACK answers.
        const r: MediaResult = cm.offered
          ? await media.anchor.answer({ callId: cm.callId, offererTag: fromTag, answererTag: toTag }, from, st.side, sdp, cm.instance, o)
          : status >= 200
            ? await media.anchor.offer({ callId: cm.callId, offererTag: toTag, answererTag: fromTag }, from, st.side, sdp, { instance: cm.instance, ...o })
            : { action: 'passthrough', reason: 'provisional SDP without an offer', instance: cm.instance }
        if (r.action === 'anchored') body = spliceBody(msg.body, loc, r)
        else if (r.action === 'reject') {
          this.log.warn({ callId: msg.callId, status, reason: r.reason }, 'media: answer failed, response not relayed')
          // A provisional is dropped. A 2xx becomes our failure upstream, and the edge ends the answered
          // dialog itself (ACK, then BYE); 2xx retransmissions only get the ACK again.
          if (status >= 200) {
            this.endAnswered(ct, msg)
            this.finalLocal(st, r.status, 'Service Unavailable')
          }
          return
        }
      }
      this.relayResponse(st, ct, msg, { body })
    }
    cm.chain = (cm.chain ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.log.error({ err, callId: msg.callId }, 'media: answer step failed')
    })
    return true
  }

  /** ACK (every copy of the 2xx) and BYE (once) for a 2xx the edge will not relay. */
  private endAnswered(ct: ClientTx, ok: SipMessage): void {
    const contact = ok.contacts[0]?.uriText
    if (contact === undefined) return
    const first = !this.endedBranches.has(ct)
    this.endedBranches.add(ct)
    this.transports.send(buildDialogEnd('ACK', ok, contact, viaValue(ct.listener, newBranch())), ct.target, ct.listener)
    if (first) this.transports.send(buildDialogEnd('BYE', ok, contact, viaValue(ct.listener, newBranch())), ct.target, ct.listener)
  }

  /** The Call-ID as the internal side has it (masked Call-IDs are restored): one Call-ID per call for rtpengine. */
  private internalCallId(callId: string, side: Side): string {
    if (side === 'internal' || !callId.startsWith(MASK_PREFIX)) return callId
    return this.tokens.unmaskCallId(callId) ?? callId
  }

  /** The dialog an INVITE's Replaces header names (its Call-ID unmasked), if the dialog table holds it. */
  private replacedDialog(msg: SipMessage): Dialog | undefined {
    const callId = replacesCallId(msg)
    return callId === undefined ? undefined : this.dialogs.get(this.plainCallId(callId))
  }

  /** The configured backend at this address, if any (to count its calls). */
  private backendAt(peer: Peer): Backend | undefined {
    // Backends are reached over UDP or TCP only (discovery/backend_uri.ts).
    if (peer.proto !== 'udp' && peer.proto !== 'tcp') return undefined
    return this.dispatcher.byKey(targetKey({ proto: peer.proto, host: peer.address, port: peer.port }))
  }

  /** Call-IDs inside Replaces / Refer-To (RFC 3891): restored going in; a backend-created dialog's masked going out. */
  private crossEmbeddedCallId(callId: string, inward: boolean): string | undefined {
    if (inward) return callId.startsWith(MASK_PREFIX) ? this.tokens.unmaskCallId(callId) : undefined
    if (!this.opts.maskCallId || this.dialogs.get(callId)?.direction !== 'out') return undefined
    return this.tokens.maskCallId(callId)
  }

  /** Picks the next backend (excluding those tried) and forwards to it; false when none is left. */
  private tryBackend(st: ServerTx, forced?: Backend, edit?: MessageEditor): boolean {
    const msg = st.request
    if (!msg || st.cancelled || st.tries >= this.maxTries || st.set === undefined) return false
    let backend = forced
    if (!backend && this.hooks.selectBackend) {
      backend = this.hooks.selectBackend(st.set, msg, this.dispatcher.backends(st.set), st.tried)
    }
    // The From user is parsed only when the set's algorithm hashes on it.
    const ctx = { callId: msg.callId, get fromUser(): string { return fromUserOf(msg) } }
    backend ??= this.dispatcher.select(st.set, ctx, st.tried)
    if (!backend) return false
    st.tries++
    ;(st.tried ??= new Set()).add(backend)
    const target: Peer = { proto: backend.target.proto, address: backend.target.host, port: backend.target.port }
    const inb: Inbound = { msg, source: st.source, listener: st.listener, connId: st.connId }
    return this.sendDownstream(st, inb, 'internal', target, NO_ROUTE, edit, backend)
  }

  /**
   * Builds the forwarded request by splicing the received bytes (Via, Max-Forwards, Route pops,
   * Record-Route, topology hiding) and starts the client transaction.
   */
  private sendDownstream(
    st: ServerTx,
    inb: Inbound,
    outSide: Side,
    target: Peer,
    route: RouteState,
    hookEdit: MessageEditor | undefined,
    backend?: Backend,
  ): boolean {
    const msg = inb.msg
    const listener = this.sides.listenerFor(outSide, target.proto)
    if (!listener) {
      this.finalLocal(st, 503, 'Service Unavailable')
      return false
    }
    // A hook's edits apply to every branch: each attempt (failover) starts from a copy of them.
    const ed = hookEdit ? hookEdit.clone() : msg.edit()
    this.applyRouting(msg, ed, route)
    const cm = this.media ? this.callMedia.get(st) : undefined
    if (cm?.body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, cm.body)
      ed.setHeader(H.ContentLength, String(cm.contentLength))
    }

    const leavingInside = st.side === 'internal' && outSide === 'public'
    if (leavingInside) this.hideInternal(msg, ed, st, listener, target, route.strict)
    else fillReceived(msg, ed, inb.source)
    if (st.side !== outSide && (leavingInside || st.method === 'INVITE' || st.method === 'REFER')) {
      // Refer-To, Referred-By, Replaces: rewritten across the sides, never dropped (RFC 3515 §2.4.1, RFC 3891).
      // Outward on every method, as the scrub no longer removes them.
      rewriteTransferHeaders(msg, ed, leavingInside, listener, this.rewriteCtx)
    }

    const method = st.method
    if (isDialogCreating(method) && msg.toTag === undefined) {
      const internalPeer = outSide === 'internal' ? target : inb.source
      const externalPeer = outSide === 'internal' ? inb.source : target
      const token = this.tokens.sealRoute(internalPeer, externalPeer, outSide === 'public', cm?.instance)
      if (outSide === 'internal') {
        // Toward a backend: the entry that faces the backend on top, then the public one when they differ.
        const inner = this.sides.listenerFor('internal', target.proto) ?? listener
        const outer = this.sides.listenerFor('public', inb.source.proto) ?? inner
        const rr = recordRoute(inner, token) + (outer !== inner ? ', ' + recordRoute(outer, token) : '')
        ed.prependHeader('Record-Route', rr)
      } else {
        ed.prependHeader('Record-Route', recordRoute(listener, token))
      }
    }
    // The branch carries the hash of the request as received (R-URI, Route, tags, Call-ID, CSeq): §16.6 step 8.
    const branch = loopBranch(loopHash(msg, outSide === 'internal' && route.callId !== undefined ? route.callId : this.unmasked(msg.callId)))
    let out: Buffer
    let via = listener
    let dest = target
    let udpCopy: Buffer | undefined
    // RFC 3261 §18.1.1: a request larger than the MTU allows goes over TCP when this side has a TCP listener.
    // The UDP copy is kept: many Asterisks listen on UDP only, and a refused connection falls back to it.
    // Not toward a client's own UDP flow (route.flow): behind NAT it takes no connection, and each attempt
    // would stall for the connect timeout; there the request goes over UDP, fragmented (Kamailio's udp_mtu
    // does the same only for next hops it is configured to try).
    const tcp = target.proto === 'udp' && !route.flow && this.transports.exceedsUdpMtu(msg.end - msg.start + 300) ? this.sides.listenerFor(outSide, 'tcp') : undefined
    if (tcp) {
      udpCopy = ed.clone().prependHeader('Via', viaValue(listener, branch)).toBuffer()
      if (this.transports.exceedsUdpMtu(udpCopy.length)) {
        out = ed.prependHeader('Via', viaValue(tcp, branch)).toBuffer()
        via = tcp
        dest = { proto: 'tcp', address: target.address, port: target.port }
      } else {
        out = udpCopy
        udpCopy = undefined
      }
    } else {
      out = ed.prependHeader('Via', viaValue(listener, branch)).toBuffer()
    }

    const ct = new ClientTx(branch, method, st, backend, dest, via, this.fireClient)
    ct.out = out
    if (udpCopy) ct.udpFallback = { out: udpCopy, listener, target }
    st.client = ct
    this.clients.set(branch, ct)
    const now = Date.now()
    if (!ct.reliable) {
      ct.retransMs = T1
      ct.retransAt = now + T1
    }
    ct.timeoutAt = now + (method === 'INVITE' ? (backend ? this.inviteTimeoutMs : TIMER_B) : FR_TIMER)
    this.armClient(ct, now)
    this.observer.requestSent(outSide, method)
    this.transports.send(out, dest, via)
    return true
  }

  /** Toward the public side from inside: drop internal Vias (restored on the way back), hide the rest. */
  private hideInternal(msg: SipMessage, ed: MessageEditor, st: ServerTx, listener: Listener, target: Peer, strict: boolean): void {
    const parts: string[] = []
    for (const v of msg.vias) parts.push(v.raw)
    st.hiddenVias = parts.join(', ')
    this.hideOutgoing(msg, ed, st.source, listener, target, strict)
  }

  /**
   * What a request from inside must not show outside: its Vias, Record-Routes and Contact (replaced by an
   * edge alias), internal hosts in From/To and in the request-URI (replaced by the edge or the next hop),
   * and any other header naming an internal address. `strict`: the Request-URI was swapped into Route for a
   * strict router (§16.6 step 6); it is the remote target of a dialog then, and is left alone.
   */
  private hideOutgoing(msg: SipMessage, ed: MessageEditor, from: Peer, listener: Listener, target: Peer, strict = false): void {
    ed.removeHeaders(H.Via)
    if (msg.has(H.RecordRoute)) ed.removeHeaders(H.RecordRoute)
    if (msg.has(H.Contact) && !msg.contactStar) {
      const c = msg.contacts[0]
      if (c) ed.setHeader(H.Contact, this.contactAlias(c, from, listener))
    }
    const source = from.address
    this.hideHost(msg, ed, H.From, listener, source)
    this.hideHost(msg, ed, H.To, listener, source)
    const ruri = msg.uri
    const host = bareHost(ruri.host)
    if (!strict && (host === source || this.isInternalHost(host))) {
      // A request-URI naming the edge's internal address or the sender (a call sent to the trunk) gets the next hop.
      const at = msg.requestUri.indexOf('@')
      const user = at >= 0 ? msg.requestUri.slice(msg.requestUri.indexOf(':') + 1, at + 1) : ''
      ed.setRequestUri(`sip:${user}${hostport(target.address, target.port)}`)
    }
    this.scrubInternal(msg, ed, source)
  }

  /**
   * Safety net toward the public side: after the targeted rewrites (Via, Contact, Record-Route, From/To),
   * any other header line naming an internal address (X-Backend, P-Asserted-Identity with the Asterisk IP,
   * Warning ...) is removed. One indexOf per internal host over the header section when nothing is there.
   */
  private scrubInternal(msg: SipMessage, ed: MessageEditor, source?: string): void {
    const hosts = source && !this.sides.internalHosts.includes(source) ? [...this.sides.internalHosts, source] : this.sides.internalHosts
    const buf = msg.buf
    let hit = false
    for (let k = 0; k < hosts.length && !hit; k++) {
      const at = buf.indexOf(hosts[k]!, msg.headersStart, 'latin1')
      hit = at >= 0 && at < msg.headersEnd
    }
    if (!hit) return
    for (let i = 0; i < msg.headerCount; i++) {
      const id = msg.headerId(i)
      if (KEPT_BY_SCRUB.has(id) || (id === H.Other && isReplaces(msg, i))) continue
      const v = msg.headerValue(i)
      for (const h of hosts) {
        if (containsAddress(v, h)) {
          ed.replaceRange(msg.headerLineStart(i), msg.headerLineEnd(i), '')
          break
        }
      }
    }
  }

  /** Replaces an internal host in a From/To URI by the edge's public address (dialogs match on tags, not URIs). */
  private hideHost(msg: SipMessage, ed: MessageEditor, id: number, listener: Listener, source: string): void {
    const i = msg.indexOf(id)
    if (i < 0) return
    const addr = id === H.From ? msg.from : msg.to
    const host = bareHost(addr.uri.host)
    if (host !== source && !this.isInternalHost(host)) return
    const value = msg.headerValue(i)
    const hp = addr.uri.port === undefined ? addr.uri.host : addr.uri.host + ':' + addr.uri.port
    const at = value.indexOf(hp)
    if (at < 0) return
    ed.replaceRange(msg.headerValueStart(i), msg.headerValueEnd(i), value.slice(0, at) + listener.hostport + value.slice(at + hp.length))
  }

  private isInternalHost(address: string): boolean {
    return this.sides.isBackendHost(address) || this.sides.isInternalAddress(address) || this.sides.internalHosts.includes(address)
  }

  /** `<sip:edge;ct=TOKEN>` plus the original header parameters (expires, +sip.instance ...). */
  private contactAlias(c: NameAddr, peer: Peer, listener: Listener): string {
    const token = this.tokens.sealContact(c.uriText, peer)
    let params = ''
    for (const k in c.params) {
      const v = c.params[k]
      params += v === true ? ';' + k : ';' + k + '=' + v
    }
    return `<sip:${listener.hostport}${uriTransportParam(listener.spec.proto)};${CONTACT_PARAM}=${token}>${params}`
  }

  // ------------------------------------------------------------ ACK and CANCEL

  private onAck(inb: Inbound, side: Side): void {
    const msg = inb.msg
    const st = this.servers.get(serverKey(msg, 'INVITE'))
    if (st && st.state === enumState.completed) {
      // ACK for our non-2xx final response: hop by hop, it ends here (timer I absorbs stray copies).
      st.state = enumState.terminated
      this.wheel.disarm(st)
      this.wheel.arm(st, st.reliable ? 0 : T4)
      return
    }
    if (msg.maxForwards === 0) return
    // ACK for a 2xx: its own transaction, routed end to end like any in-dialog request, statelessly.
    const route = this.processRoutes(msg)
    if (typeof route === 'string') return
    const hop = this.dialogHop(inb, side, route)
    if (!hop) return
    const { outSide } = hop
    const target = this.routeSetHop(route, outSide) ?? hop.target
    const listener = this.sides.listenerFor(outSide, target.proto)
    if (!listener) return
    const media = route.token?.media
    if (this.media && media !== undefined) {
      const loc = findSdp(msg.contentType, msg.body)
      if (loc !== undefined) {
        // SDP in an ACK answers a late offer (the 2xx offered): the ACK's sender is the answerer.
        const call = { callId: this.internalCallId(msg.callId, side), offererTag: msg.toTag ?? '', answererTag: msg.fromTag ?? '' }
        this.media.anchor.answer(call, side, outSide, msg.body.subarray(loc.start, loc.end), media).then((r) => {
          this.forwardAck(inb, side, route, target, outSide, listener, r.action === 'anchored' ? spliceBody(msg.body, loc, r) : undefined)
        }, (err: unknown) => this.log.error({ err, callId: msg.callId }, 'media: ACK answer failed'))
        return
      }
    }
    this.forwardAck(inb, side, route, target, outSide, listener, undefined)
  }

  private forwardAck(inb: Inbound, side: Side, route: RouteState, target: Peer, outSide: Side, listener: Listener, body: string | undefined): void {
    const msg = inb.msg
    const ed = msg.edit()
    if (body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, body)
      ed.setHeader(H.ContentLength, String(Buffer.byteLength(body)))
    }
    route.callId = this.crossCallId(msg, outSide, route.token?.outbound ?? false)
    this.applyRouting(msg, ed, route)
    // Stateless: the internal Vias need not come back (an ACK has no response), so they just go.
    if (outSide === 'public' && side === 'internal') this.hideOutgoing(msg, ed, inb.source, listener, target, route.strict)
    // Stateless branch: derived from the incoming one so retransmitted ACKs keep the same branch (§16.11).
    const branch = 'z9hG4bKs' + fnv1a(msg.topViaBranch ?? msg.callId).toString(36)
    ed.prependHeader('Via', viaValue(listener, branch))
    this.observer.requestSent(outSide, 'ACK')
    this.transports.send(ed.toBuffer(), target, listener)
  }

  private onCancel(inb: Inbound, _side: Side): void {
    const msg = inb.msg
    const st = this.servers.get(serverKey(msg, 'INVITE'))
    if (!st) return this.replyTo(inb, 481, 'Call/Transaction Does Not Exist')
    this.replyTo(inb, 200, 'OK')
    if (st.lastStatus >= 200 || st.cancelled) return
    st.cancelled = true
    if (msg.has(H.Reason)) st.cancelReasons = msg.getHeaders(H.Reason)
    const ct = st.client
    if (!ct) return
    // RFC 3261 §9.1: CANCEL only once the branch sent a provisional response; until then, hold it.
    if (ct.state === enumState.proceeding) this.sendCancel(ct)
    else ct.cancelPending = true
  }

  private sendCancel(ct: ClientTx): void {
    if (!ct.out) return
    const invite = parseMessage(ct.out)
    this.observer.requestSent(ct.backend ? 'internal' : this.sides.sideOf(ct.listener, ct.target), 'CANCEL')
    this.transports.send(buildCancel(invite, ct.server?.cancelReasons), ct.target, ct.listener)
    ct.cancelPending = false
    ct.cancelSent = true
    // If the backend never answers the CANCEL with a 487, timer C / B ends the INVITE with a 487 upstream.
    ct.timeoutAt = Date.now() + 64 * T1
    this.armClient(ct, Date.now())
  }

  /** §16.7 step 10: a 2xx on one branch ends the others: CANCEL now if it rang, else as soon as it does. */
  private cancelBranch(ct: ClientTx): void {
    if (ct.state === enumState.proceeding && !ct.cancelSent) this.sendCancel(ct)
    else if (ct.state === enumState.trying) ct.cancelPending = true
  }

  // ---------------------------------------------------------------- responses

  private onResponse(inb: Inbound, side: Side): void {
    const msg = inb.msg
    const status = msg.status
    this.observer.response(side, status)
    const via = msg.via
    if (!this.sides.isOwn(via.host, via.port)) return // not ours: RFC 3261 §16.7 step 1 says drop
    const method = msg.cseq.method
    if (method === 'CANCEL') return // the CANCEL's own answer ends at the edge
    const ct = via.branch ? this.clients.get(via.branch) : undefined
    if (!ct || ct.method !== method) {
      // A 2xx retransmission after the branch was forgotten: pass it on statelessly by the next Via (§16.7).
      if (!ct && status >= 200 && status < 300 && method === 'INVITE') this.forwardStateless(inb, msg)
      return
    }
    const st = ct.server

    if (ct.state >= enumState.completed) {
      if (ct.state === enumState.completed && ct.isInvite && status >= 300 && ct.ackForNon2xx) {
        this.transports.send(ct.ackForNon2xx, ct.target, ct.listener) // response retransmitted: our ACK got lost
      } else if (ct.isInvite && status < 300 && status >= 200 && st) {
        // A 2xx retransmission (RFC 6026), or a 2xx on a branch already finished otherwise: pass it on, end to end.
        this.relayResponse(st, ct, msg)
      }
      return
    }

    if (status < 200) {
      if (ct.abandoned) {
        // A branch given up on rings after all: the CANCEL held back for it goes now (§9.1); nothing goes upstream.
        ct.state = enumState.proceeding
        if (ct.cancelPending) this.sendCancel(ct)
        return
      }
      const now = Date.now()
      if (ct.state === enumState.trying) {
        ct.state = enumState.proceeding
        ct.retransAt = 0
        // After a provisional, the call is alive on this backend: no more failover, timer C bounds the wait.
        ct.timeoutAt = now + (ct.isInvite ? this.timerCMs : TIMER_B)
        this.armClient(ct, now)
        if (ct.backend) this.dispatcher.reportSuccess(ct.backend)
      } else if (status > 100 && ct.isInvite && !ct.cancelSent) {
        // §16.7 step 2: every provisional above 100 restarts timer C (announcements and queues ring for minutes).
        ct.timeoutAt = now + this.timerCMs
        this.armClient(ct, now)
      }
      if (ct.cancelPending) this.sendCancel(ct)
      if (status === 100 || !st || st.lastStatus >= 200) return
      this.relayResponse(st, ct, msg)
      return
    }

    this.wheel.disarm(ct)
    ct.retransAt = 0
    if (status < 300) {
      if (ct.isInvite) {
        ct.state = enumState.accepted
        ct.out = undefined
        ct.udpFallback = undefined
        this.wheel.arm(ct, WAIT) // keep the branch for 2xx retransmissions, then forget it (they go by the Vias)
        if (st) {
          this.callEstablished(st, ct)
          // §16.7 step 10: the call is answered here; a branch still pending elsewhere is cancelled.
          if (st.client && st.client !== ct && st.client.state < enumState.completed) this.cancelBranch(st.client)
        }
      } else {
        this.completeClient(ct)
      }
      // §16.7 step 5: a 2xx is relayed at once, whichever branch it comes from, even after another final response.
      if (st) this.relayResponse(st, ct, msg)
      return
    }

    // 3xx-6xx
    if (ct.isInvite && ct.out) {
      ct.ackForNon2xx = buildAck(parseMessage(ct.out), msg)
      this.transports.send(ct.ackForNon2xx, ct.target, ct.listener)
    }
    this.completeClient(ct)
    // An abandoned branch's final answer (the 487 to our CANCEL, most often) ends with our ACK.
    if (!st || st.lastStatus >= 200 || st.client !== ct) return
    if (ct.backend && this.failoverCodes.has(status) && st.set !== undefined && !st.cancelled) {
      this.dispatcher.reportFailure(ct.backend, String(status))
      this.rememberBest(st, msg)
      this.observer.failover(ct.backend)
      if (this.tryBackend(st, undefined, st.hookEdit)) return
      return this.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
    }
    this.relayResponse(st, ct, msg)
  }

  /**
   * A 2xx whose branch is gone (a retransmission after the 5 s hold, another edge's, or from before a restart):
   * relayed by the next Via (§16.7, §18.2.2 with the received/rport the edge filled in), with the topology
   * hiding of the stateful path when it leaves a backend for the public side. Requests from inside left with
   * the edge's Via alone: their responses cannot be relayed without the transaction.
   */
  private forwardStateless(inb: Inbound, msg: SipMessage): void {
    // With media anchored, a 2xx whose transaction is gone cannot be given rtpengine's SDP here: drop it
    // rather than let the backend's SDP out (the caller got the anchored copy; issue 17 keeps 2xx state longer).
    if (this.media && findSdp(msg.contentType, msg.body) !== undefined) return
    const vias = msg.vias
    const next = vias[1]
    if (!next) return
    const address = bareHost(next.received ?? next.host)
    const port = typeof next.rport === 'number' ? next.rport : (next.port ?? 5060)
    const proto = protoOfVia(next.transport) ?? 'udp'
    // It goes back the way the request came: out of the other side in the two-sided setup.
    const listener = this.sides.listenerFor(inb.listener.spec.side === 'internal' ? 'public' : 'internal', proto)
    if (!listener) return
    const dest: Peer = { proto, address, port }
    const ed = msg.edit().removeTopVia()
    if (this.sides.sideOf(inb.listener, inb.source) === 'internal' && this.sides.sideOf(listener, dest) === 'public') {
      if (msg.has(H.Contact) && !msg.contactStar && msg.contacts[0]) {
        ed.setHeader(H.Contact, this.contactAlias(msg.contacts[0], inb.source, listener))
      }
      this.trimRecordRoute(msg, ed, 'public')
      this.scrubInternal(msg, ed)
      // In a dialog a backend placed (a carrier's re-INVITE answered), the Call-ID is masked outside.
      if (this.opts.maskCallId && this.dialogs.get(msg.callId)?.direction === 'out') ed.setHeader(H.CallId, this.tokens.maskCallId(msg.callId))
    }
    this.transports.send(ed.toBuffer(), dest, listener)
  }

  private rememberBest(st: ServerTx, msg: SipMessage): void {
    // RFC 3261 §16.7 step 6, simplified for sequential forking: the lowest class wins, 6xx always.
    const s = msg.status
    const b = st.bestStatus
    if (b === 0 || (s >= 600 && b < 600) || (b < 600 && Math.floor(s / 100) < Math.floor(b / 100))) {
      st.bestStatus = s
      st.bestResponse = msg
    }
  }

  /** Forwards a response upstream: our Via off, internal details hidden when it leaves toward the public side. */
  private relayResponse(st: ServerTx, ct: ClientTx, msg: SipMessage, media?: { body: string | undefined }): void {
    if (this.media && media === undefined) {
      // The edge ended this branch's dialog (answer not anchored): its 2xx copies only get an ACK.
      if (this.endedBranches.has(ct)) {
        if (msg.status >= 200 && msg.status < 300) this.endAnswered(ct, msg)
        return
      }
      const cm = this.callMedia.get(st)
      if (cm !== undefined && this.holdForMedia(st, ct, msg, cm)) return
    }
    const ed = msg.edit()
    if (media?.body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, media.body)
      ed.setHeader(H.ContentLength, String(Buffer.byteLength(media.body)))
    }
    ed.removeTopVia()
    if (st.hiddenVias) ed.prependHeader('Via', st.hiddenVias)
    const toPublic = st.side === 'public'
    // The defence learns from what the inside answers the outside (the request tells whether it had credentials).
    if (toPublic && this.defence && st.request) this.defence.observe(st.request, st.source.address, msg.status)
    if (st.maskedCallId) ed.setHeader(H.CallId, this.tokens.maskCallId(msg.callId))
    else if (!toPublic && msg.callId.startsWith(MASK_PREFIX)) {
      const original = this.tokens.unmaskCallId(msg.callId)
      if (original !== undefined) ed.setHeader(H.CallId, original)
    }
    if (toPublic && ct.target && this.isInternalPeer(ct)) {
      if (msg.status >= 300 && msg.status < 400) {
        // A redirect is relayed, not recursed: the caller (or Asterisk's Transfer() on a ringing channel)
        // chooses among the targets, and recursing would let a backend steer calls anywhere from the edge.
        // External targets stay as they are; internal ones become aliases that the edge opens again when
        // the caller sends its new INVITE there, so following the redirect reaches the right container.
        if (msg.has(H.Contact) && !msg.contactStar) redirectContacts(msg, ed, st.listener, this.rewriteCtx)
      } else if (msg.has(H.Contact) && !msg.contactStar && msg.contacts[0]) {
        ed.setHeader(H.Contact, this.contactAlias(msg.contacts[0], ct.target, st.listener))
      }
      this.trimRecordRoute(msg, ed, 'public')
      this.scrubInternal(msg, ed)
    } else if (!toPublic && this.sides.twoSided && msg.has(H.RecordRoute)) {
      this.addInnerRecordRoute(msg, ed, st)
    }
    if (this.hooks.onResponse) {
      this.hooks.onResponse({ msg, request: st.request, backend: ct.backend, side: st.side, edit: ed })
    }
    const out = ed.toBuffer()
    this.sendUpstream(st, msg.status, out)
  }

  /** Did this branch go to the inside (a backend, or anything behind the internal side)? */
  private isInternalPeer(ct: ClientTx): boolean {
    if (ct.backend) return true
    if (this.sides.twoSided) return ct.listener.spec.side === 'internal'
    return this.isInternalHost(ct.target.address)
  }

  /** Removes Record-Route entries above the edge's own entry for `side` (internal hops and our inner entry). */
  private trimRecordRoute(msg: SipMessage, ed: MessageEditor, side: Side): void {
    if (!msg.has(H.RecordRoute)) return
    const rrs = msg.recordRoutes
    for (let i = 0; i < rrs.length; i++) {
      const u = rrs[i]!.uri
      if (typeof u.params[RR_PARAM] === 'string' && this.sides.isOwnOnSide(u.host, u.port, side)) {
        for (let j = 0; j < i; j++) ed.removeElement(rrs[j]!)
        return
      }
    }
  }

  /** Calls placed by backends: add our internal-facing entry below the public one so the backend reaches us. */
  private addInnerRecordRoute(msg: SipMessage, ed: MessageEditor, st: ServerTx): void {
    const rrs = msg.recordRoutes
    const last = rrs[rrs.length - 1]
    if (!last) return
    const sk = last.uri.params[RR_PARAM]
    if (typeof sk !== 'string' || !this.sides.isOwn(last.uri.host, last.uri.port)) return
    const inner = this.sides.listenerFor('internal', st.source.proto)
    if (!inner || this.sides.isOwnOnSide(last.uri.host, last.uri.port, 'internal')) return
    ed.replaceRange(last.end, last.end, ', ' + recordRoute(inner, sk))
  }

  private callEstablished(st: ServerTx, ct: ClientTx): void {
    if (st.method !== 'INVITE' || !st.request || st.request.toTag !== undefined) return
    const inbound = st.side === 'public'
    const dialog: Dialog = {
      callId: st.request.callId,
      internal: inbound ? ct.target : st.source,
      external: inbound ? st.source : ct.target,
      backend: ct.backend,
      createdAt: Date.now(),
      direction: inbound ? 'in' : 'out',
    }
    const media = this.media ? this.callMedia.get(st)?.instance : undefined
    if (media !== undefined) dialog.media = media
    if (this.dialogs.add(dialog)) {
      if (ct.backend) this.dispatcher.callStarted(ct.backend)
      this.observer.callStarted(ct.backend, dialog.createdAt - st.startedAt)
    }
  }

  // ---------------------------------------------------------------- server transaction helpers

  private newServerTx(inb: Inbound, side: Side, key: string): ServerTx {
    const st = new ServerTx(key, inb.msg.method, inb.msg, inb.source, inb.listener, inb.connId, side, this.fireServer)
    st.responseDest = responseDestination(inb.msg.via, inb.source)
    this.servers.set(key, st)
    return st
  }

  private sendProvisional(st: ServerTx, status: number, reason: string): void {
    if (!st.request) return
    const out = buildResponse(st.request, status, reason)
    st.lastResponse = out
    this.observer.localReply(status)
    this.observer.responseSent(st.side, status)
    this.transports.send(out, st.responseDest, st.listener, st.connId)
  }

  /** A final response the edge generates itself for a transaction it holds (e.g. 503 when no backend is left). */
  private finalLocal(st: ServerTx, status: number, reason: string, headers?: Array<[string, string]>): void {
    if (!st.request || st.lastStatus >= 200) return
    const useBest = st.bestResponse && status === 503 && st.bestStatus >= 600
    if (useBest) {
      const ed = st.bestResponse!.edit()
      ed.removeTopVia()
      if (st.hiddenVias) ed.prependHeader('Via', st.hiddenVias)
      return this.sendUpstream(st, st.bestStatus, ed.toBuffer())
    }
    const opts: { toTag?: string; headers?: Array<[string, string]> } = {}
    if (st.request.toTag === undefined) opts.toTag = this.localTag
    if (headers) opts.headers = headers
    this.observer.localReply(status)
    this.sendUpstream(st, status, buildResponse(st.request, status, reason, opts))
  }

  /** Sends a response upstream and moves the server transaction on (RFC 3261 §17.2 and RFC 6026). */
  private sendUpstream(st: ServerTx, status: number, out: Buffer): void {
    this.observer.responseSent(st.side, status)
    if (status >= 300 && st.isInvite && st.lastStatus < 200 && st.request?.toTag === undefined) this.observer.callFailed(status)
    this.transports.send(out, st.responseDest, st.listener, st.connId)
    if (status >= 300 && this.media && st.isInvite) {
      // CANCEL (487), failover exhausted (503), any failure relayed: the call will not exist.
      const cm = this.callMedia.get(st)
      if (cm?.initial) {
        this.callMedia.delete(st)
        void this.media.anchor.delete({ callId: cm.callId }, cm.instance)
      }
    }
    if (status < 200) {
      st.lastResponse = out
      st.lastStatus = status
      return
    }
    // Accepted already (or forgotten): further 2xx (retransmissions, another branch's answer) only pass through.
    if (st.state >= enumState.accepted) return
    if (st.lastStatus >= 200 && !(status < 300 && st.isInvite)) return
    st.lastStatus = status
    st.lastResponse = out
    st.hookEdit = undefined
    st.bestResponse = undefined
    st.tried = undefined
    this.wheel.disarm(st)
    if (st.isInvite && status < 300) {
      // Accepted (RFC 6026): absorb retransmitted INVITEs, let the end-to-end 2xx retransmissions through;
      // after WAIT, only the key stays, in `answered`, for the rest of timer L.
      st.state = enumState.accepted
      st.request = undefined
      st.lastResponse = undefined
      this.wheel.arm(st, WAIT)
    } else if (st.isInvite) {
      st.state = enumState.completed
      st.request = undefined
      st.retransMs = T1
      st.giveUpAt = Date.now() + TIMER_B
      this.wheel.arm(st, st.reliable ? TIMER_B : T1) // timer G until the ACK, H as the bound
    } else {
      st.state = enumState.completed
      st.request = undefined
      this.wheel.arm(st, st.reliable ? 0 : WAIT) // timer J
    }
    // A branch left pending ends with the answer, unless abandoned: that one still owes a CANCEL or an ACK.
    if (st.client && st.client.state < enumState.completed && !st.client.abandoned && status >= 300) this.completeClient(st.client)
  }

  private onServerTimer(st: ServerTx, now: number): void {
    // A banned source gets no more retransmissions (and the transaction is freed now).
    const banned = st.side === 'public' && this.defence !== undefined && this.defence.isBanned(st.source.address)
    if (st.state === enumState.completed && st.isInvite && !st.reliable && now < st.giveUpAt && st.lastResponse && !banned) {
      // Timer G: the ACK has not come; send the final response again.
      this.transports.send(st.lastResponse, st.responseDest, st.listener, st.connId)
      st.retransMs = Math.min(st.retransMs * 2, T2)
      this.wheel.arm(st, st.retransMs)
      return
    }
    if (st.state === enumState.accepted) this.answered.add(st.key, now)
    if (this.servers.get(st.key) === st) this.servers.delete(st.key)
    st.state = enumState.terminated
    st.client = undefined
  }

  // ---------------------------------------------------------------- client transaction helpers

  private armClient(ct: ClientTx, now: number): void {
    const due = ct.retransAt > 0 && ct.retransAt < ct.timeoutAt ? ct.retransAt : ct.timeoutAt
    this.wheel.arm(ct, Math.max(0, due - now))
  }

  private onClientTimer(ct: ClientTx, now: number): void {
    if (ct.state >= enumState.completed) {
      this.clients.delete(ct.branch)
      ct.state = enumState.terminated
      return
    }
    if (ct.retransAt > 0 && now >= ct.retransAt && now < ct.timeoutAt && ct.out) {
      // Timers A / E: retransmit over UDP, doubling (non-INVITE capped at T2).
      this.transports.send(ct.out, ct.target, ct.listener)
      ct.retransMs = ct.isInvite ? ct.retransMs * 2 : Math.min(ct.retransMs * 2, T2)
      ct.retransAt = now + ct.retransMs
      this.armClient(ct, now)
      return
    }
    if (now >= ct.timeoutAt) {
      if (ct.abandoned) {
        // Timer B (or the CANCEL's own bound) on a branch nobody waits for any more.
        this.completeClient(ct)
        return
      }
      if (ct.isInvite && ct.state === enumState.proceeding && !ct.cancelSent) {
        // Timer C (§16.8): CANCEL the ringing branch and answer 408 upstream; the branch stays to ACK the
        // 487 that answers the CANCEL (§17.1.1.3) or to pass a 2xx that crossed it.
        this.sendCancel(ct)
        this.abandon(ct, now)
        this.branchFailed(ct, 'timer C', 408, false)
        return
      }
      if (ct.isInvite && ct.state === enumState.trying && ct.backend) {
        // Failover timer: the backend may still answer. No CANCEL before a provisional (§9.1): it waits for one.
        ct.cancelPending = true
        this.abandon(ct, now)
        this.branchFailed(ct, 'timeout', 408, true)
        return
      }
      this.clientFailed(ct, ct.state === enumState.trying ? 'timeout' : 'no final response', 408)
      return
    }
    this.armClient(ct, now)
  }

  /** Detach a pending INVITE branch from its server transaction's wait; it lives on until timer B. */
  private abandon(ct: ClientTx, now: number): void {
    ct.abandoned = true
    ct.retransAt = 0
    if (!ct.cancelSent) ct.timeoutAt = now + TIMER_B
    this.armClient(ct, now)
  }

  /** The branch produced no usable answer (timeout or transport error): fail over or answer upstream. */
  private clientFailed(ct: ClientTx, why: string, status: number): void {
    const wasTrying = ct.state === enumState.trying
    this.completeClient(ct)
    this.branchFailed(ct, why, status, wasTrying)
  }

  /** What the server transaction does when its current branch failed: the next backend, or a final response. */
  private branchFailed(ct: ClientTx, why: string, status: number, wasTrying: boolean): void {
    const st = ct.server
    if (!st || st.lastStatus >= 200 || st.client !== ct) return
    if (st.cancelled) return this.finalLocal(st, 487, 'Request Terminated')
    if (status === 408 && !st.isInvite) {
      // RFC 4320 §4.2: no 408 to a non-INVITE request. Its sender gave up at the same moment (timer F), so
      // neither another backend nor any answer would reach it: the transaction just ends.
      if (ct.backend) this.dispatcher.reportFailure(ct.backend, why)
      return this.dropServer(st)
    }
    if (ct.backend) {
      this.dispatcher.reportFailure(ct.backend, why)
      if (wasTrying && st.set !== undefined) {
        this.observer.failover(ct.backend)
        this.log.info({ callId: st.request?.callId, backend: ct.backend.id, why }, 'backend failed, trying the next one')
        if (this.tryBackend(st, undefined, st.hookEdit)) return
        return this.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
      }
    }
    if (st.method === 'ACK') return
    this.finalLocal(st, status, status === 408 ? 'Request Timeout' : status === 430 ? 'Flow Failed' : 'Service Unavailable')
  }

  private dropServer(st: ServerTx): void {
    this.wheel.disarm(st)
    this.servers.delete(st.key)
    st.state = enumState.terminated
    st.request = undefined
    st.hookEdit = undefined
    st.client = undefined
  }

  private completeClient(ct: ClientTx): void {
    this.wheel.disarm(ct)
    ct.state = enumState.completed
    ct.out = undefined
    ct.retransAt = 0
    // Timer D / K: keep absorbing response retransmissions for a while over UDP.
    this.wheel.arm(ct, ct.reliable ? 0 : WAIT)
  }

  // ---------------------------------------------------------------- replies

  /** Stateless reply to a request (errors, local OPTIONS). */
  private replyTo(inb: Inbound, status: number, reason?: string, headers?: Array<[string, string]>): void {
    const msg = inb.msg
    if (msg.method === 'ACK') return
    const opts: { toTag?: string; headers?: Array<[string, string]> } = {}
    if (status > 100 && msg.toTag === undefined) opts.toTag = this.localTag
    if (headers) opts.headers = headers
    const out = buildResponse(msg, status, reason, opts)
    this.observer.localReply(status)
    this.observer.responseSent(this.sides.sideOf(inb.listener, inb.source), status)
    this.transports.send(out, responseDestination(msg.via, inb.source), inb.listener, inb.connId)
  }

  /** Forget every transaction and dialog (shutdown). */
  clear(): void {
    for (const st of this.servers.values()) this.wheel.disarm(st)
    for (const ct of this.clients.values()) this.wheel.disarm(ct)
    this.servers.clear()
    this.clients.clear()
    this.answered.clear()
    this.dialogs.clear()
  }
}

interface RouteState {
  /** The target is the public party's own flow from the dialog (no UDP to TCP switch toward it). */
  flow?: boolean
  /** The next hop is a strict router from the route set: swap Request-URI and Route (§16.6 step 6). */
  strict: boolean
  token: RouteToken | undefined
  /** Route entries of ours to remove (and the strict-router one). */
  popped: NameAddr[]
  newRuri: string | undefined
  /** Backend flow from a Contact alias in the R-URI. */
  contact: Peer | undefined
  /** First Route entry that is not ours, if any. */
  nextRoute?: NameAddr | undefined
  /** Call-ID to put in the forwarded request (masked going out, restored coming in). */
  callId: string | undefined
}

const EMPTY: NameAddr[] = []
const NO_ROUTE: RouteState = { token: undefined, popped: [], newRuri: undefined, contact: undefined, callId: undefined, strict: false }
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY, SUBSCRIBE, MESSAGE, PRACK, REGISTER'

function isDialogCreating(method: string): boolean {
  return method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER' || method === 'NOTIFY'
}

/** True when `source` is the internal party of the dialog (it matches the internal flow, not the external one). */
function isFrom(source: Peer, internal: Peer, external: Peer): boolean {
  if (source.address !== internal.address) return false
  return !(source.address === external.address && source.port === external.port && source.port !== internal.port)
}

function viaValue(l: Listener, branch: string): string {
  return `SIP/2.0/${viaTransport(l.spec.proto)} ${l.hostport};branch=${branch}`
}

function recordRoute(l: Listener, token: string): string {
  return `<sip:${l.hostport}${uriTransportParam(l.spec.proto)};lr;${RR_PARAM}=${token}>`
}

function fromUserOf(msg: SipMessage): string {
  try {
    return msg.from.uri.user ?? ''
  } catch {
    return ''
  }
}

/**
 * Headers the scrub never drops: the ones rewritten on purpose (Via, Contact, Record-Route, Route, From, To),
 * the ones a message cannot lose (Call-ID — masked instead when maskCallId is on —, CSeq, Max-Forwards,
 * Content-Length, Content-Type).
 */
const KEPT_BY_SCRUB = new Set<number>([
  H.Via, H.Contact, H.RecordRoute, H.Route, H.From, H.To, H.CallId, H.CSeq, H.MaxForwards, H.ContentLength, H.ContentType,
  // A REFER without Refer-To is refused (RFC 3515 §2.4.1); Referred-By is copied into the triggered INVITE
  // (RFC 3892): both are rewritten by rewriteTransferHeaders instead (Replaces too, tested by name).
  H.ReferTo, H.ReferredBy,
])

/** `host` appears in `text` as a whole address: 127.0.8.2 is not in 127.0.8.20 nor in 10.127.0.8.2. */
export function containsAddress(text: string, host: string): boolean {
  const v6 = host.includes(':')
  for (let at = text.indexOf(host); at >= 0; at = text.indexOf(host, at + 1)) {
    const before = at > 0 ? text.charCodeAt(at - 1) : 0
    const after = at + host.length < text.length ? text.charCodeAt(at + host.length) : 0
    if (!continuesAddress(before, v6) && !continuesAddress(after, v6)) return true
  }
  return false
}

/** Digits and '.' continue an IPv4 literal ('127.0.8.2' in '127.0.8.20'); hex digits and ':' an IPv6 one too. */
function continuesAddress(c: number, v6: boolean): boolean {
  if ((c >= 48 && c <= 57) || c === 46) return true
  return v6 && (c === 58 || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))
}

/** 32-bit FNV-1a: a cheap stable hash for stateless branches. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

function shortReason(err: Error): string {
  const m = err.message.replace(/[\r\n]+/g, ' ')
  return m.length > 60 ? m.slice(0, 60) : m
}
