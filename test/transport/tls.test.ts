import { once } from 'node:events'
import { copyFileSync } from 'node:fs'
import { connect as connectTcp, type Socket } from 'node:net'
import { connect as connectTls, createServer as createTlsServer, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parseListenSpec, Transports } from '../../src/transport/index.js'
import type { TransportOptions } from '../../src/transport/options.js'
import type { Listener } from '../../src/transport/types.js'
import { makePki } from './fixtures/certs.js'
import { Collector, request, response, until } from './fixtures/collector.js'

type T = { teardown(fn: () => unknown): void }

const pki = makePki()
t.teardown(() => pki.cleanup())
/** Handshakes on a machine shared with other builds can be slow: wait on events, with room. */
const WAIT = 10_000

/** Server certificate files a test may overwrite (reload) without touching the shared PKI. */
function serverFiles(name: string): { certFile: string; keyFile: string } {
  const certFile = join(pki.dir, `${name}-live.pem`)
  const keyFile = join(pki.dir, `${name}-live.key`)
  copyFileSync(pki.server1.cert, certFile)
  copyFileSync(pki.server1.key, keyFile)
  return { certFile, keyFile }
}

async function edge(t: T, specs: string[], opts: TransportOptions = {}) {
  const c = new Collector()
  const tr = new Transports(specs.map((s) => parseListenSpec(s, 'public')), c, {
    ...opts,
    tls: { certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, handshakeTimeoutMs: WAIT, ...opts.tls },
  })
  await tr.start()
  t.teardown(() => tr.stop())
  return { tr, c, l: tr.listeners.find((x) => x.spec.proto === 'tls') as Listener & { refused: number } }
}

interface Client {
  sock: TLSSocket
  data: () => Buffer
  closed: () => boolean
  error: () => Error | undefined
}

/** A TLS client that records what it receives; resolves once the handshake is done or has failed. */
async function client(t: T, port: number, opts: ConnectionOptions = {}): Promise<Client> {
  const sock = connectTls({ host: '127.0.0.1', port, ca: readFileSync(pki.caFile), ...opts })
  let data = Buffer.alloc(0)
  let closed = false
  let error: Error | undefined
  sock.on('data', (d: Buffer) => (data = Buffer.concat([data, d])))
  sock.on('error', (e) => (error = e))
  sock.on('close', () => (closed = true))
  t.teardown(() => {
    sock.destroy()
  })
  await new Promise<void>((resolve) => {
    sock.once('secureConnect', resolve)
    sock.once('close', resolve)
  })
  return { sock, data: () => data, closed: () => closed, error: () => error }
}

function write(sock: Socket, buf: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => sock.write(buf, (err) => (err ? reject(err) : resolve())))
}

t.test('TLS listener: pipelined and split messages are framed, the reply goes back on the connection', async (t) => {
  const { tr, c, l } = await edge(t, ['tls:127.0.0.1:0'])
  t.equal(l.hostport, `127.0.0.1:${l.port}`)
  c.reply = (inb) => tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  const cl = await client(t, l.port)
  t.notOk(cl.error(), 'handshake against the CA succeeds')
  t.equal(cl.sock.getProtocol() === 'TLSv1.3' || cl.sock.getProtocol() === 'TLSv1.2', true, 'TLS 1.2 or better')
  await write(cl.sock, Buffer.concat([request('p1', { transport: 'TLS' }), request('p2', { transport: 'TLS', body: 'v=0\r\n' })]))
  const split = request('p3', { transport: 'TLS', body: 'x'.repeat(700) })
  for (let i = 0; i < split.length; i += 97) await write(cl.sock, split.subarray(i, i + 97))
  await until(() => c.messages.length === 3, 'three framed messages', WAIT)
  t.same(c.callIds(), ['p1', 'p2', 'p3'])
  const inb = c.messages[0]!
  t.equal(inb.source.proto, 'tls')
  t.equal(inb.source.address, '127.0.0.1')
  t.equal(inb.listener, l)
  t.type(inb.connId, 'number')
  t.equal(c.messages[2]!.msg.body.length, 700)
  await until(() => cl.data().toString().split('SIP/2.0 200').length - 1 === 3, 'three responses on the same connection', WAIT)
  t.equal(tr.connectionCount(), 1)
})

t.test('TLS: two edges, outgoing connection verified against the CA, reused both ways', async (t) => {
  const a = await edge(t, ['tls:127.0.0.1:0'])
  const b = await edge(t, ['tls:127.0.0.1:0'])
  b.c.reply = (inb) => b.tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  const dest = { proto: 'tls' as const, address: '127.0.0.1', port: b.l.port }
  a.tr.send(request('out-1', { transport: 'TLS' }), dest, a.l)
  a.tr.send(request('out-2', { transport: 'TLS' }), dest, a.l)
  await until(() => a.c.messages.length === 2, 'both responses at A', WAIT)
  t.same(b.c.callIds(), ['out-1', 'out-2'])
  t.equal(a.tr.connectionCount(), 1, 'one outgoing connection for both')
  t.equal(b.tr.connectionCount(), 1)
  t.same(a.c.sendErrors, [])
  // B sends a request to A's connection address: it reuses the connection A opened.
  const back = b.c.messages[0]!.source
  b.tr.send(request('back', { transport: 'TLS' }), back, b.l)
  await until(() => a.c.messages.length === 3, 'request from B over the same connection', WAIT)
  t.equal(a.tr.connectionCount(), 1)
})

t.test('TLS outgoing: a server whose certificate the CA bundle does not vouch for is refused', async (t) => {
  const b = await edge(t, ['tls:127.0.0.1:0'])
  const a = await edge(t, ['tls:127.0.0.1:0'], { tls: { caFile: pki.otherCaFile } })
  a.tr.send(request('wrong-ca', { transport: 'TLS' }), { proto: 'tls', address: '127.0.0.1', port: b.l.port }, a.l)
  await until(() => a.c.sendErrors.length === 1, 'send error for the unverifiable server', WAIT)
  t.match((a.c.sendErrors[0]!.err as Error & { code?: string }).code, /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/)
  t.equal(a.c.sendErrors[0]!.dest.port, b.l.port)
  t.same(b.c.messages, [], 'nothing was delivered')
  await until(() => a.tr.connectionCount() === 0, 'failed connection removed', WAIT)
})

t.test('TLS outgoing: SNI is sent and the certificate is checked against that name', async (t) => {
  // A plain TLS server that records the SNI name it was asked for.
  const names: Array<string | false> = []
  const srv = createTlsServer({ cert: readFileSync(pki.server1.cert), key: readFileSync(pki.server1.key) }, (s) => {
    names.push(s.servername)
    s.on('error', () => {})
    s.on('data', () => {})
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  t.teardown(() => srv.close())
  const port = (srv.address() as { port: number }).port
  const a = await edge(t, ['tls:127.0.0.1:0'])
  a.tr.send(request('sni', { transport: 'TLS' }), { proto: 'tls', address: '127.0.0.1', port, servername: 'edge.test' }, a.l)
  await until(() => names.length === 1, 'handshake at the SNI server', WAIT)
  t.same(names, ['edge.test'])
  t.same(a.c.sendErrors, [])
  // The certificate names 127.0.0.1 and edge.test only: another name fails verification.
  const b = await edge(t, ['tls:127.0.0.1:0'])
  b.tr.send(request('sni-bad', { transport: 'TLS' }), { proto: 'tls', address: '127.0.0.1', port, servername: 'other.test' }, b.l)
  await until(() => b.c.sendErrors.length === 1, 'send error for a name the certificate lacks', WAIT)
  t.match((b.c.sendErrors[0]!.err as Error & { code?: string }).code, 'ERR_TLS_CERT_ALTNAME_INVALID')
})

t.test('mutual TLS: clients without a certificate from the client CA are refused, a signed one gets through', async (t) => {
  const { c, l } = await edge(t, ['tls:127.0.0.1:0 client-cert require'])
  const anonymous = await client(t, l.port)
  // TLS 1.3 reports the refusal after the client's handshake completes: the first write fails or the socket closes.
  anonymous.sock.write(request('anon', { transport: 'TLS' }))
  await until(() => anonymous.closed(), 'anonymous client closed', WAIT)
  const stranger = await client(t, l.port, { cert: readFileSync(pki.stranger.cert), key: readFileSync(pki.stranger.key) })
  stranger.sock.write(request('stranger', { transport: 'TLS' }))
  await until(() => stranger.closed(), 'client signed by another CA closed', WAIT)
  const good = await client(t, l.port, { cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key) })
  await write(good.sock, request('mtls-ok', { transport: 'TLS' }))
  await until(() => c.messages.length === 1, 'message from the signed client', WAIT)
  t.same(c.callIds(), ['mtls-ok'], 'only the signed client was heard')
  t.equal(l.refused, 2)
})

t.test('TLS: plain text or silence on the port closes that socket only', async (t) => {
  const { c, l } = await edge(t, ['tls:127.0.0.1:0'], { tls: { handshakeTimeoutMs: 500 } })
  const plain = connectTcp({ host: '127.0.0.1', port: l.port })
  plain.on('error', () => {})
  t.teardown(() => plain.destroy())
  plain.write(request('plaintext'))
  await once(plain, 'close')
  const silent = connectTcp({ host: '127.0.0.1', port: l.port })
  silent.on('error', () => {})
  t.teardown(() => silent.destroy())
  await once(silent, 'close') // dropped by the handshake timeout
  const cl = await client(t, l.port)
  await write(cl.sock, request('after-garbage', { transport: 'TLS' }))
  await until(() => c.messages.length === 1, 'a TLS client is still served', WAIT)
  t.same(c.callIds(), ['after-garbage'])
  t.same(c.parseErrors, [], 'handshake failures are not SIP parse errors')
  t.equal(l.refused, 2)
})

t.test('TLS reload: new connections get the new certificate, an established one keeps working', async (t) => {
  const files = serverFiles('reload')
  const { tr, c, l } = await edge(t, ['tls:127.0.0.1:0'], { tls: files })
  c.reply = (inb) => tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  const before = await client(t, l.port)
  t.equal(before.sock.getPeerCertificate().subject.CN, 'server1')
  copyFileSync(pki.server2.cert, files.certFile)
  copyFileSync(pki.server2.key, files.keyFile)
  await tr.reloadTls()
  const after = await client(t, l.port)
  t.equal(after.sock.getPeerCertificate().subject.CN, 'server2', 'a new connection sees the new certificate')
  await write(before.sock, request('old-conn', { transport: 'TLS' }))
  await until(() => before.data().includes('old-conn'), 'reply on the connection from before the reload', WAIT)
  t.notOk(before.closed())
  // A broken pair (server1's certificate with server2's key) is refused and the current one stays.
  copyFileSync(pki.server1.cert, files.certFile)
  await t.rejects(tr.reloadTls(), /TLS/)
  const third = await client(t, l.port)
  t.equal(third.sock.getPeerCertificate().subject.CN, 'server2')
})

t.test('TLS configuration errors are reported at start, naming the problem', async (t) => {
  const c = new Collector()
  const noCert = new Transports([parseListenSpec('tls:127.0.0.1:0', 'public')], c, {})
  await t.rejects(noCert.start(), /need a certificate file and a key file/)
  const missing = new Transports([parseListenSpec('tls:127.0.0.1:0', 'public')], c, { tls: { certFile: join(pki.dir, 'nope.pem'), keyFile: pki.server1.key } })
  await t.rejects(missing.start(), /nope\.pem.*ENOENT/)
  const noCa = new Transports([parseListenSpec('tls:127.0.0.1:0 client-cert require', 'public')], c, { tls: { certFile: pki.server1.cert, keyFile: pki.server1.key } })
  await t.rejects(noCa.start(), /client CA/)
})

t.test('TLS outgoing to a closed port reports the failure', async (t) => {
  const a = await edge(t, ['tls:127.0.0.1:0'])
  const probe = await edge(t, ['tls:127.0.0.1:0'])
  const port = probe.l.port
  await probe.tr.stop()
  a.tr.send(request('refused', { transport: 'TLS' }), { proto: 'tls', address: '127.0.0.1', port }, a.l)
  await until(() => a.c.sendErrors.length === 1, 'send error', WAIT)
  t.match((a.c.sendErrors[0]!.err as Error & { code?: string }).code, 'ECONNREFUSED')
})

t.test('TLS outgoing: a server that accepts but never completes the handshake is given up on', async (t) => {
  const stalled: Socket[] = []
  const srv = (await import('node:net')).createServer((s) => {
    stalled.push(s)
    s.on('error', () => {})
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  t.teardown(() => {
    for (const s of stalled) s.destroy()
    srv.close()
  })
  const a = await edge(t, ['tls:127.0.0.1:0'], { connectTimeoutMs: 300 })
  a.tr.send(request('stall', { transport: 'TLS' }), { proto: 'tls', address: '127.0.0.1', port: (srv.address() as { port: number }).port }, a.l)
  await until(() => a.c.sendErrors.length === 1, 'timeout reported', WAIT)
  t.match((a.c.sendErrors[0]!.err as Error & { code?: string }).code, 'ETIMEDOUT')
  await until(() => a.tr.connectionCount() === 0, 'stalled connection dropped', WAIT)
})

t.test('TLS: bytes that cannot be framed after the handshake close that connection only', async (t) => {
  const { c, l, tr } = await edge(t, ['tls:127.0.0.1:0'])
  const bad = await client(t, l.port)
  const good = await client(t, l.port)
  await write(bad.sock, 'this is not SIP and has no Content-Length\r\n\r\n')
  await until(() => bad.closed(), 'unframeable connection closed', WAIT)
  t.equal(c.parseErrors.length, 1, 'reported once, with the bytes')
  t.equal(c.parseErrors[0]!.source.proto, 'tls')
  await write(good.sock, request('good-tls', { transport: 'TLS' }))
  await until(() => c.messages.length === 1, 'the other connection is served', WAIT)
  t.equal(tr.connectionCount(), 1)
})
