// CPU and memory of a process tree from /proc (Linux only). CPU is utime+stime of every process in
// the tree (a process's /proc/<pid>/stat already sums its threads); memory is PSS so that a
// multi-process proxy (Kamailio's shared memory) is not counted once per worker.
import { readFileSync, readdirSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

let ticksPerSecond = 100
try { ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100 } catch { /* default */ }

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // comm may contain spaces and parens: fields start after the last ')'
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), pgrp: Number(f[2]), utime: Number(f[11]), stime: Number(f[12]) }
  } catch {
    return null
  }
}

/** The PID and all its live descendants. */
export function processTree(rootPid) {
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0)
    if (c < 48 || c > 57) continue
    const st = readStat(name)
    if (!st) continue
    let list = children.get(st.ppid)
    if (!list) children.set(st.ppid, (list = []))
    list.push(Number(name))
  }
  const out = []
  const stack = [rootPid]
  while (stack.length) {
    const p = stack.pop()
    out.push(p)
    for (const k of children.get(p) ?? []) stack.push(k)
  }
  return out
}

/** CPU seconds (user+system) used so far by the tree under rootPid. */
export function treeCpuSeconds(rootPid) {
  let ticks = 0
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid)
    if (st) ticks += st.utime + st.stime
  }
  return ticks / ticksPerSecond
}

function kbField(text, name) {
  const i = text.indexOf(name + ':')
  if (i < 0) return 0
  return Number.parseInt(text.slice(i + name.length + 1).trimStart(), 10) || 0
}

/** { rss, pss } in bytes summed over the tree (PSS falls back to RSS where smaps_rollup is missing). */
export function treeMemory(rootPid) {
  let rss = 0
  let pss = 0
  for (const pid of processTree(rootPid)) {
    try {
      const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1')
      rss += kbField(roll, 'Rss') * 1024
      pss += kbField(roll, 'Pss') * 1024
    } catch {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'latin1')
        const r = kbField(status, 'VmRSS') * 1024
        rss += r
        pss += r
      } catch { /* process gone */ }
    }
  }
  return { rss, pss }
}

/**
 * Where the RSS of each process in the tree lives (--smaps of bench/dialogs.mjs): resident kB summed by mapping
 * kind — the malloc heap ([heap]), anonymous mappings by size (V8 puts its heap in 256 KB pages and
 * larger spaces; glibc gives each thread arena a 64 MB reservation), the node binary, other files.
 */
export function smapsSummary(rootPid) {
  let text = ''
  for (const pid of processTree(rootPid)) {
    let smaps
    try {
      smaps = readFileSync(`/proc/${pid}/smaps`, 'latin1')
    } catch {
      continue
    }
    const kinds = new Map()
    let kind = ''
    for (const line of smaps.split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
      if (m) {
        const size = (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1024
        const name = m[3]
        kind = name === '' ? `anon ${size <= 256 ? '<=256K' : size <= 4096 ? '<=4M' : size <= 65536 ? '<=64M' : '>64M'}` : name.endsWith('/node') ? 'node binary' : name.startsWith('[') ? name : 'files'
        continue
      }
      const r = /^Rss:\s+(\d+) kB/.exec(line)
      if (r) kinds.set(kind, (kinds.get(kind) ?? 0) + Number(r[1]))
    }
    text += `pid ${pid} resident MB: ` + [...kinds].filter(([, kb]) => kb >= 1024).sort((a, b) => b[1] - a[1]).map(([k, kb]) => `${k} ${(kb / 1024).toFixed(1)}`).join(', ') + '\n'
  }
  return text
}

/** Host-wide [busy, total] jiffies from /proc/stat, to tell whether the whole machine was saturated. */
function hostJiffies() {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    const idle = v[3] + (v[4] || 0)
    const total = v.reduce((a, b) => a + b, 0)
    return [total - idle, total]
  } catch {
    return [0, 0]
  }
}

/**
 * Samples a tree while a step runs: CPU at start/stop, peak PSS in between.
 * CPU of processes that exit mid-step is lost, which is fine for long-lived proxies.
 */
export class TreeSampler {
  constructor(rootPid, intervalMs = 500) {
    this.rootPid = rootPid
    this.intervalMs = intervalMs
    this.timer = null
    this.peakPss = 0
  }

  start() {
    this.cpu0 = treeCpuSeconds(this.rootPid)
    this.t0 = performance.now()
    this.host0 = hostJiffies()
    this.peakPss = treeMemory(this.rootPid).pss
    this.timer = setInterval(() => {
      const m = treeMemory(this.rootPid).pss
      if (m > this.peakPss) this.peakPss = m
    }, this.intervalMs)
    this.timer.unref()
  }

  stop() {
    clearInterval(this.timer)
    const cpu = treeCpuSeconds(this.rootPid) - this.cpu0
    const wall = (performance.now() - this.t0) / 1000
    const mem = treeMemory(this.rootPid)
    const host1 = hostJiffies()
    const hostTotal = host1[1] - this.host0[1]
    const hostBusyPercent = hostTotal > 0 ? (100 * (host1[0] - this.host0[0])) / hostTotal : null
    return { hostBusyPercent, cpuSeconds: cpu, wallSeconds: wall, cpuPercent: (100 * cpu) / wall, peakPss: Math.max(this.peakPss, mem.pss), endRss: mem.rss }
  }
}

/** True once a UDP socket is bound to ip:port (reads /proc/net/udp, no packets sent). */
export function udpBound(ip, port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const hexIp = ip.split('.').map(Number).reverse().map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('')
  let text
  try { text = readFileSync('/proc/net/udp', 'latin1') } catch { return false }
  return text.includes(` ${hexIp}:${hexPort} `) || text.includes(` 00000000:${hexPort} `)
}

export async function waitUdpBound(ip, port, timeoutMs, isDead) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (udpBound(ip, port)) return true
    if (isDead && isDead()) return false
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/** Throws a clear error when something else already holds ip:port (another bench or test run). */
export function assertUdpFree(ip, port, who) {
  if (udpBound(ip, port)) throw new Error(`${who}: udp ${ip}:${port} is already in use by another process`)
}
