// The bounded map behind the dialog table and the defence's counters: least recently used out first, idle
// expiry that a read restarts, every entry that leaves reported once with why. (Its cost against lru-cache's:
// bench/lru.mjs.)
import t from 'tap'
import { LruMap, type LruEnd } from '../../src/util/lru_map.js'

function tracked(max: number, ttlMs?: number) {
  let now = 1000
  const gone: Array<[string, number, LruEnd]> = []
  const m = new LruMap<string, number>({ max, ...(ttlMs !== undefined ? { ttlMs } : {}), now: () => now, dispose: (v, k, why) => gone.push([k, v, why]) })
  return { m, gone, advance: (ms: number) => (now += ms) }
}

t.test('a full map evicts the least recently used entry; a read makes an entry the most recent', async (t) => {
  const { m, gone } = tracked(3)
  m.set('a', 1).set('b', 2).set('c', 3)
  t.equal(m.get('a'), 1)
  m.set('d', 4)
  t.same(gone, [['b', 2, 'evict']], 'b, not a: a was read after b was written')
  t.same([...m.values()], [3, 1, 4], 'values least recently used first')
  t.equal(m.size, 3)
  t.ok(m.has('c'))
  m.set('e', 5)
  t.same(gone[1], ['c', 3, 'evict'], 'has() is not a use')
})

t.test('idle expiry: an entry not read for ttlMs is gone; each read restarts its timeout', async (t) => {
  const { m, gone, advance } = tracked(10, 100)
  m.set('a', 1).set('b', 2)
  advance(60)
  t.equal(m.get('a'), 1)
  advance(60)
  t.notOk(m.has('b'), 'b idle 120 ms: expired')
  t.ok(m.has('a'), 'a read 60 ms ago: alive')
  t.equal(m.get('b'), undefined)
  t.same(gone, [['b', 2, 'expire']], 'expired lazily on the read, reported once')
  advance(100)
  m.set('c', 3)
  m.purgeStale()
  t.same(gone[1], ['a', 1, 'expire'], 'purgeStale drops the expired front')
  t.same([...m.values()], [3])
})

t.test('delete, replace and clear report each entry once with why', async (t) => {
  const { m, gone } = tracked(5)
  m.set('a', 1).set('b', 2)
  t.ok(m.delete('a'))
  t.notOk(m.delete('a'), 'gone already')
  m.set('b', 20)
  m.clear()
  t.same(gone, [['a', 1, 'delete'], ['b', 2, 'set'], ['b', 20, 'clear']])
  t.equal(m.size, 0)
})

t.test('max below 1 is refused', async (t) => {
  t.throws(() => new LruMap({ max: 0 }), /at least 1/)
})
