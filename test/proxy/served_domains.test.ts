// Served domains and inbound trunks: which Request-URI hosts the edge takes as its own (config `domains`,
// Kamailio's alias=), and which public sources it dispatches whatever host they name (`inboundTrunks`:
// carriers, an upstream proxy), without becoming an open relay for anyone else.
import t, { type Test } from 'tap'
import { startEdge } from '../helpers/edge.js'
import { answer, invite, is } from '../helpers/scripted.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'
import type { SipMessage } from '../../src/sip/index.js'
import { fileURLToPath } from 'node:url'
import { startKamailio } from '../helpers/kamailio.js'
import { describe, runUac, startUas } from '../helpers/sipp.js'

const EDGE = '127.0.138.1'
const CARRIER = '127.0.138.20' // inbound trunk, default set
const CARRIER_B = '127.0.138.21' // inbound trunk with a set of its own
const STRANGER = '127.0.138.30'

/** Backends that answer every INVITE 200 and count what they got. */
async function backend(t: Test, address: string): Promise<RawUdp> {
  const b = await rawUdp(t, address)
  b.socket.on('message', () => {
    const m = b.received[b.received.length - 1]
    if (m?.isRequest && m.method === 'INVITE') answer(b, m, 200)
  })
  return b
}

async function setup(t: Test) {
  const main = await backend(t, '127.0.138.11')
  const carrierSet = await backend(t, '127.0.138.12')
  const e = await startEdge(t, EDGE, {
    backends: [`sip:${main.address}:${main.port}`, `set=carrier:sip:${carrierSet.address}:${carrierSet.port}`],
    domains: ['pbx.example.com', 'alias.example.com:5080'],
    inboundTrunks: [`${CARRIER}/32`, `set=carrier:${CARRIER_B}`],
  })
  const call = async (from: string, ruri: string, lines: string[] = []): Promise<SipMessage> => {
    const phone = await rawUdp(t, from)
    const callId = `dom-${Math.random().toString(36).slice(2)}`
    phone.send(invite({ caller: phone, ruri, callId, lines }), e.host, e.port)
    return phone.next((m) => !m.isRequest && m.callId === callId && m.status >= 200, 3000)
  }
  return { main, carrierSet, e, call }
}

t.test('a Request-URI naming a served domain is dispatched like one naming the edge', async (t) => {
  const { main, call } = await setup(t)
  t.equal((await call(STRANGER, 'sip:+15551234567@pbx.example.com')).status, 200, 'bare domain: any port')
  t.equal((await call(STRANGER, 'sip:+15551234567@PBX.Example.COM:5062')).status, 200, 'case-insensitive, any port')
  t.equal((await call(STRANGER, 'sip:100@alias.example.com:5080')).status, 200, 'host:port domain on its port')
  t.equal((await call(STRANGER, 'sip:100@alias.example.com:5090')).status, 403, 'host:port domain: another port is not ours')
  const invites = main.received.filter((m) => m.isRequest && m.method === 'INVITE')
  t.equal(invites.length, 3)
  t.equal(invites[0]!.requestUri, 'sip:+15551234567@pbx.example.com', 'the Request-URI reaches the backend as sent')
})

t.test('a foreign host from a source that is no inbound trunk is still refused (no open relay)', async (t) => {
  const { main, carrierSet, call } = await setup(t)
  t.equal((await call(STRANGER, 'sip:+15551234567@carrier-b.example.net')).status, 403)
  t.equal((await call(STRANGER, 'sip:+15551234567@198.51.100.7')).status, 403)
  t.equal(main.received.length + carrierSet.received.length, 0, 'nothing reached a backend')
})

t.test('an inbound trunk is dispatched whatever its Request-URI host, to its own set when it has one', async (t) => {
  const { main, carrierSet, call } = await setup(t)
  const ok = await call(CARRIER, 'sip:+15551234567@pbx.other-name.example')
  t.equal(ok.status, 200)
  const got = await main.next((m) => m.isRequest && m.method === 'INVITE')
  t.equal(got.requestUri, 'sip:+15551234567@pbx.other-name.example', 'R-URI kept: Asterisk matches the DID in its user part')
  t.equal((await call(CARRIER_B, 'sip:+15557654321@203.0.113.50')).status, 200)
  const b = await carrierSet.next((m) => m.isRequest && m.method === 'INVITE')
  t.equal(b.requestUri, 'sip:+15557654321@203.0.113.50', 'set=carrier: the carrier set took it')
  t.equal(main.received.filter((m) => m.isRequest && m.method === 'INVITE').length, 1, 'and not the default set')
})

t.test('an inbound trunk cannot relay to another external host: a Route past the edge is refused', async (t) => {
  const { main, e, call } = await setup(t)
  const past = await call(CARRIER, 'sip:+15551234567@pbx.example.com', ['Route: <sip:198.51.100.9;lr>'])
  t.equal(past.status, 403, 'Route naming another host')
  const ours = await call(CARRIER, 'sip:+15551234567@victim.example.net', [`Route: <sip:${e.host}:${e.port};lr>`])
  t.equal(ours.status, 200, "a Route naming the edge (the upstream's outbound proxy setting) is the edge's own: popped, dispatched")
  const inv = await main.next(is(ours.callId, 'INVITE'))
  t.equal(inv.getHeader('Route'), undefined, 'no Route left toward the backend')
  t.equal(inv.requestUri, 'sip:+15551234567@victim.example.net')
  t.equal(main.received.filter((m) => m.isRequest && m.method === 'INVITE').length, 1, 'only the dispatched call reached a backend')
})

t.test('SIGHUP: domains and inbound trunks change on a running edge', async (t) => {
  const { e, call } = await setup(t)
  t.equal((await call(STRANGER, 'sip:1@new.example.org')).status, 403)
  await e.edge.reload({ ...e.edge.config, domains: ['new.example.org'], inboundTrunks: [STRANGER] })
  t.equal((await call(STRANGER, 'sip:1@new.example.org')).status, 200, 'new domain served')
  t.equal((await call(STRANGER, 'sip:1@elsewhere.example')).status, 200, 'new trunk dispatched')
  t.equal((await call(CARRIER, 'sip:1@elsewhere.example')).status, 403, 'the old trunk is not one any more')
  t.equal((await call(CARRIER, 'sip:1@pbx.example.com')).status, 403, 'nor the old domain ours')
})

t.test('behind a real upstream proxy (Kamailio keeping the carrier Request-URI): SIPp calls reach the backend and end', async (t) => {
  const upstream = '127.0.138.40'
  const uas = await startUas({ scenario: 'uas', ip: '127.0.138.41', t })
  const e = await startEdge(t, EDGE, { backends: [`sip:${uas.id}`], inboundTrunks: [upstream] })
  const kam = await startKamailio(t, fileURLToPath(new URL('fixtures/upstream-kamailio.cfg', import.meta.url)), upstream, { EDGE: `sip:${e.target}` })
  const uac = await runUac({
    scenario: fileURLToPath(new URL('fixtures/uac_carrier.xml', import.meta.url)),
    target: `${kam.address}:${kam.port}`,
    localIp: '127.0.138.42',
    service: '+15551234567',
    calls: 5,
    rate: 10,
    t,
  })
  t.equal(uac.failed, 0, describe(uac))
  t.equal(uac.successful, 5, 'INVITE, 200, ACK and BYE through Kamailio and the edge')
  t.match(kam.child.output().stderr, /upstream: INVITE sip:\+15551234567@pbx\.example\.com from 127\.0\.138\.42/, 'Kamailio kept the carrier Request-URI')
  t.equal((await uas.stop()).successful, 5, 'the backend answered every call')
  t.equal(e.edge.stats.counters.relayRefused, 0, 'nothing refused as relaying')

  // The same Request-URI sent straight to the edge by a source that is not the upstream: refused.
  const direct = await runUac({
    scenario: fileURLToPath(new URL('fixtures/uac_carrier.xml', import.meta.url)),
    target: e.target,
    localIp: '127.0.138.43',
    service: '+15551234567',
    calls: 1,
    rate: 1,
    recvTimeoutMs: 2000,
    timeoutS: 10,
    t,
  })
  t.equal(direct.successful, 0, 'a stranger gets no call through')
})
