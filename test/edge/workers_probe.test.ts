// `sipedge --workers 2` probes the backends once per edge, not once per worker: worker 0 sends the OPTIONS and
// the primary hands the health it finds to the other workers with the least-calls counts (every 500 ms). A
// backend that stops answering is down on every worker: no worker sends it a call, also the one that never
// probed it.
import t from 'tap'
import { buildResponse, newTag, type SipMessage } from '../../src/sip/index.js'
import { metricSamples, startCliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { rawUdp, request, type RawUdp } from '../helpers/udp.js'

const EDGE = '127.0.0.1'
const CALLS = 24
const INTERVAL_MS = 300

/** A backend that answers OPTIONS and INVITE with 200; keeps where each OPTIONS came from. */
function answering(be: RawUdp): { options: string[]; invites: SipMessage[] } {
  const seen = { options: [] as string[], invites: [] as SipMessage[] }
  be.socket.on('message', (_buf, rinfo) => {
    const m = be.received[be.received.length - 1]
    if (!m || !m.isRequest) return
    if (m.method === 'OPTIONS') seen.options.push(`${rinfo.address}:${rinfo.port}`)
    else if (m.method === 'INVITE') seen.invites.push(m)
    else return
    const headers: Array<[string, string]> = m.method === 'INVITE' ? [['Contact', `<sip:q@${be.address}:${be.port}>`]] : []
    be.socket.send(buildResponse(m, 200, undefined, { toTag: newTag(), headers }), rinfo.port, rinfo.address)
  })
  return seen
}

t.test('one worker probes; a backend gone silent is down on both workers', async (t) => {
  const alive = await rawUdp(t, '127.0.1.86')
  const silent = await rawUdp(t, '127.0.1.87') // receives, never answers
  const seen = answering(alive)
  const port = await freePort()
  const admin = await freeTcpPort()
  await startCliEdge(t, [
    '--workers', '2', '--listen', `udp:${EDGE}:${port}`, '--backend', `sip:${alive.address}:${alive.port}`, '--backend', `sip:${silent.address}:${silent.port}`,
    '--probe-interval-ms', String(INTERVAL_MS), '--probe-timeout-ms', '200', '--probe-fail-threshold', '2', '--admin', `127.0.0.1:${admin}`,
  ])
  const silentId = `sip:${silent.address}:${silent.port}`
  await waitFor(async () => {
    const list = (await (await fetch(`http://127.0.0.1:${admin}/backends`)).json()) as Array<{ id: string; health: string }>
    return list.find((b) => b.id === silentId)?.health === 'down'
  }, { timeoutMs: 5000, what: 'the silent backend down' })

  // Over 3 s: one prober's worth of OPTIONS (one every 300 ms), from one socket.
  const from = seen.options.length
  await new Promise((r) => setTimeout(r, 3000))
  const probes = seen.options.slice(from)
  t.ok(probes.length >= 7 && probes.length <= 13, `OPTIONS in 3 s at a 300 ms interval, one prober: ${probes.length}`)
  t.equal(new Set(probes).size, 1, `all from one socket: ${[...new Set(probes)]}`)

  // Calls from many source ports land on both workers; none goes to the silent backend, on either worker.
  const callers = await Promise.all(Array.from({ length: CALLS }, () => rawUdp(t, '127.0.0.86')))
  const oks = await Promise.all(callers.map(async (c, i) => {
    c.send(request({ method: 'INVITE', ruri: `sip:bob@${EDGE}:${port}`, from: { host: c.address, port: c.port }, callId: `wp-${i}` }), EDGE, port)
    return c.next((m) => m.status === 200, 5000)
  }))
  t.equal(oks.length, CALLS, 'every call answered')
  t.equal(seen.invites.length, CALLS, 'all by the backend that is up')
  t.notOk(silent.received.some((m) => m.method === 'INVITE'), 'no INVITE reached the silent backend')
  const started = [0, 0]
  for (const s of await metricSamples(admin, 'sipedge_worker_calls_started_total')) started[Number(/worker="(\d)"/.exec(s.labels)![1])] = s.value
  t.ok(started[0]! > 0 && started[1]! > 0, `both workers dispatched calls: ${started}`)
})
