// The rtpengine of bench/load.mjs --media (Debian's rtpengine-daemon, userspace forwarding): both proxies
// anchor their calls in this one instance, on its own NG port; stopped by PID with the other children.
import { createSocket } from 'node:dgram'
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnTracked, stopTracked } from './children.mjs'

export function findRtpengine() {
  try { execFileSync('rtpengine', ['--version'], { stdio: 'ignore' }); return true } catch { return false }
}

/** One NG command (bencoded by hand: the bench needs only ping and list); resolves with the reply text or null. */
export function ngCommand(port, dict, ms = 500) {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    const done = (v) => { clearTimeout(timer); s.close(); resolve(v) }
    const timer = setTimeout(() => done(null), ms)
    s.on('error', () => done(null))
    s.on('message', (m) => done(m.toString('latin1')))
    s.send(Buffer.from(`bench-${Date.now()} ${dict}`), port, '127.0.0.1')
  })
}

/** Calls rtpengine still holds (`list`): 0 after a clean run. */
export async function sessionsLeft(port) {
  const r = await ngCommand(port, 'd7:command4:list5:limiti100000ee')
  if (r === null) return null
  // d5:callsl<len>:<call-id>...e6:result2:oke: walk the list's strings
  let i = r.indexOf('5:callsl')
  if (i < 0) return null
  i += 8
  let n = 0
  while (r[i] !== 'e' && i < r.length) {
    const colon = r.indexOf(':', i)
    i = colon + 1 + Number(r.slice(i, colon))
    n++
  }
  return n
}

export async function startRtpengine({ tmpDir, ngPort = 22299 }) {
  if (!findRtpengine()) throw new Error('rtpengine not installed (apt-get install -y rtpengine-daemon)')
  const dir = join(tmpDir, 'rtpengine')
  mkdirSync(dir, { recursive: true })
  const entry = spawnTracked('rtpengine', 'rtpengine', [
    '--config-file=none', '--foreground', '--log-stderr', '--log-level=3', '--table=-1',
    '--interface=internal/127.0.2.1', '--interface=external/127.0.3.1',
    `--listen-ng=127.0.0.1:${ngPort}`, '--port-min=40000', '--port-max=59999', '--delete-delay=0',
    `--pidfile=${join(dir, 'rtpengine.pid')}`,
  ], { cwd: dir, logFile: join(dir, 'rtpengine.log') })
  const deadline = Date.now() + 8000
  while (Date.now() < deadline) {
    if (entry.exited) throw new Error(`rtpengine exited (see ${dir}/rtpengine.log)`)
    if ((await ngCommand(ngPort, 'd7:command4:pinge', 300))?.includes('pong')) {
      return { ng: `127.0.0.1:${ngPort}`, ngPort, pid: entry.child.pid, stop: () => stopTracked(entry, 2000) }
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await stopTracked(entry, 500)
  throw new Error('rtpengine did not answer NG ping within 8 s')
}
