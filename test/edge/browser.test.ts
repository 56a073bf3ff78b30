// A real browser (Debian's chromium, headless, driven by puppeteer-core: nothing is downloaded) opens a
// secure WebSocket to the edge with subprotocol sip, as a WebRTC softphone does, and sends REGISTER and
// OPTIONS with `.invalid` Via/Contact hosts; the UDP backend's answers must come back into the page.
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import t from 'tap'
import puppeteer, { type Browser } from 'puppeteer-core'
import { freeTcpPort } from '../helpers/net.js'
import { startSecureEdge } from '../helpers/secure-edge.js'
import { makePki } from '../transport/fixtures/certs.js'

const CHROMIUM = process.env.SIPEDGE_CHROMIUM ?? '/usr/bin/chromium'
const EDGE = '127.0.14.1'
const BACKEND = '127.0.14.12'

if (!existsSync(CHROMIUM)) t.fail(`chromium is not installed at ${CHROMIUM} (apt-get install chromium)`)
else {
  const pki = makePki()
  t.teardown(() => pki.cleanup())

  t.test('a headless chromium page registers and sends OPTIONS over WSS through the edge', async (t) => {
    // The page comes from its own origin, which the edge's Origin allow-list names.
    const httpPort = await freeTcpPort(EDGE)
    const origin = `http://${EDGE}:${httpPort}`
    const http = createServer((_req, res) => res.end('<!doctype html><title>agent</title><p>sipedge browser test</p>'))
    await new Promise<void>((r) => http.listen(httpPort, EDGE, r))
    t.teardown(() => http.close())
    const { wssPort, port, backend } = await startSecureEdge(t, {
      host: EDGE, backendHost: BACKEND, certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, allowedOrigins: [origin],
    })
    const browser: Browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // The test certificate names 127.0.0.1 and edge.test, not this address: the browser is told to accept it.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--ignore-certificate-errors'],
    })
    t.teardown(() => browser.close())
    const page = await browser.newPage()
    await page.goto(`${origin}/`)
    const result = await page.evaluate(
      async (url: string, domain: string) => {
        const host = `${Math.random().toString(36).slice(2, 12)}.invalid`
        const msg = (method: string, ruri: string, n: number) =>
          [
            `${method} ${ruri} SIP/2.0`,
            `Via: SIP/2.0/WSS ${host};branch=z9hG4bK${n}${Date.now()}`,
            'Max-Forwards: 70',
            `From: <sip:agent@${domain}>;tag=b${n}`,
            `To: <sip:agent@${domain}>`,
            `Call-ID: browser-${method.toLowerCase()}`,
            `CSeq: ${n} ${method}`,
            `Contact: <sip:agent@${host};transport=ws>;expires=600`,
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n')
        const ws = new WebSocket(url, 'sip')
        const got: string[] = []
        await new Promise<void>((resolve, reject) => {
          ws.onopen = () => resolve()
          ws.onerror = () => reject(new Error('WebSocket failed to open'))
        })
        const done = new Promise<void>((resolve) => {
          ws.onmessage = (ev) => {
            got.push(String(ev.data))
            if (got.length === 2) resolve()
          }
        })
        ws.send(msg('REGISTER', `sip:${domain}`, 1))
        ws.send(msg('OPTIONS', `sip:bob@${domain}`, 2))
        await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))])
        const protocol = ws.protocol
        ws.close()
        return { protocol, got }
      },
      `wss://${EDGE}:${wssPort}/ws`,
      `${EDGE}:${port}`,
    )
    t.equal(result.protocol, 'sip', 'the browser sees sip echoed')
    t.equal(result.got.length, 2, 'two responses arrived in the page')
    const byCallId = (id: string) => result.got.find((m) => m.includes(`Call-ID: ${id}\r\n`)) ?? ''
    t.match(byCallId('browser-register'), /^SIP\/2\.0 200 OK\r\n/)
    t.match(byCallId('browser-options'), /^SIP\/2\.0 200 OK\r\n/)
    t.match(byCallId('browser-register'), /\r\nVia: SIP\/2\.0\/WSS [a-z0-9]+\.invalid;branch=/, 'the page gets back its own Via only')
    t.equal(backend.received.filter((m) => m.isRequest).length, 2, 'both requests reached the UDP backend')
  })
}
