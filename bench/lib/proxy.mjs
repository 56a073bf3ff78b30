// One entry point for "start the proxy under test" and "start the in-script echo backend process".
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnTracked, stopTracked } from './children.mjs'
import { startSipedge } from './sipedge.mjs'
import { startKamailio } from './kamailio.mjs'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')
// Override with BENCH_SIPEDGE_PORT / BENCH_KAMAILIO_PORT when another run holds these on 127.0.0.1.
export const PORTS = {
  sipedge: Number(process.env.BENCH_SIPEDGE_PORT ?? 5060),
  kamailio: Number(process.env.BENCH_KAMAILIO_PORT ?? 5070),
}

export function startProxy(name, { tmpDir, backends, workers = 1, hostForHeap = false, rtpengine }) {
  const common = { root: ROOT, tmpDir, ip: '127.0.0.1', port: PORTS[name], backends, ...(rtpengine ? { rtpengine } : {}) }
  if (name === 'sipedge') return startSipedge({ ...common, workers, hostForHeap })
  if (name === 'kamailio') return startKamailio({ ...common, children: workers })
  throw new Error(`unknown proxy ${name} (sipedge|kamailio)`)
}

/** The echo backend in its own process; resolves with { pid, counts(), stop() }. */
export async function startEchoBackendProcess(addrs, tmpDir) {
  const entry = spawnTracked('echo-backend', process.execPath, [join(ROOT, 'bench/lib/echo-backend.mjs'), ...addrs],
    { ipc: true, logFile: join(tmpDir, 'echo-backend.log') })
  const child = entry.child
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo backend did not start (see echo-backend.log)')), 5000)
    child.once('message', (m) => { if (m?.type === 'ready') { clearTimeout(timer); resolve() } })
    child.once('exit', () => { clearTimeout(timer); reject(new Error('echo backend exited (port in use?)')) })
  })
  return {
    pid: child.pid,
    counts: () => new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 2000)
      child.once('message', (m) => { clearTimeout(timer); resolve(m.counts) })
      child.send({ type: 'counts' })
    }),
    stop: () => stopTracked(entry, 1000),
  }
}
