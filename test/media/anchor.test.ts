// The media policy against real rtpengines: which interface each side sees, call flows (new call,
// re-INVITE from either side, late offer), failure policies, moving off a dead instance, no leftovers.
import t, { type Test } from 'tap'
import { createSocket } from 'node:dgram'
import { MediaAnchor, ngTags, type MediaAnchorOptions, type MediaEvent } from '../../src/media/anchor.js'
import { NgClient } from '../../src/media/ng_client.js'
import { RtpenginePool } from '../../src/media/rtpengine_pool.js'
import { waitFor } from '../helpers/net.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { callerSdp, sdpAddresses } from '../helpers/media.js'

let e1: RtpengineHandle
let e2: RtpengineHandle
t.before(async () => {
  e1 = await startRtpengine({ t, n: 1 })
  e2 = await startRtpengine({ t, n: 2 })
})

const CALLER = '127.0.4.5' // a phone on the public side
const BACKEND = '127.0.1.7' // an Asterisk on the internal side

function setup(t: Test, specs: string[], o: Partial<MediaAnchorOptions> = {}) {
  const client = new NgClient({ retransmitMs: 50, timeoutMs: 300 })
  t.teardown(() => client.close())
  const pool = new RtpenginePool(client, specs)
  const events: MediaEvent[] = []
  const anchor = new MediaAnchor({ client, pool, onEvent: (e) => events.push(e), ...o })
  return { client, pool, anchor, events }
}

async function noSessions(t: Test, client: NgClient, ...engines: RtpengineHandle[]) {
  for (const e of engines) t.same(await client.list({ host: e.host, port: e.ngPort }, 100), [], `no session left on ${e.spec}`)
}

t.test('ngTags: offerer and answerer from From/To for request and response offers', async (t) => {
  t.same(ngTags('offer', true, 'A', undefined), { offererTag: 'A', answererTag: undefined }, 'INVITE offer: caller offers')
  t.same(ngTags('answer', false, 'A', 'B'), { offererTag: 'A', answererTag: 'B' }, '2xx answer: callee answers')
  t.same(ngTags('offer', false, 'A', 'B'), { offererTag: 'B', answererTag: 'A' }, 'late offer in the 2xx: callee offers')
  t.same(ngTags('answer', true, 'A', 'B'), { offererTag: 'B', answererTag: 'A' }, 'answer in the ACK: caller answers')
  t.same(ngTags('offer', true, 'B', 'A'), { offererTag: 'B', answererTag: 'A' }, 're-INVITE from the callee')
})

t.test('new call from the public side: each side sees only rtpengine\'s address for its side', async (t) => {
  const { client, anchor, events } = setup(t, [e1.spec])
  const call = { callId: 'anchor-1', offererTag: 'caller-tag' }
  const iceOffer = callerSdp(CALLER, 40000, 'a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\na=candidate:1 1 UDP 2130706431 127.0.4.5 40000 typ host')
  const off = await anchor.offer(call, 'public', 'internal', iceOffer)
  t.equal(off.action, 'anchored')
  if (off.action !== 'anchored') return
  t.equal(off.instance, anchor.pool.instances[0]!.id)
  t.same(sdpAddresses(off.sdp).all, [e1.internal], 'toward the backend: only the internal interface')
  t.notMatch(off.sdp.toString(), /a=candidate|a=ice-/, 'ICE removed toward the backend')
  const ans = await anchor.answer({ ...call, answererTag: 'backend-tag' }, 'internal', 'public', callerSdp(BACKEND, 41000), off.instance)
  t.equal(ans.action, 'anchored')
  if (ans.action !== 'anchored') return
  t.same(sdpAddresses(ans.sdp).all, [e1.external], 'toward the caller: only the external interface')
  t.equal(anchor.pool.instances[0]!.sessions, 1)
  t.equal(await anchor.delete(call, off.instance), true)
  t.equal(anchor.pool.instances[0]!.sessions, 0)
  t.same(events.map((e) => `${e.command}:${e.outcome}`), ['offer:anchored', 'answer:anchored', 'delete:deleted'])
  await noSessions(t, client, e1)
})

t.test('re-INVITE from each side (direction flips) and late offer', async (t) => {
  const { client, anchor } = setup(t, [e1.spec])
  const callId = 'anchor-reinv'
  const off = await anchor.offer({ callId, offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000))
  if (off.action !== 'anchored') return t.fail(off.reason)
  const inst = off.instance
  const ans = await anchor.answer({ callId, offererTag: 'A', answererTag: 'B' }, 'internal', 'public', callerSdp(BACKEND, 41000), inst)
  if (ans.action !== 'anchored') return t.fail(ans.reason)
  const portTowardCaller = /m=audio (\d+)/.exec(ans.sdp.toString())![1]
  // Hold from the backend side: the callee (tag B) offers, toward the public side.
  const hold = await anchor.offer({ callId, ...ngTags('offer', true, 'B', 'A') }, 'internal', 'public', callerSdp(BACKEND, 41000, 'a=sendonly'), { instance: inst })
  if (hold.action !== 'anchored') return t.fail(hold.reason)
  t.same(sdpAddresses(hold.sdp).all, [e1.external], 'callee re-offer reaches the caller with the external address')
  t.match(hold.sdp.toString(), /a=sendonly/)
  t.equal(/m=audio (\d+)/.exec(hold.sdp.toString())![1], portTowardCaller, 'same media port toward the caller')
  const holdAns = await anchor.answer({ callId, ...ngTags('answer', false, 'B', 'A') }, 'public', 'internal', callerSdp(CALLER, 40000, 'a=recvonly'), inst)
  if (holdAns.action !== 'anchored') return t.fail(holdAns.reason)
  t.same(sdpAddresses(holdAns.sdp).all, [e1.internal])
  // Unhold from the caller side.
  const unhold = await anchor.offer({ callId, offererTag: 'A', answererTag: 'B' }, 'public', 'internal', callerSdp(CALLER, 40000), { instance: inst })
  if (unhold.action !== 'anchored') return t.fail(unhold.reason)
  t.same(sdpAddresses(unhold.sdp).all, [e1.internal])
  t.same(await client.list(anchor.pool.get(inst)!), [callId], 'still one call')
  await anchor.delete({ callId, offererTag: 'A' }, inst)

  // Late offer: INVITE without SDP; the backend offers in its 200 OK, the caller answers in the ACK.
  const late = 'anchor-late'
  const lo = await anchor.offer({ callId: late, ...ngTags('offer', false, 'A', 'B') }, 'internal', 'public', callerSdp(BACKEND, 41000))
  if (lo.action !== 'anchored') return t.fail(lo.reason)
  t.same(sdpAddresses(lo.sdp).all, [e1.external], '2xx offer toward the caller: external')
  const la = await anchor.answer({ callId: late, ...ngTags('answer', true, 'A', 'B') }, 'public', 'internal', callerSdp(CALLER, 40000), lo.instance)
  if (la.action !== 'anchored') return t.fail(la.reason)
  t.same(sdpAddresses(la.sdp).all, [e1.internal], 'ACK answer toward the backend: internal')
  await anchor.delete({ callId: late, offererTag: 'B' }, lo.instance)
  await noSessions(t, client, e1)
})

t.test('bodies: multipart SDP is anchored in place; no SDP, no rtpengine command', async (t) => {
  const { client, anchor } = setup(t, [e1.spec])
  const sent0 = client.stats.sent
  t.same(await anchor.offerBody({ callId: 'nb', offererTag: 'A' }, 'public', 'internal', undefined, Buffer.alloc(0)), { action: 'unchanged' })
  t.same(await anchor.offerBody({ callId: 'nb', offererTag: 'A' }, 'public', 'internal', 'application/isup', Buffer.from('x')), { action: 'unchanged' })
  t.equal(client.stats.sent, sent0, 'nothing sent for bodies without SDP')
  const body = Buffer.concat([
    Buffer.from('--b\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b\r\nContent-Type: application/sdp\r\n\r\n'),
    callerSdp(CALLER, 40000), Buffer.from('\r\n--b--\r\n'),
  ])
  const r = await anchor.offerBody({ callId: 'mp', offererTag: 'A' }, 'public', 'internal', 'multipart/mixed;boundary=b', body)
  if (r.action !== 'anchored') return t.fail(r.action)
  t.equal(r.contentLength, r.body.length)
  t.match(r.body.toString(), /^--b\r\nContent-Type: application\/isup\r\n\r\nISUP\r\n--b\r\nContent-Type: application\/sdp\r\n\r\nv=0\r\n/)
  t.match(r.body.toString(), /\r\n--b--\r\n$/)
  t.same(sdpAddresses(r.body).all, [e1.internal])
  await anchor.delete({ callId: 'mp', offererTag: 'A' }, r.instance)
  await noSessions(t, client, e1)
})

t.test('per-set extra NG keys reach rtpengine', async (t) => {
  const { client, anchor } = setup(t, [e1.spec], { extra: { flags: ['no-rtcp-attribute'] } })
  const r = await anchor.offer({ callId: 'extra', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000), { extra: { codec: { strip: ['PCMA'] } } })
  if (r.action !== 'anchored') return t.fail(r.reason)
  t.match(r.sdp.toString(), /^m=audio \d+ RTP\/AVP 0 101\r$/m, 'PCMA stripped (set extra)')
  t.notMatch(r.sdp.toString(), /a=rtcp:/, 'no a=rtcp (global flag)')
  await anchor.delete({ callId: 'extra', offererTag: 'A' }, r.instance)
  await noSessions(t, client, e1)
})

async function silentSocket(t: Test) {
  const s = createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  const got: string[] = []
  s.on('message', (m) => got.push(m.toString('latin1')))
  t.teardown(() => s.close())
  return { spec: `udp:127.0.0.1:${s.address().port}`, got }
}

t.test('an offer that times out moves to the next instance, and the silent one is told to delete', async (t) => {
  const dead = await silentSocket(t)
  const { client, anchor, pool } = setup(t, [`${dead.spec};weight=100`, e1.spec])
  const r = await anchor.offer({ callId: 'moved', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000))
  if (r.action !== 'anchored') return t.fail(r.reason)
  t.equal(r.instance, pool.instances[1]!.id, 'anchored on the live instance')
  t.same(sdpAddresses(r.sdp).all, [e1.internal])
  t.equal(pool.instances[0]!.failStreak, 1, 'the timeout counted against the silent instance')
  await new Promise((res) => setTimeout(res, 100))
  t.ok(dead.got.some((m) => /7:command5:offer/.test(m)))
  t.ok(dead.got.some((m) => /7:command6:delete/.test(m)), 'a delete follows, in case only the reply was lost')
  await anchor.delete({ callId: 'moved', offererTag: 'A' }, r.instance)
  await noSessions(t, client, e1)
})

t.test('failure policy: reject (503 by default) or passthrough; an error reply is not retried elsewhere', async (t) => {
  const dead = await silentSocket(t)
  const rej = setup(t, [dead.spec])
  const r1 = await rej.anchor.offer({ callId: 'f1', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000))
  t.match(r1, { action: 'reject', status: 503, reason: /no reply/ })
  const pass = setup(t, [dead.spec], { onFailure: 'passthrough' })
  const r2 = await pass.anchor.offer({ callId: 'f2', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000))
  t.match(r2, { action: 'passthrough', reason: /no reply/ })
  const none = setup(t, [], { rejectStatus: 500 })
  t.match(await none.anchor.offer({ callId: 'f3', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000)), { action: 'reject', status: 500, reason: 'no rtpengine available' })
  // Bad SDP: rtpengine answers with an error; another instance would say the same.
  const two = setup(t, [`${e1.spec};weight=10`, e2.spec])
  const r4 = await two.anchor.offer({ callId: 'f4', offererTag: 'A' }, 'public', 'internal', Buffer.from('not sdp at all'))
  t.match(r4, { action: 'reject', instance: two.pool.instances[0]!.id })
  t.equal(two.client.stats.sent, 1, 'one command, no retry')
  const r5 = await two.anchor.answer({ callId: 'never', offererTag: 'A', answererTag: 'B' }, 'internal', 'public', callerSdp(BACKEND, 41000), two.pool.instances[0]!.id)
  t.match(r5, { action: 'reject', reason: /Unknown call-id|not found/i }, 'answer for an unknown call')
  t.match(await two.anchor.answer({ callId: 'x', offererTag: 'A' }, 'internal', 'public', callerSdp(BACKEND, 41000), two.pool.instances[0]!.id), { action: 'reject', reason: 'answer without a to-tag' })
  t.equal(await two.anchor.delete({ callId: 'x' }, 'zzzzzz'), true, 'unknown id: migrates to a live instance where nothing is left to delete')
  const strict = setup(t, [dead.spec], { migrateOnDown: false })
  t.equal(await strict.anchor.delete({ callId: 'x' }, 'zzzzzz'), false, 'unknown id without migration: false, no throw')
  t.equal(await strict.anchor.delete({ callId: 'x' }, strict.pool.instances[0]!.id), false, 'silent instance: false after the timeout, no throw')
  await noSessions(t, two.client, e1, e2)
})

t.test('identical concurrent requests are coalesced into one NG command', async (t) => {
  const { client, anchor } = setup(t, [e1.spec])
  const sdp = callerSdp(CALLER, 40000)
  const call = { callId: 'coal', offererTag: 'A' }
  const [a, b] = await Promise.all([anchor.offer(call, 'public', 'internal', sdp), anchor.offer(call, 'public', 'internal', Buffer.from(sdp))])
  t.equal(a, b, 'same result object')
  t.equal(client.stats.sent, 1)
  t.equal(anchor.pending, 0)
  // A retransmitted 2xx after the first answer completed: same SDP from rtpengine again.
  if (a.action !== 'anchored') return t.fail('not anchored')
  const ac = { ...call, answererTag: 'B' }
  const x = await anchor.answer(ac, 'internal', 'public', callerSdp(BACKEND, 41000), a.instance)
  const y = await anchor.answer(ac, 'internal', 'public', callerSdp(BACKEND, 41000), a.instance)
  if (x.action !== 'anchored' || y.action !== 'anchored') return t.fail('not anchored')
  t.equal(x.sdp.toString(), y.sdp.toString(), 'a repeated answer gets the same SDP')
  await anchor.delete(call, a.instance)
  await noSessions(t, client, e1)
})

t.test('instance of a call down: re-offer moves to the rendezvous choice (or fails without migration)', async (t) => {
  const e3 = await startRtpengine({ t, n: 3 })
  const { client, anchor, pool } = setup(t, [e3.spec, e2.spec])
  const [i3, i2] = pool.instances
  // Force the new call onto e3.
  pool.record(i2!, false); pool.record(i2!, false); pool.record(i2!, false)
  const off = await anchor.offer({ callId: 'mig', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000))
  if (off.action !== 'anchored') return t.fail(off.reason)
  t.equal(off.instance, i3!.id)
  pool.record(i2!, true); pool.record(i2!, true)
  e3.kill('SIGKILL')
  await e3.proc.exited
  pool.record(i3!, false); pool.record(i3!, false); pool.record(i3!, false)
  t.equal(i3!.health, 'down')
  const re = await anchor.offer({ callId: 'mig', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000, 'a=sendonly'), { instance: off.instance })
  t.match(re, { action: 'anchored', instance: i2!.id, migrated: true })
  if (re.action === 'anchored') t.same(sdpAddresses(re.sdp).all, [e2.internal])
  const ans = await anchor.answer({ callId: 'mig', offererTag: 'A', answererTag: 'B' }, 'internal', 'public', callerSdp(BACKEND, 41000), off.instance)
  t.match(ans, { action: 'anchored', instance: i2!.id, migrated: true }, 'the answer, still naming the dead id, meets the moved session')
  t.equal(await anchor.delete({ callId: 'mig', offererTag: 'A' }, off.instance), true)
  const strict = new MediaAnchor({ client, pool, migrateOnDown: false })
  t.match(await strict.offer({ callId: 'mig2', offererTag: 'A' }, 'public', 'internal', callerSdp(CALLER, 40000), { instance: i3!.id }), { action: 'reject', reason: /down or unknown/ })
  await noSessions(t, client, e2)
})

t.test('RTP flows both ways through rtpengine, each end sees only rtpengine\'s address for its side', async (t) => {
  const { client, anchor } = setup(t, [e1.spec])
  const bind = async (host: string) => {
    const s = createSocket('udp4')
    await new Promise<void>((r) => s.bind(0, host, r))
    t.teardown(() => s.close())
    const got: Array<{ from: string; seq: number }> = []
    s.on('message', (m, r) => got.push({ from: `${r.address}:${r.port}`, seq: m.readUInt16BE(2) }))
    return { s, port: s.address().port, got }
  }
  const caller = await bind(CALLER)
  const backend = await bind(BACKEND)
  const call = { callId: 'rtp-1', offererTag: 'A' }
  const off = await anchor.offer(call, 'public', 'internal', callerSdp(CALLER, caller.port))
  if (off.action !== 'anchored') return t.fail(off.reason)
  const ans = await anchor.answer({ ...call, answererTag: 'B' }, 'internal', 'public', callerSdp(BACKEND, backend.port), off.instance)
  if (ans.action !== 'anchored') return t.fail(ans.reason)
  const toBackendSide = Number(/m=audio (\d+)/.exec(off.sdp.toString())![1]) // where the backend sends
  const toCallerSide = Number(/m=audio (\d+)/.exec(ans.sdp.toString())![1]) // where the caller sends
  const rtp = (seq: number, ssrc: number) => {
    const b = Buffer.alloc(12 + 160, 0xd5)
    b[0] = 0x80; b[1] = 0x00
    b.writeUInt16BE(seq, 2); b.writeUInt32BE(seq * 160, 4); b.writeUInt32BE(ssrc, 8)
    return b
  }
  for (let i = 1; i <= 25; i++) {
    caller.s.send(rtp(i, 0x1111), toCallerSide, e1.external)
    backend.s.send(rtp(1000 + i, 0x2222), toBackendSide, e1.internal)
    await new Promise((r) => setTimeout(r, 5))
  }
  await waitFor(() => caller.got.length >= 20 && backend.got.length >= 20, { what: 'RTP both ways', timeoutMs: 3000 })
  t.ok(backend.got.every((p) => p.from === `${e1.internal}:${toBackendSide}`), 'the backend gets RTP only from rtpengine internal')
  t.ok(caller.got.every((p) => p.from === `${e1.external}:${toCallerSide}`), 'the caller gets RTP only from rtpengine external')
  t.ok(backend.got.some((p) => p.seq <= 25) && caller.got.some((p) => p.seq > 1000), 'each end gets the other\'s stream')
  t.comment(`RTP relayed: caller->backend ${backend.got.length}/25, backend->caller ${caller.got.length}/25`)
  const q = await client.query(anchor.pool.get(off.instance)!, { 'call-id': call.callId })
  const totals = q['totals'] as { RTP?: { packets?: number } } | undefined
  t.ok((totals?.RTP?.packets ?? 0) >= 40, `rtpengine counted ${totals?.RTP?.packets} RTP packets`)
  await anchor.delete(call, off.instance)
  await noSessions(t, client, e1)
})

t.test('failover: one offer serves every branch; each answer (to-tag) gets its own port toward the caller, RTP follows the last', async (t) => {
  const { client, anchor } = setup(t, [e1.spec])
  const bind = async (host: string) => {
    const s = createSocket('udp4')
    await new Promise<void>((r) => s.bind(0, host, r))
    t.teardown(() => s.close())
    const got: number[] = []
    s.on('message', (m) => got.push(m.readUInt16BE(2)))
    return { s, port: s.address().port, got }
  }
  const caller = await bind(CALLER)
  const b1 = await bind('127.0.1.7')
  const b2 = await bind('127.0.1.8')
  const call = { callId: 'failover-1', offererTag: 'A' }
  const off = await anchor.offer(call, 'public', 'internal', callerSdp(CALLER, caller.port))
  if (off.action !== 'anchored') return t.fail(off.reason)
  // Backend 1 sends 183 with SDP (early media), then fails; backend 2 answers with another to-tag.
  const a1 = await anchor.answer({ ...call, answererTag: 'B1' }, 'internal', 'public', callerSdp('127.0.1.7', b1.port), off.instance)
  const a2 = await anchor.answer({ ...call, answererTag: 'B2' }, 'internal', 'public', callerSdp('127.0.1.8', b2.port), off.instance)
  if (a1.action !== 'anchored' || a2.action !== 'anchored') return t.fail('answer not anchored')
  const port1 = Number(/m=audio (\d+)/.exec(a1.sdp.toString())![1])
  const port2 = Number(/m=audio (\d+)/.exec(a2.sdp.toString())![1])
  t.comment(`media port toward the caller: branch 1 ${port1}, branch 2 ${port2}`)
  // rtpengine 10.5 treats a new to-tag as a fork: a new port toward the caller (the caller uses the SDP
  // of the dialog it ends up in, so this is what a forking proxy would show too).
  t.not(port2, port1, 'branch 2 has its own port toward the caller')
  const rtp = (seq: number) => { const b = Buffer.alloc(172, 0xd5); b[0] = 0x80; b.writeUInt16BE(seq, 2); b.writeUInt32BE(seq * 160, 4); b.writeUInt32BE(0x3333, 8); return b }
  for (let i = 1; i <= 20; i++) {
    caller.s.send(rtp(i), port2, e1.external)
    await new Promise((r) => setTimeout(r, 5))
  }
  await waitFor(() => b2.got.length >= 15, { what: 'RTP at backend 2', timeoutMs: 3000 })
  t.equal(b1.got.length, 0, 'nothing to the abandoned backend')
  await anchor.delete(call, off.instance)
  await noSessions(t, client, e1)
})
