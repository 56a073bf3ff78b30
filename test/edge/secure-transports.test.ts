// Issue 14: SIP over TLS and over secure WebSocket through the edge to a UDP backend. The edge listens
// on 127.0.14.1 (UDP, TLS, WSS; its test certificate names edge.test, which the clients ask for); the backend is a raw UDP endpoint on 127.0.14.11. Browser-style clients
// put a `.invalid` host in Via and Contact: everything toward them must go over their connection.
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as connectTls } from 'node:tls'
import t from 'tap'
import { WebSocket } from 'ws'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { startSecureEdge } from '../helpers/secure-edge.js'
import { makePki } from '../transport/fixtures/certs.js'
import { until } from '../transport/fixtures/collector.js'

const EDGE = '127.0.14.1'
const BACKEND = '127.0.14.11'
const WAIT = 10_000

const pki = makePki()
t.teardown(() => pki.cleanup())

type T = Parameters<Parameters<typeof t.test>[1]>[0]
const setup = (t: T, certFile = pki.server1.cert, keyFile = pki.server1.key) =>
  startSecureEdge(t, { host: EDGE, backendHost: BACKEND, certFile, keyFile, caFile: pki.caFile, handshakeTimeoutMs: WAIT })

function invite(transport: 'TLS' | 'WSS', via: string, ruri: string, callId: string): string {
  return [
    `INVITE ${ruri} SIP/2.0`,
    `Via: SIP/2.0/${transport} ${via};branch=z9hG4bK-${callId}`,
    'Max-Forwards: 70',
    `From: <sip:agent@example.com>;tag=ag1`,
    `To: <${ruri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:agent@${via};transport=${transport === 'WSS' ? 'ws' : 'tls'}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** Collects the SIP messages a client receives and waits for one matching a predicate. */
function inbox() {
  const got: SipMessage[] = []
  return {
    got,
    push: (buf: Buffer) => got.push(parseMessage(buf)),
    async next(pred: (m: SipMessage) => boolean, what: string): Promise<SipMessage> {
      const deadline = Date.now() + WAIT
      for (;;) {
        const m = got.find(pred)
        if (m) return m
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise((r) => setTimeout(r, 10))
      }
    },
  }
}

/** A WSS agent connected to the edge (verifying its certificate as edge.test), with an inbox. */
async function agent(t: T, wssPort: number) {
  const ws = new WebSocket(`wss://${EDGE}:${wssPort}/ws`, ['sip'], { ca: readFileSync(pki.caFile), servername: 'edge.test' })
  t.teardown(() => ws.terminate())
  const box = inbox()
  ws.on('message', (d: Buffer) => box.push(d))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  return { ws, box }
}

/** The BYE a backend sends to end a call toward an agent: routed by the Record-Route it got. */
function backendBye(backendPort: number, edgePort: number, host: string, callId: string, routes: string): string {
  return [
    `BYE sip:agent@${host};transport=ws SIP/2.0`,
    `Via: SIP/2.0/UDP ${BACKEND}:${backendPort};branch=z9hG4bK-bye-${callId};rport`,
    'Max-Forwards: 70',
    `Route: ${routes}`,
    `From: <sip:bob@${EDGE}:${edgePort}>;tag=be1`,
    `To: <sip:agent@example.com>;tag=ag1`,
    `Call-ID: ${callId}`,
    'CSeq: 1 BYE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

t.test('WSS client (.invalid Via and Contact) calls a UDP backend; responses and the backend BYE come back over the WebSocket', async (t) => {
  const { backend, wssPort, port } = await setup(t)
  const { ws, box } = await agent(t, wssPort)
  t.equal(ws.protocol, 'sip')
  ws.send(invite('WSS', 'df7jal23ls0d.invalid', `sip:bob@${EDGE}:${port}`, 'wss-call'))
  const ok = await box.next((m) => m.status === 200 && m.callId === 'wss-call', '200 OK over WSS')
  t.equal(ok.vias.length, 1, 'only the client Via comes back')
  // received= notes the real source (RFC 3261 §18.2.1): a .invalid sent-by never matches it.
  t.equal(ok.getHeader('Via'), 'SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK-wss-call;received=127.0.0.1')
  // What the backend saw: the edge's UDP Via on top of the browser's, and the doubled Record-Route.
  const inv = await backend.next((m) => m.method === 'INVITE')
  t.match(inv.vias[0]!.raw, new RegExp(`^SIP/2\\.0/UDP ${EDGE.replace(/\./g, '\\.')}:${port};`))
  t.match(inv.vias[1]!.raw, /^SIP\/2\.0\/WSS df7jal23ls0d\.invalid/)
  const rr = inv.getHeaders('Record-Route').join(', ')
  t.match(rr, new RegExp(`<sip:${EDGE.replace(/\./g, '\\.')}:${port};lr;sk=[^>]+>, <sip:${EDGE.replace(/\./g, '\\.')}:${wssPort};transport=ws;lr;sk=`))
  // The backend hangs up: its BYE follows the Record-Route (the token names the WSS flow), never the .invalid Contact.
  const routes = inv.getHeaders('Record-Route').join(', ')
  backend.send(backendBye(backend.port, port, 'df7jal23ls0d.invalid', 'wss-call', routes), EDGE, port)
  const bye = await box.next((m) => m.isRequest && m.method === 'BYE', 'BYE over WSS')
  t.match(bye.vias[0]!.raw, new RegExp(`^SIP/2\\.0/WSS ${EDGE.replace(/\./g, '\\.')}:${wssPort};`), 'the edge Via names WSS')
  ws.send(['SIP/2.0 200 OK', ...bye.vias.map((v) => `Via: ${v.raw}`), `From: ${bye.getHeader('From')}`, `To: ${bye.getHeader('To')}`,
    'Call-ID: wss-call', 'CSeq: 1 BYE', 'Content-Length: 0', '', ''].join('\r\n'))
  const byeOk = await backend.next((m) => m.status === 200 && m.cseq.method === 'BYE')
  t.equal(byeOk.callId, 'wss-call', "the browser's 200 for BYE reaches the backend")
})

t.test('TLS client calls a UDP backend; the response comes back on the same TLS connection', async (t) => {
  const { backend, tlsPort, port, edge } = await setup(t)
  const sock = connectTls({ host: EDGE, port: tlsPort, ca: readFileSync(pki.caFile), servername: 'edge.test' })
  t.teardown(() => sock.destroy())
  let data = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => (data = Buffer.concat([data, d])))
  sock.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    sock.once('secureConnect', resolve)
    sock.once('error', reject)
  })
  sock.write(invite('TLS', `${EDGE}:5999`, `sip:bob@${EDGE}:${port}`, 'tls-call'))
  const deadline = Date.now() + WAIT
  while (!data.includes('SIP/2.0 200 OK')) {
    if (Date.now() > deadline) throw new Error('no 200 over TLS')
    await new Promise((r) => setTimeout(r, 10))
  }
  const ok = parseMessage(data.subarray(data.indexOf('SIP/2.0 200 OK')))
  t.equal(ok.callId, 'tls-call')
  t.equal(ok.vias.length, 1)
  const inv = await backend.next((m) => m.method === 'INVITE')
  t.match(inv.vias[1]!.raw, /^SIP\/2\.0\/TLS /)
  t.match(inv.getHeaders('Record-Route').join(', '), new RegExp(`:${tlsPort};transport=tls;lr;sk=`))
  t.equal(edge.transports.connectionCount(), 1, 'no second connection toward the client (the Via port 5999 is not used)')
})

t.test('a TLS listener without certificate files is a config error naming the key', async (t) => {
  const { validateConfig } = await import('../../src/edge/config.js')
  const r = validateConfig({ listen: ['tls:127.0.14.1:5061'] }, 'test')
  t.match(r.errors.join('\n'), /tls\.certFile: is required by the TLS listener listen\[0\]/)
  const ok = validateConfig({ listen: ['wss:127.0.14.1:8443 path /ws'], tls: { certFile: 'a.pem', keyFile: 'a.key' }, ws: { allowedOrigins: ['https://agents.example.com'] } }, 'test')
  t.same(ok.errors, [])
  const bad = validateConfig({ ws: { allowedOrigins: ['agents.example.com'] } }, 'test')
  t.match(bad.errors.join('\n'), /ws\.allowedOrigins.*not an origin/)
})

t.test('edge reload (SIGHUP) re-reads the certificate files; an established TLS connection stays', async (t) => {
  const certFile = join(pki.dir, 'edge-live.pem')
  const keyFile = join(pki.dir, 'edge-live.key')
  copyFileSync(pki.server1.cert, certFile)
  copyFileSync(pki.server1.key, keyFile)
  const { edge, tlsPort } = await setup(t, certFile, keyFile)
  const handshake = async () => {
    const sock = connectTls({ host: EDGE, port: tlsPort, ca: readFileSync(pki.caFile), servername: 'edge.test' })
    sock.on('error', () => {})
    t.teardown(() => sock.destroy())
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve)
      sock.once('error', reject)
    })
    return sock
  }
  const before = await handshake()
  t.equal(before.getPeerCertificate().subject.CN, 'server1')
  copyFileSync(pki.server2.cert, certFile)
  copyFileSync(pki.server2.key, keyFile)
  t.same(await edge.reload({ ...edge.config }), [], 'nothing needs a restart')
  t.equal((await handshake()).getPeerCertificate().subject.CN, 'server2')
  // TLS 1.3: the client is done before the server has the last flight; wait for the edge's count to settle.
  await until(() => edge.transports.connectionCount() === 2, 'both connections at the edge', WAIT)
  t.notOk(before.destroyed, 'the connection from before the reload is still open')
  copyFileSync(pki.server1.key, keyFile) // server2's certificate with server1's key
  await t.rejects(edge.reload({ ...edge.config }), /TLS/, 'a broken pair fails the reload')
  t.equal((await handshake()).getPeerCertificate().subject.CN, 'server2', 'and the running certificate stays')
})

t.test('a backend request toward a WebSocket client whose connection is gone gets 430, no guess', async (t) => {
  const { backend, wssPort, port, edge } = await setup(t)
  const { ws, box } = await agent(t, wssPort)
  ws.send(invite('WSS', 'gone7x.invalid', `sip:bob@${EDGE}:${port}`, 'gone-call'))
  await box.next((m) => m.status === 200 && m.callId === 'gone-call', '200 OK over WSS')
  const inv = await backend.next((m) => m.method === 'INVITE' && m.callId === 'gone-call')
  ws.close()
  await until(() => edge.transports.connectionCount() === 0, 'the WebSocket is gone at the edge', WAIT)
  backend.send(backendBye(backend.port, port, 'gone7x.invalid', 'gone-call', inv.getHeaders('Record-Route').join(', ')), EDGE, port)
  const r = await backend.next((m) => m.status >= 200 && m.cseq.method === 'BYE', WAIT)
  t.equal(r.status, 430)
  t.equal(r.reason, 'Flow Failed')
})

t.test('a backend request toward a TLS caller whose connection is gone gets 430; the edge dials neither its source port nor its Contact', async (t) => {
  const { backend, tlsPort, port, edge } = await setup(t)
  // What a guess would reach: a TLS server on the address and port the caller's Via and Contact name.
  const { createServer } = await import('node:tls')
  let dialled = 0
  const contactServer = createServer({ key: readFileSync(pki.server1.key), cert: readFileSync(pki.server1.cert) }, (s) => { dialled++; s.destroy() })
  contactServer.on('connection', () => dialled++)
  await new Promise<void>((r) => contactServer.listen(0, '127.0.14.30', r))
  t.teardown(() => contactServer.close())
  const contactPort = (contactServer.address() as { port: number }).port
  const sock = connectTls({ host: EDGE, port: tlsPort, ca: readFileSync(pki.caFile), servername: 'edge.test' })
  sock.on('error', () => {})
  t.teardown(() => sock.destroy())
  const box = inbox()
  sock.on('data', (d: Buffer) => { for (const part of d.toString().split(/(?=SIP\/2\.0 )/)) if (part.startsWith('SIP/2.0')) box.push(Buffer.from(part)) })
  await new Promise<void>((resolve, reject) => { sock.once('secureConnect', resolve); sock.once('error', reject) })
  sock.write(invite('TLS', `127.0.14.30:${contactPort}`, `sip:bob@${EDGE}:${port}`, 'tls-gone'))
  await box.next((m) => m.status === 200 && m.callId === 'tls-gone', '200 OK over TLS')
  const inv = await backend.next((m) => m.method === 'INVITE' && m.callId === 'tls-gone')
  sock.destroy()
  await until(() => edge.transports.connectionCount() === 0, 'the TLS connection is gone at the edge', WAIT)
  const bye = backendBye(backend.port, port, `127.0.14.30:${contactPort}`, 'tls-gone', inv.getHeaders('Record-Route').join(', ')).replace(';transport=ws', ';transport=tls')
  backend.send(bye, EDGE, port)
  const r = await backend.next((m) => m.status >= 200 && m.cseq.method === 'BYE', WAIT)
  t.equal(r.status, 430)
  t.equal(r.reason, 'Flow Failed')
  t.equal(dialled, 0, 'no connection to the address the Contact names')
  t.equal(edge.transports.connectionCount(), 0, 'and none toward the caller')
})
