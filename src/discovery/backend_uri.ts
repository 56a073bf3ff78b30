// Validation and canonical form of a backend URI, shared by static entries, etcd values and `register`.
// Discovery runs off the hot path, so clarity wins over allocation here. Backends are IP literals only:
// the proxy resolves no DNS while forwarding (see BackendTarget).
import { isIPv4, isIPv6 } from 'node:net'

export interface BackendUri {
  scheme: 'sip' | 'sips'
  /** IPv4 literal, or IPv6 without brackets. */
  host: string
  port: number
  proto: 'udp' | 'tcp' | 'tls'
  /** URI parameters in order, names lower-cased, `undefined` for a flag parameter. */
  params: Array<[string, string | undefined]>
}

export const MAX_WEIGHT = 65535
export const MAX_PRIORITY = 65535

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/

/** Parses `sip:127.0.1.2:5080;transport=tcp`. Returns an error message instead of throwing. */
export function parseBackendUri(text: string): BackendUri | string {
  if (typeof text !== 'string' || text.length === 0) return 'backend URI is empty'
  if (text.length > 512) return 'backend URI is longer than 512 characters'
  const colon = text.indexOf(':')
  const scheme = colon > 0 ? text.slice(0, colon).toLowerCase() : ''
  if (scheme !== 'sip' && scheme !== 'sips') return `backend URI must start with sip: or sips: (got "${text}")`
  if (text.includes('?')) return `backend URI must not carry headers (got "${text}")`
  const rest = text.slice(colon + 1)
  if (rest.includes('@')) return `backend URI must not carry a user part (got "${text}")`
  const semi = rest.indexOf(';')
  const hostport = semi < 0 ? rest : rest.slice(0, semi)
  const paramText = semi < 0 ? '' : rest.slice(semi + 1)

  let host: string
  let portText: string | undefined
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']')
    if (close < 0) return `unterminated IPv6 reference in "${text}"`
    host = hostport.slice(1, close)
    const after = hostport.slice(close + 1)
    if (after !== '' && !after.startsWith(':')) return `unexpected "${after}" after IPv6 reference in "${text}"`
    portText = after === '' ? undefined : after.slice(1)
    if (!isIPv6(host)) return `"${host}" is not an IPv6 address`
  } else {
    const c = hostport.indexOf(':')
    host = c < 0 ? hostport : hostport.slice(0, c)
    portText = c < 0 ? undefined : hostport.slice(c + 1)
    if (!isIPv4(host)) return `backend host must be an IP literal, no DNS on the hot path (got "${host}")`
  }

  let port = scheme === 'sips' ? 5061 : 5060
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) return `bad port "${portText}" in "${text}"`
    port = Number(portText)
    if (port < 1 || port > 65535) return `port ${port} out of range in "${text}"`
  }

  const params: Array<[string, string | undefined]> = []
  let proto: BackendUri['proto'] = scheme === 'sips' ? 'tcp' : 'udp'
  if (paramText !== '') {
    for (const part of paramText.split(';')) {
      const eq = part.indexOf('=')
      const name = (eq < 0 ? part : part.slice(0, eq)).toLowerCase()
      const value = eq < 0 ? undefined : part.slice(eq + 1)
      if (!TOKEN.test(name)) return `bad URI parameter "${part}" in "${text}"`
      if (value !== undefined && !TOKEN.test(value)) return `bad value for URI parameter "${name}" in "${text}"`
      if (params.some(([n]) => n === name)) return `duplicate URI parameter "${name}" in "${text}"`
      if (name === 'transport') {
        const v = (value ?? '').toLowerCase()
        if (v !== 'udp' && v !== 'tcp' && v !== 'tls') return `transport must be udp, tcp or tls (got "${value ?? ''}")`
        proto = v
        params.push([name, v])
        continue
      }
      params.push([name, value])
    }
  }
  return { scheme, host, port, proto, params }
}

/** Canonical text: lower-case scheme, explicit port, parameters as given (names lower-cased). */
export function formatBackendUri(u: BackendUri): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host
  let out = `${u.scheme}:${host}:${u.port}`
  for (const [name, value] of u.params) out += value === undefined ? `;${name}` : `;${name}=${value}`
  return out
}

/** Checks a weight or priority: an integer in [0, max]. Returns an error message or undefined. */
export function checkRank(what: 'weight' | 'priority', value: unknown, max: number): string | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    return `${what} must be an integer from 0 to ${max} (got ${JSON.stringify(value)})`
  }
  return undefined
}

/** Short stable id for a backend: `host:port` plus `;transport=tcp` when not the scheme's default. */
export function backendIdFromUri(u: BackendUri): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host
  const defaultProto = u.scheme === 'sips' ? 'tcp' : 'udp'
  return u.proto === defaultProto ? `${host}:${u.port}` : `${host}:${u.port};transport=${u.proto}`
}
