// RFC 3263 §4: from a SIP URI naming a host to the servers to try. NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T, by
// order then preference, among the transports the edge can send) → SRV → A/AAAA; SRV alone when the URI names
// a transport; A/AAAA alone when it names a port or when no NAPTR and no SRV exist. The answer keeps the SRV
// priorities and weights: which target comes first is decided per request (order.ts), as RFC 2782 asks.
import type { TransportProto } from '../transport/types.js'
import type { DnsClient } from './client.js'
import { QTYPE, type DnsAnswer, type NaptrData, type Record } from './wire.js'

/** A next hop given by name: what RFC 3263 needs from the URI. */
export interface HopName {
  /** Cache key: scheme, host, port and transport. */
  key: string
  host: string
  port: number | undefined
  /** The URI's transport parameter (tcp, udp, tls), if any. */
  transport: TransportProto | undefined
  secure: boolean
}

export function hopName(host: string, port: number | undefined, transport: string | true | undefined, secure: boolean): HopName {
  const h = host.toLowerCase().replace(/\.$/, '')
  const t = typeof transport === 'string' ? transportOf(transport.toLowerCase(), secure) : undefined
  return { key: `${secure ? 'sips' : 'sip'}:${h}:${port ?? ''};${t ?? ''}`, host: h, port, transport: t, secure }
}

function transportOf(t: string, secure: boolean): TransportProto | undefined {
  if (t === 'udp') return secure ? undefined : 'udp'
  if (t === 'tcp') return secure ? 'tls' : 'tcp'
  if (t === 'tls') return 'tls'
  return undefined
}

/** One server from an SRV record (or the host itself), with its addresses. */
export interface Target {
  priority: number
  weight: number
  proto: TransportProto
  port: number
  /** The SRV target's name (TLS checks the certificate against the URI's domain, not this: RFC 5922). */
  name: string
  addresses: string[]
}

export interface Resolution {
  targets: Target[]
  /** The smallest TTL along the chain (NAPTR, SRV, A/AAAA), seconds. */
  ttlS: number
  /** How it was found, for logs: "NAPTR SIP+D2U → SRV _sip._udp.x → A", "SRV", "A". */
  via: string
}

export interface ResolveOptions {
  /** Transports the edge can send on toward the public side. */
  transports: ReadonlySet<TransportProto>
  /** Ask AAAA as well as A (the edge has an IPv6 socket on that side). */
  ipv6: boolean
}

const SERVICES: ReadonlyArray<[service: string, proto: TransportProto, secure: boolean, srv: string]> = [
  ['SIP+D2U', 'udp', false, '_sip._udp.'],
  ['SIP+D2T', 'tcp', false, '_sip._tcp.'],
  ['SIPS+D2T', 'tls', true, '_sips._tcp.'],
]

/** A failure worth telling apart: the name does not exist, or has no usable record (cached negatively). */
export class NoSuchTarget extends Error {}

export async function resolveHop(dns: DnsClient, name: HopName, o: ResolveOptions): Promise<Resolution> {
  const defaultPort = (p: TransportProto): number => (p === 'tls' ? 5061 : 5060)
  if (name.port !== undefined) {
    // §4.2: a port and no numeric IP: A/AAAA only; the transport is the URI's, else UDP (TLS for sips).
    const proto = name.transport ?? (name.secure ? 'tls' : 'udp')
    return addressOnly(dns, name.host, proto, name.port, o, 'A')
  }
  if (name.transport !== undefined) {
    const srvName = SERVICES.find((s) => s[1] === name.transport)![3] + name.host
    const srv = await srvTargets(dns, srvName, name.transport, o)
    if (srv) return { ...srv, via: 'SRV ' + srvName + srv.via }
    return addressOnly(dns, name.host, name.transport, defaultPort(name.transport), o, 'A')
  }
  // §4.1: NAPTR first.
  // NXDOMAIN here is not the last word: some servers answer it for a name that only has SRV records below it
  // (an "empty non-terminal"); the A lookup at the end decides whether the name exists at all.
  const naptr = await dns.query(name.host, QTYPE.NAPTR)
  rcodeCheck(naptr, name.host, 'NAPTR')
  const usable: Array<{ rec: NaptrData; ttl: number; proto: TransportProto; service: string }> = []
  for (const r of naptr.answers) {
    const d = r.data
    if (d.type !== QTYPE.NAPTR || d.flags.toLowerCase() !== 's') continue
    const svc = SERVICES.find(([s]) => s.toLowerCase() === d.service.toLowerCase())
    if (!svc || !o.transports.has(svc[1]) || (name.secure && !svc[2])) continue
    usable.push({ rec: d, ttl: r.ttl, proto: svc[1], service: svc[0] })
  }
  usable.sort((a, b) => a.rec.order - b.rec.order || a.rec.preference - b.rec.preference)
  for (const u of usable) {
    const srv = await srvTargets(dns, u.rec.replacement, u.proto, o)
    if (srv) return { targets: srv.targets, ttlS: Math.min(u.ttl, srv.ttlS), via: `NAPTR ${u.service} → SRV ${u.rec.replacement}${srv.via}` }
  }
  // §4.1: no (usable) NAPTR: SRV for each transport the edge speaks, UDP first (TLS only for sips).
  for (const [, proto, secure, prefix] of SERVICES) {
    if (!o.transports.has(proto) || (name.secure && !secure)) continue
    const srv = await srvTargets(dns, prefix + name.host, proto, o)
    if (srv) return { ...srv, via: 'SRV ' + prefix + name.host + srv.via }
  }
  const proto: TransportProto = name.secure ? 'tls' : 'udp'
  return addressOnly(dns, name.host, proto, defaultPort(proto), o, 'A')
}

function rcodeCheck(a: DnsAnswer, name: string, what: string): void {
  if (a.rcode !== 0 && a.rcode !== 3) throw new Error(`${what} ${name}: server answered rcode ${a.rcode}`)
}

/** SRV records of one name with their addresses; undefined when there are none (or only "." = no service). */
async function srvTargets(dns: DnsClient, srvName: string, proto: TransportProto, o: ResolveOptions): Promise<{ targets: Target[]; ttlS: number; via: string } | undefined> {
  const a = await dns.query(srvName, QTYPE.SRV)
  rcodeCheck(a, srvName, 'SRV')
  const srvs = a.answers.filter((r) => r.data.type === QTYPE.SRV)
  if (srvs.length === 0) return undefined
  let ttlS = Math.min(...srvs.map((r) => r.ttl))
  const targets: Target[] = []
  await Promise.all(
    srvs.map(async (r) => {
      if (r.data.type !== QTYPE.SRV || r.data.target === '.') return
      const d = r.data
      // Addresses the server put in the additional section save a round trip (RFC 2782 "Usage rules").
      const extra = a.additionals.filter((x) => x.name.toLowerCase() === d.target.toLowerCase() && (x.data.type === QTYPE.A || (o.ipv6 && x.data.type === QTYPE.AAAA)))
      const found = extra.length > 0 ? { addresses: extra.map(addressOf), ttlS: Math.min(...extra.map((x) => x.ttl)) } : await addresses(dns, d.target, o).catch(() => undefined)
      if (!found || found.addresses.length === 0) return
      ttlS = Math.min(ttlS, found.ttlS)
      targets.push({ priority: d.priority, weight: d.weight, proto, port: d.port, name: d.target, addresses: found.addresses })
    }),
  )
  if (targets.length === 0) return undefined
  // Stable by priority, then as listed (the order within a priority is drawn per request).
  targets.sort((x, y) => x.priority - y.priority)
  return { targets, ttlS, via: ' → A' }
}

async function addressOnly(dns: DnsClient, host: string, proto: TransportProto, port: number, o: ResolveOptions, via: string): Promise<Resolution> {
  const found = await addresses(dns, host, o)
  if (found.addresses.length === 0) throw new NoSuchTarget(`${host}: no address record`)
  return { targets: [{ priority: 0, weight: 0, proto, port, name: host, addresses: found.addresses }], ttlS: found.ttlS, via }
}

/** A (and AAAA) of a name, following a CNAME the server included. */
async function addresses(dns: DnsClient, host: string, o: ResolveOptions): Promise<{ addresses: string[]; ttlS: number }> {
  const asks = [dns.query(host, QTYPE.A)]
  if (o.ipv6) asks.push(dns.query(host, QTYPE.AAAA))
  const answers = await Promise.all(asks)
  const out: string[] = []
  let ttlS = Number.MAX_SAFE_INTEGER
  for (const a of answers) {
    if (a.rcode === 3) throw new NoSuchTarget(`${host}: no such domain (NXDOMAIN)`)
    rcodeCheck(a, host, 'A')
    for (const r of a.answers) {
      if (r.data.type === QTYPE.A || r.data.type === QTYPE.AAAA || r.data.type === QTYPE.CNAME) ttlS = Math.min(ttlS, r.ttl)
      if (r.data.type === QTYPE.A || r.data.type === QTYPE.AAAA) out.push(addressOf(r))
    }
  }
  return { addresses: out, ttlS: out.length ? ttlS : 0 }
}

function addressOf(r: Record): string {
  return r.data.type === QTYPE.A || r.data.type === QTYPE.AAAA ? r.data.address : ''
}
