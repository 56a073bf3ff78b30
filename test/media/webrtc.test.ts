// WebRTC toward browsers, plain RTP toward the other end (real rtpengine): the SDP rtpengine produces for each
// end when one end of the call is SIP over WebSocket. A browser offers UDP/TLS/RTP/SAVPF with ICE, DTLS
// fingerprint and rtcp-mux; Asterisk's plain endpoint must get RTP/AVP without ICE or crypto, and its plain
// answer must reach the browser as WebRTC again.
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { createEdge } from '../../src/edge/edge.js'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { freeTcpPort, freeUdpPort, waitFor } from '../helpers/net.js'
import { rawUdp } from '../helpers/udp.js'
import { MediaAnchor, type WebrtcEnds } from '../../src/media/anchor.js'
import { NgClient } from '../../src/media/ng_client.js'
import { RtpenginePool } from '../../src/media/rtpengine_pool.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { callerSdp, sdpAddresses } from '../helpers/media.js'

let e1: RtpengineHandle
t.before(async () => {
  e1 = await startRtpengine({ t, n: 1 })
})

const BROWSER = '127.0.4.9'
const BACKEND = '127.0.1.7'
const FROM_BROWSER: WebrtcEnds = { from: true, to: false }
const TO_BROWSER: WebrtcEnds = { from: false, to: true }

/** What Chrome offers: one audio m-line, ICE, DTLS-SRTP (actpass), AVPF, rtcp-mux. */
function browserSdp(ip: string, port: number, setup = 'actpass'): Buffer {
  return Buffer.from([
    'v=0', `o=- 4611731400430051336 2 IN IP4 ${ip}`, 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
    `m=audio ${port} UDP/TLS/RTP/SAVPF 111 0 8`, `c=IN IP4 ${ip}`, `a=rtcp:${port} IN IP4 ${ip}`,
    `a=candidate:1 1 udp 2122260223 ${ip} ${port} typ host generation 0`,
    'a=ice-ufrag:Xq1e', 'a=ice-pwd:0123456789abcdefghijklmn', 'a=ice-options:trickle',
    'a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF',
    `a=setup:${setup}`, 'a=mid:0', 'a=sendrecv', 'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000',
  ].join('\r\n') + '\r\n')
}

function setup(t: Test) {
  const client = new NgClient({ retransmitMs: 50, timeoutMs: 500 })
  t.teardown(() => client.close())
  const pool = new RtpenginePool(client, [e1.spec])
  return { client, anchor: new MediaAnchor({ client, pool }) }
}

const plainToward = (t: Test, sdp: string, what: string) => {
  t.match(sdp, /^m=audio \d+ RTP\/AVP /m, `${what}: RTP/AVP`)
  t.notMatch(sdp, /a=candidate|a=ice-ufrag|a=ice-pwd/, `${what}: no ICE`)
  t.notMatch(sdp, /a=fingerprint|a=setup|a=crypto/, `${what}: no DTLS or SDES crypto`)
  t.notMatch(sdp, /a=rtcp-mux/, `${what}: RTCP on its own port (demuxed)`)
}
const webrtcToward = (t: Test, sdp: string, what: string) => {
  t.match(sdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m, `${what}: UDP/TLS/RTP/SAVPF`)
  t.match(sdp, /a=ice-ufrag:/, `${what}: ICE credentials`)
  t.match(sdp, new RegExp(`a=candidate:\\S+ 1 UDP \\d+ ${e1.external.replace(/\./g, '\\.')} \\d+ typ host`), `${what}: a host candidate on the external interface`)
  t.match(sdp, /a=fingerprint:sha-\d+ /, `${what}: DTLS fingerprint`)
  t.match(sdp, /a=rtcp-mux/, `${what}: rtcp-mux`)
}

t.test('a browser calls a backend: RTP/AVP without ICE or crypto toward the backend, WebRTC back toward the browser', async (t) => {
  const { client, anchor } = setup(t)
  const call = { callId: 'webrtc-in', offererTag: 'browser' }
  const off = await anchor.offer(call, 'public', 'internal', browserSdp(BROWSER, 50000), { webrtc: FROM_BROWSER })
  if (off.action !== 'anchored') return t.fail(off.reason)
  const toBackend = off.sdp.toString()
  plainToward(t, toBackend, 'offer toward the backend')
  t.same(sdpAddresses(toBackend).all, [e1.internal], 'toward the backend: only the internal interface')
  const ans = await anchor.answer({ ...call, answererTag: 'asterisk' }, 'internal', 'public', callerSdp(BACKEND, 41000), off.instance, { webrtc: TO_BROWSER })
  if (ans.action !== 'anchored') return t.fail(ans.reason)
  const toBrowser = ans.sdp.toString()
  webrtcToward(t, toBrowser, 'answer toward the browser')
  // rtpengine's default: it answers a browser's actpass as the active DTLS end and starts the handshake.
  t.match(toBrowser, /a=setup:active/, 'answer toward the browser: a=setup:active (rtpengine starts DTLS)')
  t.same(sdpAddresses(toBrowser).all, [e1.external], 'toward the browser: only the external interface')
  await anchor.delete(call, off.instance)
  t.same(await client.list({ host: e1.host, port: e1.ngPort }, 100), [], 'no session left')
})

t.test('a backend calls a browser (re-INVITE or call out): WebRTC offer toward the browser, plain answer back', async (t) => {
  const { client, anchor } = setup(t)
  const call = { callId: 'webrtc-out', offererTag: 'asterisk' }
  const off = await anchor.offer(call, 'internal', 'public', callerSdp(BACKEND, 41000), { webrtc: TO_BROWSER })
  if (off.action !== 'anchored') return t.fail(off.reason)
  const toBrowser = off.sdp.toString()
  webrtcToward(t, toBrowser, 'offer toward the browser')
  t.match(toBrowser, /a=setup:actpass/, 'the edge offers DTLS actpass: the browser picks its role')
  t.same(sdpAddresses(toBrowser).all, [e1.external], 'toward the browser: only the external interface')
  const ans = await anchor.answer({ ...call, answererTag: 'browser' }, 'public', 'internal', browserSdp(BROWSER, 50000, 'active'), off.instance, { webrtc: FROM_BROWSER })
  if (ans.action !== 'anchored') return t.fail(ans.reason)
  plainToward(t, ans.sdp.toString(), 'answer toward the backend')
  t.same(sdpAddresses(ans.sdp).all, [e1.internal], 'toward the backend: only the internal interface')
  await anchor.delete(call, off.instance)
  t.same(await client.list({ host: e1.host, port: e1.ngPort }, 100), [], 'no session left')
})

t.test('a call without browsers keeps its profile: plain RTP/AVP both ways, only ICE removed toward the backend', async (t) => {
  const { client, anchor } = setup(t)
  const call = { callId: 'plain', offererTag: 'phone' }
  const off = await anchor.offer(call, 'public', 'internal', callerSdp(BROWSER, 40000, 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR'))
  if (off.action !== 'anchored') return t.fail(off.reason)
  t.match(off.sdp.toString(), /a=crypto:/, 'SDES kept when no browser is in the call')
  await anchor.delete(call, off.instance)
  t.same(await client.list({ host: e1.host, port: e1.ngPort }, 100), [], 'no session left')
})

t.test('through the edge: a WebSocket client\'s call is WebRTC on its side and plain RTP toward the UDP backend', async (t) => {
  const EDGE = '127.0.6.21'
  const BACKEND_UDP = '127.0.1.61'
  const [port, wsPort] = [await freeUdpPort(EDGE), await freeTcpPort(EDGE)]
  const backend = await rawUdp(t, BACKEND_UDP)
  // The edge owns its media from config: the library takes the same `media` section as the file.
  const edge = await createEdge({
    listen: [`udp:${EDGE}:${port}`, `ws:${EDGE}:${wsPort}`], backends: [`sip:${BACKEND_UDP}:${backend.port}`],
    probe: { enabled: false }, logLevel: 'silent', media: { mode: 'anchor', rtpengine: [e1.spec] },
  })
  await edge.start()
  t.teardown(() => edge.stop())
  const ws = new WebSocket(`ws://${EDGE}:${wsPort}/`, ['sip'])
  t.teardown(() => ws.terminate())
  const got: SipMessage[] = []
  ws.on('message', (d: Buffer) => got.push(parseMessage(Buffer.from(d))))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const callId = 'ws-webrtc-call'
  const sdp = browserSdp(BROWSER, 50000).toString('latin1')
  ws.send([`INVITE sip:bob@${EDGE}:${port} SIP/2.0`, `Via: SIP/2.0/WS k3j4.invalid;branch=z9hG4bK-${callId}`, 'Max-Forwards: 70',
    'From: <sip:agent@example.com>;tag=br1', `To: <sip:bob@${EDGE}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    'Contact: <sip:agent@k3j4.invalid;transport=ws>', 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp].join('\r\n'))
  const inv = await backend.next((m) => m.isRequest && m.method === 'INVITE', 5000)
  plainToward(t, inv.body.toString('latin1'), 'INVITE toward the UDP backend')
  t.same(sdpAddresses(inv.body).all, [e1.internal], 'toward the backend: only the internal interface')
  // The backend answers with plain RTP.
  const head = inv.buf.toString('latin1', inv.start, inv.bodyStart).split('\r\n').filter((l) => /^(via|from|call-id|cseq|record-route)\s*:/i.test(l))
  const answer = callerSdp(BACKEND_UDP, 41000).toString('latin1')
  backend.send([`SIP/2.0 200 OK`, ...head, `To: <sip:bob@${EDGE}>;tag=ast1`, `Contact: <sip:bob@${BACKEND_UDP}:${backend.port}>`,
    'Content-Type: application/sdp', `Content-Length: ${answer.length}`, '', answer].join('\r\n'), EDGE, port)
  const ok = await waitFor(() => got.find((m) => !m.isRequest && m.status === 200), { what: '200 over the WebSocket', timeoutMs: 5000 })
  webrtcToward(t, ok.body.toString('latin1'), '200 toward the WebSocket client')
  t.same(sdpAddresses(ok.body).all, [e1.external], 'toward the browser: only the external interface')
  const dialog = edge.proxy.dialogs.page(0, 10).items[0]
  t.ok(dialog?.media, 'the dialog names its rtpengine')
  await anchorDelete(callId)
  async function anchorDelete(id: string) {
    const client = new NgClient({ retransmitMs: 50, timeoutMs: 500 })
    t.teardown(() => client.close())
    t.same(await client.list({ host: e1.host, port: e1.ngPort }, 100), [id], 'one session in rtpengine for the call')
    await client.request({ host: e1.host, port: e1.ngPort }, 'delete', { 'call-id': id })
  }
})
