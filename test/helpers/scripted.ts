// Scripted SIP peers on raw UDP sockets, for tests that replay an exact call flow: a caller that writes its
// requests by hand, backends that answer with the status, tag and timing a test asks for.
import { buildResponse, newTag, type SipMessage } from '../../src/sip/index.js'
import type { RawUdp } from './udp.js'

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * A UAS answer to `req` (RFC 3261 §8.2.6), sent back to the sender named by its top Via (the edge). A 101-299
 * answer carries a Contact and copies the Record-Route set (§12.1.1), as Asterisk does.
 */
export function answer(peer: RawUdp, req: SipMessage, status: number, o: { tag?: string; headers?: Array<[string, string]> } = {}): void {
  const headers: Array<[string, string]> = []
  if (status > 100 && status < 300) {
    headers.push(['Contact', `<sip:callee@${peer.address}:${peer.port}>`])
    for (const rr of req.getHeaders('Record-Route')) headers.push(['Record-Route', rr])
  }
  if (o.headers) headers.push(...o.headers)
  const out = buildResponse(req, status, undefined, { toTag: o.tag ?? newTag(), headers })
  peer.socket.send(out, req.via.port ?? 5060, req.via.host)
}

/** An INVITE from `caller`; `sentBy` is what its Via claims (a NATed phone writes its private address there). */
export function invite(o: {
  caller: RawUdp
  ruri: string
  callId: string
  branch?: string
  sentBy?: string
  transport?: 'UDP' | 'TCP'
  lines?: string[]
}): string {
  const sentBy = o.sentBy ?? `${o.caller.address}:${o.caller.port}`
  return [
    `INVITE ${o.ruri} SIP/2.0`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} ${sentBy};branch=${o.branch ?? 'z9hG4bK' + o.callId};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@${o.caller.address}>;tag=caller-${o.callId}`,
    `To: <${o.ruri}>`,
    `Call-ID: ${o.callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:alice@${sentBy}>`,
    ...(o.lines ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** A CANCEL for the INVITE text `inv` (same R-URI, Via, From, To, Call-ID, CSeq number; RFC 3261 §9.1). */
export function cancelFor(inv: string, lines: string[] = []): string {
  const get = (name: string): string => inv.split('\r\n').find((l) => l.startsWith(name + ':'))!
  return [
    inv.split('\r\n')[0]!.replace(/^INVITE/, 'CANCEL'),
    get('Via'),
    'Max-Forwards: 70',
    get('From'),
    get('To'),
    get('Call-ID'),
    'CSeq: 1 CANCEL',
    ...lines,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/**
 * A request of the caller inside the dialog a 2xx set up (ACK for that 2xx, BYE, re-INVITE): to the remote
 * Contact, along the route set of the 2xx's Record-Route (§12.2.1.1), From/To with both tags.
 */
export function inDialog(method: string, ok: SipMessage, o: { caller: RawUdp; cseq?: number; transport?: 'UDP' | 'TCP'; lines?: string[] }): string {
  const contact = ok.contacts[0]!.uriText
  const routes = ok.getHeaders('Record-Route').map((rr) => `Route: ${rr}`).reverse()
  const cseq = o.cseq ?? 1
  return [
    `${method} ${contact} SIP/2.0`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} ${o.caller.address}:${o.caller.port};branch=z9hG4bK${method}${cseq}${ok.callId};rport`,
    'Max-Forwards: 70',
    `From: ${ok.getHeader('From')}`,
    `To: ${ok.getHeader('To')}`,
    `Call-ID: ${ok.callId}`,
    `CSeq: ${cseq} ${method}`,
    ...routes,
    ...(o.lines ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** Is `m` a request of `method` (or, with a number, a response of that status) for `callId`? */
export function is(callId: string, what: string | number): (m: SipMessage) => boolean {
  return (m) => m.callId === callId && (typeof what === 'number' ? !m.isRequest && m.status === what : m.isRequest && m.method === what)
}
