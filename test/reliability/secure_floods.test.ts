// TLS and WebSocket floods on the public side while legitimate SIPp calls go through the edge over UDP:
// full TLS handshakes opened and dropped, plain text and junk on the TLS port, connections that never finish
// their handshake, WebSocket upgrades without the sip subprotocol, oversize frames, a WSS client flooding
// INVITEs. The edge stays up, the handshake timeout and the connection limits hold, >= 99.9 % of the
// legitimate calls complete, and a well-behaved WSS agent is still served afterwards.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { connect as connectTls } from 'node:tls'
import t from 'tap'
import { WebSocket } from 'ws'
import { DEFAULT_CONFIG } from '../../src/edge/config.js'
import { startEdge } from '../helpers/edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { makePki } from '../transport/fixtures/certs.js'
import { FULL, recordCase } from './fixtures/results.js'
import { round, sampleEdge } from './fixtures/resources.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const EDGE = '127.0.6.40'
const BACKEND = '127.0.6.42'
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pki = makePki()
t.teardown(() => pki.cleanup())

function wsInvite(i: number, host: string): string {
  return [`INVITE sip:${1000 + (i % 100)}@${host} SIP/2.0`, `Via: SIP/2.0/WSS fl${i}.invalid;branch=z9hG4bK-wsflood-${i}`, 'Max-Forwards: 70',
    `From: <sip:flood@example.com>;tag=w${i}`, `To: <sip:${1000 + (i % 100)}@${host}>`, `Call-ID: wsflood-${i}`, 'CSeq: 1 INVITE',
    `Contact: <sip:flood@fl${i}.invalid;transport=ws>`, 'Content-Length: 0', '', ''].join('\r\n')
}

/** Opens a WebSocket and resolves with how it ended: 'open' (then closed by us), or the HTTP status / error. */
function wsAttempt(url: string, protocols: string[]): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, { ca: readFileSync(pki.caFile), servername: 'edge.test' })
    ws.on('open', () => { ws.terminate(); resolve('open') })
    ws.on('unexpected-response', (_req, res) => { resolve(String(res.statusCode)); ws.terminate() })
    ws.on('error', (err) => resolve(err.message))
  })
}

t.test('TLS and WebSocket floods during a legitimate call load', async (t) => {
  const uas = await startUas({ scenario: 'uas', ip: BACKEND, traceMsg: false, t })
  const port = await freePort(EDGE)
  const tlsPort = await freeTcpPort(EDGE)
  const wssPort = await freeTcpPort(EDGE)
  const { edge, host, target } = await startEdge(t, EDGE, {
    listen: [`udp:${EDGE}:${port}`, `tls:${EDGE}:${tlsPort}`, `wss:${EDGE}:${wssPort} path /ws`],
    backends: [`sip:${uas.id}`],
    tls: { certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, handshakeTimeoutMs: 1000 },
    ws: { allowedOrigins: [], maxConnectionsPerSource: 50, pingIntervalMs: 30_000 },
    rateLimit: { rps: 200, burst: 200, action: 'reply' },
    defence: { ...DEFAULT_CONFIG.defence, enabled: false },
    limits: { maxMessageSize: 65535, maxConnections: 300, tcpIdleTimeoutMs: 2000, maxDialogs: 100_000, dialogTtlS: 3600, maxTransactions: 100_000 },
  }, port)
  const base = sampleEdge(edge)
  const samples = [base]
  const sampler = setInterval(() => samples.push(sampleEdge(edge)), 250)
  t.teardown(() => clearInterval(sampler))
  const calls = FULL ? 2000 : 300
  const load = runUac({ scenario: 'uac', target, localIp: '127.0.6.41', calls, rate: 30, traceMsg: false, timeoutS: FULL ? 120 : 40, t })
  const tried: Record<string, number> = {}

  // 1. Full TLS handshakes, dropped at once (a handshake flood), 8 at a time.
  const handshakes = FULL ? 1500 : 300
  let completed = 0
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = w; i < handshakes; i += 8) {
      await new Promise<void>((resolve) => {
        const s = connectTls({ host, port: tlsPort, ca: readFileSync(pki.caFile), servername: 'edge.test', localAddress: '127.0.6.50' })
        s.on('secureConnect', () => { completed++; s.destroy(); resolve() })
        s.on('error', () => resolve())
      })
    }
  }))
  tried['TLS handshakes opened and dropped'] = handshakes

  // 2. Plain text and random bytes on the TLS port; 3. connections that never start their handshake.
  const junk = FULL ? 500 : 100
  for (let i = 0; i < junk; i++) {
    const s = net.connect({ host, port: tlsPort, localAddress: '127.0.6.51' }).on('error', () => {})
    s.on('connect', () => s.end(i % 2 ? randomBytes(2000) : Buffer.from(wsInvite(i, host))))
  }
  tried['plain text / junk on the TLS port'] = junk
  const silent: net.Socket[] = []
  for (let i = 0; i < 150; i++) silent.push(net.connect({ host, port: tlsPort, localAddress: '127.0.6.52' }).on('error', () => {}))
  t.teardown(() => { for (const s of silent) s.destroy() })
  tried['TLS connections that never handshake'] = silent.length
  let maxConn = 0
  const watch = setInterval(() => { maxConn = Math.max(maxConn, edge.transports.connectionCount()) }, 50)
  t.teardown(() => clearInterval(watch))
  await waitFor(() => silent.every((s) => s.destroyed || s.readyState === 'closed'), { timeoutMs: 5000, what: 'silent TLS connections closed by the handshake timeout' })
  t.pass('connections that never handshake are closed by tls.handshakeTimeoutMs')

  // 4. WebSocket upgrades without the sip subprotocol, and past the per-source limit.
  const url = `wss://${host}:${wssPort}/ws`
  const refused = await Promise.all(Array.from({ length: FULL ? 500 : 100 }, () => wsAttempt(url, ['chat'])))
  t.ok(refused.every((r) => r !== 'open'), `upgrades without sip are refused (${[...new Set(refused)].join(', ')})`)
  tried['WebSocket upgrades without the sip subprotocol'] = refused.length
  const held: WebSocket[] = []
  for (let i = 0; i < 60; i++) {
    const ws = new WebSocket(url, ['sip'], { ca: readFileSync(pki.caFile), servername: 'edge.test', localAddress: '127.0.6.53' })
    ws.on('error', () => {})
    held.push(ws)
  }
  t.teardown(() => { for (const ws of held) ws.terminate() })
  await pause(1500)
  const open = held.filter((ws) => ws.readyState === WebSocket.OPEN).length
  t.ok(open <= 50, `WebSocket connections from one source stay within ws.maxConnectionsPerSource (${open} of 60 open)`)
  tried['WebSocket connections from one source'] = held.length

  // 5. Oversize frames and an INVITE flood over the open WebSockets.
  let oversizeClosed = 0
  for (const ws of held.filter((w) => w.readyState === WebSocket.OPEN).slice(0, 10)) {
    ws.on('close', (code) => { if (code === 1009) oversizeClosed++ })
    ws.send(Buffer.alloc(70_000, 0x41))
  }
  const flooders = held.filter((w) => w.readyState === WebSocket.OPEN).slice(10, 20)
  const floodCount = FULL ? 5000 : 1000
  let limited = 0
  for (const ws of flooders) ws.on('message', (d: Buffer) => { if (d.toString().startsWith('SIP/2.0 503')) limited++ })
  for (let i = 0; i < floodCount; i++) {
    flooders[i % flooders.length]?.send(wsInvite(i, `${host}:${port}`))
    if (i % 100 === 0) await pause(10)
  }
  tried['oversize WebSocket frames'] = 10
  tried['INVITEs flooded over WSS from one source'] = floodCount
  await pause(1000)
  t.equal(oversizeClosed, 10, 'every oversize frame closed its connection with 1009')
  t.ok(limited > floodCount / 2, `the rate limit answered 503 to most of the WSS flood (${limited} of ${floodCount})`)

  const result = await load
  clearInterval(sampler)
  clearInterval(watch)
  const ratio = result.successful / calls
  t.ok(ratio >= 0.999, `legitimate calls completed: ${result.successful}/${calls} (${describe(result)})`)
  t.ok(maxConn <= 300, `connections stayed within limits.maxConnections (peak ${maxConn})`)

  // Afterwards: the floods' connections are gone, and a well-behaved agent is served.
  for (const ws of held) ws.terminate()
  await waitFor(() => edge.transports.connectionCount() === 0, { timeoutMs: 5000, what: 'flood connections closed' })
  const agent = new WebSocket(url, ['sip'], { ca: readFileSync(pki.caFile), servername: 'edge.test', localAddress: '127.0.6.54' })
  t.teardown(() => agent.terminate())
  const answer = new Promise<string>((resolve) => agent.on('message', (d: Buffer) => resolve(d.toString())))
  await new Promise<void>((resolve, reject) => { agent.once('open', resolve); agent.once('error', reject) })
  agent.send(wsInvite(0, `${host}:${port}`).replace(/^INVITE sip:1000@/, 'OPTIONS sip:').replace('CSeq: 1 INVITE', 'CSeq: 1 OPTIONS').replace('wsflood-0', 'after-flood'))
  t.match(await answer, /^SIP\/2\.0 200 /, 'a WSS agent is answered after the floods')
  const peakRss = Math.max(...samples.map((s) => s.rssMiB))
  t.ok(peakRss - base.rssMiB < 300, `RSS bounded (base ${round(base.rssMiB)} MiB, peak ${round(peakRss)} MiB)`)

  recordCase('secure_floods', {
    group: 'abuse',
    summary: `TLS and WebSocket floods on the public side during ${calls} legitimate UDP calls at 30 cps (handshake timeout 1 s, 50 WS/source, rate limit 200 rps/source)`,
    figures: {
      ...tried,
      'TLS handshakes completed': completed,
      'WSS flood answered 503 by the rate limit': limited,
      'peak connections': maxConn,
      'RSS base / peak (MiB)': `${round(base.rssMiB)} / ${round(peakRss)}`,
      'legitimate calls completed': `${result.successful}/${calls}`,
    },
    passed: ratio >= 0.999,
  })
})
