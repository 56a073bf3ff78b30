// In-dialog requests follow the whole route set (RFC 3261 §16.4, §16.6 steps 6–7, §16.12), also when they
// carry the edge's `sk` token. A carrier Record-Routes its own SBC: the backend's ACK and BYE carry
// `Route: <edge inner>, <edge outer>, <carrier SBC>` and must reach that SBC, the next Route, not the trunk the
// INVITE went to. "If that URI does not contain an lr parameter, the proxy MUST [...] place the Request-URI
// into the Route header field as the last value [...] then place the first Route header field value into the
// Request-URI" (§16.6 step 6). And a strict-routing previous hop that leaves the edge's URI as Request-URI
// has it replaced by the last Route value (§16.4) — the remote target, which may be the edge's own alias of
// the backend's Contact. Topology hiding applies on these paths as on any request leaving the inside.
import t from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog, namesAny, recordRoutes } from '../helpers/flow.js'
import { freePort } from '../helpers/net.js'
import type { Teardownable } from '../helpers/proc.js'
import { rawUdp } from '../helpers/udp.js'

const PUBLIC = '127.0.72.1'
const INTERNAL = '127.0.72.9'
const BACKEND = '127.0.72.11'
const CALLEE_CONTACT = 'sip:callee@127.0.72.52:5060'

async function setup(t: Teardownable) {
  const backend = await rawUdp(t, BACKEND)
  const carrier = await rawUdp(t, '127.0.72.50') // the carrier's entry point: the edge's trunk
  const sbc = await rawUdp(t, '127.0.72.51') // the SBC the carrier Record-Routes for the dialog
  const port = await freePort(PUBLIC)
  await startEdge(
    t,
    PUBLIC,
    {
      listen: [`udp:${PUBLIC}:${port}`],
      internalListen: [`udp:${INTERNAL}:${port}`],
      backends: [`sip:${backend.address}:${backend.port}`],
      trunk: `sip:${carrier.address}:${carrier.port}`,
    },
    port,
  )
  return { backend, carrier, sbc, port }
}

/** Asterisk calls out; the carrier answers with `Record-Route: <sbc>, <edge>`; returns the 200 the backend got. */
async function outboundCall(t: Teardownable, sbcLr: boolean, callId: string) {
  const s = await setup(t)
  const { backend, carrier, sbc, port } = s
  backend.send(
    `INVITE sip:+15550123@127.0.72.52 SIP/2.0\r\nVia: SIP/2.0/UDP ${BACKEND}:${backend.port};branch=z9hG4bK${callId};rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:100@${BACKEND}>;tag=ast1\r\nTo: <sip:+15550123@127.0.72.52>\r\nCall-ID: ${callId}\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:100@${BACKEND}:${backend.port}>\r\nContent-Length: 0\r\n\r\n`,
    INTERNAL,
    port,
  )
  const inv = await carrier.next((m) => m.method === 'INVITE')
  const sbcUri = `sip:${sbc.address}:${sbc.port}${sbcLr ? ';lr' : ''}`
  answer(carrier, inv, 200, { host: PUBLIC, port }, {
    toTag: 'callee1',
    headers: [['Record-Route', `<${sbcUri}>, ${inv.getHeader('Record-Route')}`], ['Contact', `<${CALLEE_CONTACT}>`]],
  })
  const ok = await backend.next((m) => m.status === 200 && m.cseq.method === 'INVITE')
  /** The backend's in-dialog request along its route set (§12.2.1.1). */
  const send = (method: string, cseq: number): void =>
    backend.send(
      inDialog({
        method,
        ruri: ok.contacts[0]!.uriText,
        via: { host: BACKEND, port: backend.port, branch: `z9hG4bK${method}${callId}` },
        route: recordRoutes(ok).reverse(),
        from: `<sip:100@${BACKEND}>;tag=ast1`,
        to: ok.getHeader('To')!,
        callId,
        cseq,
      }),
      INTERNAL,
      port,
    )
  return { ...s, ok, sbcUri, send }
}

t.test('loose routing: the backend\'s ACK and BYE go to the carrier SBC named by the next Route', async (t) => {
  const { sbc, carrier, ok, sbcUri, send } = await outboundCall(t, true, 'rs-loose')
  t.same(recordRoutes(ok).length, 3, 'the backend learned <sbc>, <edge outer>, <edge inner>')
  send('ACK', 1)
  send('BYE', 2)
  const got: SipMessage[] = []
  for (const method of ['ACK', 'BYE']) {
    const m = await sbc.next((x) => x.method === method, 2000).catch(() => undefined)
    t.ok(m, `${method} reached the SBC`)
    if (!m) continue
    got.push(m)
    t.equal(m.requestUri, CALLEE_CONTACT, `${method}: loose router, Request-URI kept (the remote target)`)
    t.same(m.getHeaders('Route'), [`<${sbcUri}>`], `${method}: only the edge's own Routes were popped`)
  }
  t.notOk(carrier.received.some((m) => m.method === 'BYE' || m.method === 'ACK'), 'nothing went to the trunk')
  t.same(namesAny(got, [BACKEND, INTERNAL]), [], 'no internal address on that path either')
})

t.test('strict router in the route set: Request-URI and Route are swapped (§16.6 step 6)', async (t) => {
  const { sbc, sbcUri, send } = await outboundCall(t, false, 'rs-strict')
  send('BYE', 2)
  const bye = await sbc.next((m) => m.method === 'BYE', 2000).catch(() => undefined)
  t.ok(bye, 'the BYE reached the strict-routing SBC')
  t.equal(bye?.requestUri, sbcUri, 'its Request-URI is the strict router\'s URI')
  t.same(bye?.getHeaders('Route'), [`<${CALLEE_CONTACT}>`], 'the remote target is the last (here only) Route value')
  t.same(namesAny(bye ? [bye] : [], [BACKEND, INTERNAL]), [], 'no internal address')
})

t.test('a strict-routing previous hop: the edge\'s URI in the Request-URI is replaced by the last Route (§16.4)', async (t) => {
  const { backend, port } = await setup(t)
  const caller = await rawUdp(t, '127.0.72.30')
  caller.send(
    `INVITE sip:100@${PUBLIC}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKsp1;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al1\r\nTo: <sip:100@${PUBLIC}>\r\nCall-ID: rs-prev\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`,
    PUBLIC,
    port,
  )
  const inv = await backend.next((m) => m.method === 'INVITE')
  const backendContact = `sip:b@${BACKEND}:${backend.port}`
  answer(backend, inv, 200, { host: INTERNAL, port }, {
    toTag: 'b1',
    headers: [...inv.getHeaders('Record-Route').map((v): [string, string] => ['Record-Route', v]), ['Contact', `<${backendContact}>`]],
  })
  const ok = await caller.next((m) => m.status === 200)
  const rr = ok.recordRoutes
  t.equal(rr.length, 1, 'the caller sees one Record-Route, the edge\'s public entry')
  const alias = ok.contacts[0]!.uriText
  // An RFC 2543 proxy in front of the caller, holding route set [itself (strict), edge], received the BYE with
  // its own URI as Request-URI and `Route: <edge>, <remote target>`; it moved the first Route into the
  // Request-URI and sent it on: the edge gets its own Record-Route URI as Request-URI, the remote target last.
  caller.send(
    inDialog({
      method: 'BYE',
      ruri: rr[0]!.uriText,
      via: { host: caller.address, port: caller.port, branch: 'z9hG4bKspbye' },
      route: [`<${alias}>`],
      from: `<sip:alice@${caller.address}>;tag=al1`,
      to: ok.getHeader('To')!,
      callId: 'rs-prev',
      cseq: 2,
    }),
    PUBLIC,
    port,
  )
  const bye = await backend.next((m) => m.method === 'BYE')
  t.equal(bye.requestUri, backendContact, 'the backend gets its own Contact as Request-URI, not the edge\'s alias')
  t.equal(bye.getHeader('Route'), undefined, 'no Route left')

  // Toward the inside the token decides: a public party cannot steer a request elsewhere with a Route of its own.
  const elsewhere = await rawUdp(t, '127.0.72.99')
  caller.send(
    inDialog({
      method: 'INFO',
      ruri: alias,
      via: { host: caller.address, port: caller.port, branch: 'z9hG4bKspinfo' },
      route: [`<${rr[0]!.uriText}>`, `<sip:${elsewhere.address}:${elsewhere.port};lr>`],
      from: `<sip:alice@${caller.address}>;tag=al1`,
      to: ok.getHeader('To')!,
      callId: 'rs-prev',
      cseq: 3,
    }),
    PUBLIC,
    port,
  )
  const info = await backend.next((m) => m.method === 'INFO')
  t.equal(info.requestUri, backendContact, 'a public Route past the edge\'s does not take the request off its backend')
  t.equal(elsewhere.received.length, 0, 'nothing went to the host that Route named')
})
