// SIGHUP on a live edge (the binary, a child process): every key that is not restart-only is changed in the
// file and its effect is checked on traffic, not on the log line. Restart-only keys are named in a warning.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { StandInBackend } from '../../src/edge/standin.js'
import { startCliEdge } from '../helpers/cli_edge.js'
import { freePort, freeTcpPort } from '../helpers/net.js'
import { rawUdp, request, type RawUdp } from '../helpers/udp.js'

const EDGE = '127.0.12.1'

t.test('SIGHUP applies every reloadable key on a live edge', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-reload-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const b1 = new StandInBackend({ host: '127.0.12.11', port: 0 })
  const b2 = new StandInBackend({ host: '127.0.12.12', port: 0 })
  const bad = new StandInBackend({ host: '127.0.12.13', port: 0, failWith: 500 })
  for (const b of [b1, b2, bad]) {
    await b.start()
    t.teardown(() => b.stop())
  }
  const port = await freePort(EDGE)
  const adminPort = await freeTcpPort(EDGE)
  const file = join(dir, 'sipedge.yaml')
  const base: Record<string, unknown> = {
    listen: [`udp:${EDGE}:${port}`],
    backends: [`sip:${b1.id}`, `sip:${b2.id}`],
    admin: `${EDGE}:${adminPort}`,
    probe: { enabled: false },
  }
  const write = (extra: Record<string, unknown>) => writeFileSync(file, JSON.stringify({ ...base, ...extra })) // JSON is YAML
  write({})
  const edge = await startCliEdge(t, ['--config', file])
  let reloads = 0
  const reload = async (extra: Record<string, unknown>) => {
    write(extra)
    const n = ++reloads
    edge.proc.kill('SIGHUP')
    await edge.waitLog((l) => l.msg === 'SIGHUP: config reloaded' && edge.logs().filter((x) => x.msg === 'SIGHUP: config reloaded').length >= n, 5000, `reload ${n}`)
  }
  const phone = await rawUdp(t, '127.0.12.50')
  let seq = 0
  const invite = async (from: RawUdp = phone): Promise<number> => {
    const callId = `reload-${++seq}`
    from.send(request({ method: 'INVITE', ruri: `sip:bob@${EDGE}:${port}`, from: { host: from.address, port: from.port }, callId }), EDGE, port)
    return (await from.next((m) => !m.isRequest && m.callId === callId && m.status >= 200)).status
  }
  const options = async (from: RawUdp): Promise<number | 'none'> => {
    const callId = `opt-${++seq}`
    from.send(request({ method: 'OPTIONS', ruri: `sip:${EDGE}:${port}`, from: { host: from.address, port: from.port }, callId }), EDGE, port)
    try {
      return (await from.next((m) => !m.isRequest && m.callId === callId, 400)).status
    } catch {
      return 'none'
    }
  }

  // algorithm: round-robin spreads alice's calls; hash-from-user keeps them on one backend.
  for (let i = 0; i < 4; i++) t.equal(await invite(), 200)
  t.same([b1.calls, b2.calls], [2, 2], 'round-robin')
  await reload({ algorithm: 'hash-from-user' })
  for (let i = 0; i < 4; i++) await invite()
  t.ok((b1.calls === 6 && b2.calls === 2) || (b1.calls === 2 && b2.calls === 6), `hash-from-user: one backend took all four (${b1.calls}/${b2.calls})`)
  // setAlgorithms overrides the default for its set.
  await reload({ algorithm: 'hash-from-user', setAlgorithms: { default: 'round-robin' } })
  const before = [b1.calls, b2.calls]
  for (let i = 0; i < 4; i++) await invite()
  t.same([b1.calls - before[0]!, b2.calls - before[1]!], [2, 2], 'setAlgorithms.default: round-robin again')

  // rateLimit
  await reload({ rateLimit: { rps: 1, burst: 2 } })
  const statuses: Array<number | 'none'> = []
  for (let i = 0; i < 5; i++) statuses.push(await options(phone))
  t.same(statuses.slice(0, 2), [200, 200], 'within the burst')
  t.ok(statuses.slice(2).includes(503), `then 503: ${statuses.join(',')}`)
  await reload({ rateLimit: { rps: 1, burst: 2, action: 'drop' } })
  await new Promise((r) => setTimeout(r, 2100)) // refill
  const dropped: Array<number | 'none'> = []
  for (let i = 0; i < 5; i++) dropped.push(await options(phone))
  t.ok(dropped.includes('none') && !dropped.includes(503), `rateLimit.action drop: ${dropped.join(',')}`)

  // denyPublic / allowPublic
  const scanner = await rawUdp(t, '127.0.12.51')
  const other = await rawUdp(t, '127.0.12.52')
  await reload({ denyPublic: ['127.0.12.51/32'] })
  t.equal(await options(scanner), 'none', 'denyPublic: dropped')
  t.equal(await options(phone), 200, 'others still answered (rate limit gone with the key)')
  await reload({ allowPublic: ['127.0.12.50/32'] })
  t.equal(await options(other), 'none', 'allowPublic: others dropped')
  t.equal(await options(phone), 200, 'the allowed source answered')
  await reload({})
  t.equal(await options(scanner), 200, 'lists removed: everyone again')

  // failover.codes / maxTries: the lower-priority-value backend answers 500.
  const pool = [`sip:${bad.id};priority=0`, `sip:${b1.id};priority=1`]
  await reload({ backends: pool })
  t.equal(await invite(), 200, 'default codes include 500: failed over')
  await reload({ backends: pool, failover: { codes: [503] } })
  t.equal(await invite(), 500, 'failover.codes without 500: relayed')
  await reload({ backends: pool, failover: { maxTries: 1 } })
  t.equal(await invite(), 503, 'failover.maxTries 1: no second backend tried, 503 from the edge')

  // maskCallId and trustedNetworks: a call placed from inside toward a carrier.
  const carrier = await rawUdp(t, '127.0.12.60')
  const pbx = await rawUdp(t, '127.0.12.11') // a backend's address: inside
  const outbound = async (from: RawUdp, callId: string) => {
    from.send(
      request({ method: 'INVITE', ruri: `sip:+15551234@127.0.12.60:${carrier.port}`, from: { host: from.address, port: from.port }, callId }),
      EDGE,
      port,
    )
  }
  await reload({})
  await outbound(pbx, 'out-1@127.0.12.11')
  t.match((await carrier.next((m) => m.isRequest && m.method === 'INVITE')).callId, /^se1\./, 'maskCallId (default on): masked')
  await reload({ maskCallId: false })
  await outbound(pbx, 'out-2@127.0.12.11')
  t.equal((await carrier.next((m) => m.isRequest && m.method === 'INVITE')).callId, 'out-2@127.0.12.11', 'maskCallId false: as sent')
  const stranger = await rawUdp(t, '127.0.12.70')
  await outbound(stranger, 'out-3')
  t.equal((await stranger.next((m) => !m.isRequest && m.status >= 200)).status, 403, 'untrusted source: 403')
  await reload({ maskCallId: false, trustedNetworks: ['127.0.12.70/32'] })
  await outbound(stranger, 'out-4')
  t.equal((await carrier.next((m) => m.isRequest && m.method === 'INVITE')).callId, 'out-4', 'trustedNetworks: reaches the carrier')

  // probe: enabled live, the prober runs (probes counted), and stops again.
  const probes = async () => {
    const text = await (await fetch(`http://${EDGE}:${adminPort}/metrics`)).text()
    return Number(/^sipedge_probes_total\{result="ok"\} (\d+)/m.exec(text)?.[1] ?? NaN)
  }
  t.equal(await probes(), 0, 'no probes while disabled')
  await reload({ probe: { enabled: true, intervalMs: 200, timeoutMs: 100 } })
  await new Promise((r) => setTimeout(r, 700))
  t.ok((await probes()) >= 4, 'probes run after the reload')

  // Restart-only keys are named, and keep their running value.
  const otherPort = await freePort(EDGE)
  write({ ...{ listen: [`udp:${EDGE}:${otherPort}`] } })
  edge.proc.kill('SIGHUP')
  const warn = await edge.waitLog((l) => String(l.msg).startsWith('SIGHUP: these keys need a restart'), 5000, 'restart warning')
  t.same(warn.keys, ['listen'])
  t.equal(await options(phone), 200, 'still on the old port')

  // logLevel: at warn the reload's own info line is not written any more.
  const count = edge.logs().length
  write({ logLevel: 'warn', shutdownTimeoutMs: 300 })
  edge.proc.kill('SIGHUP')
  await new Promise((r) => setTimeout(r, 500))
  t.equal(edge.logs().length, count, 'logLevel warn: nothing at info any more')

  // shutdownTimeoutMs (300 ms, reloaded just above): calls are still up, the drain gives up quickly.
  const started = Date.now()
  edge.proc.kill('SIGTERM')
  t.equal(await edge.proc.exited, 3, 'exit 3: calls were cut')
  t.ok(Date.now() - started < 4000, `stopped after the reloaded deadline (${Date.now() - started} ms)`)
  const cut = edge.logs().find((l) => String(l.msg).startsWith('drain deadline passed'))
  t.ok(cut && (cut.callsCut as number) > 0, 'the cut calls are logged (at warn)')
})

