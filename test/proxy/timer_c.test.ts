// RFC 3261 §16.7 step 2: "If the response is a provisional response other than 100 ... the proxy MUST reset
// timer C", and §16.8: when timer C fires on a branch that rang, the proxy "MUST generate a CANCEL request
// matching that transaction"; the 487 that answers it is a non-2xx final response, which the client
// transaction ACKs (§17.1.1.3). Timer C is configured to 1 s here (181 s by default) so that the sequences
// replay in seconds: provisionals every 0.6 s would trip a timer that only the first one started.
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { answer, invite, is, sleep } from '../helpers/scripted.js'
import { rawUdp } from '../helpers/udp.js'

const TIMER_C_MS = 1000

async function setup(t: Parameters<typeof startEdge>[0], net: string) {
  const backend = await rawUdp(t, `${net}.11`)
  const edge = await startEdge(t, `${net}.10`, {
    backends: [`sip:${backend.address}:${backend.port}`],
    failover: { maxTries: 1, inviteTimeoutMs: 2000, codes: [408, 500, 503], timerCMs: TIMER_C_MS },
  })
  const caller = await rawUdp(t, `${net}.20`)
  return { backend, edge, caller }
}

t.test('every 18x restarts timer C: a call announced for longer than timer C still connects', async (t) => {
  const { backend, edge, caller } = await setup(t, '127.0.16')
  const callId = 'timer-c-reset'
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId }), edge.host, edge.port)
  const inv = await backend.next(is(callId, 'INVITE'))
  // 180 at 0, 183 at 0.6 s, 180 at 1.2 s, 183 at 1.8 s (each within timer C of the one before), 200 at 2.4 s.
  for (const status of [180, 183, 180, 183]) {
    answer(backend, inv, status, { tag: 'callee' })
    await sleep(600)
  }
  answer(backend, inv, 200, { tag: 'callee' })
  const final = await caller.next((m) => m.callId === callId && m.status >= 200, 2000)
  t.equal(final.status, 200, 'the caller gets the 200, not a 408 from timer C')
  t.equal(backend.received.filter(is(callId, 'CANCEL')).length, 0, 'no CANCEL reached the backend')
  t.equal(caller.received.filter((m) => m.callId === callId && m.status > 100 && m.status < 200).length, 4, 'all four provisionals relayed')
})

t.test('timer C fires after the last 18x: CANCEL downstream, 408 upstream, and the 487 is ACKed (each copy)', async (t) => {
  const { backend, edge, caller } = await setup(t, '127.0.17')
  const callId = 'timer-c-fires'
  caller.send(invite({ caller, ruri: `sip:100@${edge.target}`, callId }), edge.host, edge.port)
  const inv = await backend.next(is(callId, 'INVITE'))
  answer(backend, inv, 180, { tag: 'callee' })
  await sleep(500)
  const lastProvisional = Date.now()
  answer(backend, inv, 183, { tag: 'callee' })
  const cancel = await backend.next(is(callId, 'CANCEL'), 3000)
  const after = Date.now() - lastProvisional
  t.ok(after >= TIMER_C_MS - 50, `the CANCEL comes timer C after the last provisional (${after} ms)`)
  t.equal(cancel.via.branch, inv.via.branch, 'on the INVITE’s branch')
  const timeout = await caller.next((m) => m.callId === callId && m.status >= 200, 1000)
  t.equal(timeout.status, 408, 'the caller gets 408 Request Timeout')

  answer(backend, cancel, 200)
  answer(backend, inv, 487, { tag: 'callee' })
  const ack = await backend.next(is(callId, 'ACK'), 1000)
  t.equal(ack.via.branch, inv.via.branch, 'the 487 is ACKed hop by hop (§17.1.1.3)')
  t.equal(ack.getHeader('To'), inv.getHeader('To') + ';tag=callee', 'with the To tag of the 487')
  answer(backend, inv, 487, { tag: 'callee' })
  await backend.next(is(callId, 'ACK'), 1000)
  t.pass('a retransmitted 487 is ACKed again')
  await sleep(100)
  t.equal(caller.received.filter(is(callId, 487)).length, 0, 'the 487 is not relayed after the 408')
})
