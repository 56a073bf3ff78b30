import t from 'tap'
import { NgClient, NgError } from '../../src/media/ng_client.js'
import { RtpenginePool, parseRtpengineSpec, rtpengineId, type MediaHealth } from '../../src/media/rtpengine_pool.js'
import { waitFor } from '../helpers/net.js'
import { startRtpengine } from '../helpers/rtpengine.js'
import { callerSdp, sdpAddresses } from '../helpers/media.js'

t.test('specs: udp:IP:PORT;weight=N, strict', async (t) => {
  t.same(parseRtpengineSpec('udp:127.0.0.1:22222'), { host: '127.0.0.1', port: 22222, weight: 1 })
  t.same(parseRtpengineSpec(' udp:10.0.0.5:2223;weight=3 '), { host: '10.0.0.5', port: 2223, weight: 3 })
  t.same(parseRtpengineSpec('udp:[::1]:2223;weight=0'), { host: '::1', port: 2223, weight: 0 })
  t.same(parseRtpengineSpec('127.0.0.1:9'), { host: '127.0.0.1', port: 9, weight: 1 }, 'udp: is the default')
  for (const bad of ['', 'udp:127.0.0.1', 'tcp:127.0.0.1:1', 'udp:rtp.example.com:22222', 'udp:127.0.0.1:70000',
    'udp:127.0.0.1:0', 'udp:127.0.0.1:2;weight=-1', 'udp:127.0.0.1:2;weight=x', 'udp:127.0.0.1:2;foo=1', 'udp:999.1.1.1:2', 'udp:::1:2']) {
    t.throws(() => parseRtpengineSpec(bad), /rtpengine '/, JSON.stringify(bad))
  }
})

t.test('instance ids: short, stable across order and restarts, distinct per address', async (t) => {
  const c = new NgClient()
  const a = new RtpenginePool(c, ['udp:127.0.0.1:2001', 'udp:127.0.0.1:2002;weight=5'])
  const b = new RtpenginePool(c, ['udp:127.0.0.1:2002', 'udp:127.0.0.1:2001'])
  const [a1, a2] = a.instances
  t.match(a1!.id, /^[A-Za-z0-9_-]{6}$/)
  t.not(a1!.id, a2!.id)
  t.equal(b.get(a1!.id)?.port, 2001, 'same id for the same address in another edge with another order')
  t.equal(a1!.id, rtpengineId({ host: '127.0.0.1', port: 2001 }))
  t.equal(a.get('nope00'), undefined)
  t.throws(() => new RtpenginePool(c, ['udp:127.0.0.1:1', 'udp:127.0.0.1:1;weight=2']), /listed twice/)
})

t.test('selection: smooth weighted, skips down and excluded, weight 0 only as a last resort', async (t) => {
  const p = new RtpenginePool(new NgClient(), ['udp:127.0.0.1:1;weight=3', 'udp:127.0.0.1:2', 'udp:127.0.0.1:3;weight=0'])
  const [x, y, z] = p.instances
  const pick = (n: number, ex?: Set<string>) => Array.from({ length: n }, () => p.select(ex)?.port).join('')
  t.equal(pick(8), '11211121', '3:1, spread (not 1112)')
  p.record(x!, false); p.record(x!, false)
  t.equal(x!.health, 'probing', 'two failures of three: still eligible')
  p.record(x!, false)
  t.equal(x!.health, 'down')
  t.equal(pick(4), '2222')
  t.equal(pick(2, new Set([y!.id])), '33', 'weight 0 when nothing else is usable')
  p.record(z!, false); p.record(z!, false); p.record(z!, false)
  t.equal(p.select(new Set([y!.id])), undefined, 'none usable')
  p.record(x!, true)
  t.equal(x!.health, 'down', 'one good answer is not enough')
  p.record(x!, true)
  t.equal(x!.health, 'up')
  // Rendezvous: deterministic per key, moves only the keys of an excluded instance.
  const keys = Array.from({ length: 200 }, (_, i) => `call-${i}@x`)
  const before = keys.map((k) => p.rendezvous(k)?.id)
  t.same(keys.map((k) => p.rendezvous(k)?.id), before, 'same answer every time')
  const after = keys.map((k) => p.rendezvous(k, new Set([x!.id]))?.id)
  keys.forEach((_, i) => { if (before[i] !== x!.id) t.equal(after[i], before[i]) })
  t.ok(after.every((id) => id !== x!.id))
  // Command outcomes: a timeout is a failure, an error reply proves it alive.
  const tm = new NgError('timeout', 'offer', y!, 'x')
  p.recordOutcome(y!, tm); p.recordOutcome(y!, tm); p.recordOutcome(y!, tm)
  t.equal(y!.health, 'down')
  p.recordOutcome(y!, new NgError('error', 'offer', y!, 'x', 'Unknown call-id'))
  p.recordOutcome(y!, undefined)
  t.equal(y!.health, 'up')
})

t.test('reload keeps health, retires removed instances (still found by id, never selected)', async (t) => {
  const p = new RtpenginePool(new NgClient(), ['udp:127.0.0.1:1', 'udp:127.0.0.1:2'])
  const [x, y] = p.instances
  p.record(y!, true); p.record(y!, true)
  p.update(['udp:127.0.0.1:2;weight=4', 'udp:127.0.0.1:3'])
  t.equal(p.instances.length, 2)
  t.equal(p.instances[0], y, 'same object for the same address')
  t.equal(y!.health, 'up')
  t.equal(y!.weight, 4)
  t.equal(p.get(x!.id), x, 'retired, still found for its calls')
  t.ok(x!.retired)
  for (let i = 0; i < 10; i++) t.not(p.select(), x)
  t.throws(() => p.update(['bad']), /expected/)
  t.equal(p.instances[0], y, 'a failed update changes nothing')
})

t.test('real rtpengines: a killed instance goes down after the threshold, new calls move, it comes back', async (t) => {
  const e1 = await startRtpengine({ t, n: 1 })
  const e2 = await startRtpengine({ t, n: 2 })
  const client = new NgClient()
  t.teardown(() => client.close())
  const changes: Array<[string, MediaHealth, MediaHealth]> = []
  const pool = new RtpenginePool(client, [e1.spec, `${e2.spec};weight=1`], {
    intervalMs: 100, timeoutMs: 150, failThreshold: 2, okThreshold: 2,
    onChange: (i, before) => changes.push([i.id, before, i.health]),
  })
  t.teardown(() => pool.stop())
  const [i1, i2] = pool.instances
  pool.start()
  await waitFor(() => i1!.health === 'up' && i2!.health === 'up', { what: 'both up', timeoutMs: 3000 })
  t.ok(i1!.lastRttMs! > 0 && i1!.lastRttMs! < 1000, `ping rtt ${i1!.lastRttMs?.toFixed(3)} ms`)

  // Both take calls; each offer goes to the instance selected, later commands by id.
  const calls: Array<[string, string]> = []
  for (let i = 0; i < 4; i++) {
    const inst = pool.select()!
    const callId = `pool-${i}`
    const r = await client.offer(inst, { 'call-id': callId, 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000), direction: ['external', 'internal'] })
    t.same(sdpAddresses(r.sdp).c, [inst === i1 ? e1.internal : e2.internal])
    calls.push([callId, inst.id])
  }
  t.same(new Set(calls.map((c) => c[1])), new Set([i1!.id, i2!.id]), 'spread over both')
  for (const [callId, id] of calls) await client.delete(pool.get(id)!, { 'call-id': callId })
  t.same(await client.list(i1!), [])
  t.same(await client.list(i2!), [])

  const killedAt = Date.now()
  e1.kill('SIGKILL')
  await e1.proc.exited
  await waitFor(() => i1!.health === 'down', { what: 'instance 1 down', timeoutMs: 3000 })
  const took = Date.now() - killedAt
  t.ok(took >= 150, `down after ${took} ms (2 failed pings of 150 ms timeout)`)
  t.equal(i2!.health, 'up')
  for (let i = 0; i < 6; i++) t.equal(pool.select(), i2, 'new calls go to the live instance')
  const r = await client.offer(pool.select()!, { 'call-id': 'after-kill', 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000), direction: ['external', 'internal'] })
  t.same(sdpAddresses(r.sdp).c, [e2.internal])
  await client.delete(i2!, { 'call-id': 'after-kill' })

  // Same NG port again: it is the same instance id and returns after okThreshold good pings.
  await startRtpengine({ t, n: 1, ngPort: e1.ngPort })
  await waitFor(() => i1!.health === 'up', { what: 'instance 1 back up', timeoutMs: 3000 })
  t.same(changes.filter((c) => c[0] === i1!.id).map((c) => `${c[1]}>${c[2]}`), ['probing>up', 'up>probing', 'probing>down', 'down>up'])
  t.same(await client.list(i2!), [])
})
