// Issue 5 end to end, etcd outage: an edge discovering three registered SIPp backends keeps routing real
// calls while etcd is killed, and converges on a set changed during the outage (a fourth backend written
// while the edge was cut off) within 1 s of etcd coming back. Registrants run in-process (`register()`).
import t from 'tap'
import { Etcd3 } from 'etcd3'
import { register } from '../../src/discovery/register.js'
import { startEdge } from '../helpers/edge.js'
import { startEtcd } from '../helpers/etcd.js'
import { waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas, type SippUas } from '../helpers/sipp.js'
import { pino } from 'pino'

const PREFIX = '/h9-e2e-outage/backends/'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(200) })
    return ((await res.json()) as { health?: string }).health === 'true'
  } catch {
    return false
  }
}

t.test('etcd killed, then frozen, under steady load: no failed call, fast convergence on the changed set', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.cleanup())
  const uas: SippUas[] = []
  for (let i = 1; i <= 4; i++) uas.push(await startUas({ scenario: 'uas', ip: `127.0.8.${20 + i}`, traceMsg: false, t }))
  const { edge, target } = await startEdge(t, '127.0.8.101', {
    etcd: { endpoints: [etcd.endpoint], prefix: PREFIX },
    logLevel: 'silent',
  })
  const removals: string[] = []
  edge.on('backend', (b, what) => {
    if (what === 'removed') removals.push(b.uri)
  })

  // Three registrants with the default 10 s lease: an outage of a few seconds must not cost their keys.
  const stop = new AbortController()
  const force = new AbortController()
  const running = uas.slice(0, 3).map((u) =>
    register({ endpoints: [etcd.endpoint], prefix: PREFIX, set: 'default', uri: `sip:${u.id}`, logger: pino({ level: 'silent' }) }, stop.signal, force.signal),
  )
  t.teardown(async () => {
    force.abort()
    stop.abort()
    await Promise.all(running)
  })
  await waitFor(() => edge.dispatcher.backends().length === 3, { timeoutMs: 5000, what: 'three registered backends' })

  const etcdState = async (): Promise<string> => {
    const m = /sipedge_etcd_state\{state="(\w+)"\} 1/.exec(await edge.metrics.metrics())
    return m ? m[1]! : 'unknown'
  }
  t.equal(await etcdState(), 'connected')

  // 10 cps for 12 s, each call held 200 ms: both outages and the reconnections happen in the middle.
  const loadStart = Date.now()
  const load = runUac({ scenario: 'uac', target, calls: 120, rate: 10, durationMs: 200, localIp: '127.0.8.205', traceMsg: false, timeoutS: 30, t })
  await new Promise((r) => setTimeout(r, 1500))

  const killedAt = Date.now()
  etcd.kill('SIGKILL')
  await waitFor(async () => (await etcdState()) === 'disconnected', { timeoutMs: 3000, what: 'edge sees etcd down' })
  t.comment(`edge noticed etcd was gone after ${Date.now() - killedAt} ms`)

  // While the edge is cut off, a fourth backend appears: written through another etcd instance on the same
  // data dir (another client port the edge does not know), then that instance stops.
  const side = await startEtcd({ dataDir: etcd.dataDir, peerPort: etcd.peerPort })
  const client = new Etcd3({ hosts: side.endpoint })
  await client.put(`${PREFIX}default/late`).value(JSON.stringify({ uri: `sip:${uas[3]!.id}`, weight: 1, priority: 0, state: 'active' }))
  client.close()
  await side.stop()
  await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 3000 - Date.now())))
  t.equal(edge.dispatcher.backends().length, 3, 'the last known set is kept while etcd is down')

  // Restart etcd and time, from its first healthy answer, until the edge holds the fourth backend.
  let reachableAt = 0
  let convergedAt = 0
  const restarting = etcd.restart()
  const deadline = Date.now() + 15_000
  while ((!reachableAt || !convergedAt) && Date.now() < deadline) {
    if (!convergedAt && edge.dispatcher.get('default/late')) convergedAt = performance.now()
    if (!reachableAt && (await healthy(etcd.endpoint))) reachableAt = performance.now()
    await new Promise((r) => setTimeout(r, 2))
  }
  await restarting
  const outageMs = Date.now() - killedAt
  t.ok(reachableAt > 0 && convergedAt > 0, 'etcd came back and the edge got the new backend')
  const convergenceMs = Math.round(convergedAt - reachableAt)
  t.comment(`etcd down ${outageMs} ms; edge converged ${convergenceMs} ms after etcd answered /health again`)
  t.ok(convergenceMs < 1000, `converged within 1 s of reconnect (${convergenceMs} ms)`)
  await waitFor(async () => (await etcdState()) === 'connected', { timeoutMs: 3000, what: 'edge reconnected' })

  // Frozen rather than dead (SIGSTOP: sockets stay open, nothing answers), then thawed: a change written
  // right after SIGCONT must reach the edge through the same watch.
  etcd.kill('SIGSTOP')
  await new Promise((r) => setTimeout(r, 2000))
  t.equal(edge.dispatcher.backends().length, 4, 'set kept while etcd is frozen')
  etcd.kill('SIGCONT')
  const thawedAt = performance.now()
  const writer = new Etcd3({ hosts: etcd.endpoint })
  t.teardown(() => writer.close())
  await writer.put(`${PREFIX}default/late`).value(JSON.stringify({ uri: `sip:${uas[3]!.id}`, weight: 3, priority: 0, state: 'active' }))
  await waitFor(() => edge.dispatcher.get('default/late')?.weight === 3, { timeoutMs: 5000, intervalMs: 2, what: 'weight change after SIGCONT' })
  const thawMs = Math.round(performance.now() - thawedAt)
  t.comment(`etcd frozen 2 s: a change written after SIGCONT reached the edge ${thawMs} ms after SIGCONT`)
  t.ok(thawMs < 1000, `change applied within 1 s of SIGCONT (${thawMs} ms)`)

  const uac = await load
  t.comment(`load: ${uac.successful} calls over ${Date.now() - loadStart} ms, ${uac.failed} failed`)
  t.equal(uac.failed, 0, `no failed call across the outage: ${describe(uac)}`)
  t.equal(uac.successful, 120)
  const late = edge.callsByBackend().find((c) => c.hostport === uas[3]!.id)
  t.ok(late && late.calls >= 5, `the backend added during the outage took calls after the reconnect (${late?.calls ?? 0})`)
  t.same(removals, [], 'no backend was removed across the outage')
  t.equal(edge.dispatcher.backends().length, 4)
})
