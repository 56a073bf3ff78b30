import { isIPv4, isIPv6 } from 'node:net'
import type { AdminState, BackendSpec, BackendTarget, HealthState } from './types.js'

/**
 * One backend (an Asterisk container) in one set. Administrative state (`admin`, set by operators and
 * discovery) and health (`health`, set by the prober and transaction outcomes) are kept apart.
 */
export class Backend {
  readonly id: string
  readonly set: string
  uri: string
  target: BackendTarget
  weight: number
  priority: number
  admin: AdminState
  health: HealthState = 'probing'
  activeCalls = 0
  /** Calls the other worker processes carry on this backend (synced by the primary every 500 ms; 0 with one process). */
  otherWorkersCalls = 0
  source: BackendSpec['source']
  extra?: Record<string, unknown>
  /** stable key of the address: `udp:127.0.1.1:5080` — the same backend across edge instances */
  readonly key: string
  /** True once removed from its set; the object lives on for dialogs that still use it. */
  retired = false
  /** Consecutive failed / good health signals, for the thresholds in both directions. */
  failStreak = 0
  okStreak = 0
  /** Why the last health signal was bad ('timeout', 'status 404', 'connection refused'...), for the 'down' log. */
  lastFailure: string | undefined = undefined
  /** 32-bit hash of `key`, the per-backend seed of rendezvous hashing. */
  readonly hashSeed: number
  /** Smooth weighted round-robin running weight (nginx `current_weight`). */
  swrrCurrent = 0

  constructor(spec: BackendSpec, target?: BackendTarget) {
    this.id = spec.id
    this.set = spec.set
    this.uri = spec.uri
    this.target = target ?? parseBackendUri(spec.uri)
    this.key = targetKey(this.target)
    this.weight = spec.weight
    this.priority = spec.priority
    this.admin = spec.admin
    this.source = spec.source
    this.extra = spec.extra // always present, so every Backend has one hidden class
    this.hashSeed = hashString(this.key, 0x2545f491)
  }

  get eligible(): boolean {
    return this.admin === 'active' && this.health !== 'down' && !this.retired
  }
}

/** `udp:127.0.1.1:5080`, `tcp:[::1]:5060` */
export function targetKey(t: BackendTarget): string {
  return t.host.includes(':') ? `${t.proto}:[${t.host}]:${t.port}` : `${t.proto}:${t.host}:${t.port}`
}

/** host:port as it appears in SIP (IPv6 in brackets). */
export function targetHostport(t: BackendTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`
}

/**
 * Parses a backend URI: `sip:` scheme, IP literal host (v4 or [v6]), optional port (default 5060),
 * optional `;transport=udp|tcp`. Other URI parameters are ignored. The returned host has no brackets,
 * ready for node:dgram / node:net. Throws Error with a message naming what is wrong.
 * Config-time only: it allocates freely.
 */
export function parseBackendUri(uri: string): BackendTarget {
  const fail = (why: string): never => {
    throw new Error(`invalid backend URI ${JSON.stringify(uri)}: ${why}`)
  }
  let text = uri.trim()
  if (text.startsWith('<') && text.endsWith('>')) text = text.slice(1, -1)
  const colon = text.indexOf(':')
  if (colon < 0) fail('expected sip:host[:port][;transport=udp|tcp]')
  const scheme = text.slice(0, colon).toLowerCase()
  if (scheme === 'sips') fail('write a TLS backend as sip:HOST:PORT;transport=tls')
  if (scheme !== 'sip') fail(`unsupported scheme "${scheme}:" (only sip:)`)
  let rest = text.slice(colon + 1)
  const q = rest.indexOf('?')
  if (q >= 0) rest = rest.slice(0, q)
  const at = rest.lastIndexOf('@')
  if (at >= 0) rest = rest.slice(at + 1)
  const semi = rest.indexOf(';')
  const hostport = semi >= 0 ? rest.slice(0, semi) : rest
  const params = semi >= 0 ? rest.slice(semi + 1) : ''

  let host: string
  let portText: string | undefined
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']')
    if (close < 0) fail('unterminated IPv6 literal')
    host = hostport.slice(1, close)
    if (!isIPv6(host)) fail(`"${host}" is not an IPv6 address`)
    host = new URL(`http://[${host}]/`).hostname.slice(1, -1) // canonical form, so keys compare
    const after = hostport.slice(close + 1)
    if (after !== '') {
      if (after[0] !== ':') fail('unexpected text after the IPv6 literal')
      portText = after.slice(1)
    }
  } else {
    const c = hostport.indexOf(':')
    host = c >= 0 ? hostport.slice(0, c) : hostport
    if (c >= 0) portText = hostport.slice(c + 1)
    if (host === '') fail('missing host')
    if (isIPv6(host)) fail('IPv6 hosts must be in brackets: sip:[::1]:5060')
    if (!isIPv4(host)) fail(`host "${host}" is not an IP literal (DNS names are not resolved for backends)`)
  }

  let port = 5060
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) fail(`bad port "${portText}"`)
    port = Number(portText)
    if (port < 1 || port > 65535) fail(`port ${port} out of range`)
  }

  let proto: BackendTarget['proto'] = 'udp'
  if (params !== '') {
    for (const p of params.split(';')) {
      const eq = p.indexOf('=')
      const name = (eq >= 0 ? p.slice(0, eq) : p).trim().toLowerCase()
      if (name !== 'transport') continue
      const value = eq >= 0 ? p.slice(eq + 1).trim().toLowerCase() : ''
      if (value === 'udp' || value === 'tcp' || value === 'tls') proto = value
      else fail(`unsupported transport "${value}" (udp, tcp or tls)`)
    }
  }
  return { proto, host, port }
}

/** FNV-1a over UTF-16 code units, finished with the murmur3 mixer. Allocation-free. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed | 0
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return mix32(h)
}

/** murmur3 fmix32: a bijection on 32 bits with full avalanche. */
export function mix32(x: number): number {
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}
