import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { runCaller, percentile } from './caller.js'
import { createEdge } from './edge.js'
import { StandInBackend } from './standin.js'

const SIPP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/sipp')

interface Backend {
  id: string
  kind: string
  stop(): Promise<void>
}

/**
 * `sipedge demo`: an edge on 127.0.0.1 in front of three stand-in Asterisks on 127.0.1.1-3 (SIPp UAS when
 * sipp is installed, else sipedge's own answering backend), the third answering 503 so failover shows,
 * and a burst of full calls through it. Prints what happened in terms a newcomer reads at a glance.
 */
export async function runDemo(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  try {
    return await demo(argv, out)
  } catch (e) {
    // A port in use or a bad flag is the operator's to fix: one line with the way out, no stack trace.
    const code = (e as NodeJS.ErrnoException).code ?? ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code
    const hint =
      code === 'EADDRINUSE' ? '\n  a port the demo needs is taken: pick a free one for the edge with --port (e.g. sipedge demo --port 5070);' +
        ' the stand-in backends use 127.0.1.1-3:5080' : ''
    err.write(`sipedge demo: ${(e as Error).message}${hint}\n`)
    return 1
  }
}

async function demo(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      calls: { type: 'string', default: '200' },
      rate: { type: 'string', default: '50' },
      'hold-ms': { type: 'string', default: '0' },
      'no-sipp': { type: 'boolean', default: false },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    out.write('sipedge demo [--calls N] [--rate CPS] [--hold-ms MS] [--port P] [--no-sipp]\n')
    return 0
  }
  const calls = positive(values.calls!, 'calls')
  const rate = positive(values.rate!, 'rate')
  const holdMs = Number(values['hold-ms'])
  const useSipp = !values['no-sipp'] && spawnSync('sipp', ['-v']).error === undefined && existsSync(join(SIPP_DIR, 'uas.xml'))
  const edgeHost = '127.0.0.1'
  const edgePort = values.port ? positive(values.port, 'port') : await portOr(edgeHost, 5060)

  const backends: Backend[] = []
  const work = mkdtempSync(join(tmpdir(), 'sipedge-demo-'))
  try {
    const plan = [
      { host: '127.0.1.1', fail: false },
      { host: '127.0.1.2', fail: false },
      { host: '127.0.1.3', fail: true },
    ]
    for (const p of plan) backends.push(useSipp ? await sippBackend(p.host, 5080, p.fail, work) : await builtInBackend(p.host, 5080, p.fail))
    const edge = await createEdge({
      listen: [`udp:${edgeHost}:${edgePort}`],
      backends: backends.map((b) => `sip:${b.id}`),
      probe: { enabled: false, intervalMs: 5000, timeoutMs: 2000, failThreshold: 3, okThreshold: 2 },
      logger: pino({ level: 'warn' }),
      secret: randomBytes(24).toString('base64url'),
    })
    await edge.start()
    out.write(
      `sipedge demo (Node ${process.version}): edge on udp:${edgeHost}:${edgePort} in front of ${backends.length} stand-in Asterisks ` +
        `(${useSipp ? 'SIPp UAS' : "sipedge's built-in answering backend"}):\n` +
        backends.map((b) => `  ${b.id.padEnd(16)} ${b.kind}\n`).join('') +
        `driving ${calls} calls at ${rate} calls/s (INVITE/100/180/200/ACK/BYE/200)...\n`,
    )
    const tty = (out as NodeJS.WriteStream).isTTY === true
    let lastShown = 0
    const result = await runCaller({
      edge: { host: edgeHost, port: edgePort },
      host: '127.0.0.1',
      calls,
      rate,
      holdMs,
      forbidden: ['127.0.1.'],
      onProgress: (done, ok, failed) => {
        const pct = Math.floor((done / calls) * 100)
        if (tty) out.write(`\r  progress ${done}/${calls} calls  ok ${ok}  failed ${failed}   `)
        else if (pct >= lastShown + 25 || done === calls) {
          lastShown = pct - (pct % 25)
          out.write(`  progress ${done}/${calls} calls (ok ${ok}, failed ${failed})\n`)
        }
      },
    })
    if (tty) out.write('\n')
    const perBackend = edge.callsByBackend()
    const failovers = edge.stats.counters.failovers
    await edge.stop()
    const setup = [...result.setupMs].sort((a, b) => a - b)
    out.write(
      `\nsummary\n` +
        `  calls completed    ${result.completed} of ${calls}${result.failed ? `  (${result.failed} failed)` : ''}\n` +
        `  calls per backend  ${backends.map((b) => `${b.id} ${perBackend.find((x) => x.hostport === b.id)?.calls ?? 0}`).join(', ')}\n` +
        `  failovers          ${failovers} (INVITEs answered 503 by 127.0.1.3, retried on another backend unseen by the caller)\n` +
        `  setup time         p50 ${percentile(setup, 50)} ms, p99 ${percentile(setup, 99)} ms (INVITE -> 200 OK)\n` +
        (result.leaks.length === 0
          ? `  topology hiding    no internal address leaked (${result.messages} messages to the caller checked for 127.0.1.x)\n`
          : `  topology hiding    LEAK: ${result.leaks.length} header(s) carried an internal address:\n    ${result.leaks.join('\n    ')}\n`) +
        (result.failures.length ? `  failures           ${result.failures.join('\n                     ')}\n` : ''),
    )
    return result.failed === 0 && result.leaks.length === 0 ? 0 : 1
  } finally {
    for (const b of backends) await b.stop()
    rmSync(work, { recursive: true, force: true })
  }
}

function positive(text: string, what: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${what} must be a positive integer, got "${text}"`)
  return n
}

/** `preferred` when it is free on UDP (what the edge binds) and TCP, else any free port (5060 may be taken by a real proxy). */
async function portOr(host: string, preferred: number): Promise<number> {
  const tryTcp = (port: number): Promise<number> =>
    new Promise((resolvePort, reject) => {
      const srv = createServer()
      srv.once('error', reject)
      srv.listen(port, host, () => {
        const p = (srv.address() as { port: number }).port
        srv.close(() => resolvePort(p))
      })
    })
  const tryUdp = (port: number): Promise<number> =>
    new Promise((resolvePort, reject) => {
      const s = createSocket('udp4')
      s.once('error', (e) => {
        s.close()
        reject(e)
      })
      s.bind(port, host, () => {
        const p = s.address().port
        s.close(() => resolvePort(p))
      })
    })
  try {
    return await tryTcp(await tryUdp(preferred))
  } catch {
    for (let i = 0; i < 20; i++) {
      try {
        return await tryTcp(await tryUdp(0))
      } catch {
        // that UDP port is taken on TCP: another one
      }
    }
    return tryUdp(0)
  }
}

async function builtInBackend(host: string, port: number, fail: boolean): Promise<Backend> {
  const b = new StandInBackend({ host, port, ...(fail ? { failWith: 503 } : {}) })
  await b.start()
  return { id: b.id, kind: fail ? 'answers 503 Service Unavailable (to show failover)' : 'answers calls', stop: () => b.stop() }
}

async function sippBackend(host: string, port: number, fail: boolean, dir: string): Promise<Backend> {
  const scenario = join(SIPP_DIR, fail ? 'uas_503.xml' : 'uas.xml')
  const child: ChildProcess = spawn('sipp', ['-sf', scenario, '-i', host, '-p', String(port), '-bind_local', '-nostdin', '-aa'], {
    cwd: dir,
    stdio: 'ignore',
  })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  // SIPp needs a moment to bind; the edge's first INVITE would otherwise meet a closed port.
  await new Promise((r) => setTimeout(r, 300))
  if (child.exitCode !== null) throw new Error(`sipp could not start on ${host}:${port} (is the port taken?)`)
  return {
    id: `${host}:${port}`,
    kind: fail ? 'SIPp uas_503.xml: answers 503 (to show failover)' : 'SIPp uas.xml: answers calls',
    stop: async () => {
      child.kill('SIGKILL')
      await exited
    },
  }
}
