// Bans shared through a real etcd: a ban decided by one edge's defence is enforced by another within 1 s,
// lease expiry lifts it on both, an admin lift on one lifts it everywhere, invalid keys are skipped, and
// with etcd killed both keep their local bans (a ban made meanwhile is shared once etcd is back).
import t from 'tap'
import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { parseMessage } from '../../src/sip/index.js'
import { Defence, DROP, PASS, type DefenceOptions } from '../../src/defence/index.js'
import { SharedBans } from '../../src/defence/shared.js'
import { startEtcd, waitFor } from '../helpers/etcd.js'

const etcd = await startEtcd()
t.teardown(() => etcd.cleanup())
const admin = new Etcd3({ hosts: etcd.endpoint })
t.teardown(() => admin.close())

const msg = parseMessage(Buffer.from(
  'REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.20.1;branch=z9hG4bK1\r\nFrom: <sip:100@127.0.0.1>;tag=1\r\n' +
  'To: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\n' +
  'Authorization: Digest username="100",realm="x",nonce="n",uri="sip:127.0.0.1",response="00"\r\nContent-Length: 0\r\n\r\n',
))

function edgePair(prefix: string, t: { teardown(fn: () => unknown): void }, opts: DefenceOptions = {}) {
  const make = (id: string) => {
    const defence = new Defence({ failures: 3, banS: 600, log: pino({ level: 'silent' }), ...opts })
    const shared = new SharedBans(defence, { endpoints: [etcd.endpoint], prefix, edgeId: id, callTimeoutMs: 1000 })
    t.teardown(() => shared.stop())
    return { defence, shared }
  }
  return { a: make('edge-a'), b: make('edge-b') }
}

const banned = (d: Defence, src: string) => d.screen(msg, src) === DROP

t.test('a ban made by one edge is enforced by the other within 1 s; admin lift on either lifts both', async (t) => {
  const { a, b } = edgePair('/t1/bans/', t)
  await Promise.all([a.shared.start(), b.shared.start()])
  t.equal(a.shared.state, 'synced')
  const src = '127.0.20.5'
  t.equal(b.defence.screen(msg, src), PASS)
  for (let i = 0; i < 3; i++) a.defence.observe(msg, src, 403)
  const t0 = Date.now()
  t.ok(banned(a.defence, src), 'banned where decided')
  await waitFor('ban on edge b', () => banned(b.defence, src), 1000, 10)
  const ms = Date.now() - t0
  t.ok(ms < 1000, `enforced by the other edge after ${ms} ms`)
  t.equal(b.defence.banOf(src)?.origin, 'shared')
  t.equal(b.defence.banOf(src)?.reason, 'auth-failures')
  t.match(b.defence.banOf(src)?.detail, /^edge-a/)
  const kv = await admin.get('/t1/bans/' + src).string()
  t.match(JSON.parse(kv ?? '{}'), { reason: 'auth-failures', edge: 'edge-a' })
  t.ok(Math.abs((b.defence.banOf(src)?.until ?? 0) - (a.defence.banOf(src)?.until ?? 0)) < 5, 'same end on both edges')

  t.equal(b.defence.lift(src), true)
  await waitFor('lift on edge a', () => !banned(a.defence, src), 1000, 10)
  t.equal(await admin.get('/t1/bans/' + src).string(), null, 'key deleted')

  const adminBan = a.defence.banAddress('127.0.20.6', 30)
  t.equal(typeof adminBan, 'object')
  await waitFor('admin ban on edge b', () => banned(b.defence, '127.0.20.6'), 1000, 10)
  t.equal(b.defence.stats.bans.shared, 2)
})

t.test('lease expiry lifts the ban on both edges by itself', async (t) => {
  const { a, b } = edgePair('/t2/bans/', t, { banS: 2 })
  await Promise.all([a.shared.start(), b.shared.start()])
  const src = '127.0.20.7'
  for (let i = 0; i < 3; i++) a.defence.observe(msg, src, 401)
  await waitFor('ban on edge b', () => banned(b.defence, src), 1000, 10)
  const lease = (await admin.get('/t2/bans/' + src).exec()).kvs[0]?.lease
  t.ok(lease && lease !== '0', 'the key is under a lease')
  await waitFor('expiry on a', () => !banned(a.defence, src), 5000, 50)
  await waitFor('expiry on b', () => !banned(b.defence, src), 5000, 50)
  await waitFor('key gone from etcd', async () => (await admin.get('/t2/bans/' + src).string()) === null, 5000, 100)
})

t.test('invalid keys and values are skipped without harm', async (t) => {
  const { a } = edgePair('/t3/bans/', t)
  await admin.put('/t3/bans/not-an-ip').value(JSON.stringify({ until: Date.now() + 60_000 }))
  await admin.put('/t3/bans/127.0.20.8').value('{nope')
  await admin.put('/t3/bans/127.0.20.9').value(JSON.stringify({ until: 'soon' }))
  await admin.put('/t3/bans/127.0.20.10').value(JSON.stringify({ until: Date.now() + 60_000, reason: 'made-up' }))
  await a.shared.start()
  t.equal(a.shared.state, 'synced')
  t.equal(banned(a.defence, '127.0.20.8'), false)
  t.equal(banned(a.defence, '127.0.20.9'), false)
  t.equal(a.defence.banOf('127.0.20.10')?.reason, 'shared', 'a valid ban with an unknown reason still holds')
  t.equal(a.defence.list().length, 1)
})

t.test('etcd down: local bans still hold; a ban made meanwhile is shared when etcd is back', async (t) => {
  const { a, b } = edgePair('/t4/bans/', t)
  await Promise.all([a.shared.start(), b.shared.start()])
  for (let i = 0; i < 3; i++) a.defence.observe(msg, '127.0.20.11', 403)
  await waitFor('ban on edge b', () => banned(b.defence, '127.0.20.11'), 1000, 10)

  etcd.kill('SIGKILL')
  await waitFor('edge a sees etcd down', () => a.shared.state === 'down', 10_000, 50)
  for (let i = 0; i < 3; i++) a.defence.observe(msg, '127.0.20.12', 403)
  t.ok(banned(a.defence, '127.0.20.11'), 'earlier ban holds on a')
  t.ok(banned(b.defence, '127.0.20.11'), 'shared ban holds on b')
  t.ok(banned(a.defence, '127.0.20.12'), 'new ban holds locally on a')
  t.notOk(banned(b.defence, '127.0.20.12'), 'b cannot know it yet')
  await new Promise((r) => setTimeout(r, 1500))
  t.ok(banned(b.defence, '127.0.20.11'), 'still held after 1.5 s of outage')

  await etcd.restart()
  await waitFor('ban made during the outage reaches b', () => banned(b.defence, '127.0.20.12'), 10_000, 50)
  t.ok(banned(b.defence, '127.0.20.11'), 'the earlier ban is still there after the resync')
})
