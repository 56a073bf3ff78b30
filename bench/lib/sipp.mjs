// SIPp driving for bench/load.mjs: the two UAS, one UAC step, and parsing of SIPp's stat/RTT files.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnTracked, stopTracked, waitExit } from './children.mjs'
import { waitUdpBound, assertUdpFree } from './procstat.mjs'
import { percentile } from './stats.mjs'

export function findSipp() {
  try {
    const out = execFileSync('sipp', ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString()
    return out.match(/v\d+\.\d+(\.\d+)?/)?.[0] ?? 'unknown version'
  } catch (e) {
    // sipp -v exits non-zero on some builds but still prints the version
    const out = String(e.stdout ?? '')
    if (out.includes('SIPp')) return out.match(/v\d+\.\d+(\.\d+)?/)?.[0] ?? 'unknown version'
    return null
  }
}

/** bench/sipp/{uac,uas}.xml (basic call following Record-Route, and its callee). */
export function scenarioPaths(root) {
  const main = { uac: join(root, 'bench/sipp/uac.xml'), uas: join(root, 'bench/sipp/uas.xml') }
  if (existsSync(main.uac) && existsSync(main.uas)) return main
  throw new Error('no SIPp scenarios: bench/sipp/uac.xml and uas.xml are missing')
}

/** Start one SIPp UAS bound to ip:port; resolves once its socket is bound. */
export async function startUas(uasXml, ip, port, tmpDir) {
  const dir = join(tmpDir, `uas-${ip}`)
  mkdirSync(dir, { recursive: true })
  assertUdpFree(ip, port, 'SIPp UAS')
  const entry = spawnTracked(`uas ${ip}`, 'sipp', [
    '-sf', uasXml, '-i', ip, '-p', String(port), '-t', 'u1', '-nostdin',
    '-default_behaviors', 'all,-abortunexp', '-max_recv_loops', '10000', '-buff_size', '4194304',
  ], { cwd: dir, logFile: join(dir, 'sipp.out') })
  if (!(await waitUdpBound(ip, port, 5000, () => entry.exited))) {
    await stopTracked(entry, 200)
    throw new Error(`SIPp UAS on ${ip}:${port} did not start (see ${dir}/sipp.out)`)
  }
  return entry
}

/**
 * One UAC step: `rate` calls/s for `calls` calls through `target`. Bounded: SIPp is killed after
 * `maxSeconds` and calls it never finished count as failed.
 */
export async function runUacStep({ uacXml, target, rate, calls, maxSeconds, tmpDir, label, manySources = false }) {
  const dir = join(tmpDir, `uac-${label}`)
  mkdirSync(dir, { recursive: true })
  const statFile = join(dir, 'stat.csv')
  const entry = spawnTracked(`uac ${label}`, 'sipp', [
    // manySources: one socket per call (64 at most), so that SO_REUSEPORT spreads the calls over workers.
    '-sf', uacXml, '-i', '127.0.0.1', ...(manySources ? ['-t', 'un', '-max_socket', '64'] : ['-t', 'u1']), '-nostdin', '-s', 'bench',
    '-r', String(rate), '-m', String(calls), '-d', '0', '-l', String(Math.max(rate * 4, 100)),
    '-default_behaviors', 'all,-abortunexp',
    '-max_recv_loops', '10000', '-max_sched_loops', '10000', '-buff_size', '4194304',
    '-trace_stat', '-stf', statFile, '-fd', '1',
    '-trace_rtt', '-rtt_freq', '500',
    target,
  ], { cwd: dir, logFile: join(dir, 'sipp.out') })
  const finished = await waitExit(entry, maxSeconds * 1000)
  if (!finished) {
    // SIGUSR1 would ask for a soft stop; we are past the bound, so stop hard and count the leftovers
    await stopTracked(entry, 1500)
  } else {
    await stopTracked(entry, 100)
  }
  const stats = parseStatFile(statFile)
  const rtts = parseRttFiles(dir)
  const successful = stats.successful
  const failed = Math.max(stats.failed, calls - successful)
  return {
    finishedInTime: finished,
    exitCode: entry.code,
    attempted: calls,
    successful,
    failed,
    sippFailed: stats.failed,
    retransmissions: stats.retransmissions,
    achievedRate: stats.achievedRate,
    rttMs: {
      samples: rtts.length,
      p50: percentile(rtts, 50),
      p95: percentile(rtts, 95),
      p99: percentile(rtts, 99),
      max: rtts.length ? rtts[rtts.length - 1] : null,
    },
    dir,
  }
}

function parseStatFile(file) {
  const empty = { successful: 0, failed: 0, retransmissions: 0, achievedRate: 0 }
  let text
  try { text = readFileSync(file, 'latin1') } catch { return empty }
  const lines = text.trim().split('\n')
  if (lines.length < 2) return empty
  const head = lines[0].split(';')
  const last = lines[lines.length - 1].split(';')
  const col = (name) => Number(last[head.indexOf(name)]) || 0
  return {
    successful: col('SuccessfulCall(C)'),
    failed: col('FailedCall(C)'),
    retransmissions: col('Retransmissions(C)'),
    achievedRate: col('CallRate(C)'),
  }
}

/** SIPp writes <scenario>_<pid>_rtt.csv into its cwd: "date_ms;response_time_ms;rtd_no". Sorted ms. */
function parseRttFiles(dir) {
  const out = []
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('_rtt.csv')) continue
    const lines = readFileSync(join(dir, f), 'latin1').split('\n')
    for (let i = 1; i < lines.length; i++) {
      const parts = lines[i].split(';')
      if (parts.length < 3) continue
      const v = Number(parts[1])
      if (Number.isFinite(v)) out.push(v)
    }
  }
  return out.sort((a, b) => a - b)
}
