import { createSocket } from 'node:dgram'
import { connect, createServer, type Socket } from 'node:net'
import t from 'tap'
import { parseListenSpec, Transports } from '../../src/transport/index.js'
import type { TransportOptions } from '../../src/transport/options.js'
import type { Listener, Side } from '../../src/transport/types.js'
import { Collector, request, response, until } from './fixtures/collector.js'

/** The part of a tap Test the helpers need. */
type T = { teardown(fn: () => unknown): void }

/** Start a Transports on the given listen specs, stopped at the end of the test. */
async function edge(t: T, specs: string[], opts?: TransportOptions, side: Side = 'public') {
  const c = new Collector()
  const tr = new Transports(specs.map((s) => parseListenSpec(s, side)), c, opts)
  await tr.start()
  t.teardown(() => tr.stop())
  return { tr, c }
}

function only(tr: Transports, proto: 'udp' | 'tcp'): Listener {
  const l = tr.listeners.find((x) => x.spec.proto === proto)
  if (!l) throw new Error(`no ${proto} listener`)
  return l
}

/** A raw TCP client that records everything it receives; destroyed at the end of the test. */
async function rawClient(t: T, port: number, host = '127.0.0.3') {
  const sock = connect({ host, port, localAddress: '127.0.0.9' })
  const state = { data: Buffer.alloc(0), closed: false, sock }
  sock.on('data', (d: Buffer) => (state.data = Buffer.concat([state.data, d])))
  sock.on('error', () => {})
  sock.on('close', () => (state.closed = true))
  t.teardown(() => {
    sock.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  return state
}

function write(sock: Socket, buf: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => sock.write(buf, (err) => (err ? reject(err) : resolve())))
}

t.test('UDP: two instances exchange a request and a response', async (t) => {
  const a = await edge(t, ['udp:127.0.0.2:0'])
  const b = await edge(t, ['udp:127.0.0.3:0'])
  const la = only(a.tr, 'udp')
  const lb = only(b.tr, 'udp')
  t.equal(lb.hostport, `127.0.0.3:${lb.port}`)
  t.not(lb.port, 0)
  b.c.reply = (inb) => b.tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener)
  a.tr.send(request('udp-1'), { proto: 'udp', address: '127.0.0.3', port: lb.port }, la)
  await until(() => a.c.messages.length === 1, 'response at A')
  const req = b.c.messages[0]!
  t.same(req.source, { proto: 'udp', address: '127.0.0.2', port: la.port })
  t.equal(req.listener, lb)
  t.equal(req.connId, undefined)
  t.ok(req.msg.isRequest)
  t.equal(a.c.messages[0]!.msg.status, 200)
  t.equal(a.c.messages[0]!.msg.getHeader('Call-ID'), 'udp-1')
})

t.test('UDP: keep-alives are ignored, a bad datagram is reported and the socket keeps serving', async (t) => {
  const b = await edge(t, ['udp:127.0.0.3:0'])
  const lb = only(b.tr, 'udp')
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  await new Promise<void>((r) => sock.bind(0, '127.0.0.9', r))
  const garbage = Buffer.from('this is not SIP\r\n\r\n')
  sock.send(Buffer.from('\r\n\r\n'), lb.port, '127.0.0.3')
  sock.send(Buffer.from('\r\n'), lb.port, '127.0.0.3')
  sock.send(garbage, lb.port, '127.0.0.3')
  sock.send(request('after-garbage'), lb.port, '127.0.0.3')
  await until(() => b.c.messages.length === 1, 'valid datagram after garbage')
  t.equal(b.c.parseErrors.length, 1, 'only the garbage is a parse error')
  const pe = b.c.parseErrors[0]!
  t.same(pe.buf, garbage)
  t.equal(pe.source.address, '127.0.0.9')
  t.equal(pe.listener, lb)
  t.same(b.c.callIds(), ['after-garbage'])
})

t.test('TCP: two instances, connection opened from the listener address and reused both ways', async (t) => {
  const a = await edge(t, ['tcp:127.0.0.2:0'])
  const b = await edge(t, ['tcp:127.0.0.3:0'])
  const lb = only(b.tr, 'tcp')
  b.c.reply = (inb) => b.tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  const dest = { proto: 'tcp' as const, address: '127.0.0.3', port: lb.port }
  a.tr.send(request('tcp-1', { transport: 'TCP' }), dest)
  a.tr.send(request('tcp-2', { transport: 'TCP' }), dest) // queued while connecting
  await until(() => a.c.messages.length === 2, 'two responses at A')
  t.same(b.c.callIds(), ['tcp-1', 'tcp-2'])
  const inb = b.c.messages[0]!
  t.equal(inb.source.address, '127.0.0.2', 'outbound connection bound to the listener host')
  t.equal(typeof inb.connId, 'number')
  t.equal(a.tr.connectionCount(), 1)
  t.equal(b.tr.connectionCount(), 1, 'responses went back over the same connection')
  t.same(a.c.callIds(), ['tcp-1', 'tcp-2'])
  t.equal(a.c.messages[0]!.connId, a.c.messages[1]!.connId)
  // B sends a new request to A's peer address without connId: reuses the inbound connection by address:port.
  b.tr.send(request('tcp-3', { transport: 'TCP' }), inb.source)
  await until(() => a.c.messages.length === 3, 'request from B over the reused connection')
  t.equal(b.tr.connectionCount(), 1)
  t.equal(a.tr.connectionCount(), 1)
})

t.test('TCP: a response goes back over the connection the request came in on', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'])
  b.c.reply = (inb) => b.tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await write(client.sock, request('same-conn', { transport: 'TCP' }))
  await until(() => client.data.length > 0 && client.data.includes('\r\n\r\n'), 'response on the client socket')
  t.ok(client.data.toString().startsWith('SIP/2.0 200'), 'client got the 200 on its own connection')
  t.equal(b.c.messages[0]!.source.address, '127.0.0.9')
  t.equal(b.c.messages[0]!.source.port, client.sock.localPort)
})

t.test('TCP: a message written 1 byte at a time, then two messages in one write', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'])
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  const msg = request('bytewise', { transport: 'TCP', body: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n' })
  for (let i = 0; i < msg.length; i++) await write(client.sock, msg.subarray(i, i + 1))
  await until(() => b.c.messages.length === 1, 'bytewise message')
  t.same(b.c.messages[0]!.msg.buf.subarray(b.c.messages[0]!.msg.start, b.c.messages[0]!.msg.end), msg)
  await write(client.sock, Buffer.concat([request('pair-1', { transport: 'TCP' }), request('pair-2', { transport: 'TCP', body: 'abc' })]))
  await until(() => b.c.messages.length === 3, 'both messages of one write')
  t.same(b.c.callIds(), ['bytewise', 'pair-1', 'pair-2'])
  t.equal(b.c.parseErrors.length, 0)
})

t.test('TCP: CRLFCRLF keep-alive gets a CRLF pong and does not disturb framing', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'])
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await write(client.sock, '\r\n\r\n')
  await until(() => client.data.length === 2, 'pong')
  t.equal(client.data.toString(), '\r\n')
  await write(client.sock, Buffer.concat([request('after-ping', { transport: 'TCP' }), Buffer.from('\r\n\r\n')]))
  await until(() => b.c.messages.length === 1 && client.data.length === 4, 'message and second pong')
  t.equal(b.c.parseErrors.length, 0)
})

t.test('TCP: an oversized message is reported, nothing is sent, the connection is closed', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'], { maxMessageSize: 1000 })
  // A handler that tries to answer must not get anything onto the broken stream.
  b.c.onParseError = function (err, buf, source, listener, connId) {
    this.parseErrors.push({ err, buf, source, listener, connId })
    b.tr.send(Buffer.from('SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n'), source, listener, connId)
  }
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await write(client.sock, request('huge', { transport: 'TCP', body: 'x'.repeat(5000) }))
  await until(() => client.closed, 'connection closed by the edge')
  t.equal(b.c.parseErrors.length, 1)
  t.equal((b.c.parseErrors[0]!.err as Error & { status?: number }).status, 413)
  t.equal(typeof b.c.parseErrors[0]!.connId, 'number')
  t.equal(client.data.length, 0, 'no bytes sent back')
  t.equal(b.c.messages.length, 0)
  await until(() => b.tr.connectionCount() === 0, 'connection removed from the table')
})

t.test('TCP: connections beyond maxConnections are refused', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'], { maxConnections: 2 })
  const port = only(b.tr, 'tcp').port
  const c1 = await rawClient(t, port)
  const c2 = await rawClient(t, port)
  await until(() => b.tr.connectionCount() === 2, 'two accepted')
  const c3 = await rawClient(t, port)
  await until(() => c3.closed, 'third connection closed')
  t.equal(b.tr.connectionCount(), 2)
  await write(c1.sock, request('still-served', { transport: 'TCP' }))
  await until(() => b.c.messages.length === 1, 'first connection still served')
  t.notOk(c1.closed || c2.closed)
})

t.test('TCP: idle connections are closed after tcpIdleTimeoutMs', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0'], { tcpIdleTimeoutMs: 150 })
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await until(() => b.tr.connectionCount() === 1, 'accepted')
  const t0 = Date.now()
  await until(() => client.closed, 'idle close', 3000)
  const waited = Date.now() - t0
  t.ok(waited >= 100, `closed after ${waited} ms, not before the timeout`)
  await until(() => b.tr.connectionCount() === 0, 'table empty')
})

t.test('send errors are reported, never thrown', async (t) => {
  const a = await edge(t, ['udp:127.0.0.2:0', 'tcp:127.0.0.2:0'], { connectTimeoutMs: 1000 })
  // A port that was just free: connecting to it is refused.
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.5', r))
  const closedPort = (probe.address() as { port: number }).port
  await new Promise<void>((r) => probe.close(() => r()))

  const dest = { proto: 'tcp' as const, address: '127.0.0.5', port: closedPort }
  t.doesNotThrow(() => a.tr.send(request('refused', { transport: 'TCP' }), dest))
  await until(() => a.c.sendErrors.length === 1, 'ECONNREFUSED reported')
  t.equal((a.c.sendErrors[0]!.err as NodeJS.ErrnoException).code, 'ECONNREFUSED')
  t.same(a.c.sendErrors[0]!.dest, dest)
  await until(() => a.tr.connectionCount() === 0, 'failed connection removed')

  // UDP: a datagram over the IPv4 maximum fails in the kernel; the destination is still known.
  const udpDest = { proto: 'udp' as const, address: '127.0.0.5', port: 5060 }
  a.tr.send(Buffer.alloc(70000, 0x41), udpDest)
  await until(() => a.c.sendErrors.length === 2, 'EMSGSIZE reported')
  t.equal((a.c.sendErrors[1]!.err as NodeJS.ErrnoException).code, 'EMSGSIZE')
  t.same(a.c.sendErrors[1]!.dest, udpDest)

  // No listener of the destination's family / bad arguments: reported asynchronously.
  a.tr.send(request('v6'), { proto: 'udp', address: '::1', port: 5060 })
  a.tr.send(request('bad-port'), { proto: 'udp', address: '127.0.0.5', port: 70000 })
  a.tr.send(request('hostname'), { proto: 'tcp', address: 'not-an-ip.invalid', port: 5060 })
  t.equal(a.c.sendErrors.length, 2, 'not reported synchronously (no re-entrancy into the caller)')
  await until(() => a.c.sendErrors.length === 5, 'three more errors')
  t.equal((a.c.sendErrors[2]!.err as NodeJS.ErrnoException).code, 'ENOLISTENER')
})

t.test('a throwing handler does not stop the transport', async (t) => {
  const b = await edge(t, ['udp:127.0.0.3:0', 'tcp:127.0.0.3:0'])
  let n = 0
  b.c.reply = () => {
    n++
    throw new Error('proxy bug')
  }
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  sock.send(request('boom-1'), only(b.tr, 'udp').port, '127.0.0.3')
  sock.send(request('boom-2'), only(b.tr, 'udp').port, '127.0.0.3')
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await write(client.sock, Buffer.concat([request('boom-3', { transport: 'TCP' }), request('boom-4', { transport: 'TCP' })]))
  await until(() => n === 4, 'all four messages delivered')
  t.equal(b.c.handlerErrors.length, 4)
  t.notOk(client.closed)
})

t.test('start() names the address it cannot bind and releases what it bound', async (t) => {
  const a = await edge(t, ['udp:127.0.0.2:0'])
  const busy = only(a.tr, 'udp').port
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.2', r))
  const tcpPort = (probe.address() as { port: number }).port
  await new Promise<void>((r) => probe.close(() => r()))

  const c = new Collector()
  const clash = new Transports([parseListenSpec(`tcp:127.0.0.2:${tcpPort}`, 'public'), parseListenSpec(`udp:127.0.0.2:${busy}`, 'public')], c)
  await t.rejects(clash.start(), { message: new RegExp(`udp:127\\.0\\.0\\.2:${busy} \\(public\\).*EADDRINUSE`) })
  // the TCP server bound first must have been closed again
  const again = createServer()
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject)
    again.listen(tcpPort, '127.0.0.2', resolve)
  })
  await new Promise<void>((r) => again.close(() => r()))
  t.pass('port released')
})

t.test('stop() closes connections and later sends are reported', async (t) => {
  const b = await edge(t, ['tcp:127.0.0.3:0', 'udp:127.0.0.3:0'])
  const client = await rawClient(t, only(b.tr, 'tcp').port)
  await until(() => b.tr.connectionCount() === 1, 'accepted')
  await b.tr.stop()
  await until(() => client.closed, 'client sees the close')
  t.equal(b.tr.connectionCount(), 0)
  b.tr.send(request('late'), { proto: 'udp', address: '127.0.0.9', port: 5060 })
  b.tr.send(request('late'), { proto: 'tcp', address: '127.0.0.9', port: 5060 })
  await until(() => b.c.sendErrors.length === 2, 'errors after stop')
  t.same(b.c.sendErrors.map((e) => (e.err as NodeJS.ErrnoException).code), ['ESHUTDOWN', 'ESHUTDOWN'])
  await b.tr.stop() // idempotent
})

const v6ok = await new Promise<boolean>((resolve) => {
  const s = createSocket('udp6')
  s.once('error', () => resolve(false))
  s.bind(0, '::1', () => s.close(() => resolve(true)))
})

t.test('IPv6 on ::1 (UDP and TCP)', { skip: v6ok ? false : '::1 cannot be bound here (no IPv6 loopback)' }, async (t) => {
  const a = await edge(t, ['udp:[::1]:0', 'tcp:[::1]:0'])
  const b = await edge(t, ['udp:[::1]:0', 'tcp:[::1]:0'])
  const lbu = only(b.tr, 'udp')
  const lbt = only(b.tr, 'tcp')
  t.equal(lbu.hostport, `[::1]:${lbu.port}`)
  t.equal(b.tr.listenerFor('public', 'tcp', 6), lbt)
  t.equal(b.tr.listenerFor('public', 'tcp', 4), undefined)
  b.c.reply = (inb) => b.tr.send(response(inb.msg.getHeader('Call-ID')!), inb.source, inb.listener, inb.connId)
  a.tr.send(request('v6-udp'), { proto: 'udp', address: '[::1]', port: lbu.port })
  a.tr.send(request('v6-tcp', { transport: 'TCP' }), { proto: 'tcp', address: '::1', port: lbt.port })
  await until(() => a.c.messages.length === 2, 'both responses over IPv6')
  t.same(a.c.callIds().sort(), ['v6-tcp', 'v6-udp'])
  t.equal(b.c.messages[0]!.source.address, '::1')
})

t.test('listenerFor picks by side, proto and family', async (t) => {
  const c = new Collector()
  const tr = new Transports(
    [parseListenSpec('udp:127.0.0.2:0', 'public'), parseListenSpec('udp:127.0.0.3:0', 'internal'), parseListenSpec('tcp:127.0.0.3:0', 'internal')],
    c,
  )
  await tr.start()
  t.teardown(() => tr.stop())
  t.equal(tr.listenerFor('public', 'udp'), tr.listeners[0])
  t.equal(tr.listenerFor('internal', 'udp', 4), tr.listeners[1])
  t.equal(tr.listenerFor('internal', 'tcp'), tr.listeners[2])
  t.equal(tr.listenerFor('public', 'tcp'), undefined)
  t.same(tr.listeners.map((l) => l.id), [1, 2, 3])
  t.ok(tr.exceedsUdpMtu(1301) && !tr.exceedsUdpMtu(1300))
  // Sent "via" a public listener to an internal-only proto: falls back to a TCP listener of any side.
  let remote = ''
  const sink = createServer((s) => {
    remote = s.remoteAddress ?? '?'
    s.destroy()
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.4', r))
  t.teardown(() => new Promise<void>((r) => sink.close(() => r())))
  tr.send(request('x', { transport: 'TCP' }), { proto: 'tcp', address: '127.0.0.4', port: (sink.address() as { port: number }).port }, tr.listeners[0])
  await until(() => remote !== '', 'connection from the internal TCP listener address')
  t.equal(remote, '127.0.0.3')
})

t.test('TCP: a peer that does not read cannot grow the write queue without bound', async (t) => {
  const a = await edge(t, ['tcp:127.0.0.2:0'], { maxWriteQueue: 4096 })
  const sink = createServer((s) => s.pause())
  await new Promise<void>((r) => sink.listen(0, '127.0.0.4', r))
  t.teardown(() => new Promise<void>((r) => sink.close(() => r())))
  const dest = { proto: 'tcp' as const, address: '127.0.0.4', port: (sink.address() as { port: number }).port }
  const chunk = Buffer.alloc(2000, 0x41)
  // All three are queued before the connect completes, so the third one overflows 4096 bytes.
  a.tr.send(chunk, dest)
  a.tr.send(chunk, dest)
  a.tr.send(chunk, dest)
  await until(() => a.c.sendErrors.length === 1, 'ENOBUFS')
  t.equal((a.c.sendErrors[0]!.err as NodeJS.ErrnoException).code, 'ENOBUFS')
  t.same(a.c.sendErrors[0]!.dest, dest)
  await until(() => a.tr.connectionCount() === 0, 'stuck connection dropped')
})

t.test('unsupported transports, transports without a listener, and UDP buffer sizes', async (t) => {
  const a = await edge(t, ['udp:127.0.0.2:0'], { udpBufferSize: 1 << 20 })
  a.tr.send(request('sctp'), { proto: 'sctp' as 'tcp', address: '127.0.0.4', port: 5060 })
  await until(() => a.c.sendErrors.length === 1, 'EPROTONOSUPPORT')
  t.equal((a.c.sendErrors[0]!.err as NodeJS.ErrnoException).code, 'EPROTONOSUPPORT')
  // Outgoing TLS needs a TLS listener (its certificate and the side's source address).
  a.tr.send(request('tls'), { proto: 'tls', address: '127.0.0.4', port: 5061 })
  await until(() => a.c.sendErrors.length === 2, 'ENOLISTENER')
  t.equal((a.c.sendErrors[1]!.err as NodeJS.ErrnoException).code, 'ENOLISTENER')
  // A WebSocket peer is reached over its own connection only, never connected to.
  a.tr.send(request('ws'), { proto: 'wss', address: '127.0.0.4', port: 40000 })
  await until(() => a.c.sendErrors.length === 3, 'ENOTCONN')
  t.equal((a.c.sendErrors[2]!.err as NodeJS.ErrnoException).code, 'ENOTCONN')
  t.equal(a.c.handlerErrors.length, 0, 'buffer sizes applied without error')
})
