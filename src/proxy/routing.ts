// Routing: where a request goes. Loose routing over our own Route entries (RFC 3261 §16.4) and strict
// routers (§16.6), the `sk=` Record-Route token (opened here, sealed into the Record-Route we add) and the
// `ct=` Contact alias, in-dialog targets (token, alias, dialog table), the rest of a route set, and the
// routing edits every forwarded request gets. Which backend a new call goes to is the dispatcher's
// (failover.ts asks it); topology hiding is topology.ts's.
import { hopName } from '../dns/index.js'
import { H, type MessageEditor, type NameAddr, type SipMessage } from '../sip/index.js'
import { uriTransportParam } from '../transport/protos.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { peerFromUri } from './addressing.js'
import type { ProxyCore } from './core.js'
import type { Dialog } from './dialogs.js'
import { isStrictRoute, rewriteRoutes } from './route_set.js'
import { isSecureTransport, isSipsRequest } from './sips.js'
import type { RouteToken } from './tokens.js'
import type { Topology } from './topology.js'
import { replacesCallId } from './uri_rewrite.js'

/** URI parameter of the edge's Record-Route entry: the sealed route token. */
export const RR_PARAM = 'sk'
/** URI parameter of a Contact alias the edge hands out: the sealed real Contact. */
export const CONTACT_PARAM = 'ct'
/** URI parameter of the edge's Path entry (RFC 3327): the sealed flow of the registered phone (path.ts). */
export const PATH_PARAM = 'fl'

/** What the Route / Request-URI of a request said, and what forwarding it must change. */
export interface RouteState {
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
  /** The `;fl=` flow token of our Path entry (RFC 3327) among the popped Routes: path.ts takes the request. */
  path?: string
}

const EMPTY: NameAddr[] = []
/** The route state of a request that carried nothing for us (a new call dispatched to a backend). */
export const NO_ROUTE: RouteState = { token: undefined, popped: [], newRuri: undefined, contact: undefined, callId: undefined, strict: false }

export class Routing {
  constructor(
    private readonly core: ProxyCore,
    private readonly topology: Topology,
  ) {}

  /**
   * Loose routing (RFC 3261 §16.4): pop the edge's own Route entries (two when the Record-Route was doubled
   * across sides), and undo a strict router's rewrite (R-URI is our Record-Route URI). Returns the routing
   * state carried by our token, or none when the request did not carry one.
   */
  processRoutes(msg: SipMessage): RouteState | 'forged' | 'stale' {
    const sides = this.core.sides
    const tokens = this.core.tokens
    const state: RouteState = { token: undefined, popped: [], newRuri: undefined, contact: undefined, callId: undefined, strict: false }
    const routes = msg.has(H.Route) ? msg.routes : EMPTY
    let firstOther = 0
    const ruri = msg.uri
    const ruriIsOwn = sides.isOwn(ruri.host, ruri.port)
    if (ruriIsOwn && typeof ruri.params[RR_PARAM] === 'string' && routes.length > 0) {
      // Strict router before us: it put our Record-Route URI in the R-URI and the real target last in Route.
      const last = routes[routes.length - 1]!
      state.newRuri = last.uriText
      state.popped.push(last)
      const t = tokens.openRoute(ruri.params[RR_PARAM] as string)
      if (typeof t === 'string') return t
      state.token = t
      // That last entry is the remote target; when it is one of our Contact aliases, it stands for the backend's.
      const lu = last.uri
      const ct = lu.params[CONTACT_PARAM]
      if (typeof ct === 'string' && sides.isOwn(lu.host, lu.port)) {
        const c = tokens.openContact(ct)
        if (typeof c === 'string') return c
        state.newRuri = c.uri
        state.contact = c.peer
      }
    } else if (ruriIsOwn && typeof ruri.params[CONTACT_PARAM] === 'string') {
      const c = tokens.openContact(ruri.params[CONTACT_PARAM] as string)
      if (typeof c === 'string') return c
      state.newRuri = c.uri
      state.contact = c.peer
    }
    for (; firstOther < routes.length && firstOther < 2; firstOther++) {
      const r = routes[firstOther]!
      if (state.popped.includes(r)) break
      if (!sides.isOwn(r.uri.host, r.uri.port)) break
      state.popped.push(r)
      const params = r.uri.params
      const sk = params[RR_PARAM]
      if (typeof sk === 'string' && !state.token) {
        const t = tokens.openRoute(sk)
        if (typeof t === 'string') return t
        state.token = t
      } else {
        const fl = params[PATH_PARAM]
        if (typeof fl === 'string') state.path = fl
      }
    }
    state.nextRoute = routes[firstOther] && !state.popped.includes(routes[firstOther]!) ? routes[firstOther] : undefined
    return state
  }

  /**
   * Where an in-dialog request goes: from our Record-Route token (either direction), from a Contact alias in
   * the R-URI, or, for clients that ignore Record-Route, from the dialog table. Undefined when none knows.
   */
  dialogHop(inb: Inbound, side: Side, route: RouteState): { target: Peer; outSide: Side } | undefined {
    let flows: { internal: Peer; external: Peer } | undefined = route.token
    if (!flows) {
      if (route.contact) return { target: route.contact, outSide: 'internal' }
      flows = this.core.dialogs.get(this.core.tokens.unmaskCallId(inb.msg.callId) ?? inb.msg.callId)
      if (!flows) return undefined
    }
    const fromInternal = this.core.sides.twoSided ? side === 'internal' : isFrom(inb.source, flows.internal, flows.external)
    if (!fromInternal) return { target: flows.internal, outSide: 'internal' }
    // A caller's TCP/TLS flow is a connection it opened: only that connection reaches it (430 once gone),
    // never a new one to its ephemeral source port or to whatever its Contact names.
    const ext = flows.external
    const accepted = route.token !== undefined && !route.token.outbound && (ext.proto === 'tcp' || ext.proto === 'tls')
    return { target: accepted ? { ...ext, accepted } : ext, outSide: 'public' }
  }

  /**
   * The rest of the route set (RFC 3261 §16.12): once the edge's own Route entries are popped, a request going
   * out to the public side goes to the next entry (a carrier's SBC), not to the flow in our token. A strict
   * router there (no `lr`) gets the Request-URI/Route swap of §16.6 step 6. Toward the inside the token
   * decides: a public client cannot steer a request to another internal host with a Route of its own.
   * An entry naming a host goes to its first RFC 3263 target from the cache; never waiting: while the name is
   * not cached yet, the request follows the flow in our token (where the dialog's INVITE went) and the name is
   * resolved in the background for the next ones. Undefined: no next entry, or none usable.
   */
  routeSetHop(route: RouteState, outSide: Side): Peer | undefined {
    const next = route.nextRoute
    if (!next || outSide !== 'public') return undefined
    const uri = next.uri
    let peer = peerFromUri(uri)
    const resolver = this.core.resolver
    if (!peer && resolver && (uri.scheme === 'sip' || uri.scheme === 'sips')) {
      const name = hopName(uri.host, uri.port, uri.params['transport'], uri.scheme === 'sips')
      const hops = resolver.lookup(name)
      if (hops === undefined) resolver.resolve(name).catch(() => {})
      peer = hops?.[0]
    }
    if (peer) route.strict = isStrictRoute(next)
    return peer
  }

  /** The routing edits every forwarded request gets: R-URI, Call-ID across sides, our Routes off, Max-Forwards - 1. */
  applyRouting(msg: SipMessage, ed: MessageEditor, route: RouteState): void {
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

  /**
   * A dialog-creating request (no To tag) is Record-Routed with a sealed token naming both flows (and the
   * call's rtpengine when media is anchored). Toward a backend: the entry that faces the backend on top, then the public one when they differ.
   */
  recordRoute(msg: SipMessage, ed: MessageEditor, method: string, source: Peer, outSide: Side, target: Peer, listener: Listener, media: string | undefined): void {
    if (!isDialogCreating(method) || msg.toTag !== undefined) return
    const sides = this.core.sides
    const internalPeer = outSide === 'internal' ? target : source
    const externalPeer = outSide === 'internal' ? source : target
    const token = this.core.tokens.sealRoute(internalPeer, externalPeer, outSide === 'public', media)
    const sips = isSipsRequest(msg)
    if (outSide === 'internal') {
      const inner = sides.listenerFor('internal', target.proto) ?? listener
      const outer = sides.listenerFor('public', source.proto) ?? inner
      const rr = recordRoute(inner, token, sips) + (outer !== inner ? ', ' + recordRoute(outer, token, sips) : '')
      ed.prependHeader('Record-Route', rr)
    } else {
      ed.prependHeader('Record-Route', recordRoute(listener, token, sips))
    }
  }

  /** The dialog an INVITE's Replaces header names (its Call-ID unmasked), if the dialog table holds it. */
  replacedDialog(msg: SipMessage): Dialog | undefined {
    const callId = replacesCallId(msg)
    return callId === undefined ? undefined : this.core.dialogs.get(this.topology.plainCallId(callId))
  }
}

function isDialogCreating(method: string): boolean {
  return method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER' || method === 'NOTIFY'
}

/** True when `source` is the internal party of the dialog (it matches the internal flow, not the external one). */
function isFrom(source: Peer, internal: Peer, external: Peer): boolean {
  if (source.address !== internal.address) return false
  return !(source.address === external.address && source.port === external.port && source.port !== internal.port)
}

/** URI parameter of the edge's Record-Route entry naming the worker process whose dialog it is (`--workers`). */
export const WORKER_PARAM = 'sw'
let workerParam = ''

/**
 * Worker processes: every Record-Route this process adds names it, so that an in-dialog request reaching
 * another worker (a backend's BYE comes from one port, which the kernel keeps on one worker) is handed to the
 * worker holding the dialog, and each dialog's requests are handled in order by one process.
 */
export function setRouteWorker(worker: number): void {
  workerParam = `;${WORKER_PARAM}=${worker}`
}

/**
 * The worker param (`;sw=N`) for a Path entry whose flow is a connection: only the worker that accepted the
 * connection can write on it, so a registrar's request through that Path is handed to it (see worker.ts).
 * Empty without workers.
 */
export function routeWorkerParam(): string {
  return workerParam
}

/**
 * The edge's Record-Route entry on a listener, carrying the route token (and the worker, with workers).
 * `sips`: the request was sips (RFC 5630), and an entry facing a TLS or WSS side is a sips URI (TLS implied;
 * WSS keeps `;transport=ws`).
 */
export function recordRoute(l: Listener, token: string, sips = false): string {
  const proto = l.spec.proto
  if (sips && isSecureTransport(proto)) return `<sips:${l.hostport}${proto === 'wss' ? ';transport=ws' : ''};lr${workerParam};${RR_PARAM}=${token}>`
  return `<sip:${l.hostport}${uriTransportParam(proto)};lr${workerParam};${RR_PARAM}=${token}>`
}
