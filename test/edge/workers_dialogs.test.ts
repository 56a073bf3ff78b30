// `sipedge --workers 2` toward a backend that behaves as Asterisk does on the wire: it answers a request to the
// address in its top Via (rport: the source port), and sends its in-dialog requests along the route set the
// Record-Route gave it. Each worker sends its requests to the backends from a port of its own and names it in its
// Via (issue 15), so every answer comes straight back to the worker that owns the transaction: no response is
// handed between workers. The shared port stays what Record-Route names (any worker may take a dialog's request,
// the Route says which one holds it): the backend's BYEs, which all come from its one port and so land on one
// worker, reach every caller, those of the other worker's dialogs handed over.
import t from 'tap'
import { buildResponse, newTag, type SipMessage } from '../../src/sip/index.js'
import { metricSamples, startCliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { rawUdp, request, type RawUdp } from '../helpers/udp.js'

const EDGE = '127.0.0.1'
const BACKEND = '127.0.1.68'
const CALLERS = '127.0.0.68'
const CALLS = 24

const handedOver = async (admin: number): Promise<number> =>
  (await metricSamples(admin, 'sipedge_worker_handed_over_total')).reduce((a, s) => a + s.value, 0)

/** The Asterisk stand-in: 200 to each INVITE (to its Via's received/rport address), the INVITEs kept. */
function answeringBackend(be: RawUdp): SipMessage[] {
  const invites: SipMessage[] = []
  be.socket.on('message', (_buf, rinfo) => {
    const m = be.received[be.received.length - 1]
    if (!m || !m.isRequest || m.method !== 'INVITE') return
    invites.push(m)
    const headers: Array<[string, string]> = [['Contact', `<sip:queue@${be.address}:${be.port}>`], ...m.getHeaders('Record-Route').map((r): [string, string] => ['Record-Route', r])]
    be.socket.send(buildResponse(m, 200, undefined, { toTag: newTag(), headers }), rinfo.port, rinfo.address)
  })
  return invites
}

t.test('a backend answers each worker at the port in its Via; its BYEs follow the route set to the shared port', async (t) => {
  const be = await rawUdp(t, BACKEND)
  const invites = answeringBackend(be)
  const port = await freePort()
  const admin = await freeTcpPort()
  await startCliEdge(t, ['--workers', '2', '--listen', `udp:${EDGE}:${port}`, '--backend', `sip:${BACKEND}:${be.port}`, '--no-probe', '--admin', `127.0.0.1:${admin}`])
  await waitFor(async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200, { what: 'the edge ready' })

  // One socket per caller: the kernel spreads the source ports over the two workers.
  const callers = await Promise.all(Array.from({ length: CALLS }, () => rawUdp(t, CALLERS)))
  const oks = await Promise.all(callers.map(async (c, i) => {
    c.send(request({ method: 'INVITE', ruri: `sip:bob@${EDGE}:${port}`, from: { host: c.address, port: c.port }, callId: `wd-${i}` }), EDGE, port)
    return c.next((m) => m.status === 200, 5000)
  }))
  t.equal(oks.length, CALLS, 'every caller got the backend\'s 200')

  const viaPorts = new Set(invites.map((m) => m.via.port))
  t.equal(invites.length, CALLS, 'the backend got every INVITE once')
  t.equal(viaPorts.size, 2, `two Via ports, one per worker: ${[...viaPorts]}`)
  t.notOk(viaPorts.has(port), 'neither is the shared listener port')
  t.ok(invites.every((m) => m.via.host === EDGE), 'on the listener\'s address')
  t.equal(await handedOver(admin), 0, 'no response was handed between workers: each came back to its own worker')
  const rrShared = invites.filter((m) => (m.getHeader('Record-Route') ?? '').startsWith(`<sip:${EDGE}:${port};`))
  t.equal(rrShared.length, CALLS, 'every Record-Route names the shared port')

  // ACK from each caller along its route set; then the backend hangs up every call along the dialog's route set.
  for (const [i, c] of callers.entries()) {
    const ok = oks[i]!
    const route = ok.getHeaders('Record-Route').join(', ')
    c.send(request({ method: 'ACK', ruri: ok.contacts[0]!.uriText, from: { host: c.address, port: c.port }, callId: `wd-${i}`, toTag: ok.toTag, lines: [`Route: ${route}`] }), EDGE, port)
  }
  // One BYE goes instead to the other worker's own port (a backend answering the wrong Via): that worker hands
  // it to the one the Route names, as received on the shared listener (the holder has no socket on that port).
  const swOf = (m: SipMessage): string => /;sw=(\d+)/.exec(m.getHeader('Record-Route') ?? '')![1]!
  const stray = invites[0]!
  const otherPort = invites.find((m) => swOf(m) !== swOf(stray))!.via.port!
  for (const inv of invites) {
    const rrs = inv.getHeaders('Record-Route').flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim())
    const toTag = newTag()
    be.send([
      `BYE ${inv.contacts[0]!.uriText} SIP/2.0`,
      `Via: SIP/2.0/UDP ${be.address}:${be.port};branch=z9hG4bK-bye-${inv.callId};rport`,
      `Route: ${rrs.join(', ')}`,
      'Max-Forwards: 70',
      `From: ${inv.getHeader('To')};tag=${toTag}`,
      `To: ${inv.getHeader('From')}`,
      `Call-ID: ${inv.callId}`,
      'CSeq: 2 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'), EDGE, inv === stray ? otherPort : port)
  }
  const byes = await Promise.all(callers.map((c) => c.next((m) => m.method === 'BYE', 5000)))
  for (const [i, c] of callers.entries()) c.socket.send(buildResponse(byes[i]!, 200), port, EDGE)
  await waitFor(() => be.received.filter((m) => m.cseq.method === 'BYE' && m.status === 200).length === CALLS, { timeoutMs: 5000, what: 'every BYE answered 200 at the backend' })
  t.pass('every caller got the backend\'s BYE, and its 200 went back')
  t.ok((await handedOver(admin)) > 0, 'the BYEs that landed on the worker not holding the dialog were handed over')
  await waitFor(async () => (await metricSamples(admin, 'sipedge_calls_active')).reduce((a, s) => a + s.value, 0) === 0, { timeoutMs: 3000, what: 'no call left on either worker' })
})
