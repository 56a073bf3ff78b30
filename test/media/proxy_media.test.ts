// Calls through the edge with media anchored in a real rtpengine: raw UDP phone and backend, so every
// byte the edge sends to the phone can be checked for internal addresses, bodies included.
import t, { type Test } from 'tap'
import { createSocket } from 'node:dgram'
import { createMedia } from '../../src/media/index.js'
import { validateMediaConfig } from '../../src/config/index.js'
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
  const cfg = validateMediaConfig({ mode: 'anchor', rtpengine: [o.rtpengine ?? eng.spec], timeoutMs: o.timeoutMs ?? 1000, retransmitMs: 50, ping: { intervalMs: 500, timeoutMs: 300 } })
  t.same(cfg.errors, [])
  const media = createMedia(cfg.config!)
  await media.start()
  t.teardown(() => media.stop())
  const backend = await rawUdp(t, BACKEND)
  const phone = await rawUdp(t, PHONE)
  const edge = await startEdge(t, EDGE, { backends: [`sip:${BACKEND}:${backend.port}`], mediaAnchor: media })
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

/** Internal addresses that must never reach the phone: backends (127.0.1.x) and rtpengine internal (127.0.2.x). */
function leaks(phone: RawUdp): string[] {
  return phone.received.map((m) => m.buf.toString('latin1', m.start, m.end)).filter((s) => /127\.0\.[12]\./.test(s))
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
  const id = media.pool.instances[0]!.id
  t.equal(edge.edge.proxy.dialogs.page(0, 10).items[0]?.media, id, 'the dialog names its rtpengine')
  const text = await edge.edge.metrics.metrics()
  t.match(text, new RegExp(`sipedge_media_sessions\\{instance="${id}",address="${eng.spec}"\\} 1`), 'edge /metrics: one anchored session')
  t.match(text, new RegExp(`sipedge_media_ng_seconds_count\\{instance="${id}",command="offer"\\} 1`))
  t.match(text, new RegExp(`sipedge_media_ng_seconds_count\\{instance="${id}",command="answer"\\} 1`))
  phone.send(inDialog(phone, ok, 'ACK', 1, callId), EDGE, edge.port)
  await backend.next(isReq('ACK'))
  phone.send(inDialog(phone, ok, 'BYE', 2, callId), EDGE, edge.port)
  const bye = await backend.next(isReq('BYE'))
  backend.send(reply(bye, 200, 'OK'), EDGE, edge.port)
  await phone.next(isStatus(200, 'BYE'))
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(leaks(phone), [], 'no internal address in any byte sent to the phone')
})

t.test('re-INVITE from each side (hold from the backend, unhold from the phone), answers back the other way', async (t) => {
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
  // Unhold from the phone side: the re-offer goes the other way.
  phone.send(inDialog(phone, ok, 'INVITE', 3, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const unhold = await backend.next((m) => isReq('INVITE')(m) && m.cseq.seq === 3)
  t.same(sdpAddresses(unhold.body).all, [eng.internal], 're-offer from the phone reaches the backend with the internal address')
  backend.send(reply(unhold, 200, 'OK', { sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` }), EDGE, edge.port)
  const unholdOk = await phone.next((m) => isStatus(200)(m) && m.cseq.seq === 3)
  t.same(sdpAddresses(unholdOk.body).all, [eng.external], 'and its answer reaches the phone with the external address')
  phone.send(inDialog(phone, ok, 'ACK', 3, callId), EDGE, edge.port)
  phone.send(inDialog(phone, ok, 'BYE', 4, callId), EDGE, edge.port)
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

/** The first request matching `pred` on any of the endpoints. */
async function firstOf(eps: RawUdp[], pred: (m: SipMessage) => boolean): Promise<{ ep: RawUdp; m: SipMessage }> {
  const found = await waitFor(() => {
    for (const ep of eps) { const m = ep.received.find(pred); if (m) return { ep, m } }
    return undefined
  }, { what: 'a request on one of the backends', timeoutMs: 3000 })
  return found!
}

t.test('failover: one offer serves both branches; retransmitted INVITE is absorbed; RTP flows through rtpengine', async (t) => {
  // Pings only at start (a long interval): the NG datagrams counted below are the call's commands alone.
  const cfg = validateMediaConfig({ mode: 'anchor', rtpengine: [eng.spec], ping: { intervalMs: 600_000 } })
  const media = createMedia(cfg.config!)
  await media.start()
  t.teardown(() => media.stop())
  await waitFor(() => media.client.stats.sent >= 1 && media.client.stats.pending === 0, { what: 'first ping answered', timeoutMs: 3000 })
  const b1 = await rawUdp(t, '127.0.1.8')
  const b2 = await rawUdp(t, '127.0.1.9')
  const phone = await rawUdp(t, PHONE)
  const edge = await startEdge(t, '127.0.5.2', {
    backends: [`sip:127.0.1.8:${b1.port}`, `sip:127.0.1.9:${b2.port}`], failover: { maxTries: 2, inviteTimeoutMs: 2000, codes: [503] },
    mediaAnchor: { anchor: media.anchor },
  })
  const callId = 'pm-failover'
  const text = invite(phone, edge.port, callId, callerSdp(PHONE, 0)).replaceAll(`${EDGE}:`, `127.0.5.2:`)
  // The phone's real RTP socket: its port goes into the SDP.
  const rtpPhone = createSocket('udp4')
  await new Promise<void>((r) => rtpPhone.bind(0, PHONE, r))
  t.teardown(() => rtpPhone.close())
  const phoneGot: string[] = []
  rtpPhone.on('message', (_m, r) => phoneGot.push(`${r.address}:${r.port}`))
  const withPort = text.replace('m=audio 0 ', `m=audio ${rtpPhone.address().port} `).replace('a=rtcp:1', `a=rtcp:${rtpPhone.address().port + 1}`)
  const sent0 = media.client.stats.sent
  phone.send(withPort, '127.0.5.2', edge.port)
  phone.send(withPort, '127.0.5.2', edge.port) // a retransmission while the offer is out
  const first = await firstOf([b1, b2], isReq('INVITE'))
  first.ep.send(reply(first.m, 503, 'Service Unavailable', { toTag: 'x1' }), '127.0.5.2', edge.port)
  const other = first.ep === b1 ? b2 : b1
  const second = await other.next(isReq('INVITE'))
  t.equal(second.body.toString(), first.m.body.toString(), 'the second backend gets the same anchored SDP')
  t.equal(media.client.stats.sent - sent0, 1, 'one offer for the retransmitted INVITE and both branches')
  t.equal(first.ep.received.filter(isReq('INVITE')).length, 1, 'the retransmission was absorbed')
  const rtpBackend = createSocket('udp4')
  const backendHost = other === b1 ? '127.0.1.8' : '127.0.1.9'
  await new Promise<void>((r) => rtpBackend.bind(0, backendHost, r))
  t.teardown(() => rtpBackend.close())
  const backendGot: string[] = []
  rtpBackend.on('message', (_m, r) => backendGot.push(`${r.address}:${r.port}`))
  other.send(reply(second, 200, 'OK', { toTag: 'x2', sdp: callerSdp(backendHost, rtpBackend.address().port), contact: `<sip:bob@${backendHost}:${other.port}>` }), '127.0.5.2', edge.port)
  const ok = await phone.next(isStatus(200))
  const toEngineExternal = Number(/m=audio (\d+)/.exec(ok.body.toString())![1])
  const toEngineInternal = Number(/m=audio (\d+)/.exec(second.body.toString())![1])
  const pkt = (seq: number) => { const b = Buffer.alloc(172, 0xd5); b[0] = 0x80; b.writeUInt16BE(seq, 2); b.writeUInt32BE(seq * 160, 4); b.writeUInt32BE(0x4444 + (seq & 1), 8); return b }
  for (let i = 1; i <= 20; i++) {
    rtpPhone.send(pkt(2 * i), toEngineExternal, eng.external)
    rtpBackend.send(pkt(2 * i + 1), toEngineInternal, eng.internal)
    await new Promise((r) => setTimeout(r, 5))
  }
  await waitFor(() => phoneGot.length >= 15 && backendGot.length >= 15, { what: 'RTP both ways', timeoutMs: 3000 })
  t.ok(phoneGot.every((a) => a === `${eng.external}:${toEngineExternal}`), 'the phone gets RTP from rtpengine external only')
  t.ok(backendGot.every((a) => a === `${eng.internal}:${toEngineInternal}`), 'the backend gets RTP from rtpengine internal only')
  t.comment(`RTP through the anchored call: phone got ${phoneGot.length}/20, backend got ${backendGot.length}/20`)
  t.same(await media.client.list(media.pool.instances[0]!), [callId])
  phone.send(inDialog(phone, ok, 'BYE', 2, callId), '127.0.5.2', edge.port)
  const bye = await other.next(isReq('BYE'))
  other.send(reply(bye, 200, 'OK'), '127.0.5.2', edge.port)
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.same(phone.received.map((m) => m.buf.toString('latin1', m.start, m.end)).filter((s) => /127\.0\.1\.[89]|127\.0\.2\./.test(s)), [])
})

t.test('outbound call from a backend to the trunk; after an edge restart the BYE still deletes on the right instance', async (t) => {
  const eng2 = await startRtpengine({ t, n: 6 })
  const mk = async () => {
    const m = createMedia(validateMediaConfig({ mode: 'anchor', rtpengine: [`${eng.spec};weight=0`, eng2.spec], ping: { intervalMs: 500, timeoutMs: 300 } }).config!)
    await m.start()
    t.teardown(() => m.stop())
    return m
  }
  const media = await mk()
  const backend = await rawUdp(t, BACKEND)
  const carrier = await rawUdp(t, '127.0.4.9')
  const opts = { backends: [`sip:${BACKEND}:${backend.port}`], trunk: `sip:127.0.4.9:${carrier.port}` }
  const edge = await startEdge(t, '127.0.5.3', { ...opts, mediaAnchor: { anchor: media.anchor } })
  const callId = 'pm-outbound'
  const sdp = callerSdp(BACKEND, 41000)
  backend.send([`INVITE sip:+15550100@127.0.5.3:${edge.port} SIP/2.0`, `Via: SIP/2.0/UDP ${BACKEND}:${backend.port};branch=z9hG4bKout1;rport`,
    'Max-Forwards: 70', `From: <sip:100@${BACKEND}>;tag=ast1`, `To: <sip:+15550100@127.0.5.3>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:100@${BACKEND}:${backend.port}>`, 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp.toString()].join('\r\n'), '127.0.5.3', edge.port)
  const inv = await carrier.next(isReq('INVITE'))
  t.same(sdpAddresses(inv.body).all, [eng2.external], 'the carrier sees rtpengine external (of the weighted instance)')
  carrier.send(reply(inv, 200, 'OK', { toTag: 'car1', sdp: callerSdp('127.0.4.9', 42000), contact: `<sip:+15550100@127.0.4.9:${carrier.port}>` }), '127.0.5.3', edge.port)
  const ok = await backend.next(isStatus(200))
  t.same(sdpAddresses(ok.body).all, [eng2.internal], 'the backend sees rtpengine internal')
  t.same(await media.client.list(media.pool.instances[1]!), [callId])
  t.same(carrier.received.map((m) => m.buf.toString('latin1', m.start, m.end)).filter((s) => s.includes(BACKEND) || s.includes('127.0.2.')), [], 'nothing internal toward the carrier')
  // Restart: a new edge process on the same address, with a fresh media client and pool.
  await edge.edge.stop()
  const media2 = await mk()
  const edge2 = await startEdge(t, '127.0.5.3', { ...opts, mediaAnchor: { anchor: media2.anchor } }, edge.port)
  const rr = lines(ok, /^record-route\s*:/i).map((l) => l.replace(/^record-route\s*:\s*/i, ''))
  const bye = [`BYE sip:+15550100@127.0.4.9:${carrier.port} SIP/2.0`, `Via: SIP/2.0/UDP ${BACKEND}:${backend.port};branch=z9hG4bKout2;rport`,
    'Max-Forwards: 70', `From: <sip:100@${BACKEND}>;tag=ast1`, `To: <sip:+15550100@127.0.5.3>;tag=car1`, `Call-ID: ${callId}`, 'CSeq: 2 BYE',
    ...rr.map((r) => `Route: ${r}`), 'Content-Length: 0', '', ''].join('\r\n')
  backend.send(bye, '127.0.5.3', edge2.port)
  const byeOut = await carrier.next(isReq('BYE'))
  carrier.send(reply(byeOut, 200, 'OK'), '127.0.5.3', edge2.port)
  await waitFor(async () => (await media2.client.list(media2.pool.instances[1]!)).length === 0, { what: 'session deleted after restart', timeoutMs: 2000 })
  t.same(await media2.client.list(media2.pool.instances[0]!), [], 'nothing on the other instance either')
})

t.test('rtpengine instances killed: new calls move to the live one; with none left, 503 and nothing leaked', async (t) => {
  const a = await startRtpengine({ t, n: 7 })
  const b = await startRtpengine({ t, n: 8 })
  const media = createMedia(validateMediaConfig({
    mode: 'anchor', rtpengine: [`${a.spec};weight=100`, b.spec], timeoutMs: 200, retransmitMs: 50,
    ping: { intervalMs: 100, timeoutMs: 90, failThreshold: 2, okThreshold: 1 },
  }).config!)
  await media.start()
  t.teardown(() => media.stop())
  const [ia, ib] = media.pool.instances
  await waitFor(() => ia!.health === 'up' && ib!.health === 'up', { what: 'both up', timeoutMs: 3000 })
  const backend = await rawUdp(t, BACKEND)
  const phone = await rawUdp(t, PHONE)
  const edge = await startEdge(t, '127.0.5.4', { backends: [`sip:${BACKEND}:${backend.port}`], mediaAnchor: { anchor: media.anchor } })
  const call = async (callId: string) => {
    phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)).replaceAll(`${EDGE}:`, '127.0.5.4:'), '127.0.5.4', edge.port)
    return Promise.race([
      backend.next((m) => isReq('INVITE')(m) && m.callId === callId).then((m) => ({ forwarded: m })),
      phone.next((m) => !m.isRequest && m.callId === callId && m.status >= 300).then((m) => ({ failed: m })),
    ])
  }
  const r1 = await call('pm-kill-1')
  t.ok('forwarded' in r1 && sdpAddresses(r1.forwarded.body).all[0] === a.internal, 'first call on the weighted instance')
  a.kill('SIGKILL')
  await waitFor(() => ia!.health === 'down', { what: 'instance a down', timeoutMs: 3000 })
  const r2 = await call('pm-kill-2')
  t.ok('forwarded' in r2 && sdpAddresses(r2.forwarded.body).all[0] === b.internal, 'next call on the live instance')
  b.kill('SIGKILL')
  await waitFor(() => ib!.health === 'down', { what: 'instance b down', timeoutMs: 3000 })
  const r3 = await call('pm-kill-3')
  t.ok('failed' in r3 && r3.failed.status === 503, 'no instance left: 503')
  t.equal(backend.received.filter((m) => m.callId === 'pm-kill-3').length, 0, 'that INVITE never reached the backend')
  t.same(leaks(phone), [])
})

t.test('added latency: INVITE from the phone to the backend, anchored vs plain (sequential calls)', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const plainBackend = await rawUdp(t, '127.0.1.10')
  const plain = await startEdge(t, '127.0.5.5', { backends: [`sip:127.0.1.10:${plainBackend.port}`] })
  const measure = async (to: { host: string; port: number }, be: RawUdp, tag: string) => {
    const ms: number[] = []
    for (let i = 0; i < 30; i++) {
      const callId = `lat-${tag}-${i}`
      const text = invite(phone, to.port, callId, callerSdp(PHONE, 40000)).replaceAll(`${EDGE}:`, `${to.host}:`)
      const t0 = performance.now()
      phone.send(text, to.host, to.port)
      const inv = await be.next((m) => isReq('INVITE')(m) && m.callId === callId)
      ms.push(performance.now() - t0)
      be.send(reply(inv, 486, 'Busy Here', { toTag: 'busy' }), to.host, to.port)
      await phone.next((m) => isStatus(486)(m) && m.callId === callId)
      // Let the 486's delete finish: rtpengine serves a delete's teardown before the next offer (measured
      // apart: an offer racing a delete takes ~3 ms instead of ~0.6 ms).
      if (be === backend) await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'deleted', timeoutMs: 2000 })
    }
    return ms.sort((a, b) => a - b)[15]!
  }
  const anchored = await measure({ host: EDGE, port: edge.port }, backend, 'a')
  const direct = await measure({ host: '127.0.5.5', port: plain.port }, plainBackend, 'p')
  t.comment(`INVITE phone->backend median: anchored ${anchored.toFixed(3)} ms, plain ${direct.toFixed(3)} ms, added ${(anchored - direct).toFixed(3)} ms`)
  t.ok(anchored < 100, 'anchoring adds a round trip, not more')
  for (const c of media.stats.commands()) t.comment(`NG ${c.command}: ${c.count} commands, mean ${(c.sumMs / c.count).toFixed(3)} ms`)
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!, 100)).length === 0, { what: 'every busy call deleted', timeoutMs: 2000 })
})

t.test('answer not anchored under reject: the caller gets 503, the edge ACKs and BYEs the answered backend', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-answer-fail'
  phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  // rtpengine loses the call between offer and answer (e.g. restarted): the answer gets an error.
  await media.client.delete(media.pool.instances[0]!, { 'call-id': callId })
  const ok = reply(inv, 200, 'OK', { toTag: 'be9', sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` })
  backend.send(ok, EDGE, edge.port)
  const failed = await phone.next((m) => !m.isRequest && m.status >= 300)
  t.equal(failed.status, 503, 'the caller gets 503, not the unanchored 2xx')
  const ack = await backend.next(isReq('ACK'))
  const bye = await backend.next(isReq('BYE'))
  t.match(ack.buf.toString('latin1', ack.start, ack.end), new RegExp(`^ACK sip:bob@${BACKEND.replaceAll('.', '\\.')}:${backend.port} SIP/2\\.0\\r\\n`))
  t.equal(bye.toTag, 'be9')
  t.equal(bye.cseq.seq, 2)
  backend.send(reply(bye, 200, 'OK'), EDGE, edge.port)
  backend.send(ok, EDGE, edge.port) // a retransmitted 2xx: ACKed again, no second BYE
  await backend.next(isReq('ACK'))
  await new Promise((r) => setTimeout(r, 100))
  t.equal(backend.received.filter(isReq('BYE')).length, 1, 'one BYE')
  t.equal(phone.received.filter((m) => !m.isRequest && m.status === 200).length, 0, 'no 200 ever reached the phone')
  t.same(leaks(phone), [])
  t.same(await media.client.list(media.pool.instances[0]!), [])
})

t.test('a BYE without the Route set (client ignoring Record-Route) still deletes, from the dialog cache', async (t) => {
  const { media, backend, phone, edge } = await setup(t)
  const callId = 'pm-noroute'
  phone.send(invite(phone, edge.port, callId, callerSdp(PHONE, 40000)), EDGE, edge.port)
  const inv = await backend.next(isReq('INVITE'))
  backend.send(reply(inv, 200, 'OK', { toTag: 'be5', sdp: callerSdp(BACKEND, 41000), contact: `<sip:bob@${BACKEND}:${backend.port}>` }), EDGE, edge.port)
  const ok = await phone.next(isStatus(200))
  phone.send(inDialog(phone, ok, 'ACK', 1, callId), EDGE, edge.port)
  await backend.next(isReq('ACK'))
  const bye = inDialog(phone, ok, 'BYE', 2, callId).split('\r\n').filter((l) => !/^Route:/i.test(l)).join('\r\n')
  phone.send(bye, EDGE, edge.port)
  const fwd = await backend.next(isReq('BYE'))
  backend.send(reply(fwd, 200, 'OK'), EDGE, edge.port)
  await waitFor(async () => (await media.client.list(media.pool.instances[0]!)).length === 0, { what: 'session deleted', timeoutMs: 2000 })
  t.pass('deleted')
})
