// RFC 3261 §16.3 step 4: a request that carries the edge's own Via with the branch the edge computes for it
// again has looped: 482 (a Via of ours with another branch is a spiral: test/proxy/spiral.test.ts).
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { rawUdp } from '../helpers/udp.js'

t.test('a request sent back unchanged gets 482, one with a look-alike port in a Via does not', async (t) => {
  const backend = await rawUdp(t, '127.0.11.41')
  // A four-digit port, so that a longer port with the same prefix (50621) can stand in the Via.
  const { host, port } = await startEdge(t, '127.0.11.40', { backends: [`sip:${backend.address}:${backend.port}`] }, 5062)
  const caller = await rawUdp(t, '127.0.11.42')
  const invite = (callId: string, extraVia: string): string =>
    `INVITE sip:1@${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK${callId};rport\r\n` +
    `Via: ${extraVia}\r\nMax-Forwards: 70\r\nFrom: <sip:a@${caller.address}>;tag=1\r\nTo: <sip:1@${host}>\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`
  caller.send(invite('looped', `SIP/2.0/UDP 127.0.11.43:5060;branch=z9hG4bKupstream`), host, port)
  // The backend, misconfigured as a proxy, sends the INVITE straight back to the edge, its Via on top.
  const got = await backend.next((m) => m.callId === 'looped')
  const back = got.buf.toString('latin1', got.start, got.end)
    .replace('\r\n', `\r\nVia: SIP/2.0/UDP ${backend.address}:${backend.port};branch=z9hG4bKback;rport\r\n`)
  backend.send(back, host, port)
  t.equal((await backend.next((m) => m.callId === 'looped' && m.status >= 200)).status, 482, 'our Via, same request: 482')
  caller.send(invite('lookalike', `SIP/2.0/UDP ${host}:${port}9;branch=z9hG4bKother`), host, port)
  const fwd = await backend.next((m) => m.callId === 'lookalike')
  t.equal(fwd.method, 'INVITE', 'a Via with a longer port is someone else: forwarded')
})
