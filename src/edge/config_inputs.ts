// Config values turned into what the edge's parts take (etcd connection, served domains, inbound trunks, source
// filters): shared by start() and reload(), validated already by src/config.
import { cidrList, type ServedDomain } from '../proxy/addressing.js'
import { InboundTrunks } from '../proxy/inbound_trunks.js'
import { SourceFilter } from '../proxy/guard.js'
import { parseDomain, parseInboundTrunk } from '../config/syntax.js'
import type { EdgeConfig } from './config.js'

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
