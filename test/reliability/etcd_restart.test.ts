// etcd killed and restarted under steady load: the edge keeps the last known backend set while etcd is gone,
// reconnects when it is back, and no call fails at any point.
import { Etcd3 } from 'etcd3'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { startEtcd } from '../helpers/etcd.js'
import { waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { FULL, recordCase } from './fixtures/results.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

const PREFIX = '/sipedge/backends/'
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('etcd SIGKILLed for a few seconds and restarted under steady load: zero failed calls', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.cleanup())
  const uases = [
    await startUas({ scenario: 'uas', ip: '127.0.6.41', traceMsg: false, t }),
    await startUas({ scenario: 'uas', ip: '127.0.6.42', traceMsg: false, t }),
  ]
  const client = new Etcd3({ hosts: etcd.endpoint })
  for (const [i, u] of uases.entries()) {
    await client.put(`${PREFIX}default/uas${i + 1}`).value(JSON.stringify({ uri: `sip:${u.id}`, weight: 1, priority: 0, state: 'active' }))
  }
  client.close()
  const { edge, target } = await startEdge(t, '127.0.6.40', { etcd: { endpoints: [etcd.endpoint], prefix: PREFIX } })
  await waitFor(() => edge.dispatcher.backends().length === 2, { timeoutMs: 5000, what: 'both backends discovered' })
  const etcdState = async (): Promise<string> => /sipedge_etcd_state\{state="(\w+)"\} 1/.exec(await edge.metrics.metrics())?.[1] ?? 'unknown'

  // 20 cps, 500 ms calls; the outage sits in the middle of the run.
  const rate = 20
  const seconds = FULL ? 60 : 16
  const calls = rate * seconds
  const load = runUac({ scenario: 'uac', target, localIp: '127.0.6.43', calls, rate, durationMs: 500, traceMsg: false, timeoutS: seconds + 20, t })
  await pause(seconds * 1000 / 4)

  const rounds = FULL ? 3 : 1
  const downMs = 4000
  let noticedMs = 0
  let reconnectMs = 0
  let minBackends = 2
  for (let round = 0; round < rounds; round++) {
    const killedAt = Date.now()
    etcd.kill('SIGKILL')
    noticedMs = Math.max(noticedMs, await waitFor(async () => ((await etcdState()) === 'disconnected' ? Date.now() - killedAt : 0), { timeoutMs: downMs, what: 'edge sees etcd gone' }).catch(() => -1))
    while (Date.now() - killedAt < downMs) {
      minBackends = Math.min(minBackends, edge.dispatcher.backends().length)
      await pause(100)
    }
    const restartAt = Date.now()
    await etcd.restart()
    reconnectMs = Math.max(reconnectMs, await waitFor(async () => ((await etcdState()) === 'connected' ? Date.now() - restartAt : 0), { timeoutMs: 10_000, intervalMs: 50, what: 'edge reconnected' }))
    minBackends = Math.min(minBackends, edge.dispatcher.backends().length)
    if (round + 1 < rounds) await pause(8000)
  }
  t.ok(noticedMs > 0, `the edge noticed etcd was gone (${noticedMs} ms)`)
  t.equal(minBackends, 2, 'the last known set was kept during the outage')

  const uac = await load
  t.equal(uac.failed, 0, `no failed call across the outage: ${describe(uac)}`)
  t.equal(uac.successful, calls)
  const served = await Promise.all(uases.map((u) => u.stop()))
  t.ok(served.every((r) => r.successful >= calls / 4), `both backends kept taking calls (${served.map((r) => r.successful).join('/')})`)
  t.equal(edge.dispatcher.backends().length, 2)

  recordCase('etcd-kill-restart', {
    group: 'faults',
    summary: `etcd SIGKILLed for ${downMs / 1000} s and restarted (${rounds}x) during ${calls} calls at ${rate} cps (500 ms calls); backends discovered from etcd keys`,
    figures: {
      'calls': calls,
      'calls completed': uac.successful,
      'calls failed': uac.failed,
      'edge noticed etcd down after (ms)': noticedMs,
      'edge reconnected after restart (ms, worst)': reconnectMs,
      'fewest backends during the outage': minBackends,
      'calls per backend': served.map((r) => r.successful).join(' / '),
    },
    passed: uac.failed === 0 && uac.successful === calls && minBackends === 2,
  })
})
