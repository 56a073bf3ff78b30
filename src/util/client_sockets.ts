/**
 * The UDP sockets a client of many targets sends from (OPTIONS prober, rtpengine NG client): one IPv4
 * socket, and an IPv6 one when the host has IPv6, each on an ephemeral port of `local` (or the wildcard).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns'
import { isIPv4, isIPv6 } from 'node:net'

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void

/**
 * dgram resolves the destination of every send() of an unconnected socket through dns.lookup, which for an
 * IP literal still tests it against the IP regexes and defers the send to the next tick. The clients' targets
 * are IP literals: those are answered at once, anything else still goes to dns.lookup.
 */
function literalFirst(host: string, family: LookupOneOptions | number, cb: LookupCallback): void {
  const want = typeof family === 'number' ? family : family.family
  if (want === 6 ? host.includes(':') : isIPv4(host)) return cb(null, host, want === 6 ? 6 : 4)
  dnsLookup(host, typeof family === 'number' ? { family } : family, cb)
}

export interface ClientSockets { udp4: Socket; udp6: Socket | undefined }

/** `keepRef()` false: the sockets do not hold the process open (read when each socket is bound). */
export async function bindClientSockets(
  local: string | undefined,
  onMessage: (msg: Buffer, rinfo: RemoteInfo) => void,
  keepRef: () => boolean,
): Promise<ClientSockets> {
  const localV6 = local !== undefined && isIPv6(local)
  const udp4 = await bindOne('udp4', local !== undefined && !localV6 ? local : '0.0.0.0', onMessage, keepRef)
  // IPv6 is optional on a host: without it, requests to v6 targets fail.
  const udp6 = await bindOne('udp6', localV6 ? local : '::', onMessage, keepRef).catch(() => undefined)
  return { udp4, udp6 }
}

function bindOne(type: 'udp4' | 'udp6', address: string, onMessage: (msg: Buffer, rinfo: RemoteInfo) => void, keepRef: () => boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type, ipv6Only: type === 'udp6', lookup: literalFirst as never })
    s.once('error', reject)
    // exclusive: in a cluster worker a plain bind is made by the primary and shared, so every worker's prober
    // (or NG client) would read the others' answers and miss its own.
    s.bind({ port: 0, address, exclusive: true }, () => {
      s.off('error', reject)
      // Errors on an unconnected socket (ICMP, buffers) name no request: they must never crash the process.
      s.on('error', () => undefined)
      s.on('message', onMessage)
      if (!keepRef()) s.unref()
      resolve(s)
    })
  })
}
