/** name-addr / addr-spec (RFC 3261 §20.10, §25.1) with header params, and comma-separated lists. */
import { SipParseError } from './errors.js'
import { TOKEN, SP, HT, CR, LF, COMMA, SEMI, DQUOTE, LT, GT, isLws, skipLws, trimLwsEnd, utf8, unfold } from './bytes.js'
import { parseParams, skipQuoted, decodeQuoted } from './parse_params.js'
import { parseUri, type SipUri } from './parse_uri.js'

export interface NameAddr {
  displayName?: string
  uri: SipUri
  uriText: string
  tag?: string
  params: Record<string, string | true>
  raw: string
  start: number
  end: number
}

/** A parsed element; the URI is parsed on first access (a SipParseError then surfaces there). */
class ParsedNameAddr implements NameAddr {
  displayName?: string
  uriText: string
  tag?: string
  params: Record<string, string | true>
  raw: string
  start: number
  end: number
  private parsedUri: SipUri | undefined
  constructor(uriText: string, params: Record<string, string | true>, raw: string, start: number, end: number) {
    this.uriText = uriText
    this.params = params
    this.raw = raw
    this.start = start
    this.end = end
    this.parsedUri = undefined
  }
  get uri(): SipUri {
    return (this.parsedUri ??= parseUri(this.uriText))
  }
}

/** Where the last parseNameAddrAt stopped (index of ',' or `end`). */
export const addrNext = { value: 0 }

/** Parses one element at `p`; the element must be followed by ',' or the end of the range. */
export function parseNameAddrAt(buf: Buffer, p: number, end: number): NameAddr {
  const start = skipLws(buf, p, end)
  if (start >= end) throw new SipParseError('empty address', 400)
  let i = start
  let displayName: string | undefined
  let uriStart: number, uriEnd: number
  let bracketed = false
  if (buf[i] === DQUOTE) {
    const close = skipQuoted(buf, i, end)
    displayName = decodeQuoted(buf, i + 1, close - 1)
    i = skipLws(buf, close, end)
    if (i >= end || buf[i] !== LT) throw new SipParseError('quoted display name without <URI>', 400)
    bracketed = true
  } else {
    // A '<' before any ',' or ';' means a name-addr; the text before it is a token display name.
    let j = i
    while (j < end) {
      const c = buf[j]!
      if (c === LT || c === COMMA || c === SEMI) break
      j++
    }
    if (j < end && buf[j] === LT) {
      const dnEnd = trimLwsEnd(buf, i, j)
      for (let k = i; k < dnEnd; k++) {
        const c = buf[k]!
        if (TOKEN[c] !== 1 && !isLws(c) && c < 0x80) throw new SipParseError('bad character in display name', 400)
      }
      if (dnEnd > i) displayName = utf8(buf, i, dnEnd)
      i = j
      bracketed = true
    }
  }
  if (bracketed) {
    uriStart = i + 1
    let j = uriStart
    while (j < end && buf[j] !== GT) {
      const c = buf[j]!
      if (c === SP || c === HT || c === CR || c === LF) throw new SipParseError('whitespace inside <URI>', 400)
      j++
    }
    if (j >= end) throw new SipParseError('missing > after URI', 400)
    uriEnd = j
    i = j + 1
  } else {
    // addr-spec: the URI cannot hold ',', ';' or '?' (those force the <> form).
    uriStart = i
    let j = i
    while (j < end) {
      const c = buf[j]!
      if (c === COMMA || c === SEMI || isLws(c)) break
      if (c === 0x3f) throw new SipParseError('URI with headers must be enclosed in <>', 400)
      j++
    }
    uriEnd = j
    i = j
  }
  if (uriEnd === uriStart) throw new SipParseError('empty URI', 400)
  const params: Record<string, string | true> = {}
  const elEnd = parseParams(buf, i, end, params)
  const after = skipLws(buf, elEnd, end)
  if (after < end && buf[after] !== COMMA) throw new SipParseError('junk after address', 400)
  addrNext.value = after
  const na = new ParsedNameAddr(utf8(buf, uriStart, uriEnd), params, unfold(buf, start, elEnd), start, elEnd)
  if (displayName !== undefined) na.displayName = displayName
  const tag = params['tag']
  if (typeof tag === 'string') na.tag = tag
  return na
}

/** Parses a single-value address header (From, To, Refer-To...): a comma after the element is an error. */
export function parseSingleAddress(buf: Buffer, start: number, end: number): NameAddr {
  const na = parseNameAddrAt(buf, start, end)
  if (addrNext.value < end) throw new SipParseError('more than one address in a single-value header', 400)
  return na
}

/** Appends every element of a comma-separated address list (Route, Record-Route, Contact). */
export function parseAddressList(buf: Buffer, start: number, end: number, into: NameAddr[], max: number): void {
  let p = start
  for (;;) {
    const na = parseNameAddrAt(buf, p, end)
    if (into.length >= max) throw new SipParseError('too many addresses', 513)
    into.push(na)
    const next = addrNext.value
    if (next >= end) return
    p = next + 1 // past the comma; an empty element after it throws in parseNameAddrAt
  }
}
