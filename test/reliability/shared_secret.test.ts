// Scale-out without shared state: two edges holding the same secret behind one advertised address (the
// VIP / DNS name a load balancer would answer for). A call set up through edge A is ACKed and hung up
// through edge B, which has never seen it: B routes from the Record-Route token alone, to the backend that
// took the call. An edge with another secret refuses the same Route with 403 and forwards nothing.
import t from 'tap'
import { TEST_SECRET, startEdge } from '../helpers/edge.js'
import { freePort } from '../helpers/net.js'
import type { Teardownable } from '../helpers/proc.js'
import { rawUdp, request, type RawUdp } from '../helpers/udp.js'
import type { SipMessage } from '../../src/sip/index.js'
import { ScriptedBackend } from './fixtures/raw_backend.js'
import { recordCase } from './fixtures/results.js'

const VIP = '127.0.6.29:5060'
const me = (u: RawUdp) => ({ host: u.address, port: u.port })

async function edgeAt(t: Teardownable, host: string, backends: string[], secret = TEST_SECRET) {
  const port = await freePort(host)
  return startEdge(t, host, { listen: [`udp:${host}:${port} advertise ${VIP}`], backends, secret }, port)
}

/** The in-dialog request a UAC builds from the 200: R-URI = remote target, Route = the route set. */
function inDialog(method: 'ACK' | 'BYE', ok: SipMessage, caller: RawUdp, callId: string, cseq: number): string {
  const target = ok.contacts[0]!.uriText
  const routes = ok.recordRoutes.slice().reverse().map((r) => `Route: <${r.uriText}>`)
  return request({ method, ruri: target, from: me(caller), callId, cseq, toTag: ok.toTag, lines: routes })
}

t.test('a call set up through edge A is ended through edge B (same secret, no shared state)', async (t) => {
  const backends = [await ScriptedBackend.start('127.0.6.22'), await ScriptedBackend.start('127.0.6.23')]
  t.teardown(() => backends.forEach((b) => b.stop()))
  const uris = backends.map((b) => b.uri)
  const a = await edgeAt(t, '127.0.6.20', uris)
  // B knows the backends in the other order: only the token can pick the right one.
  const b = await edgeAt(t, '127.0.6.21', uris.slice().reverse())
  const caller = await rawUdp(t, '127.0.6.24')

  const calls = 6
  let routedRight = 0
  let byeAnswered = 0
  const startedAt = Date.now()
  for (let i = 0; i < calls; i++) {
    const callId = `pair-${i}-${startedAt}`
    caller.send(request({ method: 'INVITE', ruri: `sip:bob@${VIP}`, from: me(caller), callId }), a.host, a.port)
    const ok = await caller.next((m) => m.callId === callId && m.status === 200)
    t.ok(ok.recordRoutes.length > 0, `call ${i}: the 200 carries the edge's Record-Route`)
    t.notMatch(ok.contacts[0]!.uriText, /127\.0\.6\.2[23]/, `call ${i}: no backend address in the Contact`)
    const owner = backends.find((be) => be.count('INVITE', callId) > 0)!
    const other = backends.find((be) => be !== owner)!

    caller.send(inDialog('ACK', ok, caller, callId, 1), b.host, b.port)
    caller.send(inDialog('BYE', ok, caller, callId, 2), b.host, b.port)
    const byeOk = await caller.next((m) => m.callId === callId && m.cseq.method === 'BYE', 3000).catch(() => undefined)
    if (byeOk?.status === 200) byeAnswered++
    t.equal(byeOk?.status, 200, `call ${i}: the BYE sent to B is answered 200`)
    t.equal(owner.count('ACK', callId), 1, `call ${i}: the ACK reached the backend that took the call`)
    t.equal(owner.count('BYE', callId), 1, `call ${i}: the BYE reached the backend that took the call`)
    t.equal(other.count('ACK', callId) + other.count('BYE', callId), 0, `call ${i}: nothing went to the other backend`)
    if (owner.count('BYE', callId) === 1 && other.count('BYE', callId) === 0) routedRight++
  }
  t.same(backends.map((be) => be.count('INVITE')), [calls / 2, calls / 2], 'A spread the calls over both backends')
  t.equal(b.edge.proxy.dialogs.size, 0, 'B keeps no dialog for calls it only ended')

  // An edge with another secret behind the same address: the token does not open, 403, nothing forwarded.
  const c = await edgeAt(t, '127.0.6.25', uris, 'another-secret-0123456789abcdef')
  const callId = `foreign-${startedAt}`
  caller.send(request({ method: 'INVITE', ruri: `sip:bob@${VIP}`, from: me(caller), callId }), a.host, a.port)
  const ok = await caller.next((m) => m.callId === callId && m.status === 200)
  const before = backends.reduce((n, be) => n + be.seen.length, 0)
  caller.send(inDialog('BYE', ok, caller, callId, 2), c.host, c.port)
  const refused = await caller.next((m) => m.callId === callId && m.cseq.method === 'BYE')
  t.equal(refused.status, 403, 'an edge with another secret answers 403')
  await new Promise((r) => setTimeout(r, 100))
  const after = backends.reduce((n, be) => n + be.seen.length, 0)
  t.equal(after, before, 'and forwards nothing to any backend')
  // End the call properly through B so nothing lingers.
  caller.send(inDialog('BYE', ok, caller, callId, 3), b.host, b.port)
  await caller.next((m) => m.callId === callId && m.cseq.method === 'BYE' && m.status === 200)

  recordCase('two-edges-shared-secret', {
    group: 'faults',
    summary: `${calls} calls set up through edge A, ACKed and hung up through edge B (same secret, same advertised address ${VIP}, backends listed in the other order); then a BYE through an edge with another secret`,
    figures: {
      'calls': calls,
      'BYE answered 200 via B': byeAnswered,
      'ACK+BYE at the backend that took the call': routedRight,
      'dialogs held by B': b.edge.proxy.dialogs.size,
      'other secret: status': refused.status,
      'other secret: requests forwarded': after - before,
    },
    passed: byeAnswered === calls && routedRight === calls && refused.status === 403 && after === before,
  })
})
