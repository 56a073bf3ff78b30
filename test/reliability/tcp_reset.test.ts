// A caller's TCP connection reset (RST) in the middle of an INVITE transaction. The edge can no longer deliver
// the answer; whatever the backend does next (gives up with 486, or answers 200 and, never ACKed, hangs up
// with BYE) the edge must end the transaction and the dialog on its own, within bounded time, and keep
// serving other calls meanwhile.
import net from 'node:net'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable } from '../helpers/sipp.js'
import { ScriptedBackend } from './fixtures/raw_backend.js'
import { recordCase } from './fixtures/results.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const CALLER = '127.0.6.32'

/** Opens a TCP connection from CALLER, sends an INVITE, resolves once the 180 came back on it. */
async function ringingOverTcp(host: string, port: number, callId: string): Promise<net.Socket> {
  const sock = net.connect({ host, port, localAddress: CALLER })
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const lp = sock.localPort!
  sock.write([
    `INVITE sip:bob@${host}:${port};transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP ${CALLER}:${lp};branch=z9hG4bK${callId};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@${CALLER}>;tag=rst1`,
    `To: <sip:bob@${host}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:alice@${CALLER}:${lp};transport=tcp>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n'))
  let got = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 180 for ${callId} within 3 s: ${got}`)), 3000)
    sock.on('data', (d) => {
      got += d.toString('latin1')
      if (got.includes('SIP/2.0 180 ')) { clearTimeout(timer); resolve() }
    })
  })
  sock.on('error', () => { /* after the reset */ })
  return sock
}

// After the reset the backend: gives up ringing (486), or picks up (200) and, with no ACK, hangs up.
for (const outcome of ['486', '200+BYE'] as const) {
  t.test(`caller TCP reset while ringing, backend then answers ${outcome}`, async (t) => {
    const slug = outcome === '486' ? 'busy' : 'answer'
    const backend = await ScriptedBackend.start(outcome === '486' ? '127.0.6.31' : '127.0.6.34')
    t.teardown(() => backend.stop())
    const answerAfterMs = 1500
    backend.plan = (callId) =>
      callId.startsWith('rst-') ? { ring: true, final: outcome === '486' ? 486 : 200, delayMs: answerAfterMs } : { ring: false, final: 200 }
    const { edge, host, port, target } = await startEdge(t, outcome === '486' ? '127.0.6.30' : '127.0.6.33', {
      backends: [backend.uri],
      limits: { maxMessageSize: 65535, maxConnections: 1000, tcpIdleTimeoutMs: 30000, maxDialogs: 100000, dialogTtlS: 3600, maxTransactions: 100000 },
    })

    const callId = `rst-${slug}-${Date.now()}`
    const sock = await ringingOverTcp(host, port, callId)
    const resetAt = Date.now()
    sock.resetAndDestroy()

    // Other callers over TCP meanwhile: 20 calls at 20 cps.
    const others = runUac({ scenario: 'uac', transport: 'tcp', target, localIp: outcome === '486' ? '127.0.6.35' : '127.0.6.36', calls: 20, rate: 20, traceMsg: false, timeoutS: 20, t })

    if (outcome === '200+BYE') {
      await waitFor(() => backend.answered.has(callId), { timeoutMs: answerAfterMs + 2000, what: 'the backend answered 200' })
      // No ACK can come from a caller that is gone; the callee hangs up after a while (Asterisk: 32 s; here 1 s).
      await new Promise((r) => setTimeout(r, 1000))
      t.equal(backend.count('ACK', callId), 0, 'no ACK reached the backend (the caller is gone)')
      t.ok(backend.hangUp(callId), 'the backend sends its BYE through the edge')
    }

    // The answer comes 1.5 s after the reset; a finished transaction is kept 5 s (wt_timer): 12 s is ample
    // when the edge ends the server transaction on the failed send (RFC 3261 §17.2.4). Timer H (32 s) is the
    // outer bound an edge waiting for an ACK that cannot come would still respect.
    const clean = (): number => (edge.proxy.transactionCount === 0 && edge.proxy.dialogs.size === 0 ? Date.now() - resetAt : 0)
    const left = (): string => `${edge.proxy.transactionCount} transactions, ${edge.proxy.dialogs.size} dialogs`
    let cleanMs = await waitFor(clean, { timeoutMs: 12_000, intervalMs: 50 }).catch(() => -1)
    t.ok(cleanMs > 0, `tables back to 0 soon after the failed send (${cleanMs} ms after the reset; ${left()} left after 12 s)`)
    if (cleanMs < 0) cleanMs = await waitFor(clean, { timeoutMs: 40_000 - (Date.now() - resetAt), intervalMs: 100 }).catch(() => -1)
    t.ok(cleanMs > 0, `tables back to 0 within timer H + margin (${cleanMs} ms after the reset; ${left()} left)`)

    const cancels = backend.count('CANCEL', callId)
    if (outcome === '486') {
      // Either the edge cancelled on the reset (CANCEL, then the backend's 487 is ACKed) or it let the INVITE
      // run to the backend's 486 and ACKed that: both end the backend's transaction.
      t.equal(backend.pending.has(callId), false, 'the INVITE is over at the backend')
      t.ok(backend.count('ACK', callId) === 1, `the edge ACKed the backend's final answer (cancels: ${cancels})`)
    } else {
      const byeAnswer = await waitFor(() => backend.responses.find((r) => r.callId === callId), { timeoutMs: 5000, what: 'an answer to the backend BYE' }).catch(() => undefined)
      t.ok(byeAnswer !== undefined && byeAnswer.status >= 200, `the backend's BYE gets a final answer from the edge (${byeAnswer?.status})`)
    }

    const uac = await others
    t.equal(uac.failed, 0, `other calls over TCP unaffected: ${describe(uac)}`)
    t.equal(uac.successful, 20)

    recordCase(`tcp-reset-${slug}`, {
      group: 'faults',
      summary: `Caller's TCP connection reset (RST) while its INVITE rang; the backend then ${outcome === '486' ? 'gave up with 486' : 'answered 200 and, never ACKed, hung up with BYE'} after ${answerAfterMs} ms; 20 other TCP calls meanwhile`,
      figures: {
        'tables back to 0 after (ms)': cleanMs,
        'send errors (edge)': edge.stats.counters.sendErrors.join('/'),
        'CANCEL sent to the backend': cancels,
        'ACK sent to the backend': backend.count('ACK', callId),
        'other calls completed': uac.successful,
        'other calls failed': uac.failed,
      },
      passed: cleanMs > 0 && cleanMs < 12_000 && uac.failed === 0 && uac.successful === 20,
    })
  })
}
