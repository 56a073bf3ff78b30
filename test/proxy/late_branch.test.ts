// RFC 3261 §9.1 and §16.7 step 5 / step 10: a branch the edge gave up on (failover timer, no provisional) can
// still answer. "If no provisional response has been received, the CANCEL request MUST NOT be sent; rather,
// the client MUST wait for the arrival of a provisional response before sending the request": so the held
// CANCEL goes out when that provisional arrives. And "any 2xx responses [are] forwarded immediately", from any
// branch; the other branches still pending are then cancelled.
import t from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import type { Teardownable } from '../helpers/proc.js'
import { answer, cancelFor, invite, is, sleep } from '../helpers/scripted.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

/** An edge in front of two silent scripted backends, failing over after 300 ms without a provisional. */
async function setup(t: Teardownable, net: string) {
  const b1 = await rawUdp(t, `${net}.11`)
  const b2 = await rawUdp(t, `${net}.12`)
  const edge = await startEdge(t, `${net}.10`, {
    backends: [`sip:${b1.address}:${b1.port}`, `sip:${b2.address}:${b2.port}`],
    failover: { maxTries: 2, inviteTimeoutMs: 300, codes: [408, 500, 503], timerCMs: 181000 },
  })
  const caller = await rawUdp(t, `${net}.20`)
  return { b1, b2, edge, caller }
}

/** The backend that got the INVITE first (it stays silent: the abandoned branch) and the one failed over to. */
async function branches(b1: RawUdp, b2: RawUdp, callId: string): Promise<{ first: RawUdp; firstInvite: SipMessage; second: RawUdp; secondInvite: SipMessage }> {
  const invited = (b: RawUdp) => b.next(is(callId, 'INVITE'), 3000).then((m) => ({ b, m }))
  const a = invited(b1)
  const b = invited(b2)
  const first = await Promise.race([a, b])
  const second = await (first.b === b1 ? b : a)
  return { first: first.b, firstInvite: first.m, second: second.b, secondInvite: second.m }
}

t.test('a failed-over branch that rings late is CANCELled at once, its 487 ACKed, nothing of it reaches the caller', async (t) => {
  const { b1, b2, edge, caller } = await setup(t, '127.0.13')
  const callId = 'late-ring'
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId }), edge.host, edge.port)
  const { first, firstInvite, second, secondInvite } = await branches(b1, b2, callId)
  t.ok(secondInvite.via.branch !== firstInvite.via.branch, 'failover after 300 ms of silence: a new branch to the other backend')
  answer(second, secondInvite, 180, { tag: 'b2' })
  await caller.next(is(callId, 180))

  // The abandoned backend wakes up: 100 and 180 at once.
  answer(first, firstInvite, 100)
  answer(first, firstInvite, 180, { tag: 'b1' })
  const cancel = await first.next(is(callId, 'CANCEL'), 1000)
  t.equal(cancel.via.branch, firstInvite.via.branch, 'the CANCEL names the abandoned branch (§9.1)')
  t.equal(cancel.requestUri, firstInvite.requestUri, 'same Request-URI as the INVITE it cancels')
  t.equal(second.received.filter(is(callId, 'CANCEL')).length, 0, 'the live branch is not cancelled')

  answer(first, cancel, 200)
  answer(first, firstInvite, 487, { tag: 'b1' })
  const ack = await first.next(is(callId, 'ACK'), 1000)
  t.equal(ack.via.branch, firstInvite.via.branch, 'the 487 is ACKed hop by hop on its branch (§17.1.1.3)')

  answer(second, secondInvite, 200, { tag: 'b2' })
  const ok = await caller.next(is(callId, 200))
  t.equal(ok.toTag, 'b2', 'the caller gets the live branch’s answer')
  await sleep(100)
  const fromFirst = caller.received.filter((m) => m.callId === callId && !m.isRequest && m.toTag === 'b1')
  t.same(fromFirst.map((m) => m.status), [], 'no 180 or 487 of the abandoned branch reaches the caller')
})

t.test('a 2xx from the abandoned branch is relayed at once (and its retransmission); the other branch is cancelled', async (t) => {
  const { b1, b2, edge, caller } = await setup(t, '127.0.14')
  const callId = 'late-answer'
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId }), edge.host, edge.port)
  const { first, firstInvite, second, secondInvite } = await branches(b1, b2, callId)
  answer(second, secondInvite, 180, { tag: 'b2' })
  await caller.next(is(callId, 180))

  // The stalled backend answers after all (its agent picked up), with no provisional first.
  const sentAt = Date.now()
  answer(first, firstInvite, 200, { tag: 'b1' })
  const ok = await caller.next(is(callId, 200), 1000)
  t.equal(ok.toTag, 'b1', 'the late 2xx reaches the caller (§16.7 step 5)')
  t.ok(Date.now() - sentAt < 500, 'at once, not seconds later')
  t.equal(ok.vias.length, 1, 'with only the caller’s Via')
  t.notOk(ok.getHeader('Contact')!.includes(first.address), 'and the Contact hidden behind an edge alias')

  const cancel = await second.next(is(callId, 'CANCEL'), 1000)
  t.equal(cancel.via.branch, secondInvite.via.branch, 'the branch still ringing is CANCELled (§16.7 step 10)')
  answer(second, cancel, 200)
  answer(second, secondInvite, 487, { tag: 'b2' })
  await second.next(is(callId, 'ACK'), 1000)
  t.pass('its 487 is ACKed and not relayed')

  answer(first, firstInvite, 200, { tag: 'b1' })
  const again = await caller.next(is(callId, 200), 1000)
  t.equal(again.toTag, 'b1', 'the 2xx retransmission follows')
  await sleep(100)
  t.equal(caller.received.filter(is(callId, 487)).length, 0, 'no 487 upstream after the 2xx')
  t.equal(edge.edge.proxy.dialogs.size, 1, 'one dialog, on the backend that answered')
})

t.test('a CANCEL from the caller while the first branch is abandoned: both branches end, one 487 upstream', async (t) => {
  const { b1, b2, edge, caller } = await setup(t, '127.0.15')
  const callId = 'late-cancel'
  const inv = invite({ caller, ruri: `sip:100@${edge.target}`, callId })
  caller.send(inv, edge.host, edge.port)
  const { first, firstInvite, second, secondInvite } = await branches(b1, b2, callId)
  answer(second, secondInvite, 180, { tag: 'b2' })
  await caller.next(is(callId, 180))
  caller.send(cancelFor(inv), edge.host, edge.port)
  const c2 = await second.next(is(callId, 'CANCEL'), 1000)
  answer(second, c2, 200)
  answer(second, secondInvite, 487, { tag: 'b2' })
  t.equal((await caller.next(is(callId, 487), 1000)).toTag, 'b2', 'the caller gets the live branch’s 487')
  answer(first, firstInvite, 180, { tag: 'b1' })
  const c1 = await first.next(is(callId, 'CANCEL'), 1000)
  t.equal(c1.via.branch, firstInvite.via.branch, 'the abandoned branch is CANCELled when it rings')
  answer(first, c1, 200)
  answer(first, firstInvite, 487, { tag: 'b1' })
  await first.next(is(callId, 'ACK'), 1000)
  await sleep(100)
  t.equal(caller.received.filter(is(callId, 487)).length, 1, 'one 487 upstream')
})
