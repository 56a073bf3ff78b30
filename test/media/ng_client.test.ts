// The NG client against a real rtpengine (test/helpers/rtpengine.ts), plus fake peers for the
// failure modes rtpengine never produces on its own (lost datagrams, garbage, spoofed sources).
import t from 'tap'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { NgClient, NgError, type NgOutcome } from '../../src/media/ng_client.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { callerSdp, median, rejection, sdpAddresses, udpRelay } from '../helpers/media.js'

let eng: RtpengineHandle
t.before(async () => { eng = await startRtpengine({ t, n: 1 }) })

const target = () => ({ host: eng.host, port: eng.ngPort })

t.test('ping: pong, round-trip time, the latency hook sees every command', async (t) => {
  const seen: Array<[string, NgOutcome, number]> = []
  const c = new NgClient({ onCommand: (cmd, _tg, ms, outcome) => seen.push([cmd, outcome, ms]) })
  t.teardown(() => c.close())
  const rtts: number[] = []
  for (let i = 0; i < 200; i++) rtts.push(await c.ping(target()))
  t.equal(seen.length, 200)
  t.ok(seen.every(([cmd, o, ms]) => cmd === 'ping' && o === 'ok' && ms > 0 && ms < 500))
  t.equal(c.stats.retransmits, 0)
  t.comment(`NG ping round trip: median ${median(rtts).toFixed(3)} ms, max ${Math.max(...rtts).toFixed(3)} ms (200 sequential)`)
})

t.test('offer/answer with real SDP: c= and o= carry rtpengine addresses per direction', async (t) => {
  const c = new NgClient()
  t.teardown(() => c.close())
  const callId = 'ng-oa-1@test'
  // The caller on the public side offers; the backend on the internal side answers.
  const offer = await c.offer(target(), {
    'call-id': callId, 'from-tag': 'ft1', sdp: callerSdp('127.0.4.5', 40000),
    direction: ['external', 'internal'], replace: ['origin', 'session-connection'], ICE: 'remove',
  })
  const o = sdpAddresses(offer.sdp)
  t.same(o.c, [eng.internal], 'offer toward the backend: c= is rtpengine internal')
  t.same(o.o, [eng.internal], 'o= replaced too')
  t.notMatch(offer.sdp.toString(), /127\.0\.4\.5/, 'no trace of the caller address')
  t.match(offer.sdp.toString(), /^m=audio (\d+) RTP\/AVP 0 8/m)
  const answer = await c.answer(target(), {
    'call-id': callId, 'from-tag': 'ft1', 'to-tag': 'tt1', sdp: callerSdp('127.0.1.7', 41000),
    direction: ['internal', 'external'], replace: ['origin', 'session-connection'],
  })
  const a = sdpAddresses(answer.sdp)
  t.same(a.c, [eng.external], 'answer toward the caller: c= is rtpengine external')
  t.same(a.o, [eng.external])
  t.notMatch(answer.sdp.toString(), /127\.0\.1\.7/, 'no trace of the backend address')
  const q = await c.query(target(), { 'call-id': callId, 'from-tag': 'ft1' })
  t.ok(q['tags'], 'query knows the call')
  t.same(await c.list(target()), [callId])
  await c.delete(target(), { 'call-id': callId, 'from-tag': 'ft1' })
  t.same(await c.list(target()), [], 'list: no session left')
  t.match(await rejection(c.query(target(), { 'call-id': callId })), { kind: 'error' }, 'query: unknown after delete')
  const again = await c.delete(target(), { 'call-id': callId, 'from-tag': 'ft1' })
  t.match(again['warning'], /not found/, 'a second delete is ok with a warning (idempotent)')
})

t.test('error replies: result error with rtpengine\'s error-reason', async (t) => {
  const c = new NgClient()
  t.teardown(() => c.close())
  const e1 = await c.request(target(), 'no-such-command').catch((e: unknown) => e)
  t.ok(e1 instanceof NgError)
  t.match(e1, { kind: 'error', command: 'no-such-command', reason: 'Unrecognized command' })
  t.match((e1 as Error).message, /Unrecognized command/)
  const e2 = await c.answer(target(), { 'call-id': 'never-offered', 'from-tag': 'a', 'to-tag': 'b', sdp: callerSdp('127.0.1.7', 41000) }).catch((e: unknown) => e)
  t.match(e2, { kind: 'error' })
  t.equal(c.stats.errors, 2)
  const e3 = await c.offer(target(), { 'call-id': 'bad-sdp', 'from-tag': 'a', sdp: 'this is not sdp' }).catch((e: unknown) => e)
  t.match(e3, { kind: 'error' }, 'unparsable SDP is an error reply')
  t.same(await c.list(target()), [])
})

t.test('retransmission: a lost reply is re-asked with the same cookie, rtpengine answers from its cache', async (t) => {
  const relay = await udpRelay(target(), { dropReplies: 1 })
  t.teardown(() => relay.close())
  const outcomes: Array<[NgOutcome, number]> = []
  const c = new NgClient({ retransmitMs: 100, timeoutMs: 2000, onCommand: (_c, _t, _ms, o, r) => outcomes.push([o, r]) })
  t.teardown(() => c.close())
  const via = { host: '127.0.0.1', port: relay.port }
  const callId = 'ng-retx@test'
  const offer = await c.offer(via, { 'call-id': callId, 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000), direction: ['external', 'internal'] })
  t.same(outcomes, [['ok', 1]], 'one retransmission')
  t.equal(relay.requests.length, 2, 'rtpengine got the offer twice')
  t.equal(relay.requests[0]!.subarray(0, relay.requests[0]!.indexOf(0x20)).toString(),
    relay.requests[1]!.subarray(0, relay.requests[1]!.indexOf(0x20)).toString(), 'same cookie')
  t.ok(relay.requests[0]!.equals(relay.requests[1]!), 'same bytes')
  t.equal(relay.replies.length, 2, 'and answered twice')
  t.ok(relay.replies[0]!.equals(relay.replies[1]!), 'the second reply is the cached first one (same ports)')
  t.same(await c.list(target()), [callId], 'one session, not two')
  // The same offer again with a NEW cookie is idempotent in rtpengine too (same ports).
  const re = await c.offer(target(), { 'call-id': callId, 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000), direction: ['external', 'internal'] })
  t.equal(re.sdp.toString(), offer.sdp.toString(), 'a repeated offer gets the same media ports')
  await c.delete(target(), { 'call-id': callId })
  t.same(await c.list(target()), [])
})

t.test('retransmission: a lost request is re-sent and answered once', async (t) => {
  const relay = await udpRelay(target(), { dropRequests: 2 })
  t.teardown(() => relay.close())
  const c = new NgClient({ retransmitMs: 50, timeoutMs: 2000 })
  t.teardown(() => c.close())
  await c.ping({ host: '127.0.0.1', port: relay.port })
  t.equal(c.stats.retransmits, 2)
  t.equal(relay.replies.length, 1)
})

t.test('timeout: a dead port gives up after the total timeout, retransmitting on a doubling interval', async (t) => {
  const dead = createSocket('udp4') // bound and silent: nothing answers
  await new Promise<void>((r) => dead.bind(0, '127.0.0.1', r))
  const got: Buffer[] = []
  dead.on('message', (m) => got.push(m))
  t.teardown(() => dead.close())
  const c = new NgClient({ retransmitMs: 50, timeoutMs: 400 })
  t.teardown(() => c.close())
  const t0 = Date.now()
  const err = await c.ping({ host: '127.0.0.1', port: dead.address().port }).catch((e: unknown) => e)
  const took = Date.now() - t0
  t.match(err, { kind: 'timeout', command: 'ping' })
  // Due at 50, 150 and 350 ms; a late event loop (loaded machine) leaves room for fewer before 400 ms.
  const n = Number(/no reply in \d+ ms \((\d) retransmissions\)/.exec((err as Error).message)?.[1])
  t.ok(n >= 1 && n <= 3, `${n} retransmissions (3 on time)`)
  t.ok(took >= 390 && took < 1500, `gave up after ${took} ms`)
  t.equal(got.length, n + 1, 'the first send and each retransmission arrived')
  t.ok(got.every((m) => m.equals(got[0]!)), 'every copy identical')
  t.equal(c.stats.timeouts, 1)
  t.equal(c.stats.pending, 0)
  // Then a late reply for that cookie is counted and dropped, not a crash.
  const cookie = got[0]!.subarray(0, got[0]!.indexOf(0x20)).toString()
  dead.send(Buffer.from(`${cookie} d6:result4:ponge`), c.localPort!, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 50))
  t.equal(c.stats.unmatched, 1)
})

t.test('hostile or broken replies: protocol errors, strays and spoofed sources never crash', async (t) => {
  let mode = 'garbage'
  let spoof: Socket | undefined
  const fake = createSocket('udp4')
  await new Promise<void>((r) => fake.bind(0, '127.0.0.1', r))
  t.teardown(() => fake.close())
  fake.on('message', (m: Buffer, r: RemoteInfo) => {
    const cookie = m.subarray(0, m.indexOf(0x20)).toString()
    const send = (s: string) => fake.send(Buffer.from(s, 'latin1'), r.port, r.address)
    if (mode === 'garbage') send(`${cookie} d6:result`)
    else if (mode === 'list') send(`${cookie} l2:oke`)
    else if (mode === 'noresult') send(`${cookie} d3:fooi1ee`)
    else if (mode === 'loadlimit') send(`${cookie} d6:result10:load limite`)
    else if (mode === 'strays') {
      send('no-space-at-all')
      send(' d6:result4:ponge')
      send(`zz${cookie} d6:result4:ponge`)
      send('\xff'.repeat(3000))
      spoof!.send(Buffer.from(`${cookie} d6:result4:ponge`), r.port, r.address) // right cookie, wrong source
      setTimeout(() => send(`${cookie} d6:result4:ponge`), 30)
    }
  })
  const c = new NgClient({ retransmitMs: 1000, timeoutMs: 1500 })
  t.teardown(() => c.close())
  const at = { host: '127.0.0.1', port: fake.address().port }
  t.match(await rejection(c.ping(at)), { kind: 'protocol', message: /undecodable reply: bencode: unexpected end of input/ })
  mode = 'list'
  t.match(await rejection(c.ping(at)), { kind: 'protocol', message: /not a dict with a result/ })
  mode = 'noresult'
  t.match(await rejection(c.ping(at)), { kind: 'protocol' })
  mode = 'loadlimit'
  t.match(await rejection(c.ping(at)), { kind: 'error', reason: 'load limit' })
  mode = 'strays'
  spoof = createSocket('udp4')
  await new Promise<void>((r) => spoof!.bind(0, '127.0.0.1', r))
  t.teardown(() => spoof!.close())
  const rtt = await c.ping(at)
  t.ok(rtt >= 25, 'only the genuine reply from the target settled the ping')
  t.equal(c.stats.unmatched, 5)
})

t.test('one socket, many targets: concurrent commands to two instances are matched by cookie', async (t) => {
  const eng2 = await startRtpengine({ t, n: 2 })
  const c = new NgClient()
  t.teardown(() => c.close())
  const targets = [target(), { host: eng2.host, port: eng2.ngPort }]
  const offers = await Promise.all(Array.from({ length: 40 }, (_, i) => c.offer(targets[i % 2]!, {
    'call-id': `many-${i}`, 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000 + 2 * i), direction: ['external', 'internal'],
  })))
  offers.forEach((o, i) => t.same(sdpAddresses(o.sdp).c, [i % 2 ? eng2.internal : eng.internal], `offer ${i} from the right instance`))
  t.equal((await c.list(targets[0]!, 100)).length, 20)
  t.equal((await c.list(targets[1]!, 100)).length, 20)
  await Promise.all(offers.map((_, i) => c.delete(targets[i % 2]!, { 'call-id': `many-${i}` })))
  t.same(await c.list(targets[0]!), [])
  t.same(await c.list(targets[1]!), [])
})

t.test('offer/answer/delete latency (sequential, real rtpengine)', async (t) => {
  const c = new NgClient()
  t.teardown(() => c.close())
  const offer: number[] = [], answer: number[] = [], del: number[] = []
  for (let i = 0; i < 100; i++) {
    const callId = `lat-${i}`
    let t0 = performance.now()
    await c.offer(target(), { 'call-id': callId, 'from-tag': 'f', sdp: callerSdp('127.0.4.5', 40000), direction: ['external', 'internal'], replace: ['origin', 'session-connection'] })
    offer.push(performance.now() - t0)
    t0 = performance.now()
    await c.answer(target(), { 'call-id': callId, 'from-tag': 'f', 'to-tag': 't', sdp: callerSdp('127.0.1.7', 41000), direction: ['internal', 'external'], replace: ['origin', 'session-connection'] })
    answer.push(performance.now() - t0)
    t0 = performance.now()
    await c.delete(target(), { 'call-id': callId, 'from-tag': 'f' })
    del.push(performance.now() - t0)
  }
  t.same(await c.list(target()), [])
  t.comment(`NG medians over 100 calls: offer ${median(offer).toFixed(3)} ms, answer ${median(answer).toFixed(3)} ms, delete ${median(del).toFixed(3)} ms`)
  t.ok(median(offer) < 50)
})

t.test('close: requests in flight fail with kind closed; later requests too', async (t) => {
  const dead = createSocket('udp4')
  await new Promise<void>((r) => dead.bind(0, '127.0.0.1', r))
  t.teardown(() => dead.close())
  const c = new NgClient({ timeoutMs: 5000 })
  const p = c.ping({ host: '127.0.0.1', port: dead.address().port })
  await new Promise((r) => setTimeout(r, 20))
  await c.close()
  t.match(await rejection(p), { kind: 'closed' })
  t.match(await rejection(c.ping(target())), { kind: 'closed' })
})

t.test('overload: beyond maxPending a request fails at once', async (t) => {
  const dead = createSocket('udp4')
  await new Promise<void>((r) => dead.bind(0, '127.0.0.1', r))
  t.teardown(() => dead.close())
  const c = new NgClient({ maxPending: 2, timeoutMs: 200, retransmitMs: 200 })
  t.teardown(() => c.close())
  const at = { host: '127.0.0.1', port: dead.address().port }
  await c.start()
  const a = c.ping(at).catch((e: unknown) => e)
  const b = c.ping(at).catch((e: unknown) => e)
  t.match(await rejection(c.ping(at)), { kind: 'overload' })
  t.match(await a, { kind: 'timeout' })
  t.match(await b, { kind: 'timeout' })
})
