// RFC 3261 §16 call flows through the edge with real SIPp endpoints: a caller (UAC) -> sipedge -> two
// SIPp UAS standing in for Asterisk containers, over UDP and over TCP.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { describe, runUac, sippAvailable, startUas, type SippUas } from '../helpers/sipp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const FLOWS = [
  { name: 'basic call (INVITE/180/200/ACK/BYE)', uac: 'uac', uas: 'uas' },
  { name: 're-INVITE from the caller', uac: 'uac_reinvite', uas: 'uas_reinvite' },
  { name: 're-INVITE from the callee', uac: 'uac_reinvite_callee', uas: 'uas_reinvite_callee', uasDurationMs: 200 },
  { name: 'CANCEL before answer (487, ACK hop by hop)', uac: 'uac_cancel', uas: 'uas_cancel' },
  { name: 'BYE from the callee', uac: 'uac_callee_bye', uas: 'uas_bye', uasDurationMs: 200 },
  { name: '486 Busy reaches the caller, no failover', uac: 'uac_486', uas: 'uas_486' },
  { name: 'REFER and NOTIFY inside the dialog', uac: 'uac_refer', uas: 'uas_refer' },
] as const

let ip = 10
for (const transport of ['udp', 'tcp'] as const) {
  for (const flow of FLOWS) {
    const base = ip
    ip += 3
    t.test(`${flow.name} over ${transport}`, async (t) => {
      const hosts = [`127.0.2.${base + 1}`, `127.0.2.${base + 2}`]
      const uases: SippUas[] = []
      for (const h of hosts) {
        uases.push(
          await startUas({
            scenario: flow.uas,
            ip: h,
            transport,
            t,
            ...('uasDurationMs' in flow ? { durationMs: flow.uasDurationMs } : {}),
          }),
        )
      }
      const tp = transport === 'tcp' ? ';transport=tcp' : ''
      const { target, edge } = await startEdge(t, `127.0.2.${base}`, {
        backends: uases.map((u) => `sip:${u.id}${tp}`),
        algorithm: 'round-robin',
      })
      const calls = 10
      const uac = await runUac({ scenario: flow.uac, target, transport, calls, rate: 20, timeoutS: 30, t })
      t.equal(uac.failed, 0, `no failed call: ${describe(uac)}`)
      t.equal(uac.successful, calls, 'every call completed')
      const results = await Promise.all(uases.map((u) => u.stop()))
      const served = results.map((r) => r.successful)
      t.same(served, [calls / 2, calls / 2], 'round-robin: half of the calls on each backend')
      if (flow.uac === 'uac') t.ok(uac.backends.length === calls && uac.backends.every((b) => b === ''), 'the X-Backend header naming an internal address never reached the caller')
      t.equal(edge.proxy.dialogs.size, 0, 'every dialog ended')
    })
  }
}
