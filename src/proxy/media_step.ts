// What the proxy keeps per transaction when media is anchored (src/media/anchor.ts has the policy and
// the description of how messages are held while rtpengine answers).
import type { MediaAnchor, MediaExtra } from '../media/anchor.js'
import type { MediaMode } from '../media/config.js'
import type { MediaStats } from '../media/metrics.js'

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
 * The body with its SDP range replaced by rtpengine's SDP, as the string the MessageEditor splices
 * (UTF-8: SDP is ASCII, and a valid UTF-8 session name survives the round trip).
 */
export function spliceBody(body: Buffer, loc: { start: number; end: number }, r: { sdp: Buffer }): string {
  if (loc.start === 0 && loc.end === body.length) return r.sdp.toString('utf8')
  return Buffer.concat([body.subarray(0, loc.start), r.sdp, body.subarray(loc.end)]).toString('utf8')
}
