import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { WebSocket, type ClientOptions } from 'ws'
import { parseListenSpec, Transports } from '../../src/transport/index.js'
import type { TransportOptions } from '../../src/transport/options.js'
import type { Listener } from '../../src/transport/types.js'
import { makePki } from './fixtures/certs.js'
import { Collector, request, response, until } from './fixtures/collector.js'

type T = { teardown(fn: () => unknown): void }

/** Generous: the machine is shared; every wait is on an event or a condition, never a fixed sleep. */
const WAIT = 10_000

let pki: ReturnType<typeof makePki> | undefined
function certs(): ReturnType<typeof makePki> {
  if (pki === undefined) {
    pki = makePki()
    t.teardown(() => pki?.cleanup())
  }
  return pki
}

async function edge(t: T, spec: string, opts: TransportOptions = {}) {
  const c = new Collector()
  const tr = new Transports([parseListenSpec(spec, 'public')], c, opts)
  await tr.start()
  t.teardown(() => tr.stop())
  // Answer every request on its connection, as the proxy does.
  c.reply = (inb) => {
    if (inb.msg.isRequest) tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  }
  return { tr, c, l: tr.listeners[0] as Listener & { refused: number } }
}

interface Client {
  ws: WebSocket
  messages: Array<{ data: Buffer; binary: boolean }>
  closeCode: () => number | undefined
}

/** Opens a WebSocket; resolves when it is open (or fails: then `rejected` holds the HTTP status and body). */
async function open(t: T, url: string, protocols: string[] = ['sip'], opts: ClientOptions = {}) {
  const ws = new WebSocket(url, protocols, opts)
  const messages: Client['messages'] = []
  let closeCode: number | undefined
  ws.on('message', (data: Buffer, binary: boolean) => messages.push({ data, binary }))
  ws.on('close', (code: number) => (closeCode = code))
  ws.on('error', () => {})
  t.teardown(() => ws.terminate())
  const outcome = await new Promise<{ status: number; body: string } | undefined>((resolve) => {
    ws.once('open', () => resolve(undefined))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.once('error', () => resolve({ status: 0, body: 'error' }))
  })
  return { client: { ws, messages, closeCode: () => closeCode } as Client, rejected: outcome }
}

const url = (l: Listener, path = '/', scheme = 'ws') => `${scheme}://127.0.0.1:${l.port}${path}`

t.test('WS: subprotocol sip echoed, a text request parsed, the response comes back as a text message', async (t) => {
  const { c, l, tr } = await edge(t, 'ws:127.0.0.1:0')
  const { client, rejected } = await open(t, url(l))
  t.equal(rejected, undefined)
  t.equal(client.ws.protocol, 'sip', 'Sec-WebSocket-Protocol: sip echoed')
  client.ws.send(request('ws-text', { transport: 'WS' }).toString())
  await until(() => client.messages.length === 1, 'response', WAIT)
  const inb = c.messages[0]!
  t.equal(inb.source.proto, 'ws')
  t.equal(inb.source.address, '127.0.0.1')
  t.equal(inb.listener, l)
  t.type(inb.connId, 'number')
  t.equal(client.messages[0]!.binary, false, 'SIP goes out in text frames')
  t.match(client.messages[0]!.data.toString(), /^SIP\/2\.0 200 OK\r\n[^]*Call-ID: ws-text\r\n/)
  t.equal(tr.connectionCount(), 1)
  // Without a connection id, a send to the peer's address still finds its connection.
  tr.send(request('to-client', { transport: 'WS' }), inb.source, l)
  await until(() => client.messages.length === 2, 'request to the client by address', WAIT)
})

t.test('WS: binary frames are parsed too; one WebSocket message is one SIP message', async (t) => {
  const { c, l } = await edge(t, 'ws:127.0.0.1:0')
  const { client } = await open(t, url(l))
  client.ws.send(request('ws-bin', { transport: 'WS', body: 'v=0\r\n' }), { binary: true })
  // No Content-Length needed (RFC 7118 §5.1): the message ends with the frame.
  client.ws.send('OPTIONS sip:svc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK-nocl\r\nFrom: <sip:a@h.invalid>;tag=1\r\n' +
    'To: <sip:svc@127.0.0.1>\r\nCall-ID: ws-nocl\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n')
  await until(() => c.messages.length === 2, 'both messages', WAIT)
  t.same(c.callIds(), ['ws-bin', 'ws-nocl'])
  t.equal(c.messages[0]!.msg.body.toString(), 'v=0\r\n')
  t.equal(c.messages[1]!.msg.getHeader('Via'), 'SIP/2.0/WS h.invalid;branch=z9hG4bK-nocl')
})

t.test('WS: without the sip subprotocol the upgrade is refused with a reason', async (t) => {
  const { c, l } = await edge(t, 'ws:127.0.0.1:0')
  const none = await open(t, url(l), [])
  t.equal(none.rejected?.status, 400)
  t.match(none.rejected?.body, /Sec-WebSocket-Protocol: sip is required/)
  const other = await open(t, url(l), ['xmpp'])
  t.equal(other.rejected?.status, 400)
  const both = await open(t, url(l), ['xmpp', 'sip'])
  t.equal(both.rejected, undefined, 'sip among others is fine')
  t.equal(both.client.ws.protocol, 'sip')
  t.equal(l.refused, 2)
  t.same(c.messages, [])
})

t.test('WS: path and plain HTTP', async (t) => {
  const { l } = await edge(t, 'ws:127.0.0.1:0 path /sip')
  const wrong = await open(t, url(l, '/other'))
  t.equal(wrong.rejected?.status, 404)
  const right = await open(t, url(l, '/sip?client=x'))
  t.equal(right.rejected, undefined)
  const req = httpRequest({ host: '127.0.0.1', port: l.port, path: '/sip' })
  req.end()
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
  res.resume()
  t.equal(res.statusCode, 426, 'a plain GET is told to upgrade')
})

t.test('WS: Origin allow-list', async (t) => {
  const { l } = await edge(t, 'ws:127.0.0.1:0', { ws: { allowedOrigins: ['https://agents.example.com'] } })
  const good = await open(t, url(l), ['sip'], { origin: 'https://Agents.example.com' })
  t.equal(good.rejected, undefined, 'a listed origin (any case)')
  const bad = await open(t, url(l), ['sip'], { origin: 'https://evil.example.net' })
  t.equal(bad.rejected?.status, 403)
  t.match(bad.rejected?.body, /evil\.example\.net is not allowed/)
  const none = await open(t, url(l))
  t.equal(none.rejected, undefined, 'non-browser clients send no Origin')
})

t.test('WS: per-source connection limit, freed when a connection closes', async (t) => {
  const { l, tr } = await edge(t, 'ws:127.0.0.1:0', { ws: { maxConnectionsPerSource: 2 } })
  const a = await open(t, url(l))
  const b = await open(t, url(l))
  t.equal(a.rejected, undefined)
  t.equal(b.rejected, undefined)
  const third = await open(t, url(l))
  t.equal(third.rejected?.status, 429)
  a.client.ws.close()
  await until(() => tr.connectionCount() === 1, 'closed connection gone', WAIT)
  const again = await open(t, url(l))
  t.equal(again.rejected, undefined, 'room again after a close')
})

t.test('WS: an oversized message closes that connection with 1009; others keep working', async (t) => {
  const { c, l } = await edge(t, 'ws:127.0.0.1:0', { maxMessageSize: 2000 })
  const big = await open(t, url(l))
  const small = await open(t, url(l))
  big.client.ws.send(request('too-big', { transport: 'WS', body: 'x'.repeat(3000) }).toString())
  await until(() => big.client.closeCode() !== undefined, 'close of the oversized sender', WAIT)
  t.equal(big.client.closeCode(), 1009)
  small.client.ws.send(request('small', { transport: 'WS' }).toString())
  await until(() => small.client.messages.length === 1, 'the other connection is served', WAIT)
  t.same(c.callIds(), ['small'])
})

t.test('WS: garbage is a parse error for that message only; CRLF keep-alive gets a CRLF pong', async (t) => {
  const { c, l } = await edge(t, 'ws:127.0.0.1:0')
  const { client } = await open(t, url(l))
  client.ws.send('this is not SIP\r\n\r\n')
  client.ws.send(Buffer.from([0xff, 0x00, 0xfe]), { binary: true })
  client.ws.send('\r\n\r\n')
  await until(() => client.messages.length === 1, 'keep-alive pong', WAIT)
  t.equal(client.messages[0]!.data.toString(), '\r\n')
  client.ws.send(request('after-garbage', { transport: 'WS' }).toString())
  await until(() => c.messages.length === 1 && client.messages.length === 2, 'valid message after garbage', WAIT)
  t.equal(c.parseErrors.length, 2)
  t.equal(c.parseErrors[0]!.buf.toString(), 'this is not SIP\r\n\r\n')
  t.equal(c.parseErrors[0]!.source.proto, 'ws')
  t.equal(c.parseErrors[0]!.connId, c.messages[0]!.connId, 'reported with the connection, so the proxy can answer 400 on it')
  t.equal(client.closeCode(), undefined, 'still open')
})

t.test('WS keepalive: a client answering pings stays, a silent one is dropped', async (t) => {
  const { l, tr } = await edge(t, 'ws:127.0.0.1:0', { ws: { pingIntervalMs: 100 } })
  const live = await open(t, url(l))
  let pings = 0
  live.client.ws.on('ping', () => pings++)
  const mute = await open(t, url(l), ['sip'], { autoPong: false })
  await until(() => mute.client.closeCode() !== undefined, 'the client that never answers is dropped', WAIT)
  // Several ping rounds have passed for the live one by now: it answered each and is still open.
  await until(() => pings >= 4, 'four pings at the live client', WAIT)
  t.equal(live.client.closeCode(), undefined)
  t.equal(live.client.ws.readyState, WebSocket.OPEN)
  t.equal(tr.connectionCount(), 1)
})

t.test('WSS: TLS handshake against the CA, subprotocol echoed, request and response', async (t) => {
  const p = certs()
  const { c, l } = await edge(t, 'wss:127.0.0.1:0 path /ws', { tls: { certFile: p.server1.cert, keyFile: p.server1.key } })
  const { client, rejected } = await open(t, url(l, '/ws', 'wss'), ['sip'], { ca: readFileSync(p.caFile) })
  t.equal(rejected, undefined)
  t.equal(client.ws.protocol, 'sip')
  client.ws.send(request('wss-1', { transport: 'WSS' }).toString())
  await until(() => client.messages.length === 1, 'response over WSS', WAIT)
  t.equal(c.messages[0]!.source.proto, 'wss')
  const untrusted = await open(t, url(l, '/ws', 'wss'), ['sip'], { ca: readFileSync(p.otherCaFile) })
  t.equal(untrusted.rejected?.status, 0, 'a client that does not trust the certificate fails its handshake')
})

t.test('WS: stop() closes open connections and frees the port', async (t) => {
  const c = new Collector()
  const tr = new Transports([parseListenSpec('ws:127.0.0.1:0', 'public')], c)
  await tr.start()
  const { client } = await open(t, url(tr.listeners[0]!))
  await tr.stop()
  await until(() => client.closeCode() !== undefined, 'client sees the close', WAIT)
  t.equal(tr.connectionCount(), 0)
})

t.test('WS: 1,000 idle connections from 10 sources fit the limits; the next ones are refused by the right limit', async (t) => {
  const { l, tr } = await edge(t, 'ws:127.0.0.1:0', { maxConnections: 1000, ws: { maxConnectionsPerSource: 100 } })
  const opened: Array<Promise<{ rejected: unknown }>> = []
  for (let s = 0; s < 10; s++) {
    for (let i = 0; i < 100; i++) opened.push(open(t, url(l), ['sip'], { localAddress: `127.0.1.${10 + s}` }))
  }
  const results = await Promise.all(opened)
  t.equal(results.filter((r) => r.rejected === undefined).length, 1000, 'all 1,000 open')
  await until(() => tr.connectionCount() === 1000, '1,000 connections at the edge', WAIT)
  const perSource = await open(t, url(l), ['sip'], { localAddress: '127.0.1.10' })
  t.equal(perSource.rejected?.status, 429, 'the 101st from one source: per-source limit')
  const total = await open(t, url(l), ['sip'], { localAddress: '127.0.1.30' })
  t.equal(total.rejected?.status, 503, 'the 1,001st in all: connection limit')
})

t.test('WS: non-HTTP bytes on the port and broken frames after the upgrade close that connection only', async (t) => {
  const { c, l, tr } = await edge(t, 'ws:127.0.0.1:0')
  const { connect } = await import('node:net')
  const raw = connect({ host: '127.0.0.1', port: l.port })
  raw.on('error', () => {})
  t.teardown(() => raw.destroy())
  let answer = ''
  raw.on('data', (d: Buffer) => (answer += d.toString()))
  raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x0d, 0x0a]))
  await until(() => answer.startsWith('HTTP/1.1 400 '), 'non-HTTP bytes answered 400', WAIT)
  const broken = await open(t, url(l))
  // A frame with a reserved opcode (0x3): a protocol error, the server closes with 1002.
  ;(broken.client.ws as unknown as { _socket: import('node:net').Socket })._socket.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4]))
  await until(() => broken.client.closeCode() !== undefined, 'close after a broken frame', WAIT)
  t.equal(broken.client.closeCode(), 1002)
  const good = await open(t, url(l))
  good.client.ws.send(request('still-served', { transport: 'WS' }).toString())
  await until(() => good.client.messages.length === 1, 'another client is served', WAIT)
  t.same(c.callIds(), ['still-served'])
  await until(() => tr.connectionCount() === 1, 'the broken connection left the table', WAIT)
})
