import t from 'tap'
import { startEtcd } from '../helpers/etcd.js'

t.test('startEtcd runs a healthy etcd that restarts on the same endpoint and dies by PID', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.cleanup())
  const firstPid = etcd.pid
  t.ok(firstPid > 0, 'has a pid')
  const health = async () => ((await (await fetch(`${etcd.endpoint}/health`)).json()) as { health: string }).health
  t.equal(await health(), 'true')
  const t0 = Date.now()
  await etcd.restart()
  t.comment(`etcd restart took ${Date.now() - t0} ms`)
  t.not(etcd.pid, firstPid, 'new process after restart')
  t.equal(await health(), 'true', 'healthy again on the same endpoint')
  await etcd.stop()
  await t.rejects(fetch(`${etcd.endpoint}/health`, { signal: AbortSignal.timeout(500) }), 'unreachable once stopped')
})
