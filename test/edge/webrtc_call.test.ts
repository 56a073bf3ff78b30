// A real WebRTC call through the edge: Debian's chromium (headless, fake microphone) loads the example
// softphone (examples/webrtc, SIP.js) from the edge's admin server, registers over WSS, and calls a plain-RTP
// peer behind the edge (the stand-in for an Asterisk) with a real rtpengine anchoring the media. rtpengine
// speaks ICE + DTLS-SRTP + rtcp-mux toward the browser and RTP/AVP toward the peer, which echoes RTP back.
// Runs inside test/netns.sh: only loopback exists, so Chrome's candidates are 127.x and no STUN is needed.
import { existsSync } from 'node:fs'
import t from 'tap'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { NgClient } from '../../src/media/ng_client.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { startEdge } from '../helpers/edge.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { startRtpPeer, type RtpPeer } from '../helpers/rtp_peer.js'
import { makePki } from '../transport/fixtures/certs.js'

const CHROMIUM = process.env.SIPEDGE_CHROMIUM ?? '/usr/bin/chromium'
const EDGE = '127.0.14.1'
const PEER = '127.0.14.22'
/** Where the screenshot of the page in a call goes (not committed). */
const SHOT = process.env.SIPEDGE_WEBRTC_SHOT ?? '/tmp/webrtc-call.png'

interface PageState { registered: boolean; state: string; pc: string | undefined; sent: number; received: number; remoteSdp: string; log: string[] }

async function pageState(page: Page): Promise<PageState> {
  return page.evaluate(async () => {
    const p = (window as unknown as { phone?: Record<string, any> }).phone
    if (p === undefined) return { registered: false, state: 'loading', pc: undefined, sent: 0, received: 0, remoteSdp: '', log: [] }
    const s = await p['stats']()
    return { registered: p['registered'], state: p['state'], pc: p['pc']?.connectionState, sent: s.sent, received: s.received, remoteSdp: p['pc']?.remoteDescription?.sdp ?? '', log: p['log'] }
  })
}

async function until(page: Page, what: string, ok: (s: PageState) => boolean, timeoutMs = 20_000): Promise<PageState> {
  let last: PageState | undefined
  try {
    await waitFor(async () => ok((last = await pageState(page))), { what, timeoutMs, intervalMs: 200 })
  } catch (err) {
    throw new Error(`${(err as Error).message}; page: ${JSON.stringify({ ...last, remoteSdp: undefined })}`)
  }
  return last!
}

/** The calls rtpengine holds, asked over its NG port by a client of the test's own. */
async function sessionsOn(ng: NgClient, eng: RtpengineHandle): Promise<string[]> {
  return ng.list({ host: eng.host, port: eng.ngPort })
}

if (!existsSync(CHROMIUM)) t.fail(`chromium is not installed at ${CHROMIUM} (apt-get install chromium)`)
else {
  const pki = makePki()
  t.teardown(() => pki.cleanup())
  let eng: RtpengineHandle
  const ng = new NgClient({ retransmitMs: 100, timeoutMs: 1000 })
  let peer: RtpPeer
  let browser: Browser
  let page: Page
  let edgePort: number

  t.before(async () => {
    eng = await startRtpengine({ t, n: 16 })
    await ng.start()
    t.teardown(() => ng.close())
    peer = await startRtpPeer(t, PEER)
    edgePort = await freePort(EDGE)
    const wssPort = await freeTcpPort(EDGE)
    const adminPort = await freeTcpPort(EDGE)
    const origin = `http://${EDGE}:${adminPort}`
    await startEdge(t, EDGE, {
      listen: [`udp:${EDGE}:${edgePort}`, `wss:${EDGE}:${wssPort} path /ws`],
      backends: [`sip:${PEER}:${peer.sip.port}`],
      tls: { certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, handshakeTimeoutMs: 10_000 },
      ws: { allowedOrigins: [origin], maxConnectionsPerSource: 100, pingIntervalMs: 30_000 },
      admin: `${EDGE}:${adminPort}`,
      adminWebrtcPage: '/phone/',
      media: { mode: 'anchor', rtpengine: [eng.spec] },
    }, edgePort)
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
        // A fake microphone (a beep) with the permission prompt answered, loopback ICE candidates allowed,
        // audio playing without a click; the test certificate names 127.0.0.1, not this address.
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection',
        '--autoplay-policy=no-user-gesture-required', '--ignore-certificate-errors',
      ],
    })
    t.teardown(() => browser.close())
    page = await browser.newPage()
    // The page's console (SIP.js logs every message) on stderr when asked.
    if (process.env.SIPEDGE_TEST_PAGE_LOG) page.on('console', (m) => console.error('PAGE', m.text().slice(0, 1500)))
    await page.setViewport({ width: 640, height: 480 })
    const q = new URLSearchParams({ server: `wss://${EDGE}:${wssPort}/ws`, aor: `sip:agent1@${EDGE}:${edgePort}`, target: `sip:echo@${EDGE}:${edgePort}`, autoregister: '1', autoanswer: '1' })
    await page.goto(`${origin}/phone/?${q}`)
  })

  t.test('the example page, served by the admin server, registers over WSS through the edge (Path added)', async (t) => {
    const s = await until(page, 'registered', (s) => s.registered)
    t.ok(s.registered, 'SIP.js found its own Contact in the 200')
    t.match(peer.registration?.path[0] ?? '', new RegExp(`^<sip:${EDGE.replaceAll('.', '\\.')}:${edgePort};lr;`), "the registrar got the edge's Path entry")
    t.match(peer.registration?.contact ?? '', /@[a-z0-9]+\.invalid;transport=ws>/, "and the browser's Contact as it wrote it")
  })

  t.test('the browser calls the plain-RTP peer: ICE/DTLS connected, RTP both ways, BYE ends the rtpengine session', async (t) => {
    await page.evaluate(() => (window as unknown as { phone: { call(): Promise<void> } }).phone.call())
    let s = await until(page, 'the call is confirmed', (s) => s.state === 'in-call')
    s = await until(page, 'connectionState connected', (s) => s.pc === 'connected')
    t.equal(s.pc, 'connected', 'RTCPeerConnection.connectionState is connected')
    // The peer behind the edge saw what an Asterisk without any WebRTC setting expects.
    const offer = peer.sdps[peer.sdps.length - 1] ?? ''
    t.match(offer, /^m=audio \d+ RTP\/AVP /m, 'the peer gets RTP/AVP')
    t.match(offer, new RegExp(`^c=IN IP4 ${eng.internal.replaceAll('.', '\\.')}\\r?$`, 'm'), "on rtpengine's internal address")
    t.notMatch(offer, /a=(ice-ufrag|candidate|fingerprint|rtcp-mux|crypto)/, 'with no ICE, DTLS, SDES or rtcp-mux')
    t.match(s.remoteSdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m, 'the browser gets DTLS-SRTP')
    t.match(s.remoteSdp, new RegExp(`a=candidate:.* ${eng.external.replaceAll('.', '\\.')} `), "with ICE candidates on rtpengine's external address")
    t.match(s.remoteSdp, /^a=rtcp-mux/m, 'and rtcp-mux')
    s = await until(page, 'RTP both ways', (s) => s.sent >= 100 && s.received >= 100)
    await page.screenshot({ path: SHOT })
    t.ok(peer.rtp.received >= 100 && peer.rtp.sent >= 100, `the peer received ${peer.rtp.received} and echoed ${peer.rtp.sent} RTP packets`)
    t.ok(s.received >= 100, `the browser sent ${s.sent} and received ${s.received} RTP packets`)
    t.equal((await sessionsOn(ng, eng)).length, 1, 'one rtpengine session during the call')
    await page.evaluate(() => (window as unknown as { phone: { hangup(): Promise<void> } }).phone.hangup())
    await peer.sip.next((m) => m.isRequest && m.method === 'BYE', 5000)
    await until(page, 'the call ended', (s) => s.state === 'ended')
    await waitFor(async () => (await sessionsOn(ng, eng)).length === 0, { what: 'no rtpengine session left', timeoutMs: 5000 })
    const after = peer.rtp.received
    await new Promise((r) => setTimeout(r, 500))
    t.equal(peer.rtp.received, after, 'no RTP reaches the peer after the BYE')
  })
  t.test('the peer calls the registered browser through its Path: it answers, ICE/DTLS connected, RTP both ways, the peer hangs up', async (t) => {
    const before = { ...peer.rtp }
    const call = await peer.call('600')
    t.equal(call.ok.status, 200, 'the browser answered')
    const answer = peer.sdps[peer.sdps.length - 1] ?? ''
    t.match(answer, /^m=audio \d+ RTP\/AVP /m, "the browser's answer reaches the peer as RTP/AVP")
    t.notMatch(answer, /a=(ice-ufrag|candidate|fingerprint|rtcp-mux|crypto)/, 'with no ICE, DTLS, SDES or rtcp-mux')
    let s = await until(page, 'connectionState connected', (s) => s.state === 'in-call' && s.pc === 'connected')
    t.match(s.remoteSdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m, 'the browser was offered DTLS-SRTP')
    s = await until(page, 'RTP both ways', (s) => s.sent >= 100 && s.received >= 100)
    const rx = peer.rtp.received - before.received
    const tx = peer.rtp.sent - before.sent
    t.ok(rx >= 100 && tx >= 100, `the peer received ${rx} and echoed ${tx} RTP packets`)
    t.ok(s.received >= 100, `the browser sent ${s.sent} and received ${s.received} RTP packets`)
    t.equal((await sessionsOn(ng, eng)).length, 1, 'one rtpengine session during the call')
    const byeOk = await call.bye()
    t.equal(byeOk.status, 200, "the browser's 200 to the BYE reaches the peer")
    await until(page, 'the call ended', (s) => s.state === 'ended')
    await waitFor(async () => (await sessionsOn(ng, eng)).length === 0, { what: 'no rtpengine session left', timeoutMs: 5000 })
    t.pass('no rtpengine session left')
  })
}
