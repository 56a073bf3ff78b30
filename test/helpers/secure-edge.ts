// An edge listening on UDP, TLS and WSS in front of one raw UDP backend that answers 200 to everything,
// for the TLS/WebSocket tests (issue 14). The certificates come from the test's own throw-away PKI.
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { startEdge } from './edge.js'
import { freePort, freeTcpPort } from './net.js'
import type { Teardownable } from './proc.js'
import { rawUdp, type RawUdp } from './udp.js'

export interface SecureEdgeOptions {
  host: string
  backendHost: string
  certFile: string
  keyFile: string
  caFile: string
  handshakeTimeoutMs?: number
  allowedOrigins?: string[]
}

export async function startSecureEdge(t: Teardownable, o: SecureEdgeOptions) {
  const backend = await rawUdp(t, o.backendHost)
  answerAll(backend)
  const port = await freePort(o.host)
  const tlsPort = await freeTcpPort(o.host)
  const wssPort = await freeTcpPort(o.host)
  const e = await startEdge(
    t,
    o.host,
    {
      listen: [`udp:${o.host}:${port}`, `tls:${o.host}:${tlsPort}`, `wss:${o.host}:${wssPort} path /ws`],
      backends: [`sip:${o.backendHost}:${backend.port}`],
      tls: { certFile: o.certFile, keyFile: o.keyFile, caFile: o.caFile, handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000 },
      ...(o.allowedOrigins ? { ws: { allowedOrigins: o.allowedOrigins, maxConnectionsPerSource: 100, pingIntervalMs: 30_000 } } : {}),
    },
    port,
  )
  return { ...e, backend, tlsPort, wssPort }
}

/** Answers every request but ACK with 200 (Record-Route copied back and a To tag added, as a UAS does). */
function answerAll(backend: RawUdp): void {
  backend.socket.on('message', (buf, rinfo) => {
    let m: SipMessage
    try {
      m = parseMessage(buf)
    } catch {
      return
    }
    if (!m.isRequest || m.method === 'ACK') return
    const keep = ['Via', 'From', 'Call-ID', 'CSeq', 'Record-Route'].flatMap((h) => m.getHeaders(h).map((v) => `${h}: ${v}`))
    const to = `To: ${m.getHeader('To')}${m.toTag === undefined ? ';tag=be1' : ''}`
    const text = ['SIP/2.0 200 OK', ...keep, to, `Contact: <sip:pbx@${backend.address}:${backend.port}>`, 'Content-Length: 0', '', ''].join('\r\n')
    backend.socket.send(Buffer.from(text), rinfo.port, rinfo.address)
  })
}
