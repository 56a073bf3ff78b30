// WebRTC toward browsers, plain RTP toward the other end (real rtpengine): the SDP rtpengine produces for each
// end when one end of the call is SIP over WebSocket. A browser offers UDP/TLS/RTP/SAVPF with ICE, DTLS
// fingerprint and rtcp-mux; Asterisk's plain endpoint must get RTP/AVP without ICE or crypto, and its plain
// answer must reach the browser as WebRTC again.
import t, { type Test } from 'tap'
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
