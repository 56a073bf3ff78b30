/** Via elements (RFC 3261 §20.42, §25.1): sent-protocol, sent-by and via-params. */
import { SipParseError } from './errors.js'
import { TOKEN, COMMA, SLASH, COLON, LBRACK, RBRACK, skipLws, latin1, unfold } from './bytes.js'
import { parseParams } from './parse_params.js'

export interface Via {
  transport: string
  host: string
  port?: number
  branch?: string
  received?: string
  rport?: number | true
  maddr?: string
  ttl?: number
  params: Record<string, string | true>
  raw: string
  start: number
  end: number
  headerIndex: number
}

/** Where the last parseViaAt stopped (index of ',' or `end`). */
export const viaNext = { value: 0 }

function expect(buf: Buffer, i: number, end: number, byte: number, what: string): number {
  i = skipLws(buf, i, end)
  if (i >= end || buf[i] !== byte) throw new SipParseError(`bad Via: expected ${what}`, 400)
  return skipLws(buf, i + 1, end)
}

function token(buf: Buffer, i: number, end: number): number {
  while (i < end && TOKEN[buf[i]!] === 1) i++
  return i
}

export function parseViaAt(buf: Buffer, p: number, end: number, headerIndex: number): Via {
  const start = skipLws(buf, p, end)
  let i = token(buf, start, end)
  if (i === start) throw new SipParseError('bad Via: missing protocol name', 400)
  i = expect(buf, i, end, SLASH, "'/'")
  let j = token(buf, i, end)
  if (j === i) throw new SipParseError('bad Via: missing protocol version', 400)
  i = expect(buf, j, end, SLASH, "'/'")
  j = token(buf, i, end)
  if (j === i) throw new SipParseError('bad Via: missing transport', 400)
  const transport = latin1(buf, i, j).toUpperCase()
  i = skipLws(buf, j, end)
  if (i === j) throw new SipParseError('bad Via: no space before sent-by', 400)
  const hostStart = i
  if (i < end && buf[i] === LBRACK) {
    while (i < end && buf[i] !== RBRACK) i++
    if (i >= end) throw new SipParseError('bad Via: unterminated IPv6 reference', 400)
    i++
  } else {
    while (i < end) {
      const c = buf[i]!
      if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f) i++
      else break
    }
  }
  if (i === hostStart) throw new SipParseError('bad Via: missing host', 400)
  const via: Via = { transport, host: latin1(buf, hostStart, i), params: {}, raw: '', start, end: i, headerIndex }
  j = skipLws(buf, i, end)
  if (j < end && buf[j] === COLON) {
    const ps = skipLws(buf, j + 1, end)
    let pe = ps
    let port = 0
    while (pe < end && buf[pe]! >= 0x30 && buf[pe]! <= 0x39 && pe - ps < 6) port = port * 10 + buf[pe++]! - 0x30
    if (pe === ps || port > 65535) throw new SipParseError('bad Via: port', 400)
    via.port = port
    i = pe
  }
  const elEnd = parseParams(buf, i, end, via.params)
  const after = skipLws(buf, elEnd, end)
  if (after < end && buf[after] !== COMMA) throw new SipParseError('bad Via: junk after element', 400)
  viaNext.value = after
  via.end = elEnd
  via.raw = unfold(buf, start, elEnd)
  const ps = via.params
  if (typeof ps['branch'] === 'string') via.branch = ps['branch']
  if (typeof ps['received'] === 'string') via.received = ps['received']
  if (typeof ps['maddr'] === 'string') via.maddr = ps['maddr']
  const rport = ps['rport']
  if (rport === true) via.rport = true
  else if (rport !== undefined) {
    const n = Number(rport)
    if (!/^\d{1,5}$/.test(rport) || n > 65535) throw new SipParseError('bad Via: rport', 400)
    via.rport = n
  }
  const ttl = ps['ttl']
  if (ttl !== undefined) {
    const n = Number(ttl)
    if (ttl === true || !/^\d{1,3}$/.test(ttl) || n > 255) throw new SipParseError('bad Via: ttl', 400)
    via.ttl = n
  }
  return via
}

/** Appends every Via element of one header line's value range. */
export function parseViaList(buf: Buffer, start: number, end: number, headerIndex: number, into: Via[], max: number): void {
  let p = start
  for (;;) {
    const via = parseViaAt(buf, p, end, headerIndex)
    if (into.length >= max) throw new SipParseError('too many Via elements', 483)
    into.push(via)
    const next = viaNext.value
    if (next >= end) return
    p = next + 1
  }
}
