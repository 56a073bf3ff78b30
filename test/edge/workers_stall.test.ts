// A worker that stalls under load (CPU starved, a long GC pause: here SIGSTOP for a moment) with `--workers 2`:
// what reaches it meanwhile waits in its sockets and is taken when it runs again — the backend's answers to its
// requests on its own internal port, callers' messages on the shared listener, anything another worker hands it
// on its relay socket. A 200 to a BYE has no second chance (the backend answered and ended the call; it ignores
// the retransmitted BYE), so a datagram dropped for a full buffer is a failed call: every one of these sockets
// gets the listeners' 4 MB buffer, not the ~200 KB default (which dropped ~160 datagrams in this test).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import t from 'tap'
import { metricSamples, startCliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort } from '../helpers/net.js'
import { describe, runUac, startUas } from '../helpers/sipp.js'

/** Datagrams dropped (receive buffer full) on the UDP sockets the processes `pids` hold, from /proc/net/udp. */
function udpDrops(pids: number[]): number {
  const inodes = new Set<string>()
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
        if (m) inodes.add(m[1]!)
      } catch {
        // closed meanwhile
      }
    }
  }
  let drops = 0
  for (const line of readFileSync('/proc/net/udp', 'latin1').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length >= 13 && inodes.has(f[9]!)) drops += Number(f[12])
  }
  return drops
}

t.test('a worker stalled for 1.5 s under load: nothing sent to it meanwhile is dropped, every call completes', async (t) => {
  const answering = await startUas({ scenario: 'uas', ip: '127.0.1.65', t, traceMsg: false })
  const port = await freePort()
  const admin = await freeTcpPort()
  const edge = await startCliEdge(t, ['--workers', '2', '--listen', `udp:127.0.0.1:${port}`, '--backend', `sip:${answering.id}`, '--no-probe', '--admin', `127.0.0.1:${admin}`])
  const pids = await Promise.all([0, 1].map(async (w) => (await edge.waitLog((l) => l.msg === 'sipedge worker running' && l.worker === w)).pid as number))
  const warm = await runUac({ scenario: 'uac', target: `127.0.0.1:${port}`, calls: 20, rate: 50, t, traceMsg: false, extra: ['-t', 'un', '-max_socket', '64'] })
  t.equal(warm.successful, 20)
  const started = [0, 0]
  for (const s of await metricSamples(admin, 'sipedge_worker_calls_started_total')) started[Number(/worker="(\d)"/.exec(s.labels)![1])] = s.value
  t.ok(started[0]! > 0 && started[1]! > 0, `both workers carry calls: ${started}`)
  t.equal(udpDrops(pids), 0, 'no drops before')
  const victim = 1
  const load = runUac({ scenario: 'uac', target: `127.0.0.1:${port}`, calls: 300, rate: 150, t, traceMsg: false, extra: ['-t', 'un', '-max_socket', '64'] })
  await new Promise((r) => setTimeout(r, 700))
  process.kill(pids[victim]!, 'SIGSTOP')
  await new Promise((r) => setTimeout(r, 1500))
  process.kill(pids[victim]!, 'SIGCONT')
  const r = await load
  t.equal(udpDrops(pids), 0, `worker ${victim} stalled: no datagram dropped on the workers' sockets (listeners, own ports, relays)`)
  t.equal(r.successful, 300, `worker ${victim} stalled: every call completed (${describe(r)})`)
})
