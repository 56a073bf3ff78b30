/**
 * The address and URI syntaxes of the config (listeners, backends, CIDRs, trunk, admin, HEP, etcd), each
 * returning the parsed value or an error text that names the value. The transports, discovery and admin
 * server parse the same strings with these. Nothing here is on the hot path.
 */
import { isIP, isIPv4 } from 'node:net'
import type { BackendSpec } from '../dispatch/types.js'
import { StaticBackendError, staticBackends } from '../discovery/static.js'
import { parseListenSpec as parseTransportListenSpec } from '../transport/listen-spec.js'
import type { ListenSpec, Side } from '../transport/types.js'
import { parseServer } from '../dns/client.js'

/** `host:port`, `[v6]:port` or (portOptional) a bare host. IP literals only: no DNS at runtime. */
export function parseHostPort(s: string, defaultPort?: number): { host: string; port: number } | undefined {
  let host: string
  let rest: string
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close < 0) return undefined
    host = s.slice(1, close)
    rest = s.slice(close + 1)
    if (isIP(host) !== 6) return undefined
  } else {
    const colon = s.indexOf(':')
    host = colon < 0 ? s : s.slice(0, colon)
    rest = colon < 0 ? '' : s.slice(colon)
    if (!isIPv4(host)) return undefined
  }
  if (rest === '') return defaultPort === undefined ? undefined : { host, port: defaultPort }
  if (!/^:\d{1,5}$/.test(rest)) return undefined
  const port = Number(rest.slice(1))
  if (port > 65535) return undefined
  return { host, port }
}

/**
 * `udp:127.0.0.1:5060`, `tcp:[::1]`, `udp:0.0.0.0:5060 advertise 203.0.113.7:5060`: the syntax of
 * transport/listen-spec.ts (the parser the transports use), with its error as a string.
 */
export function parseListenSpec(s: string, side: Side): ListenSpec | string {
  try {
    return parseTransportListenSpec(s, side)
  } catch (err) {
    const detail = (err as Error).message.replace(/^listen spec '[^']*': /, '')
    const base = `"${s}" is not proto:host[:port] [advertise host[:port]]`
    return detail.startsWith('expected') ? `${base} (proto udp|tcp|tls|ws|wss, host an IP literal)` : `${base}: ${detail}`
  }
}

/**
 * A static backend: `[set=NAME:]sip:host[:port][;weight=N][;priority=N][;transport=udp|tcp|tls]`.
 * The URI rules, canonical form and id come from discovery/static.ts (the one parser of backend
 * URIs); this adds the `set=NAME:` prefix that lets one flag list carry several sets.
 */
export function parseBackendSpec(s: string): BackendSpec | string {
  let set = 'default'
  let rest = s
  if (/^(set=[^:]*:)?sips:/i.test(s)) return `"${s}": write a TLS next hop as sip:HOST:PORT;transport=tls`
  const setMatch = /^set=([^:]*):(.*)$/.exec(s)
  if (setMatch) {
    set = setMatch[1]!
    rest = setMatch[2]!
    if (!/^[A-Za-z0-9_.-]+$/.test(set)) return `"${s}": set name "${set}" must be letters, digits, _ . -`
  }
  try {
    return staticBackends([rest], set)[0]!
  } catch (err) {
    if (err instanceof StaticBackendError) return `"${s}": ${err.message.replace(/^invalid backend "[^"]*": /, '')}`
    throw err
  }
}

/** `10.0.0.0/8`, `192.0.2.7` (= /32), `fd00::/8`. */
export function parseCidr(s: string): { family: 4 | 6; address: string; bits: number } | string {
  const slash = s.indexOf('/')
  const address = slash < 0 ? s : s.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return `"${s}" is not a CIDR (address[/bits])`
  const max = family === 4 ? 32 : 128
  let bits = max
  if (slash >= 0) {
    const b = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b) || Number(b) > max) return `"${s}": prefix length must be 0..${max}`
    bits = Number(b)
  }
  const network = networkOf(address, family as 4 | 6, bits)
  if (network !== address) return `"${s}" has host bits set: did you mean ${network}/${bits}?`
  return { family: family as 4 | 6, address, bits }
}

/** The address with every bit past `bits` cleared, or `address` itself when no host bit is set. */
function networkOf(address: string, family: 4 | 6, bits: number): string {
  const bytes = family === 4 ? address.split('.').map(Number) : ipv6Bytes(address)
  let changed = false
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8))
    const masked = bytes[i]! & (0xff << (8 - keep)) & 0xff
    if (masked !== bytes[i]) changed = true
    bytes[i] = masked
  }
  if (!changed) return address
  if (family === 4) return bytes.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::')
}

function ipv6Bytes(address: string): number[] {
  let text = address
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const p = v4[1]!.split('.').map(Number)
    text = text.slice(0, -v4[1]!.length) + `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t]
  return groups.flatMap((g) => {
    const n = parseInt(g, 16)
    return [n >> 8, n & 0xff]
  })
}

export function checkSecret(s: string): string | undefined {
  if (PLACEHOLDER.test(s)) {
    return 'is a placeholder from an example: generate one (openssl rand -base64 24) and set SIPEDGE_SECRET, the same on every edge'
  }
  return undefined
}
const PLACEHOLDER = /change.?me|replace.?me|your.?secret|placeholder|example/i

export function checkTrunk(s: string): string | undefined {
  if (/^sips:/i.test(s)) return `"${s}": write a TLS next hop as sip:HOST:PORT;transport=tls`
  // sip:[user@]host[:port][;params]; a host name is resolved by RFC 3263 (NAPTR, SRV, A) and kept fresh.
  const m = /^sips?:(?:[^@;]+@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:;[^;]+)*$/.exec(s)
  const problem = `"${s}" is not a SIP URI (sip:[user@]host[:port][;params])`
  if (!m) return problem
  const host = m[1]!
  if (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6) return problem
  if (!host.startsWith('[') && isIP(host) === 0 && !isHostName(host)) return `"${s}": "${host}" is neither an IP address nor a host name`
  if (m[2] !== undefined && Number(m[2]) > 65535) return `"${s}": port must be 0..65535`
  return undefined
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, not all-numeric at the end. */
export function isHostName(s: string): boolean {
  const h = s.endsWith('.') ? s.slice(0, -1) : s
  if (h.length === 0 || h.length > 253) return false
  const labels = h.split('.')
  if (!labels.every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l))) return false
  return !/^\d+$/.test(labels[labels.length - 1]!) // 10.0.0.999 is a bad address, not a name
}

/** A served domain: `pbx.example.com`, `pbx.example.com:5080`, `203.0.113.7:5060`, `[2001:db8::7]:5060`. */
export function parseDomain(s: string): { host: string; port: number | undefined } | string {
  const bad = `"${s}" is not a host name or host:port (pbx.example.com, pbx.example.com:5080, 203.0.113.7:5060)`
  let host = s
  let port: number | undefined
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(s)
  if (v6) {
    if (isIP(v6[1]!) !== 6) return bad
    host = `[${v6[1]!.toLowerCase()}]`
    port = v6[2] === undefined ? undefined : Number(v6[2])
  } else {
    const colon = s.lastIndexOf(':')
    if (colon >= 0) {
      if (!/^\d{1,5}$/.test(s.slice(colon + 1))) return bad
      host = s.slice(0, colon)
      port = Number(s.slice(colon + 1))
    }
    if (isIP(host) !== 4 && !isHostName(host)) return bad
    host = host.toLowerCase().replace(/\.$/, '')
  }
  if (port !== undefined && (port < 1 || port > 65535)) return `"${s}": port must be 1..65535`
  return { host, port }
}

/** An inbound trunk: `[set=NAME:]CIDR` (`198.51.100.0/24`, `set=carrier:203.0.113.9`). */
export function parseInboundTrunk(s: string): { set: string | undefined; cidr: string } | string {
  const m = /^set=([^:]*):(.*)$/.exec(s)
  const set = m ? m[1]! : undefined
  const cidr = m ? m[2]! : s
  if (set !== undefined && !/^[A-Za-z0-9_.-]+$/.test(set)) return `"${s}": set name "${set}" must be letters, digits, _ . -`
  const c = parseCidr(cidr)
  if (typeof c === 'string') return m ? `"${s}": ${c}` : c
  return { set, cidr }
}

/** A DNS server: `ip`, `ip:port`, `[ipv6]:port`. */
export function checkDnsServer(s: string): string | undefined {
  return parseServer(s) ? undefined : `"${s}" is not a DNS server address (ip, ip:port or [ipv6]:port)`
}

export function checkAdminAddress(s: string): string | undefined {
  return parseHostPort(s) ? undefined : `"${s}" is not host:port (host an IP literal, e.g. 127.0.0.1:8080)`
}

export function checkHepAddress(s: string): string | undefined {
  const body = s.startsWith('udp:') ? s.slice(4) : s
  return parseHostPort(body) ? undefined : `"${s}" is not udp:host:port (host an IP literal, e.g. udp:127.0.0.1:9060)`
}

/** Accepts `http(s)://host:port` or bare `host:port`; returns the normalised URL or an error. */
export function normaliseEtcdEndpoint(s: string): { value: string } | string {
  const url = /^[a-z]+:\/\//i.test(s) ? s : `http://${s}`
  try {
    const u = new URL(url)
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.pathname.length > 1) {
      return `"${s}" is not an etcd endpoint (http[s]://host:port)`
    }
    return { value: `${u.protocol}//${u.host}` }
  } catch {
    return `"${s}" is not an etcd endpoint (http[s]://host:port)`
  }
}
