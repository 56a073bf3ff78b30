import t from 'tap'
import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { FLAGS, type EdgeConfig } from '../../src/edge/config.js'
import { createLogger } from '../../src/edge/logger.js'
import { runCli, usage, type CliIo, type EdgeHandle } from '../../src/edge/cli.js'
import { VERSION } from '../../src/version.js'

const SECRET = 'cli-test-secret-0123456789'

function harness(files: Record<string, string> = {}, edgeOverrides: Partial<EdgeHandle> = {}) {
  const out: string[] = []
  const err: string[] = []
  const logs: Array<Record<string, unknown>> = []
  const calls: string[] = []
  const reloads: EdgeConfig[] = []
  let created: EdgeConfig | undefined
  const signals = new EventEmitter()
  const edge: EdgeHandle = {
    start: async () => void calls.push('start'),
    shutdown: async () => void calls.push('shutdown'),
    reload: (c) => {
      reloads.push(c)
      return ['listen']
    },
    ...edgeOverrides,
  }
  const io: CliIo = {
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
    env: { SIPEDGE_SECRET: SECRET },
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
    signals,
    loadEdge: async () => ({
      createEdge: async ({ config }) => {
        created = config
        return edge
      },
    }),
    createLogger: (c) =>
      createLogger(c, new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>)
          cb()
        },
      })),
  }
  return { io, out, err, logs, calls, reloads, signals, files, created: () => created }
}

const tick = () => new Promise((r) => setTimeout(r, 20))

t.test('--help lists every flag, --version prints the version', async (t) => {
  const h = harness()
  t.equal(await runCli(['--help'], h.io), 0)
  for (const f of FLAGS) t.ok(h.out.join('').includes(`${f.flag} `) || h.out.join('').includes(`${f.flag}  `), `--${f.flag}`)
  t.match(h.out.join(''), /check-config FILE/)
  t.equal(await runCli(['-v'], h.io), 0)
  t.equal(h.out.at(-1), `${VERSION}\n`)
  t.equal(await runCli(['help'], h.io), 0)
  t.equal(h.out.at(-1), usage())
  t.equal(await runCli(['frobnicate'], h.io), 2)
  t.match(h.err.join(''), /unknown command "frobnicate"/)
})

t.test('check-config', async (t) => {
  const h = harness({ 'good.yaml': 'backends: [sip:127.0.1.1:5080]\n', 'bad.yaml': 'listen: [udp:1.2.3]\nprobe: {intervalMs: 1}\n' })
  t.equal(await runCli(['check-config', 'good.yaml'], h.io), 0)
  t.equal(h.out.join(''), 'good.yaml: OK\n', 'SIPEDGE_SECRET from the environment counts')
  t.equal(await runCli(['check-config', 'bad.yaml'], h.io), 1)
  t.match(h.err.join(''), /bad\.yaml: 2 error\(s\):\n  - listen\[0\]: "udp:1\.2\.3" is not proto:host\[:port\].*\n  - probe\.intervalMs: 1 is out of range/)
  t.equal(await runCli(['check-config', 'missing.yaml'], h.io), 1)
  t.match(h.err.at(-1), /cannot read missing\.yaml/)
  t.equal(await runCli(['check-config'], h.io), 2)
})

t.test('invalid config: errors on stderr, exit 2, the edge is never created', async (t) => {
  const h = harness()
  t.equal(await runCli(['--listen', 'udp:1.2.3', '--algorithm', 'random'], h.io), 2)
  const e = h.err.join('')
  t.match(e, /invalid configuration, not starting/)
  t.match(e, /listen\[0\]: "udp:1\.2\.3"/)
  t.match(e, /algorithm: "random" must be one of/)
  t.equal(h.created(), undefined)
})

t.test('limits.heapGrowthPercent is handed to V8 before the edge starts, and said in the running line', async (t) => {
  const h = harness({ 'e.yaml': 'backends: [sip:127.0.1.1:5080]\nlogLevel: info\nlimits:\n  heapGrowthPercent: 10\n' })
  const done = runCli(['--config', 'e.yaml'], h.io)
  await tick()
  t.ok(h.logs.some((l) => String(l.msg).startsWith('sipedge running') && l.heapGrowthPercent === 10))
  h.signals.emit('SIGTERM')
  t.equal(await done, 0)
})

t.test('runs the edge; SIGHUP reloads and reports what needs a restart; SIGTERM drains and exits 0', async (t) => {
  const h = harness({ 'e.yaml': 'backends: [sip:127.0.1.1:5080]\nlogLevel: info\n' })
  const done = runCli(['--config', 'e.yaml'], h.io)
  await tick()
  t.same(h.calls, ['start'])
  t.same(h.created()?.backends, ['sip:127.0.1.1:5080'])
  t.ok(h.logs.some((l) => String(l.msg).startsWith('sipedge running') && l.config === 'e.yaml'))

  h.files['e.yaml'] = 'backends: [sip:127.0.1.1:5080, sip:127.0.1.2:5080]\nlogLevel: debug\n'
  h.signals.emit('SIGHUP')
  await tick()
  t.equal(h.reloads.length, 1)
  t.same(h.reloads[0]!.backends, ['sip:127.0.1.1:5080', 'sip:127.0.1.2:5080'])
  t.equal(h.reloads[0]!.secret, SECRET)
  t.match(h.logs.find((l) => l.msg === 'SIGHUP: config reloaded'), { applied: ['backends', 'logLevel'] })
  t.match(h.logs.find((l) => String(l.msg).includes('need a restart')), { keys: ['listen'] })

  h.files['e.yaml'] = 'backends: [nonsense]\n'
  h.signals.emit('SIGHUP')
  await tick()
  t.equal(h.reloads.length, 1, 'an invalid file is not applied')
  t.match(h.logs.find((l) => String(l.msg).startsWith('SIGHUP: config invalid')), { errors: [/backends\[0\]/] })

  h.signals.emit('SIGTERM')
  t.equal(await done, 0)
  t.same(h.calls, ['start', 'shutdown'])
  t.equal(h.signals.listenerCount('SIGTERM') + h.signals.listenerCount('SIGHUP'), 0, 'handlers removed')
})

t.test('a generated secret is kept across SIGHUP', async (t) => {
  const h = harness()
  delete h.io.env.SIPEDGE_SECRET
  const done = runCli([], h.io)
  await tick()
  h.signals.emit('SIGHUP')
  await tick()
  t.equal(h.reloads[0]!.secret, h.created()!.secret)
  h.signals.emit('SIGINT')
  t.equal(await done, 0)
})

t.test('a second signal exits at once with 1; start failure exits 1', async (t) => {
  const h = harness({}, { shutdown: () => new Promise(() => {}) })
  const done = runCli([], h.io)
  await tick()
  h.signals.emit('SIGTERM')
  h.signals.emit('SIGTERM')
  t.equal(await done, 1)
  const f = harness({}, { start: async () => { throw new Error('EADDRINUSE 127.0.0.1:5060') } })
  t.equal(await runCli([], f.io), 1)
  t.match(f.logs.find((l) => l.level === 60), { msg: 'sipedge failed to start', err: { message: /EADDRINUSE/ } })
})

/**
 * The real binary as built (npm ci builds dist/): exit codes and output. Not through tap's TypeScript loader:
 * type-checking the sources in a fresh process takes 10-20 s on a loaded machine.
 */
function runBin(args: string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/edge/cli.js', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('the binary: check-config on the example, invalid flags exit 2', async (t) => {
  const [ok, bad] = await Promise.all([
    runBin(['check-config', 'examples/sipedge.yaml'], { SIPEDGE_SECRET: 'a-real-one-0123456789' }),
    runBin(['--probe-interval-ms', 'often']),
  ])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(ok.stdout, 'examples/sipedge.yaml: OK\n')
  t.equal(bad.code, 2)
  t.match(bad.stderr, /probe\.intervalMs: "often" is not an integer \(flag --probe-interval-ms\)/)
})
