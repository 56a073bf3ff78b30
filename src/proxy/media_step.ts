// The media step of the proxy (rtpengine anchoring of SDP), between routing and relay, and what it keeps per
// transaction (src/media/anchor.ts has the policy and the description of how messages are held while
// rtpengine answers).
import type { MediaAnchor, MediaCall, MediaExtra, MediaResult, WebrtcEnds } from '../media/anchor.js'
import type { MediaMode } from '../media/config.js'
import type { MediaStats } from '../media/metrics.js'
import { findSdp, type SdpLocation } from '../media/sdp_body.js'
import { H, newBranch, type SipMessage } from '../sip/index.js'
import type { Inbound, Listener, Peer, Side, TransportProto } from '../transport/types.js'
import type { ProxyCore } from './core.js'
import { viaValue, type Relay } from './relay.js'
import type { RouteState } from './routing.js'
import type { ServerTransactions } from './server_tx.js'
import { MASK_PREFIX, type RouteToken } from './tokens.js'
import type { Topology } from './topology.js'
import type { ClientTx, ServerTx } from './transactions.js'

export interface ProxyMedia {
  anchor: MediaAnchor
  /** Mode and extra NG keys per backend set (undefined set: a call to the trunk). Default: anchor, none. */
  forSet?: (set: string | undefined) => { mode: MediaMode; extra: MediaExtra | undefined }
  /** When given, the edge exports sipedge_media_* metrics from it (createMedia makes one). */
  stats?: MediaStats
}

/** Media of one request transaction (an INVITE/UPDATE/re-INVITE) of an anchored call. */
export interface CallMedia {
  /** rtpengine instance id, sealed into the Record-Route token of a new call. */
  instance: string
  /** The Call-ID on the internal side: rtpengine sees one Call-ID per call whatever the masking. */
  callId: string
  /** The request carried an offer (else a 2xx with SDP is a late offer, answered in the ACK). */
  offered: boolean
  /** The anchored body for every branch of the request, and its length in bytes. */
  body: string | undefined
  contentLength: number
  /** The INVITE that creates the call: its final failure ends the rtpengine session. */
  initial: boolean
  extra: MediaExtra | undefined
  /** Responses held for rtpengine, relayed in arrival order. */
  chain: Promise<void> | undefined
}

/** A set without per-set media settings, and every re-offer (the call's instance is known). */
const ANCHOR_PLAIN: { mode: MediaMode; extra: MediaExtra | undefined } = Object.freeze({ mode: 'anchor', extra: undefined })

/** Browsers speak SIP over WebSocket (RFC 7118) and WebRTC media; every other transport carries plain RTP peers. */
const isBrowser = (proto: TransportProto | undefined): boolean => proto === 'ws' || proto === 'wss'

/** The WebRTC ends of one offer/answer, or undefined for a call without browsers (the common case: no object). */
function webrtcEnds(from: TransportProto | undefined, to: TransportProto | undefined): WebrtcEnds | undefined {
  const f = isBrowser(from)
  const t = isBrowser(to)
  return f || t ? { from: f, to: t } : undefined
}

/**
 * ACK or BYE from the edge to the UAS of a 2xx it will not relay (its answer could not be anchored):
 * the edge ends that dialog itself. R-URI = the 2xx's Contact; sent straight to the branch's next hop.
 */
export function buildDialogEnd(method: 'ACK' | 'BYE', ok2xx: SipMessage, ruri: string, via: string): Buffer {
  const copy = (name: string, id: number): string => {
    const i = ok2xx.indexOf(id)
    return i < 0 ? '' : `${name}: ${ok2xx.headerValue(i)}\r\n`
  }
  const seq = ok2xx.cseq.seq + (method === 'BYE' ? 1 : 0)
  const head = `${method} ${ruri} SIP/2.0\r\nVia: ${via}\r\nMax-Forwards: 70\r\n` +
    copy('From', H.From) + copy('To', H.To) + copy('Call-ID', H.CallId) + `CSeq: ${seq} ${method}\r\nContent-Length: 0\r\n\r\n`
  return Buffer.from(head, 'utf8')
}

/**
 * The body with its SDP range replaced by rtpengine's SDP, as the string the MessageEditor splices
 * (UTF-8: SDP is ASCII, and a valid UTF-8 session name survives the round trip).
 */
export function spliceBody(body: Buffer, loc: { start: number; end: number }, r: { sdp: Buffer }): string {
  if (loc.start === 0 && loc.end === body.length) return r.sdp.toString('utf8')
  return Buffer.concat([body.subarray(0, loc.start), r.sdp, body.subarray(loc.end)]).toString('utf8')
}

/**
 * The media step (rtpengine anchoring), between routing and relay: a request's SDP is offered before it is
 * forwarded (held meanwhile: the server transaction absorbs retransmissions), answers in responses (or in
 * the ACK of a late offer) are held and relayed in order, and the session is deleted when the call ends or
 * fails. Present only when the proxy is given media: the default path never enters it.
 */
export class MediaStep {
  /** Set by Proxy once every step exists. */
  relay!: Relay
  /** Media state of held/anchored request transactions (weak: goes with the transaction). */
  private readonly callMedia = new WeakMap<ServerTx, CallMedia>()
  /** Branches whose 2xx the edge ended itself (answer not anchored under policy reject). */
  private readonly endedBranches = new WeakSet<ClientTx>()

  constructor(
    private readonly core: ProxyCore,
    private readonly media: ProxyMedia,
    private readonly servers: ServerTransactions,
    private readonly topology: Topology,
  ) {}

  // ---------------------------------------------------------------- requests

  /** The call's rtpengine for an in-dialog request: from the token, or from the dialog cache for clients that ignore the Route set. */
  instanceFor(msg: SipMessage, side: Side, token: RouteToken | undefined): string | undefined {
    return token?.media ?? this.core.dialogs.get(this.internalCallId(msg.callId, side))?.media
  }

  /** After a BYE left: ending the media never delays the signalling. */
  end(msg: SipMessage, side: Side, instance: string): void {
    void this.media.anchor.delete({ callId: this.internalCallId(msg.callId, side) }, instance)
  }

  /**
   * Offers the request's SDP to rtpengine, then calls `go` (which forwards it). The server transaction
   * exists already, so retransmissions of the request are absorbed meanwhile (one offer per
   * transaction); every failover branch then reuses the anchored body. `instance`: the call's rtpengine
   * from the token (a re-offer); undefined for a new call.
   */
  offer(st: ServerTx, inSide: Side, outSide: Side, instance: string | undefined, go: () => void, outProto?: TransportProto): void {
    const media = this.media
    const msg = st.request!
    const conf = instance === undefined ? (media.forSet?.(st.set) ?? ANCHOR_PLAIN) : ANCHOR_PLAIN
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
    void this.offerThenGo(st, inSide, outSide, instance, conf.extra, callId, initial, loc, go, outProto)
  }

  /** offer()'s round trip to rtpengine and what follows it (one async method: no closures per request). */
  private async offerThenGo(st: ServerTx, inSide: Side, outSide: Side, instance: string | undefined, extra: MediaExtra | undefined,
    callId: string, initial: boolean, loc: SdpLocation, go: () => void, outProto: TransportProto | undefined): Promise<void> {
    const media = this.media
    const msg = st.request!
    let r: MediaResult
    try {
      const webrtc = webrtcEnds(st.source.proto, outProto)
      const call: MediaCall = { callId, offererTag: msg.fromTag ?? '' }
      if (msg.toTag !== undefined) call.answererTag = msg.toTag
      const o: { instance?: string; extra?: MediaExtra; webrtc?: WebrtcEnds } = {}
      if (instance !== undefined) o.instance = instance
      if (extra !== undefined) o.extra = extra
      if (webrtc !== undefined) o.webrtc = webrtc
      r = await media.anchor.offer(call, inSide, outSide, msg.body.subarray(loc.start, loc.end), o)
    } catch (err) {
      this.core.log.error({ err, callId: msg.callId }, 'media: offer step failed')
      return this.servers.finalLocal(st, 500, 'Server Internal Error')
    }
    if (st.cancelled || st.lastStatus >= 200) {
      // CANCELled while rtpengine was asked: nothing went downstream, end it here.
      if (r.action === 'anchored' && initial) void media.anchor.delete({ callId }, r.instance)
      if (st.cancelled) this.servers.finalLocal(st, 487, 'Request Terminated')
      return
    }
    if (r.action === 'reject') {
      this.core.log.warn({ callId: msg.callId, reason: r.reason, rtpengine: r.instance }, 'media: offer failed, request rejected')
      return this.servers.finalLocal(st, r.status, 'Service Unavailable', [['Retry-After', '5']])
    }
    if (r.action === 'anchored') {
      const body = spliceBody(msg.body, loc, r)
      this.callMedia.set(st, { instance: r.instance, callId, offered: true, body, contentLength: Buffer.byteLength(body), initial, extra, chain: undefined })
    } else {
      this.core.log.warn({ callId: msg.callId, reason: r.reason, rtpengine: r.instance }, 'media: offer failed, SDP passed through')
    }
    try {
      go()
    } catch (err) {
      this.core.log.error({ err, callId: msg.callId }, 'media: offer step failed')
      this.servers.finalLocal(st, 500, 'Server Internal Error')
    }
  }

  /** What every branch of an anchored request carries: rtpengine's body and the instance for the token. */
  forBranch(st: ServerTx): CallMedia | undefined {
    return this.callMedia.get(st)
  }

  /**
   * An ACK with SDP in an anchored call answers a late offer (the 2xx offered): the ACK's sender is the
   * answerer. True when taken (sent once rtpengine answered).
   */
  ack(inb: Inbound, side: Side, route: RouteState, target: Peer, outSide: Side, listener: Listener): boolean {
    const instance = route.token?.media
    if (instance === undefined) return false
    const msg = inb.msg
    const loc = findSdp(msg.contentType, msg.body)
    if (loc === undefined) return false
    const call = { callId: this.internalCallId(msg.callId, side), offererTag: msg.toTag ?? '', answererTag: msg.fromTag ?? '' }
    const webrtc = webrtcEnds(inb.source.proto, target.proto)
    this.media.anchor.answer(call, side, outSide, msg.body.subarray(loc.start, loc.end), instance, webrtc ? { webrtc } : {}).then((r) => {
      this.relay.sendAck(inb, side, route, target, outSide, listener, r.action === 'anchored' ? spliceBody(msg.body, loc, r) : undefined)
    }, (err: unknown) => this.core.log.error({ err, callId: msg.callId }, 'media: ACK answer failed'))
    return true
  }

  // ---------------------------------------------------------------- responses

  /**
   * A response about to be relayed: true when the media step takes it (held for rtpengine, or a 2xx copy of
   * a branch the edge ended itself); it is relayed later with the anchored body.
   */
  takes(st: ServerTx, ct: ClientTx, msg: SipMessage): boolean {
    // The edge ended this branch's dialog (answer not anchored): its 2xx copies only get an ACK.
    if (this.endedBranches.has(ct)) {
      if (msg.status >= 200 && msg.status < 300) this.endAnswered(ct, msg)
      return true
    }
    const cm = this.callMedia.get(st)
    return cm !== undefined && this.holdForMedia(st, ct, msg, cm)
  }

  /** A 2xx whose transaction is gone cannot be given rtpengine's SDP: dropped rather than let the backend's SDP out. */
  dropsStateless(msg: SipMessage): boolean {
    return findSdp(msg.contentType, msg.body) !== undefined
  }

  /** The rtpengine instance a new dialog records (for in-dialog requests of clients that ignore Route). */
  dialogInstance(st: ServerTx): string | undefined {
    return this.callMedia.get(st)?.instance
  }

  /** CANCEL (487), failover exhausted (503), any failure relayed for an INVITE: the call will not exist. */
  failed(st: ServerTx): void {
    const cm = this.callMedia.get(st)
    if (cm?.initial) {
      this.callMedia.delete(st)
      void this.media.anchor.delete({ callId: cm.callId }, cm.instance)
    }
  }

  /**
   * A response of an anchored transaction: held when it carries SDP (answer, or a late offer in a 2xx),
   * or when an earlier one is still held (order kept). True when taken; it is relayed later.
   */
  private holdForMedia(st: ServerTx, ct: ClientTx, msg: SipMessage, cm: CallMedia): boolean {
    const status = msg.status
    const loc = status > 100 && status < 300 ? findSdp(msg.contentType, msg.body) : undefined
    if (loc === undefined && cm.chain === undefined) return false
    cm.chain = this.heldResponse(st, ct, msg, cm, loc, cm.chain)
    return true
  }

  /**
   * One held response, after the one held before it (`prev`, which never rejects): answer (or late offer) in
   * rtpengine, then relayed with rtpengine's SDP. One async method per response instead of closures.
   */
  private async heldResponse(st: ServerTx, ct: ClientTx, msg: SipMessage, cm: CallMedia, loc: SdpLocation | undefined, prev: Promise<void> | undefined): Promise<void> {
    // Never synchronously inside takes(): the relay path finishes before this response moves on.
    await prev
    try {
      await this.answerAndRelay(st, ct, msg, cm, loc)
    } catch (err) {
      this.core.log.error({ err, callId: msg.callId }, 'media: answer step failed')
    }
  }

  private async answerAndRelay(st: ServerTx, ct: ClientTx, msg: SipMessage, cm: CallMedia, loc: SdpLocation | undefined): Promise<void> {
    const media = this.media
    const status = msg.status
    // A copy of a 2xx queued before the edge ended the dialog: only the ACK again.
    if (status >= 200 && this.endedBranches.has(ct)) return this.endAnswered(ct, msg)
    let body: string | undefined
    if (loc !== undefined) {
      const sdp = msg.body.subarray(loc.start, loc.end)
      const from: Side = this.topology.isInternalPeer(ct) ? 'internal' : 'public'
      const fromTag = msg.fromTag ?? ''
      const toTag = msg.toTag ?? ''
      const webrtc = webrtcEnds(ct.target.proto, st.source.proto)
      const o: { extra?: MediaExtra; webrtc?: WebrtcEnds } = {}
      if (cm.extra !== undefined) o.extra = cm.extra
      if (webrtc !== undefined) o.webrtc = webrtc
      // No offer in the request: a 2xx with SDP offers (the UAS is the offerer), the ACK answers.
      const r: MediaResult = cm.offered
        ? await media.anchor.answer({ callId: cm.callId, offererTag: fromTag, answererTag: toTag }, from, st.side, sdp, cm.instance, o)
        : status >= 200
          ? await media.anchor.offer({ callId: cm.callId, offererTag: toTag, answererTag: fromTag }, from, st.side, sdp, { instance: cm.instance, ...o })
          : { action: 'passthrough', reason: 'provisional SDP without an offer', instance: cm.instance }
      if (r.action === 'anchored') body = spliceBody(msg.body, loc, r)
      else if (r.action === 'reject') {
        this.core.log.warn({ callId: msg.callId, status, reason: r.reason, rtpengine: r.instance }, 'media: answer failed, response not relayed')
        // A provisional is dropped. A 2xx becomes our failure upstream, and the edge ends the answered
        // dialog itself (ACK, then BYE); 2xx retransmissions only get the ACK again.
        if (status >= 200) {
          this.endAnswered(ct, msg)
          this.servers.finalLocal(st, r.status, 'Service Unavailable')
        }
        return
      }
    }
    this.relay.relayResponse(st, ct, msg, { body })
  }

  /** ACK (every copy of the 2xx) and BYE (once) for a 2xx the edge will not relay. */
  private endAnswered(ct: ClientTx, ok: SipMessage): void {
    const contact = ok.contacts[0]?.uriText
    if (contact === undefined) return
    const first = !this.endedBranches.has(ct)
    this.endedBranches.add(ct)
    const transports = this.core.transports
    transports.send(buildDialogEnd('ACK', ok, contact, viaValue(ct.listener, newBranch())), ct.target, ct.listener)
    if (first) transports.send(buildDialogEnd('BYE', ok, contact, viaValue(ct.listener, newBranch())), ct.target, ct.listener)
  }

  /** The Call-ID as the internal side has it (masked Call-IDs are restored): one Call-ID per call for rtpengine. */
  private internalCallId(callId: string, side: Side): string {
    if (side === 'internal' || !callId.startsWith(MASK_PREFIX)) return callId
    return this.core.tokens.unmaskCallId(callId) ?? callId
  }
}
