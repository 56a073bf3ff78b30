// The defence inside a running edge: the /bans admin API (list, add, lift, refusals), what a banned source
// gets (nothing, or 403 with action reject), the defence off, and two edges sharing bans through etcd.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { startEtcd } from '../helpers/etcd.js'
import { waitFor } from '../helpers/net.js'
import { UdpProbe } from '../reliability/fixtures/wire.js'

const options = (edgeHost: string, port: number, from: string, i: number, ua = 'Linphone/5.2') =>
  `OPTIONS sip:${edgeHost}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${from};branch=z9hG4bK-def-${i}-${Math.random().toString(36).slice(2)};rport\r\n` +
  `From: <sip:probe@${from}>;tag=d${i}\r\nTo: <sip:${edgeHost}:${port}>\r\nCall-ID: def-${i}-${Math.random()}@${from}\r\nCSeq: 1 OPTIONS\r\n` +
  `Max-Forwards: 70\r\nUser-Agent: ${ua}\r\nContent-Length: 0\r\n\r\n`

/** Sends OPTIONS (answered by the edge itself) from `probe` and returns the status lines received within `ms`. */
async function ask(probe: UdpProbe, host: string, port: number, i: number, ua?: string, ms = 400): Promise<string[]> {
  probe.take()
  await probe.send(options(host, port, '127.0.0.1', i, ua), port, host)
  await new Promise((r) => setTimeout(r, ms))
  return probe.take().map((r) => r.data.toString('latin1').split('\r\n')[0]!)
}

const api = (port: number, path: string, method = 'GET') => fetch(`http://127.0.0.1:${port}${path}`, { method })

t.test('admin API: list, add, lift; a banned source gets nothing', async (t) => {
  const { edge, host, port } = await startEdge(t, '127.0.23.10', { admin: '127.0.0.1:0', defence: { ...defaults(), allow: ['127.0.23.100/30'] } })
  const a = edge.adminPort!
  const attacker = await UdpProbe.open('127.0.23.5')
  const other = await UdpProbe.open('127.0.23.6')
  t.teardown(() => { attacker.close(); other.close() })

  t.same(await ask(attacker, host, port, 1), ['SIP/2.0 200 OK'], 'answered before the ban')
  t.same(await (await api(a, '/bans')).json(), [])
  let r = await api(a, '/bans/127.0.23.5?seconds=30', 'POST')
  t.equal(r.status, 201)
  t.match(await r.json(), { address: '127.0.23.5', reason: 'admin', origin: 'local', remainingS: 30 })
  t.same(await ask(attacker, host, port, 2), [], 'banned: no answer')
  t.same(await ask(other, host, port, 3), ['SIP/2.0 200 OK'], 'another source is served')
  const list = (await (await api(a, '/bans')).json()) as Array<{ address: string }>
  t.same(list.map((b) => b.address), ['127.0.23.5'])

  t.equal((await api(a, '/bans/127.0.23.101', 'POST')).status, 400, 'allow-listed: refused')
  t.equal((await api(a, '/bans/example.com', 'POST')).status, 400, 'not an address')
  t.equal((await api(a, '/bans/127.0.23.7?seconds=soon', 'POST')).status, 400)
  t.equal((await api(a, '/bans', 'POST')).status, 405)
  t.equal((await api(a, '/bans/127.0.23.5', 'PUT')).status, 405)

  r = await api(a, '/bans/127.0.23.5', 'DELETE')
  t.same(await r.json(), { address: '127.0.23.5', lifted: true })
  t.same(await ask(attacker, host, port, 4), ['SIP/2.0 200 OK'], 'answered again after the lift')

  // A scanner User-Agent: dropped and banned; the metrics show it.
  t.same(await ask(other, host, port, 5, 'friendly-scanner'), [])
  t.same(await ask(other, host, port, 6), [], 'its next, innocent-looking request too')
  const metrics = await (await api(a, '/metrics')).text()
  t.match(metrics, /sipedge_bans_total\{reason="scanner"\} 1/)
  t.match(metrics, /sipedge_bans_total\{reason="admin"\} 1/)
  t.match(metrics, /sipedge_defence_dropped_total\{reason="scanner"\} 1/)
})

t.test('action reject answers 403; defence off answers scanners and has no /bans', async (t) => {
  const rej = await startEdge(t, '127.0.24.10', { admin: '127.0.0.1:0', defence: { ...defaults(), action: 'reject' } })
  const probe = await UdpProbe.open('127.0.24.5')
  t.teardown(() => probe.close())
  await api(rej.edge.adminPort!, '/bans/127.0.24.5', 'POST')
  t.same(await ask(probe, rej.host, rej.port, 1), ['SIP/2.0 403 Forbidden'])

  const off = await startEdge(t, '127.0.24.20', { admin: '127.0.0.1:0', defence: { ...defaults(), enabled: false } })
  t.equal(off.edge.defence, undefined)
  t.same(await ask(probe, off.host, off.port, 2, 'friendly-scanner'), ['SIP/2.0 200 OK'])
  t.equal((await api(off.edge.adminPort!, '/bans')).status, 404)
})

t.test('two edges sharing etcd: a ban added on one is enforced by the other within 1 s, lifted on both', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.cleanup())
  const opts = { admin: '127.0.0.1:0', probe: { enabled: false, intervalMs: 1000, timeoutMs: 500, failThreshold: 2, okThreshold: 1 }, etcd: { endpoints: [etcd.endpoint], prefix: '/sipedge/backends/' } }
  const a = await startEdge(t, '127.0.25.10', opts)
  const b = await startEdge(t, '127.0.25.20', opts)
  const probe = await UdpProbe.open('127.0.25.5')
  t.teardown(() => probe.close())
  await waitFor(() => (b.edge as unknown as { sharedBans?: { state: string } }).sharedBans?.state === 'synced', { timeoutMs: 10_000, what: 'edge b synced' })
  t.same(await ask(probe, b.host, b.port, 1), ['SIP/2.0 200 OK'])

  t.equal((await api(a.edge.adminPort!, '/bans/127.0.25.5?seconds=60', 'POST')).status, 201)
  const t0 = Date.now()
  await waitFor(() => b.edge.defence!.banOf('127.0.25.5'), { timeoutMs: 1000, intervalMs: 10, what: 'ban on edge b' })
  t.ok(Date.now() - t0 < 1000, `enforced by edge b after ${Date.now() - t0} ms`)
  t.same(await ask(probe, b.host, b.port, 2), [], 'edge b drops the banned source')
  const listed = (await (await api(b.edge.adminPort!, '/bans')).json()) as Array<{ origin: string }>
  t.equal(listed[0]?.origin, 'shared')

  t.equal((await api(b.edge.adminPort!, '/bans/127.0.25.5', 'DELETE')).status, 200)
  await waitFor(() => a.edge.defence!.banOf('127.0.25.5') === undefined, { timeoutMs: 1000, intervalMs: 10, what: 'lift on edge a' })
  t.same(await ask(probe, a.host, a.port, 3), ['SIP/2.0 200 OK'], 'edge a answers again')
})

function defaults() {
  return {
    enabled: true, action: 'drop' as const, banS: 600, windowS: 60, challenges: 30, failures: 5, userFailures: 10, notFound: 20, scanner: 1,
    userAgents: ['friendly-scanner'], fromPatterns: [], toPatterns: [], allow: [], maxBans: 1000, etcdPrefix: '/sipedge/bans/',
  }
}
