// A UAS retransmits its 2xx until the ACK comes, for up to 64*T1 (RFC 3261 §13.3.1.4); RFC 6026 keeps the
// proxy's answered INVITE "accepted" that long (timer L) so that those retransmissions are forwarded and
// retransmitted INVITEs absorbed. The edge holds the full transaction 5 s, then relays 2xx retransmissions by
// the Vias alone and remembers only the transaction key. Relaying by the Vias works because RFC 3581 §4 has
// the server note the real source of a request in the Via (received, rport). The caller here is NATed: its Via
// names 127.0.x.99 (a decoy socket) while it sends from 127.0.x.20.
import t from 'tap'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import type { Teardownable } from '../helpers/proc.js'
import { answer, invite, is, sleep } from '../helpers/scripted.js'
import { rawUdp } from '../helpers/udp.js'

async function setup(t: Teardownable, net: string) {
  const backend = await rawUdp(t, `${net}.11`)
  const edge = await startEdge(t, `${net}.10`, { backends: [`sip:${backend.address}:${backend.port}`] })
  const caller = await rawUdp(t, `${net}.20`)
  const decoy = await rawUdp(t, `${net}.99`)
  const inviteText = (callId: string) =>
    invite({ caller, ruri: `sip:100@${edge.target}`, callId, sentBy: `${decoy.address}:${decoy.port}` })
  return { backend, edge, caller, decoy, inviteText }
}

/** A 200 as Asterisk sends it: its own Contact, and its address in a P-Asserted-Identity. */
function ok200(backend: Awaited<ReturnType<typeof setup>>['backend'], inv: SipMessage): void {
  answer(backend, inv, 200, { tag: 'callee', headers: [['P-Asserted-Identity', `<sip:100@${backend.address}>`]] })
}

function headerText(m: SipMessage): string {
  return m.buf.toString('latin1', m.start, m.headersEnd)
}

t.test('RFC 3581 §4: the caller’s Via is forwarded with received= and rport= filled in', async (t) => {
  const { backend, edge, caller, inviteText } = await setup(t, '127.0.18')
  caller.send(inviteText('fill-rport'), edge.host, edge.port)
  const inv = await backend.next(is('fill-rport', 'INVITE'))
  const callerVia = inv.vias[1]!
  t.equal(callerVia.received, caller.address, 'received = the source address')
  t.equal(callerVia.rport, caller.port, 'rport = the source port')
  t.equal(inv.getHeaders('Via')[1]!.split(';rport').length, 2, 'one rport parameter, now with a value')
})

t.test('a 2xx retransmitted after 5 s reaches the caller’s real address, hidden like the first (RFC 6026 timer L)', async (t) => {
  const { backend, edge, caller, decoy, inviteText } = await setup(t, '127.0.19')
  caller.send(inviteText('late-2xx'), edge.host, edge.port)
  const inv = await backend.next(is('late-2xx', 'INVITE'))
  ok200(backend, inv)
  const first = await caller.next(is('late-2xx', 200))
  await sleep(5500) // the ACK got lost; the UAS keeps retransmitting (T2 = 4 s apart), here once, after 5.5 s
  ok200(backend, inv)
  const again = await caller.next(is('late-2xx', 200), 1000)
  t.equal(decoy.received.length, 0, 'nothing went to the Via’s sent-by')
  t.equal(again.getHeader('Contact'), first.getHeader('Contact'), 'the same Contact alias as the first 2xx')
  t.notOk(headerText(again).includes(backend.address), 'no header names the backend')
})

t.test('a 2xx whose branch the edge no longer holds goes by received/rport, with the same topology hiding', async (t) => {
  // Past 64*T1, or answered through another edge sharing the secret, or from before a restart: the edge has
  // only the Vias to go by.
  const { backend, edge, caller, decoy, inviteText } = await setup(t, '127.0.20')
  caller.send(inviteText('stateless-2xx'), edge.host, edge.port)
  const inv = await backend.next(is('stateless-2xx', 'INVITE'))
  const orphan = parseMessage(Buffer.from(inv.buf.toString('latin1', inv.start, inv.end).replace(/branch=z9hG4bK[^;\r,]+/, 'branch=z9hG4bKforgotten'), 'latin1'))
  ok200(backend, orphan)
  const got = await caller.next(is('stateless-2xx', 200), 1000)
  t.equal(decoy.received.length, 0, 'nothing went to the Via’s sent-by')
  t.equal(got.vias.length, 1, 'the edge’s Via removed')
  t.match(got.getHeader('Contact'), new RegExp(`^<sip:${edge.host}:${edge.port};ct=`), 'Contact replaced by an edge alias')
  t.notOk(headerText(got).includes(backend.address), 'no header names the backend')
})

t.test('RFC 6026 §7.1: an INVITE retransmitted 5.5 s after its 2xx is absorbed, not a new call', async (t) => {
  const { backend, edge, caller, inviteText } = await setup(t, '127.0.21')
  const text = inviteText('late-invite')
  caller.send(text, edge.host, edge.port)
  const inv = await backend.next(is('late-invite', 'INVITE'))
  ok200(backend, inv)
  await caller.next(is('late-invite', 200))
  await sleep(5500) // the caller saw neither the 100 nor the 200 (timer A: 0.5, 1.5, 3.5, 7.5 s ...)
  caller.send(text, edge.host, edge.port)
  await sleep(500)
  t.equal(backend.received.filter(is('late-invite', 'INVITE')).length, 1, 'the backend got the INVITE once')
  t.equal(edge.edge.proxy.dialogs.size, 1, 'one call')
})
