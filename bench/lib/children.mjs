// Child-process bookkeeping for the bench harnesses: every process we start is remembered by PID
// and killed by PID on normal exit, on SIGINT/SIGTERM, and when the global deadline fires.
import { spawn } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'

const live = new Map() // pid -> { name, child, extraPids: Set<number> }
let handlersInstalled = false

/** Spawn and track a child. `logFile` receives stdout+stderr (default: discarded). */
export function spawnTracked(name, cmd, args, { cwd, logFile, env, ipc = false } = {}) {
  installExitHandlers()
  const fd = logFile ? openSync(logFile, 'a') : 'ignore'
  const stdio = ['ignore', fd, fd]
  if (ipc) stdio.push('ipc')
  const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio })
  if (typeof fd === 'number') closeSync(fd)
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`)
  const entry = { name, child, extraPids: new Set(), exited: false, code: null, signal: null }
  child.once('exit', (code, signal) => {
    entry.exited = true
    entry.code = code
    entry.signal = signal
  })
  child.once('error', () => { entry.exited = true })
  live.set(child.pid, entry)
  return entry
}

/** Remember extra PIDs (e.g. Kamailio's forked workers) so they are killed with their parent. */
export function adoptPids(entry, pids) {
  for (const p of pids) if (p !== entry.child.pid) entry.extraPids.add(p)
}

export function waitExit(entry, ms) {
  if (entry.exited) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    entry.child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

function killPid(pid, sig) {
  try { process.kill(pid, sig); return true } catch { return false }
}

/** SIGTERM, wait up to graceMs, then SIGKILL the process and any adopted PIDs. */
export async function stopTracked(entry, graceMs = 2000) {
  if (!live.has(entry.child.pid)) return
  if (!entry.exited) killPid(entry.child.pid, 'SIGTERM')
  const ok = await waitExit(entry, graceMs)
  if (!ok) killPid(entry.child.pid, 'SIGKILL')
  for (const p of entry.extraPids) killPid(p, 'SIGKILL')
  await waitExit(entry, 1000)
  live.delete(entry.child.pid)
}

export async function stopAll() {
  await Promise.all([...live.values()].map((e) => stopTracked(e, 1500)))
}

function killAllSync() {
  for (const [pid, e] of live) {
    killPid(pid, 'SIGKILL')
    for (const p of e.extraPids) killPid(p, 'SIGKILL')
  }
  live.clear()
}

function installExitHandlers() {
  if (handlersInstalled) return
  handlersInstalled = true
  process.once('exit', killAllSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping children\n`)
      stopAll().finally(() => process.exit(130))
    })
  }
}

/** A global deadline: after `ms`, calls onExpire once (harnesses then stop children and exit non-zero). */
export function armDeadline(ms, onExpire) {
  const timer = setTimeout(() => {
    process.stderr.write(`\nglobal deadline of ${Math.round(ms / 1000)} s reached: stopping\n`)
    onExpire()
  }, ms)
  timer.unref()
  return () => clearTimeout(timer)
}
