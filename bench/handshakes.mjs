// TLS and WSS handshakes per second against one edge transport (issue 14, a first number; not yet bench:load).
// Client and server share this process, so the figure is for both ends of each handshake on one core.
// Usage: npm run build && node bench/handshakes.mjs [seconds per transport, default 5]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, createSecureContext } from 'node:tls'
import { WebSocket } from 'ws'
import { parseListenSpec, Transports } from '../dist/transport/index.js'

const seconds = Number(process.argv[2] ?? 5)
const dir = mkdtempSync(join(tmpdir(), 'sipedge-hs-'))
const cert = join(dir, 'c.pem')
const key = join(dir, 'c.key')
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
  '-subj', '/CN=bench', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
// One client context for all handshakes: building one per connection (parsing the CA) would dominate.
const secureContext = createSecureContext({ ca: readFileSync(cert) })
const noop = () => {}
const tr = new Transports(['tls:127.0.0.1:0', 'wss:127.0.0.1:0'].map((s) => parseListenSpec(s, 'public')),
  { onMessage: noop, onParseError: noop, onSendError: noop }, { tls: { certFile: cert, keyFile: key }, maxConnections: 100_000 })
await tr.start()
const [tls, wss] = tr.listeners

function tlsOnce() {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: tls.port, secureContext }, () => { s.destroy(); resolve() })
    s.on('error', reject)
  })
}
function wssOnce() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${wss.port}/`, ['sip'], { secureContext })
    ws.on('open', () => { ws.terminate(); resolve() })
    ws.on('error', reject)
  })
}

async function run(name, once, parallel = 8) {
  const end = Date.now() + seconds * 1000
  const cpu0 = process.cpuUsage()
  let n = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (Date.now() < end) { await once(); n++ }
  }))
  const cpu = process.cpuUsage(cpu0)
  const cpuS = (cpu.user + cpu.system) / 1e6
  console.log(`${name}: ${Math.round(n / seconds)} handshakes/s, ${(cpuS / n * 1e6).toFixed(0)} µs CPU each (client + server), ${n} in ${seconds} s`)
}

await run('TLS (ECDSA P-256, full handshake)', tlsOnce)
await run('WSS (TLS + HTTP upgrade, subprotocol sip)', wssOnce)
await tr.stop()
rmSync(dir, { recursive: true, force: true })
