#!/usr/bin/env node
// Micro-harness without SIPp: UDP clients on 127.0.0.x run complete calls (INVITE/200/ACK/BYE/200)
// as fast as the proxy allows, through sipedge or Kamailio to an in-script echo backend, to find the
// proxy's own ceiling in forwarded messages/s and its CPU per message. See bench/README.md.
import { parseArgs } from 'node:util'
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { armDeadline, stopAll } from './lib/children.mjs'
import { TreeSampler, treeCpuSeconds } from './lib/procstat.mjs'
import { startProxy, startEchoBackendProcess, ROOT } from './lib/proxy.mjs'
import { UacDriver } from './lib/uac-driver.mjs'
import { fmt, mb, table } from './lib/stats.mjs'

const { values: opt } = parseArgs({
  options: {
    proxy: { type: 'string', default: 'sipedge' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    clients: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '200' },
    workers: { type: 'string', default: '1' },
    deadline: { type: 'string', default: '120' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  process.stdout.write('usage: node bench/blast.mjs [--proxy sipedge|kamailio] [--seconds 10] [--warmup 2] [--clients 8] '
    + '[--concurrency 200] [--workers 1] [--deadline 120]\n')
  process.exit(0)
}

const BACKENDS = ['127.0.1.1:5080', '127.0.1.2:5080']
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const tmpDir = mkdtempSync(join(tmpdir(), 'sipedge-blast-'))
armDeadline(Number(opt.deadline) * 1000, () => { stopAll().finally(() => process.exit(3)) })

let backend, proxy, driver
try {
  backend = await startEchoBackendProcess(BACKENDS, tmpDir)
  proxy = await startProxy(opt.proxy, { tmpDir, backends: BACKENDS, workers: Number(opt.workers) })
  let running = true
  driver = new UacDriver({
    target: proxy.target,
    clients: Number(opt.clients),
    onDone: () => { if (running) driver.startCall() },
  })
  await driver.open()
  const sweeper = setInterval(() => driver.sweep(), 250)
  for (let i = 0; i < Number(opt.concurrency); i++) driver.startCall()
  await sleep(Number(opt.warmup) * 1000)

  const c0 = { ...driver.counts }
  const b0 = await backend.counts()
  const sampler = new TreeSampler(proxy.pid)
  sampler.start()
  const self0 = process.cpuUsage()
  const be0 = treeCpuSeconds(backend.pid)
  await sleep(Number(opt.seconds) * 1000)
  const c1 = { ...driver.counts }
  const b1 = await backend.counts()
  const cpu = sampler.stop()
  const self1 = process.cpuUsage(self0)
  const beCpu = treeCpuSeconds(backend.pid) - be0
  running = false
  clearInterval(sweeper)
  await sleep(500)

  const d = (k) => c1[k] - c0[k]
  const backendMsgs = (b1.INVITE + b1.ACK + b1.BYE + b1.other) - (b0.INVITE + b0.ACK + b0.BYE + b0.other)
  const forwarded = backendMsgs + d('ok') + d('errors')
  const wall = cpu.wallSeconds
  const res = {
    proxy: proxy.name,
    when: new Date().toISOString(),
    seconds: wall,
    concurrency: Number(opt.concurrency),
    clients: Number(opt.clients),
    workers: Number(opt.workers),
    callsPerSecond: d('completed') / wall,
    forwardedPerSecond: forwarded / wall,
    lost: d('lost'),
    errors: d('errors'),
    proxyCpuPercent: cpu.cpuPercent,
    proxyCpuUsPerMessage: forwarded ? (cpu.cpuSeconds * 1e6) / forwarded : null,
    proxyCpuUsPerCall: d('completed') ? (cpu.cpuSeconds * 1e6) / d('completed') : null,
    proxyPeakPss: cpu.peakPss,
    driverCpuPercent: (100 * (self1.user + self1.system)) / 1e6 / wall,
    backendCpuPercent: (100 * beCpu) / wall,
    hostBusyPercent: cpu.hostBusyPercent,
  }
  process.stdout.write(`\nblast through ${res.proxy} (${res.clients} clients, ${res.concurrency} calls in flight, ${fmt(wall, 1)} s)\n\n`)
  process.stdout.write(table(
    ['calls/s', 'fwd msg/s', 'µs/msg', 'µs/call', 'proxy cpu%', 'driver cpu%', 'backend cpu%', 'host busy%', 'lost', 'errors', 'MB'],
    [[fmt(res.callsPerSecond), fmt(res.forwardedPerSecond), fmt(res.proxyCpuUsPerMessage, 1), fmt(res.proxyCpuUsPerCall),
      fmt(res.proxyCpuPercent), fmt(res.driverCpuPercent), fmt(res.backendCpuPercent), fmt(res.hostBusyPercent * 2) + '/200',
      res.lost, res.errors, mb(res.proxyPeakPss)]],
  ) + '\n')
  if (res.driverCpuPercent > 90) process.stdout.write('note: the driver is near one full core: the ceiling may be the driver\'s, not the proxy\'s\n')
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  const out = join(ROOT, 'bench/results', `blast-${res.proxy}-${res.when.replace(/[:.]/g, '-')}.json`)
  writeFileSync(out, JSON.stringify(res, null, 2))
  process.stdout.write(`result: ${out}\n`)
} catch (e) {
  process.stderr.write(`blast.mjs: ${e.message}\n`)
  process.exitCode = 1
} finally {
  driver?.close()
  await proxy?.stop()
  await backend?.stop()
  await stopAll()
  rmSync(tmpDir, { recursive: true, force: true })
}
process.exit(process.exitCode ?? 0)
