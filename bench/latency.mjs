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
const edge = spawn(process.execPath, [...(process.env.EDGE_NODE_ARGS ?? '').split(' ').filter(Boolean), cli, '--listen', 'udp:127.0.0.1:5060', '--backend', 'sip:127.0.1.1:5080', '--backend', 'sip:127.0.1.2:5080', '--no-probe', '--log-level', 'warn'], {
  env: { ...process.env, SIPEDGE_SECRET: 'latency-bench-secret-01' },
  stdio: 'inherit',
})
const stopAll = async () => {
  edge.kill('SIGKILL')
  backendProc.kill('SIGKILL')
}
process.on('SIGINT', () => stopAll().then(() => process.exit(130)))
await new Promise((r) => setTimeout(r, 1500))
try {
  // Warm-up (JIT) first, then the measured run.
  await runCaller({ edge: { host: '127.0.0.1', port: 5060 }, host: '127.0.0.10', calls: Math.min(2000, calls), rate })
  const r = await runCaller({ edge: { host: '127.0.0.1', port: 5060 }, host: '127.0.0.11', calls, rate })
  const q = (a, p) => a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]
  const trying = [...r.tryingMs].sort((a, b) => a - b)
  const setup = [...r.setupMs].sort((a, b) => a - b)
  console.log(`${calls} calls at ${rate}/s through sipedge: ${r.completed} completed, ${r.failed} failed`)
  console.log(`INVITE -> 100 Trying  p50 ${q(trying, 50).toFixed(3)} ms  p90 ${q(trying, 90).toFixed(3)} ms  p95 ${q(trying, 95).toFixed(3)} ms  p99 ${q(trying, 99).toFixed(3)} ms  max ${trying.at(-1).toFixed(3)} ms  (n=${trying.length})`)
  console.log(`INVITE -> 200 OK      p50 ${q(setup, 50)} ms  p99 ${q(setup, 99)} ms (ms resolution)`)
} finally {
  await stopAll()
}
