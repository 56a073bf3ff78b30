import type { Logger } from 'pino'
import type { Dispatcher } from '../dispatch/dispatcher.js'
import { SipParseError } from '../sip/index.js'
import type { Transports } from '../transport/transports.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { Sides, peerFromUri } from './addressing.js'
import { Admission } from './admission.js'
import { ClientTransactions } from './client_tx.js'
import { ProxyCore } from './core.js'
import type { DialogTable } from './dialogs.js'
import { Failover } from './failover.js'
import { KeepaliveTable } from './keepalive.js'
import { MediaStep } from './media_step.js'
import { PathStep } from './path.js'
import { isSecureTransport, isSipsRequest } from './sips.js'
import type { RequestContext } from './hooks.js'
import type { ProxyOptions } from './options.js'
import { Relay } from './relay.js'
import { NO_ROUTE, Routing, type RouteState } from './routing.js'
import { ServerTransactions } from './server_tx.js'
import type { TimerWheel } from './timer_wheel.js'
import type { TokenCodec } from './tokens.js'
import { Topology } from './topology.js'
import { serverKey, type ServerTx } from './transactions.js'
import { hopName } from '../dns/index.js'
import type { MessageEditor } from '../sip/index.js'

export type { ProxyDefence, ProxyObserver, ProxyOptions } from './options.js'
export { containsAddress } from './topology.js'

/**
 * The stateful proxy core (RFC 3261 §16 + §17), as the coordinator of the steps a message goes through:
 *
 *   request:  admission.ts (ACL, rate, checks, loops) → routing.ts (Route, tokens, targets)
 *             → [media: SDP anchoring goes here, between choosing the hop and building the message]
 *             → relay.ts (build with topology.ts, choose socket, send) → client_tx.ts (timers, failover.ts)
 *   response: client_tx.ts (branch state) → relay.ts (topology.ts, hooks) → server_tx.ts (upstream)
 *
 * One instance per process; every handler is synchronous. New request kinds (REGISTER/Path) get their own
 * step next to forwardInitial / forwardInDialog below; new transports live under src/transport/.
 */
export class Proxy {
  readonly dialogs: DialogTable
  readonly tokens: TokenCodec
  readonly wheel: TimerWheel
  draining = false

  private readonly core: ProxyCore
  private readonly admission: Admission
  private readonly routing: Routing
  private readonly topology: Topology
  private readonly servers: ServerTransactions
  private readonly clients: ClientTransactions
  private readonly relay: Relay
  private readonly failover: Failover
  /** rtpengine anchoring, between routing and relay; undefined (never entered) without media. */
  private readonly media: MediaStep | undefined
  /** REGISTER with Path out, requests routed by Path back in (path.ts). */
  readonly path: PathStep

  constructor(transports: Transports, readonly sides: Sides, dispatcher: Dispatcher, private readonly opts: ProxyOptions, log: Logger) {
    const core = (this.core = new ProxyCore(transports, sides, dispatcher, opts, log))
    this.dialogs = core.dialogs
    this.tokens = core.tokens
    this.wheel = core.wheel
    this.topology = new Topology(core)
    this.admission = new Admission(core, this.topology, opts)
    this.routing = new Routing(core, this.topology)
    this.servers = new ServerTransactions(core, this.topology)
    this.clients = new ClientTransactions(core, opts)
    this.relay = new Relay(core, this.routing, this.topology, this.servers, this.clients)
    this.failover = new Failover(core, this.servers, this.relay, opts)
    this.servers.clients = this.clients
    this.clients.relay = this.relay
    this.clients.failover = this.failover
    this.path = this.relay.path = new PathStep(core, this.servers, this.relay, this.failover, this.routing, this.topology, opts.registrarSet)
    if (opts.natKeepalive) this.path.keepalive = new KeepaliveTable(core, opts.natKeepalive)
    if (opts.media) {
      const media = (this.media = new MediaStep(core, opts.media, this.servers, this.topology))
      media.relay = this.relay
      this.relay.media = this.servers.media = this.clients.media = this.path.media = media
    }
  }

  start(): void {
    this.wheel.start()
    this.path.keepalive?.start()
  }

  /** SIGHUP: what can change on a running proxy. Transactions in progress keep the values they started with. */
  reconfigure(o: Pick<ProxyOptions, 'rateLimit' | 'filters' | 'failover' | 'maskCallId' | 'inboundTrunks'>): void {
    this.failover.reconfigure(o)
    this.clients.reconfigure(o)
    this.admission.reconfigure(o, this.opts.rateLimit)
    Object.assign(this.opts, o)
  }

  stop(): void {
    this.wheel.stop()
    this.path.keepalive?.stop()
  }

  get transactionCount(): number {
    return this.servers.size + this.clients.size
  }

  /**
   * Calls still being set up or carried (for draining): dialogs, and transactions still waiting for their
   * final response. Finished transactions absorbing retransmissions (timers J/K, 5 s) do not hold a drain.
   */
  get busy(): number {
    return this.dialogs.size + this.servers.pending
  }

  // ---------------------------------------------------------------- inbound entry points (transport handlers)

  handleMessage(inb: Inbound): void {
    const side = this.sides.sideOf(inb.listener, inb.source)
    if (inb.msg.isRequest && !this.admission.admit(inb, side)) return
    try {
      if (inb.msg.isRequest) this.onRequest(inb, side)
      else this.clients.onResponse(inb, side)
    } catch (err) {
      if (err instanceof SipParseError) this.admission.badMessage(inb, side, err)
      else this.core.log.error({ err, src: inb.source.address }, 'proxy failed on a message')
    }
  }

  /** Bytes that did not parse: answer 400 when enough of a request is there to build a response. */
  handleParseError(err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number): void {
    this.admission.parseError(err, buf, source, listener, connId)
  }

  /** A send failed (ICMP unreachable, refused, reset): fail the client transactions waiting on that peer now. */
  handleSendError(err: Error, dest: Peer): void {
    this.relay.sendFailed(err, dest)
  }

  // ---------------------------------------------------------------- requests

  private onRequest(inb: Inbound, side: Side): void {
    const msg = inb.msg
    this.admission.receive(msg, side)
    const method = msg.method
    if (method === 'ACK') return this.onAck(inb, side)
    if (method === 'CANCEL') return this.servers.cancel(inb)

    const key = serverKey(msg, method)
    const existing = this.servers.get(key)
    if (existing) return this.servers.retransmission(existing, inb)
    if (method === 'INVITE' && this.servers.wasAnswered(key, Date.now())) return this.core.observer.retransmission()
    if (!this.admission.checkNew(inb, side, this.servers.size)) return
    // RFC 3261 §26.2.2: a sips request must have come over TLS (WSS counts); over UDP/TCP/WS it is refused.
    if (!isSecureTransport(inb.source.proto) && isSipsRequest(msg)) return this.core.replyTo(inb, 416, 'Unsupported URI Scheme')

    const route = this.routing.processRoutes(msg)
    if (route === 'forged') {
      this.core.observer.refused('token', side)
      return this.core.replyTo(inb, 403, 'Forbidden')
    }
    if (route === 'stale') return this.core.replyTo(inb, 404, 'Not Found')
    if (route.path !== undefined) return this.path.forward(inb, side, route, key)

    const inDialog = msg.toTag !== undefined
    if (inDialog) return this.forwardInDialog(inb, side, route, key)
    return this.forwardInitial(inb, side, route, key)
  }

  private forwardInDialog(inb: Inbound, side: Side, route: RouteState, key: string): void {
    const msg = inb.msg
    const core = this.core
    let target: Peer | undefined
    let outSide: Side
    const t = route.token
    const hop = this.routing.dialogHop(inb, side, route)
    if (hop) {
      target = hop.target
      outSide = hop.outSide
      route.flow = outSide === 'public' // the public party's flow, as recorded when the dialog was created
    } else {
      // No token and no dialog: a request addressed past us.
      if (route.nextRoute || !this.sides.isOwn(msg.uri.host, msg.uri.port)) {
        if (side === 'public') {
          core.observer.refused('relay', side)
          return core.replyTo(inb, 403, 'Forbidden')
        }
        target = peerFromUri(route.nextRoute ? route.nextRoute.uri : msg.uri)
        outSide = 'public'
        if (!target) return core.replyTo(inb, 404, 'Not Found')
      } else {
        return core.replyTo(inb, 481, 'Call/Transaction Does Not Exist')
      }
    }
    const next = this.routing.routeSetHop(route, outSide)
    if (next) {
      target = next
      route.flow = false
    }
    route.callId = this.topology.callIdToward(msg, outSide, t?.outbound ?? false)
    const st = this.servers.create(inb, side, key)
    if (route.callId && outSide === 'internal') st.maskedCallId = true
    // §17.2.1 / §16.2: a re-INVITE gets its 100 Trying from the edge, or the sender retransmits until the far end rings.
    if (msg.method === 'INVITE') this.servers.sendProvisional(st, 100, 'Trying')
    const media = this.media
    const mediaId = media?.instanceFor(msg, side, t)
    if (mediaId !== undefined && (msg.method === 'INVITE' || msg.method === 'UPDATE')) {
      // A re-offer (either side): held until rtpengine answers, then forwarded.
      const hop = target
      return media!.offer(st, side, outSide, mediaId, () => { this.relay.sendDownstream(st, inb, outSide, hop, route, undefined) }, hop.proto)
    }
    this.relay.sendDownstream(st, inb, outSide, target, route, undefined)
    if (msg.method === 'BYE') {
      this.dialogs.end(outSide === 'internal' && route.callId ? route.callId : msg.callId)
      if (mediaId !== undefined) media!.end(msg, side, mediaId)
    }
  }

  private forwardInitial(inb: Inbound, side: Side, route: RouteState, key: string): void {
    const msg = inb.msg
    const core = this.core
    const method = msg.method
    const ruriIsOwn = this.sides.isOwn(msg.uri.host, msg.uri.port)
    // An inbound trunk (carrier, upstream proxy) is dispatched to its set whatever host its Request-URI names.
    const trunks = this.opts.inboundTrunks
    const trunkSet = side === 'public' && trunks ? trunks.match(inb.source.address) : undefined
    if (side === 'public' && (route.nextRoute || (!ruriIsOwn && !route.token && trunkSet === undefined))) {
      // Routed past us, or not for us and not in a dialog we know: never relay for the outside.
      core.observer.refused('relay', side)
      return core.replyTo(inb, 403, 'Forbidden')
    }
    const set = trunkSet || (this.opts.defaultSet ?? 'default')
    if (method === 'OPTIONS' && ruriIsOwn && msg.uri.user === undefined) {
      return core.replyTo(inb, 200, 'OK', [['Allow', ALLOW], ['Accept', 'application/sdp']])
    }
    if (this.draining && method === 'INVITE') {
      core.observer.refused('draining', side)
      return core.replyTo(inb, 503, 'Service Unavailable', [['Retry-After', String(this.opts.retryAfterS ?? 30)]])
    }

    // From inside, a call goes out: to the trunk when one is configured, else to the R-URI's host. A request
    // from inside addressed to the edge itself with no trunk is a backend-to-backend call: dispatch it.
    const goesOut = side === 'internal' && (this.opts.trunk !== undefined || !ruriIsOwn)
    let ctx: RequestContext | undefined
    if (core.hooks.onRequest) {
      ctx = { msg, source: inb.source, side, edit: msg.edit(), set }
      core.hooks.onRequest(ctx)
      if (ctx.reject) return core.replyTo(inb, ctx.reject.status, ctx.reject.reason)
    }

    const st = this.servers.create(inb, side, key)
    if (method === 'INVITE') {
      core.observer.callOffered()
      this.servers.sendProvisional(st, 100, 'Trying')
    }

    if (method === 'REGISTER' && side === 'public' && !ctx?.target && !ctx?.backend) {
      return this.path.register(inb, st, ctx?.set, ctx?.edit)
    }
    if (route.contact && !ctx?.target && !ctx?.backend) {
      // The Request-URI is an alias the edge handed out (an internal 3xx Contact, a Refer-To target, a
      // backend's Contact): straight to the internal target it stands for, with its URI restored. Not
      // dispatched: the backend that redirected or referred chose that target.
      this.relay.sendDownstream(st, inb, 'internal', route.contact, route, ctx?.edit, core.backendAt(route.contact))
      return
    }
    if (ctx?.target || goesOut) {
      const target = ctx?.target ?? this.opts.trunk ?? (route.nextRoute ? peerFromUri(route.nextRoute.uri) : peerFromUri(msg.uri))
      route.callId = this.topology.callIdToward(msg, 'public', true)
      if (!target) return this.toNamedHop(st, inb, side, route, ctx?.edit)
      if (this.media && method === 'INVITE') {
        return this.media.offer(st, side, 'public', undefined, () => { this.relay.sendDownstream(st, inb, 'public', target, route, ctx?.edit) }, target.proto)
      }
      this.relay.sendDownstream(st, inb, 'public', target, route, ctx?.edit)
      return
    }
    st.set = ctx?.set ?? set
    // Our own Route entries (an upstream proxy's outbound-proxy setting) come off toward the backend too (§16.4).
    if (route.popped.length > 0) st.route = route
    let forced = ctx?.backend
    st.hookEdit = ctx?.edit
    if (!forced && method === 'INVITE') {
      // RFC 3891: an INVITE with Replaces (attended transfer, call pickup) must reach the backend that holds
      // the replaced dialog, whatever the set's algorithm would pick.
      const replaced = this.routing.replacedDialog(msg)
      if (replaced) {
        forced = replaced.backend ?? core.backendAt(replaced.internal)
        if (!forced) {
          const to = replaced.internal
          if (this.media) return this.media.offer(st, side, 'internal', undefined, () => { this.relay.sendDownstream(st, inb, 'internal', to, NO_ROUTE, ctx?.edit) })
          this.relay.sendDownstream(st, inb, 'internal', replaced.internal, NO_ROUTE, ctx?.edit)
          return
        }
      }
    }
    if (this.media && method === 'INVITE') {
      return this.media.offer(st, side, 'internal', undefined, () => {
        if (!this.failover.tryBackend(st, forced, ctx?.edit)) this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
      })
    }
    if (!this.failover.tryBackend(st, forced, ctx?.edit)) this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
  }

  /**
   * A request going out to a next hop given by name (the trunk, or a Request-URI / Route from inside naming a
   * host): RFC 3263 targets from the cache, tried in turn on failure (failover.ts); a name not cached yet is
   * resolved first (its only wait), one that does not resolve gets 503.
   */
  private toNamedHop(st: ServerTx, inb: Inbound, side: Side, route: RouteState, edit: MessageEditor | undefined): void {
    const msg = inb.msg
    const resolver = this.core.resolver
    const uri = route.nextRoute ? route.nextRoute.uri : msg.uri
    const name = this.opts.trunkName ?? (uri.scheme === 'sip' || uri.scheme === 'sips' ? hopName(uri.host, uri.port, uri.params['transport'], uri.scheme === 'sips') : undefined)
    if (!name || !resolver) return this.servers.finalLocal(st, 404, 'Not Found')
    st.hookEdit = edit
    st.route = route
    const send = (hops: Peer[] | null): void => {
      if (st.cancelled || st.lastStatus >= 200) return
      if (!hops || hops.length === 0) return this.servers.finalLocal(st, 503, 'Next Hop Does Not Resolve')
      st.hops = hops
      st.hopIndex = 0
      if (this.media && msg.method === 'INVITE') {
        return this.media.offer(st, side, 'public', undefined, () => { this.relay.sendDownstream(st, inb, 'public', hops[0]!, route, edit) })
      }
      this.relay.sendDownstream(st, inb, 'public', hops[0]!, route, edit)
    }
    const cached = resolver.lookup(name)
    if (cached !== undefined) return send(cached)
    resolver.resolve(name).then(send, () => send(null))
  }

  /** ACK: for our non-2xx final response it ends here; for a 2xx it is routed end to end, statelessly. */
  private onAck(inb: Inbound, side: Side): void {
    if (this.servers.ack(inb)) return
    const msg = inb.msg
    if (msg.maxForwards === 0) return
    const route = this.routing.processRoutes(msg)
    if (typeof route === 'string') return
    const hop = this.routing.dialogHop(inb, side, route)
    if (!hop) return
    const { outSide } = hop
    const target = this.routing.routeSetHop(route, outSide) ?? hop.target
    const listener = this.sides.listenerFor(outSide, target.proto)
    if (!listener) return
    // SDP in an ACK answers a late offer: sent once rtpengine answered.
    if (this.media?.ack(inb, side, route, target, outSide, listener)) return
    this.relay.sendAck(inb, side, route, target, outSide, listener, undefined)
  }

  /** Forget every transaction and dialog (shutdown). */
  clear(): void {
    this.servers.clear()
    this.clients.clear()
    this.dialogs.clear()
  }
}

const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY, SUBSCRIBE, MESSAGE, PRACK, REGISTER'
