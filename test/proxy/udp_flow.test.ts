// RFC 3261 §18.1.1 sends a request over 1300 bytes by TCP. Toward a client that reached the edge over UDP,
// that is a connection to a NATed phone that takes none: a 2.2 KB re-INVITE waited for the TCP connect
// timeout (5 s) before falling back to UDP, every time. The edge keeps such a client on its UDP flow; the
// switch stays for next hops (backends, trunks) — test/proxy/mtu.test.ts.
import { createServer, type Socket } from 'node:net'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog } from '../helpers/flow.js'
import { rawUdp } from '../helpers/udp.js'

t.test('a large in-dialog request toward a UDP caller goes over UDP at once, no TCP attempt', async (t) => {
  const backend = await rawUdp(t, '127.0.76.11')
  const { host, port } = await startEdge(t, '127.0.76.1', { backends: [`sip:${backend.address}:${backend.port}`] })
  const caller = await rawUdp(t, '127.0.76.30')
  // Something listens on the caller's address and port over TCP, to see whether the edge tries it.
  const connections: Socket[] = []
  const server = createServer((s) => connections.push(s))
  await new Promise<void>((r) => server.listen(caller.port, caller.address, () => r()))
  t.teardown(() => {
    for (const s of connections) s.destroy()
    server.close()
  })

  caller.send(
    `INVITE sip:100@${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKmtu1;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al1\r\nTo: <sip:100@${host}>\r\nCall-ID: udp-flow-1\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`,
    host,
    port,
  )
  const inv = await backend.next((m) => m.method === 'INVITE')
  answer(backend, inv, 200, { host, port }, {
    toTag: 'ast1',
    headers: [...inv.getHeaders('Record-Route').map((v): [string, string] => ['Record-Route', v]), ['Contact', `<sip:100@${backend.address}:${backend.port}>`]],
  })
  await caller.next((m) => m.status === 200)

  // The callee side re-INVITEs with a 2.2 KB SDP (many codecs, ICE candidates).
  const sdp = 'v=0\r\n' + 'a=x-filler:' + 'y'.repeat(2200) + '\r\n'
  const reinvite = inDialog({
    method: 'INVITE',
    ruri: `sip:alice@${caller.address}:${caller.port}`,
    via: { host: backend.address, port: backend.port, branch: 'z9hG4bKbigre' },
    route: inv.recordRoutes.map((r) => r.raw),
    from: `<sip:100@${host}>;tag=ast1`,
    to: `<sip:alice@${caller.address}>;tag=al1`,
    callId: 'udp-flow-1',
    cseq: 2,
    lines: [`Contact: <sip:100@${backend.address}:${backend.port}>`, 'Content-Type: application/sdp'],
  }).replace('Content-Length: 0\r\n\r\n', `Content-Length: ${sdp.length}\r\n\r\n${sdp}`)
  const sentAt = Date.now()
  backend.send(reinvite, host, port)
  const got = await caller.next((m) => m.method === 'INVITE' && m.cseq.seq === 2, 1500).catch(() => undefined)
  t.ok(got, 'the re-INVITE arrived over UDP')
  t.ok(Date.now() - sentAt < 1000, 'without waiting for a connection')
  t.equal(got?.via.transport, 'UDP', 'its top Via says UDP')
  t.ok((got?.end ?? 0) - (got?.start ?? 0) > 2200, 'whole')
  t.equal(connections.length, 0, 'no TCP connection was attempted toward the caller')
})
