// Smaller deviations from RFC 3261 / RFC 4320 / RFC 3326, each replayed with a scripted caller and backend.
import t from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import type { Teardownable } from '../helpers/proc.js'
import { answer, cancelFor, inDialog, invite, is, sleep } from '../helpers/scripted.js'
import { rawUdp } from '../helpers/udp.js'

async function setup(t: Teardownable, net: string) {
  const backend = await rawUdp(t, `${net}.11`)
  const edge = await startEdge(t, `${net}.10`, { backends: [`sip:${backend.address}:${backend.port}`] })
  const caller = await rawUdp(t, `${net}.20`)
  return { backend, edge, caller }
}

/** INVITE, 200, ACK through the edge; returns the 200 as the caller got it (its route set and Contact alias). */
async function establish(s: Awaited<ReturnType<typeof setup>>, callId: string): Promise<SipMessage> {
  const { backend, edge, caller } = s
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId }), edge.host, edge.port)
  const inv = await backend.next(is(callId, 'INVITE'))
  answer(backend, inv, 200, { tag: 'callee' })
  const ok = await caller.next(is(callId, 200))
  caller.send(inDialog('ACK', ok, { caller }), edge.host, edge.port)
  await backend.next(is(callId, 'ACK'))
  return ok
}

t.test('RFC 4320 §4.2: no 408 for a non-INVITE request whose next hop never answered (timer F)', async (t) => {
  const s = await setup(t, '127.0.22')
  const { backend, edge, caller } = s
  const ok = await establish(s, 'no-408')
  caller.send(inDialog('BYE', ok, { caller, cseq: 2 }), edge.host, edge.port)
  await backend.next(is('no-408', 'BYE')) // and the backend never answers it
  // Timer F is 64*T1 = 32 s: drive the edge's timer wheel past it instead of waiting.
  edge.edge.proxy.wheel.advance(Date.now() + 33_000)
  await sleep(300)
  t.same(caller.received.filter((m) => m.callId === 'no-408' && m.cseq.method === 'BYE').map((m) => m.status), [], 'no response at all upstream')
  t.equal(edge.edge.proxy.busy, 0, 'the transaction is gone')
})

t.test('RFC 3261 §16.3 step 5: 420 lists the unsupported option tags in Unsupported', async (t) => {
  const { edge, caller } = await setup(t, '127.0.23')
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId: 'ext', lines: ['Proxy-Require: foo, bar', 'Proxy-Require: baz'] }), edge.host, edge.port)
  const r = await caller.next((m) => m.callId === 'ext' && m.status >= 200)
  t.equal(r.status, 420, '420 Bad Extension')
  t.equal(r.getHeader('Unsupported'), 'foo, bar, baz', 'Unsupported: every tag the edge does not support')
})

t.test('RFC 3261 §17.2.1: a proxied re-INVITE gets a 100 Trying from the edge', async (t) => {
  const s = await setup(t, '127.0.24')
  const { backend, edge, caller } = s
  const ok = await establish(s, 'reinvite-100')
  caller.send(inDialog('INVITE', ok, { caller, cseq: 2 }), edge.host, edge.port)
  const trying = await caller.next((m) => m.callId === 'reinvite-100' && m.cseq.method === 'INVITE' && m.status === 100, 1000)
  t.equal(trying.cseq.seq, 2, '100 Trying for the re-INVITE, before the far end answers')
  const reinv = await backend.next((m) => is('reinvite-100', 'INVITE')(m) && m.cseq.seq === 2)
  answer(backend, reinv, 200)
  t.equal((await caller.next((m) => m.callId === 'reinvite-100' && m.cseq.seq === 2 && m.status === 200)).status, 200, 'then its 200')
})

t.test('RFC 3261 §16.6 step 3: a request without Max-Forwards is forwarded with Max-Forwards: 70', async (t) => {
  const { backend, edge, caller } = await setup(t, '127.0.25')
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId: 'no-mf' }).replace('Max-Forwards: 70\r\n', ''), edge.host, edge.port)
  const inv = await backend.next(is('no-mf', 'INVITE'))
  t.equal(inv.maxForwards, 70, 'Max-Forwards: 70 added (not 69)')
})

t.test('RFC 3326: the CANCEL sent downstream carries the Reason of the caller’s CANCEL', async (t) => {
  const { backend, edge, caller } = await setup(t, '127.0.26')
  const reason = 'SIP;cause=200;text="Call completed elsewhere"'
  // Ringing: the CANCEL goes on at once.
  const ringing = invite({ caller, ruri: `sip:100@${edge.target}`, callId: 'reason-ringing' })
  caller.send(ringing, edge.host, edge.port)
  const inv1 = await backend.next(is('reason-ringing', 'INVITE'))
  answer(backend, inv1, 180, { tag: 'callee' })
  await caller.next(is('reason-ringing', 180))
  caller.send(cancelFor(ringing, [`Reason: ${reason}`]), edge.host, edge.port)
  const c1 = await backend.next(is('reason-ringing', 'CANCEL'))
  t.equal(c1.getHeader('Reason'), reason, 'the Reason is copied')
  // Not ringing yet: the CANCEL waits for a provisional (§9.1), and still carries the Reason.
  const silent = invite({ caller, ruri: `sip:100@${edge.target}`, callId: 'reason-held' })
  caller.send(silent, edge.host, edge.port)
  const inv2 = await backend.next(is('reason-held', 'INVITE'))
  caller.send(cancelFor(silent, [`Reason: ${reason}`]), edge.host, edge.port)
  await caller.next((m) => m.callId === 'reason-held' && m.cseq.method === 'CANCEL' && m.status === 200)
  answer(backend, inv2, 180, { tag: 'callee' })
  const c2 = await backend.next(is('reason-held', 'CANCEL'))
  t.equal(c2.getHeader('Reason'), reason, 'the held CANCEL carries it too')
  // No Reason upstream, none downstream.
  const plain = invite({ caller, ruri: `sip:100@${edge.target}`, callId: 'reason-none' })
  caller.send(plain, edge.host, edge.port)
  const inv3 = await backend.next(is('reason-none', 'INVITE'))
  answer(backend, inv3, 180, { tag: 'callee' })
  await caller.next(is('reason-none', 180))
  caller.send(cancelFor(plain), edge.host, edge.port)
  t.equal((await backend.next(is('reason-none', 'CANCEL'))).getHeader('Reason'), undefined, 'no Reason invented')
})
