// The SIPS URI scheme through the edge (RFC 3261 §26.2.2, RFC 5630): a request whose Request-URI is sips:
// must be carried over TLS on every hop. The edge refuses one that reached it over plain UDP (416), refuses
// to forward one to a backend it can reach only without TLS (480, Warning 380 "SIPS Not Allowed"), and,
// forwarding over TLS, Record-Routes with sips: URIs so that the rest of the dialog stays on TLS.
import { readFileSync } from 'node:fs'
import { connect as connectTls, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import t from 'tap'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { rawUdp } from '../helpers/udp.js'
import { makePki } from '../transport/fixtures/certs.js'

const EDGE = '127.0.14.1'
const CALLER = '127.0.14.40'
const pki = makePki()
t.teardown(() => pki.cleanup())
type T = Parameters<Parameters<typeof t.test>[1]>[0]

function invite(ruri: string, via: string, callId: string): string {
  return [`INVITE ${ruri} SIP/2.0`, `Via: SIP/2.0/${via};branch=z9hG4bK-${callId}`, 'Max-Forwards: 70',
    `From: <sips:alice@example.com>;tag=al1`, `To: <${ruri}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sips:alice@${CALLER}:5061>`, 'Content-Length: 0', '', ''].join('\r\n')
}

/** SIP messages (no bodies) read off a stream, in order. */
function reader(sock: TLSSocket): SipMessage[] {
  const got: SipMessage[] = []
  let buf = ''
  sock.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
      got.push(parseMessage(Buffer.from(buf.slice(0, end + 4))))
      buf = buf.slice(end + 4)
    }
  })
  return got
}

async function tlsCaller(t: T, port: number): Promise<{ sock: TLSSocket; got: SipMessage[] }> {
  const sock = connectTls({ host: EDGE, port, ca: readFileSync(pki.caFile), servername: 'edge.test' })
  sock.on('error', () => {})
  t.teardown(() => sock.destroy())
  const got = reader(sock)
  await new Promise<void>((resolve, reject) => { sock.once('secureConnect', resolve); sock.once('error', reject) })
  return { sock, got }
}

const tls = { certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, handshakeTimeoutMs: 10_000 }

t.test('a sips request that arrived over UDP is refused with 416', async (t) => {
  const backend = await rawUdp(t, '127.0.14.41')
  const { port } = await startEdge(t, EDGE, { backends: [`sip:127.0.14.41:${backend.port}`] })
  const caller = await rawUdp(t, CALLER)
  caller.send(invite(`sips:bob@${EDGE}:${port}`, `UDP ${CALLER}:${caller.port};rport`, 'sips-udp'), EDGE, port)
  const r = await caller.next((m) => !m.isRequest && m.status >= 200)
  t.equal(r.status, 416)
  t.equal(backend.received.length, 0, 'nothing reached the backend')
})

t.test('a sips request over TLS toward a UDP-only backend gets 480 with Warning 380, never plain UDP', async (t) => {
  const backend = await rawUdp(t, '127.0.14.41')
  const port = await freePort(EDGE)
  const tlsPort = await freeTcpPort(EDGE)
  await startEdge(t, EDGE, { listen: [`udp:${EDGE}:${port}`, `tls:${EDGE}:${tlsPort}`], backends: [`sip:127.0.14.41:${backend.port}`], tls }, port)
  const { sock, got } = await tlsCaller(t, tlsPort)
  sock.write(invite(`sips:bob@${EDGE}:${tlsPort}`, `TLS ${CALLER}:5061`, 'sips-480'))
  const r = await waitFor(() => got.find((m) => m.status >= 200), { what: 'a final response', timeoutMs: 5000 })
  t.equal(r.status, 480)
  t.match(r.getHeader('Warning'), /^380 \S+ "SIPS Not Allowed"$/)
  t.equal(backend.received.length, 0, 'nothing went to the backend over UDP')
})

t.test('a sips request goes on over TLS, Record-Routed with a sips: URI; a sip: request over TLS keeps sip:', async (t) => {
  // A TLS backend that answers 200 to INVITEs (certificate for 127.0.0.1, verified by the edge against the CA).
  const received: SipMessage[] = []
  const server = createTlsServer({ key: readFileSync(pki.server1.key), cert: readFileSync(pki.server1.cert) }, (s) => {
    s.on('error', () => {})
    const got = reader(s)
    s.on('data', () => {
      for (const m of got.splice(0)) {
        received.push(m)
        if (!m.isRequest || m.method !== 'INVITE') continue
        const copy = ['Via', 'From', 'Call-ID', 'CSeq', 'Record-Route'].flatMap((h) => m.getHeaders(h).map((v) => `${h}: ${v}`))
        s.write(['SIP/2.0 200 OK', ...copy, `To: ${m.getHeader('To')};tag=be1`, 'Contact: <sips:bob@127.0.0.1:5061>', 'Content-Length: 0', '', ''].join('\r\n'))
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const backendPort = (server.address() as { port: number }).port
  const port = await freePort(EDGE)
  const tlsPort = await freeTcpPort(EDGE)
  await startEdge(t, EDGE, { listen: [`udp:${EDGE}:${port}`, `tls:${EDGE}:${tlsPort}`], backends: [`sip:127.0.0.1:${backendPort};transport=tls`], tls }, port)
  const { sock, got } = await tlsCaller(t, tlsPort)
  sock.write(invite(`sips:bob@${EDGE}:${tlsPort}`, `TLS ${CALLER}:5061`, 'sips-ok'))
  const ok = await waitFor(() => got.find((m) => m.status >= 200), { what: 'a final response', timeoutMs: 5000 })
  t.equal(ok.status, 200)
  const inv = received.find((m) => m.method === 'INVITE')!
  t.match(inv.vias[0]!.raw, /^SIP\/2\.0\/TLS /, 'the backend got it over TLS')
  const rr = new RegExp(`^<sips:${EDGE.replaceAll('.', '\\.')}:${tlsPort};lr;sk=[^>]+>$`)
  t.match(inv.getHeaders('Record-Route').join(', '), rr, 'the backend sees a sips: Record-Route (TLS implied)')
  t.match(ok.getHeaders('Record-Route').join(', '), rr, 'and so does the caller')
  sock.write(invite(`sip:bob@${EDGE}:${tlsPort}`, `TLS ${CALLER}:5061`, 'sip-over-tls'))
  const ok2 = await waitFor(() => got.find((m) => m.status >= 200 && m.callId === 'sip-over-tls'), { what: 'a final response', timeoutMs: 5000 })
  t.match(ok2.getHeaders('Record-Route').join(', '), new RegExp(`^<sip:${EDGE.replaceAll('.', '\\.')}:${tlsPort};transport=tls;lr;sk=`), 'a sip: request over TLS: sip: with transport=tls')
})
