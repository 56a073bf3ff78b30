/**
 * TCP stream framing (RFC 3261 §18.3): a message is its header section plus exactly
 * Content-Length body octets, and Content-Length is mandatory on streams.
 */
import { SipParseError } from './errors.js'
import { CR, LF, COLON, SP, HT, parseUint } from './bytes.js'

/** First index in [start, end) that is not CR or LF (RFC 5626 keep-alives are CRLF pairs). */
export function skipKeepAlives(buf: Buffer, start: number, end: number): number {
  let p = start
  while (p < end && (buf[p] === CR || buf[p] === LF)) p++
  return p
}

/** True when buf[s, e) names Content-Length (long or compact 'l'), case-insensitively. */
function isContentLengthName(buf: Buffer, s: number, e: number): boolean {
  if (e - s === 1) return (buf[s]! | 0x20) === 0x6c
  if (e - s !== 14) return false
  const want = 'content-length'
  for (let i = 0; i < 14; i++) if ((buf[s + i]! | 0x20) !== want.charCodeAt(i)) return false
  return true
}

/**
 * Index just past the message starting at `start`, or -1 when more bytes are needed. Throws
 * SipParseError 413 when the message would exceed maxMessageSize, 400 on a missing, duplicate,
 * negative or malformed Content-Length.
 */
export function frameStream(buf: Buffer, start: number, end: number, maxMessageSize: number): number {
  const scanEnd = Math.min(end, start + maxMessageSize)
  let lineStart = start
  let contentLength = -1
  let p = start
  while (p < scanEnd) {
    if (buf[p] !== LF) { p++; continue }
    // line [lineStart, p]; an empty line ends the header section
    const contentEnd = p > lineStart && buf[p - 1] === CR ? p - 1 : p
    if (contentEnd === lineStart) {
      if (lineStart === start) { lineStart = p + 1; p++; continue } // stray CRLF before the start line
      if (contentLength < 0) throw new SipParseError('stream message without Content-Length', 400)
      const total = p + 1 + contentLength
      if (total - start > maxMessageSize) throw new SipParseError('message too large', 413)
      return total <= end ? total : -1
    }
    const c0 = buf[lineStart]
    if (c0 !== SP && c0 !== HT) {
      let n = lineStart
      while (n < contentEnd && buf[n] !== COLON && buf[n] !== SP && buf[n] !== HT) n++
      if (isContentLengthName(buf, lineStart, n)) {
        while (n < contentEnd && buf[n] !== COLON) n++
        let vs = n + 1
        while (vs < contentEnd && (buf[vs] === SP || buf[vs] === HT)) vs++
        let ve = contentEnd
        while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--
        const v = parseUint(buf, vs, ve, maxMessageSize)
        if (v < 0) {
          const neg = vs < ve && buf[vs] === 0x2d
          throw new SipParseError(neg ? 'negative Content-Length' : 'bad or oversized Content-Length', neg ? 400 : (allDigits(buf, vs, ve) ? 413 : 400))
        }
        if (contentLength >= 0 && contentLength !== v) throw new SipParseError('conflicting Content-Length headers', 400)
        contentLength = v
      }
    }
    lineStart = p + 1
    p++
  }
  if (end - start >= maxMessageSize) throw new SipParseError('header section larger than the maximum message size', 413)
  return -1
}

function allDigits(buf: Buffer, s: number, e: number): boolean {
  if (e <= s) return false
  for (let i = s; i < e; i++) if (buf[i]! < 0x30 || buf[i]! > 0x39) return false
  return true
}
