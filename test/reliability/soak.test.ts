// Soak: steady SIPp load through an in-process edge (CI: ~36 s; SIPEDGE_RELIABILITY=full: 10 min), sampling
// RSS, heap, open FDs, transactions and dialogs. Nothing may grow without bound: the median of the last third
// of the samples is compared with the median of the first third (after a warm-up), with room for GC noise.
// After the load, the tables drain back to (almost) nothing.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { round, sampleEdge, type Sample } from './fixtures/resources.js'
import { FULL, recordCase } from './fixtures/results.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')
// The full run outlasts the suite's 180 s per-file timeout: tell the runner.
if (FULL) t.setTimeout(15 * 60_000)

type Metric = 'rssMiB' | 'heapMiB' | 'fds' | 'transactions' | 'dialogs'

/** How much the last-third median may exceed the first-third one: factor and absolute slack. */
const ALLOW: Record<Metric, { factor: number; slack: number }> = {
  // V8 grows its heap in steps and returns memory lazily: a fifth more plus a few MiB. A leak of 1 KiB per call
  // is ~24 MiB over the full run's 24 000 calls and fails the heap bound.
  rssMiB: { factor: 1.2, slack: 24 },
  heapMiB: { factor: 1.2, slack: 8 },
  fds: { factor: 1, slack: 8 },
  // Steady state ~ rate x (call length + 5 s wait timer); jitter of the sampling instant.
  transactions: { factor: 1.3, slack: 60 },
  dialogs: { factor: 1.3, slack: 20 },
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

t.test(`soak: steady load ${FULL ? '10 min' : '36 s'}, nothing grows without bound`, async (t) => {
  const uases = [
    await startUas({ scenario: 'uas', ip: '127.0.6.51', traceMsg: false, t }),
    await startUas({ scenario: 'uas', ip: '127.0.6.52', traceMsg: false, t }),
  ]
  const { edge, target } = await startEdge(t, '127.0.6.50', {
    backends: uases.map((u) => `sip:${u.id}`),
    limits: { maxMessageSize: 65535, maxConnections: 1000, tcpIdleTimeoutMs: 30000, maxDialogs: 100000, dialogTtlS: 600, maxTransactions: 100000 },
  })
  const rate = 40
  const seconds = FULL ? 600 : 36
  const calls = rate * seconds
  const everyMs = FULL ? 10_000 : 2000
  const warmupMs = FULL ? 30_000 : 6000

  const startedAt = Date.now()
  const load = runUac({ scenario: 'uac', target, localIp: '127.0.6.53', calls, rate, durationMs: 1000, traceMsg: false, timeoutS: seconds + 30, t })
  let running = true
  void load.finally(() => { running = false })
  const samples: Sample[] = []
  while (running) {
    await new Promise((r) => setTimeout(r, everyMs))
    if (running && Date.now() - startedAt >= warmupMs) samples.push(sampleEdge(edge))
  }
  const uac = await load
  t.equal(uac.failed, 0, `no failed call: ${describe(uac)}`)
  const loadS = round((Date.now() - startedAt) / 1000)
  // A SIPp that stops early with exit 0 was told to (a signal from outside the test): say so.
  t.equal(uac.successful, calls, `every call completed (SIPp ran ${loadS} s of ${seconds} s, exit ${uac.exitCode})`)
  t.ok(samples.length >= 9, `enough samples (${samples.length})`)

  const third = Math.max(1, Math.floor(samples.length / 3))
  const rows: Record<string, string | number> = {}
  let grew = false
  for (const k of Object.keys(ALLOW) as Metric[]) {
    const first = median(samples.slice(0, third).map((s) => s[k]))
    const last = median(samples.slice(-third).map((s) => s[k]))
    const bound = first * ALLOW[k].factor + ALLOW[k].slack
    const max = Math.max(...samples.map((s) => s[k]))
    t.ok(last <= bound, `${k}: last-third median ${round(last)} <= ${round(bound)} (first-third median ${round(first)}, max ${round(max)})`)
    if (last > bound) grew = true
    rows[`${k}: first third / last third / max`] = `${round(first)} / ${round(last)} / ${round(max)}`
  }

  // Calls end 1 s after they start; finished transactions wait 5 s: 10 s is plenty for the tables to empty.
  const drained = await waitFor(() => edge.proxy.transactionCount === 0 && edge.proxy.dialogs.size === 0, { timeoutMs: 10_000, intervalMs: 100 }).then(() => true, () => false)
  t.ok(drained, `tables empty after the load (${edge.proxy.transactionCount} transactions, ${edge.proxy.dialogs.size} dialogs)`)
  const served = await Promise.all(uases.map((u) => u.stop()))

  recordCase('soak', {
    group: 'soak',
    summary: `${calls} calls at ${rate} cps (1 s hold) for ${seconds} s through an in-process edge, 2 SIPp backends; sampled every ${everyMs / 1000} s after a ${warmupMs / 1000} s warm-up`,
    figures: {
      'calls': calls,
      'calls completed': uac.successful,
      'calls failed': uac.failed,
      'calls per backend': served.map((r) => r.successful).join(' / '),
      'samples': samples.length,
      ...rows,
      'tables empty after the load': drained,
      'setup time p50 / p99 (ms)': `${uac.responseTimeMs?.p50 ?? 'n/a'} / ${uac.responseTimeMs?.p99 ?? 'n/a'}`,
    },
    passed: uac.failed === 0 && uac.successful === calls && !grew && drained,
  })
})
