// RFC 3263 next hops through the edge, against a real DNS server (dnsmasq in the test's network namespace):
// a trunk given by name, its SRV targets tried by priority, drawn by weight, failed over when one is dead,
// followed when the zone changes after the TTL, and kept while the resolver is unreachable.
import { Writable } from 'node:stream'
import pino from 'pino'
import t, { type Test } from 'tap'
import { startEdge } from '../helpers/edge.js'
import { freeTcpPort } from '../helpers/net.js'
import { createServer } from 'node:net'
import { buildResponse, parseMessage } from '../../src/sip/index.js'
import { startDnsmasq, type DnsRecords } from '../helpers/dnsmasq.js'
import { answer, inDialog, sleep } from '../helpers/scripted.js'
import { rawUdp, request, type RawUdp } from '../helpers/udp.js'
import type { SipMessage } from '../../src/sip/index.js'

/** A carrier server that answers every request with `status` (0: never answers). */
async function carrier(t: Test, address: string, status = 200): Promise<RawUdp> {
  const c = await rawUdp(t, address)
  c.socket.on('message', () => {
    const m = c.received[c.received.length - 1]
    if (m?.isRequest && m.method !== 'ACK' && status > 0) answer(c, m, status)
  })
  return c
}

/** A carrier server on TCP that answers every INVITE 200 on its connection. */
async function tcpCarrier(t: Test, address: string): Promise<{ address: string; port: number; invites: number }> {
  const state = { address, port: 0, invites: 0 }
  const server = createServer((sock) => {
    let buf = ''
    sock.on('data', (d) => {
      buf += d.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const text = buf.slice(0, end + 4)
        buf = buf.slice(end + 4)
        const m = parseMessage(Buffer.from(text, 'latin1'))
        if (!m.isRequest || m.method !== 'INVITE') continue
        state.invites++
        sock.write(buildResponse(m, 200, undefined, { toTag: 'tcp1', headers: [['Contact', `<sip:callee@${address}:${state.port};transport=tcp>`]] }))
      }
    })
    sock.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, address, () => r()))
  state.port = (server.address() as { port: number }).port
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return state
}

/** Lines the edge logs, parsed. */
function logSink(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  return { logger: pino({ level: 'info' }, stream), lines }
}

/**
 * An edge whose backend (`pbx`, a raw socket) places calls; `trunk` names the carrier. `send` has the backend
 * send a request out and resolves with the final response it gets back.
 */
async function outbound(t: Test, base: string, dnsServer: string, o: { trunk?: string; staleMs?: number; logger?: pino.Logger; inviteTimeoutMs?: number } = {}) {
  const pbx = await rawUdp(t, `${base}.2`)
  const e = await startEdge(t, `${base}.1`, {
    backends: [`sip:${pbx.address}:${pbx.port}`],
    ...(o.trunk ? { trunk: o.trunk } : {}),
    dns: { servers: [dnsServer], staleMs: o.staleMs ?? 3_600_000, timeoutMs: 300 },
    failover: { maxTries: 3, inviteTimeoutMs: o.inviteTimeoutMs ?? 500, codes: [408, 500, 503], timerCMs: 181_000 },
    ...(o.logger ? { logger: o.logger } : {}),
  })
  let n = 0
  const send = async (method: string, ruri = 'sip:+15551234567@carrier.test'): Promise<SipMessage> => {
    const callId = `dns-${base}-${++n}`
    pbx.send(request({ method, ruri, from: { host: pbx.address, port: pbx.port }, callId }), e.host, e.port)
    return pbx.next((m) => !m.isRequest && m.callId === callId && m.status >= 200, 8000)
  }
  return { pbx, e, send }
}

const requests = (c: RawUdp, method: string): number => c.received.filter((m) => m.isRequest && m.method === method).length

t.test('SRV priority: every call goes to the lowest priority target while it answers', async (t) => {
  const [a, b] = [await carrier(t, '127.0.139.11'), await carrier(t, '127.0.139.12')]
  const dns = await startDnsmasq(t, '127.0.139.53', {
    naptr: [['carrier.test', 10, 10, 's', 'SIP+D2U', '_sip._udp.carrier.test']],
    srv: [
      ['_sip._udp.carrier.test', 'b.carrier.test', b.port, 20, 100],
      ['_sip._udp.carrier.test', 'a.carrier.test', a.port, 10, 1],
    ],
    a: [['a.carrier.test', a.address], ['b.carrier.test', b.address]],
    ttlS: 60,
  })
  const { send } = await outbound(t, '127.0.139', dns.server, { trunk: 'sip:carrier.test' })
  for (let i = 0; i < 10; i++) t.equal((await send('INVITE')).status, 200)
  t.equal(requests(a, 'INVITE'), 10, 'priority 10 took all ten')
  t.equal(requests(b, 'INVITE'), 0, 'priority 20 none, whatever its weight')
  t.equal(a.received.find((m) => m.method === 'INVITE')!.requestUri, 'sip:+15551234567@carrier.test', 'the Request-URI is kept (RFC 3263 picks the packet destination only)')
})

t.test('SRV weights: within one priority, the load follows the weights (RFC 2782)', async (t) => {
  const [a, b] = [await carrier(t, '127.0.140.11'), await carrier(t, '127.0.140.12')]
  const dns = await startDnsmasq(t, '127.0.140.53', {
    srv: [
      ['_sip._udp.carrier.test', 'a.carrier.test', a.port, 10, 80],
      ['_sip._udp.carrier.test', 'b.carrier.test', b.port, 10, 20],
    ],
    a: [['a.carrier.test', a.address], ['b.carrier.test', b.address]],
    ttlS: 60,
  })
  const { send } = await outbound(t, '127.0.140', dns.server, { trunk: 'sip:carrier.test' })
  const N = 300
  const statuses = new Set<number>()
  for (let i = 0; i < N; i++) statuses.add((await send('MESSAGE')).status)
  t.same([...statuses], [200], 'every request answered 200')
  const share = requests(a, 'MESSAGE') / N
  // Binomial, p = 0.8, n = 300: sd 0.023; the bounds are over 4 sd away.
  t.ok(share > 0.7 && share < 0.9, `weight 80 of 100 took ${(share * 100).toFixed(1)} % (expected 80 %)`)
  t.equal(requests(a, 'MESSAGE') + requests(b, 'MESSAGE'), N, 'no request lost or doubled')
})

t.test('a dead target (TCP refused), one answering 503 and a silent one: failover to the next SRV target', async (t) => {
  const busy = await carrier(t, '127.0.141.12', 503)
  const silent = await carrier(t, '127.0.141.13', 0)
  const good = await carrier(t, '127.0.141.14')
  const udp = (first: [string, number]): DnsRecords => ({
    srv: [
      ['_sip._udp.carrier.test', 'first.carrier.test', first[1], 10, 0],
      ['_sip._udp.carrier.test', 'good.carrier.test', good.port, 20, 0],
    ],
    a: [['first.carrier.test', first[0]], ['good.carrier.test', good.address]],
    ttlS: 60,
  })
  // Over UDP an unreachable port is silence to an unconnected socket (Linux reports ICMP only to connected
  // ones): the timer decides. Over TCP the refusal is immediate: a NAPTR for TCP, its first target refusing.
  const goodTcp = await tcpCarrier(t, '127.0.141.15')
  const refusing = await freeTcpPort('127.0.141.10')
  const tcp: DnsRecords = {
    naptr: [['carrier.test', 10, 10, 's', 'SIP+D2T', '_sip._tcp.carrier.test']],
    srv: [
      ['_sip._tcp.carrier.test', 'first.carrier.test', refusing, 10, 0],
      ['_sip._tcp.carrier.test', 'good.carrier.test', goodTcp.port, 20, 0],
    ],
    a: [['first.carrier.test', '127.0.141.10'], ['good.carrier.test', goodTcp.address]],
    ttlS: 60,
  }
  const cases: Array<[string, DnsRecords, () => number]> = [
    ['tcp refused', tcp, () => goodTcp.invites],
    ['503', udp([busy.address, busy.port]), () => requests(good, 'INVITE')],
    ['silent', udp([silent.address, silent.port]), () => requests(good, 'INVITE')],
  ]
  for (const [what, records, goodInvites] of cases) {
    const dns = await startDnsmasq(t, '127.0.141.53', records)
    const { send, e } = await outbound(t, '127.0.141', dns.server, { trunk: 'sip:carrier.test', inviteTimeoutMs: 500 })
    await sleep(200) // the trunk is resolved at start, in the background
    const before = goodInvites()
    const started = Date.now()
    t.equal((await send('INVITE')).status, 200, `${what}: the call is answered by the priority 20 target`)
    const took = Date.now() - started
    // A refusal and a 503 fail the branch at once; silence waits for the failover timer (500 ms here).
    if (what === 'silent') t.ok(took >= 500 && took < 3000, `${what}: after the failover timer (${took} ms)`)
    else t.ok(took < 450, `${what}: at once, before the failover timer (${took} ms)`)
    t.equal(goodInvites(), before + 1)
    // The failed target goes last for a while: the next call goes straight to the good one.
    const tried = requests(busy, 'INVITE') + requests(silent, 'INVITE')
    const again = Date.now()
    t.equal((await send('INVITE')).status, 200)
    t.equal(requests(busy, 'INVITE') + requests(silent, 'INVITE'), tried, `${what}: the failed target is not tried first again`)
    t.ok(Date.now() - again < 450, `${what}: the second call is not delayed`)
    t.equal(goodInvites(), before + 2)
    await e.edge.stop()
    await dns.stop()
  }
  t.ok(requests(busy, 'INVITE') >= 1 && requests(silent, 'INVITE') >= 1, 'the 503 and the silent target were tried')
})

t.test('TTL expiry: a zone change is followed once the TTL has passed, without a call waiting for DNS', async (t) => {
  const [a, b] = [await carrier(t, '127.0.142.11'), await carrier(t, '127.0.142.12')]
  const zone = (target: RawUdp, ttlS: number): DnsRecords => ({ srv: [['_sip._udp.carrier.test', 'x.carrier.test', target.port, 10, 0]], a: [['x.carrier.test', target.address]], ttlS })
  const dns = await startDnsmasq(t, '127.0.142.53', zone(a, 2))
  const { send } = await outbound(t, '127.0.142', dns.server, { trunk: 'sip:carrier.test' })
  t.equal((await send('INVITE')).status, 200)
  t.equal(requests(a, 'INVITE'), 1, 'to the first target')
  await dns.restart(zone(b, 2))
  t.equal((await send('INVITE')).status, 200)
  t.equal(requests(a, 'INVITE'), 2, 'within the TTL: the cached answer')
  await sleep(2600)
  const started = Date.now()
  t.equal((await send('INVITE')).status, 200)
  t.equal(requests(b, 'INVITE'), 1, 'after the TTL: the new target')
  t.ok(Date.now() - started < 300, 'refreshed ahead in the background: the call did not wait for DNS')
})

t.test('an unreachable resolver: the cached answer is kept past its TTL; a name never resolved gets 503, logged once', async (t) => {
  const a = await carrier(t, '127.0.143.11')
  const dns = await startDnsmasq(t, '127.0.143.53', { srv: [['_sip._udp.carrier.test', 'x.carrier.test', a.port, 10, 0]], a: [['x.carrier.test', a.address]], ttlS: 1 })
  const sink = logSink()
  const { send, e } = await outbound(t, '127.0.143', dns.server, { staleMs: 60_000, logger: sink.logger })
  t.equal((await send('INVITE', 'sip:+15551234567@carrier.test')).status, 200, 'no trunk: the Request-URI host is the next hop, by name')
  await dns.stop()
  await sleep(2500)
  t.equal((await send('INVITE', 'sip:+15551234567@carrier.test')).status, 200, 'resolver gone, TTL passed: the stale answer still carries calls')
  t.equal(requests(a, 'INVITE'), 2)
  const stale = sink.lines.filter((l) => String(l['msg']).includes('using the cached answer'))
  t.equal(stale.length, 1, 'the outage is logged once for the name')
  const r1 = await send('INVITE', 'sip:+15551234567@never.test')
  t.equal(r1.status, 503, 'a name never resolved: 503')
  t.equal(r1.reason, 'Next Hop Does Not Resolve')
  t.equal((await send('MESSAGE', 'sip:+15551234567@never.test')).status, 503)
  t.equal(sink.lines.filter((l) => l['name'] === 'never.test').length, 1, 'and logged once, not per request')
  // What an operator's dashboard sees: one name served stale, one failing; resolutions that worked, then errors.
  const text = await e.edge.metrics.registry.metrics()
  t.match(text, /sipedge_dns_names\{state="stale"\} 1\n/)
  t.match(text, /sipedge_dns_names\{state="failing"\} 1\n/)
  t.match(text, /sipedge_dns_resolutions_total\{outcome="ok"\} [1-9]/)
  t.match(text, /sipedge_dns_resolutions_total\{outcome="error"\} [1-9]/)
})

t.test("in-dialog requests follow a carrier's Record-Route by name, from the cache", async (t) => {
  const uas = await rawUdp(t, '127.0.144.11') // where the trunk's SRV sends the INVITE
  const sbc = await rawUdp(t, '127.0.144.12') // the carrier's SBC it Record-Routes by name
  for (const peer of [uas, sbc]) {
    peer.socket.on('message', () => {
      const m = peer.received[peer.received.length - 1]
      if (!m?.isRequest || m.method === 'ACK') return
      // The carrier's SBC Record-Routes itself by name, on top of the edge's entry (RFC 3261 §16.6 step 4).
      const rr: Array<[string, string]> = m.method === 'INVITE' ? [['Record-Route', '<sip:sbc.carrier.test;lr>'], ...m.getHeaders('Record-Route').map((v): [string, string] => ['Record-Route', v])] : []
      const out = buildResponse(m, 200, undefined, { toTag: 'carrier1', headers: [...rr, ['Contact', `<sip:callee@${uas.address}:${uas.port}>`]] })
      peer.socket.send(out, m.via.port ?? 5060, m.via.host)
    })
  }
  const dns = await startDnsmasq(t, '127.0.144.53', {
    srv: [['_sip._udp.carrier.test', 'uas.carrier.test', uas.port, 10, 0], ['_sip._udp.sbc.carrier.test', 'sbc.carrier.test', sbc.port, 10, 0]],
    a: [['uas.carrier.test', uas.address], ['sbc.carrier.test', sbc.address]],
    ttlS: 60,
  })
  const { pbx, e } = await outbound(t, '127.0.144', dns.server, { trunk: 'sip:carrier.test' })
  pbx.send(request({ method: 'INVITE', ruri: 'sip:+15551234567@carrier.test', from: { host: pbx.address, port: pbx.port }, callId: 'rr-name' }), e.host, e.port)
  const ok = await pbx.next((m) => !m.isRequest && m.callId === 'rr-name' && m.status === 200)
  const inDialogReq = (method: string, cseq: number): string => inDialog(method, ok, { caller: pbx, cseq })
  pbx.send(inDialogReq('INFO', 2), e.host, e.port)
  await pbx.next((m) => !m.isRequest && m.callId === 'rr-name' && m.cseq.method === 'INFO')
  t.equal(uas.received.filter((m) => m.method === 'INFO').length, 1, 'the name not cached yet: the first goes where the INVITE went, never waiting')
  await sleep(200)
  pbx.send(inDialogReq('BYE', 3), e.host, e.port)
  const bye = await pbx.next((m) => !m.isRequest && m.callId === 'rr-name' && m.cseq.method === 'BYE')
  t.equal(bye.status, 200)
  const atSbc = sbc.received.filter((m) => m.method === 'BYE')
  t.equal(atSbc.length, 1, 'then the Route by name: resolved in the background, sent to the SBC from the cache')
  t.equal(atSbc[0]?.getHeader('Route'), '<sip:sbc.carrier.test;lr>', 'with its Route entry kept for it (loose routing)')
})
