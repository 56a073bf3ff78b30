// EtcdSource against a real etcd: initial read, watch, deletes, draining, invalid values, lease expiry,
// compaction. Each subtest uses its own prefix on one shared etcd to keep the file fast.
import t from 'tap'
import { Etcd3, type Watcher } from 'etcd3'
import { pino } from 'pino'
import type { BackendSink, BackendSpec } from '../../src/dispatch/types.js'
import { EtcdSource } from '../../src/discovery/etcd_source.js'
import { startEtcd, waitFor } from '../helpers/etcd.js'

class RecordingSink implements BackendSink {
  readonly backends = new Map<string, BackendSpec>()
  readonly calls: string[] = []
  upsert(spec: BackendSpec): void {
    this.backends.set(spec.id, spec)
    this.calls.push(`upsert ${spec.id} ${spec.uri} ${spec.admin}`)
  }
  remove(id: string): void {
    this.backends.delete(id)
    this.calls.push(`remove ${id}`)
  }
  ids(): string[] {
    return [...this.backends.keys()].sort()
  }
}

function logCapture() {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
  return { lines, logger }
}

const value = (uri: string, extra: Record<string, unknown> = {}) => JSON.stringify({ uri, weight: 1, priority: 0, state: 'active', ...extra })

const etcd = await startEtcd()
t.teardown(() => etcd.cleanup())
const admin = new Etcd3({ hosts: etcd.endpoint })
t.teardown(() => admin.close())

function newSource(prefix: string, t: { teardown(fn: () => unknown): void }) {
  const sink = new RecordingSink()
  const { lines, logger } = logCapture()
  const source = new EtcdSource(sink, { endpoints: [etcd.endpoint], prefix, logger })
  t.teardown(() => source.stop())
  return { sink, lines, source }
}

t.test('initial read, watch puts, draining with extra fields, deletes: each change applied once', async (t) => {
  const p = '/t1/'
  await admin.put(`${p}default/a`).value(value('sip:127.0.1.1:5080'))
  const { sink, source } = newSource(p, t)
  const states: string[] = []
  source.onState = (s) => states.push(s)
  t.equal(source.state, 'connecting')
  await source.start()
  t.equal(source.state, 'synced')
  t.same(states, ['synced'])
  t.ok(BigInt(source.revision) > 0n, `revision ${source.revision}`)
  t.ok(source.lastSyncAt && source.lastSyncAt <= Date.now())
  t.same(sink.ids(), ['default/a'], 'key put before start is seen')
  t.match(sink.backends.get('default/a'), { set: 'default', uri: 'sip:127.0.1.1:5080', weight: 1, priority: 0, admin: 'active', source: 'etcd' })

  await admin.put(`${p}default/b`).value(JSON.stringify({ uri: 'sip:127.0.1.2', weight: 3, priority: 2 }))
  await waitFor('b via watch', () => sink.backends.has('default/b'))
  t.match(sink.backends.get('default/b'), { uri: 'sip:127.0.1.2:5060', weight: 3, priority: 2, admin: 'active' }, 'defaults and canonical URI')

  await admin.put(`${p}default/a`).value(value('sip:127.0.1.1:5080', { state: 'draining', zone: 'eu-1', tags: ['x'] }))
  await waitFor('a draining', () => sink.backends.get('default/a')?.admin === 'draining')
  t.same(sink.backends.get('default/a')?.extra, { zone: 'eu-1', tags: ['x'] }, 'unknown fields kept in extra')

  await admin.put(`${p}other/c`).value(value('sip:127.0.1.3:5080;transport=tcp'))
  await admin.delete().key(`${p}default/b`)
  await waitFor('b removed', () => !sink.backends.has('default/b'))
  await waitFor('c in set other', () => sink.backends.get('other/c')?.set === 'other')
  t.same(sink.ids(), ['default/a', 'other/c'])
  t.same(
    sink.calls,
    [
      'upsert default/a sip:127.0.1.1:5080 active',
      'upsert default/b sip:127.0.1.2:5060 active',
      'upsert default/a sip:127.0.1.1:5080 draining',
      'upsert other/c sip:127.0.1.3:5080;transport=tcp active',
      'remove default/b',
    ],
    'no gap, no duplicate',
  )
  t.same(source.backends().map((b) => b.id).sort(), ['default/a', 'other/c'])
})

t.test('invalid values are skipped, logged once per key and revision, never applied', async (t) => {
  const p = '/t2/'
  await admin.put(`${p}default/good`).value(value('sip:127.0.1.1:5080'))
  await admin.put(`${p}default/badjson`).value('{"uri": ')
  await admin.put(`${p}noslash`).value(value('sip:127.0.1.9:5080'))
  const { sink, source, lines } = newSource(p, t)
  await source.start()
  t.same(sink.ids(), ['default/good'])

  await admin.put(`${p}default/baduri`).value(value('sip:asterisk.local:5080'))
  await admin.put(`${p}default/badweight`).value(JSON.stringify({ uri: 'sip:127.0.1.4:5080', weight: -1 }))
  await admin.put(`${p}default/badstate`).value(JSON.stringify({ uri: 'sip:127.0.1.4:5080', state: 'gone' }))
  // A valid key turning invalid keeps its previous value; turning valid again applies.
  await admin.put(`${p}default/good`).value(JSON.stringify({ uri: 'sip:127.0.1.1:5080', weight: 'heavy' }))
  await admin.put(`${p}default/late`).value(value('sip:127.0.1.5:5080'))
  await waitFor('late key', () => sink.backends.has('default/late'))
  t.same(sink.ids(), ['default/good', 'default/late'], 'invalid keys never reach the sink')
  t.equal(sink.backends.get('default/good')?.weight, 1, 'previous value kept')

  const invalid = () => lines.filter((l) => String(l.msg).startsWith('invalid backend value'))
  const reasons = Object.fromEntries(invalid().map((l) => [String(l.key).slice(p.length), String(l.reason)]))
  t.match(reasons, {
    'default/badjson': /not JSON/,
    noslash: /<prefix><set>\/<id>/,
    'default/baduri': /IP literal/,
    'default/badweight': /weight must be an integer/,
    'default/badstate': /state must be/,
    'default/good': /weight must be an integer/,
  })
  t.equal(invalid().length, 6, 'each logged once')

  // Force a full resync (as after a reconnect): the same revisions must not be logged again.
  const internals = (source as unknown as { watch: unknown }).watch as { generation: number; onWatchEnded(g: number, why: string, e: unknown): void }
  const syncedBefore = source.lastSyncAt ?? 0
  await new Promise((r) => setTimeout(r, 5))
  internals.onWatchEnded(internals.generation, 'test resync', undefined)
  await waitFor('resync', () => (source.lastSyncAt ?? 0) > syncedBefore && source.state === 'synced')
  t.equal(invalid().length, 6, 'not logged again after resync')

  await admin.put(`${p}default/good`).value(JSON.stringify({ uri: 'sip:127.0.1.1:5080', weight: 7 }))
  await waitFor('good fixed', () => sink.backends.get('default/good')?.weight === 7)
  await admin.put(`${p}default/badjson`).value('still not json')
  await waitFor('new revision logged', () => invalid().length === 7)
  t.pass('a new invalid revision of the same key is logged again')
})

t.test('an expiring lease removes its backend', async (t) => {
  const p = '/t3/'
  const { sink, source } = newSource(p, t)
  await source.start()
  const lease = admin.lease(2)
  await lease.put(`${p}default/leased`).value(value('sip:127.0.1.7:5080'))
  await waitFor('leased backend', () => sink.backends.has('default/leased'))
  const released = Date.now()
  lease.release() // stop keep-alives, as when the container is killed
  await waitFor('lease expiry removes it', () => !sink.backends.has('default/leased'), 8000)
  const ms = Date.now() - released
  t.comment(`lease ttl 2 s: backend removed ${ms} ms after keep-alives stopped`)
  t.ok(ms >= 1000, 'not removed before the lease could expire')
})

t.test('a watch canceled by compaction leads to a full re-read', async (t) => {
  const p = '/t4/'
  await admin.put(`${p}default/a`).value(value('sip:127.0.1.1:5080'))
  const { sink, source, lines } = newSource(p, t)
  await source.start()
  const oldRevision = source.revision
  // Detach the live watch without the source noticing, change data, compact past oldRevision, then make
  // the source watch from the compacted revision, as a reconnect after a long outage would.
  const internals = (source as unknown as { watch: unknown }).watch as { generation: number; watcher?: Watcher; startWatch(rev: string, gen: number): void }
  const live = internals.watcher
  internals.generation++
  await live?.cancel()
  await admin.put(`${p}default/b`).value(value('sip:127.0.1.2:5080'))
  await admin.delete().key(`${p}default/a`)
  const head = await admin.get(`${p}default/b`).exec()
  await admin.kv.compact({ revision: head.header.revision, physical: true })
  internals.startWatch(oldRevision, internals.generation)
  await waitFor('resync after compaction', () => sink.ids().join() === 'default/b')
  // etcd3 drops compact_revision and etcd sends no cancel_reason: the cancel itself is the signal.
  t.ok(lines.some((l) => l.msg === 'etcd watch canceled: resyncing'), 'logged the canceled watch')
  t.ok(BigInt(source.revision) >= BigInt(head.header.revision), 'revision moved past the compaction')
  await admin.put(`${p}default/c`).value(value('sip:127.0.1.3:5080'))
  await waitFor('watch works again', () => sink.backends.has('default/c'))
})
