// Topology hiding (README "Topology hiding"): what a message must not show when it leaves the inside for the
// public side, and what is restored when it comes back. Hide toward public: Via stripping (kept in the
// transaction), Contact aliasing (`ct=` tokens), Record-Route trimming, internal hosts in From/To/R-URI,
// Call-ID masking, the scrub of any other header naming an internal address, and the 3xx / Refer-To /
// Replaces rewrites of uri_rewrite.ts. Restore toward internal: the hidden Vias, the unmasked Call-ID, the
// doubled Record-Route entry facing the inside. Nothing else: no routing decision, no sending.
import { H, type MessageEditor, type NameAddr, type SipMessage } from '../sip/index.js'
import { uriTransportParam } from '../transport/protos.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import { bareHost, hostport } from './addressing.js'
import type { ProxyCore } from './core.js'
import { CONTACT_PARAM, RR_PARAM, recordRoute } from './routing.js'
import { MASK_PREFIX } from './tokens.js'
import type { ClientTx, ServerTx } from './transactions.js'
import { isReplaces, redirectContacts, rewriteTransferHeaders, type RewriteContext } from './uri_rewrite.js'

export class Topology {
  /** What the Refer-To / Replaces / 3xx rewrites need from the edge (bound once, not per message). */
  private readonly rewriteCtx: RewriteContext

  constructor(private readonly core: ProxyCore) {
    const sides = core.sides
    const tokens = core.tokens
    this.rewriteCtx = {
      isInternal: (host) => core.isInternalHost(host),
      isOwn: (host, port) => sides.isOwn(host, port),
      sealContact: (uri, peer) => tokens.sealContact(uri, peer),
      openContact: (token) => {
        const c = tokens.openContact(token)
        return typeof c === 'string' ? undefined : c.uri
      },
      crossCallId: (callId, inward) => this.embeddedCallId(callId, inward),
    }
  }

  // ---------------------------------------------------------------- Call-ID masking

  /** The unmasked Call-ID when `callId` is one of our masked ones, else undefined. */
  unmasked(callId: string): string | undefined {
    return callId.startsWith(MASK_PREFIX) ? this.core.tokens.unmaskCallId(callId) : undefined
  }

  /** The Call-ID a dialog has inside (a masked one unmasked), so that masking does not hide a loop. */
  plainCallId(callId: string): string {
    return callId.startsWith(MASK_PREFIX) ? (this.core.tokens.unmaskCallId(callId) ?? callId) : callId
  }

  /**
   * Call-ID masking across the sides: a masked Call-ID coming in from the public side is restored; the
   * Call-ID of a dialog created from inside is masked going out. Returns the Call-ID the forwarded request
   * must carry, or undefined to keep it.
   */
  callIdToward(msg: SipMessage, outSide: Side, outbound: boolean): string | undefined {
    const callId = msg.callId
    if (outSide === 'internal') {
      if (!callId.startsWith(MASK_PREFIX)) return undefined
      return this.core.tokens.unmaskCallId(callId)
    }
    return this.core.opts.maskCallId && outbound ? this.core.tokens.maskCallId(callId) : undefined
  }

  /** Call-IDs inside Replaces / Refer-To (RFC 3891): restored going in; a backend-created dialog's masked going out. */
  private embeddedCallId(callId: string, inward: boolean): string | undefined {
    if (inward) return callId.startsWith(MASK_PREFIX) ? this.core.tokens.unmaskCallId(callId) : undefined
    if (!this.core.opts.maskCallId || this.core.dialogs.get(callId)?.direction !== 'out') return undefined
    return this.core.tokens.maskCallId(callId)
  }

  // ---------------------------------------------------------------- requests

  /** Toward the public side from inside, statefully: the internal Vias go (kept for the responses), the rest hidden. */
  hideRequest(msg: SipMessage, ed: MessageEditor, st: ServerTx, listener: Listener, target: Peer, strict: boolean): void {
    const parts: string[] = []
    for (const v of msg.vias) parts.push(v.raw)
    st.hiddenVias = parts.join(', ')
    this.hideOutgoing(msg, ed, st.source, listener, target, strict)
  }

  /**
   * What a request from inside must not show outside: its Vias, Record-Routes and Contact (replaced by an
   * edge alias), internal hosts in From/To and in the request-URI (replaced by the edge or the next hop),
   * and any other header naming an internal address. `strict`: the Request-URI was swapped into Route for a
   * strict router (§16.6 step 6); it is the remote target of a dialog then, and is left alone. Used as it is
   * for the stateless ACK (its Vias need not come back).
   */
  hideOutgoing(msg: SipMessage, ed: MessageEditor, from: Peer, listener: Listener, target: Peer, strict = false): void {
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
    if (!strict && (host === source || this.core.isInternalHost(host))) {
      // A request-URI naming the edge's internal address or the sender (a call sent to the trunk) gets the next hop.
      const at = msg.requestUri.indexOf('@')
      const user = at >= 0 ? msg.requestUri.slice(msg.requestUri.indexOf(':') + 1, at + 1) : ''
      ed.setRequestUri(`sip:${user}${hostport(target.address, target.port)}`)
    }
    this.scrubInternal(msg, ed, source)
  }

  /** Refer-To, Referred-By, Replaces: rewritten across the sides, never dropped (RFC 3515 §2.4.1, RFC 3891). */
  transferHeaders(msg: SipMessage, ed: MessageEditor, leavingInside: boolean, listener: Listener): void {
    rewriteTransferHeaders(msg, ed, leavingInside, listener, this.rewriteCtx)
  }

  // ---------------------------------------------------------------- responses

  /** The Vias a request from inside lost on its way out, put back on its responses (after our own is removed). */
  restoreVias(st: ServerTx, ed: MessageEditor): void {
    if (st.hiddenVias) ed.prependHeader('Via', st.hiddenVias)
  }

  /**
   * A response relayed upstream through its transaction: Call-ID masked or restored, and toward the public
   * side from a branch that went inside, Contact aliased (3xx targets too), Record-Route trimmed, scrubbed;
   * toward the inside on a two-sided edge, our Record-Route entry doubled so the backend reaches us.
   */
  response(st: ServerTx, ct: ClientTx, msg: SipMessage, ed: MessageEditor): void {
    const toPublic = st.side === 'public'
    const tokens = this.core.tokens
    if (st.maskedCallId) ed.setHeader(H.CallId, tokens.maskCallId(msg.callId))
    else if (!toPublic && msg.callId.startsWith(MASK_PREFIX)) {
      const original = tokens.unmaskCallId(msg.callId)
      if (original !== undefined) ed.setHeader(H.CallId, original)
    }
    if (toPublic && ct.target && this.isInternalPeer(ct)) {
      if (msg.status >= 300 && msg.status < 400) {
        // A redirect is relayed, not recursed: the caller (or Asterisk's Transfer() on a ringing channel)
        // chooses among the targets, and recursing would let a backend steer calls anywhere from the edge.
        // External targets stay as they are; internal ones become aliases that the edge opens again when
        // the caller sends its new INVITE there, so following the redirect reaches the right container.
        if (msg.has(H.Contact) && !msg.contactStar) redirectContacts(msg, ed, st.listener, this.rewriteCtx)
      } else if (msg.has(H.Contact) && !msg.contactStar && msg.contacts[0] && st.method !== 'REGISTER') {
        // (A REGISTER's 2xx lists the phone's own bindings, not a backend's address: the phone looks for its Contact there.)
        ed.setHeader(H.Contact, this.contactAlias(msg.contacts[0], ct.target, st.listener))
      }
      this.trimRecordRoute(msg, ed, 'public')
      this.scrubInternal(msg, ed)
    } else if (!toPublic && msg.has(H.RecordRoute)) {
      this.addInnerRecordRoute(msg, ed, st)
    }
  }

  /** A 2xx relayed statelessly by its Via (no transaction left): hidden as above when it leaves a backend for the public side. */
  statelessResponse(inb: Inbound, msg: SipMessage, ed: MessageEditor, listener: Listener, dest: Peer): void {
    const sides = this.core.sides
    if (sides.sideOf(inb.listener, inb.source) !== 'internal' || sides.sideOf(listener, dest) !== 'public') return
    if (msg.has(H.Contact) && !msg.contactStar && msg.contacts[0]) {
      ed.setHeader(H.Contact, this.contactAlias(msg.contacts[0], inb.source, listener))
    }
    this.trimRecordRoute(msg, ed, 'public')
    this.scrubInternal(msg, ed)
    // In a dialog a backend placed (a carrier's re-INVITE answered), the Call-ID is masked outside.
    if (this.core.opts.maskCallId && this.core.dialogs.get(msg.callId)?.direction === 'out') {
      ed.setHeader(H.CallId, this.core.tokens.maskCallId(msg.callId))
    }
  }

  /** Did this branch go to the inside (a backend, or anything behind the internal side)? */
  isInternalPeer(ct: ClientTx): boolean {
    if (ct.backend) return true
    if (this.core.sides.twoSided) return ct.listener.spec.side === 'internal'
    return this.core.isInternalHost(ct.target.address)
  }

  // ---------------------------------------------------------------- the rules

  /**
   * Safety net toward the public side: after the targeted rewrites (Via, Contact, Record-Route, From/To),
   * any other header line naming an internal address (X-Backend, P-Asserted-Identity with the Asterisk IP,
   * Warning ...) is removed. One indexOf per internal host over the header section when nothing is there.
   */
  private scrubInternal(msg: SipMessage, ed: MessageEditor, source?: string): void {
    const internalHosts = this.core.sides.internalHosts
    const hosts = source && !internalHosts.includes(source) ? [...internalHosts, source] : internalHosts
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
    if (host !== source && !this.core.isInternalHost(host)) return
    const value = msg.headerValue(i)
    const hp = addr.uri.port === undefined ? addr.uri.host : addr.uri.host + ':' + addr.uri.port
    const at = value.indexOf(hp)
    if (at < 0) return
    ed.replaceRange(msg.headerValueStart(i), msg.headerValueEnd(i), value.slice(0, at) + listener.hostport + value.slice(at + hp.length))
  }

  /** `<sip:edge;ct=TOKEN>` plus the original header parameters (expires, +sip.instance ...). */
  private contactAlias(c: NameAddr, peer: Peer, listener: Listener): string {
    const token = this.core.tokens.sealContact(c.uriText, peer)
    let params = ''
    for (const k in c.params) {
      const v = c.params[k]
      params += v === true ? ';' + k : ';' + k + '=' + v
    }
    return `<sip:${listener.hostport}${uriTransportParam(listener.spec.proto)};${CONTACT_PARAM}=${token}>${params}`
  }

  /** Removes Record-Route entries above the edge's own entry for `side` (internal hops and our inner entry). */
  private trimRecordRoute(msg: SipMessage, ed: MessageEditor, side: Side): void {
    if (!msg.has(H.RecordRoute)) return
    const rrs = msg.recordRoutes
    for (let i = 0; i < rrs.length; i++) {
      const u = rrs[i]!.uri
      if (typeof u.params[RR_PARAM] === 'string' && this.core.sides.isOwnOnSide(u.host, u.port, side)) {
        for (let j = 0; j < i; j++) ed.removeElement(rrs[j]!)
        return
      }
    }
  }

  /** Calls placed by backends: add our internal-facing entry below the public one so the backend reaches us. */
  private addInnerRecordRoute(msg: SipMessage, ed: MessageEditor, st: ServerTx): void {
    const sides = this.core.sides
    const rrs = msg.recordRoutes
    const last = rrs[rrs.length - 1]
    if (!last) return
    const sk = last.uri.params[RR_PARAM]
    if (typeof sk !== 'string' || !sides.isOwn(last.uri.host, last.uri.port)) return
    const inner = sides.listenerFor('internal', st.source.proto)
    // Not when that entry already is the listener the backend reached us on. With one set of listeners for
    // both sides it may still be another transport's (a WSS agent called from a UDP backend): then the
    // backend needs the entry of its own transport below it.
    if (!inner || (sides.isOwnOnSide(last.uri.host, last.uri.port, 'internal') && (last.uri.port ?? 5060) === inner.port)) return
    ed.replaceRange(last.end, last.end, ', ' + recordRoute(inner, sk))
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
