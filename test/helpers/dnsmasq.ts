// A real DNS server for RFC 3263 tests: Debian's dnsmasq serving only the records a test gives it (no
// upstream, no /etc/hosts), on a loopback address and a free port, in the foreground, stopped by PID.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeUdpPort, waitFor } from './net.js'
import { spawnTracked, type Teardownable, type TrackedChild } from './proc.js'

export interface DnsRecords {
  /** `_sip._udp.example.test` → targets: [target, port, priority, weight]. */
  srv?: Array<[name: string, target: string, port: number, priority: number, weight: number]>
  /** [name, order, preference, flags, service, regexp, replacement]. */
  naptr?: Array<[name: string, order: number, preference: number, flags: string, service: string, replacement: string]>
  /** name → IPv4 addresses. */
  a?: Array<[name: string, address: string]>
  /** TTL of every record (dnsmasq's --local-ttl). */
  ttlS?: number
}

export interface Dnsmasq {
  address: string
  port: number
  /** `address:port`, for `dns.servers`. */
  server: string
  child: TrackedChild
  stop(): Promise<void>
  /** Stops and starts again on the same address and port with other records (a zone change). */
  restart(records: DnsRecords): Promise<void>
}

export function dnsmasqArgs(address: string, port: number, pidFile: string, r: DnsRecords): string[] {
  return [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--bind-interfaces',
    `--listen-address=${address}`, `--port=${port}`, `--pid-file=${pidFile}`, '--log-facility=-', '--log-queries',
    // Root inside the test namespace: no user to drop to is needed, and the default (nobody) may lack rights.
    '--user=root', '--cache-size=0',
    // Answer for the test domains from these records alone: a missing record is NODATA/NXDOMAIN, not REFUSED.
    '--local=/test/',
    `--local-ttl=${r.ttlS ?? 1}`,
    ...(r.srv ?? []).map(([name, target, p, prio, w]) => `--srv-host=${name},${target},${p},${prio},${w}`),
    ...(r.naptr ?? []).map(([name, order, pref, flags, service, repl]) => `--naptr-record=${name},${order},${pref},${flags},${service},,${repl}`),
    ...(r.a ?? []).map(([name, addr]) => `--host-record=${name},${addr},${r.ttlS ?? 1}`),
  ]
}

export async function startDnsmasq(t: Teardownable, address: string, records: DnsRecords): Promise<Dnsmasq> {
  const port = await freeUdpPort(address)
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-dnsmasq-'))
  const pidFile = join(dir, 'dnsmasq.pid')
  const state = { child: undefined as unknown as TrackedChild }
  const launch = async (r: DnsRecords): Promise<void> => {
    const child = spawnTracked('dnsmasq', dnsmasqArgs(address, port, pidFile, r), { t })
    state.child = child
    // "started" is printed once the socket is bound.
    const said = (): string => child.output().stderr + child.output().stdout
    await waitFor(() => said().includes('started, version') || child.exitCode() !== undefined, { timeoutMs: 5000, what: 'dnsmasq to start' })
    if (child.exitCode() !== undefined) throw new Error(`dnsmasq exited: ${said()}`)
  }
  await launch(records)
  const dm: Dnsmasq = {
    address,
    port,
    server: `${address}:${port}`,
    get child() {
      return state.child
    },
    stop: async () => {
      await state.child.stop(2000)
    },
    restart: async (r) => {
      await state.child.stop(2000)
      await launch(r)
    },
  }
  return dm
}
