#!/usr/bin/env node
// Memory per dialog: builds N concurrent dialogs (INVITE/200/ACK, no BYE) through the proxy with the
// synthetic UAC driver and the in-script echo backend, then reports the proxy's RSS/PSS (and, for
// sipedge, its V8 heap after a full GC) before, with all dialogs up, and after BYE'ing them all.
// Target for sipedge: <= 2 KB/dialog and 100k dialogs under 300 MB RSS. See bench/README.md.
import { parseArgs } from 'node:util'
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { armDeadline, stopAll } from './lib/children.mjs'
import { smapsSummary, treeMemory } from './lib/procstat.mjs'
import { startProxy, startEchoBackendProcess, ROOT } from './lib/proxy.mjs'
import { UacDriver } from './lib/uac-driver.mjs'
import { fmt, mb, table } from './lib/stats.mjs'

const { values: opt } = parseArgs({
  options: {
    proxy: { type: 'string', default: 'sipedge' },
    dialogs: { type: 'string', default: '100000' },
    window: { type: 'string', default: '300' },
    clients: { type: 'string', default: '16' },
    settle: { type: 'string', default: '3' },
    smaps: { type: 'boolean', default: false },
    deadline: { type: 'string', default: '240' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  process.stdout.write('usage: node bench/dialogs.mjs [--proxy sipedge|kamailio] [--dialogs 100000] [--window 300] '
    + '[--clients 16] [--settle 3] [--deadline 240]\n')
  process.exit(0)
}

const BACKENDS = ['127.0.1.1:5080', '127.0.1.2:5080']
const target = Number(opt.dialogs)
const windowSize = Number(opt.window)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const tmpDir = mkdtempSync(join(tmpdir(), 'sipedge-dialogs-'))
const deadlineMs = Number(opt.deadline) * 1000
const t0 = Date.now()
armDeadline(deadlineMs + 15000, () => { stopAll().finally(() => process.exit(3)) }) // hard stop
const timeLeft = () => deadlineMs - (Date.now() - t0)

let backend, proxy, driver
try {
  backend = await startEchoBackendProcess(BACKENDS, tmpDir)
  proxy = await startProxy(opt.proxy, { tmpDir, backends: BACKENDS, hostForHeap: true })
  const snapshot = async () => ({ ...treeMemory(proxy.pid), heap: proxy.heap ? await proxy.heap() : null })
  await sleep(500)
  const before = await snapshot()

  // establish: keep `window` INVITEs in flight until `target` dialogs are up (or time runs out)
  let started = 0
  let launchPhase = true
  driver = new UacDriver({
    target: proxy.target,
    clients: Number(opt.clients),
    holdDialogs: true,
    onDone: (kind) => {
      if (launchPhase && (kind === 'established' || kind === 'lost') && started < target + driver.counts.lost) { started++; driver.startCall() }
      if (!launchPhase && (kind === 'byeDone' || kind === 'byeLost')) driver.byeOne()
    },
  })
  await driver.open()
  const sweeper = setInterval(() => driver.sweep(), 250)
  const tUp0 = performance.now()
  for (; started < Math.min(windowSize, target); started++) driver.startCall()
  while (driver.counts.established < target && timeLeft() > 60000 && !proxy.isDead()) {
    await sleep(200)
    if (driver.pending() === 0 && driver.counts.established < target) { started++; driver.startCall() } // refill after losses
  }
  launchPhase = false
  const upSeconds = (performance.now() - tUp0) / 1000
  await sleep(Number(opt.settle) * 1000) // let transactions of the last calls finish their timers
  const up = await snapshot()
  if (opt.smaps) process.stderr.write(smapsSummary(proxy.pid))
  const established = driver.counts.established

  // tear down: BYE everything, window-limited
  const tDown0 = performance.now()
  for (let i = 0; i < windowSize; i++) if (!driver.byeOne()) break
  while (driver.counts.byeDone + driver.counts.byeLost < established && timeLeft() > 10000 && !proxy.isDead()) await sleep(200)
  const downSeconds = (performance.now() - tDown0) / 1000
  await sleep(Number(opt.settle) * 1000)
  const after = await snapshot()
  clearInterval(sweeper)

  const per = (a, b) => (established ? (a - b) / established : null)
  const res = {
    proxy: proxy.name,
    when: new Date().toISOString(),
    target,
    established,
    lost: driver.counts.lost,
    errors: driver.counts.errors,
    byeDone: driver.counts.byeDone,
    byeLost: driver.counts.byeLost,
    setupPerSecond: established / upSeconds,
    teardownPerSecond: driver.counts.byeDone / downSeconds,
    before, up, after,
    rssBytesPerDialog: per(up.rss, before.rss),
    pssBytesPerDialog: per(up.pss, before.pss),
    heapBytesPerDialog: up.heap && before.heap ? per(up.heap.heapUsed, before.heap.heapUsed) : null,
  }
  const heapMb = (s) => (s.heap ? mb(s.heap.heapUsed) : '-')
  process.stdout.write(`\n${res.proxy}: ${established}/${target} dialogs up in ${fmt(upSeconds, 1)} s `
    + `(${fmt(res.setupPerSecond)}/s), ${res.lost} lost, ${res.errors} errors; BYE ${res.byeDone} ok / ${res.byeLost} lost\n\n`)
  process.stdout.write(table(
    ['when', 'RSS MB', 'PSS MB', 'heap MB'],
    [['before', mb(before.rss), mb(before.pss), heapMb(before)],
      [`${established} up`, mb(up.rss), mb(up.pss), heapMb(up)],
      ['after BYE', mb(after.rss), mb(after.pss), heapMb(after)]],
  ) + '\n\n')
  if (up.heap) process.stdout.write(`edge memoryUsage with dialogs up: external ${mb(up.heap.external)} MB, arrayBuffers ${mb(up.heap.arrayBuffers)} MB, heapTotal ${mb(up.heap.heapTotal)} MB\n`)
  process.stdout.write(`bytes/dialog: RSS ${fmt(res.rssBytesPerDialog)}, PSS ${fmt(res.pssBytesPerDialog)}, heap ${fmt(res.heapBytesPerDialog)}`
    + `  (target <= 2048; 100k dialogs < 300 MB RSS: ${up.rss < 300 * 1048576 ? 'yes' : 'NO'} at ${established})\n`)
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  const out = join(ROOT, 'bench/results', `dialogs-${res.proxy}-${res.when.replace(/[:.]/g, '-')}.json`)
  writeFileSync(out, JSON.stringify(res, null, 2))
  process.stdout.write(`result: ${out}\n`)
} catch (e) {
  process.stderr.write(`dialogs.mjs: ${e.message}\n`)
  process.exitCode = 1
} finally {
  driver?.close()
  await proxy?.stop()
  await backend?.stop()
  await stopAll()
  if (!process.env.BENCH_KEEP_TMP) rmSync(tmpDir, { recursive: true, force: true })
}
process.exit(process.exitCode ?? 0)
