/** SIP/SIPS/tel URI parser (RFC 3261 §19.1, RFC 3966). Other schemes are kept opaque. */
import { SipParseError } from './errors.js'

export interface SipUri {
  scheme: string
  user?: string
  password?: string
  host: string
  port?: number
  params: Record<string, string | true>
  headers: Record<string, string>
  raw: string
}

function bad(why: string, text: string): SipParseError {
  return new SipParseError(`bad URI (${why}): ${text.length > 80 ? text.slice(0, 80) + '…' : text}`, 400)
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

/** Decodes %HH escapes; a % not followed by two hex digits stays literal. */
export function unescapeUriPart(s: string): string {
  if (s.indexOf('%') < 0) return s
  let out = ''
  let i = 0
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c === 0x25 && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16))
      i += 3
    } else {
      out += s[i]
      i++
    }
  }
  return out
}

function parseParams(text: string, s: string, into: Record<string, string | true>): void {
  if (s === '') return
  for (const part of s.split(';')) {
    if (part === '') throw bad('empty parameter', text)
    const eq = part.indexOf('=')
    if (eq === 0) throw bad('empty parameter name', text)
    if (eq < 0) into[part.toLowerCase()] = true
    else into[part.slice(0, eq).toLowerCase()] = part.slice(eq + 1)
  }
}

function parseHostPort(text: string, hp: string, uri: SipUri): void {
  let hostEnd: number
  if (hp.charCodeAt(0) === 0x5b) {
    const close = hp.indexOf(']')
    if (close < 0) throw bad('unterminated IPv6 reference', text)
    hostEnd = close + 1
  } else {
    hostEnd = hp.indexOf(':')
    if (hostEnd < 0) hostEnd = hp.length
  }
  const host = hp.slice(0, hostEnd)
  if (host === '') throw bad('empty host', text)
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i)
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c === 0x2d || c === 0x2e || c === 0x5b || c === 0x5d || c === 0x3a || c === 0x5f
    if (!ok) throw bad('bad host character', text)
  }
  uri.host = host
  if (hostEnd < hp.length) {
    if (hp.charCodeAt(hostEnd) !== 0x3a) throw bad('junk after host', text)
    const portText = hp.slice(hostEnd + 1)
    if (!/^\d{1,5}$/.test(portText)) throw bad('bad port', text)
    const port = Number(portText)
    if (port > 65535) throw bad('port out of range', text)
    uri.port = port
  }
}

export function parseUri(text: string): SipUri {
  const colon = text.indexOf(':')
  if (colon <= 0) throw bad('no scheme', text)
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f || c === 0x3c || c === 0x3e || c === 0x22) throw bad('illegal character', text)
  }
  const scheme = text.slice(0, colon).toLowerCase()
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) throw bad('bad scheme', text)
  const uri: SipUri = { scheme, host: '', params: {}, headers: {}, raw: text }
  const rest = text.slice(colon + 1)
  if (scheme === 'tel') {
    const semi = rest.indexOf(';')
    const number = semi < 0 ? rest : rest.slice(0, semi)
    if (number === '') throw bad('empty telephone number', text)
    uri.user = unescapeUriPart(number)
    if (semi >= 0) parseParams(text, rest.slice(semi + 1), uri.params)
    return uri
  }
  if (scheme !== 'sip' && scheme !== 'sips') {
    if (rest === '') throw bad('empty opaque part', text)
    return uri
  }
  // The user part may hold '?', ';' and ':' (user-unreserved), while host, params and headers never
  // hold a raw '@': split on the last '@' first.
  const at = rest.lastIndexOf('@')
  let hostPart = rest
  if (at >= 0) {
    const userinfo = rest.slice(0, at)
    hostPart = rest.slice(at + 1)
    const pc = userinfo.indexOf(':')
    const user = pc < 0 ? userinfo : userinfo.slice(0, pc)
    if (user === '') throw bad('empty user', text)
    uri.user = unescapeUriPart(user)
    if (pc >= 0) uri.password = unescapeUriPart(userinfo.slice(pc + 1))
  }
  const q = hostPart.indexOf('?')
  if (q >= 0) {
    const hs = hostPart.slice(q + 1)
    hostPart = hostPart.slice(0, q)
    if (hs === '') throw bad('empty headers', text)
    for (const pair of hs.split('&')) {
      const eq = pair.indexOf('=')
      if (eq <= 0) throw bad('bad header', text)
      uri.headers[unescapeUriPart(pair.slice(0, eq))] = unescapeUriPart(pair.slice(eq + 1))
    }
  }
  const semi = hostPart.indexOf(';')
  parseHostPort(text, semi < 0 ? hostPart : hostPart.slice(0, semi), uri)
  if (semi >= 0) parseParams(text, hostPart.slice(semi + 1), uri.params)
  return uri
}
