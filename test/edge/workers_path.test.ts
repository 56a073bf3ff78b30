// RFC 3327 Path registrations with `sipedge --workers 2`. A phone's TCP connection belongs to the worker that
// accepted it; a registrar calls the phone through the stored Path from its own port, which the kernel maps to
// either worker. The Path entry of a connection names its worker (`;sw=N`) and the other worker hands the
// call over, its CANCEL with it: the call reaches the phone's connection and completes (not 430 Flow Failed). UDP phones are
// reached from either worker; REGISTERs of one address-of-record go to one registrar whichever worker takes
// them; NAT keepalives go to each registered flow once, not once per worker.
import { connect, type Socket } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildResponse, newTag, parseMessage, type SipMessage } from '../../src/sip/index.js'
import { metricSamples, startCliEdge, type CliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { pathRegistrar } from '../helpers/registrar.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

const EDGE = '127.0.0.1'
const REGISTRAR = '127.0.1.71'
const OTHER_REGISTRAR = '127.0.1.72'
const PHONE = '127.0.1.80'

function register(o: { user: string; transport: string; local: string; callId: string; cseq?: number }): string {
  return [
    `REGISTER sip:${EDGE}:${edgePort} SIP/2.0`,
    `Via: SIP/2.0/${o.transport} ${o.local};branch=z9hG4bK-${o.callId}-${o.cseq ?? 1};rport`,
    'Max-Forwards: 70',
    `From: <sip:${o.user}@${EDGE}>;tag=ph-${o.callId}`,
    `To: <sip:${o.user}@${EDGE}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq ?? 1} REGISTER`,
    `Contact: <sip:${o.user}@${o.local};transport=${o.transport.toLowerCase()}>`,
    'Expires: 60',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** A request from the backend: `route` is its Route header value (the Path, then the dialog's route set). */
function backendRequest(be: RawUdp, method: string, ruri: string, route: string, callId: string, cseq: number, toTag?: string): string {
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${be.address}:${be.port};branch=z9hG4bK-${callId}-${method}${cseq};rport`,
    `Route: ${route}`,
    'Max-Forwards: 70',
    `From: <sip:queue@${be.address}>;tag=be-${callId}`,
    `To: <${ruri}>${toTag ? `;tag=${toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method === 'ACK' ? 'ACK' : method}`,
    `Contact: <sip:queue@${be.address}:${be.port}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}

/** A phone on one TCP connection: collects what it receives (SIP messages and bare CRLF keepalives). */
async function tcpPhone(t: Tap.Test, port: number) {
  const sock: Socket = connect({ host: EDGE, port, localAddress: PHONE })
  t.teardown(() => sock.destroy())
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  let raw = ''
  let pings = 0
  sock.on('data', (d: Buffer) => {
    const text = d.toString('latin1')
    if (text === '\r\n\r\n') pings++ // a keepalive (RFC 5626 §4.4.1); nothing else is sent while the phone is idle
    else raw += text
  })
  const messages = (): SipMessage[] => raw.split(/(?=SIP\/2\.0 \d{3} |^[A-Z]+ sip:)/m).filter((s) => /\r\n\r\n/.test(s)).map((s) => parseMessage(Buffer.from(s.replace(/^(\r\n)+/, ''), 'latin1')))
  return {
    sock,
    local: `${PHONE}:${sock.localPort}`,
    pings: () => pings,
    send: (text: string) => sock.write(text),
    next: (pred: (m: SipMessage) => boolean, what: string) => waitFor(() => messages().find(pred), { timeoutMs: 5000, what }),
  }
}

type Phone = { next: (pred: (m: SipMessage) => boolean, what: string) => Promise<SipMessage>; send: (text: string) => void }

/**
 * The backend calls the phone through `path` from a fresh port of its address: INVITE, the phone answers 200,
 * the backend ACKs and hangs up along the dialog's route set, the phone answers the BYE. Returns the number of
 * messages the workers handed over during the call (0: the whole call stayed on the worker it landed on).
 */
async function callThroughPath(t: Tap.Test, admin: number, phone: Phone, path: string, ruri: string, callId: string): Promise<number> {
  const before = await handedOver(admin)
  const be = await rawUdp(t, REGISTRAR)
  be.send(backendRequest(be, 'INVITE', ruri, path, callId, 1), EDGE, edgePort)
  const inv = await phone.next((m) => m.method === 'INVITE' && m.callId !== undefined && m.getHeader('From')!.includes(`be-${callId}`), `the INVITE of ${callId} at the phone`)
  const tag = `ph${callId}`
  phone.send(buildResponse(inv, 200, undefined, { toTag: tag, headers: [['Contact', `<${ruri}>`], ...inv.getHeaders('Record-Route').map((r): [string, string] => ['Record-Route', r])] }).toString('latin1'))
  const ok = await be.next((m) => m.callId === callId && m.status >= 200)
  t.equal(ok.status, 200, `${callId}: the phone's 200 reached the backend`)
  if (ok.status !== 200) return 0
  const routeSet = ok.getHeaders('Record-Route').flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim()).reverse().join(', ')
  const target = ok.contacts[0]!.uriText
  const toTag = ok.toTag!
  be.send(backendRequest(be, 'ACK', target, routeSet, callId, 1, toTag), EDGE, edgePort)
  await phone.next((m) => m.method === 'ACK' && m.callId === inv.callId, `the ACK of ${callId} at the phone`)
  be.send(backendRequest(be, 'BYE', target, routeSet, callId, 2, toTag), EDGE, edgePort)
  const bye = await phone.next((m) => m.method === 'BYE' && m.callId === inv.callId, `the BYE of ${callId} at the phone`)
  phone.send(buildResponse(bye, 200).toString('latin1'))
  const byeOk = await be.next((m) => m.callId === callId && m.cseq.method === 'BYE')
  t.equal(byeOk.status, 200, `${callId}: the BYE was answered 200 by the phone`)
  return (await handedOver(admin)) - before
}

async function handedOver(admin: number): Promise<number> {
  return (await metricSamples(admin, 'sipedge_worker_handed_over_total')).reduce((a, s) => a + s.value, 0)
}

const dir = mkdtempSync(join(tmpdir(), 'sipedge-workers-path-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let edge: CliEdge
let admin: number
let edgePort: number
let reg: RawUdp
let seen: SipMessage[]
let otherSeen: SipMessage[]

t.before(async () => {
  reg = await rawUdp(t, REGISTRAR)
  seen = pathRegistrar(reg)
  const other = await rawUdp(t, OTHER_REGISTRAR)
  otherSeen = pathRegistrar(other)
  edgePort = await freePort()
  admin = await freeTcpPort()
  const config = join(dir, 'edge.yaml')
  writeFileSync(config, `backends:\n  - sip:${REGISTRAR}:${reg.port}\n  - sip:${OTHER_REGISTRAR}:${other.port}\n`)
  edge = await startCliEdge(t, [
    '--workers', '2', '--config', config, '--listen', `udp:${EDGE}:${edgePort}`, '--listen', `tcp:${EDGE}:${edgePort}`,
    '--no-probe', '--admin', `127.0.0.1:${admin}`, '--nat-keepalive', '--nat-keepalive-interval-ms', '1000', '--nat-keepalive-method', 'options',
  ])
})

t.test('a TCP phone registered through one worker gets the calls a backend sends through its Path to either worker', async (t) => {
  const phone = await tcpPhone(t, edgePort)
  const user = 'alice'
  phone.send(register({ user, transport: 'TCP', local: phone.local, callId: 'treg' }))
  const ok = await phone.next((m) => m.status === 200 && m.callId === 'treg', '200 to the TCP REGISTER')
  t.equal(ok.getHeader('Path'), undefined, 'no Path back to the phone')
  const stored = [...seen, ...otherSeen].find((m) => m.callId === 'treg')!
  const path = stored.getHeader('Path')!
  t.match(path, new RegExp(`^<sip:127\\.0\\.0\\.1:${edgePort};lr;sw=[01];fl=[A-Za-z0-9_-]+>$`), 'the Path names the worker holding the connection')
  const ruri = `sip:${user}@${phone.local};transport=tcp`
  // The backend's source port decides which worker the kernel hands its INVITE to: new ports until calls have
  // landed both on the phone's worker (nothing handed over) and on the other one (the INVITE handed over).
  let crossed = 0
  let stayed = 0
  for (let i = 0; i < 40 && (crossed < 2 || stayed < 1); i++) {
    if ((await callThroughPath(t, admin, phone, path, ruri, `tcall${i}`)) > 0) crossed++
    else stayed++
  }
  t.ok(crossed >= 2, `calls landing on the other worker reached the phone's connection (${crossed} crossed, ${stayed} stayed)`)
  t.ok(stayed >= 1, 'and calls landing on the phone\'s worker too')

  // Keepalives: the registration is learnt by the one worker that took the REGISTER, so CRLFs come once a second.
  const p0 = phone.pings()
  await new Promise((r) => setTimeout(r, 3500))
  const pings = phone.pings() - p0
  t.ok(pings >= 2 && pings <= 4, `one CRLF keepalive a second on the connection, not one per worker (${pings} in 3.5 s)`)
})

t.test('a UDP phone: its Path names no worker, and calls through it from either worker reach it', async (t) => {
  const phone = await rawUdp(t, PHONE)
  const local = `${PHONE}:${phone.port}`
  const user = 'bob'
  phone.send(register({ user, transport: 'UDP', local, callId: 'ureg' }), EDGE, edgePort)
  await phone.next((m) => m.status === 200 && m.callId === 'ureg')
  const path = [...seen, ...otherSeen].find((m) => m.callId === 'ureg')!.getHeader('Path')!
  t.match(path, new RegExp(`^<sip:127\\.0\\.0\\.1:${edgePort};lr;fl=[A-Za-z0-9_-]+>$`), 'no worker: every worker sends from the shared port')
  const udpPhone: Phone = {
    next: (pred, what) => waitFor(() => phone.received.find(pred), { timeoutMs: 5000, what }),
    send: (text) => phone.socket.send(text, edgePort, EDGE),
  }
  const ruri = `sip:${user}@${local}`
  for (let i = 0; i < 8; i++) await callThroughPath(t, admin, udpPhone, path, ruri, `ucall${i}`)

  // OPTIONS keepalives to the UDP flow, from the one worker that took its REGISTER: once a second.
  const options = (): number => phone.received.filter((m) => m.method === 'OPTIONS').length
  const o0 = options()
  await new Promise((r) => setTimeout(r, 3500))
  const n = options() - o0
  t.ok(n >= 2 && n <= 4, `one OPTIONS keepalive a second to the UDP flow, not one per worker (${n} in 3.5 s)`)
})

t.test('REGISTERs of one address-of-record reach one registrar whichever worker takes them', async (t) => {
  const before = [seen.length, otherSeen.length]
  const phones: RawUdp[] = []
  for (let i = 0; i < 12; i++) phones.push(await rawUdp(t, PHONE))
  for (const [i, p] of phones.entries()) p.send(register({ user: 'carol', transport: 'UDP', local: `${PHONE}:${p.port}`, callId: `creg${i}` }), EDGE, edgePort)
  await Promise.all(phones.map((p) => p.next((m) => m.status === 200)))
  const got = [seen.length - before[0]!, otherSeen.length - before[1]!]
  t.ok(got[0] === 12 || got[1] === 12, `every REGISTER of carol reached the same registrar: ${got}`)
})

t.test('the backend CANCELs a call through a TCP phone\'s Path on the other worker: the CANCEL follows it, 487', async (t) => {
  const phone = await tcpPhone(t, edgePort)
  phone.send(register({ user: 'dave', transport: 'TCP', local: phone.local, callId: 'dreg' }))
  await phone.next((m) => m.status === 200 && m.callId === 'dreg', '200 to the TCP REGISTER')
  const path = [...seen, ...otherSeen].find((m) => m.callId === 'dreg')!.getHeader('Path')!
  const ruri = `sip:dave@${phone.local};transport=tcp`
  let crossed = 0
  for (let i = 0; i < 30 && crossed < 1; i++) {
    const callId = `dcall${i}`
    const before = await handedOver(admin)
    const be = await rawUdp(t, REGISTRAR)
    const invite = backendRequest(be, 'INVITE', ruri, path, callId, 1)
    be.send(invite, EDGE, edgePort)
    const inv = await phone.next((m) => m.method === 'INVITE' && m.getHeader('From')!.includes(`be-${callId}`), `the INVITE of ${callId} at the phone`)
    phone.send(buildResponse(inv, 180, undefined, { toTag: `ph${callId}` }).toString('latin1'))
    await be.next((m) => m.callId === callId && m.status === 180)
    // RFC 3261 §9.1: the CANCEL has the INVITE's Request-URI, Via branch, Call-ID, From, CSeq number and Route.
    be.send(invite.replace(/^INVITE /, 'CANCEL ').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'), EDGE, edgePort)
    const cancel = await phone.next((m) => m.method === 'CANCEL' && m.callId === inv.callId, `the CANCEL of ${callId} at the phone`)
    phone.send(buildResponse(cancel, 200).toString('latin1'))
    phone.send(buildResponse(inv, 487, undefined, { toTag: `ph${callId}` }).toString('latin1'))
    const final = await be.next((m) => m.callId === callId && m.cseq.method === 'INVITE' && m.status >= 200)
    t.equal(final.status, 487, `${callId}: the phone's 487 reached the backend`)
    be.send(invite.replace(/^INVITE /, 'ACK ').replace('CSeq: 1 INVITE', 'CSeq: 1 ACK').replace(/^(To: .*)$/m, `$1;tag=${final.toTag}`), EDGE, edgePort)
    if ((await handedOver(admin)) - before > 0) crossed++
  }
  t.equal(crossed, 1, 'a CANCELled call landed on the worker not holding the connection, and was handed over with its CANCEL')
})
