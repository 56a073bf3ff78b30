// RFC 3327 Path and RFC 5626 flows at the edge, with raw peers where exact bytes matter: what the registrar
// and the phone see, flows over TCP and WebSocket (430 Flow Failed once the connection is gone), forged and
// altered tokens, Path routing from the wrong side, AOR stickiness through a digest challenge, STUN and CRLF
// keepalives, the optional keepalive table, and an Asterisk's outbound registration to a carrier.
import { connect, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { WebSocket } from 'ws'
import { buildResponse, newTag, parseMessage, type SipMessage } from '../../src/sip/index.js'
import { TokenCodec } from '../../src/proxy/tokens.js'
import { startEdge, TEST_SECRET } from '../helpers/edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { pathRegistrar } from '../helpers/registrar.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'
import { makePki } from '../transport/fixtures/certs.js'

type T = Parameters<Parameters<typeof t.test>[1]>[0]
const EDGE = '127.0.13.1'
const PHONE = '127.0.13.5'

function register(o: { via: string; transport: string; contact: string; callId: string; cseq: number; edge: string; expires?: number; extra?: string[] }): string {
  return [
    `REGISTER sip:${o.edge} SIP/2.0`,
    `Via: SIP/2.0/${o.transport} ${o.via};branch=z9hG4bK-${o.callId}-${o.cseq};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@${o.edge}>;tag=ph${o.callId}`,
    `To: <sip:alice@${o.edge}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} REGISTER`,
    `Contact: <${o.contact}>`,
    `Expires: ${o.expires ?? 60}`,
    ...(o.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** The INVITE a backend sends to a registered Contact through the stored Path. */
function pathInvite(from: RawUdp, ruri: string, route: string, callId: string): string {
  return [
    `INVITE ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.address}:${from.port};branch=z9hG4bK-${callId};rport`,
    `Route: ${route}`,
    'Max-Forwards: 70',
    `From: <sip:queue@${from.address}>;tag=be-${callId}`,
    `To: <${ruri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:queue@${from.address}:${from.port}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

async function setup(t: T, o: { backends?: number; challenge?: boolean; extra?: Record<string, unknown> } = {}) {
  const backends: RawUdp[] = []
  const seen: SipMessage[][] = []
  for (let i = 0; i < (o.backends ?? 1); i++) {
    const b = await rawUdp(t, `127.0.13.${11 + i}`)
    backends.push(b)
    seen.push(pathRegistrar(b, o))
  }
  const port = await freePort(EDGE)
  const e = await startEdge(t, EDGE, { backends: backends.map((b) => `sip:${b.address}:${b.port}`), ...o.extra }, port)
  return { ...e, backends, seen }
}

/** A TCP client that collects the SIP messages and the bare CRLFs it receives. */
async function tcpPhone(t: T, host: string, port: number) {
  const sock: Socket = connect({ host, port, localAddress: PHONE })
  t.teardown(() => sock.destroy())
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  let raw = ''
  sock.on('data', (d: Buffer) => { raw += d.toString('latin1') })
  const messages = (): SipMessage[] => raw.split(/(?=SIP\/2\.0 \d{3} |^[A-Z]+ sip:)/m).filter((s) => /\r\n\r\n/.test(s)).map((s) => parseMessage(Buffer.from(s.replace(/^(\r\n)+/, ''), 'latin1')))
  return { sock, raw: () => raw, next: (pred: (m: SipMessage) => boolean, what: string) => waitFor(() => messages().find(pred), { timeoutMs: 3000, what }) }
}

t.test('REGISTER over UDP: Path and Supported: path added toward the registrar, Contact untouched, no Path back to the phone', async (t) => {
  const e = await setup(t)
  const phone = await rawUdp(t, PHONE)
  phone.send(register({ via: '192.168.1.20:5062', transport: 'UDP', contact: 'sip:alice@192.168.1.20:5062', callId: 'reg1', cseq: 1, edge: e.target }), EDGE, e.port)
  const ok = await phone.next((m) => m.status === 200)
  t.equal(ok.getHeader('Path'), undefined, 'the 200 OK reaches the phone without the Path (it names the edge inside)')
  t.equal(ok.contacts[0]?.uriText, 'sip:alice@192.168.1.20:5062', "the 200 lists the phone's own Contact, not an alias")
  const reg = e.seen[0]![0]!
  const path = reg.getHeader('Path')!
  t.match(path, new RegExp(`^<sip:${EDGE.replace(/\./g, '\\.')}:${e.port};lr;fl=[A-Za-z0-9_-]{40,}>$`))
  t.notMatch(path, PHONE, "the phone's address is sealed, not in clear")
  t.match(reg.getHeader('Supported'), 'path', 'Supported: path added for the registrar (Asterisk answers 420 without it)')
  t.equal(reg.contacts[0]?.uriText, 'sip:alice@192.168.1.20:5062', 'the Contact goes to the registrar as the phone wrote it')

  // The registrar calls: Request-URI the stored Contact (a private address), Route the stored Path.
  const be = e.backends[0]!
  be.send(pathInvite(be, 'sip:alice@192.168.1.20:5062', path, 'call1'), EDGE, e.port)
  const inv = await phone.next((m) => m.method === 'INVITE')
  t.equal(inv.requestUri, 'sip:alice@192.168.1.20:5062', 'the INVITE reaches the NAT address the REGISTER came from, Request-URI kept')
  t.equal(inv.vias.length, 1, "only the edge's Via")
  t.equal(inv.getHeader('Route'), undefined, 'the Path entry is consumed')
  t.match(inv.getHeader('Record-Route'), /;sk=/, 'Record-Routed like any call')
  t.notMatch(inv.getHeader('Contact'), be.address, "the backend's Contact is aliased")

  // An Asterisk with outbound_proxy set to the edge puts that Route above the Path: both entries are the edge's.
  be.send(pathInvite(be, 'sip:alice@192.168.1.20:5062', `<sip:${e.target};lr>, ${path}`, 'call2'), EDGE, e.port)
  const inv2 = await phone.next((m) => m.method === 'INVITE' && m.callId !== inv.callId)
  t.equal(inv2.getHeader('Route'), undefined, 'outbound_proxy Route + Path: both consumed, the call reaches the phone')

  // Asterisk's qualify: an OPTIONS through the Path reaches the phone, and its answer comes back.
  be.send(pathInvite(be, 'sip:alice@192.168.1.20:5062', path, 'qualify1').replace(/INVITE/g, 'OPTIONS'), EDGE, e.port)
  const opt = await phone.next((m) => m.method === 'OPTIONS')
  phone.socket.send(buildResponse(opt, 200, undefined, { toTag: 'q1' }), e.port, EDGE)
  t.equal((await be.next((m) => m.cseq.method === 'OPTIONS' && m.status === 200)).callId, 'qualify1', "qualify OPTIONS through the Path: the phone's 200 comes back")

  // Bad input from inside: a made-up token, and a real one with one character changed.
  be.send(pathInvite(be, 'sip:alice@192.168.1.20:5062', `<sip:${e.target};lr;fl=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA>`, 'forged'), EDGE, e.port)
  t.equal((await be.next((m) => m.callId === 'forged' && m.status >= 200)).status, 403, 'a forged flow token gets 403')
  const tok = /fl=([^>;]+)/.exec(path)![1]!
  const altered = tok.slice(0, 20) + (tok[20] === 'A' ? 'B' : 'A') + tok.slice(21)
  be.send(pathInvite(be, 'sip:alice@192.168.1.20:5062', `<sip:${e.target};lr;fl=${altered}>`, 'altered'), EDGE, e.port)
  t.equal((await be.next((m) => m.callId === 'altered' && m.status >= 200)).status, 403, 'an altered flow token gets 403')

  // The same, valid, Path entry used from the public side: the edge is no relay for the outside.
  const outsider = await rawUdp(t, '127.0.13.9')
  outsider.send(pathInvite(outsider, 'sip:alice@192.168.1.20:5062', path, 'outside'), EDGE, e.port)
  t.equal((await outsider.next((m) => m.callId === 'outside')).status, 403, 'a Path-routed request from the public side gets 403')
  t.equal(phone.received.filter((m) => m.method === 'INVITE').length, 2, 'none of them reached the phone')
})

t.test('TCP phone: the call comes on its connection; CRLF pings answered; a closed connection gets 430 Flow Failed', async (t) => {
  const e = await setup(t)
  const ph = await tcpPhone(t, EDGE, e.port)
  ph.sock.write('\r\n\r\n')
  await waitFor(() => ph.raw() === '\r\n', { timeoutMs: 2000, what: 'CRLF pong' })
  t.pass('a double-CRLF ping is answered with CRLF (RFC 5626 §4.4.1)')
  const local = `${PHONE}:${ph.sock.localPort}`
  ph.sock.write(register({ via: local, transport: 'TCP', contact: `sip:alice@${local};transport=tcp`, callId: 'treg', cseq: 1, edge: e.target }))
  await ph.next((m) => m.status === 200, '200 to the TCP REGISTER')
  const path = e.seen[0]![0]!.getHeader('Path')!
  const be = e.backends[0]!
  be.send(pathInvite(be, `sip:alice@${local};transport=tcp`, path, 'tcall'), EDGE, e.port)
  const inv = await ph.next((m) => m.method === 'INVITE', 'INVITE on the TCP connection')
  t.match(inv.vias[0]!.raw, /^SIP\/2\.0\/TCP /, 'over TCP, on the connection the phone opened')

  // The same flow sealed by another edge process (or this edge before a restart): its connection ids mean nothing here.
  const codec = new TokenCodec(TEST_SECRET)
  const tcpPeer = { proto: 'tcp' as const, address: PHONE, port: ph.sock.localPort! }
  const connId = e.edge.transports.table.all()[0]!.id
  const elsewhere = codec.sealFlow(tcpPeer, connId, (e.edge.proxy['core'].instance + 1) >>> 0)
  be.send(pathInvite(be, `sip:alice@${local};transport=tcp`, `<sip:${e.target};lr;fl=${elsewhere}>`, 'tother'), EDGE, e.port)
  t.equal((await be.next((m) => m.callId === 'tother' && m.status >= 200)).status, 430, 'a connection of another edge process: 430, even with the same id here')

  ph.sock.destroy()
  await waitFor(() => e.edge.transports.connectionCount() === 0, { timeoutMs: 3000, what: 'the edge saw the connection close' })
  be.send(pathInvite(be, `sip:alice@${local};transport=tcp`, path, 'tgone'), EDGE, e.port)
  const gone = await be.next((m) => m.callId === 'tgone' && m.status >= 200)
  t.equal(gone.status, 430, 'the connection is gone: 430 Flow Failed, no new connection to the Contact')
})

t.test('WSS agent (.invalid Contact) registers; a backend call through Path reaches its WebSocket; closed: 430', async (t) => {
  const pki = makePki()
  t.teardown(() => pki.cleanup())
  const be = await rawUdp(t, '127.0.13.21')
  const seen = pathRegistrar(be)
  const port = await freePort(EDGE)
  const wssPort = await freeTcpPort(EDGE)
  await startEdge(t, EDGE, {
    listen: [`udp:${EDGE}:${port}`, `wss:${EDGE}:${wssPort} path /ws`],
    backends: [`sip:${be.address}:${be.port}`],
    tls: { certFile: pki.server1.cert, keyFile: pki.server1.key, caFile: pki.caFile, handshakeTimeoutMs: 10_000 },
  }, port)
  const ws = new WebSocket(`wss://${EDGE}:${wssPort}/ws`, ['sip'], { ca: readFileSync(pki.caFile), servername: 'edge.test' })
  t.teardown(() => ws.terminate())
  const got: SipMessage[] = []
  ws.on('message', (d: Buffer) => got.push(parseMessage(d)))
  await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(register({ via: 'k3j2h1.invalid', transport: 'WSS', contact: 'sip:agent@k3j2h1.invalid;transport=ws', callId: 'wsreg', cseq: 1, edge: `${EDGE}:${port}` }))
  await waitFor(() => got.find((m) => m.status === 200), { timeoutMs: 3000, what: '200 over WSS' })
  const path = seen[0]!.getHeader('Path')!
  t.match(path, /^<sip:127\.0\.13\.1:\d+;lr;fl=/, 'the Path names the edge toward the registrar (UDP)')
  be.send(pathInvite(be, 'sip:agent@k3j2h1.invalid;transport=ws', path, 'wscall'), EDGE, port)
  const inv = await waitFor(() => got.find((m) => m.method === 'INVITE'), { timeoutMs: 3000, what: 'INVITE over WSS' })
  t.equal(inv.requestUri, 'sip:agent@k3j2h1.invalid;transport=ws', 'the .invalid Contact is the Request-URI; nothing was resolved')
  t.match(inv.vias[0]!.raw, /^SIP\/2\.0\/WSS /)
  ws.terminate()
  await new Promise((r) => setTimeout(r, 200))
  be.send(pathInvite(be, 'sip:agent@k3j2h1.invalid;transport=ws', path, 'wsgone'), EDGE, port)
  t.equal((await be.next((m) => m.callId === 'wsgone' && m.status >= 200)).status, 430, 'the WebSocket is gone: 430 Flow Failed')
})

t.test('one AOR, one registrar: re-REGISTER, un-REGISTER, Contact: * and the digest retry all reach the same backend', async (t) => {
  const e = await setup(t, { backends: 3, challenge: true })
  const phone = await rawUdp(t, PHONE)
  const send = (cseq: number, extra: string[], o: { expires?: number; contact?: string } = {}) =>
    phone.send(register({ via: `${PHONE}:${phone.port}`, transport: 'UDP', contact: o.contact ?? `sip:alice@${PHONE}:${phone.port}`, callId: 'aor1', cseq, edge: e.target, extra, ...(o.expires !== undefined ? { expires: o.expires } : {}) }), EDGE, e.port)
  send(1, [])
  t.equal((await phone.next((m) => m.cseq.seq === 1)).status, 401, 'the challenge passes through')
  const auth = ['Authorization: Digest username="alice", realm="pbx", nonce="n1", uri="sip:x", response="00"']
  send(2, auth)
  t.equal((await phone.next((m) => m.cseq.seq === 2)).status, 200, 'the retry with credentials is accepted')
  send(3, auth)
  await phone.next((m) => m.cseq.seq === 3)
  send(4, auth, { expires: 0 })
  await phone.next((m) => m.cseq.seq === 4)
  phone.send(register({ via: `${PHONE}:${phone.port}`, transport: 'UDP', contact: '*', callId: 'aor1', cseq: 5, edge: e.target, expires: 0, extra: auth }).replace('Contact: <*>', 'Contact: *'), EDGE, e.port)
  await phone.next((m) => m.cseq.seq === 5)
  const counts = e.seen.map((s) => s.length)
  t.same(counts.filter((n) => n > 0), [5], `all five REGISTERs on one backend (${counts.join('/')})`)
  const text = await e.edge.metrics.registry.metrics()
  t.match(text, /sipedge_registrations_total\{result="challenged"\} 1\n/, 'the 401 counted as a challenge')
  t.match(text, /sipedge_registrations_total\{result="ok"\} 4\n/, 'the four 200s')
  t.match(text, /sipedge_registrations_total\{result="failed"\} 0\n/)
})

t.test('STUN binding requests on the SIP UDP port are answered, never parsed as SIP', async (t) => {
  const e = await setup(t)
  const phone = await rawUdp(t, PHONE)
  const replies: Buffer[] = []
  phone.socket.on('message', (b) => replies.push(b))
  const req = Buffer.alloc(20)
  req.writeUInt16BE(0x0001, 0)
  req.writeUInt32BE(0x2112a442, 4)
  req.write('abcdefghijkl', 8, 'latin1')
  phone.socket.send(req, e.port, EDGE)
  const res = await waitFor(() => replies[0], { timeoutMs: 2000, what: 'STUN answer' })
  t.equal(res.readUInt16BE(0), 0x0101, 'Binding success response')
  t.equal(res.toString('latin1', 8, 20), 'abcdefghijkl', 'same transaction id')
  t.equal(res.readUInt16BE(26) ^ 0x2112, phone.port, 'XOR-MAPPED-ADDRESS names the source port')
  t.equal([0, 1, 2, 3].map((i) => res[28 + i]! ^ [0x21, 0x12, 0xa4, 0x42][i]!).join('.'), PHONE, 'and the source address')
  const ind = Buffer.from(req)
  ind.writeUInt16BE(0x0011, 0) // a Binding indication (keepalive): no answer
  phone.socket.send(ind, e.port, EDGE)
  await new Promise((r) => setTimeout(r, 200))
  t.equal(replies.length, 1, 'an indication gets nothing')
  t.same(e.edge.stats.counters.parseErrors, [0, 0], 'no parse error counted')
})

t.test('nat.keepalive: the flow of a live registration gets OPTIONS until it un-registers', async (t) => {
  const e = await setup(t, { extra: { nat: { keepalive: true, keepaliveIntervalMs: 1000, keepaliveMethod: 'options', maxFlows: 10 } } })
  const phone = await rawUdp(t, PHONE)
  phone.send(register({ via: `${PHONE}:${phone.port}`, transport: 'UDP', contact: `sip:alice@10.1.1.1:5060`, callId: 'ka', cseq: 1, edge: e.target }), EDGE, e.port)
  await phone.next((m) => m.status === 200)
  const ping = await phone.next((m) => m.method === 'OPTIONS', 2500)
  t.equal(ping.requestUri, `sip:${PHONE}:${phone.port}`, 'OPTIONS to the NAT address of the flow')
  t.equal(e.edge.proxy.path.keepalive?.size, 1)
  phone.send(register({ via: `${PHONE}:${phone.port}`, transport: 'UDP', contact: `sip:alice@10.1.1.1:5060`, callId: 'ka', cseq: 2, edge: e.target, expires: 0 }), EDGE, e.port)
  await phone.next((m) => m.status === 200 && m.cseq.seq === 2)
  t.equal(e.edge.proxy.path.keepalive?.size, 0, 'un-registered: the flow is forgotten')
})

t.test('outbound registration: an Asterisk registers to the carrier through the edge; the carrier calls its aliased Contact', async (t) => {
  const asterisk = await rawUdp(t, '127.0.13.31')
  const carrier = await rawUdp(t, '127.0.13.41')
  const port = await freePort(EDGE)
  const e = await startEdge(t, EDGE, { backends: [`sip:${asterisk.address}:${asterisk.port}`], trunk: `sip:${carrier.address}:${carrier.port}` }, port)
  asterisk.send(register({ via: `${asterisk.address}:${asterisk.port}`, transport: 'UDP', contact: `sip:trunkuser@${asterisk.address}:${asterisk.port}`, callId: 'out-reg', cseq: 1, edge: `${carrier.address}:${carrier.port}` }), EDGE, e.port)
  const reg = await carrier.next((m) => m.method === 'REGISTER')
  t.equal(reg.getHeader('Path'), undefined, 'no Path on a REGISTER from inside')
  t.notMatch(reg.getHeader('Contact'), asterisk.address, "the Asterisk's Contact is aliased")
  carrier.socket.send(buildResponse(reg, 200, undefined, { toTag: newTag(), headers: [['Contact', `${reg.getHeader('Contact')};expires=60`]] }), e.port, EDGE)
  t.equal((await asterisk.next((m) => m.status === 200)).status, 200)
  const alias = reg.contacts[0]!.uriText.replace(/^sip:/, 'sip:trunkuser@')
  const invite = [
    `INVITE ${alias} SIP/2.0`, `Via: SIP/2.0/UDP ${carrier.address}:${carrier.port};branch=z9hG4bK-in1`, 'Max-Forwards: 70',
    `From: <sip:+15551234@${carrier.address}>;tag=c1`, `To: <${alias}>`, 'Call-ID: in1', 'CSeq: 1 INVITE',
    `Contact: <sip:+15551234@${carrier.address}:${carrier.port}>`, 'Content-Length: 0', '', ''].join('\r\n')
  carrier.send(invite, EDGE, e.port)
  const got = await asterisk.next((m) => m.method === 'INVITE')
  t.equal(got.requestUri, `sip:trunkuser@${asterisk.address}:${asterisk.port}`, "the carrier's call reaches that Asterisk, its own Contact restored")
})
