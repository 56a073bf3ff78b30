// Registrations through the edge (RFC 3327 Path, RFC 5626 flows): a REGISTER from the public side gets a
// Path entry naming the edge on the internal side, with the phone's flow sealed in it, and goes to the
// backend its address-of-record hashes to; a request a registrar sends back through that Path entry goes to
// the phone's flow (its NAT address over UDP, its own connection over TCP/TLS/WS), never to its Contact.
//
// The REGISTER's Contact is left as the phone wrote it: a Path-capable registrar (Asterisk with
// `support_path=yes`, Kamailio's registrar with `path`) stores it as the binding's Request-URI and routes
// by the Path, so the Contact never has to be reachable. Rewriting it instead (the nathelper way) would
// hide `.invalid` WebSocket hosts and `+sip.instance` flows behind the edge and break `Contact: *` and
// re-registrations that compare Contacts.
import type { MessageEditor, NameAddr, SipMessage } from '../sip/index.js'
import { H } from '../sip/index.js'
import { isConnectionProto, uriTransportParam } from '../transport/protos.js'
import type { Inbound, Peer, Side } from '../transport/types.js'
import type { ProxyCore } from './core.js'
import type { Failover } from './failover.js'
import type { KeepaliveTable } from './keepalive.js'
import type { MediaStep } from './media_step.js'
import type { Relay } from './relay.js'
import { PATH_PARAM, routeWorkerParam, type RouteState, type Routing } from './routing.js'
import type { ServerTransactions } from './server_tx.js'
import type { Topology } from './topology.js'
import type { ServerTx } from './transactions.js'

export class PathStep {
  /** The media step, when the proxy anchors media (set by Proxy). */
  media: MediaStep | undefined
  /** NAT keepalives to the flows of live registrations (`nat.keepalive`), when on. */
  keepalive: KeepaliveTable | undefined
  /** Final answers to public REGISTERs relayed back (metrics: sipedge_registrations_total). */
  readonly registrations = { ok: 0, challenged: 0, failed: 0 }

  constructor(
    private readonly core: ProxyCore,
    private readonly servers: ServerTransactions,
    private readonly relay: Relay,
    private readonly failover: Failover,
    private readonly routing: Routing,
    private readonly topology: Topology,
    private readonly registrarSet: string | undefined,
  ) {}

  /**
   * A REGISTER from the public side (its server transaction exists): Path and `Supported: path` added, then
   * to the backend its address-of-record maps to, so re-registrations, un-registrations and `Contact: *`
   * find their binding, and a re-sent REGISTER with credentials reaches the registrar that challenged it.
   */
  register(inb: Inbound, st: ServerTx, hookSet: string | undefined, hookEdit: MessageEditor | undefined): void {
    const core = this.core
    const msg = inb.msg
    const defaultSet = core.opts.defaultSet ?? 'default'
    // A hook's context starts on the default set: only a set it chose overrides registrar.set.
    st.set = (hookSet !== undefined && hookSet !== defaultSet ? hookSet : undefined) ?? this.registrarSet ?? defaultSet
    st.affinity = aorKey(msg)
    const first = core.dispatcher.selectByKey(st.set, st.affinity)
    if (!first) return this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
    // The Path names the internal listener of the transport the registrar is reached over: it sends there.
    const inner = core.sides.listenerFor('internal', first.target.proto) ?? inb.listener
    const source = inb.source
    const connected = isConnectionProto(source.proto)
    const token = core.tokens.sealFlow(source, connected ? inb.connId : undefined, connected ? core.instance : undefined)
    const ed = hookEdit ?? msg.edit()
    // RFC 3327 §5.2: our entry goes first, above any Path a proxy nearer the phone added. With worker
    // processes a connection's entry names the worker holding it (`;sw=N`, as a Record-Route does): the
    // registrar's requests come from its one port to whichever worker the kernel picks, and are handed to
    // that one. A UDP flow needs none: every worker sends from the shared port.
    const sw = connected ? routeWorkerParam() : ''
    ed.prependHeader('Path', `<sip:${inner.hostport}${uriTransportParam(inner.spec.proto)};lr${sw};${PATH_PARAM}=${token}>`)
    // Asterisk (res_pjsip_registrar) refuses a Path unless the REGISTER says it supports path (420).
    if (!supportsPath(msg)) ed.prependHeader('Supported', 'path')
    st.hookEdit = ed
    if (!this.failover.tryBackend(st, first, ed)) this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
  }

  /**
   * A request whose Route named our Path entry: to the phone's flow. Only the inside may route by Path (the
   * registrar); a forged or altered token gets 403, a connection that is gone 430 Flow Failed (RFC 5626 §5.3).
   * The request leaves like any call placed by a backend: Record-Routed, its Vias and Contact hidden.
   */
  forward(inb: Inbound, side: Side, route: RouteState, key: string): void {
    const core = this.core
    const msg = inb.msg
    if (side === 'public') {
      core.observer.refused('relay', side)
      return core.replyTo(inb, 403, 'Forbidden')
    }
    const flow = core.tokens.openFlow(route.path!)
    if (flow === 'forged') {
      core.observer.refused('token', side)
      core.once.warn(`path-token:${inb.source.address}`, { src: inb.source.address }, 'request routed by a forged or altered Path token: 403')
      return core.replyTo(inb, 403, 'Forbidden')
    }
    // A stale token is a registration far past any expiry: its flow is as good as gone.
    let target = flow === 'stale' ? undefined : this.flowTarget(flow.peer, flow.connId, flow.instance)
    if (!target) return core.replyTo(inb, 430, 'Flow Failed')
    const st = this.servers.create(inb, side, key)
    if (msg.method === 'INVITE') {
      core.observer.callOffered()
      this.servers.sendProvisional(st, 100, 'Trying')
    }
    // Path entries past ours are proxies nearer the phone (RFC 3327 §5.4): the request goes through them.
    const next = this.routing.routeSetHop(route, 'public')
    if (next) target = next
    else route.flow = true
    route.callId = this.topology.callIdToward(msg, 'public', true)
    const media = this.media
    if (media && msg.method === 'INVITE') {
      const hop = target
      // The flow's transport tells the media step a WebSocket agent (WebRTC) is on the other end.
      return media.offer(st, side, 'public', undefined, () => { this.relay.sendDownstream(st, inb, 'public', hop, route, undefined) }, hop.proto)
    }
    this.relay.sendDownstream(st, inb, 'public', target, route, undefined)
  }

  /**
   * The phone's flow, or undefined when it cannot be reached any more: a connection is owned by the process
   * that accepted it, so it must be this process (same instance), still open, and still that peer's.
   */
  flowTarget(peer: Peer, connId: number | undefined, instance: number | undefined): Peer | undefined {
    if (connId === undefined) return peer
    if (instance !== this.core.instance) return undefined
    const conn = this.core.transports.table.get(connId)
    if (!conn || !conn.isOpen) return undefined
    const p = conn.peer
    return p.proto === peer.proto && p.port === peer.port && p.address === peer.address ? p : undefined
  }

  /**
   * A response to a public REGISTER on its way to the phone: our Path entry (internal address) does not
   * leave; a 2xx tells the keepalive table how long the flow stays registered.
   */
  response(st: ServerTx, msg: SipMessage, ed: MessageEditor): void {
    const status = msg.status
    if (status >= 200) {
      if (status < 300) this.registrations.ok++
      else if (status === 401 || status === 407) this.registrations.challenged++
      else this.registrations.failed++
    }
    if (msg.indexOf('Path') >= 0) ed.removeHeaders('Path')
    const ka = this.keepalive
    if (ka && status >= 200 && status < 300 && st.request) ka.learn(st, st.request, msg)
  }
}

/** The address-of-record of a REGISTER (its To URI) as a hashing key: user@host[:port], host in lower case. */
export function aorKey(msg: SipMessage): string {
  const u = msg.to.uri
  const host = u.host.toLowerCase()
  return `${u.user ?? ''}@${u.port === undefined ? host : host + ':' + u.port}`
}

function supportsPath(msg: SipMessage): boolean {
  for (const v of msg.getHeaders(H.Supported)) {
    for (const opt of v.split(',')) if (opt.trim().toLowerCase() === 'path') return true
  }
  return false
}

/** The seconds a 2xx to a REGISTER grants the binding of `contact` (its `expires` param, else Expires). */
export function grantedSeconds(response: SipMessage, contact: NameAddr | undefined): number {
  if (contact) {
    for (const c of response.contacts) {
      if (c.uri.host.toLowerCase() === contact.uri.host.toLowerCase() && c.uri.port === contact.uri.port && c.uri.user === contact.uri.user) {
        const e = c.params['expires']
        if (typeof e === 'string' && /^\d+$/.test(e)) return Number(e)
      }
    }
  }
  const header = response.getHeader(H.Expires)
  return header !== undefined && /^\s*\d+\s*$/.test(header) ? Number(header) : 0
}
