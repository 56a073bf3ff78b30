import t from 'tap'
import { Dispatcher, type DispatcherOptions } from '../../src/dispatch/dispatcher.js'
import type { Backend } from '../../src/dispatch/backend.js'
import type { Algorithm, BackendSpec } from '../../src/dispatch/types.js'

const spec = (n: number, over: Partial<BackendSpec> = {}): BackendSpec => ({
  id: `b${n}`, set: 'pbx', uri: `sip:127.0.1.${n}:5080`, weight: 1, priority: 0, admin: 'active', source: 'static', ...over,
})

function three(algorithm: Algorithm, opts: DispatcherOptions = {}, weights = [1, 1, 1]) {
  const d = new Dispatcher({ algorithm, ...opts })
  const bs = [1, 2, 3].map((n) => d.upsert(spec(n, { weight: weights[n - 1]! })))
  return { d, bs }
}

function count(d: Dispatcher, n: number, ctx: (i: number) => { callId: string; fromUser: string },
  exclude?: ReadonlySet<Backend>) {
  const c = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const b = d.select('pbx', ctx(i), exclude)
    const id = b?.id ?? 'none'
    c.set(id, (c.get(id) ?? 0) + 1)
  }
  return Object.fromEntries([...c.entries()].sort())
}
const fixed = () => ({ callId: 'x', fromUser: 'u' })
const byCall = (i: number) => ({ callId: `call-${i}@host`, fromUser: '' })

t.test('round-robin: 300 selections spread 100/100/100 in order', async (t) => {
  const { d } = three('round-robin')
  t.same(count(d, 300, fixed), { b1: 100, b2: 100, b3: 100 })
  t.same([0, 1, 2].map(() => d.select('pbx', fixed())!.id), ['b1', 'b2', 'b3'])
})

t.test('weighted: 2:1 and smooth', async (t) => {
  const { d } = three('weighted', {}, [2, 1, 0])
  t.same(count(d, 300, fixed), { b1: 200, b2: 100 }, 'weight 0 unused while others exist')
  const seq = [0, 1, 2, 3, 4, 5].map(() => d.select('pbx', fixed())!.id).join(',')
  t.notMatch(seq, /b1,b1,b1/, 'never three in a row for 2:1')
  const { d: d2 } = three('weighted', {}, [5, 1, 1])
  t.same([0, 1, 2, 3, 4, 5, 6].map(() => d2.select('pbx', fixed())!.id),
    ['b1', 'b1', 'b2', 'b1', 'b3', 'b1', 'b1'], 'nginx 5:1:1 sequence')
})

t.test('least-calls follows activeCalls, ties round-robin', async (t) => {
  const { d, bs } = three('least-calls')
  t.same(count(d, 30, fixed), { b1: 10, b2: 10, b3: 10 }, 'all idle: round-robin')
  d.callStarted(bs[0]!); d.callStarted(bs[0]!); d.callStarted(bs[1]!)
  t.equal(d.select('pbx', fixed()), bs[2])
  for (let i = 0; i < 9; i++) {
    const b = d.select('pbx', fixed())!
    d.callStarted(b)
  }
  t.same(bs.map((b) => b.activeCalls), [4, 4, 4], 'filled up evenly')
  d.callEnded(bs[1]!)
  t.equal(d.select('pbx', fixed()), bs[1])
  d.callEnded(bs[2]!); d.callEnded(bs[2]!)
  t.equal(d.select('pbx', fixed()), bs[2])
  const lone = bs[0]!
  for (let i = 0; i < 10; i++) d.callEnded(lone)
  t.equal(lone.activeCalls, 0, 'never negative')
})

for (const alg of ['hash-callid', 'hash-from-user'] as const) {
  t.test(`${alg}: stable per key, spread over keys, failover spreads`, async (t) => {
    const { d, bs } = three(alg)
    const ctx = alg === 'hash-callid' ? byCall : (i: number) => ({ callId: `c${i % 7}`, fromUser: `user${i}` })
    const first = Array.from({ length: 3000 }, (_, i) => d.select('pbx', ctx(i))!)
    t.same(Array.from({ length: 3000 }, (_, i) => d.select('pbx', ctx(i))!), first, 'same key, same backend')
    const c = count(d, 3000, ctx)
    for (const id of ['b1', 'b2', 'b3']) t.ok(c[id] > 850 && c[id] < 1150, `${id} got ${c[id]} of 3000`)
    // Failover: keys of b1, with b1 excluded, spread over b2 and b3 (not all onto one neighbour),
    // and keys of b2/b3 do not move.
    const ex = new Set([bs[0]!])
    const moved = { b2: 0, b3: 0 }
    let remapped = 0
    for (let i = 0; i < 3000; i++) {
      const b = d.select('pbx', ctx(i), ex)!
      if (first[i] === bs[0]) moved[b.id as 'b2' | 'b3']++
      else if (b !== first[i]) remapped++
    }
    t.equal(remapped, 0, 'keys of b2/b3 stay where they were')
    const total = moved.b2 + moved.b3
    t.ok(moved.b2 > total * 0.4 && moved.b3 > total * 0.4, `failover split ${moved.b2}/${moved.b3}`)
  })
}

t.test('hash-from-user with an empty user falls back to the Call-ID', async (t) => {
  const { d } = three('hash-from-user')
  const c = count(d, 300, byCall)
  t.equal(Object.keys(c).length, 3, 'anonymous callers spread')
})

t.test('weighted rendezvous follows weights', async (t) => {
  const { d } = three('hash-callid', {}, [2, 1, 1])
  const c = count(d, 4000, byCall)
  t.ok(c.b1 > 1800 && c.b1 < 2200, `b1 ${c.b1} of 4000`)
})

t.test('priority groups: lowest value first, next group only when the first has none usable', async (t) => {
  const d = new Dispatcher()
  const p0a = d.upsert(spec(1, { priority: 10 }))
  const p0b = d.upsert(spec(2, { priority: 10 }))
  const p1 = d.upsert(spec(3, { priority: 20 }))
  const p_1 = d.upsert(spec(4, { priority: 5, admin: 'draining' }))
  t.same(count(d, 10, fixed), { b1: 5, b2: 5 })
  t.equal(d.select('pbx', fixed(), new Set([p0a, p0b])), p1, 'failover to next priority')
  p0a.health = 'down'
  d.setAdmin('b2', 'disabled')
  t.equal(d.select('pbx', fixed()), p1)
  p1.admin = 'draining'
  t.equal(d.select('pbx', fixed()), undefined, 'nothing usable')
  t.equal(p_1.admin, 'draining')
  d.upsert(spec(2, { priority: 1 }))
  t.equal(d.select('pbx', fixed())!.id, 'b2', 'priority change re-sorts and re-enables')
  t.equal(d.select('nope', fixed()), undefined)
})

t.test('draining, disabled and down are never selected', async (t) => {
  for (const alg of ['round-robin', 'weighted', 'hash-callid', 'hash-from-user', 'least-calls'] as const) {
    const { d, bs } = three(alg)
    bs[0]!.admin = 'draining'
    d.setAdmin('b2', 'disabled')
    t.same(count(d, 50, byCall), { b3: 50 }, alg)
    bs[2]!.health = 'down'
    t.same(count(d, 5, byCall), { none: 5 }, `${alg}: none`)
  }
})

t.test('upsert: same URI in same set is the same backend, counters kept', async (t) => {
  const d = new Dispatcher()
  const events: string[] = []
  d.onChange = (b, what) => events.push(`${b.id}:${what}`)
  const b = d.upsert(spec(1))
  d.callStarted(b); d.callStarted(b)
  b.health = 'up'
  const again = d.upsert(spec(1, { weight: 5, uri: 'sip:127.0.1.1:5080;transport=udp' }))
  t.equal(again, b)
  t.equal(b.activeCalls, 2)
  t.equal(b.health, 'up')
  t.equal(b.weight, 5)
  const alias = d.upsert(spec(1, { id: 'etcd/x' }))
  t.equal(alias, b, 'another id for the same address is the same backend')
  t.equal(d.backends('pbx').length, 1)
  t.equal(d.byKey('udp:127.0.1.1:5080'), b)
  d.remove('b1')
  t.equal(d.backends().length, 1, 'still referenced by etcd/x')
  d.remove('etcd/x')
  t.equal(d.backends().length, 0)
  t.same(d.sets(), [])
  t.ok(b.retired)
  t.notOk(b.eligible)
  t.equal(d.byKey('udp:127.0.1.1:5080'), b, 'removed backend still reachable for dialogs')
  d.callEnded(b)
  const back = d.upsert(spec(1))
  t.equal(back, b, 're-added after remove: same object')
  t.equal(b.activeCalls, 1, 'no double counting')
  t.equal(b.health, 'up', 'health kept')
  t.notOk(b.retired)
  // Same address in another set is another backend.
  const other = d.upsert(spec(1, { id: 'o1', set: 'other' }))
  t.not(other, b)
  t.same(d.sets().sort(), ['other', 'pbx'])
  t.equal(d.backendsWithKey(b.key).length, 2)
  // An id moving to another address retires the old one.
  d.upsert(spec(9, { id: 'b1' }))
  t.ok(b.retired)
  t.equal(d.get('b1')!.key, 'udp:127.0.1.9:5080')
  t.same(events, ['b1:added', 'b1:removed', 'b1:added', 'o1:added', 'b1:removed', 'b1:added'])
  t.throws(() => d.upsert(spec(1, { uri: 'sip:pbx.local' })))
})

t.test('admin changes and health thresholds', async (t) => {
  const d = new Dispatcher({ failThreshold: 2, okThreshold: 2 })
  const events: string[] = []
  d.onChange = (b, what) => events.push(`${b.id}:${what}:${what === 'health' ? b.health : b.admin}`)
  const b = d.upsert(spec(1))
  t.equal(d.setAdmin('b1', 'draining'), true)
  t.equal(d.setAdmin('zz', 'draining'), false)
  d.upsert(spec(1)) // discovery says active again
  const suspects: string[] = []
  d.onSuspect = (x) => suspects.push(x.id)
  d.healthChecked = true
  for (let i = 0; i < 10; i++) d.reportFailure(b, 'timeout')
  t.equal(b.health, 'probing', 'transaction failures alone never take a backend down (overload must not cascade)')
  t.equal(suspects.length, 10, 'each asks for a probe now')
  d.recordHealth(b, false); d.recordHealth(b, false)
  t.equal(b.health, 'down', 'failed probes do')
  d.reportSuccess(b)
  t.equal(b.health, 'down', 'one good answer is not enough')
  d.recordHealth(b, false); d.reportSuccess(b)
  t.equal(b.health, 'down', 'streak reset by the failure')
  d.reportSuccess(b)
  t.equal(b.health, 'up')
  d.reportFailure(b, 'x')
  t.equal(b.health, 'probing', 'suspect but still eligible')
  t.ok(b.eligible)
  t.same(events, ['b1:added:active', 'b1:admin:draining', 'b1:admin:active', 'b1:health:down', 'b1:health:up', 'b1:health:probing'])
})

t.test('per-set algorithms', async (t) => {
  const d = new Dispatcher({ algorithm: 'least-calls', setAlgorithms: { pbx: 'weighted' } })
  t.equal(d.algorithmOf('pbx'), 'weighted')
  t.equal(d.algorithmOf('x'), 'least-calls')
  d.upsert(spec(1, { weight: 3 })); d.upsert(spec(2, { weight: 1 }))
  t.same(count(d, 40, fixed), { b1: 30, b2: 10 })
  d.setAlgorithm('pbx', 'round-robin')
  t.same(count(d, 40, fixed), { b1: 20, b2: 20 })
})

t.test('selectByKey (REGISTER affinity): any algorithm, spread, and only the AORs of a backend that left move', async (t) => {
  const d = new Dispatcher({ algorithm: 'round-robin' })
  const bs = [1, 2, 3, 4].map((n) => d.upsert(spec(n)))
  const aors = Array.from({ length: 2000 }, (_, i) => `user${i}@pbx.example.com`)
  const before = new Map(aors.map((a) => [a, d.selectByKey('pbx', a)!.id]))
  t.same(aors.map((a) => d.selectByKey('pbx', a)!.id), [...before.values()], 'the same AOR maps to the same backend every time, whatever the set algorithm')
  const per = Object.values(Object.fromEntries(['b1', 'b2', 'b3', 'b4'].map((id) => [id, [...before.values()].filter((v) => v === id).length])))
  t.ok(per.every((n) => n > 400 && n < 600), `spread over the four backends (${per.join('/')})`)
  bs[1]!.health = 'down'
  let moved = 0
  let movedFromOthers = 0
  let toDown = 0
  for (const a of aors) {
    const now = d.selectByKey('pbx', a)!.id
    if (now === 'b2') toDown++
    if (now !== before.get(a)) {
      moved++
      if (before.get(a) !== 'b2') movedFromOthers++
    }
  }
  t.equal(toDown, 0, 'nothing maps to the backend that is down')
  t.equal(movedFromOthers, 0, 'no AOR of a backend still up moved')
  t.equal(moved, [...before.values()].filter((v) => v === 'b2').length, "exactly b2's AORs moved")
  bs[1]!.health = 'up'
  t.same(aors.map((a) => d.selectByKey('pbx', a)!.id), [...before.values()], 'b2 back: its AORs come back to it')
  t.equal(d.selectByKey('pbx', 'x@y', new Set(bs)), undefined, 'none usable: undefined')
})
