// `sipedge --workers 2`: two processes bind the same ports (SO_REUSEPORT), the kernel spreads callers over
// them by source address, and each worker sends toward the backends from a port of its own, so their answers
// come back to the worker that sent the request. Calls, CANCEL, retransmissions, failover, SIGHUP reload, drain, a SIGKILLed worker
// and SIGTERM, with SIPp callers on many source ports (-t un: one socket per call) and SIPp backends.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { metricSamples, startCliEdge, type CliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort, waitFor } from '../helpers/net.js'
import { describe, runUac, startUas, type SippUas } from '../helpers/sipp.js'

const MANY_SOURCES = ['-t', 'un', '-max_socket', '64']

const metric = metricSamples
const perWorker = async (admin: number, name: string): Promise<number[]> => {
  const v = [0, 0]
  for (const s of await metric(admin, name)) {
    const w = /worker="(\d+)"/.exec(s.labels)
    if (w) v[Number(w[1])] = s.value
  }
  return v
}
const sum = async (admin: number, name: string, labels: RegExp): Promise<number> =>
  (await metric(admin, name)).filter((s) => labels.test(s.labels)).reduce((a, s) => a + s.value, 0)

const dir = mkdtempSync(join(tmpdir(), 'sipedge-workers-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const configFile = join(dir, 'edge.yaml')
const writeBackends = (uris: string[]): void => writeFileSync(configFile, `backends:\n${uris.map((u) => `  - ${u}\n`).join('')}`)

let edge: CliEdge
let admin: number
let edgePort: number
let ringing: SippUas
let answering: SippUas
let busy: SippUas
let hangingUp: SippUas

t.before(async () => {
  ringing = await startUas({ scenario: 'uas_cancel', ip: '127.0.1.61', t, traceMsg: false })
  answering = await startUas({ scenario: 'uas', ip: '127.0.1.62', t, traceMsg: false })
  busy = await startUas({ scenario: 'uas_503', ip: '127.0.1.63', t, traceMsg: false })
  hangingUp = await startUas({ scenario: 'uas_bye', ip: '127.0.1.64', t, traceMsg: false, durationMs: 100 })
  edgePort = await freePort()
  admin = await freeTcpPort()
  writeBackends([`sip:${ringing.id}`])
  edge = await startCliEdge(t, ['--workers', '2', '--config', configFile, '--listen', `udp:127.0.0.1:${edgePort}`, '--listen', `tcp:127.0.0.1:${edgePort}`, '--no-probe', '--admin', `127.0.0.1:${admin}`])
})

t.test('the primary starts two workers on the pinned Node, each its own process', async (t) => {
  const running = await edge.waitLog((l) => l.msg === 'sipedge running (SIGTERM/SIGINT drain, SIGHUP reloads)')
  t.equal(running.workers, 2)
  const pids = running.pids as number[]
  t.equal(new Set(pids).size, 2)
  for (const w of [0, 1]) {
    const line = await edge.waitLog((l) => l.msg === 'sipedge worker running' && l.worker === w)
    t.match(line.node, /^v24\./, `worker ${w} runs on Node 24`)
  }
  await waitFor(async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200, { what: '/readyz 200 on the primary' })
})

t.test('CANCEL of ringing calls over both workers: every call ends with 487, none left over', async (t) => {
  const r = await runUac({ scenario: 'uac_cancel', target: `127.0.0.1:${edgePort}`, calls: 60, rate: 60, durationMs: 20, t, traceMsg: false, extra: MANY_SOURCES })
  t.equal(r.successful, 60, describe(r))
  t.equal(r.failed, 0)
  const started = await perWorker(admin, 'sipedge_worker_calls_started_total')
  t.ok(started[0]! > 0 && started[1]! > 0, `both workers took INVITEs: ${started}`)
  // Each worker sent its INVITEs and CANCELs from its own port: the backend's 180s, 200s to CANCEL and 487s
  // come back to it, none crosses to the other worker (the callers' CANCEL and ACK come from the INVITE's source).
  const handed = await perWorker(admin, 'sipedge_worker_handed_over_total')
  t.same(handed, [0, 0], 'no message handed between workers')
})

t.test('SIGHUP reaches every worker: new backends from the file, calls and failover spread over both', async (t) => {
  writeBackends([`sip:${answering.id}`, `sip:${busy.id}`])
  const from = edge.logs().length
  edge.proc.child.kill('SIGHUP')
  const done = await edge.waitLog((l) => edge.logs().indexOf(l) >= from && l.msg === 'SIGHUP: config reloaded', 5000, 'the primary: every worker reloaded')
  t.equal(done.workers, 2, 'one line for both workers')
  t.same(done.applied, ['backends'])
  await waitFor(async () => {
    const b = (await (await fetch(`http://127.0.0.1:${admin}/backends`)).json()) as Array<{ id: string }>
    return b.length === 2 && b.every((x) => x.id !== `sip:${ringing.id}`)
  }, { what: 'the reloaded backends on the primary admin API' })
  const before = await perWorker(admin, 'sipedge_worker_calls_started_total')
  const r = await runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 200, rate: 100, t, traceMsg: false, extra: MANY_SOURCES })
  t.equal(r.successful, 200, describe(r))
  const after = await perWorker(admin, 'sipedge_worker_calls_started_total')
  t.ok(after[0]! - before[0]! > 20 && after[1]! - before[1]! > 20, `both workers carried calls: ${before} -> ${after}`)
  t.ok((await sum(admin, 'sipedge_failovers_total', /.*/)) > 0, 'failovers happened (summed over workers)')
  t.ok((await sum(admin, 'sipedge_requests_total', /direction="in",method="INVITE"/)) >= 260, '/metrics sums INVITEs received by both workers')
})

t.test('retransmissions: with 5 % of the callers\' packets lost, every call still completes across workers', async (t) => {
  const r = await runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 80, rate: 40, t, traceMsg: false, timeoutS: 40, extra: [...MANY_SOURCES, '-lost', '5'] })
  t.equal(r.successful, 80, describe(r))
  t.ok(r.retransmissions > 0, `the caller retransmitted (${r.retransmissions})`)
})

t.test('drain a backend on the primary admin API: every worker stops sending it calls', async (t) => {
  const id = encodeURIComponent(`sip:${answering.id}`)
  const res = await fetch(`http://127.0.0.1:${admin}/backends/${id}/drain`, { method: 'POST' })
  t.equal(res.status, 200)
  await waitFor(async () => {
    const b = (await (await fetch(`http://127.0.0.1:${admin}/backends`)).json()) as Array<{ id: string; admin: string }>
    return b.find((x) => x.id === `sip:${answering.id}`)?.admin === 'draining'
  }, { what: 'draining shown' })
  const r = await runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 20, rate: 40, t, traceMsg: false, extra: MANY_SOURCES })
  t.equal(r.successful, 0, 'only the 503 backend is left: no call is answered, on either worker')
  t.equal(r.failed, 20)
  await fetch(`http://127.0.0.1:${admin}/backends/${id}/enable`, { method: 'POST' })
})

t.test('TCP callers: the backend\'s BYE reaches the caller\'s connection, whichever worker holds it', async (t) => {
  writeBackends([`sip:${hangingUp.id}`])
  const from = edge.logs().length
  edge.proc.child.kill('SIGHUP')
  const done = await edge.waitLog((l) => edge.logs().indexOf(l) >= from && l.msg === 'SIGHUP: config reloaded', 5000, 'the primary: every worker reloaded')
  t.equal(done.workers, 2, 'one line for both workers')
  t.same(done.applied, ['backends'])
  // -t tn: one TCP connection per call, spread over the workers' listening sockets. SIPp sends its BYE back to
  // where the INVITE came from, the worker's own port (an Asterisk follows the route set to the shared port and
  // lands on either worker: workers_dialogs.test.ts): the BYE reaches the caller's connection on that worker.
  const r = await runUac({ scenario: 'uac_callee_bye', target: `127.0.0.1:${edgePort}`, transport: 'tcp', calls: 40, rate: 40, t, traceMsg: false, extra: ['-t', 'tn', '-max_socket', '64'] })
  t.equal(r.successful, 40, describe(r))
  await waitFor(async () => (await sum(admin, 'sipedge_calls_active', /.*/)) <= 1, { timeoutMs: 3000, what: 'every TCP call ended on the worker holding it' })
  writeBackends([`sip:${answering.id}`, `sip:${busy.id}`])
  edge.proc.child.kill('SIGHUP')
  await waitFor(async () => {
    const b = (await (await fetch(`http://127.0.0.1:${admin}/backends`)).json()) as Array<{ id: string; health: string }>
    return b.length === 2
  }, { what: 'the backends back' })
})

t.test('the primary admin API answers for every worker: dialogs, bans', async (t) => {
  const long = runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 20, rate: 100, durationMs: 1500, t, traceMsg: false, extra: MANY_SOURCES })
  await waitFor(async () => (await sum(admin, 'sipedge_calls_active', /.*/)) >= 20, { timeoutMs: 5000, what: '20 calls up' })
  const page = (await (await fetch(`http://127.0.0.1:${admin}/dialogs?limit=5`)).json()) as { total: number; items: unknown[] }
  t.ok(page.total >= 20, `the dialogs of both workers: ${page.total}`)
  t.equal(page.items.length, 5)
  t.equal((await long).successful, 20)
  const ban = await fetch(`http://127.0.0.1:${admin}/bans/192.0.2.7?seconds=60`, { method: 'POST' })
  t.equal(ban.status, 201)
  const bans = (await (await fetch(`http://127.0.0.1:${admin}/bans`)).json()) as Array<{ address: string }>
  t.same(bans.map((b) => b.address), ['192.0.2.7'], 'banned on every worker, listed once')
  t.equal((await fetch(`http://127.0.0.1:${admin}/bans/192.0.2.7`, { method: 'DELETE' })).status, 200)
  t.same(await (await fetch(`http://127.0.0.1:${admin}/bans`)).json(), [], 'lifted on every worker')
})

t.test('a worker SIGKILLed under load: it is restarted alone, and only its own calls in flight are lost', async (t) => {
  const running = await edge.waitLog((l) => l.msg === 'sipedge worker running' && l.worker === 1)
  const victim = running.pid as number
  const load = runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 300, rate: 100, t, traceMsg: false, extra: MANY_SOURCES })
  await new Promise((r) => setTimeout(r, 1200))
  process.kill(victim, 'SIGKILL')
  const r = await load
  const died = await edge.waitLog((l) => l.msg?.startsWith('worker died') === true && l.worker === 1)
  t.equal(died.signal, 'SIGKILL')
  const back = await edge.waitLog((l) => l.msg === 'sipedge worker running' && l.worker === 1 && l.pid !== victim, 10_000, 'worker 1 restarted')
  t.not(back.pid, victim, 'a new process took worker 1\'s place')
  // At 100 calls/s with calls lasting a few ms, a handful are in flight on one worker at any instant.
  t.ok(r.failed <= 10, `at most the killed worker's calls in flight failed: ${describe(r)}`)
  t.ok(r.successful >= 290)
  t.notOk(edge.logs().some((l) => l.msg?.startsWith('worker died') && l.worker === 0), 'worker 0 never stopped')
  const after = await runUac({ scenario: 'uac', target: `127.0.0.1:${edgePort}`, calls: 100, rate: 100, t, traceMsg: false, extra: MANY_SOURCES })
  t.equal(after.successful, 100, `after the restart every call completes: ${describe(after)}`)
})

t.test('SIGTERM drains every worker and the primary exits 0', async (t) => {
  // Every call ended, whichever worker its BYE reached: no worker holds a dialog that would hold the drain up.
  await waitFor(async () => (await sum(admin, 'sipedge_calls_active', /.*/)) === 0, { timeoutMs: 5000, what: 'no call active on any worker' })
  edge.proc.child.kill('SIGTERM')
  const code = await edge.proc.exited
  t.equal(code, 0)
  for (const w of [0, 1]) t.ok(edge.logs().some((l) => l.msg === 'sipedge stopped' && l.worker === w), `worker ${w} stopped after draining`)
})
