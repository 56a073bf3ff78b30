// EtcdSource across etcd outages: down at start, frozen (SIGSTOP), killed and restarted with a changed set.
// Measures the time from etcd being reachable again to the sink holding the new set.
import t from 'tap'
import { Etcd3 } from 'etcd3'
import type { BackendSink, BackendSpec } from '../../src/dispatch/types.js'
import { EtcdSource, type EtcdSourceState } from '../../src/discovery/etcd_source.js'
import { freePort, startEtcd, waitFor, type EtcdHandle } from '../helpers/etcd.js'

class MapSink implements BackendSink {
  readonly backends = new Map<string, BackendSpec>()
  upsert(spec: BackendSpec): void {
    this.backends.set(spec.id, spec)
  }
  remove(id: string): void {
    this.backends.delete(id)
  }
  view(): string {
    return [...this.backends.values()].map((b) => `${b.id}=${b.uri}*${b.weight}`).sort().join(' ')
  }
}

const value = (uri: string, weight = 1) => JSON.stringify({ uri, weight, priority: 0, state: 'active' })

async function withClient<T>(endpoint: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const c = new Etcd3({ hosts: endpoint })
  try {
    return await fn(c)
  } finally {
    c.close()
  }
}

async function isHealthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(200) })
    return ((await res.json()) as { health?: string }).health === 'true'
  } catch {
    return false
  }
}

/**
 * Starts etcd via `start` while probing it and the sink every few ms. Returns how long after etcd first
 * answered /health the sink showed `want` (negative: the source got there before /health answered).
 */
async function convergenceAfter(start: () => Promise<unknown>, endpoint: string, sink: MapSink, want: string): Promise<number> {
  let reachableAt = 0
  let convergedAt = 0
  const deadline = Date.now() + 15_000
  const probing = (async () => {
    while ((!reachableAt || !convergedAt) && Date.now() < deadline) {
      if (!convergedAt && sink.view() === want) convergedAt = performance.now()
      if (!reachableAt && (await isHealthy(endpoint))) reachableAt = performance.now()
      await new Promise((r) => setTimeout(r, 2))
    }
  })()
  await start()
  await probing
  if (!reachableAt || !convergedAt) throw new Error(`no convergence: sink has "${sink.view()}", want "${want}"`)
  return Math.round(convergedAt - reachableAt)
}

const handles: EtcdHandle[] = []
t.teardown(async () => {
  for (const h of handles.reverse()) await h.cleanup() // data dir owners last
})

t.test('etcd down at start: start() resolves, the source retries and syncs once etcd is up', async (t) => {
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const sink = new MapSink()
  sink.upsert({ id: 'sip:127.0.1.50:5060', set: 'default', uri: 'sip:127.0.1.50:5060', weight: 1, priority: 0, admin: 'active', source: 'static' })
  const source = new EtcdSource(sink, { endpoints: [endpoint] })
  t.teardown(() => source.stop())
  const began = Date.now()
  await source.start()
  t.ok(Date.now() - began < 3000, 'start() does not wait for etcd')
  t.equal(source.state, 'down')
  t.equal(sink.backends.size, 1, 'static backend untouched')

  let etcd: EtcdHandle | undefined
  const want = 'default/a=sip:127.0.1.1:5080*1 sip:127.0.1.50:5060=sip:127.0.1.50:5060*1'
  // A key can only exist once etcd runs: seed it through a first instance on another port, same data dir.
  const seed = await startEtcd()
  handles.push(seed)
  await withClient(seed.endpoint, async (c) => void (await c.put('/sipedge/backends/default/a').value(value('sip:127.0.1.1:5080'))))
  await seed.stop()
  const ms = await convergenceAfter(
    async () => {
      etcd = await startEtcd({ dataDir: seed.dataDir, clientPort: port, peerPort: seed.peerPort })
    },
    endpoint,
    sink,
    want,
  )
  if (etcd) handles.push(etcd)
  t.comment(`etcd down at start: sink converged ${ms} ms after etcd became reachable`)
  t.ok(ms < 1000, `converged within 1 s of etcd being reachable (${ms} ms)`)
  await waitFor('synced state', () => source.state === 'synced')
})

t.test('etcd killed, data changed, etcd restarted: last set kept while down, fast convergence', async (t) => {
  const etcd = await startEtcd()
  handles.push(etcd)
  await withClient(etcd.endpoint, async (c) => {
    await c.put('/sipedge/backends/default/a').value(value('sip:127.0.1.1:5080'))
    await c.put('/sipedge/backends/default/b').value(value('sip:127.0.1.2:5080'))
    await c.put('/sipedge/backends/default/c').value(value('sip:127.0.1.3:5080'))
  })
  const sink = new MapSink()
  const source = new EtcdSource(sink, { endpoints: [etcd.endpoint] })
  const states: EtcdSourceState[] = []
  source.onState = (s) => states.push(s)
  t.teardown(() => source.stop())
  await source.start()
  const before = sink.view()
  t.equal(before, 'default/a=sip:127.0.1.1:5080*1 default/b=sip:127.0.1.2:5080*1 default/c=sip:127.0.1.3:5080*1')

  for (let round = 1; round <= 2; round++) {
    const kept = sink.view()
    etcd.kill('SIGKILL')
    await waitFor('source notices etcd is gone', () => source.state === 'down', 5000)
    // Change the set while the source cannot see etcd: same data dir, another client port.
    const side = await startEtcd({ dataDir: etcd.dataDir, peerPort: etcd.peerPort })
    const want = await withClient(side.endpoint, async (c) => {
      await c.delete().key(`/sipedge/backends/default/${round === 1 ? 'a' : 'd'}`)
      await c.put('/sipedge/backends/default/b').value(value('sip:127.0.1.2:5080', 5 + round))
      await c.put(`/sipedge/backends/default/d${round}`).value(value(`sip:127.0.1.${3 + round}:5080`))
      const all = await c.getAll().prefix('/sipedge/backends/').strings()
      return Object.entries(all)
        .map(([k, v]) => `${k.slice('/sipedge/backends/'.length)}=${(JSON.parse(v) as { uri: string }).uri}*${(JSON.parse(v) as { weight: number }).weight}`)
        .sort()
        .join(' ')
    })
    await side.stop()
    t.equal(sink.view(), kept, 'last known set kept while etcd is down')
    const ms = await convergenceAfter(() => etcd.restart(), etcd.endpoint, sink, want)
    t.comment(`round ${round}: etcd killed and restarted with a changed set, converged ${ms} ms after etcd was reachable`)
    t.ok(ms < 1000, `converged within 1 s (${ms} ms)`)
    t.equal(sink.view(), want)
  }
  t.same(states, ['synced', 'down', 'synced', 'down', 'synced'])
})

t.test('etcd frozen with SIGSTOP: set kept, changes flow again after SIGCONT', async (t) => {
  const etcd = await startEtcd()
  handles.push(etcd)
  await withClient(etcd.endpoint, async (c) => void (await c.put('/sipedge/backends/default/a').value(value('sip:127.0.1.1:5080'))))
  const sink = new MapSink()
  const source = new EtcdSource(sink, { endpoints: [etcd.endpoint] })
  t.teardown(() => source.stop())
  await source.start()
  etcd.kill('SIGSTOP')
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(sink.view(), 'default/a=sip:127.0.1.1:5080*1', 'set kept while etcd is frozen')
  etcd.kill('SIGCONT')
  await withClient(etcd.endpoint, async (c) => void (await c.put('/sipedge/backends/default/b').value(value('sip:127.0.1.2:5080'))))
  await waitFor('change after SIGCONT', () => sink.backends.has('default/b'), 5000)
  t.equal(source.state, 'synced')
})
