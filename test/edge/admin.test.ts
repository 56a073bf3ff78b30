import t from 'tap'
import { pino } from 'pino'
import { startAdmin, type AdminTarget } from '../../src/edge/admin.js'

const silent = pino({ level: 'silent' })

/** A fake edge: two backends, 250 dialogs, a ready switch. */
function fakeTarget() {
  const state = { ready: true, reason: '', failMetrics: false }
  const backends = [
    { id: 'sip:127.0.1.1:5080', set: 'default', uri: 'sip:127.0.1.1:5080', weight: 1, priority: 0, admin: 'active', health: 'up', activeCalls: 3 },
    { id: 'sales/b2', set: 'sales', uri: 'sip:127.0.1.2:5080', weight: 2, priority: 0, admin: 'active', health: 'down', activeCalls: 0 },
  ]
  const dialogs = Array.from({ length: 250 }, (_, i) => ({ callId: `call-${i}`, backend: backends[i % 2]!.id }))
  const target: AdminTarget = {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    metrics: async () => {
      if (state.failMetrics) throw new Error('boom')
      return '# HELP sipedge_calls_active x\n# TYPE sipedge_calls_active gauge\nsipedge_calls_active 3\n'
    },
    ready: () => (state.ready ? { ready: true } : { ready: false, reason: state.reason }),
    backends: () => backends,
    dialogs: (offset, limit) => ({ total: dialogs.length, items: dialogs.slice(offset, offset + limit) }),
    setAdmin: (id, admin) => {
      const b = backends.find((x) => x.id === id)
      if (!b) return false
      b.admin = admin
      return true
    },
  }
  return { target, state, backends }
}

t.test('endpoints without a token', async (t) => {
  const { target, state, backends } = fakeTarget()
  const admin = await startAdmin(target, { listen: '127.0.0.1:0', log: silent })
  t.teardown(() => admin.close())
  t.equal(admin.address, '127.0.0.1')
  const base = `http://127.0.0.1:${admin.port}`

  let r = await fetch(`${base}/metrics`)
  t.equal(r.status, 200)
  t.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  t.match(await r.text(), /^sipedge_calls_active 3$/m)

  r = await fetch(`${base}/healthz`)
  t.same([r.status, await r.json()], [200, { status: 'ok' }])
  r = await fetch(`${base}/readyz`)
  t.same([r.status, await r.json()], [200, { ready: true }])
  state.ready = false
  state.reason = 'draining'
  r = await fetch(`${base}/readyz`)
  t.same([r.status, await r.json()], [503, { ready: false, reason: 'draining' }])

  r = await fetch(`${base}/backends`)
  t.same(await r.json(), backends)

  r = await fetch(`${base}/dialogs`)
  let page = (await r.json()) as { total: number; offset: number; limit: number; items: Array<{ callId: string }> }
  t.match(page, { total: 250, offset: 0, limit: 100 })
  t.equal(page.items.length, 100)
  r = await fetch(`${base}/dialogs?offset=200&limit=80`)
  page = (await r.json()) as typeof page
  t.equal(page.items.length, 50)
  t.equal(page.items[0]!.callId, 'call-200')
  for (const q of ['offset=-1', 'offset=x', 'limit=0', 'limit=1001', 'limit=1e3']) {
    r = await fetch(`${base}/dialogs?${q}`)
    t.equal(r.status, 400, `400 for ${q}`)
    await r.text()
  }

  r = await fetch(`${base}/backends/sip:127.0.1.1:5080/drain`, { method: 'POST' })
  t.same([r.status, await r.json()], [200, { id: 'sip:127.0.1.1:5080', admin: 'draining' }])
  t.equal(backends[0]!.admin, 'draining')
  r = await fetch(`${base}/backends/sales%2Fb2/drain`, { method: 'POST' })
  t.equal(r.status, 200, 'ids with / may be %2F-encoded')
  await r.text()
  r = await fetch(`${base}/backends/sales/b2/enable`, { method: 'POST' })
  t.equal(r.status, 200, '... or raw')
  await r.text()
  t.equal(backends[1]!.admin, 'active')
  r = await fetch(`${base}/backends/nope/drain`, { method: 'POST' })
  t.equal(r.status, 404)
  await r.text()
  r = await fetch(`${base}/backends/%E0%A4%A/drain`, { method: 'POST' })
  t.equal(r.status, 400, 'bad percent-encoding')
  await r.text()

  r = await fetch(`${base}/backends/sales/b2/drain`)
  t.same([r.status, r.headers.get('allow')], [405, 'POST'])
  await r.text()
  r = await fetch(`${base}/metrics`, { method: 'DELETE' })
  t.equal(r.status, 405)
  await r.text()
  r = await fetch(`${base}/nothing`)
  t.equal(r.status, 404)
  await r.text()
  r = await fetch(`${base}/healthz`, { method: 'HEAD' })
  t.equal(r.status, 200)

  state.failMetrics = true
  r = await fetch(`${base}/metrics`)
  t.equal(r.status, 500, 'a failing target is a 500, not a crash')
  await r.text()
})

t.test('bearer token protects everything but health and readiness', async (t) => {
  const { target } = fakeTarget()
  const admin = await startAdmin(target, { listen: '127.0.0.1:0', token: 'sesame-123', log: silent })
  t.teardown(() => admin.close())
  const base = `http://127.0.0.1:${admin.port}`
  for (const [path, method] of [['/metrics', 'GET'], ['/backends', 'GET'], ['/dialogs', 'GET'], ['/backends/sales/b2/drain', 'POST']] as const) {
    let r = await fetch(`${base}${path}`, { method })
    t.equal(r.status, 401, `${path} without token`)
    t.match(r.headers.get('www-authenticate'), /^Bearer/)
    await r.text()
    r = await fetch(`${base}${path}`, { method, headers: { authorization: 'Bearer wrong' } })
    t.equal(r.status, 401, `${path} wrong token`)
    await r.text()
    r = await fetch(`${base}${path}`, { method, headers: { authorization: 'Bearer sesame-123' } })
    t.equal(r.status, 200, `${path} right token`)
    await r.text()
  }
  const r = await fetch(`${base}/readyz`)
  t.equal(r.status, 200, 'readiness needs no token (kubelet)')
  await r.text()
})

t.test('bad listen address and busy port are errors', async (t) => {
  const { target } = fakeTarget()
  await t.rejects(startAdmin(target, { listen: 'localhost:80', log: silent }), /not host:port/)
  const a = await startAdmin(target, { listen: '127.0.0.1:0', log: silent })
  t.teardown(() => a.close())
  await t.rejects(startAdmin(target, { listen: `127.0.0.1:${a.port}`, log: silent }), /EADDRINUSE/)
})
