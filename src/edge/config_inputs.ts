// Config values turned into what the edge's parts take (proxy options, next hops, etcd connection, served domains,
// inbound trunks, source filters): shared by start() and reload(), validated already by src/config.
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import { NextHopResolver, hopName } from '../dns/index.js'
import { cidrList, peerFromUri, type ServedDomain } from '../proxy/addressing.js'
import { InboundTrunks } from '../proxy/inbound_trunks.js'
import { SourceFilter } from '../proxy/guard.js'
import type { ProxyOptions } from '../proxy/options.js'
import { parseUri } from '../sip/index.js'
import type { Listener } from '../transport/types.js'
import { parseDomain, parseInboundTrunk } from '../config/syntax.js'
import type { EdgeConfig } from './config.js'

/** The proxy options that come straight from the config (the edge adds hooks, media, observer, defence). */
export function proxyOptions(c: EdgeConfig): ProxyOptions {
  return {
    secret: c.secret,
    failover: c.failover,
    maxTransactions: c.limits.maxTransactions,
    maxDialogs: c.limits.maxDialogs,
    dialogTtlS: c.limits.dialogTtlS,
    ...(c.inboundTrunks.length ? { inboundTrunks: inboundTrunks(c.inboundTrunks) } : {}),
    rateLimit: c.rateLimit,
    maskCallId: c.maskCallId,
    filters: {
      public: sourceFilter(c.allowPublic, c.denyPublic),
      internal: sourceFilter(c.allowInternal, c.denyInternal),
    },
    ...(c.registrar.set !== undefined ? { registrarSet: c.registrar.set } : {}),
    ...(c.nat.keepalive ? { natKeepalive: { intervalMs: c.nat.keepaliveIntervalMs, method: c.nat.keepaliveMethod, max: c.nat.maxFlows } } : {}),
  }
}

/**
 * The RFC 3263 resolver of next hops given by name (started), asked for what the public side can reach, and the
 * trunk: an IP literal as is, a name resolved now in the background and kept fresh (the first call waits only
 * if that is not done yet).
 */
export function nextHops(c: EdgeConfig, listeners: readonly Listener[], twoSided: boolean, log: Logger): { resolver: NextHopResolver; proxy: Pick<ProxyOptions, 'trunk' | 'trunkName' | 'resolver'> } {
  const publicSide = listeners.filter((l) => l.spec.side === 'public' || !twoSided)
  const resolver = new NextHopResolver({
    servers: c.dns.servers,
    staleMs: c.dns.staleMs,
    timeoutMs: c.dns.timeoutMs,
    transports: new Set(publicSide.map((l) => l.spec.proto).filter((p) => p === 'udp' || p === 'tcp' || p === 'tls')),
    ipv6: publicSide.some((l) => isIP(l.spec.host) === 6),
    log,
  })
  resolver.start()
  if (!c.trunk) return { resolver, proxy: { resolver } }
  const uri = parseUri(c.trunk)
  const trunk = peerFromUri(uri)
  if (trunk) return { resolver, proxy: { resolver, trunk } }
  const trunkName = hopName(uri.host, uri.port, uri.params['transport'], uri.scheme === 'sips')
  void resolver.keep(trunkName)
  return { resolver, proxy: { resolver, trunkName } }
}

/** Credentials and TLS files of the etcd connection, shared by discovery and shared bans. */
export function etcdConnection(e: NonNullable<EdgeConfig['etcd']>): { auth?: { username: string; password: string }; tls?: { ca?: string; cert?: string; key?: string } } {
  const tls = e.cacert || e.cert || e.key ? { ...(e.cacert ? { ca: e.cacert } : {}), ...(e.cert ? { cert: e.cert } : {}), ...(e.key ? { key: e.key } : {}) } : undefined
  return { ...(e.username ? { auth: { username: e.username, password: e.password ?? '' } } : {}), ...(tls ? { tls } : {}) }
}

/** Config `domains` as Sides takes them (validated already: a bad entry cannot get here). */
export function servedDomains(list: readonly string[]): ServedDomain[] {
  return list.flatMap((d) => {
    const p = parseDomain(d)
    return typeof p === 'string' ? [] : [p]
  })
}

/** Config `inboundTrunks` prepared for the proxy's set lookups. */
export function inboundTrunks(list: readonly string[]): InboundTrunks {
  return new InboundTrunks(list.flatMap((e) => {
    const p = parseInboundTrunk(e)
    return typeof p === 'string' ? [] : [p]
  }))
}

/** Config allow/deny CIDR lists as the proxy's source filter (an empty list filters nothing). */
export function sourceFilter(allow: string[], deny: string[]): SourceFilter {
  return new SourceFilter(allow.length ? cidrList(allow) : undefined, deny.length ? cidrList(deny) : undefined)
}
