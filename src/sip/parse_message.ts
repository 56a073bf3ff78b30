/**
 * parseMessage: start line + header index over the original bytes (RFC 3261 §7). One pass over the
 * header section; the body is never scanned. UDP rules: the body is Content-Length octets (extra
 * octets are ignored), or the rest of the datagram when Content-Length is absent.
 */
import { SipParseError } from './errors.js'
import { H, classifyHeaderName } from './headers.js'
import { TOKEN, SP, HT, CR, LF, COLON, parseUint } from './bytes.js'
import { methodAt } from './methods.js'
import { SipMessage, STRIDE, ID_BITS, FIRST_TRACKED } from './message.js'

export const MAX_HEADERS = 256
/** Content-Length above this is rejected outright (no SIP message is that large). */
const MAX_CONTENT_LENGTH = 0x7fffffff

// Header offsets are collected here, then copied once into the message's own array. A packed
// small-integer Array is used on purpose: slicing it is ~15x cheaper than creating an Int32Array.
// Layout: STRIDE fields per header line, then FIRST_TRACKED slots "first line of id" (see message.ts).
const scratch: number[] = new Array<number>(MAX_HEADERS * STRIDE + FIRST_TRACKED).fill(0)
const firstScratch: number[] = new Array<number>(FIRST_TRACKED).fill(-1)

/** Checks "SIP/2.0" at [s, e): 1 ok, 0 other SIP version (505), -1 not a SIP-Version at all. */
function checkVersion(buf: Buffer, s: number, e: number): number {
  if (e - s < 5 || (buf[s]! | 0x20) !== 0x73 || (buf[s + 1]! | 0x20) !== 0x69 || (buf[s + 2]! | 0x20) !== 0x70 || buf[s + 3] !== 0x2f) return -1
  if (e - s === 7 && buf[s + 4] === 0x32 && buf[s + 5] === 0x2e && buf[s + 6] === 0x30) return 1
  // SIP/x.y with digits: a version we do not speak
  let dot = false
  for (let i = s + 4; i < e; i++) {
    const c = buf[i]!
    if (c === 0x2e && !dot) dot = true
    else if (c < 0x30 || c > 0x39) return -1
  }
  return dot ? 0 : -1
}

export function parseMessage(buf: Buffer, offset = 0, length?: number): SipMessage {
  const limit = length === undefined ? buf.length : Math.min(buf.length, offset + length)
  let p = offset
  // RFC 3261 §7.5: ignore CRLFs before the start line
  while (p < limit && (buf[p] === CR || buf[p] === LF)) p++
  const msgStart = p
  if (p >= limit) throw new SipParseError('empty message', 400)

  // ---- start line
  // Buffer#indexOf (memchr) beats a JS byte loop for line ends, even per short line.
  const lf = buf.indexOf(LF, p)
  if (lf < 0 || lf >= limit) throw new SipParseError('incomplete start line', 400)
  const lineEnd = lf > p && buf[lf - 1] === CR ? lf - 1 : lf
  let isRequest: boolean
  let method = ''
  let status = 0
  let partStart: number, partEnd: number
  let versionOk: boolean
  const isResponse = lineEnd - p >= 4 && buf[p] === 0x53 && buf[p + 1] === 0x49 && buf[p + 2] === 0x50 && buf[p + 3] === 0x2f
  if (isResponse) {
    isRequest = false
    let i = p
    while (i < lineEnd && buf[i] !== SP) i++
    const v = checkVersion(buf, p, i)
    if (v < 0) throw new SipParseError('bad SIP-Version in status line', 400)
    versionOk = v === 1
    if (i + 4 > lineEnd) throw new SipParseError('bad status line', 400)
    const cs = i + 1
    status = parseUint(buf, cs, cs + 3, 699)
    if (status < 100) throw new SipParseError('bad status code', 400)
    i = cs + 3
    if (i < lineEnd && buf[i] !== SP) throw new SipParseError('bad status code', 400)
    partStart = i < lineEnd ? i + 1 : i
    partEnd = lineEnd
    for (let k = partStart; k < partEnd; k++) {
      const c = buf[k]!
      if ((c < 0x20 && c !== HT) || c === 0x7f) throw new SipParseError('control character in reason phrase', 400)
    }
  } else {
    isRequest = true
    let i = p
    while (i < lineEnd && TOKEN[buf[i]!] === 1) i++
    if (i === p || i >= lineEnd || buf[i] !== SP) throw new SipParseError('bad Request-Line method', 400)
    method = methodAt(buf, p, i)
    partStart = i + 1
    let lastSp = lineEnd - 1
    while (lastSp > partStart && buf[lastSp] !== SP) lastSp--
    if (lastSp <= partStart) throw new SipParseError('Request-Line without SIP-Version', 400)
    partEnd = lastSp
    for (let k = partStart; k < partEnd; k++) {
      const c = buf[k]!
      if (c <= 0x20 || c === 0x7f) throw new SipParseError('whitespace or control character in Request-URI', 400)
    }
    if (buf[partStart] === 0x3c) throw new SipParseError('Request-URI enclosed in <>', 400)
    const v = checkVersion(buf, lastSp + 1, lineEnd)
    if (v < 0) throw new SipParseError('bad SIP-Version in Request-Line', 400)
    versionOk = v === 1
  }

  // ---- headers
  const headersStart = lf + 1
  p = headersStart
  let n = 0
  let clCount = 0
  let clStart = 0, clEnd = 0
  // first line of each tracked header id, so hot accessors need no search
  for (let id = 0; id < FIRST_TRACKED; id++) firstScratch[id] = -1
  let headersEnd: number, bodyStart: number
  for (;;) {
    if (p >= limit) throw new SipParseError('header section not terminated by an empty line', 400)
    let c = buf[p]!
    if (c === CR) {
      if (p + 1 < limit && buf[p + 1] === LF) { headersEnd = p; bodyStart = p + 2; break }
      throw new SipParseError('bare CR in header section', 400)
    }
    if (c === LF) { headersEnd = p; bodyStart = p + 1; break }
    // The name is a token run (this validates it too), then optional WS and the colon.
    const nameStart = p
    while (p < limit && TOKEN[buf[p]!] === 1) p++
    const nameEnd = p
    while (p < limit && ((c = buf[p]!) === SP || c === HT)) p++
    if (p >= limit || buf[p] !== COLON) {
      throw new SipParseError(p >= limit || c === CR || c === LF ? 'header line without colon' : 'bad header name', 400)
    }
    if (nameEnd === nameStart) throw new SipParseError('bad header name', 400)
    if (nameEnd - nameStart > 0xffff) throw new SipParseError('header name too long', 400)
    const id = classifyHeaderName(buf, nameStart, nameEnd)
    p++
    // leading LWS, including a fold right after the colon
    for (;;) {
      while (p < limit && (buf[p] === SP || buf[p] === HT)) p++
      let q = p
      if (q < limit && buf[q] === CR) q++
      if (q < limit && buf[q] === LF && q + 1 < limit && (buf[q + 1] === SP || buf[q + 1] === HT)) p = q + 1
      else break
    }
    const valueStart = p
    // to the end of the line, continuing over folds
    for (;;) {
      p = buf.indexOf(LF, p)
      if (p < 0 || p >= limit) throw new SipParseError('header section not terminated by an empty line', 400)
      p++
      if (p < limit && (buf[p] === SP || buf[p] === HT)) continue
      break
    }
    let valueEnd = p
    while (valueEnd > valueStart && ((c = buf[valueEnd - 1]!) === CR || c === LF || c === SP || c === HT)) valueEnd--
    if (n >= MAX_HEADERS) throw new SipParseError('too many headers', 513)
    const o = n * STRIDE
    scratch[o] = id + (nameEnd - nameStart) * ID_BITS
    scratch[o + 1] = nameStart
    scratch[o + 2] = valueStart
    scratch[o + 3] = valueEnd
    n++
    if (id < FIRST_TRACKED && firstScratch[id] === -1) firstScratch[id] = n - 1
    if (id === H.ContentLength) {
      clCount++
      clStart = valueStart
      clEnd = valueEnd
    }
  }

  // ---- body
  let end = limit
  let contentLength = -1
  if (clCount > 0) {
    if (clCount > 1) throw new SipParseError('more than one Content-Length', 400)
    contentLength = parseUint(buf, clStart, clEnd, MAX_CONTENT_LENGTH)
    if (contentLength < 0) throw new SipParseError('bad Content-Length', 400)
    if (bodyStart + contentLength > limit) throw new SipParseError('Content-Length larger than the message', 400)
    end = bodyStart + contentLength
  }
  const total = n * STRIDE
  for (let id = 0; id < FIRST_TRACKED; id++) scratch[total + id] = firstScratch[id]!
  return new SipMessage(buf, msgStart, end, isRequest, method, status, partStart, partEnd, versionOk,
    headersStart, headersEnd, bodyStart, contentLength, scratch.slice(0, total + FIRST_TRACKED), n)
}
