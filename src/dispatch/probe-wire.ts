/**
 * The bytes of a health probe and the two facts the prober reads from a reply (status, top Via branch),
 * on top of the message core. Probes are off the hot path; this keeps the prober free of SIP details.
 */
import { buildOptions, frameStream, newBranch, parseMessage } from '../sip/index.js'

export { newBranch as probeBranch }

export interface ProbeRequest {
  uri: string
  viaTransport: string
  viaHostport: string
  branch: string
  from: string
  callId: string
}

/** OPTIONS with `;rport` in the Via (RFC 3581), so the answer comes back to the probing socket. */
export function buildProbe(o: ProbeRequest): Buffer {
  return buildOptions({ ...o, from: `<${o.from}>` })
}

export interface ProbeReply {
  status: number
  branch: string
}

/** Status and top-Via branch of a response to an OPTIONS; undefined for anything else or garbage. */
export function readProbeReply(buf: Buffer, start = 0, end = buf.length): ProbeReply | undefined {
  try {
    const msg = parseMessage(buf, start, end - start)
    if (msg.isRequest || msg.cseq.method !== 'OPTIONS') return undefined
    const branch = msg.via.branch
    return branch === undefined || branch === '' ? undefined : { status: msg.status, branch }
  } catch {
    return undefined // a backend's bad bytes are not our crash; the probe then times out
  }
}

/** Length of one complete message at the start of a TCP stream; -1 when more bytes are needed. Throws on a bad frame. */
export function frameLength(buf: Buffer, maxMessageSize = 65536): number {
  return frameStream(buf, 0, buf.length, maxMessageSize)
}
