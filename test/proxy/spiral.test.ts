// RFC 3261 §16.3 step 4 (and RFC 5393 §4.2): "If the request contains a Via header field with a sent-by value
// that equals a value placed into previous requests by the proxy, the request has been forwarded by this
// element before. The request has either looped or is legitimately spiraling through the element. [...] If the
// parameters match, the request has looped. If they differ, the request is spiraling, and processing
// continues." The hairpinned DID: a backend dials out, the carrier proxy keeps the Vias and sends the call
// back to the edge with a new Request-URI (the DID hosted behind it) and a new branch.
import t from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

const EDGE = '127.0.71.1'

/** What a carrier proxy that keeps the Vias does: its Via on top, Max-Forwards - 1, maybe a new Request-URI. */
function proxyBack(carrier: RawUdp, got: SipMessage, branch: string, newRuri?: string): string {
  let text = got.buf.toString('latin1', got.start, got.end)
  if (newRuri) text = text.replace(/^INVITE \S+/, `INVITE ${newRuri}`)
  text = text.replace(/\r\nMax-Forwards: (\d+)/i, (_m, n: string) => `\r\nMax-Forwards: ${Number(n) - 1}`)
  return text.replace('\r\n', `\r\nVia: SIP/2.0/UDP ${carrier.address}:${carrier.port};branch=${branch};rport\r\n`)
}

t.test('a call hairpinned by the carrier with a new Request-URI spirals; sent back unchanged it loops (482)', async (t) => {
  const b1 = await rawUdp(t, '127.0.71.11')
  const b2 = await rawUdp(t, '127.0.71.12')
  const carrier = await rawUdp(t, '127.0.71.50')
  const { port } = await startEdge(t, EDGE, {
    backends: [`sip:${b1.address}:${b1.port}`, `sip:${b2.address}:${b2.port}`],
    trunk: `sip:${carrier.address}:${carrier.port}`,
    maskCallId: true,
  })
  // The Asterisk on b1 dials +15550100, a number the carrier routes back to this same platform.
  b1.send(
    `INVITE sip:+15550100@${carrier.address}:${carrier.port} SIP/2.0\r\nVia: SIP/2.0/UDP ${b1.address}:${b1.port};branch=z9hG4bKout1;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:100@${b1.address}>;tag=b1tag\r\nTo: <sip:+15550100@${carrier.address}>\r\n` +
      `Call-ID: hairpin-1@${b1.address}\r\nCSeq: 1 INVITE\r\nContact: <sip:100@${b1.address}:${b1.port}>\r\nContent-Length: 0\r\n\r\n`,
    EDGE,
    port,
  )
  const out = await carrier.next((m) => m.method === 'INVITE')
  t.ok(out.callId.startsWith('se1.'), 'the carrier sees the masked Call-ID')

  // Spiral: same dialog identifiers, new Request-URI (the DID, hosted behind the edge), new branch.
  carrier.send(proxyBack(carrier, out, 'z9hG4bKcarrier1', `sip:+15550100@${EDGE}:${port}`), EDGE, port)
  const isSpiral = (m: SipMessage): boolean => m.method === 'INVITE' && m.callId === out.callId
  const spiral = await Promise.any([b1.next(isSpiral, 2000), b2.next(isSpiral, 2000)]).catch(() => undefined)
  const reply = await carrier.next((m) => !m.isRequest && m.via.branch === 'z9hG4bKcarrier1' && m.status > 100, 300).catch(() => undefined)
  t.equal(reply?.status, undefined, 'no 482 (nor any final answer) for the spiral')
  t.ok(spiral, 'the spiral is dispatched to a backend as a new inbound call')
  t.equal(spiral?.uri.user, '+15550100', 'with the DID as its Request-URI')
  t.equal(spiral?.vias.length, 3, 'its Vias show both passes through the edge and the carrier between them')

  // Loop: the carrier sends the request back exactly as it got it (its Via on top): nothing that decides
  // routing changed, so the branch the edge computes equals the one in its own Via.
  carrier.send(proxyBack(carrier, out, 'z9hG4bKcarrier2'), EDGE, port)
  const loop = await carrier.next((m) => !m.isRequest && m.via.branch === 'z9hG4bKcarrier2' && m.status >= 200)
  t.equal(loop.status, 482, 'the unchanged request is a loop: 482')
  await new Promise((r) => setTimeout(r, 100))
  const invites = [...b1.received, ...b2.received].filter((m) => m.method === 'INVITE' && m.callId === out.callId)
  t.equal(invites.length, 1, 'the loop went nowhere: the backends saw the spiral only')
})

t.test('a new CSeq or a new To tag is another request, not a loop', async (t) => {
  const b1 = await rawUdp(t, '127.0.71.21')
  const { port } = await startEdge(t, '127.0.71.2', { backends: [`sip:${b1.address}:${b1.port}`] })
  const caller = await rawUdp(t, '127.0.71.22')
  const invite = (cseq: number, branch: string): string =>
    `INVITE sip:1@127.0.71.2:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=${branch};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:a@${caller.address}>;tag=c1\r\nTo: <sip:1@127.0.71.2>\r\nCall-ID: spiral-cseq\r\n` +
    `CSeq: ${cseq} INVITE\r\nContact: <sip:a@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`
  caller.send(invite(1, 'z9hG4bKc1'), '127.0.71.2', port)
  const first = await b1.next((m) => m.method === 'INVITE' && m.cseq.seq === 1)
  // The backend (acting as a proxy) sends it back with the edge's Via kept but a new CSeq: not the same request.
  const text = first.buf.toString('latin1', first.start, first.end).replace('CSeq: 1 INVITE', 'CSeq: 2 INVITE')
  b1.send(text.replace('\r\n', `\r\nVia: SIP/2.0/UDP ${b1.address}:${b1.port};branch=z9hG4bKb1x;rport\r\n`), '127.0.71.2', port)
  const second = await b1.next((m) => m.method === 'INVITE' && m.cseq.seq === 2)
  t.equal(second.vias.length, 4, 'forwarded again (edge, backend, edge, caller)')
})
