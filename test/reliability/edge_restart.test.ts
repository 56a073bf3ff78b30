// The edge process SIGKILLed with calls up, and a new process started on the same address with the same
// secret: every BYE still reaches the backend that took its call, from the Record-Route token alone (the new
// process has an empty dialog table and lists the backends in the other order).
import t from 'tap'
import { freePort } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { ensureBuilt, startEdgeProcess } from './fixtures/edge_process.js'
import { FULL, recordCase } from './fixtures/results.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const SECRET = 'reliability-restart-secret-0123'
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('edge SIGKILLed with calls up, restarted on the same address: every BYE reaches its backend', async (t) => {
  ensureBuilt()
  const uases = [
    await startUas({ scenario: 'uas', ip: '127.0.6.11', traceMsg: false, t }),
    await startUas({ scenario: 'uas', ip: '127.0.6.12', traceMsg: false, t }),
  ]
  const host = '127.0.6.10'
  const port = await freePort(host)
  const common = ['--secret', SECRET, '--no-probe', '--log-level', 'warn']
  const first = await startEdgeProcess(t, host, port, ['--backend', uases.map((u) => `sip:${u.id}`).join(','), ...common])

  // All INVITEs go out within the first second; calls hold 3 s: the kill at 1.6 s finds every call up
  // and no BYE sent yet.
  const calls = FULL ? 100 : 20
  const load = runUac({ scenario: 'uac', target: `${host}:${port}`, localIp: '127.0.6.13', calls, rate: calls, durationMs: 3000, traceMsg: false, timeoutS: 30, t })
  await pause(1600)
  const killedAt = Date.now()
  first.kill('SIGKILL')
  await first.exited
  await startEdgeProcess(t, host, port, ['--backend', uases.map((u) => `sip:${u.id}`).reverse().join(','), ...common])
  const restartMs = Date.now() - killedAt

  const uac = await load
  t.equal(uac.failed, 0, `no failed call: ${describe(uac)}`)
  t.equal(uac.successful, calls, 'every call completed (BYE answered)')
  const served = await Promise.all(uases.map((u) => u.stop()))
  for (const [i, r] of served.entries()) {
    const answered = r.counters.IncomingCall ?? -1
    t.equal(r.failed, 0, `backend ${i + 1}: no failed call`)
    t.equal(r.successful, answered, `backend ${i + 1}: every call it answered (${answered}) got its BYE (${r.successful})`)
  }
  const total = served.reduce((n, r) => n + r.successful, 0)
  t.equal(total, calls, 'the backends completed every call between them')

  recordCase('edge-sigkill-restart', {
    group: 'faults',
    summary: `Edge process SIGKILLed with ${calls} calls up (3 s hold), a new process started on the same address with the same secret and the backends in the other order`,
    figures: {
      'calls': calls,
      'edge down (SIGKILL to answering OPTIONS, ms)': restartMs,
      'calls completed (caller)': uac.successful,
      'calls failed (caller)': uac.failed,
      'backend 1 answered / completed': `${served[0]!.counters.IncomingCall ?? 0} / ${served[0]!.successful}`,
      'backend 2 answered / completed': `${served[1]!.counters.IncomingCall ?? 0} / ${served[1]!.successful}`,
    },
    passed: uac.failed === 0 && uac.successful === calls && total === calls && served.every((r) => r.failed === 0 && r.successful === r.counters.IncomingCall),
  })
})
