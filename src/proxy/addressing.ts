import { BlockList, isIP } from 'node:net'
import type { SipUri, Via } from '../sip/index.js'
import { isConnectionProto, protoOfUri } from '../transport/protos.js'
import type { Listener, Peer, Side, TransportProto } from '../transport/types.js'

/** '[::1]' -> '::1' (node:dgram and node:net want bare IPv6 literals). */
export function bareHost(host: string): string {
  return host.charCodeAt(0) === 91 /* [ */ ? host.slice(1, -1) : host
}

/** host:port as written in SIP (IPv6 in brackets). */
export function hostport(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

/**
 * Where a response goes (RFC 3261 §18.2.2 with RFC 3581): over a connection, back on it; over UDP, to the
 * source address, and to the source port when the Via asked for rport (the edge also does so when the Via
 * names no port, since NATed clients are the norm), else to the sent-by port.
 */
export function responseDestination(via: Via, source: Peer): Peer {
  if (isConnectionProto(source.proto) || via.rport !== undefined || via.port === undefined) return source
  return { proto: source.proto, address: source.address, port: via.port }
}

/** A Peer from a SIP URI whose host is an IP literal; undefined for names (no DNS on the hot path). */
export function peerFromUri(uri: SipUri): Peer | undefined {
  const maddr = uri.params['maddr']
  const address = bareHost(typeof maddr === 'string' ? maddr : uri.host)
  if (isIP(address) === 0) return undefined
  // The scheme is not consulted (yet): a sips: URI without ;transport= still means UDP here, as before TLS.
  const proto: TransportProto = protoOfUri(uri.params['transport'], false)
  return { proto, address, port: uri.port ?? 5060 }
}

/** Parses CIDR lists ('10.0.0.0/8', '::1/128', '127.0.1.5') into a BlockList; throws naming the bad entry. */
export function cidrList(entries: readonly string[]): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    const [addr, bits] = entry.split('/')
    const family = isIP(addr ?? '')
    if (family === 0) throw new Error(`invalid network "${entry}"`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(addr!, type)
    else {
      const prefix = Number(bits)
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new Error(`invalid prefix length in "${entry}"`)
      }
      list.addSubnet(addr!, prefix, type)
    }
  }
  return list
}

export function inList(list: BlockList, address: string): boolean {
  const family = isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** A served domain (config `domains`): a host name or address, with a port or for every port. */
export interface ServedDomain {
  host: string
  port: number | undefined
}

/**
 * Which listeners face which side, and how the edge names itself on each. With one set of listeners for
 * both sides (the simple setup), a source is internal when it is a known backend address or in the
 * trusted internal networks.
 */
export class Sides {
  readonly twoSided: boolean
  /** BlockList.check costs a microsecond; skip it when no trusted network is configured. */
  private hasInternalNets: boolean
  /** 'host:port' (lower-case host, brackets for IPv6) of every listener, for "is this URI us?" checks. */
  private readonly own = new Set<string>()
  /** Served domains (config `domains`): bare host names match any port, host:port pairs only that port. */
  private domains = new Set<string>()
  private servedHostports = new Set<string>()
  private backendHosts = new Set<string>()

  constructor(
    readonly listeners: readonly Listener[],
    private internalNets: BlockList,
    domains: ReadonlyArray<ServedDomain> = [],
    /** Worker processes: this process's own ports toward the backends (Transports.ownPortOf), ours in a Via. */
    ownPorts: readonly Listener[] = [],
  ) {
    this.twoSided = listeners.some((l) => l.spec.side === 'internal') && listeners.some((l) => l.spec.side === 'public')
    this.hasInternalNets = internalNets.rules.length > 0
    for (const l of [...listeners, ...ownPorts]) this.own.add(l.hostport.toLowerCase())
    this.setDomains(domains)
  }

  /** The names the edge serves as its own besides its listeners (Kamailio's alias=); SIGHUP replaces them. */
  setDomains(domains: ReadonlyArray<ServedDomain>): void {
    const bare = new Set<string>()
    const withPort = new Set<string>()
    for (const d of domains) {
      if (d.port === undefined) bare.add(d.host.toLowerCase())
      else withPort.add(d.host.toLowerCase() + ':' + d.port)
    }
    this.domains = bare
    this.servedHostports = withPort
  }

  /** SIGHUP: new trusted networks. */
  setInternalNets(nets: BlockList): void {
    this.internalNets = nets
    this.hasInternalNets = nets.rules.length > 0
  }

  setBackendHosts(hosts: Iterable<string>): void {
    this.backendHosts = new Set(hosts)
    const internal = new Set(this.backendHosts)
    if (this.twoSided) for (const l of this.listeners) if (l.spec.side === 'internal') internal.add(l.spec.host)
    this.internalHosts = [...internal]
  }

  /** Addresses that must never show toward the public side: backends, and internal listeners when separate. */
  internalHosts: string[] = []

  isBackendHost(address: string): boolean {
    return this.backendHosts.has(address)
  }

  sideOf(listener: Listener, source: Peer): Side {
    // Trusted networks count as inside wherever they arrive: they may send calls outward.
    if (this.twoSided) return listener.spec.side === 'public' && this.hasInternalNets && inList(this.internalNets, source.address) ? 'internal' : listener.spec.side
    if (this.backendHosts.has(source.address)) return 'internal'
    return this.hasInternalNets && inList(this.internalNets, source.address) ? 'internal' : 'public'
  }

  /** True when host[:port] names this edge (any listener, or a configured domain). */
  isOwn(host: string, port: number | undefined): boolean {
    const h = host.toLowerCase()
    const hp = h + ':' + (port ?? 5060)
    return this.own.has(hp) || this.domains.has(h) || (this.servedHostports.size > 0 && this.servedHostports.has(hp))
  }

  isInternalAddress(address: string): boolean {
    return inList(this.internalNets, address)
  }

  /** True when host[:port] names a listener facing `side` (any listener in the one-sided setup). */
  isOwnOnSide(host: string, port: number | undefined, side: Side): boolean {
    const hp = host.toLowerCase() + ':' + (port ?? 5060)
    for (const l of this.listeners) {
      if ((!this.twoSided || l.spec.side === side) && l.hostport.toLowerCase() === hp) return true
    }
    return false
  }

  /** The listener to send from toward `side` over `proto` (falls back to any listener of that proto). */
  listenerFor(side: Side, proto: TransportProto): Listener | undefined {
    let fallback: Listener | undefined
    for (const l of this.listeners) {
      if (l.spec.proto !== proto) continue
      if (!this.twoSided || l.spec.side === side) return l
      fallback ??= l
    }
    return fallback
  }
}
