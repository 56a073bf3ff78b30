// What the proxy keeps per transaction when media is anchored (src/media/anchor.ts has the policy and
// the description of how messages are held while rtpengine answers).
import type { MediaAnchor, MediaExtra } from '../media/anchor.js'
import type { MediaMode } from '../media/config.js'
import type { MediaStats } from '../media/metrics.js'
import { H, type SipMessage } from '../sip/index.js'

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
