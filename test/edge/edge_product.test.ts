// The edge as operators run it: admin API and Prometheus metrics read back from a live edge after real
// calls, HEP3 export of both directions, and SIGTERM draining a live call (the binary, as a process).
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { join } from 'node:path'
import t from 'tap'
import { decodeHep } from '../../src/edge/hep.js'
import { startEdge } from '../helpers/edge.js'
import { freePort, freeUdpPort, waitFor } from '../helpers/net.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { rawUdp } from '../helpers/udp.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')

t.test('admin API and metrics of a live edge', async (t) => {
  const b1 = await startUas({ scenario: 'uas', ip: '127.0.10.11', t })
  const b2 = await startUas({ scenario: 'uas', ip: '127.0.10.12', t })
  const adminPort = await freePort('127.0.10.1')
  const { edge, target } = await startEdge(t, '127.0.10.1', {
    backends: [`sip:${b1.id}`, `sip:${b2.id}`],
    admin: `127.0.10.1:${adminPort}`,
    adminToken: 'admin-token-xyz',
  })
  const base = `http://127.0.10.1:${adminPort}`
  const auth = { authorization: 'Bearer admin-token-xyz' }
  // Calls held for a while, so /dialogs and activeCalls have something to show.
  const run = runUac({ scenario: 'uac', target, calls: 6, rate: 30, durationMs: 1500, t })
  await waitFor(() => edge.proxy.dialogs.size === 6, { timeoutMs: 5000, what: 'six calls up' })
  t.equal((await fetch(`${base}/backends`)).status, 401, 'token required')
  const backends = (await (await fetch(`${base}/backends`, { headers: auth })).json()) as Array<{ id: string; activeCalls: number }>
  t.same(backends.map((b) => b.activeCalls), [3, 3], 'active calls per backend')
  const page = (await (await fetch(`${base}/dialogs?offset=2&limit=3`, { headers: auth })).json()) as { total: number; items: unknown[] }
  t.equal(page.total, 6)
  t.equal(page.items.length, 3, 'paged')
  t.equal((await fetch(`${base}/readyz`)).status, 200, 'ready')
  const drained = await fetch(`${base}/backends/${encodeURIComponent(backends[0]!.id)}/drain`, { method: 'POST', headers: auth })
  t.equal(drained.status, 200, 'drain one backend')
  const uac = await run
  t.equal(uac.failed, 0, describe(uac))
  const after = await runUac({ scenario: 'uac', target, calls: 4, rate: 20, t })
  t.equal(after.failed, 0)
  t.equal((await b1.stop()).successful, 3, 'the drained backend got no new call')
  t.equal((await b2.stop()).successful, 7, 'the other one took them')
  const text = await (await fetch(`${base}/metrics`, { headers: auth })).text()
  const metric = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN)
  t.equal(metric(/^sipedge_requests_total\{side="public",direction="in",method="INVITE"\} (\d+)/m), 10, 'INVITEs received')
  t.equal(metric(/^sipedge_calls_total\{outcome="started"\} (\d+)/m), 10, 'calls started')
  t.equal(metric(/^sipedge_calls_active (\d+)/m), 0, 'no call left')
  t.match(text, /sipedge_call_setup_seconds_bucket/, 'setup latency histogram')
  t.match(text, /sipedge_backend_admin\{[^}]*state="draining"[^}]*\} 1/, 'the drained backend shows')
})

t.test('HEP3 export carries what the edge receives and what it sends', async (t) => {
  const collector = createSocket('udp4')
  const packets: ReturnType<typeof decodeHep>[] = []
  collector.on('message', (b) => packets.push(decodeHep(b)))
  await new Promise<void>((r) => collector.bind(0, '127.0.10.2', () => r()))
  t.teardown(() => collector.close())
  const backend = await startUas({ scenario: 'uas', ip: '127.0.10.21', t })
  const { target } = await startEdge(t, '127.0.10.3', {
    backends: [`sip:${backend.id}`],
    hep: { address: `udp:127.0.10.2:${collector.address().port}`, id: 42 },
  })
  const uac = await runUac({ scenario: 'uac', target, calls: 2, rate: 10, t })
  t.equal(uac.failed, 0)
  await waitFor(() => packets.length >= 28, { timeoutMs: 3000, what: 'HEP packets' })
  const firstLines = packets.map((p) => `${p.srcIp}>${p.dstIp} ${p.payload.toString('latin1', 0, p.payload.indexOf('\r\n'))}`)
  t.ok(firstLines.some((l) => /^127\.0\.0\.1>127\.0\.10\.3 INVITE /.test(l)), 'INVITE from the caller, as received')
  t.ok(firstLines.some((l) => /^127\.0\.10\.3>127\.0\.10\.21 INVITE /.test(l)), 'INVITE to the backend, as sent')
  t.ok(packets.every((p) => p.captureId === 42 && p.protoType === 1), 'capture id and SIP payload type')
})

t.test('SIGTERM: new calls get 503 + Retry-After, the live call ends normally, exit 0', async (t) => {
  const backend = await startUas({ scenario: 'uas', ip: '127.0.10.31', t })
  const host = '127.0.10.30'
  const port = await freeUdpPort(host)
  const cli = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../../dist/edge/cli.js')
  const edge = spawn(process.execPath, [cli, '--listen', `udp:${host}:${port}`, '--backend', `sip:${backend.id}`, '--no-probe', '--log-level', 'warn'], {
    env: { ...process.env, SIPEDGE_SECRET: 'drain-test-secret-0123' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => edge.kill('SIGKILL'))
  const exited = new Promise<number | null>((r) => edge.once('exit', (code) => r(code)))
  const probe = await rawUdp(t, '127.0.10.32')
  await waitFor(
    async () => {
      probe.send(`OPTIONS sip:${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.10.32:${probe.port};branch=z9hG4bKup${Date.now()}\r\nMax-Forwards: 70\r\nFrom: <sip:p@127.0.10.32>;tag=1\r\nTo: <sip:${host}>\r\nCall-ID: up-${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`, host, port)
      return probe.received.some((m) => m.status === 200)
    },
    { timeoutMs: 8000, intervalMs: 200, what: 'edge up' },
  )
  const live = runUac({ scenario: 'uac', target: `${host}:${port}`, calls: 1, rate: 10, durationMs: 2500, t })
  await new Promise((r) => setTimeout(r, 800))
  edge.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 300))
  probe.send(
    `INVITE sip:svc@${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.10.32:${probe.port};branch=z9hG4bKdrain1\r\nMax-Forwards: 70\r\nFrom: <sip:p@127.0.10.32>;tag=2\r\nTo: <sip:svc@${host}>\r\nCall-ID: drain-new-call\r\nCSeq: 1 INVITE\r\nContact: <sip:p@127.0.10.32:${probe.port}>\r\nContent-Length: 0\r\n\r\n`,
    host,
    port,
  )
  const refused = await probe.next((m) => m.callId === 'drain-new-call' && m.status >= 200)
  t.equal(refused.status, 503, 'a new call while draining: 503')
  t.match(refused.getHeader('Retry-After') ?? '', /^\d+$/, 'with Retry-After')
  const uac = await live
  t.equal(uac.failed, 0, `the call in progress ended normally: ${describe(uac)}`)
  t.equal(await exited, 0, 'the edge exits 0 once the call is over')
})
