// The dialog table's pattern on lru-cache and on src/util/lru_map.ts, same process, interleaved rounds: a call
// is added, read three times (ACK, BYE, the BYE's 200), then deleted, with `up` other calls held meanwhile.
// With few calls up lru-cache keeps emptying itself, and deleting its last entry refills all `max` slots.
//   npm run build && node bench/lru.mjs [--max 100000] [--calls 20000] [--rounds 5]
import { parseArgs } from 'node:util'
import { LRUCache } from 'lru-cache'
import { LruMap } from '../dist/util/lru_map.js'

const { values: o } = parseArgs({ options: { max: { type: 'string', default: '100000' }, calls: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' } } })
const max = Number(o.max)
const calls = Number(o.calls)
const rounds = Number(o.rounds)

const make = {
  'lru-cache': () => new LRUCache({ max, ttl: 4 * 3600_000, ttlAutopurge: false, updateAgeOnGet: true, dispose: () => {} }),
  LruMap: () => new LruMap({ max, ttlMs: 4 * 3600_000, dispose: () => {} }),
}

/** ns per call (add, 3 reads, delete) with `up` calls held throughout. */
function run(kind, up) {
  const m = make[kind]()
  for (let i = 0; i < up; i++) m.set('held-' + i, { i })
  const keys = Array.from({ length: calls }, (_, i) => 'call-' + i + '@127.0.0.1')
  const start = process.hrtime.bigint()
  for (const k of keys) {
    m.set(k, { k })
    m.get(k)
    m.get(k)
    m.get(k)
    m.delete(k)
  }
  return Number(process.hrtime.bigint() - start) / calls
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`dialog table pattern, max ${max}, ${calls} calls per round, median of ${rounds} interleaved rounds (ns per call)\n`)
console.log('calls up   lru-cache     LruMap   ratio')
for (const up of [0, 10, 1000]) {
  const r = { 'lru-cache': [], LruMap: [] }
  for (let i = 0; i < rounds; i++) for (const kind of Object.keys(make)) r[kind].push(run(kind, up))
  const a = median(r['lru-cache'])
  const b = median(r.LruMap)
  console.log(`${String(up).padStart(8)}  ${a.toFixed(0).padStart(10)} ${b.toFixed(0).padStart(10)}  ${(a / b).toFixed(1).padStart(6)}`)
}
