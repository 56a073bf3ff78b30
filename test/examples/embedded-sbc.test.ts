// examples/embedded-sbc.ts driven with real calls: SIPp callers (-s = called number) through the SBC to
// SIPp UAS backends per set, raw UDP endpoints where the exact bytes matter (stripped headers, 403).
import t from 'tap'
import pino from 'pino'
import { startSbc, type CallEnd } from '../../examples/embedded-sbc.js'
import { TEST_SECRET } from '../helpers/edge.js'
import { freePort, waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { rawUdp, request } from '../helpers/udp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const silent = pino({ level: process.env.SIPEDGE_TEST_LOG ?? 'silent' })

t.test('calls are routed by called-number prefix and every end is reported', async (t) => {
  const us = await startUas({ scenario: 'uas', ip: '127.0.9.1', t })
  const uk = await startUas({ scenario: 'uas', ip: '127.0.9.2', t })
  const other = await startUas({ scenario: 'uas', ip: '127.0.9.3', t })
  const ended: CallEnd[] = []
  const port = await freePort('127.0.9.100')
  const sbc = await startSbc({
    backends: { us: [`sip:${us.id}`], uk: [`sip:${uk.id}`], default: [`sip:${other.id}`] },
    listen: [`udp:127.0.9.100:${port}`],
    secret: TEST_SECRET,
    probe: false,
    logger: silent,
    onCallEnd: (e) => ended.push(e),
  })
  t.teardown(() => sbc.stop())
  const target = `127.0.9.100:${port}`

  const toUs = await runUac({ scenario: 'uac', target, calls: 6, rate: 30, service: '+15551230000', t })
  const toUk = await runUac({ scenario: 'uac', target, calls: 4, rate: 30, service: '+442071234567', t })
  const toOther = await runUac({ scenario: 'uac', target, calls: 3, rate: 30, service: '+33140000000', t })
  for (const [r, n] of [[toUs, 6], [toUk, 4], [toOther, 3]] as const) {
    t.equal(r.failed, 0, describe(r))
    t.equal(r.successful, n)
  }
  t.same(toUs.backends.filter((b) => b !== ''), [], 'X-Backend is scrubbed toward the caller')

  t.equal((await us.stop()).successful, 6, '+1... went to set us')
  t.equal((await uk.stop()).successful, 4, '+44... went to set uk')
  t.equal((await other.stop()).successful, 3, 'anything else went to set default')

  await waitFor(() => ended.length === 13, { timeoutMs: 3000, what: '13 call ends' })
  const bySet: Record<string, number> = {}
  for (const e of ended) bySet[e.set ?? '?'] = (bySet[e.set ?? '?'] ?? 0) + 1
  t.same(bySet, { us: 6, uk: 4, default: 3 }, 'one end per call, with its set')
  t.ok(ended.every((e) => e.reason === 'bye' && e.direction === 'in' && e.durationMs >= 0), 'ended by BYE, inbound')
  t.equal(sbc.edge.proxy.dialogs.size, 0, 'no dialog left behind')
})

t.test('internal headers are stripped toward the backend; other headers pass', async (t) => {
  const backend = await rawUdp(t, '127.0.9.11')
  const caller = await rawUdp(t, '127.0.9.12')
  const port = await freePort('127.0.9.101')
  const sbc = await startSbc({
    backends: { uk: [`sip:${backend.address}:${backend.port}`] },
    listen: [`udp:127.0.9.101:${port}`],
    secret: TEST_SECRET,
    probe: false,
    logger: silent,
  })
  t.teardown(() => sbc.stop())
  caller.send(
    request({
      method: 'INVITE',
      ruri: `sip:+442070000001@127.0.9.101:${port}`,
      from: { host: caller.address, port: caller.port },
      callId: 'strip-1',
      lines: [
        'P-Preferred-Identity: <sip:+15550001111@carrier.example>',
        'X-Internal-Debug: trace=on',
        'x-internal-debug: second-copy',
        'X-Customer: 42',
      ],
    }),
    '127.0.9.101',
    port,
  )
  const invite = await backend.next((m) => m.method === 'INVITE')
  t.equal(invite.getHeader('P-Preferred-Identity'), undefined, 'P-Preferred-Identity removed')
  t.same(invite.getHeaders('X-Internal-Debug'), [], 'every X-Internal-Debug removed, whatever the case')
  t.equal(invite.getHeader('X-Customer'), '42', 'other custom headers pass untouched')
  t.equal(invite.callId, 'strip-1')
  t.ok(invite.recordRoutes.length >= 1, 'the edge record-routes the call')
  const trying = await caller.next((m) => m.status === 100)
  t.equal(trying.status, 100)
})

t.test('a blocked caller prefix gets 403 and reaches no backend', async (t) => {
  const backend = await rawUdp(t, '127.0.9.21')
  const caller = await rawUdp(t, '127.0.9.22')
  const port = await freePort('127.0.9.102')
  const sbc = await startSbc({
    backends: { default: [`sip:${backend.address}:${backend.port}`] },
    blockedCallers: ['+1900', '+4470'],
    listen: [`udp:127.0.9.102:${port}`],
    secret: TEST_SECRET,
    probe: false,
    logger: silent,
  })
  t.teardown(() => sbc.stop())
  const invite = (callId: string, caller_: string) =>
    request({
      method: 'INVITE',
      ruri: `sip:+33140000000@127.0.9.102:${port}`, // no route: set default,
      from: { host: caller.address, port: caller.port },
      callId,
      lines: [],
    }).replace(`From: <sip:alice@${caller.address}>`, `From: <sip:${caller_}@${caller.address}>`)

  caller.send(invite('blocked-1', '+19005550000'), '127.0.9.102', port)
  const refused = await caller.next((m) => m.callId === 'blocked-1' && m.status >= 200)
  t.equal(refused.status, 403, 'blocked caller: 403')
  t.equal(refused.reason, 'Forbidden')
  t.equal(sbc.blocked, 1)

  caller.send(invite('allowed-1', '+12125550000'), '127.0.9.102', port)
  const forwarded = await backend.next((m) => m.method === 'INVITE')
  t.equal(forwarded.callId, 'allowed-1', 'the allowed caller reaches the backend')
  t.notOk(backend.received.some((m) => m.callId === 'blocked-1'), 'the blocked INVITE never reached a backend')
  t.equal(sbc.blocked, 1)
})
