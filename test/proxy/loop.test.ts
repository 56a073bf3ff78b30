// RFC 3261 §16.3 step 4: a request that already carries the edge's own Via has looped: 482.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { rawUdp } from '../helpers/udp.js'

t.test('a request carrying our own Via gets 482, one with a look-alike port does not', async (t) => {
  const backend = await rawUdp(t, '127.0.11.41')
  // A four-digit port, so that a longer port with the same prefix (50621) can stand in the Via.
  const { host, port } = await startEdge(t, '127.0.11.40', { backends: [`sip:${backend.address}:${backend.port}`] }, 5062)
  const caller = await rawUdp(t, '127.0.11.42')
  const invite = (callId: string, extraVia: string): string =>
    `INVITE sip:1@${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK${callId};rport\r\n` +
    `Via: ${extraVia}\r\nMax-Forwards: 70\r\nFrom: <sip:a@${caller.address}>;tag=1\r\nTo: <sip:1@${host}>\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`
  caller.send(invite('looped', `SIP/2.0/UDP ${host}:${port};branch=z9hG4bKold`), host, port)
  t.equal((await caller.next((m) => m.callId === 'looped' && m.status >= 200)).status, 482, 'our Via: 482')
  caller.send(invite('lookalike', `SIP/2.0/UDP ${host}:${port}9;branch=z9hG4bKother`), host, port)
  const fwd = await backend.next((m) => m.callId === 'lookalike')
  t.equal(fwd.method, 'INVITE', 'a Via with a longer port is someone else: forwarded')
})
