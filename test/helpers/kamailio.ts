// Kamailio as a real SIP peer in tests (an upstream proxy in front of the edge): one process tree in the
// foreground (-DD), its own runtime dir, stopped by PID (the main process takes its workers down with it).
import { mkdtempSync } from 'node:fs'
import { createSocket } from 'node:dgram'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeUdpPort, waitFor } from './net.js'
import { spawnTracked, type Teardownable, type TrackedChild } from './proc.js'

export interface Kamailio {
  address: string
  port: number
  child: TrackedChild
}

/** True while something holds udp address:port (our bind fails). */
function udpBound(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    s.once('error', () => resolve(true))
    s.bind(port, address, () => s.close(() => resolve(false)))
  })
}

/** Starts kamailio with `cfg` on udp:address:<free port>; `defines` become -A NAME="value". */
export async function startKamailio(t: Teardownable, cfg: string, address: string, defines: Record<string, string>): Promise<Kamailio> {
  const port = await freeUdpPort(address)
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-kamailio-'))
  const args = ['-DD', '-E', '-f', cfg, '-l', `udp:${address}:${port}`, '-m', '64', '-M', '8', '-P', join(dir, 'kamailio.pid'), '-Y', dir, '-w', dir]
  for (const [k, v] of Object.entries(defines)) args.push('-A', `${k}="${v}"`)
  const child = spawnTracked('kamailio', args, { t })
  await waitFor(async () => child.exitCode() !== undefined || (await udpBound(address, port)), { timeoutMs: 8000, what: 'kamailio to bind' })
  if (child.exitCode() !== undefined) throw new Error(`kamailio exited: ${child.output().stderr.slice(-2000)}`)
  return { address, port, child }
}
