// Starts Kamailio with bench/kamailio/kamailio.cfg in the foreground, in its own temp runtime dir.
import { execFileSync } from 'node:child_process'
import { writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnTracked, stopTracked, adoptPids } from './children.mjs'
import { assertUdpFree, waitUdpBound, processTree } from './procstat.mjs'
import { lastLines } from './sipedge.mjs'

export function findKamailio() {
  for (const p of ['/usr/sbin/kamailio', '/usr/local/sbin/kamailio']) {
    try { execFileSync(p, ['-v'], { stdio: 'ignore' }); return p } catch { /* next */ }
  }
  return null
}

/**
 * @param {{ root: string, tmpDir: string, ip: string, port: number, backends: string[], children?: number, rtpengine?: string }} o
 */
export async function startKamailio(o) {
  const bin = findKamailio()
  if (!bin) throw new Error('kamailio not installed (apt-get install -y kamailio)')
  assertUdpFree(o.ip, o.port, 'kamailio not runnable')
  const dir = join(o.tmpDir, 'kamailio')
  mkdirSync(dir, { recursive: true })
  const list = join(dir, 'dispatcher.list')
  // set 1, one line per UAS
  writeFileSync(list, o.backends.map((b) => `1 sip:${b}\n`).join(''))
  const args = [
    '-DD', '-E',
    '-f', join(o.root, 'bench/kamailio/kamailio.cfg'),
    '-l', `udp:${o.ip}:${o.port}`,
    '-n', String(o.children ?? 2),
    '-m', '1024', '-M', '16',
    '-P', join(dir, 'kamailio.pid'),
    '-Y', dir,
    '-w', dir,
    '-A', `DS_LIST="${list}"`,
    // media mode: the rtpengine module anchors SDP in the bench's rtpengine
    ...(o.rtpengine ? ['-A', 'WITH_RTPENGINE', '-A', `RTPENGINE_SOCK="udp:${o.rtpengine}"`] : []),
  ]
  const logFile = join(dir, 'kamailio.log')
  const entry = spawnTracked('kamailio', bin, args, { logFile })
  const up = await waitUdpBound(o.ip, o.port, 8000, () => entry.exited)
  if (!up) {
    await stopTracked(entry, 500)
    throw new Error(`kamailio not runnable: ${lastLines(logFile, 3) || 'did not bind its port'}`)
  }
  // give the forked workers a moment, then remember them so they die with the main process
  await new Promise((r) => setTimeout(r, 300))
  adoptPids(entry, processTree(entry.child.pid))
  return {
    name: 'kamailio',
    pid: entry.child.pid,
    target: `${o.ip}:${o.port}`,
    logFile,
    heap: null,
    isDead: () => entry.exited,
    stop: () => stopTracked(entry, 3000),
  }
}
