// Shared pieces of the media tests: SDP builders and readers, a lossy UDP relay, a median.
import { createSocket, type RemoteInfo } from 'node:dgram'

/** A plain audio offer/answer from `ip`:`port` (PCMU, PCMA, telephone-event). */
export function callerSdp(ip: string, port: number, extra = ''): Buffer {
  return Buffer.from([
    'v=0', `o=user 1000 1 IN IP4 ${ip}`, 's=call', `c=IN IP4 ${ip}`, 't=0 0',
    `m=audio ${port} RTP/AVP 0 8 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000', `a=rtcp:${port + 1}`, 'a=sendrecv', extra,
  ].filter((l) => l !== '').join('\r\n') + '\r\n')
}

/** The addresses on the c= and o= lines and in a=rtcp / a=candidate. */
export function sdpAddresses(sdp: Buffer | string): { c: string[]; o: string[]; all: string[] } {
  const s = sdp.toString()
  const c = [...s.matchAll(/^c=IN IP[46] (\S+)/gm)].map((m) => m[1]!)
  const o = [...s.matchAll(/^o=\S+ \S+ \S+ IN IP[46] (\S+)/gm)].map((m) => m[1]!)
  const all = [...s.matchAll(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g)].map((m) => m[0])
  return { c: [...new Set(c)], o: [...new Set(o)], all: [...new Set(all)] }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface Relay {
  port: number
  /** Requests forwarded to the target (dropped ones excluded). */
  requests: Buffer[]
  /** Replies the target sent (dropped ones included). */
  replies: Buffer[]
  close(): void
}

/**
 * A UDP relay on 127.0.0.1 in front of `target` that drops the first `dropRequests` requests and the
 * first `dropReplies` replies: a lossy network between the edge and rtpengine.
 */
export async function udpRelay(target: { host: string; port: number }, o: { dropRequests?: number; dropReplies?: number }): Promise<Relay> {
  let dropReq = o.dropRequests ?? 0
  let dropRep = o.dropReplies ?? 0
  const front = createSocket('udp4')
  const back = createSocket('udp4')
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', r))
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', r))
  const relay: Relay = { port: front.address().port, requests: [], replies: [], close: () => { front.close(); back.close() } }
  let client: RemoteInfo | undefined
  front.on('message', (m, r) => {
    client = r
    if (dropReq > 0) { dropReq--; return }
    relay.requests.push(m)
    back.send(m, target.port, target.host)
  })
  back.on('message', (m) => {
    relay.replies.push(m)
    if (dropRep > 0) { dropRep--; return }
    if (client) front.send(m, client.port, client.address)
  })
  return relay
}

/** The rejection reason of `p`, or the string 'resolved' (which matches no error pattern). */
export function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => 'resolved', (err: unknown) => err)
}
