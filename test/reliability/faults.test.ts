// Faults under load: a backend SIGKILLed and a backend SIGSTOPped while SIPp calls run through the edge.
// New INVITEs fail over (no provisional within inviteTimeoutMs, or a transport error), the prober marks the
// backend down, failed calls stay <= 0.1% of the load, and the transaction and dialog tables go back down.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { FULL, recordCase } from './fixtures/results.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

let ip = 30
for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
  const base = ip
  ip += 5
  t.test(`backend ${signal} under load`, async (t) => {
    const uases = [
      await startUas({ scenario: 'uas', ip: `127.0.5.${base + 1}`, traceMsg: false, t }),
      await startUas({ scenario: 'uas', ip: `127.0.5.${base + 2}`, traceMsg: false, t }),
    ]
    const victim = uases[0]!
    // A stopped process must not outlive the test frozen.
    if (signal === 'SIGSTOP') t.teardown(() => { try { process.kill(victim.pid, 'SIGCONT') } catch { /* gone */ } })
    const { edge, target } = await startEdge(t, `127.0.5.${base}`, {
      backends: uases.map((u) => `sip:${u.id}`),
      algorithm: 'round-robin',
      failover: { maxTries: 3, inviteTimeoutMs: 500, codes: [408, 500, 503] },
      probe: { enabled: true, intervalMs: 300, timeoutMs: 200, failThreshold: 2, okThreshold: 1 },
      limits: { maxMessageSize: 65535, maxConnections: 1000, tcpIdleTimeoutMs: 30000, maxDialogs: 100000, dialogTtlS: 60, maxTransactions: 100000 },
    })
    const calls = FULL ? 3000 : 600
    const rate = 50
    // Calls last 2 s: the fault catches calls in every state (ringing, answered, being hung up).
    const load = runUac({ scenario: 'uac', target, localIp: `127.0.5.${base + 3}`, calls, rate, durationMs: 2000, traceMsg: false, timeoutS: 90, t })
    await pause(((calls / rate) * 1000) / 3)
    const victimBackend = edge.dispatcher.backends().find((b) => b.uri.includes(victim.id))!
    // The edge runs in this process: a 200 the victim sent just before the signal may still sit in the edge's
    // socket buffer, and becomes a call on the victim only once the edge reads it. Those are lost with the
    // backend too, so they are counted with the calls it held at the fault.
    const dispatcher = edge.dispatcher
    const callStarted = dispatcher.callStarted.bind(dispatcher)
    let lateOnVictim = 0
    dispatcher.callStarted = (b) => {
      if (b === victimBackend) lateOnVictim++
      callStarted(b)
    }
    const heldAtFault = victimBackend.activeCalls
    const t0 = Date.now()
    process.kill(victim.pid, signal)
    await waitFor(() => victimBackend.health === 'down', { timeoutMs: 5000, what: 'prober marks the backend down' })
    const markedDownMs = Date.now() - t0
    const result = await load
    const onVictim = heldAtFault + lateOnVictim
    // Calls already answered by the victim cannot end (their BYE has nowhere to go): those are the
    // calls lost with the backend, not failures of the edge. Every call started after the fault must succeed.
    const budget = Math.floor(calls * 0.001)
    const failedRatio = (result.failed - Math.min(result.failed, onVictim)) / calls
    t.ok(result.failed <= onVictim + budget, `failed calls (${result.failed}) <= calls on the victim at the fault (${onVictim}) + 0.1% (${budget}): ${describe(result)}`)
    // Dialogs of the dead backend end through the dialog TTL/BYE timeouts; transactions through their timers.
    // Timer B/F/J/K are 32 s: everything must be gone a little after that.
    const drained = await waitFor(() => edge.proxy.transactionCount < 50, { timeoutMs: 40_000, intervalMs: 500 }).then(() => true, () => false)
    const dialogsLeft = edge.proxy.dialogs.size
    t.ok(drained, `transactions drain after the fault (${edge.proxy.transactionCount} left after 40 s)`)
    t.ok(dialogsLeft <= result.failed, `dialog table holds at most the lost calls (${dialogsLeft})`)
    recordCase(`backend-${signal.toLowerCase()}`, {
      group: 'faults',
      summary: `One of two backends ${signal === 'SIGKILL' ? 'killed (SIGKILL)' : 'frozen (SIGSTOP)'} a third into ${calls} calls at ${rate} cps (2 s calls)`,
      figures: {
        'calls': calls,
        'calls completed': result.successful,
        'calls on the victim at the fault': onVictim,
        'calls failed': result.failed,
        'failed % beyond the victim\'s calls': Math.round(failedRatio * 10000) / 100,
        'backend marked down after (ms)': markedDownMs,
        'failovers': edge.stats.counters.failovers ?? 'n/a',
        'transactions left': edge.proxy.transactionCount,
        'dialogs left': dialogsLeft,
      },
      passed: drained && result.failed <= onVictim + budget,
    })
  })
}
