// RFC 3261 §18.1.1: a request too large for UDP (over 1300 bytes) goes to the next hop over TCP, with the
// top Via saying so; a next hop that refuses TCP gets the same branch over UDP instead.
import { createServer, type Socket } from 'node:net'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { freePort } from '../helpers/net.js'
import { rawUdp } from '../helpers/udp.js'

function invite(callId: string, caller: { address: string; port: number }, edge: string, bodyBytes: number): string {
  const body = 'v=0\r\n' + 'a=x-filler:' + 'y'.repeat(Math.max(0, bodyBytes - 20)) + '\r\n'
  return (
    `INVITE sip:1@${edge} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK${callId};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:a@${caller.address}>;tag=1\r\nTo: <sip:1@${edge}>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:a@${caller.address}:${caller.port}>\r\nContent-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

t.test('a large INVITE goes over TCP to a backend that listens on TCP', async (t) => {
  const host = '127.0.11.51'
  const port = await freePort(host)
  let tcpData = ''
  const sockets: Socket[] = []
  const server = createServer((s) => {
    sockets.push(s)
    s.on('data', (d) => (tcpData += d.toString('latin1')))
  })
  await new Promise<void>((r) => server.listen(port, host, () => r()))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const udpSide = await rawUdp(t, host, port)
  const edge = await startEdge(t, '127.0.11.50', { backends: [`sip:${host}:${port}`] })
  const caller = await rawUdp(t, '127.0.11.52')
  caller.send(invite('big-tcp', caller, edge.target, 1600), edge.host, edge.port)
  const deadline = Date.now() + 3000
  while (!tcpData.includes('big-tcp') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.match(tcpData, /^INVITE sip:1@/, 'the INVITE came over TCP')
  t.match(tcpData, /\r\nVia: SIP\/2\.0\/TCP 127\.0\.11\.50:\d+;branch=z9hG4bK/, 'the top Via says TCP')
  t.equal(udpSide.received.length, 0, 'nothing over UDP')

  caller.send(invite('small-udp', caller, edge.target, 100), edge.host, edge.port)
  const small = await udpSide.next((m) => m.callId === 'small-udp')
  t.equal(small.via.transport, 'UDP', 'a small INVITE stays on UDP')
})

t.test('a backend without TCP gets the large INVITE over UDP, same branch', async (t) => {
  const backend = await rawUdp(t, '127.0.11.61')
  const edge = await startEdge(t, '127.0.11.60', { backends: [`sip:${backend.address}:${backend.port}`] })
  const caller = await rawUdp(t, '127.0.11.62')
  caller.send(invite('big-fallback', caller, edge.target, 1600), edge.host, edge.port)
  const got = await backend.next((m) => m.callId === 'big-fallback')
  t.equal(got.via.transport, 'UDP', 'fell back to UDP after the refused connection')
  t.ok(got.end - got.start > 1300, `the whole ${got.end - got.start}-byte request arrived`)
})
