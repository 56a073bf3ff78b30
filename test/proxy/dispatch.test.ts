// Dispatch, failover and dialog stickiness through the edge, with real SIPp backends.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { TEST_SECRET, startEdge } from '../helpers/edge.js'
import { freePort } from '../helpers/net.js'
import type { Teardownable } from '../helpers/proc.js'
import { describe, runUac, sippAvailable, startUas, type SippUas } from '../helpers/sipp.js'
import { rawUdp } from '../helpers/udp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

/** SIPp UAS backends on 127.0.4.<base>, 127.0.4.<base+1>, ... */
async function uases(t: Teardownable, scenarios: string[], base: number): Promise<SippUas[]> {
  const out: SippUas[] = []
  for (let i = 0; i < scenarios.length; i++) out.push(await startUas({ scenario: scenarios[i]!, ip: `127.0.4.${base + i}`, t }))
  return out
}

t.test('a backend that answers 503 is skipped: the call fails over, the caller never sees it', async (t) => {
  const [bad, good] = await uases(t, ['uas_503', 'uas'], 1)
  const { target, edge } = await startEdge(t, '127.0.3.100', { backends: [`sip:${bad!.id}`, `sip:${good!.id}`] })
  const uac = await runUac({ scenario: 'uac', target, calls: 20, rate: 20, t })
  t.equal(uac.failed, 0, describe(uac))
  t.equal(uac.successful, 20)
  t.equal((await good!.stop()).successful, 20, 'the good backend took every call')
  const badRes = await bad!.stop()
  t.ok(badRes.successful > 0, `the 503 backend was tried (${badRes.successful} times) and its ACKs absorbed`)
  t.equal(edge.stats.counters.failovers, badRes.successful, 'each 503 counted as one failover')
})

t.test('a silent backend times out and the call fails over within the failover timer', async (t) => {
  const silent = await rawUdp(t, '127.0.3.21')
  const good = await startUas({ scenario: 'uas', ip: '127.0.3.22', t })
  const { target } = await startEdge(t, '127.0.3.101', {
    backends: [`sip:${silent.address}:${silent.port}`, `sip:${good.id}`],
    failover: { maxTries: 3, inviteTimeoutMs: 400, codes: [408, 500, 503] },
  })
  const uac = await runUac({ scenario: 'uac', target, calls: 10, rate: 20, t })
  t.equal(uac.failed, 0, describe(uac))
  t.equal(uac.successful, 10)
  t.ok(silent.received.filter((m) => m.method === 'INVITE').length >= 5, 'the silent backend received INVITEs')
})

t.test('when every backend fails the caller gets 503', async (t) => {
  const [a, b] = await uases(t, ['uas_503', 'uas_503'], 3)
  const { target } = await startEdge(t, '127.0.3.102', { backends: [`sip:${a!.id}`, `sip:${b!.id}`] })
  const caller = await rawUdp(t, '127.0.3.120')
  const [host, port] = target.split(':')
  caller.send(
    [
      `INVITE sip:service@${target} SIP/2.0`,
      `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKallfail;rport`,
      'Max-Forwards: 70',
      `From: <sip:alice@${caller.address}>;tag=f1`,
      `To: <sip:service@${target}>`,
      'Call-ID: all-fail-1',
      'CSeq: 1 INVITE',
      `Contact: <sip:alice@${caller.address}:${caller.port}>`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    host!,
    Number(port),
  )
  const trying = await caller.next((m) => m.status === 100)
  t.equal(trying.status, 100, '100 Trying at once')
  const final = await caller.next((m) => m.status >= 200)
  t.equal(final.status, 503, 'all backends failed: 503')
  t.equal(final.vias.length, 1, 'only the caller\'s own Via comes back')
})

const ALGORITHMS = [
  { algorithm: 'round-robin', weights: [1, 1, 1], check: (n: number[]) => n.every((x) => x === 20) },
  { algorithm: 'weighted', weights: [2, 1, 1], check: (n: number[]) => n[0] === 30 && n[1] === 15 && n[2] === 15 },
  { algorithm: 'hash-callid', weights: [1, 1, 1], check: (n: number[]) => n.every((x) => x >= 8) },
  // SIPp's caller has one From user for every call: hashing on it pins them all to one backend.
  { algorithm: 'hash-from-user', weights: [1, 1, 1], check: (n: number[]) => n.filter((x) => x === 60).length === 1 },
  { algorithm: 'least-calls', weights: [1, 1, 1], check: (n: number[]) => n.every((x) => x >= 10) },
] as const

let net = 20
for (const a of ALGORITHMS) {
  const base = net
  net += 3
  t.test(`${a.algorithm}: 60 calls over 3 backends`, async (t) => {
    const backends = await uases(t, ['uas', 'uas', 'uas'], base)
    const list = backends.map((b, i) => `sip:${b.id};weight=${a.weights[i]}`)
    const { target } = await startEdge(t, '127.0.3.103', { backends: list, algorithm: a.algorithm })
    const uac = await runUac({ scenario: 'uac', target, calls: 60, rate: 60, durationMs: a.algorithm === 'least-calls' ? 300 : 0, t })
    t.equal(uac.failed, 0, describe(uac))
    const served = (await Promise.all(backends.map((b) => b.stop()))).map((r) => r.successful)
    t.ok(a.check(served), `distribution ${served.join('/')}`)
  })
}

t.test('stickiness survives an edge restart: BYE of a call set up before reaches the same backend', async (t) => {
  const [b1, b2] = await uases(t, ['uas', 'uas'], 7)
  const host = '127.0.3.104'
  const port = await freePort(host)
  const first = await startEdge(t, host, { backends: [`sip:${b1!.id}`, `sip:${b2!.id}`] }, port)
  // Calls hold for 2.5 s; the edge is replaced after they are set up, before their BYEs.
  const uacRun = runUac({ scenario: 'uac', target: first.target, calls: 6, rate: 20, durationMs: 2500, timeoutS: 20, t })
  await new Promise((r) => setTimeout(r, 1200))
  t.equal(first.edge.proxy.dialogs.size, 6, 'six calls up on the first edge')
  await first.edge.stop()
  // The new edge knows the backends in the other order and has an empty dialog table: only the token routes.
  const second = await startEdge(t, host, { backends: [`sip:${b2!.id}`, `sip:${b1!.id}`], secret: TEST_SECRET }, port)
  const uac = await uacRun
  t.equal(uac.failed, 0, describe(uac))
  t.equal(uac.successful, 6, 'every BYE answered by the backend that took the call')
  const served = (await Promise.all([b1!.stop(), b2!.stop()])).map((r) => r.successful)
  t.same(served, [3, 3], 'both backends completed their own calls')
  t.equal(second.edge.proxy.dialogs.size, 0)
})

t.test('a client that ignores Record-Route (SIPp built-in uac) still reaches the backend via the dialog table', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-builtin-'))
  const scenario = join(dir, 'builtin_uac.xml')
  // `sipp -sd` prints the scenario and exits non-zero.
  writeFileSync(scenario, spawnSync('sipp', ['-sd', 'uac']).stdout)
  const [b1, b2] = await uases(t, ['uas', 'uas'], 9)
  const { target } = await startEdge(t, '127.0.3.105', { backends: [`sip:${b1!.id}`, `sip:${b2!.id}`] })
  const uac = await runUac({ scenario, target, calls: 10, rate: 20, t })
  t.equal(uac.failed, 0, describe(uac))
  const served = (await Promise.all([b1!.stop(), b2!.stop()])).map((r) => r.successful)
  t.same(served, [5, 5], 'ACK and BYE with no Route reached the backend of each call')
})

t.test('a forged or foreign Record-Route token gets 403 and is never forwarded', async (t) => {
  const backend = await rawUdp(t, '127.0.3.90')
  const { edge, host, port } = await startEdge(t, '127.0.3.106', { backends: [`sip:${backend.address}:${backend.port}`] })
  const caller = await rawUdp(t, '127.0.3.121')
  const other = (await import('../../src/proxy/tokens.js')).TokenCodec
  const foreign = new other('another-secret-0123456789').sealRoute(
    { proto: 'udp', address: '127.0.3.90', port: backend.port },
    { proto: 'udp', address: caller.address, port: caller.port },
  )
  const genuine = edge.proxy.tokens.sealRoute(
    { proto: 'udp', address: '127.0.3.90', port: backend.port },
    { proto: 'udp', address: caller.address, port: caller.port },
  )
  const tampered = genuine.slice(0, 20) + (genuine[20] === 'A' ? 'B' : 'A') + genuine.slice(21)
  for (const [name, token] of [['garbage', 'not-a-token-at-all-xx'], ['other secret', foreign], ['one byte changed', tampered]] as const) {
    caller.send(
      [
        `BYE sip:bob@${caller.address}:5999 SIP/2.0`,
        `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK${name.replace(/ /g, '')};rport`,
        `Route: <sip:${host}:${port};lr;sk=${token}>`,
        'Max-Forwards: 70',
        `From: <sip:alice@${caller.address}>;tag=f1`,
        '<sip:bob@example.com>;tag=t1'.replace(/^/, 'To: '),
        `Call-ID: forged-${name.replace(/ /g, '-')}`,
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      host,
      port,
    )
    const r = await caller.next((m) => m.callId === `forged-${name.replace(/ /g, '-')}`)
    t.equal(r.status, 403, `${name}: 403`)
  }
  await new Promise((r) => setTimeout(r, 100))
  t.equal(backend.received.length, 0, 'nothing reached the backend')
})
