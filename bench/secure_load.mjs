#!/usr/bin/env node
// CPU per call over TLS and over WSS against UDP, one run, same edge process (issue 14). SIPp has no TLS, so
// a Node driver places complete calls (INVITE/200/ACK/BYE/200) at a fixed rate over each transport in turn:
// UDP datagrams, TLS connections (certificate verified), secure WebSockets (subprotocol sip, `.invalid` Via
// as browsers write it). The edge (dist/edge/cli.js, its own process) forwards them to the UDP echo backend;
// its CPU (user+sys from /proc) over each window, divided by the calls completed in it, is the figure.
// Connections are opened before the window: this measures calls, not handshakes (bench/handshakes.mjs).
// Usage: npm run build && node bench/secure_load.mjs [--rate 150] [--seconds 5] [--clients 8] [--rounds 3]
import { execFileSync } from 'node:child_process'
import dgram from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as connectTls } from 'node:tls'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { armDeadline, spawnTracked, stopAll, stopTracked } from './lib/children.mjs'
import { TreeSampler, waitUdpBound } from './lib/procstat.mjs'
import { ROOT, startEchoBackendProcess } from './lib/proxy.mjs'
import { buildInDialog, buildInvite, cseqMethod, dialogFrom200, header, parseSip } from './lib/sipmsg.mjs'
import { fmt, table } from './lib/stats.mjs'

const { values: opt } = parseArgs({
  options: {
    rate: { type: 'string', default: '150' },
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    port: { type: 'string', default: process.env.BENCH_SECURE_PORT ?? '5090' },
    deadline: { type: 'string', default: '240' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  process.stdout.write('usage: node bench/secure_load.mjs [--rate 150] [--seconds 5] [--clients 8] [--rounds 3] [--port 5090] [--deadline 240]\n')
  process.exit(0)
}
const RATE = Number(opt.rate)
const SECONDS = Number(opt.seconds)
const CLIENTS = Number(opt.clients)
const ROUNDS = Number(opt.rounds)
const IP = '127.0.0.1'
const PORT = Number(opt.port)
const BACKENDS = ['127.0.1.1:5080', '127.0.1.2:5080']
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
armDeadline(Number(opt.deadline) * 1000, () => { stopAll().finally(() => process.exit(3)) })

const tmpDir = mkdtempSync(join(tmpdir(), 'sipedge-secure-load-'))
const cert = join(tmpDir, 'edge.pem')
const key = join(tmpDir, 'edge.key')
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
  '-subj', '/CN=bench', '-days', '1', '-addext', `subjectAltName=IP:${IP}`], { stdio: 'ignore' })
const ca = readFileSync(cert)

/** Splits a byte stream into SIP messages by Content-Length. */
function streamFramer(onMessage) {
  let buf = Buffer.alloc(0)
  return (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    for (;;) {
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = buf.subarray(0, end).toString('latin1')
      const m = /\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)/i.exec(head)
      const total = end + 4 + (m ? Number(m[1]) : 0)
      if (buf.length < total) return
      onMessage(buf.subarray(0, total))
      buf = buf.subarray(total)
    }
  }
}

/** One client connection (or UDP socket) of a transport: send(buf), and messages to onMessage. */
async function openClient(proto, i, onMessage) {
  if (proto === 'udp') {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
    const ip = `127.0.0.${10 + i}`
    await new Promise((res, rej) => { s.once('error', rej); s.bind(0, ip, res) })
    s.on('message', onMessage)
    return { local: `${ip}:${s.address().port}`, via: 'UDP', send: (b) => s.send(b, PORT, IP), close: () => s.close() }
  }
  if (proto === 'tls') {
    const s = connectTls({ host: IP, port: PORT + 1, ca })
    await new Promise((res, rej) => { s.once('secureConnect', res); s.once('error', rej) })
    s.on('data', streamFramer(onMessage))
    return { local: `${IP}:${s.localPort}`, via: 'TLS', send: (b) => s.write(b), close: () => s.destroy() }
  }
  const ws = new WebSocket(`wss://${IP}:${PORT + 2}/ws`, ['sip'], { ca })
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej) })
  ws.on('message', (d) => onMessage(Buffer.isBuffer(d) ? d : Buffer.from(d)))
  return { local: `b${i}x${Date.now() % 1e6}.invalid`, via: 'WSS', send: (b) => ws.send(b), close: () => ws.terminate() }
}

/** Places calls at `rate` for `seconds` over `proto`; the edge's CPU is sampled over the window. */
async function runTransport(proto, edgePid, round) {
  const counts = { started: 0, completed: 0, failed: 0 }
  const calls = new Map()
  const run = `${proto}${round}${Math.random().toString(36).slice(2, 6)}`
  const fix = (buf, c) => (c.via === 'UDP' ? buf : Buffer.from(buf.toString('latin1').replace('SIP/2.0/UDP ', `SIP/2.0/${c.via} `), 'latin1'))
  let seq = 0
  const clients = []
  const onMessage = (buf) => {
    let msg
    try { msg = parseSip(buf) } catch { return }
    if (!msg.isResponse || msg.status < 200) return
    const call = calls.get(header(msg, 'call-id') ?? '')
    if (!call) return
    const c = clients[call.ci]
    if (msg.status >= 300) { counts.failed++; counts[msg.status] = (counts[msg.status] ?? 0) + 1; calls.delete(call.callId); return }
    const method = cseqMethod(msg)
    if (method === 'INVITE' && !call.dialog) {
      call.dialog = dialogFrom200(msg)
      const o = { dialog: call.dialog, local: c.local, callId: call.callId, fromTag: call.fromTag }
      c.send(fix(buildInDialog('ACK', 1, { ...o, branch: `${run}a${++seq}` }), c))
      c.send(fix(buildInDialog('BYE', 2, { ...o, branch: `${run}b${++seq}` }), c))
    } else if (method === 'BYE') {
      calls.delete(call.callId)
      counts.completed++
    }
  }
  for (let i = 0; i < CLIENTS; i++) clients.push(await openClient(proto, i, onMessage))
  const start = () => {
    const n = ++seq
    const ci = n % clients.length
    const c = clients[ci]
    const call = { callId: `${run}-${n}@bench`, fromTag: `f${n}`, ci, dialog: null, t0: Date.now() }
    calls.set(call.callId, call)
    counts.started++
    c.send(fix(buildInvite({ target: `${IP}:${PORT}`, local: c.local, callId: call.callId, branch: `${run}i${n}`, fromTag: call.fromTag }), c))
  }
  // Paced: every 10 ms, the calls due by now.
  const pace = async (ms) => {
    const t0 = performance.now()
    let due = 0
    while (performance.now() - t0 < ms) {
      const want = Math.floor(((performance.now() - t0) / 1000) * RATE)
      for (; due < want; due++) start()
      await sleep(10)
    }
  }
  await pace(1000) // warm-up
  const c0 = counts.completed
  const sampler = new TreeSampler(edgePid)
  sampler.start()
  await pace(SECONDS * 1000)
  const cpu = sampler.stop()
  const done = counts.completed - c0
  await sleep(500)
  const lost = calls.size
  for (const c of clients) c.close()
  if (process.env.BENCH_DEBUG) process.stderr.write(`${proto}: ${JSON.stringify(counts)} unfinished ${lost}\n`)
  return { proto, calls: done, cpuUsPerCall: done > 0 ? (cpu.cpuSeconds / done) * 1e6 : null, cpuPercent: cpu.cpuPercent, failed: counts.failed, unfinished: lost, started: counts.started }
}

let backend
let edge
const results = []
try {
  backend = await startEchoBackendProcess(BACKENDS, tmpDir)
  const args = [join(ROOT, 'dist/edge/cli.js'), '--listen', `udp:${IP}:${PORT}`, '--listen', `tls:${IP}:${PORT + 1}`, '--listen', `wss:${IP}:${PORT + 2} path /ws`,
    '--tls-cert', cert, '--tls-key', key, '--ws-max-connections-per-source', '1000',
    '--algorithm', 'round-robin', '--secret', 'bench-secret-0123456789', '--log-level', 'warn', '--no-defence']
  for (const b of BACKENDS) args.push('--backend', `sip:${b}`)
  edge = spawnTracked('sipedge', process.execPath, args, { logFile: join(tmpDir, 'sipedge.log') })
  if (!(await waitUdpBound(IP, PORT, 5000, () => edge.exited))) throw new Error(`the edge did not start (see ${join(tmpDir, 'sipedge.log')})`)
  await sleep(300)
  for (let r = 0; r < ROUNDS; r++) for (const proto of ['udp', 'tls', 'wss']) results.push(await runTransport(proto, edge.child.pid, r))
} catch (e) {
  process.stderr.write(`secure_load.mjs: ${e.message}\n${readFileSync(join(tmpDir, 'sipedge.log'), 'utf8').slice(-1500)}\n`)
  process.exitCode = 1
} finally {
  if (edge) await stopTracked(edge, 2000)
  if (backend) await backend.stop()
  await stopAll()
}

const median = (xs) => { const s = xs.filter((x) => x != null).sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null }
const by = (p) => results.filter((r) => r.proto === p)
const udp = median(by('udp').map((r) => r.cpuUsPerCall))
const rows = ['udp', 'tls', 'wss'].map((p) => {
  const rs = by(p)
  const med = median(rs.map((r) => r.cpuUsPerCall))
  return [p.toUpperCase(), rs.map((r) => fmt(r.cpuUsPerCall)).join(' / '), fmt(med), med && udp ? (med / udp).toFixed(2) : '-',
    rs.map((r) => r.calls).join(' / '), rs.map((r) => r.failed + r.unfinished).join(' / ')]
})
process.stdout.write(`\nsipedge CPU per call by transport — ${RATE} calls/s for ${SECONDS} s per window, ${CLIENTS} clients, ${ROUNDS} rounds `
  + '(UDP, TLS, WSS in turn), UDP echo backend\n(µs/call = edge CPU user+sys per completed call INVITE/200/ACK/BYE/200; connections opened before the window)\n\n')
process.stdout.write(table(['transport', 'µs/call per round', 'median', 'x UDP', 'calls', 'failed+unfinished'], rows) + '\n')
rmSync(tmpDir, { recursive: true, force: true })
process.exit(process.exitCode ?? 0)
