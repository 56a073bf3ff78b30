// The relay step: building what leaves the edge from the bytes received (routing edits, topology hiding,
// Record-Route, our Via) and sending it. Chooses the side's socket for the next hop, switches a large
// request from UDP to TCP (RFC 3261 §18.1.1) with its UDP copy kept for a refused connection, relays
// responses upstream (statefully, or by the Via when the branch is gone), sends the stateless ACK for a
// 2xx, and handles send errors (fall back to UDP, or fail the branches waiting on that peer).
import type { Backend } from '../dispatch/backend.js'
import { H, type MessageEditor, type SipMessage } from '../sip/index.js'
import { protoOfVia, viaTransport } from '../transport/protos.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { bareHost } from './addressing.js'
import type { ClientTransactions } from './client_tx.js'
import type { ProxyCore } from './core.js'
import { loopBranch, loopHash } from './loop.js'
import type { MediaStep } from './media_step.js'
import type { PathStep } from './path.js'
import { isSecureTransport, isSipsRequest, sipsNotAllowed } from './sips.js'
import type { RouteState, Routing } from './routing.js'
import type { ServerTransactions } from './server_tx.js'
import type { Topology } from './topology.js'
import { T1, enumState, type ClientTx, type ServerTx } from './transactions.js'
import { fillReceived } from './via_received.js'

export class Relay {
  /** The media step, when the proxy anchors media (set by Proxy). */
  media: MediaStep | undefined
  /** Registrations through the edge (set by Proxy): a public REGISTER's responses pass through it. */
  path!: PathStep
  constructor(
    private readonly core: ProxyCore,
    private readonly routing: Routing,
    private readonly topology: Topology,
    private readonly servers: ServerTransactions,
    private readonly clients: ClientTransactions,
  ) {}

  /**
   * Builds the forwarded request by splicing the received bytes (Via, Max-Forwards, Route pops,
   * Record-Route, topology hiding) and starts the client transaction.
   */
  sendDownstream(
    st: ServerTx,
    inb: Inbound,
    outSide: Side,
    target: Peer,
    route: RouteState,
    hookEdit: MessageEditor | undefined,
    backend?: Backend,
  ): boolean {
    const core = this.core
    const msg = inb.msg
    const listener = core.sides.listenerFor(outSide, target.proto)
    if (!listener) {
      this.servers.finalLocal(st, 503, 'Service Unavailable')
      return false
    }
    // RFC 5630: a sips request goes on over TLS only; this next hop is not TLS.
    if (!isSecureTransport(target.proto) && isSipsRequest(msg)) {
      this.servers.finalLocal(st, 480, 'Temporarily Unavailable', [sipsNotAllowed(listener.hostport)])
      return false
    }
    // A hook's edits apply to every branch: each attempt (failover) starts from a copy of them.
    const ed = hookEdit ? hookEdit.clone() : msg.edit()
    this.routing.applyRouting(msg, ed, route)
    const cm = this.media?.forBranch(st)
    if (cm?.body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, cm.body)
      ed.setHeader(H.ContentLength, String(cm.contentLength))
    }

    const leavingInside = st.side === 'internal' && outSide === 'public'
    if (leavingInside) this.topology.hideRequest(msg, ed, st, listener, target, route.strict)
    else fillReceived(msg, ed, inb.source)
    if (st.side !== outSide && (leavingInside || st.method === 'INVITE' || st.method === 'REFER')) {
      // Outward on every method, as the scrub no longer removes them.
      this.topology.transferHeaders(msg, ed, leavingInside, listener)
    }

    const method = st.method
    this.routing.recordRoute(msg, ed, method, inb.source, outSide, target, listener, cm?.instance)
    // The branch carries the hash of the request as received (R-URI, Route, tags, Call-ID, CSeq): §16.6 step 8.
    const branch = loopBranch(loopHash(msg, outSide === 'internal' && route.callId !== undefined ? route.callId : this.topology.unmasked(msg.callId)))
    let out: Buffer
    // Worker processes: toward the backends the request leaves from this worker's own port and names it in
    // its Via, so that the answers come straight back here (to the shared port the kernel would map them by the
    // backend's address, to any worker). Record-Route and Path keep the shared listener: any worker serves them.
    const sender = outSide === 'internal' ? (core.transports.ownPortOf(listener) ?? listener) : listener
    let via = sender
    let dest = target
    let udpCopy: Buffer | undefined
    // RFC 3261 §18.1.1: a request larger than the MTU allows goes over TCP when this side has a TCP listener.
    // The UDP copy is kept: many Asterisks listen on UDP only, and a refused connection falls back to it.
    // Not toward a client's own UDP flow (route.flow): behind NAT it takes no connection, and each attempt
    // would stall for the connect timeout; there the request goes over UDP, fragmented (Kamailio's udp_mtu
    // does the same only for next hops it is configured to try).
    const transports = core.transports
    const tcp = target.proto === 'udp' && !route.flow && transports.exceedsUdpMtu(msg.end - msg.start + 300) ? core.sides.listenerFor(outSide, 'tcp') : undefined
    if (tcp) {
      udpCopy = ed.clone().prependHeader('Via', viaValue(sender, branch)).toBuffer()
      if (transports.exceedsUdpMtu(udpCopy.length)) {
        out = ed.prependHeader('Via', viaValue(tcp, branch)).toBuffer()
        via = tcp
        dest = { proto: 'tcp', address: target.address, port: target.port }
      } else {
        out = udpCopy
        udpCopy = undefined
      }
    } else {
      out = ed.prependHeader('Via', viaValue(sender, branch)).toBuffer()
    }

    this.clients.start(st, branch, method, backend, dest, via, out, udpCopy ? { out: udpCopy, listener: sender, target } : undefined)
    core.observer.requestSent(outSide, method)
    transports.send(out, dest, via)
    return true
  }

  /** Forwards a response upstream: our Via off, internal details hidden when it leaves toward the public side. */
  relayResponse(st: ServerTx, ct: ClientTx, msg: SipMessage, media?: { body: string | undefined }): void {
    // Held by the media step (relayed again from there with rtpengine's body), or ended by it.
    if (this.media && media === undefined && this.media.takes(st, ct, msg)) return
    const ed = msg.edit()
    if (media?.body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, media.body)
      ed.setHeader(H.ContentLength, String(Buffer.byteLength(media.body)))
    }
    ed.removeTopVia()
    this.topology.restoreVias(st, ed)
    // The defence learns from what the inside answers the outside (the request tells whether it had credentials).
    const defence = this.core.defence
    if (defence && st.side === 'public' && st.request) defence.observe(st.request, st.source.address, msg.status)
    this.topology.response(st, ct, msg, ed)
    if (st.method === 'REGISTER' && st.side === 'public') this.path.response(st, msg, ed)
    const hooks = this.core.hooks
    if (hooks.onResponse) {
      hooks.onResponse({ msg, request: st.request, backend: ct.backend, side: st.side, edit: ed })
    }
    const out = ed.toBuffer()
    this.servers.sendUpstream(st, msg.status, out)
  }

  /**
   * A 2xx whose branch is gone (a retransmission after the 5 s hold, another edge's, or from before a restart):
   * relayed by the next Via (§16.7, §18.2.2 with the received/rport the edge filled in), with the topology
   * hiding of the stateful path when it leaves a backend for the public side. Requests from inside left with
   * the edge's Via alone: their responses cannot be relayed without the transaction.
   */
  forwardStateless(inb: Inbound, msg: SipMessage): void {
    // With media anchored, a 2xx whose transaction is gone cannot be given rtpengine's SDP here: drop it
    // rather than let the backend's SDP out (the caller got the anchored copy; issue 17 keeps 2xx state longer).
    if (this.media?.dropsStateless(msg)) return
    const vias = msg.vias
    const next = vias[1]
    if (!next) return
    const address = bareHost(next.received ?? next.host)
    const port = typeof next.rport === 'number' ? next.rport : (next.port ?? 5060)
    const proto = protoOfVia(next.transport) ?? 'udp'
    // It goes back the way the request came: out of the other side in the two-sided setup.
    const listener = this.core.sides.listenerFor(inb.listener.spec.side === 'internal' ? 'public' : 'internal', proto)
    if (!listener) return
    const dest: Peer = { proto, address, port }
    const ed = msg.edit().removeTopVia()
    this.topology.statelessResponse(inb, msg, ed, listener, dest)
    this.core.transports.send(ed.toBuffer(), dest, listener)
  }

  /** ACK for a 2xx: its own transaction, routed end to end like any in-dialog request, statelessly. */
  sendAck(inb: Inbound, side: Side, route: RouteState, target: Peer, outSide: Side, listener: Listener, body: string | undefined): void {
    const msg = inb.msg
    const ed = msg.edit()
    if (body !== undefined) {
      ed.replaceRange(msg.bodyStart, msg.end, body)
      ed.setHeader(H.ContentLength, String(Buffer.byteLength(body)))
    }
    route.callId = this.topology.callIdToward(msg, outSide, route.token?.outbound ?? false)
    this.routing.applyRouting(msg, ed, route)
    // Stateless: the internal Vias need not come back (an ACK has no response), so they just go.
    if (outSide === 'public' && side === 'internal') this.topology.hideOutgoing(msg, ed, inb.source, listener, target, route.strict)
    // Stateless branch: derived from the incoming one so retransmitted ACKs keep the same branch (§16.11).
    const branch = 'z9hG4bKs' + fnv1a(msg.topViaBranch ?? msg.callId).toString(36)
    ed.prependHeader('Via', viaValue(listener, branch))
    this.core.observer.requestSent(outSide, 'ACK')
    this.core.transports.send(ed.toBuffer(), target, listener)
  }

  /** A send failed (ICMP unreachable, refused, reset): fail the client transactions waiting on that peer now. */
  sendFailed(err: Error, dest: Peer): void {
    // A client's own connection (WebSocket, or an accepted TCP/TLS flow) is gone, never connected back to: 430 Flow Failed (RFC 5626 §5.3).
    const flowGone = (err as { code?: string }).code === 'ENOTCONN'
    for (const ct of this.clients.values()) {
      if (ct.state !== enumState.trying || ct.target.port !== dest.port || ct.target.address !== dest.address) continue
      if (ct.abandoned) {
        this.clients.complete(ct)
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
        this.clients.arm(ct, now)
        this.core.transports.send(fallback.out, fallback.target, fallback.listener)
        continue
      }
      this.clients.failed(ct, flowGone ? 'flow gone' : 'transport error', flowGone ? 430 : 503)
    }
    this.servers.sendFailed(dest)
  }
}

export function viaValue(l: Listener, branch: string): string {
  return `SIP/2.0/${viaTransport(l.spec.proto)} ${l.hostport};branch=${branch}`
}

/** 32-bit FNV-1a: a cheap stable hash for stateless branches. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}
