import { H, parseUri, unescapeUriPart, type MessageEditor, type NameAddr, type SipMessage, type SipUri } from '../sip/index.js'
import type { Listener, Peer } from '../transport/types.js'
import { bareHost, peerFromUri } from './addressing.js'

/**
 * Addresses and Call-IDs carried inside headers that a method cannot lose: 3xx Contacts, REFER's Refer-To
 * (RFC 3515 §2.4.1), Referred-By (RFC 3892), Replaces (RFC 3891) and the `?Replaces=` of a Refer-To URI.
 * Topology hiding rewrites them (never deletes them): an internal target becomes an edge alias
 * `sip:user@EDGE;ct=TOKEN` that the edge opens again when a request is sent to it, and a Call-ID follows the
 * masking of the dialog it names. Run on requests crossing sides (outward every method, inward INVITE and
 * REFER) and on 3xx responses relayed to the public side: one pass over the header ids, no allocation, when
 * none of these headers is there.
 */
export interface RewriteContext {
  /** The bare host is inside: a backend, the internal side, an internal network. */
  isInternal(host: string): boolean
  isOwn(host: string, port: number | undefined): boolean
  /** A `ct` token standing for `uri` (no URI headers) reached at `peer`. */
  sealContact(uri: string, peer: Peer): string
  /** The URI a `ct` token stands for; undefined when forged or stale. */
  openContact(token: string): string | undefined
  /**
   * The Call-ID a dialog is known by on the other side: going in, a masked one unmasked; going out, the
   * Call-ID of a dialog a backend created masked (when masking is on). Undefined: unchanged.
   */
  crossCallId(callId: string, inward: boolean): string | undefined
}

const CT = 'ct'

/** `sip:user@EDGE[;transport=tcp];ct=TOKEN` + the URI headers of the original (`?Replaces=...`). */
function aliasOf(uri: SipUri, uriText: string, headers: string, listener: Listener, ctx: RewriteContext): string | undefined {
  const peer = peerFromUri(uri)
  if (!peer) return undefined
  const base = headers === '' ? uriText : uriText.slice(0, uriText.length - headers.length)
  const token = ctx.sealContact(base, peer)
  const at = base.lastIndexOf('@')
  let user = ''
  if (at >= 0) {
    const u = base.slice(base.indexOf(':') + 1, at)
    const colon = u.indexOf(':') // a password has no business outside
    user = (colon < 0 ? u : u.slice(0, colon)) + '@'
  }
  const transport = listener.spec.proto === 'tcp' ? ';transport=tcp' : ''
  return `sip:${user}${listener.hostport}${transport};${CT}=${token}${headers}`
}

/** The `?headers` part of a SIP URI text ('' when none): after the host part, so a '?' in the user is not it. */
function headersPart(uriText: string): string {
  const q = uriText.indexOf('?', uriText.lastIndexOf('@') + 1)
  return q < 0 ? '' : uriText.slice(q)
}

/** Contact params written back after a rewritten URI (q, expires ...). */
function paramsText(na: NameAddr): string {
  let s = ''
  for (const k in na.params) {
    const v = na.params[k]
    s += v === true ? ';' + k : ';' + k + '=' + v
  }
  return s
}

/**
 * 3xx toward the public side: every Contact is kept (RFC 3261 §21.3: they are the alternatives), an external
 * target as it is, an internal one as an alias, so that a new INVITE to it from the caller reaches that
 * target through the edge.
 */
export function redirectContacts(msg: SipMessage, ed: MessageEditor, listener: Listener, ctx: RewriteContext): void {
  const contacts = msg.contacts
  let changed = false
  let value = ''
  for (let i = 0; i < contacts.length; i++) {
    const c = contacts[i]!
    let text = c.raw
    let uri: SipUri
    try {
      uri = c.uri
    } catch {
      changed = true // an alternative nobody can follow, and that might name an internal host: left out
      continue
    }
    if (ctx.isInternal(bareHost(uri.host))) {
      const alias = aliasOf(uri, c.uriText, headersPart(c.uriText), listener, ctx)
      if (alias !== undefined) {
        const lt = c.raw.indexOf('<')
        text = (lt > 0 ? c.raw.slice(0, lt) : '') + '<' + alias + '>' + paramsText(c) // display name kept
        changed = true
      }
    }
    value += value === '' ? text : ', ' + text
  }
  if (!changed) return
  if (value === '') ed.removeHeaders(H.Contact)
  else ed.setHeader(H.Contact, value)
}

/** The URI inside a name-addr or addr-spec header value: [start, end) in `value`. */
function uriRange(value: string): [number, number] | undefined {
  const lt = value.indexOf('<')
  if (lt >= 0) {
    const gt = value.indexOf('>', lt + 1)
    return gt < 0 ? undefined : [lt + 1, gt]
  }
  let s = 0
  while (s < value.length && (value.charCodeAt(s) === 32 || value.charCodeAt(s) === 9)) s++
  let e = value.indexOf(';', s)
  if (e < 0) e = value.length
  while (e > s && (value.charCodeAt(e - 1) === 32 || value.charCodeAt(e - 1) === 9)) e--
  return e > s ? [s, e] : undefined
}

/**
 * Refer-To, Referred-By and Replaces of a request crossing sides. `outward`: it leaves the inside toward the
 * public side (internal hosts aliased or replaced by the edge, backend Call-IDs masked); else it comes in
 * (aliases opened, masked Call-IDs restored). `listener`: the edge socket the far side reaches.
 */
export function rewriteTransferHeaders(msg: SipMessage, ed: MessageEditor, outward: boolean, listener: Listener, ctx: RewriteContext): void {
  for (let i = 0; i < msg.headerCount; i++) {
    const id = msg.headerId(i)
    if (id !== H.ReferTo && id !== H.ReferredBy && !(id === H.Other && isReplaces(msg, i))) continue
    const value = msg.headerValue(i)
    const next = id === H.ReferTo ? referTo(value, outward, listener, ctx) : id === H.ReferredBy ? (outward ? referredBy(value, listener, ctx) : undefined) : replaces(value, outward, ctx)
    if (next !== undefined && next !== value) ed.replaceRange(msg.headerValueStart(i), msg.headerValueEnd(i), next)
  }
}

/** The Call-ID named by the request's Replaces header (RFC 3891), as written; only asked for INVITE. */
export function replacesCallId(msg: SipMessage): string | undefined {
  for (let i = 0; i < msg.headerCount; i++) {
    if (msg.headerId(i) === H.Other && isReplaces(msg, i)) {
      const v = msg.headerValue(i)
      const semi = v.indexOf(';')
      return (semi < 0 ? v : v.slice(0, semi)).trim()
    }
  }
  return undefined
}

export function isReplaces(msg: SipMessage, i: number): boolean {
  const s = msg.headerLineStart(i)
  const b = msg.buf
  // 'Replaces' (8 letters) followed by optional whitespace and ':'; compared without building the name.
  if ((b[s]! | 0x20) !== 0x72 || (b[s + 7]! | 0x20) !== 0x73) return false
  return msg.headerName(i).toLowerCase() === 'replaces'
}

function referTo(value: string, outward: boolean, listener: Listener, ctx: RewriteContext): string | undefined {
  const r = uriRange(value)
  if (!r) return undefined
  const uriText = value.slice(r[0], r[1])
  let uri: SipUri
  try {
    uri = parseUri(uriText)
  } catch {
    return undefined
  }
  const headers = headersPart(uriText)
  const newHeaders = headers === '' ? '' : replacesInUriHeaders(headers, outward, ctx)
  let next: string | undefined
  if (outward && ctx.isInternal(bareHost(uri.host))) {
    next = aliasOf(uri, uriText, newHeaders, listener, ctx)
  } else if (!outward && typeof uri.params[CT] === 'string' && ctx.isOwn(uri.host, uri.port)) {
    // One of our aliases referred back inside: the backend gets the internal URI it stands for.
    const original = ctx.openContact(uri.params[CT] as string)
    if (original !== undefined) next = original + newHeaders
  }
  if (next === undefined) {
    if (newHeaders === headers) return undefined
    next = uriText.slice(0, uriText.length - headers.length) + newHeaders
  }
  return value.slice(0, r[0]) + next + value.slice(r[1])
}

function referredBy(value: string, listener: Listener, ctx: RewriteContext): string | undefined {
  const r = uriRange(value)
  if (!r) return undefined
  let uri: SipUri
  try {
    uri = parseUri(value.slice(r[0], r[1]))
  } catch {
    return undefined
  }
  if (!ctx.isInternal(bareHost(uri.host))) return undefined
  // Identity, not a target: the edge's address stands in for the internal host (as in From).
  const hp = uri.port === undefined ? uri.host : uri.host + ':' + uri.port
  const at = value.indexOf(hp, r[0])
  if (at < 0 || at >= r[1]) return undefined
  return value.slice(0, at) + listener.hostport + value.slice(at + hp.length)
}

/** Replaces header value: `callid;to-tag=..;from-tag=..`. */
function replaces(value: string, outward: boolean, ctx: RewriteContext): string | undefined {
  let s = 0
  while (s < value.length && (value.charCodeAt(s) === 32 || value.charCodeAt(s) === 9)) s++
  let e = value.indexOf(';', s)
  if (e < 0) e = value.length
  while (e > s && (value.charCodeAt(e - 1) === 32 || value.charCodeAt(e - 1) === 9)) e--
  if (e === s) return undefined
  const crossed = ctx.crossCallId(value.slice(s, e), !outward)
  return crossed === undefined ? undefined : value.slice(0, s) + crossed + value.slice(e)
}

/** `?...Replaces=<escaped callid>%3Bto-tag...`: the Call-ID part crossed, the rest kept as written. */
function replacesInUriHeaders(headers: string, outward: boolean, ctx: RewriteContext): string {
  const lower = headers.toLowerCase()
  let at = lower.indexOf('replaces=')
  while (at > 0 && headers.charCodeAt(at - 1) !== 63 /* ? */ && headers.charCodeAt(at - 1) !== 38 /* & */) {
    at = lower.indexOf('replaces=', at + 1)
  }
  if (at < 0) return headers
  const s = at + 9
  let e = s
  while (e < headers.length) {
    const c = headers.charCodeAt(e)
    if (c === 38 /* & */ || c === 59 /* ; */ || (c === 37 /* % */ && lower.startsWith('%3b', e))) break
    e++
  }
  if (e === s) return headers
  const crossed = ctx.crossCallId(unescapeUriPart(headers.slice(s, e)), !outward)
  return crossed === undefined ? headers : headers.slice(0, s) + escapeHvalue(crossed) + headers.slice(e)
}

/** RFC 3261 hvalue: unreserved and hnv-unreserved stay, everything else is %-escaped ('@' in a Call-ID). */
function escapeHvalue(s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const keep =
      (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      '-_.!~*\'()[]/?:+$'.indexOf(s[i]!) >= 0
    out += keep ? s[i] : '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase()
  }
  return out
}
