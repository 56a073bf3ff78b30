#!/usr/bin/env node
// Side-by-side load harness: SIPp UAC -> proxy (sipedge, then Kamailio) -> 2 SIPp UAS.
// Per rate: proxy CPU per call, failures, retransmissions, response times; then a bounded ramp to the
// highest clean rate. Prints one table and writes bench/results/load-<time>.json. See bench/README.md.
// --media: each proxy runs the same rates twice, plain and with every call's SDP anchored in one rtpengine
// (sipedge --media-mode anchor, Kamailio's rtpengine module); the table gives CPU per call of each proxy and
// the INVITE->200 p50 that anchoring adds.
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopAll, armDeadline, stopTracked } from './lib/children.mjs'
import { TreeSampler } from './lib/procstat.mjs'
import { findSipp, scenarioPaths, startUas, runUacStep } from './lib/sipp.mjs'
import { findKamailio } from './lib/kamailio.mjs'
import { startProxy, ROOT } from './lib/proxy.mjs'
import { fmt, mb, table } from './lib/stats.mjs'
import { startRtpengine, sessionsLeft } from './lib/rtpengine.mjs'

const UAS = ['127.0.1.1:5080', '127.0.1.2:5080']
const CLEAN_FAIL_RATIO = 0.001 // < 0.1 % failed calls

const { values: opt } = parseArgs({
  options: {
    rates: { type: 'string', default: '200,500,1000,2000' },
    seconds: { type: 'string', default: '10' },
    quick: { type: 'boolean', default: false },
    proxies: { type: 'string', default: 'sipedge,kamailio' },
    workers: { type: 'string', default: '1' },
    'no-ramp': { type: 'boolean', default: false },
    'ramp-max': { type: 'string', default: '8000' },
    deadline: { type: 'string', default: '360' },
    'keep-tmp': { type: 'boolean', default: false },
    media: { type: 'boolean', default: false },
    // TLS and WSS against UDP (bench/secure_load.mjs, a Node driver: SIPp has no TLS), after the SIPp table.
    'no-secure': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (opt.help) {
  process.stdout.write(`usage: node bench/load.mjs [--rates 200,500,1000,2000] [--seconds 10] [--quick]
  [--proxies sipedge,kamailio] [--workers 1] [--no-ramp] [--ramp-max 8000] [--deadline 360] [--keep-tmp] [--media] [--no-secure]\n`)
  process.exit(0)
}

const rates = (opt.quick ? '200,500' : opt.rates).split(',').map(Number).filter((r) => r > 0)
const seconds = opt.quick ? 3 : Number(opt.seconds)
const rampSeconds = Math.max(3, Math.round(seconds / 2))
const workers = Math.max(1, Number(opt.workers))
const wanted = opt.proxies.split(',').map((s) => s.trim())

const sippVersion = findSipp()
if (!sippVersion) {
  process.stderr.write('load.mjs: sipp not found in PATH (Debian: apt-get install -y sip-tester)\n')
  process.exit(2)
}

let expired = false
armDeadline(Number(opt.deadline) * 1000, () => {
  expired = true
  // killing the children ends the running step at once; the loop then stops and prints what it has
  stopAll()
})

const tmpDir = mkdtempSync(join(tmpdir(), 'sipedge-load-'))
const scen = scenarioPaths(ROOT)
const result = {
  when: new Date().toISOString(),
  sipp: sippVersion,
  scenarios: scen,
  seconds,
  workers,
  rates,
  proxies: {},
}

async function runStep(proxy, rate, secs, label) {
  const sampler = new TreeSampler(proxy.pid)
  sampler.start()
  const r = await runUacStep({
    uacXml: scen.uac, target: proxy.target, rate, calls: rate * secs,
    maxSeconds: secs + 15, tmpDir, label: `${proxy.name}-${label}-${rate}`,
    // Several processes: many caller sockets (the same for both proxies), or the kernel keeps all on one worker.
    manySources: workers > 1,
  })
  const cpu = sampler.stop()
  const step = {
    rate,
    seconds: secs,
    ...r,
    failRatio: r.attempted ? r.failed / r.attempted : 1,
    cpuSeconds: cpu.cpuSeconds,
    cpuPercent: cpu.cpuPercent,
    hostBusyPercent: cpu.hostBusyPercent,
    cpuUsPerCall: r.successful ? (cpu.cpuSeconds * 1e6) / r.successful : null,
    cpuSecondsPer1000: r.successful ? (cpu.cpuSeconds * 1000) / r.successful : null,
    peakPss: cpu.peakPss,
    proxyDied: proxy.isDead(),
  }
  step.clean = step.failRatio < CLEAN_FAIL_RATIO && !step.proxyDied
  process.stderr.write(`  ${proxy.name} ${label} ${rate}/s: ${r.successful}/${r.attempted} ok, ${r.failed} failed, `
    + `${fmt(step.cpuUsPerCall)} µs/call, proxy cpu ${fmt(cpu.cpuPercent)}%, host busy ${fmt(cpu.hostBusyPercent)}%, `
    + `offered ${fmt(r.achievedRate)}/s, retrans ${r.retransmissions}\n`)
  // let retransmission timers and transactions drain before the next step
  await new Promise((res) => setTimeout(res, 1000))
  return step
}

async function benchProxy(name, rtp) {
  const out = { steps: [], ramp: [], maxCleanRate: null, error: null }
  let proxy
  try {
    if (name === 'kamailio' && !findKamailio()) throw new Error('kamailio not installed')
    proxy = await startProxy(name, { tmpDir, backends: UAS, workers, ...(rtp ? { rtpengine: rtp.ng } : {}) })
  } catch (e) {
    out.error = e.message
    process.stderr.write(`${name}: ${e.message}\n`)
    return out
  }
  process.stderr.write(`${name}: pid ${proxy.pid} on ${proxy.target}\n`)
  try {
    let firstFail = false
    for (const rate of rates) {
      if (expired) break
      const s = await runStep(proxy, rate, seconds, 'fixed')
      out.steps.push(s)
      if (s.clean && !firstFail) out.maxCleanRate = Math.max(out.maxCleanRate ?? 0, rate)
      if (!s.clean) firstFail = true
      if (s.proxyDied) break
    }
    // ramp above the fixed rates only while every fixed step was clean; stop at the first failing step
    if (!opt['no-ramp'] && !opt.media && !firstFail && out.steps.length === rates.length) {
      let rate = Math.max(...rates)
      while (!expired && !proxy.isDead()) {
        rate = Math.ceil((rate * 1.5) / 100) * 100
        if (rate > Number(opt['ramp-max'])) break
        const s = await runStep(proxy, rate, rampSeconds, 'ramp')
        out.ramp.push(s)
        if (!s.clean) break
        out.maxCleanRate = rate
        // SIPp itself (same 2 cores) cannot offer more: stop rather than report a SIPp limit as ours
        if (s.achievedRate < rate * 0.9) { out.rampLimitedBySipp = true; break }
      }
    }
  } finally {
    await proxy.stop()
  }
  if (rtp) {
    // every call ended: rtpengine must hold none of them (deletes on BYE)
    await new Promise((res) => setTimeout(res, 500))
    out.rtpengineSessionsLeft = await sessionsLeft(rtp.ngPort)
    process.stderr.write(`  ${name}+media: rtpengine sessions left ${out.rtpengineSessionsLeft}\n`)
  }
  return out
}

let uas = []
let rtp
try {
  for (const hp of UAS) {
    const [ip, port] = hp.split(':')
    uas.push(await startUas(scen.uas, ip, Number(port), tmpDir))
  }
  for (const name of wanted) {
    if (expired) break
    if (name !== 'sipedge' && name !== 'kamailio') { process.stderr.write(`unknown proxy ${name}\n`); continue }
    result.proxies[name] = await benchProxy(name)
    if (opt.media && !expired) {
      // A fresh rtpengine per proxy: what it holds after the run is that proxy's leftovers only.
      rtp = await startRtpengine({ tmpDir: join(tmpDir, name) })
      result.media = { rtpengine: rtp.ng }
      result.proxies[`${name}+media`] = await benchProxy(name, rtp)
      await rtp.stop()
      rtp = undefined
    }
  }
} catch (e) {
  process.stderr.write(`load.mjs: ${e.message}\n`)
  process.exitCode = 1
} finally {
  for (const u of uas) await stopTracked(u, 1000)
  await rtp?.stop()
  await stopAll()
}

printReport(result)
if (opt.media) printMediaReport(result)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
const outFile = join(ROOT, 'bench/results', `load-${result.when.replace(/[:.]/g, '-')}.json`)
writeFileSync(outFile, JSON.stringify({ ...result, deadlineReached: expired }, null, 2))
process.stdout.write(`\nresult: ${outFile}\n`)
if (!opt['keep-tmp']) rmSync(tmpDir, { recursive: true, force: true })
else process.stdout.write(`tmp dir kept: ${tmpDir}\n`)
if (!opt['no-secure'] && !opt.media && !expired && wanted.includes('sipedge')) {
  const secure = spawnSync(process.execPath, [join(ROOT, 'bench/secure_load.mjs'), ...(opt.quick ? ['--seconds', '3', '--rounds', '1'] : [])], { stdio: 'inherit' })
  if (secure.status !== 0 && !process.exitCode) process.exitCode = secure.status ?? 1
}
if (expired) process.exitCode = 3
process.exit(process.exitCode ?? 0)

function printReport(res) {
  const e = res.proxies.sipedge
  const k = res.proxies.kamailio
  const byRate = (p) => new Map([...(p?.steps ?? []), ...(p?.ramp ?? [])].map((s) => [s.rate, s]))
  const es = byRate(e)
  const ks = byRate(k)
  const allRates = [...new Set([...es.keys(), ...ks.keys()])].sort((a, b) => a - b)
  const cell = (s, f) => (s ? f(s) : '-')
  const lat = (s) => `${fmt(s.rttMs.p50)}/${fmt(s.rttMs.p99)}`
  const failPct = (s) => `${fmt(s.failRatio * 100, 2)}%`
  const rows = allRates.map((rate) => {
    const a = es.get(rate)
    const b = ks.get(rate)
    const ratio = a && b && a.cpuUsPerCall && b.cpuUsPerCall ? (a.cpuUsPerCall / b.cpuUsPerCall).toFixed(2) : '-'
    return [
      rate,
      cell(a, (s) => fmt(s.cpuUsPerCall)), cell(b, (s) => fmt(s.cpuUsPerCall)), ratio,
      cell(a, (s) => fmt(s.cpuSecondsPer1000, 3)), cell(b, (s) => fmt(s.cpuSecondsPer1000, 3)),
      cell(a, (s) => fmt(s.cpuPercent)), cell(b, (s) => fmt(s.cpuPercent)),
      cell(a, failPct), cell(b, failPct),
      cell(a, (s) => s.retransmissions), cell(b, (s) => s.retransmissions),
      cell(a, lat), cell(b, lat),
      cell(a, (s) => mb(s.peakPss)), cell(b, (s) => mb(s.peakPss)),
    ]
  })
  process.stdout.write(`\nsipedge vs Kamailio — SIPp ${res.sipp}, ${res.seconds} s per step, workers ${res.workers}, `
    + `UAS ${UAS.join(' ')}\n`)
  process.stdout.write('(e = sipedge, k = Kamailio; µs/call and s/1k = proxy CPU user+sys per successful call; '
    + 'cpu% of one core; rtt = INVITE->200 ms p50/p99; MB = peak PSS)\n\n')
  process.stdout.write(table(
    ['rate/s', 'e µs/call', 'k µs/call', 'e/k', 'e s/1k', 'k s/1k', 'e cpu%', 'k cpu%', 'e fail', 'k fail',
      'e retr', 'k retr', 'e rtt', 'k rtt', 'e MB', 'k MB'],
    rows,
  ) + '\n\n')
  for (const [name, p] of [['sipedge', e], ['kamailio', k]]) {
    if (!p) continue
    if (p.error) { process.stdout.write(`${p.error.startsWith(name) ? '' : name + ': '}${p.error}\n`); continue }
    const limit = p.rampLimitedBySipp ? ' (SIPp could not offer more on this host)' : ''
    process.stdout.write(`max clean rate (< 0.1% failed) ${name}: ${p.maxCleanRate ?? 'none'} calls/s${limit}\n`)
  }
}

/** --media: per rate, CPU per call plain and anchored for each proxy, and the INVITE->200 p50 anchoring adds. */
function printMediaReport(res) {
  const byRate = (p) => new Map((p?.steps ?? []).map((s) => [s.rate, s]))
  const [e, em, k, km] = ['sipedge', 'sipedge+media', 'kamailio', 'kamailio+media'].map((n) => byRate(res.proxies[n]))
  const allRates = [...new Set([...em.keys(), ...km.keys()])].sort((a, b) => a - b)
  const us = (s) => (s ? fmt(s.cpuUsPerCall) : '-')
  const added = (plain, media) => (plain && media ? fmt(media.rttMs.p50 - plain.rttMs.p50, 2) : '-')
  const failPct = (s) => (s ? `${fmt(s.failRatio * 100, 2)}%` : '-')
  const rows = allRates.map((rate) => {
    const [a, am, b, bm] = [e.get(rate), em.get(rate), k.get(rate), km.get(rate)]
    const ratio = am?.cpuUsPerCall && bm?.cpuUsPerCall ? (am.cpuUsPerCall / bm.cpuUsPerCall).toFixed(2) : '-'
    return [rate, us(a), us(am), us(b), us(bm), ratio, added(a, am), added(b, bm), failPct(am), failPct(bm)]
  })
  process.stdout.write(`\nmedia anchored through one rtpengine (${res.media?.rtpengine}) — proxy CPU per call, plain vs anchored; `
    + 'added = INVITE->200 p50 anchored minus plain, ms\n\n')
  process.stdout.write(table(
    ['rate/s', 'e µs/call', 'e+m µs/call', 'k µs/call', 'k+m µs/call', '(e+m)/(k+m)', 'e added p50', 'k added p50', 'e+m fail', 'k+m fail'],
    rows,
  ) + '\n')
  for (const n of ['sipedge+media', 'kamailio+media']) {
    const p = res.proxies[n]
    if (p?.error) process.stdout.write(`${n}: ${p.error}\n`)
    else if (p) process.stdout.write(`${n}: rtpengine sessions left after the run: ${p.rtpengineSessionsLeft ?? '?'}\n`)
  }
}
