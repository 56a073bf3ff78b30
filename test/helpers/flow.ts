// Small pieces for scripted call flows with raw UDP peers: answering a request and building in-dialog
// requests from what a dialog learned (RFC 3261 §12.1), so a test reads as the sequence it replays.
import { buildResponse, type SipMessage } from '../../src/sip/index.js'
import type { RawUdp } from './udp.js'

/** Answers `req` (received from the edge at `edge`) with `status`, extra header lines and a To tag. */
export function answer(peer: RawUdp, req: SipMessage, status: number, edge: { host: string; port: number }, o: {
  toTag?: string
  headers?: Array<[string, string]>
} = {}): void {
  const out = buildResponse(req, status, undefined, { toTag: o.toTag ?? 'uas' + status, headers: o.headers ?? [] })
  peer.socket.send(out, edge.port, edge.host)
}

/** Record-Route values of a message, one entry per element, top first. */
export function recordRoutes(m: SipMessage): string[] {
  return m.recordRoutes.map((r) => r.raw)
}

/** An in-dialog request as text: `route` is the route set in order (the UAC reverses Record-Route, §12.1.2). */
export function inDialog(o: {
  method: string
  ruri: string
  via: { host: string; port: number; branch: string }
  route: string[]
  from: string
  to: string
  callId: string
  cseq: number
  lines?: string[]
}): string {
  return [
    `${o.method} ${o.ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${o.via.host}:${o.via.port};branch=${o.via.branch};rport`,
    ...(o.route.length > 0 ? [`Route: ${o.route.join(', ')}`] : []),
    'Max-Forwards: 70',
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${o.method}`,
    ...(o.lines ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** Header lines and start line of `messages` that name any of `addresses` (bodies excluded). */
export function namesAny(messages: SipMessage[], addresses: string[]): string[] {
  const found: string[] = []
  for (const m of messages) {
    const text = m.buf.toString('latin1', m.start, m.bodyStart)
    for (const line of text.split('\r\n')) if (addresses.some((a) => line.includes(a))) found.push(line)
  }
  return found
}
