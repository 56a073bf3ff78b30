// Operating a live edge (the binary, a child process): every counter of the README's metrics table against a
// scripted run, the two-sided example binding, SIGTERM timing and exit codes, why a backend went down.
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runCaller } from '../../src/edge/caller.js'
import { StandInBackend } from '../../src/edge/standin.js'
import { CLI, startCliEdge, watch } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort, freeUdpPort } from '../helpers/net.js'
import { spawnTracked, type Teardownable } from '../helpers/proc.js'
import { rawUdp, request } from '../helpers/udp.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

async function standIn(t: Teardownable, host: string, failWith?: number): Promise<StandInBackend> {
  const b = new StandInBackend({ host, port: 0, ...(failWith ? { failWith } : {}) })
  await b.start()
  t.teardown(() => b.stop())
  return b
}

t.test('every counter of the README metrics table moves with the traffic that should move it', async (t) => {
  const EDGE = '127.0.13.1'
  const fail = await standIn(t, '127.0.13.11', 503)
  const ok = await standIn(t, '127.0.13.12')
  const deadTcp = await freeTcpPort('127.0.13.20') // nobody listens: connection refused
  const hep = createSocket('udp4')
  await new Promise<void>((r) => hep.bind(0, '127.0.13.2', () => r()))
  t.teardown(() => hep.close())
  const port = await freePort(EDGE)
  const adminPort = await freeTcpPort(EDGE)
  await startCliEdge(t, [
    '--listen', `udp:${EDGE}:${port}`, '--listen', `tcp:${EDGE}:${port}`,
    // Tried in priority order: 503 (failover), then the good one; the refused TCP one only when that is drained.
    '--backend', `sip:${fail.id};priority=0`, '--backend', `sip:${ok.id};priority=1`,
    '--backend', `sip:127.0.13.20:${deadTcp};transport=tcp;priority=2`,
    '--backend', 'set=spare:sip:127.0.13.19:5099', // never called: its probes fail
    '--probe-interval-ms', '200', '--probe-timeout-ms', '100', '--probe-fail-threshold', '100',
    '--rate-limit-rps', '5', '--rate-limit-burst', '20',
    '--deny-public', '127.0.13.66/32',
    '--admin', `${EDGE}:${adminPort}`,
    '--hep', `udp:127.0.13.2:${hep.address().port}`,
  ])
  const admin = `http://${EDGE}:${adminPort}`

  // Two calls: each fails over from the 503 backend to the good one, then ACK, BYE.
  const calls = await runCaller({ edge: { host: EDGE, port }, host: '127.0.13.50', calls: 2, rate: 20 })
  t.equal(calls.completed, 2, 'two calls')
  // 40 OPTIONS from one source at once: the burst of 20 answered 200, the rest 503 (rate limit).
  const flood = await rawUdp(t, '127.0.13.51')
  for (let i = 0; i < 40; i++) flood.send(request({ method: 'OPTIONS', ruri: `sip:${EDGE}:${port}`, from: { host: flood.address, port: flood.port }, callId: `flood-${i}` }), EDGE, port)
  // A denied source, a relay attempt, a message that does not parse.
  const denied = await rawUdp(t, '127.0.13.66')
  for (let i = 0; i < 3; i++) denied.send(request({ method: 'OPTIONS', ruri: `sip:${EDGE}:${port}`, from: { host: denied.address, port: denied.port }, callId: `deny-${i}` }), EDGE, port)
  const other = await rawUdp(t, '127.0.13.52')
  other.send(request({ method: 'INVITE', ruri: 'sip:bob@198.51.100.1', from: { host: other.address, port: other.port }, callId: 'relay' }), EDGE, port)
  t.equal((await other.next((m) => m.callId === 'relay' && m.status >= 200)).status, 403)
  other.send('INVITE sip:x SIP/2.0\r\n\r\n', EDGE, port)
  // A failed call: the good backend drained, the 503 one then the refused TCP one, then 503 upstream.
  // Its INVITE is sent twice with one branch: the copy is a retransmission the edge absorbs.
  const list = (await (await fetch(`${admin}/backends`)).json()) as Array<{ id: string; uri: string }>
  const okId = list.find((b) => b.uri.includes(ok.id))!.id
  const drained = await fetch(`${admin}/backends/${encodeURIComponent(okId)}/drain`, { method: 'POST' })
  t.equal(drained.status, 200)
  const inv = request({ method: 'INVITE', ruri: `sip:bob@${EDGE}:${port}`, from: { host: other.address, port: other.port }, callId: 'fails', branch: 'z9hG4bKfails1' })
  other.send(inv, EDGE, port)
  other.send(inv, EDGE, port)
  const final = await other.next((m) => m.callId === 'fails' && m.status >= 200, 5000)
  t.equal(final.status, 503, 'no backend left: 503')
  other.send(request({ method: 'ACK', ruri: `sip:bob@${EDGE}:${port}`, from: { host: other.address, port: other.port }, callId: 'fails', branch: 'z9hG4bKfails1', toTag: final.toTag ?? '' }), EDGE, port)
  // A scanner (sipvicious' User-Agent): dropped unanswered and banned; its next request dropped as banned.
  const scanner = await rawUdp(t, '127.0.13.53')
  for (const callId of ['scan-1', 'scan-2']) {
    scanner.send(request({ method: 'MESSAGE', ruri: `sip:100@${EDGE}:${port}`, from: { host: scanner.address, port: scanner.port }, callId, lines: ['User-Agent: friendly-scanner'] }), EDGE, port)
  }
  await new Promise((r) => setTimeout(r, 600)) // probes (200 ms) run a few times

  const text = await (await fetch(`${admin}/metrics`)).text()
  const value = (name: string, labels: Record<string, string> = {}): number => {
    let sum = 0
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line)
      if (!m || m[1] !== name) continue
      const ls = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]))
      if (Object.entries(labels).every(([k, v]) => ls[k] === v)) sum += Number(m[3])
    }
    return sum
  }
  const limited = value('sipedge_rate_limited_total', { side: 'public' })
  const checks: Record<string, () => void> = {
    sipedge_requests_total: () => {
      t.equal(value('sipedge_requests_total', { side: 'public', direction: 'in', method: 'OPTIONS' }), 43, '43 OPTIONS sent, 43 counted (limited and denied included)')
      // 2 calls, the relay attempt, the failing one and its copy; on a busy machine the caller may retransmit
      // an INVITE too, and every such copy is one more absorbed retransmission.
      const invites = value('sipedge_requests_total', { side: 'public', direction: 'in', method: 'INVITE' })
      const extra = value('sipedge_retransmissions_absorbed_total') - 1
      t.ok(invites >= 5 && invites <= 5 + extra, `INVITEs received: ${invites} (5 sent, plus caller retransmissions absorbed)`)
      t.equal(value('sipedge_requests_total', { side: 'internal', direction: 'out', method: 'INVITE' }), 2 * 2 + 2, 'INVITEs sent to backends: two per call')
      t.equal(value('sipedge_requests_total', { side: 'internal', direction: 'out', method: 'BYE' }), 2, 'BYEs forwarded')
    },
    sipedge_responses_total: () => {
      t.equal(value('sipedge_responses_total', { side: 'internal', direction: 'out' }), 0, 'nothing answered toward the backends')
      t.ok(value('sipedge_responses_total', { side: 'internal', direction: 'in', class: '2xx' }) >= 4, '200s received from the backend (INVITE, BYE)')
      t.ok(value('sipedge_responses_total', { side: 'public', direction: 'out', class: '2xx' }) >= 4 + 20, 'relayed 200s and local OPTIONS 200s go to the public side')
      t.ok(value('sipedge_responses_total', { side: 'internal', direction: 'in', class: '5xx' }) >= 3, "the 503 backend's answers")
    },
    sipedge_parse_errors_total: () => t.equal(value('sipedge_parse_errors_total', { side: 'public' }), 1, 'the broken message'),
    sipedge_rate_limited_total: () => t.ok(limited >= 10 && limited <= 20, `rate limited: ${limited}`),
    sipedge_denied_total: () => t.equal(value('sipedge_denied_total', { side: 'public' }), 3, 'denied source'),
    sipedge_send_errors_total: () => t.ok(value('sipedge_send_errors_total', { side: 'internal' }) >= 1, 'refused TCP connection'),
    sipedge_local_replies_total: () => {
      t.equal(value('sipedge_local_replies_total', { class: '1xx' }), 3, '100 Trying per INVITE taken')
      t.equal(value('sipedge_local_replies_total', { class: '2xx' }) + limited, 40, 'each flood OPTIONS answered 200 or limited')
      t.equal(value('sipedge_local_replies_total', { class: '4xx' }), 2, '403 to the relay attempt, 400 to the broken message')
      t.equal(value('sipedge_local_replies_total', { class: '5xx' }), limited + 1, '503s: rate limit and no backend left')
    },
    sipedge_relay_refused_total: () => t.equal(value('sipedge_relay_refused_total'), 1),
    sipedge_failovers_total: () => t.equal(value('sipedge_failovers_total'), 4, 'one per call, two for the failing one'),
    sipedge_calls_total: () => {
      t.equal(value('sipedge_calls_total', { outcome: 'started' }), 3)
      t.equal(value('sipedge_calls_total', { outcome: 'answered' }), 2)
      t.equal(value('sipedge_calls_total', { outcome: 'failed' }), 1)
      t.equal(value('sipedge_calls_total', { outcome: 'ended' }), 2)
    },
    sipedge_retransmissions_absorbed_total: () => t.ok(value('sipedge_retransmissions_absorbed_total') >= 1, 'the INVITE copy'),
    sipedge_probes_total: () => {
      t.ok(value('sipedge_probes_total', { result: 'ok' }) >= 4, 'probes answered by the stand-ins')
      t.ok(value('sipedge_probes_total', { result: 'fail' }) >= 2, 'probes of the dead ones')
    },
    sipedge_bans_total: () => t.equal(value('sipedge_bans_total', { reason: 'scanner' }), 1, 'the scanner banned once'),
    sipedge_defence_dropped_total: () => {
      t.equal(value('sipedge_defence_dropped_total', { reason: 'scanner' }), 1, 'its first request: fingerprint')
      t.equal(value('sipedge_defence_dropped_total', { reason: 'banned' }), 1, 'its second: banned')
    },
    // No backend challenges in this run: the edge's own 403/503 are not authentication failures
    // (challenge traffic moves it in test/defence/sipvicious.test.ts).
    sipedge_auth_failures_total: () => t.equal(value('sipedge_auth_failures_total'), 0, 'local refusals are not auth failures'),
    sipedge_hep_packets_total: () => t.ok(value('sipedge_hep_packets_total', { result: 'sent' }) > 50, 'HEP copies sent'),
    // No REGISTER and no next hop by name in this run (they move in test/proxy/path.test.ts and
    // test/dns/next_hops.test.ts): present, and still.
    sipedge_registrations_total: () => {
      t.match(text, /^sipedge_registrations_total\{result="ok"\} 0$/m, 'registrations: exported')
      t.equal(value('sipedge_registrations_total'), 0, 'no REGISTER relayed')
    },
    sipedge_dns_resolutions_total: () => {
      t.match(text, /^sipedge_dns_resolutions_total\{outcome="ok"\} 0$/m, 'DNS resolutions: exported')
      t.equal(value('sipedge_dns_resolutions_total'), 0, 'backends by address: nothing resolved')
    },
  }
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const table = readme.slice(readme.indexOf('## Metrics'), readme.indexOf('## Admin API'))
  const counters = [...new Set([...table.matchAll(/`(sipedge_[a-z_]+_total)\b/g)].map((m) => m[1]!))]
  t.ok(counters.length >= 13, `README counters: ${counters.join(', ')}`)
  for (const name of counters) {
    const check = checks[name]
    if (!check) t.fail(`${name}: in the README, not checked here`)
    else check()
  }
  t.equal(value('sipedge_call_setup_seconds_count'), 2, 'setup time of the answered calls')
  t.equal(value('sipedge_calls_active'), 0)
})

t.test('the two-sided example binds: public UDP wildcard and internal address on one port', async (t) => {
  const backend = await standIn(t, '127.0.13.31')
  const port = await freeUdpPort('127.0.13.5')
  const edge = await startCliEdge(t, [
    '--listen', `udp:0.0.0.0:${port} advertise 127.0.13.4:${port}`,
    '--internal-listen', `udp:127.0.13.5:${port}`,
    '--backend', `sip:${backend.id}`, '--no-probe',
  ])
  const started = edge.logs().find((l) => l.msg === 'sipedge started')
  t.same(started?.listen, [`udp:127.0.13.4:${port} (public)`, `udp:127.0.13.5:${port} (internal)`])
  const r = await runCaller({ edge: { host: '127.0.13.4', port }, host: '127.0.13.60', calls: 3, rate: 20, forbidden: ['127.0.13.5', '127.0.13.31'] })
  t.equal(r.completed, 3, r.failures.join('; '))
  t.same(r.leaks, [], 'nothing internal toward the caller')
  t.equal(backend.calls, 3)
})

t.test('SIGTERM: an idle edge stops at once after calls; the exec form of the README gets the signal', async (t) => {
  const backend = await standIn(t, '127.0.13.41')
  const port = await freeUdpPort('127.0.13.40')
  // The README's form for long-running processes: the shell replaced by the binary (exec), one process.
  const proc = spawnTracked('/bin/sh', ['-c', `exec "${CLI}" --listen udp:127.0.13.40:${port} --backend sip:${backend.id} --no-probe`], {
    t,
    env: { ...process.env, SIPEDGE_SECRET: 'exec-form-secret-0123456' },
  })
  const edge = watch(proc)
  await edge.waitLog((l) => String(l.msg).startsWith('sipedge running'), 10_000)
  t.equal(edge.logs()[0]?.pid, proc.pid, 'the PID the supervisor knows is the edge itself')
  const r = await runCaller({ edge: { host: '127.0.13.40', port }, host: '127.0.13.61', calls: 2, rate: 20 })
  t.equal(r.completed, 2)
  const t0 = Date.now()
  proc.kill('SIGTERM')
  t.equal(await proc.exited, 0, 'exit 0: no call was cut')
  t.ok(Date.now() - t0 < 2500, `stopped in ${Date.now() - t0} ms (finished transactions do not hold the drain)`)
  t.ok(edge.logs().some((l) => l.msg === 'drained: no call in progress, stopping'))
})

t.test('a backend that does not answer OPTIONS goes down with the reason logged', async (t) => {
  const silent = createSocket('udp4') // bound, never answers
  await new Promise<void>((r) => silent.bind(0, '127.0.13.70', () => r()))
  t.teardown(() => silent.close())
  const port = await freeUdpPort('127.0.13.69')
  const edge = await startCliEdge(t, [
    '--listen', `udp:127.0.13.69:${port}`, '--backend', `sip:127.0.13.70:${silent.address().port}`,
    '--probe-interval-ms', '150', '--probe-timeout-ms', '100', '--probe-fail-threshold', '2',
  ])
  const down = await edge.waitLog((l) => l.msg === 'backend changed' && l.health === 'down', 5000, 'backend down')
  t.equal(down.reason, 'OPTIONS probe: no answer within 100 ms')
  t.equal(down.level, 40, 'at warn')
})

t.test('sipedge register logs ISO time, as the edge does', async (t) => {
  const dead = await freeTcpPort('127.0.13.80') // no etcd there: it logs its retries
  const proc = spawnTracked(process.execPath, [CLI, 'register', '--etcd', `http://127.0.13.80:${dead}`, '--set', 'default', '--uri', 'sip:127.0.13.81:5080'], { t })
  const line = await watch(proc).waitLog(() => true, 30_000, 'a register log line') // loading the etcd client is slow on a busy box
  t.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.equal(line.name, 'sipedge-register')
})
