// Floods and abuse on the public side while legitimate SIPp calls go through the edge: junk and
// 64 KiB datagrams, thousands of Vias/Routes, huge and lying Content-Length on TCP, slowloris, idle
// connections, an INVITE flood from one source (rate limit), sipvicious scans. The edge stays up,
// memory and fds stay bounded, >= 99.9% of the legitimate calls complete, no reply leaks a backend address.
import t from 'tap'
import net from 'node:net'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { startEdge } from '../helpers/edge.js'
import { DEFAULT_CONFIG } from '../../src/edge/config.js'
import { waitFor } from '../helpers/net.js'
import { spawnTracked } from '../helpers/proc.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { FULL, recordCase } from './fixtures/results.js'
import { round, sampleEdge } from './fixtures/resources.js'
import { AnsweringBackend, UdpProbe, statuses, tcpExchange } from './fixtures/wire.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')
const svAvailable = spawnSync('svmap', ['--version'], { stdio: 'ignore', timeout: 5000 }).error === undefined
if (!svAvailable) t.fail('sipvicious is not installed (apt-get install sipvicious)')

const EDGE = '127.0.6.10'
const BACKEND = '127.0.6.12'

function request(method: string, target: string, from: string, i: number, extra = ''): string {
  return `${method} sip:${1000 + (i % 100)}@${target} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${from};branch=z9hG4bK-abuse-${method}-${i};rport\r\n` +
    `From: <sip:attacker@${from}>;tag=a${i}\r\nTo: <sip:${1000 + (i % 100)}@${target}>\r\n` +
    `Call-ID: abuse-${method}-${i}@${from}\r\nCSeq: 1 ${method}\r\nMax-Forwards: 70\r\n` +
    `Contact: <sip:attacker@${from}>\r\n${extra}Content-Length: 0\r\n\r\n`
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('abuse on the public side during a legitimate call load', async (t) => {
  const uas = await startUas({ scenario: 'uas', ip: BACKEND, traceMsg: false, t })
  // Attack requests that get past the guards go to an answering backend, not to SIPp's call scenario.
  const sink = await AnsweringBackend.start('127.0.6.13')
  t.teardown(() => sink.stop())
  const { edge, host, port, target } = await startEdge(t, EDGE, {
    backends: [`sip:${uas.id}`, `set=sink:${sink.uri}`],
    hooks: { onRequest: (ctx) => { if (ctx.msg.getHeader('Subject') !== 'sipedge uac') ctx.set = 'sink' } },
    rateLimit: { rps: 200, burst: 200, action: 'reply' },
    // The other guards alone: with the defence on, the scanners would get no answer to check for leaks
    // (the defence has its own test, test/defence/sipvicious.test.ts).
    defence: { ...DEFAULT_CONFIG.defence, enabled: false },
    limits: { maxMessageSize: 65535, maxConnections: 200, tcpIdleTimeoutMs: 2000, maxDialogs: 100_000, dialogTtlS: 3600, maxTransactions: 100_000 },
  })
  const base = sampleEdge(edge)
  const samples = [base]
  const sampler = setInterval(() => samples.push(sampleEdge(edge)), 250)
  t.teardown(() => clearInterval(sampler))

  const calls = FULL ? 3000 : 400
  const load = runUac({ scenario: 'uac', target, localIp: '127.0.6.11', calls, rate: 40, traceMsg: false, timeoutS: FULL ? 120 : 40, t })
  const tried: Record<string, number> = {}
  const replies: Buffer[] = []

  // 1. junk datagrams and 64 KiB datagrams
  const junk = await UdpProbe.open('127.0.6.21')
  t.teardown(() => junk.close())
  tried['junk datagrams'] = FULL ? 20000 : 3000
  for (let i = 0; i < tried['junk datagrams']; i++) {
    await junk.send(randomBytes(1 + (i % 1400)), port, host)
    if (i % 100 === 0) await pause(10)
  }
  tried['64 KiB datagrams'] = 50
  const big = Buffer.from(request('INVITE', host, '127.0.6.21', 0, 'X-Pad: ' + 'a'.repeat(65507 - 400) + '\r\n'))
  for (let i = 0; i < 50; i++) {
    await junk.send(i % 2 ? big.subarray(0, 65507) : randomBytes(65507), port, host)
    if (i % 5 === 0) await pause(10)
  }

  // 2. thousands of Via / Route entries (UDP up to the datagram size, TCP up to maxMessageSize and past it)
  const manyVias = 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n'.repeat(1200)
  const manyRoutes = `Route: ${Array.from({ length: 2000 }, (_, i) => `<sip:r${i}.example.com;lr>`).join(',')}\r\n`
  await junk.send(request('INVITE', host, '127.0.6.21', 1, manyVias), port, host)
  await junk.send(request('INVITE', host, '127.0.6.21', 2, manyRoutes).slice(0, 65000), port, host)
  const tcpVias = await tcpExchange(host, port, Buffer.from(request('INVITE', host, '127.0.6.23', 3, manyVias.repeat(4))), { localAddress: '127.0.6.23', waitMs: 500 })
  replies.push(tcpVias.got)
  tried['messages with 1200-4800 Vias / 2000 Routes'] = 3

  // 3. huge and lying Content-Length on TCP
  const huge = await tcpExchange(host, port, Buffer.from(request('INVITE', host, '127.0.6.23', 4).replace('Content-Length: 0', 'Content-Length: 99999999999')), { localAddress: '127.0.6.23', waitMs: 1000 })
  t.ok(huge.closedByPeer, 'huge Content-Length: the edge closes the connection')
  replies.push(huge.got)
  const lying = await tcpExchange(host, port, Buffer.from(request('INVITE', host, '127.0.6.23', 5).replace('Content-Length: 0', 'Content-Length: 5000') + 'v=0\r\n'), { localAddress: '127.0.6.23', waitMs: 4000 })
  t.ok(lying.closedByPeer, 'lying Content-Length: the idle timeout closes the connection')
  tried['huge / lying Content-Length on TCP'] = 2

  // 4. slowloris: connections dripping one byte at a time; 5. idle connections past maxConnections
  const slow: net.Socket[] = []
  const drip = request('INVITE', host, '127.0.6.24', 6)
  for (let i = 0; i < 50; i++) slow.push(net.connect({ host, port, localAddress: '127.0.6.24' }).on('error', () => {}))
  const idle: net.Socket[] = []
  const idleCount = FULL ? 1000 : 400
  for (let i = 0; i < idleCount; i++) idle.push(net.connect({ host, port, localAddress: '127.0.6.25' }).on('error', () => {}))
  t.teardown(() => { for (const s of [...slow, ...idle]) s.destroy() })
  tried['slowloris connections'] = slow.length
  tried['idle connections'] = idleCount
  let maxTcp = 0
  for (let k = 0; k < 30; k++) {
    for (const s of slow) if (!s.destroyed) s.write(drip[k % drip.length]!)
    maxTcp = Math.max(maxTcp, edge.transports.connectionCount())
    await pause(100)
  }
  t.ok(maxTcp <= 200, `TCP connections stay under maxConnections (max ${maxTcp})`)

  // 6. INVITE flood from one source: the rate limit answers 503 to most of it
  const flood = await UdpProbe.open('127.0.6.22')
  t.teardown(() => flood.close())
  const floodCount = FULL ? 20000 : 4000
  for (let i = 0; i < floodCount; i++) {
    await flood.send(request('INVITE', host, `127.0.6.22:${flood.port}`, i), port, host)
    if (i % 100 === 0) await pause(10)
  }
  tried['flood INVITEs from one source'] = floodCount
  await pause(500)
  const floodReplies = flood.take()
  const floodStatuses = floodReplies.flatMap((r) => statuses(r.data))
  const limited = floodStatuses.filter((s) => s === 503).length
  const passed = sink.seen.filter((s) => s.callId.startsWith('abuse-INVITE-')).length
  t.ok(limited > floodCount / 2, `the rate limit answered 503 to most of the flood (${limited} of ${floodCount})`)
  t.ok(passed < floodCount / 4, `only a bounded part of the flood reached a backend (${passed})`)
  // Answer the forwarded ones' non-2xx finals would need ACKs; the flood never ACKs (Timer H bounds them).

  // 7. sipvicious scans (svmap OPTIONS sweep, svwar REGISTER extension scan)
  const svmap = spawnTracked('svmap', ['-b', '127.0.6.26', '-p', String(port), host], { t })
  const svwar = spawnTracked('svwar', ['-b', '127.0.6.27', '-p', String(port), '-m', 'REGISTER', '-e', FULL ? '100-999' : '100-199', host], { t })
  const scanTimer = setTimeout(() => { svmap.kill('SIGKILL'); svwar.kill('SIGKILL') }, 60_000)
  await Promise.all([svmap.exited, svwar.exited])
  clearTimeout(scanTimer)
  const scanOut = svmap.output().stdout + svmap.output().stderr + svwar.output().stdout + svwar.output().stderr
  tried['sipvicious scans (svmap, svwar REGISTER 100 extensions)'] = 2

  const result = await load
  clearInterval(sampler)
  for (const r of [...junk.take(), ...floodReplies]) replies.push(r.data)
  const leaked = replies.filter((b) => b.includes(BACKEND)).length + (scanOut.includes(BACKEND) ? 1 : 0)
  t.equal(leaked, 0, 'no reply to an attacker names a backend address')
  t.match(scanOut, new RegExp(`${host.replace(/\./g, '\\.')}:${port}`), `svmap found the edge (${svmap.output().stdout.slice(0, 300)})`)

  const ratio = result.successful / calls
  t.ok(ratio >= 0.999, `legitimate calls completed: ${result.successful}/${calls} (${describe(result)})`)

  // The edge still answers, connections drain after the idle timeout, memory and fds are bounded.
  for (const s of [...slow, ...idle]) s.destroy()
  await waitFor(() => edge.transports.connectionCount() === 0, { timeoutMs: 5000, what: 'TCP connections closed' })
  const alive = await UdpProbe.open('127.0.6.28')
  t.teardown(() => alive.close())
  await alive.send(request('OPTIONS', host, `127.0.6.28:${alive.port}`, 1).replace(/sip:1001@/g, 'sip:'), port, host)
  await waitFor(() => alive.received.length > 0, { timeoutMs: 2000, what: 'the edge answers OPTIONS after the abuse' })
  const end = sampleEdge(edge)
  const peakRss = Math.max(...samples.map((s) => s.rssMiB))
  const peakFds = Math.max(...samples.map((s) => s.fds))
  t.ok(peakRss - base.rssMiB < 300, `RSS bounded (base ${round(base.rssMiB)} MiB, peak ${round(peakRss)} MiB)`)
  t.ok(end.fds - base.fds < 30, `fds back near the start (${base.fds} -> ${end.fds}, peak ${peakFds})`)

  recordCase('abuse', {
    group: 'abuse',
    summary: `Floods and scans on the public side during ${calls} legitimate calls at 40 cps (rate limit 200 rps/source, maxConnections 200)`,
    figures: {
      ...tried,
      'flood answered 503 by the rate limit': limited,
      'flood INVITEs that reached a backend': passed,
      'peak TCP connections': maxTcp,
      'RSS base / peak (MiB)': `${round(base.rssMiB)} / ${round(peakRss)}`,
      'fds base / peak / end': `${base.fds} / ${peakFds} / ${end.fds}`,
      'legitimate calls completed': `${result.successful}/${calls}`,
      'legitimate calls failed': result.failed,
      'replies naming a backend': leaked,
    },
    passed: ratio >= 0.999 && leaked === 0,
  })
})
