// Calls through the edge with media anchored in a real rtpengine: raw UDP phone and backend, so every
// byte the edge sends to the phone can be checked for internal addresses, bodies included.
import t, { type Test } from 'tap'
import { createMedia, validateMediaConfig } from '../../src/media/index.js'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { callerSdp, sdpAddresses } from '../helpers/media.js'
import { waitFor } from '../helpers/net.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

const PHONE = '127.0.4.5'
const BACKEND = '127.0.1.7'
const EDGE = '127.0.5.1'

let eng: RtpengineHandle
t.before(async () => { eng = await startRtpengine({ t, n: 5 }) })

async function setup(t: Test, o: { rtpengine?: string; timeoutMs?: number } = {}) {
  const cfg = validateMediaConfig({ mode: 'anchor', rtpengine: [o.rtpengine ?? eng.spec], timeoutMs: o.timeoutMs ?? 1000, retransmitMs: 50, ping: { intervalMs: 500 } })
  t.same(cfg.errors, [])
  const media = createMedia(cfg.config!)
  await media.start()
  t.teardown(() => media.stop())
  const backend = await rawUdp(t, BACKEND)
  const phone = await rawUdp(t, PHONE)
  const edge = await startEdge(t, EDGE, { backends: [`sip:${BACKEND}:${backend.port}`], media: { anchor: media.anchor } })
  return { media, backend, phone, edge }
}

function lines(m: SipMessage, name: RegExp): string[] {
  return m.buf.toString('latin1', m.start, m.bodyStart).split('\r\n').filter((l) => name.test(l))
}

/** A UAS response to `req`: Vias, From, To (+tag), Call-ID, CSeq and Record-Route echoed. */
function reply(req: SipMessage, status: number, reason: string, o: { toTag?: string; sdp?: Buffer; contact?: string } = {}): string {
  const keep = lines(req, /^(via|v|from|f|call-id|i|cseq|record-route)\s*:/i)
  const to = lines(req, /^(to|t)\s*:/i)[0]! + (o.toTag && !/;tag=/.test(lines(req, /^(to|t)\s*:/i)[0]!) ? `;tag=${o.toTag}` : '')
  const body = o.sdp?.toString('latin1') ?? ''
  return [`SIP/2.0 ${status} ${reason}`, ...keep, to, ...(o.contact ? [`Contact: ${o.contact}`] : []),
    ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n')
}

function invite(phone: RawUdp, edgePort: number, callId: string, sdp?: Buffer): string {
  const body = sdp?.toString('latin1') ?? ''
  return [`INVITE sip:bob@${EDGE}:${edgePort} SIP/2.0`, `Via: SIP/2.0/UDP ${PHONE}:${phone.port};branch=z9hG4bK${callId}1;rport`,
    'Max-Forwards: 70', `From: <sip:alice@${PHONE}>;tag=ph1`, `To: <sip:bob@${EDGE}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:alice@${PHONE}:${phone.port}>`, ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${body.length}`, '', body].join('\r\n')
}

/** An in-dialog request from the phone, routed by the 2xx's Record-Route to its Contact. */
function inDialog(phone: RawUdp, ok: SipMessage, method: string, cseq: number, callId: string, sdp?: Buffer): string {
  const rr = lines(ok, /^record-route\s*:/i).map((l) => l.replace(/^record-route\s*:\s*/i, ''))
  const contact = /<([^>]+)>/.exec(lines(ok, /^(contact|m)\s*:/i)[0]!)![1]!
  const toLine = lines(ok, /^(to|t)\s*:/i)[0]!
  const body = sdp?.toString('latin1') ?? ''
  return [`${method} ${contact} SIP/2.0`, `Via: SIP/2.0/UDP ${PHONE}:${phone.port};branch=z9hG4bK${callId}${method}${cseq};rport`,
    'Max-Forwards: 70', `From: <sip:alice@${PHONE}>;tag=ph1`, toLine, `Call-ID: ${callId}`, `CSeq: ${cseq} ${method}`,
    ...rr.map((r) => `Route: ${r}`), `Contact: <sip:alice@${PHONE}:${phone.port}>`,
    ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${body.length}`, '', body].join('\r\n')
}

/** Internal addresses that must never reach the phone: the backend and rtpengine's internal interface. */
function leaks(phone: RawUdp): string[] {
  return phone.received.map((m) => m.buf.toString('latin1', m.start, m.end)).filter((s) => s.includes(BACKEND) || s.includes(eng.internal))
}

const isReq = (method: string) => (m: SipMessage) => m.isRequest && m.method === method
const isStatus = (status: number, method = 'INVITE') => (m: SipMessage) => !m.isRequest && m.status === status && m.cseq.method === method

t.test('a call through the edge: SDP anchored both ways, BYE deletes the session, nothing internal reaches the phone', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-call-1'
  phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  const fwd = sdpAddresses(inv.body)
  t.same(fwd.all, [eng.internal], 'the backend sees rtpengine internal, not the phone')
  t.equal(inv.contentLength, inv.body.length, 'Content-Length rewritten')
  t.match(lines(inv, /^record-route/i)[0], /;sk=/)
  backend.send(reply(inv, 180, 'Ringing', { toTag: 'be1' }), EDGE, edge.port)
  backend.send(reply(inv, 200, 'OK', { toTag: 'be1', sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` }), EDGE, edge.port)
  await phone.next(isStatus(180))
  const ok = await phone.next(isStatus(200))
  t.same(sdpAddresses(ok.body).all, [eng.external], 'the phone sees rtpengine external only')
  t.equal(ok.contentLength, ok.body.length)
  t.same(await media.client.list(media.pool.instances[0]!), [callId], 'one session in rtpengine')
  phone.send(inDialog(phone, ok, 'ACK', 1, callId), EDGE, edge.port)
  await backend.next(isReq('ACK'))
  phone.send(inDialog(phone, ok, 'BYE', 2, callId), EDGE, edge.port)
  const bye = await backend.next(isReq('BYE'))
  backend.send(reply(bye, 200, 'OK'), EDGE, edge.port)
  await phone.next(isStatus(200, 'BYE'))
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(leaks(phone), [], 'no internal address in any byte sent to the phone')
})

t.test('re-INVITE from the backend (hold): offered toward the phone with the external address, answered back', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-reinvite'
  phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  backend.send(reply(inv, 200, 'OK', { toTag: 'be2', sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` }), EDGE, edge.port)
  const ok = await phone.next(isStatus(200))
  phone.send(inDialog(phone, ok, 'ACK', 1, callId), EDGE, edge.port)
  await backend.next(isReq('ACK'))
  // The backend's re-INVITE follows the Record-Route it got (the edge's internal entry).
  const rr = lines(inv, /^record-route\s*:/i)[0]!.replace(/^record-route\s*:\s*/i, '').split(/,\s*(?=<)/)[0]!
  const hold = callerSdp(BACKEND, 41000, 'a=sendonly')
  backend.send([`INVITE sip:alice@${PHONE}:${phone.port} SIP/2.0`, `Via: SIP/2.0/UDP ${BACKEND}:${backend.port};branch=z9hG4bKre1;rport`,
    'Max-Forwards: 70', `From: <sip:bob@${EDGE}>;tag=be2`, `To: <sip:alice@${PHONE}>;tag=ph1`, `Call-ID: ${callId}`, 'CSeq: 10 INVITE',
    `Route: ${rr}`, `Contact: <sip:bob@${BACKEND}:${backend.port}>`, 'Content-Type: application/sdp', `Content-Length: ${hold.length}`, '', hold.toString()].join('\r\n'), EDGE, edge.port)
  const reinv = await phone.next(isReq('INVITE'))
  t.same(sdpAddresses(reinv.body).all, [eng.external], 'the re-offer reaches the phone with the external address')
  t.match(reinv.body.toString(), /a=sendonly/)
  phone.send(reply(reinv, 200, 'OK', { sdp: callerSdp(PHONE, 40000, 'a=recvonly'), contact: `<sip:alice@${PHONE}:${phone.port}>` }), EDGE, edge.port)
  const reok = await backend.next(isStatus(200))
  t.same(sdpAddresses(reok.body).all, [eng.internal], 'the answer reaches the backend with the internal address')
  t.same(await media.client.list(media.pool.instances[0]!), [callId], 'still one session')
  phone.send(inDialog(phone, ok, 'BYE', 2, callId), EDGE, edge.port)
  const bye = await backend.next(isReq('BYE'))
  backend.send(reply(bye, 200, 'OK'), EDGE, edge.port)
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(leaks(phone), [])
})

t.test('CANCEL: the 487 ends the session', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-cancel'
  phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  backend.send(reply(inv, 180, 'Ringing', { toTag: 'be3' }), EDGE, edge.port)
  await phone.next(isStatus(180))
  t.same(await media.client.list(media.pool.instances[0]!), [callId])
  phone.send([`CANCEL sip:bob@${EDGE}:${edge.port} SIP/2.0`, `Via: SIP/2.0/UDP ${PHONE}:${phone.port};branch=z9hG4bK${callId}1;rport`,
    'Max-Forwards: 70', `From: <sip:alice@${PHONE}>;tag=ph1`, `To: <sip:bob@${EDGE}>`, `Call-ID: ${callId}`, 'CSeq: 1 CANCEL', 'Content-Length: 0', '', ''].join('\r\n'), EDGE, edge.port)
  const cancel = await backend.next(isReq('CANCEL'))
  backend.send(reply(cancel, 200, 'OK'), EDGE, edge.port)
  backend.send(reply(inv, 487, 'Request Terminated', { toTag: 'be3' }), EDGE, edge.port)
  await phone.next(isStatus(487))
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(leaks(phone), [])
})

t.test('late offer: SDP first in the 200 (offer toward the phone), answer in the ACK', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-late'
  phone.send(invite(phone, edge.port, callId), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  t.equal(inv.body.length, 0)
  backend.send(reply(inv, 200, 'OK', { toTag: 'be4', sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` }), EDGE, edge.port)
  const ok = await phone.next(isStatus(200))
  t.same(sdpAddresses(ok.body).all, [eng.external], 'the 2xx offer reaches the phone with the external address')
  phone.send(inDialog(phone, ok, 'ACK', 1, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const ack = await backend.next(isReq('ACK'))
  t.same(sdpAddresses(ack.body).all, [eng.internal], 'the ACK answer reaches the backend with the internal address')
  t.equal(ack.contentLength, ack.body.length)
  phone.send(inDialog(phone, ok, 'BYE', 2, callId), EDGE, edge.port)
  const bye = await backend.next(isReq('BYE'))
  backend.send(reply(bye, 200, 'OK'), EDGE, edge.port)
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(leaks(phone), [])
})

t.test('no rtpengine answering: 503 to the caller, nothing forwarded, nothing leaked', async (t) => {
  const silent = await rawUdp(t, '127.0.0.1')
  const { backend, phone, edge } = await setup(t, { rtpengine: `udp:127.0.0.1:${silent.socket.address().port}`, timeoutMs: 200 })
  phone.send(invite(phone, edge.port, 'pm-down', callerSdp(PHONE, 40000)), EDGE, edge.port)
  await phone.next(isStatus(100))
  const r = await phone.next((m) => !m.isRequest && m.status >= 300)
  t.equal(r.status, 503)
  t.equal(backend.received.length, 0, 'the INVITE never reached the backend')
  t.same(leaks(phone), [])
})
