// Starts the sipedge CLI (dist/edge/cli.js) as a bench proxy; throws "sipedge not runnable: <why>".
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnTracked, stopTracked } from './children.mjs'
import { assertUdpFree, waitUdpBound } from './procstat.mjs'

/**
 * @param {{ root: string, tmpDir: string, ip: string, port: number, backends: string[],
 *           workers?: number, secret?: string, hostForHeap?: boolean, rtpengine?: string }} o
 */
/** Extra node flags for the edge process (also under edge-host.mjs), e.g. BENCH_SIPEDGE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
function nodeArgs() {
  const extra = process.env.BENCH_SIPEDGE_NODE_ARGS
  return extra ? extra.split(/\s+/).filter(Boolean) : []
}

export async function startSipedge(o) {
  const cli = join(o.root, 'dist/edge/cli.js')
  if (!existsSync(cli)) throw new Error(`sipedge not runnable: ${cli} missing (run npm run build)`)
  assertUdpFree(o.ip, o.port, 'sipedge not runnable')
  const args = ['--listen', `udp:${o.ip}:${o.port}`]
  for (const b of o.backends) args.push('--backend', `sip:${b}`)
  // --no-probe: SIPp UAS answers OPTIONS only now and then (README), and a backend probed down fails the step.
  args.push('--no-probe', '--algorithm', 'round-robin', '--secret', o.secret ?? 'bench-secret-0123456789', '--log-level', 'warn', '--shutdown-timeout-ms', '500')
  // media mode: every call anchored in the bench's rtpengine (NG host:port)
  if (o.rtpengine) args.push('--media-mode', 'anchor', '--media-rtpengine', `udp:${o.rtpengine}`)
  if (o.workers && o.workers > 1) args.push('--workers', String(o.workers))
  const logFile = join(o.tmpDir, 'sipedge.log')
  const host = join(o.root, 'bench/lib/edge-host.mjs')
  const entry = o.hostForHeap
    ? spawnTracked('sipedge', process.execPath, ['--expose-gc', ...nodeArgs(), host, cli, ...args], { logFile, ipc: true })
    : spawnTracked('sipedge', process.execPath, [...nodeArgs(), cli, ...args], { logFile })
  const up = await waitUdpBound(o.ip, o.port, 5000, () => entry.exited)
  // The first worker's bind shows above; give the others time to join the port before traffic starts.
  if (up && o.workers > 1) await new Promise((r) => setTimeout(r, 1500))
  if (!up) {
    await stopTracked(entry, 500)
    const why = entry.exited ? `exited (code ${entry.code}) without binding udp:${o.ip}:${o.port}` : `did not bind udp:${o.ip}:${o.port} within 5 s`
    const tail = lastLines(logFile, 2)
    throw new Error(`sipedge not runnable: ${why}${tail ? ` — last output: ${tail}` : ''}`)
  }
  return {
    name: 'sipedge',
    pid: entry.child.pid,
    target: `${o.ip}:${o.port}`,
    logFile,
    /** Node heap of the edge's main process (only with hostForHeap). */
    heap: o.hostForHeap ? () => askHeap(entry.child) : null,
    isDead: () => entry.exited,
    stop: () => stopTracked(entry, 3000),
  }
}

function askHeap(child) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.off('message', onMsg); resolve(null) }, 5000)
    function onMsg(m) {
      if (m?.type !== 'mem') return
      clearTimeout(timer)
      child.off('message', onMsg)
      resolve(m.mem)
    }
    child.on('message', onMsg)
    child.send({ type: 'mem' })
  })
}

export function lastLines(file, n) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ').slice(0, 400)
  } catch {
    return ''
  }
}
