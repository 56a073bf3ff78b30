// The dialog table is a bounded cache over the stateless Record-Route tokens: every call that leaves it is
// reported once, with why — a BYE, the table full (the least recently used call goes), a call idle past
// limits.dialogTtlS, or shutdown — since the per-backend call counts (least-calls, draining) follow it.
import t from 'tap'
import { DialogTable, type Dialog } from '../../src/proxy/dialogs.js'

const peer = { proto: 'udp' as const, address: '127.0.1.1', port: 5080 }
const dialog = (callId: string): Dialog => ({ callId, internal: peer, external: { ...peer, address: '127.0.0.9' }, backend: undefined, createdAt: 0, direction: 'in' })

t.test('each call leaves once, with its reason', async (t) => {
  const ended: string[] = []
  const table = new DialogTable({ max: 2, ttlS: 3600, onEnd: (d, why) => ended.push(`${d.callId}:${why}`) })
  t.ok(table.add(dialog('a')))
  t.notOk(table.add(dialog('a')), 'a second 2xx of the same call adds nothing')
  table.add(dialog('b'))
  t.ok(table.get('a'), 'a read: b is now the least recently used')
  table.add(dialog('c'))
  t.same(ended, ['b:evicted'])
  table.end('a')
  t.same(ended, ['b:evicted', 'a:bye'])
  t.equal(table.size, 1)
  table.end('c')
  t.equal(table.size, 0, 'the last call ended: empty')
  table.add(dialog('d'))
  table.clear()
  t.same(ended, ['b:evicted', 'a:bye', 'c:bye', 'd:cleared'])
})

t.test('a call idle past the TTL expires: on purge, or when read', async (t) => {
  const ended: string[] = []
  const table = new DialogTable({ max: 10, ttlS: 0.05, onEnd: (d, why) => ended.push(`${d.callId}:${why}`) })
  table.add(dialog('x'))
  table.add(dialog('y'))
  await new Promise((r) => setTimeout(r, 80))
  t.equal(table.get('x'), undefined, 'x is gone when read')
  table.purge()
  t.same(ended, ['x:expired', 'y:expired'])
  t.equal(table.size, 0)
})

t.test('page: least recently used first', async (t) => {
  const table = new DialogTable({ max: 10, ttlS: 3600, onEnd: () => {} })
  for (const id of ['a', 'b', 'c']) table.add(dialog(id))
  table.get('a')
  const p = table.page(0, 2)
  t.equal(p.total, 3)
  t.same(p.items.map((d) => d.callId), ['b', 'c'])
})
