// The latency the edge adds: INVITE -> 100 Trying measured by the caller with µs resolution (SIPp's is 1 ms),
// at a fixed call rate, through an edge with two built-in answering backends (edge, backends and caller each in their own process):
//   npm run build && node bench/latency.mjs [--rate 1000] [--seconds 10]
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runCaller } from '../dist/index.js'

const { values } = parseArgs({ options: { rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' } } })
const rate = Number(values.rate)
const calls = rate * Number(values.seconds)
// Backends in their own process too: only the caller shares this event loop.
const backendProc = spawn(process.execPath, ['--input-type=module', '-e', `
  import { StandInBackend } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
  for (const host of ['127.0.1.1', '127.0.1.2']) await new StandInBackend({ host, port: 5080 }).start()
`], { stdio: 'inherit' })
const cli = fileURLToPath(new URL('../dist/edge/cli.js', import.meta.url))
const edgeNodeArgs = (process.env.EDGE_NODE_ARGS ?? '').split(' ').filter(Boolean)
// With --trace-gc the edge's stdout is read here: the GC lines of the measured run are summed per kind.
const traceGc = edgeNodeArgs.includes('--trace-gc')
const gcLines = []
let measuring = false
const edge = spawn(process.execPath, [...edgeNodeArgs, cli, '--listen', 'udp:127.0.0.1:5060', '--backend', 'sip:127.0.1.1:5080', '--backend', 'sip:127.0.1.2:5080', '--no-probe', '--log-level', 'warn'], {
  env: { ...process.env, SIPEDGE_SECRET: 'latency-bench-secret-01' },
  stdio: ['ignore', traceGc ? 'pipe' : 'inherit', 'inherit'],
})
if (traceGc) {
  let rest = ''
  edge.stdout.on('data', (d) => {
    const lines = (rest + d).split('\n')
    rest = lines.pop()
    for (const l of lines) if (measuring && / ms: /.test(l)) gcLines.push(l)
  })
}
/** Count, total and longest pause per GC kind ("Scavenge", "Mark-Compact", ...) from --trace-gc lines. */
function gcSummary(lines) {
  const kinds = new Map()
  for (const l of lines) {
    const m = / ms: ([A-Za-z-]+(?: \(reduce\))?) .*?MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/.exec(l)
    if (!m) continue
    const k = kinds.get(m[1]) ?? { n: 0, total: 0, max: 0 }
    const ms = Number(m[2])
    k.n++; k.total += ms; k.max = Math.max(k.max, ms)
    kinds.set(m[1], k)
  }
  return [...kinds].map(([kind, k]) => `${kind} ${k.n}x, ${k.total.toFixed(1)} ms in all, longest ${k.max.toFixed(2)} ms`).join('; ')
}
/**
 * The same INVITE -> 100 Trying read off the loopback interface with kernel timestamps (lib/wire_latency.py,
 * needs root and python3: the bench runs in ./test/netns.sh): the edge's own time, without the caller's event
 * loop (its GC pauses and wake-ups count in the caller's figure above). Undefined when it cannot run.
 */
function startWireLatency() {
  const py = spawn('python3', [fileURLToPath(new URL('./lib/wire_latency.py', import.meta.url)), '5060'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  py.stdout.on('data', (d) => (out += d))
  const exited = new Promise((resolve) => py.on('close', resolve))
  py.on('error', () => {})
  return {
    async stop() {
      py.kill('SIGTERM')
      await exited
      try {
        return JSON.parse(out)
      } catch {
        return undefined
      }
    },
  }
}
const stopAll = async () => {
  edge.kill('SIGKILL')
  backendProc.kill('SIGKILL')
}
process.on('SIGINT', () => stopAll().then(() => process.exit(130)))
await new Promise((r) => setTimeout(r, 1500))
try {
  // Warm-up (JIT) first, then the measured run.
  await runCaller({ edge: { host: '127.0.0.1', port: 5060 }, host: '127.0.0.10', calls: Math.min(2000, calls), rate })
  measuring = true
  const wire = startWireLatency()
  const r = await runCaller({ edge: { host: '127.0.0.1', port: 5060 }, host: '127.0.0.11', calls, rate })
  measuring = false
  const onWire = await wire?.stop()
  const q = (a, p) => a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]
  const trying = [...r.tryingMs].sort((a, b) => a - b)
  const setup = [...r.setupMs].sort((a, b) => a - b)
  console.log(`${calls} calls at ${rate}/s through sipedge: ${r.completed} completed, ${r.failed} failed`)
  console.log(`INVITE -> 100 Trying  p50 ${q(trying, 50).toFixed(3)} ms  p90 ${q(trying, 90).toFixed(3)} ms  p95 ${q(trying, 95).toFixed(3)} ms  p99 ${q(trying, 99).toFixed(3)} ms  max ${trying.at(-1).toFixed(3)} ms  (n=${trying.length})`)
  console.log(`INVITE -> 200 OK      p50 ${q(setup, 50)} ms  p99 ${q(setup, 99)} ms (ms resolution)`)
  if (onWire && onWire.n > 0) {
    const w = onWire.ms
    console.log(`on the wire (edge in -> out, kernel timestamps): p50 ${q(w, 50).toFixed(3)} ms  p90 ${q(w, 90).toFixed(3)} ms  p95 ${q(w, 95).toFixed(3)} ms  p99 ${q(w, 99).toFixed(3)} ms  max ${w.at(-1).toFixed(3)} ms  (n=${onWire.n})`)
  }
  if (traceGc) console.log(`edge GC during the measured run (${edgeNodeArgs.join(' ')}): ${gcSummary(gcLines) || 'none'}`)
} finally {
  await stopAll()
}
