// REFER keeps its Refer-To (RFC 3515 §2.4.1: "A REFER request MUST contain exactly one Refer-To header field
// value"). Asterisk's blind transfer sends `Refer-To: <sip:200@ASTERISK-IP>`: the topology hiding must rewrite
// that internal host (an edge alias the referee can INVITE) rather than drop a header the method requires,
// and Referred-By (RFC 3892), copied by the referee into its INVITE, names the edge instead of the container.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog, namesAny } from '../helpers/flow.js'
import { freePort } from '../helpers/net.js'
import { rawUdp } from '../helpers/udp.js'

const PUBLIC = '127.0.75.1'
const INTERNAL = '127.0.75.9'
const BACKEND = '127.0.75.11'

t.test('a backend\'s REFER reaches the caller with a usable Refer-To and no internal address', async (t) => {
  const b1 = await rawUdp(t, BACKEND)
  const caller = await rawUdp(t, '127.0.75.30')
  const port = await freePort(PUBLIC)
  await startEdge(
    t,
    PUBLIC,
    { listen: [`udp:${PUBLIC}:${port}`], internalListen: [`udp:${INTERNAL}:${port}`], backends: [`sip:${BACKEND}:${b1.port}`] },
    port,
  )
  caller.send(
    `INVITE sip:100@${PUBLIC}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKref1;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al1\r\nTo: <sip:100@${PUBLIC}>\r\nCall-ID: refer-1\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`,
    PUBLIC,
    port,
  )
  const inv = await b1.next((m) => m.method === 'INVITE')
  const rr = inv.getHeaders('Record-Route')
  answer(b1, inv, 200, { host: INTERNAL, port }, {
    toTag: 'ast1',
    headers: [...rr.map((v): [string, string] => ['Record-Route', v]), ['Contact', `<sip:100@${BACKEND}:${b1.port}>`]],
  })
  await caller.next((m) => m.status === 200)

  // Blind transfer from the dialplan: REFER to the caller, Refer-To the extension on this Asterisk.
  b1.send(
    inDialog({
      method: 'REFER',
      ruri: `sip:alice@${caller.address}:${caller.port}`,
      via: { host: BACKEND, port: b1.port, branch: 'z9hG4bKastrefer' },
      route: inv.recordRoutes.map((r) => r.raw), // the UAS's route set: Record-Route in order (§12.1.1)
      from: `<sip:100@${PUBLIC}>;tag=ast1`,
      to: `<sip:alice@${caller.address}>;tag=al1`,
      callId: 'refer-1',
      cseq: 101,
      lines: [
        `Refer-To: <sip:200@${BACKEND}:${b1.port}>`,
        `Referred-By: <sip:100@${BACKEND}>`,
        `Contact: <sip:100@${BACKEND}:${b1.port}>`,
      ],
    }),
    INTERNAL,
    port,
  )
  const refer = await caller.next((m) => m.method === 'REFER')
  const referTo = refer.getHeader('Refer-To')
  t.ok(referTo, 'the REFER still has its Refer-To')
  t.match(referTo ?? '', new RegExp(`^<sip:200@${PUBLIC.replace(/\./g, '\\.')}:${port};ct=[\\w-]+>$`), 'pointing at the edge, user kept')
  t.equal(refer.getHeader('Referred-By'), `<sip:100@${PUBLIC}:${port}>`, 'Referred-By names the edge')
  t.same(namesAny([refer], [BACKEND, INTERNAL]), [], 'no internal address in the REFER')

  // The referee acts on it (RFC 3515 §2.4.3): a new INVITE to the Refer-To URI, with the Referred-By.
  const target = referTo!.slice(1, -1)
  caller.send(
    `INVITE ${target} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKref2;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al2\r\nTo: <sip:200@${PUBLIC}>\r\nCall-ID: refer-2\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nReferred-By: ${refer.getHeader('Referred-By')}\r\n` +
      'Content-Length: 0\r\n\r\n',
    PUBLIC,
    port,
  )
  const followed = await b1.next((m) => m.method === 'INVITE' && m.callId === 'refer-2')
  t.equal(followed.requestUri, `sip:200@${BACKEND}:${b1.port}`, 'the triggered INVITE reaches the referred extension')
})
