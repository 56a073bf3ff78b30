// Topology hiding and the two-way edge (issue 4): the public side sees one address, calls flow in both
// directions, and the edge is no open relay. The edge has a public side (127.0.7.1) and an internal side
// (127.0.7.9); backends live on 127.0.7.11-13, the caller and a carrier on the public side.
import t, { type Test } from 'tap'
import { NgClient } from '../../src/media/ng_client.js'
import { startRtpengine } from '../helpers/rtpengine.js'
import type { Edge } from '../../src/edge/edge.js'
import { parseMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog } from '../helpers/flow.js'
import { freePort, waitFor } from '../helpers/net.js'
import type { Teardownable } from '../helpers/proc.js'
import { describe, runUac, sippAvailable, startUas, type SippUas } from '../helpers/sipp.js'
import { rawUdp } from '../helpers/udp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const PUBLIC = '127.0.7.1'
const INTERNAL = '127.0.7.9'
const INTERNAL_ADDRESSES = ['127.0.7.9', '127.0.7.11', '127.0.7.12', '127.0.7.13']

/** Every message the edge sends out of its public side, as bytes. */
function capturePublic(edge: Edge): Buffer[] {
  const sent: Buffer[] = []
  const send = edge.transports.send.bind(edge.transports)
  edge.transports.send = (buf, dest, via, connId) => {
    if (!via || via.spec.side === 'public') sent.push(Buffer.from(buf))
    send(buf, dest, via, connId)
  }
  return sent
}

/** Header lines naming an internal address (not bodies: without media anchoring SDP carries the backends' media addresses). */
function leaks(messages: Buffer[]): string[] {
  const found: string[] = []
  for (const buf of messages) {
    const m = parseMessage(buf)
    for (let i = 0; i < m.headerCount; i++) {
      const v = m.headerValue(i)
      if (INTERNAL_ADDRESSES.some((a) => v.includes(a))) found.push(`${m.isRequest ? m.method : m.status} ${m.headerName(i)}: ${v}`)
    }
    const startLine = buf.toString('latin1', 0, buf.indexOf('\r\n'))
    if (INTERNAL_ADDRESSES.some((a) => startLine.includes(a))) found.push(startLine)
  }
  return found
}

async function twoSidedEdge(t: Teardownable, backends: SippUas[], extra: Record<string, unknown> = {}) {
  const port = await freePort(PUBLIC)
  const e = await startEdge(
    t,
    PUBLIC,
    {
      listen: [`udp:${PUBLIC}:${port}`],
      internalListen: [`udp:${INTERNAL}:${port}`],
      backends: backends.map((b) => `sip:${b.id}`),
      ...extra, // default settings otherwise: no leak must need an option (maskCallId is on by default)
    },
    port,
  )
  return { ...e, internalTarget: `${INTERNAL}:${port}`, captured: capturePublic(e.edge) }
}

const INBOUND = [
  { name: 'inbound call', uac: 'uac', uas: 'uas' },
  { name: 're-INVITE from the caller', uac: 'uac_reinvite', uas: 'uas_reinvite' },
  { name: 're-INVITE from the callee', uac: 'uac_reinvite_callee', uas: 'uas_reinvite_callee', uasDurationMs: 100 },
  { name: 'CANCEL', uac: 'uac_cancel', uas: 'uas_cancel' },
  { name: 'BYE from the caller', uac: 'uac', uas: 'uas' },
  { name: 'BYE from the callee', uac: 'uac_callee_bye', uas: 'uas_bye', uasDurationMs: 100 },
  { name: 'REFER/NOTIFY', uac: 'uac_refer', uas: 'uas_refer' },
  { name: 'OPTIONS to a backend', uac: 'uac_options', uas: 'uas_options' },
  { name: 'busy', uac: 'uac_486', uas: 'uas_486' },
] as const

/**
 * Every call flow through a two-sided edge (inbound flows, failover, a backend calling out to a carrier), with
 * `extra` edge options; `check` gets what the edge sent on its public side in each flow. Returns all of it.
 */
async function everyFlow(t: Test, extra: Record<string, unknown>, check: (t: Test, captured: Buffer[]) => Promise<void>): Promise<Buffer[]> {
  const all: Buffer[] = []
  for (const flow of INBOUND) {
    await t.test(flow.name, async (t) => {
      const opts = 'uasDurationMs' in flow ? { durationMs: flow.uasDurationMs } : {}
      const b1 = await startUas({ scenario: flow.uas, ip: '127.0.7.11', t, ...opts })
      const b2 = await startUas({ scenario: flow.uas, ip: '127.0.7.12', t, ...opts })
      const { target, captured } = await twoSidedEdge(t, [b1, b2], extra)
      const uac = await runUac({ scenario: flow.uac, target, localIp: '127.0.7.30', calls: 4, rate: 20, t })
      t.equal(uac.failed, 0, describe(uac))
      t.equal(uac.successful, 4, 'the backends got everything they needed to answer and hang up')
      t.ok(captured.length >= 4, `${captured.length} messages sent on the public side`)
      await check(t, captured)
      all.push(...captured)
    })
  }
  await t.test('failover (a backend answering 503)', async (t) => {
    const bad = await startUas({ scenario: 'uas_503', ip: '127.0.7.11', t })
    const good = await startUas({ scenario: 'uas', ip: '127.0.7.12', t })
    const { target, captured } = await twoSidedEdge(t, [bad, good], extra)
    const uac = await runUac({ scenario: 'uac', target, localIp: '127.0.7.30', calls: 4, rate: 20, t })
    t.equal(uac.failed, 0, describe(uac))
    await check(t, captured)
    all.push(...captured)
  })
  await t.test('outbound call: a backend calls a carrier through the internal side', async (t) => {
    const carrier = await startUas({ scenario: 'uas', ip: '127.0.7.50', t })
    const b1 = await startUas({ scenario: 'uas', ip: '127.0.7.11', t })
    const e = await twoSidedEdge(t, [b1], { trunk: `sip:${carrier.id}`, ...extra })
    // The "Asterisk" on 127.0.7.13 dials out via the edge's internal address; From/Call-ID/Via/Contact name it.
    const uac = await runUac({ scenario: 'uac', target: e.internalTarget, localIp: '127.0.7.13', calls: 4, rate: 20, t })
    t.equal(uac.failed, 0, describe(uac))
    t.equal((await carrier.stop()).successful, 4, 'the carrier answered and hung up every call')
    await check(t, e.captured)
    const invite = e.captured.map((b) => parseMessage(b)).find((m) => m.method === 'INVITE')!
    t.equal(invite.vias.length, 1, 'the carrier sees only the edge Via')
    t.ok(invite.callId.startsWith('se1.'), 'Call-ID masked')
    all.push(...e.captured)
  })
  return all
}

t.test('no internal address leaves on the public side, whatever the call flow', async (t) => {
  const all = await everyFlow(t, {}, async (t, captured) => {
    t.same(leaks(captured), [], 'no header names an internal address')
  })
  t.ok(all.length > 100, `${all.length} public-side messages checked in all`)
})

/** Lines of SDP bodies (c=, o=, a=rtcp, a=candidate ...) and of headers naming one of `addresses`, anywhere in the bytes. */
function byteLeaks(messages: Buffer[], addresses: readonly string[]): string[] {
  const found: string[] = []
  for (const buf of messages) {
    for (const line of buf.toString('latin1').split('\r\n')) if (addresses.some((a) => line.includes(a))) found.push(line)
  }
  return found
}

t.test('with media anchored through rtpengine: no internal address in any byte on the public side, SDP bodies included', async (t) => {
  const eng = await startRtpengine({ t, n: 13 })
  const ng = new NgClient({ retransmitMs: 50, timeoutMs: 500 })
  t.teardown(() => ng.close())
  // The rtpengine's internal interface is internal too: only its external address may reach the public side.
  const internal = [...INTERNAL_ADDRESSES, eng.internal]
  const media = { mode: 'anchor', rtpengine: [eng.spec] }
  const all = await everyFlow(t, { media }, async (t, captured) => {
    t.same(byteLeaks(captured, internal), [], 'no byte names an internal address')
    const sdp = captured.map((b) => b.toString('latin1')).filter((s) => s.includes('\r\n\r\nv=0'))
    for (const s of sdp) t.match(s, new RegExp(`\\r\\nc=IN IP4 ${eng.external.replace(/\./g, '\\.')}\\r\\n`), 'SDP toward the public side names rtpengine\'s external address')
    // A BYE or CANCEL is relayed before its delete goes out: give rtpengine a moment.
    await waitFor(async () => (await ng.list({ host: eng.host, port: eng.ngPort })).length === 0, { what: 'no rtpengine session left', timeoutMs: 3000 })
    t.pass('no rtpengine session left')
  })
  const bodies = all.filter((b) => b.toString('latin1').includes('\r\n\r\nv=0')).length
  t.ok(bodies >= 20, `${all.length} public-side messages checked, ${bodies} with SDP`)
})

t.test('no open relay', async (t) => {
  const backend = await rawUdp(t, '127.0.7.11')
  const port = await freePort(PUBLIC)
  const { edge } = await startEdge(
    t,
    PUBLIC,
    { listen: [`udp:${PUBLIC}:${port}`], internalListen: [`udp:${INTERNAL}:${port}`], backends: [`sip:${backend.address}:${backend.port}`] },
    port,
  )
  const outsider = await rawUdp(t, '127.0.7.31')
  let n = 0
  const invite = (ruri: string, extra: string[] = []): string =>
    [
      `INVITE ${ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${outsider.address}:${outsider.port};branch=z9hG4bKrelay${++n};rport`,
      'Max-Forwards: 70',
      `From: <sip:mallory@${outsider.address}>;tag=m${n}`,
      `To: <${ruri}>`,
      `Call-ID: relay-${n}`,
      'CSeq: 1 INVITE',
      ...extra,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n')
  const cases: Array<[string, string, string[]]> = [
    ['a foreign domain', 'sip:bob@example.com', []],
    ['a foreign IP', 'sip:bob@192.0.2.10:5060', []],
    ['a backend addressed directly', `sip:bob@127.0.7.11:${backend.port}`, []],
    ['a Route to a foreign host', `sip:bob@${PUBLIC}:${port}`, ['Route: <sip:192.0.2.10;lr>']],
    ['a forged Record-Route token', `sip:bob@${PUBLIC}:${port}`, [`Route: <sip:${PUBLIC}:${port};lr;sk=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA>`]],
  ]
  for (const [name, ruri, extra] of cases) {
    outsider.send(invite(ruri, extra), PUBLIC, port)
    const r = await outsider.next((m) => m.callId === `relay-${n}` && m.status >= 200)
    t.equal(r.status, 403, `${name}: 403`)
  }
  // An outsider spoofing a backend's address on the public side is still the public side.
  const spoof = await rawUdp(t, '127.0.7.12')
  spoof.send(invite('sip:bob@192.0.2.10:5060').replace(/127\.0\.7\.31/g, '127.0.7.12').replace(`:${outsider.port}`, `:${spoof.port}`), PUBLIC, port)
  const r = await spoof.next((m) => m.status >= 200)
  t.equal(r.status, 403, 'spoofed internal source on the public side: 403')
  await new Promise((res) => setTimeout(res, 100))
  t.equal(backend.received.length, 0, 'nothing was forwarded')
  t.ok(edge.stats.counters.relayRefused >= 6, 'refusals counted')
})

t.test('trusted networks may call outward from the public side; others may not', async (t) => {
  const carrier = await rawUdp(t, '127.0.7.60')
  const port = await freePort(PUBLIC)
  await startEdge(
    t,
    PUBLIC,
    { listen: [`udp:${PUBLIC}:${port}`], internalListen: [`udp:${INTERNAL}:${port}`], trustedNetworks: ['127.0.7.40/30'] },
    port,
  )
  const send = async (from: string, callId: string) => {
    const pbx = await rawUdp(t, from)
    pbx.send(
      `INVITE sip:+15551234@127.0.7.60:${carrier.port} SIP/2.0\r\nVia: SIP/2.0/UDP ${from}:${pbx.port};branch=z9hG4bK${callId};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:pbx@${from}>;tag=1\r\nTo: <sip:+15551234@127.0.7.60>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
        `Contact: <sip:pbx@${from}:${pbx.port}>\r\nContent-Length: 0\r\n\r\n`,
      PUBLIC,
      port,
    )
    return pbx
  }
  await send('127.0.7.41', 'trusted-out')
  const out = await carrier.next((m) => m.isRequest) // its Call-ID is masked (maskCallId is on by default)
  t.equal(out.method, 'INVITE', 'a trusted PBX on the public side reaches the carrier')
  const stranger = await send('127.0.7.45', 'untrusted-out')
  t.equal((await stranger.next((m) => m.status >= 200)).status, 403, 'anyone else: 403')
})

t.test('3xx and REFER from a backend: rewritten for the public side, nothing internal leaks', async (t) => {
  const b = await rawUdp(t, '127.0.7.11')
  const other = await rawUdp(t, '127.0.7.12') // another Asterisk (another set), a redirect and transfer target
  const caller = await rawUdp(t, '127.0.7.30')
  const port = await freePort(PUBLIC)
  const { edge } = await startEdge(
    t,
    PUBLIC,
    {
      listen: [`udp:${PUBLIC}:${port}`],
      internalListen: [`udp:${INTERNAL}:${port}`],
      backends: [`sip:${b.address}:${b.port}`, `set=other:sip:${other.address}:${other.port}`],
      maskCallId: true,
    },
    port,
  )
  const captured = capturePublic(edge)
  const invite = (callId: string): string =>
    `INVITE sip:100@${PUBLIC}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK${callId};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al-${callId}\r\nTo: <sip:100@${PUBLIC}>\r\nCall-ID: ${callId}\r\n` +
    `CSeq: 1 INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`

  // 302 naming an internal target and an external one.
  caller.send(invite('topo-302'), PUBLIC, port)
  const inv1 = await b.next((m) => m.callId === 'topo-302')
  answer(b, inv1, 302, { host: INTERNAL, port }, {
    headers: [['Contact', `<sip:200@${other.address}:${other.port}>, <sip:+15550199@127.0.7.60>`], ['X-Backend', b.address]],
  })
  const redirect = await caller.next((m) => m.status === 302)
  t.equal(redirect.contacts.length, 2, '302: both Contacts kept')

  // An answered call, then Asterisk's blind transfer: REFER with Refer-To and Referred-By naming itself.
  caller.send(invite('topo-refer'), PUBLIC, port)
  const inv2 = await b.next((m) => m.callId === 'topo-refer' && m.method === 'INVITE')
  answer(b, inv2, 200, { host: INTERNAL, port }, {
    toTag: 'ast1',
    headers: [...inv2.getHeaders('Record-Route').map((v): [string, string] => ['Record-Route', v]), ['Contact', `<sip:100@${b.address}:${b.port}>`]],
  })
  await caller.next((m) => m.status === 200 && m.callId === 'topo-refer')
  b.send(
    inDialog({
      method: 'REFER',
      ruri: `sip:alice@${caller.address}:${caller.port}`,
      via: { host: b.address, port: b.port, branch: 'z9hG4bKtoporefer' },
      route: inv2.recordRoutes.map((r) => r.raw),
      from: `<sip:100@${b.address}>;tag=ast1`,
      to: `<sip:alice@${caller.address}>;tag=al-topo-refer`,
      callId: 'topo-refer',
      cseq: 2,
      lines: [`Refer-To: <sip:200@${other.address}:${other.port}>`, `Referred-By: <sip:100@${b.address}>`, `Contact: <sip:100@${b.address}:${b.port}>`],
    }),
    INTERNAL,
    port,
  )
  const refer = await caller.next((m) => m.method === 'REFER')
  t.ok(refer.getHeader('Refer-To'), 'REFER: Refer-To kept')
  t.same(leaks(captured), [], 'no header of the 302 or the REFER names an internal address')
})
