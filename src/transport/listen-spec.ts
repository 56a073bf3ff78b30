import { isIP } from 'node:net'
import type { ListenSpec, Side, TransportProto } from './types.js'

const DEFAULT_SIP_PORT = 5060

/** 4 or 6 for an IP literal (brackets allowed), 0 otherwise. */
export function familyOf(address: string): 0 | 4 | 6 {
  const bare = stripBrackets(address)
  const f = isIP(bare)
  return f === 4 || f === 6 ? f : 0
}

/** '[::1]' -> '::1'; anything else unchanged (no copy). */
export function stripBrackets(address: string): string {
  return address.charCodeAt(0) === 0x5b && address.charCodeAt(address.length - 1) === 0x5d
    ? address.slice(1, -1)
    : address
}

/** host:port with brackets around IPv6 literals, as Via sent-by and URIs want it. */
export function formatHostport(host: string, port: number): string {
  const bare = stripBrackets(host)
  return isIP(bare) === 6 ? `[${bare}]:${port}` : `${bare}:${port}`
}

/**
 * Split `host`, `host:port`, `[v6]`, `[v6]:port` (or a bare IPv6 literal, taken as a host without port).
 * Returns undefined port when none is given. Throws on malformed input.
 */
export function splitHostport(text: string, what: string): { host: string; port: number | undefined } {
  let host: string
  let portText: string | undefined
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) throw new Error(`${what}: missing ']' in '${text}'`)
    host = text.slice(1, close)
    const rest = text.slice(close + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new Error(`${what}: unexpected '${rest}' after IPv6 address`)
      portText = rest.slice(1)
    }
  } else if (isIP(text) === 6) {
    host = text
  } else {
    const colon = text.lastIndexOf(':')
    host = colon < 0 ? text : text.slice(0, colon)
    portText = colon < 0 ? undefined : text.slice(colon + 1)
  }
  if (host === '') throw new Error(`${what}: empty host in '${text}'`)
  if (portText === undefined) return { host, port: undefined }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new Error(`${what}: bad port '${portText}'`)
  return { host, port: Number(portText) }
}

/** Default ports: SIP's (RFC 3261 §19.1.2) for udp/tcp/tls; HTTP's for WebSocket (RFC 7118 has none of its own). */
const DEFAULT_PORTS: Readonly<Record<TransportProto, number>> = { udp: DEFAULT_SIP_PORT, tcp: DEFAULT_SIP_PORT, tls: 5061, ws: 80, wss: 443 }

/**
 * Parse a listen address: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`, `wss:0.0.0.0:8443`,
 * `udp:127.0.0.1` (default port of the transport), followed by options as `name value` pairs:
 * - `advertise <host[:port]>` (Kamailio style) for NAT / wildcard binds;
 * - `path </path>` (ws/wss): the only HTTP path that is upgraded;
 * - `client-cert none|require` (tls/wss): `require` is mutual TLS, clients without a trusted certificate fail the handshake.
 * The bound host must be an IP literal: no DNS at startup surprises.
 */
export function parseListenSpec(text: string, side: Side): ListenSpec {
  const what = `listen spec '${text}'`
  const words = text.trim().split(/\s+/)
  const m = /^(udp|tcp|tls|ws|wss):(\S+)$/i.exec(words[0] ?? '')
  if (!m || words.length % 2 === 0) {
    throw new Error(`${what}: expected proto:host[:port] [advertise host[:port]] [path /p] [client-cert none|require] with proto udp, tcp, tls, ws or wss`)
  }
  const proto = m[1]!.toLowerCase() as TransportProto
  const { host, port } = splitHostport(m[2]!, what)
  if (isIP(host) === 0) throw new Error(`${what}: '${host}' is not an IP address`)
  const spec: ListenSpec = { proto, host, port: port ?? DEFAULT_PORTS[proto], side }
  const ws = proto === 'ws' || proto === 'wss'
  for (let i = 1; i < words.length; i += 2) {
    const name = words[i]!.toLowerCase()
    const value = words[i + 1]!
    if (name === 'advertise') {
      splitHostport(value, what) // validate now rather than at the first Via
      spec.advertise = value
    } else if (name === 'path' && ws) {
      if (!/^\/[\x21-\x7e]*$/.test(value) || value.includes('?')) throw new Error(`${what}: path must start with '/' (no query): '${value}'`)
      spec.path = value
    } else if (name === 'client-cert' && (proto === 'tls' || proto === 'wss')) {
      const v = value.toLowerCase()
      if (v !== 'none' && v !== 'require') throw new Error(`${what}: client-cert is none or require, not '${value}'`)
      spec.clientCert = v
    } else {
      throw new Error(`${what}: unknown option '${words[i]}' for ${proto} (advertise${ws ? ', path' : ''}${proto === 'tls' || proto === 'wss' ? ', client-cert' : ''})`)
    }
  }
  return spec
}

/** What goes into Via/Record-Route for a listener: the advertised address (its port or ours) or the bound one. */
export function advertisedHostport(spec: ListenSpec, boundPort: number): string {
  if (spec.advertise === undefined) return formatHostport(spec.host, boundPort)
  const { host, port } = splitHostport(spec.advertise, 'advertise')
  return formatHostport(host, port ?? boundPort)
}
