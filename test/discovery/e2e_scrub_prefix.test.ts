// Found by the etcd end-to-end tests (issue 5): the public-side scrub in src/proxy/proxy.ts (scrubInternal)
// matches internal hosts as plain substrings, so a backend at 127.0.8.2 makes the edge delete every header
// that merely contains "127.0.8.2" — including the Call-ID "N-PID@127.0.8.200" of a caller at 127.0.8.200.
// The caller then discards the 180/200 ("No valid Call-ID") and every call fails.
// Expected: a host matches only as a whole address (no digit or '.'+digit right after it), and mandatory
// headers (Call-ID, CSeq) are never removed. This test fails until the scrub is fixed.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

t.test('a caller whose address starts with a backend address still gets its answers', async (t) => {
  const backend = await startUas({ scenario: 'uas', ip: '127.0.8.2', t })
  const { target } = await startEdge(t, '127.0.8.102', { backends: [`sip:${backend.id}`], logLevel: 'silent' })
  // 127.0.8.200 begins with 127.0.8.2; SIPp's Call-IDs end in "@127.0.8.200".
  const uac = await runUac({ scenario: 'uac', target, calls: 5, rate: 10, localIp: '127.0.8.200', recvTimeoutMs: 2000, timeoutS: 10, t })
  t.equal(uac.failed, 0, describe(uac))
  t.equal(uac.successful, 5, 'every call answered')
})
