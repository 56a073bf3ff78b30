/** Generic `;name[=value]` parameter lists (Via, name-addr header params), over buffer offsets. */
import { SipParseError } from './errors.js'
import { TOKEN, SEMI, EQ, DQUOTE, BSLASH, LBRACK, RBRACK, skipLws, latin1, utf8 } from './bytes.js'

/** Index just past the closing quote of the quoted-string opening at `p`; throws when unterminated. */
export function skipQuoted(buf: Buffer, p: number, end: number): number {
  let i = p + 1
  while (i < end) {
    const c = buf[i]!
    if (c === BSLASH) i += 2
    else if (c === DQUOTE) return i + 1
    else i++
  }
  throw new SipParseError('unterminated quoted string', 400)
}

/** Decodes a quoted-string's content (without quotes), resolving quoted-pairs. */
export function decodeQuoted(buf: Buffer, start: number, end: number): string {
  const s = utf8(buf, start, end)
  return s.indexOf('\\') < 0 ? s : s.replace(/\\([\s\S])/g, '$1')
}

/**
 * Parses parameters starting at `p` (where a ';' may be). Returns the index just past the last
 * consumed non-LWS byte (== p when there is no parameter).
 */
export function parseParams(buf: Buffer, p: number, end: number, into: Record<string, string | true>): number {
  let last = p
  for (;;) {
    let i = skipLws(buf, last, end)
    if (i >= end || buf[i] !== SEMI) return last
    i = skipLws(buf, i + 1, end)
    const nameStart = i
    while (i < end && TOKEN[buf[i]!] === 1) i++
    if (i === nameStart) throw new SipParseError('empty parameter name', 400)
    const name = latin1(buf, nameStart, i).toLowerCase()
    last = i
    const j = skipLws(buf, i, end)
    if (j < end && buf[j] === EQ) {
      i = skipLws(buf, j + 1, end)
      const vs = i
      const c = i < end ? buf[i]! : 0
      if (c === DQUOTE) {
        i = skipQuoted(buf, i, end)
      } else if (c === LBRACK) {
        while (i < end && buf[i] !== RBRACK) i++
        if (i >= end) throw new SipParseError('unterminated IPv6 reference in parameter', 400)
        i++
      } else {
        while (i < end && (TOKEN[buf[i]!] === 1 || buf[i] === 0x3a || buf[i]! >= 0x80)) i++
      }
      if (i === vs) throw new SipParseError(`empty value for parameter ${name}`, 400)
      into[name] = utf8(buf, vs, i)
      last = i
    } else {
      into[name] = true
    }
  }
}

/**
 * Finds header parameter `lowerName` of the first element in [start, end) without building
 * objects: skips quoted strings and <...>, stops at the first top-level comma. Returns the value
 * start and stores its end in `paramEnd.value`; -1 when absent or valueless.
 */
export const paramEnd = { value: 0 }
// Bytes findParam must look at: '"', '<', ',', ';'. One table load per byte instead of four compares.
const STOP = new Uint8Array(256)
STOP[DQUOTE] = 1; STOP[0x3c] = 1; STOP[0x2c] = 1; STOP[SEMI] = 1
export function findParam(buf: Buffer, start: number, end: number, lowerName: string): number {
  let i = start
  const n = lowerName.length
  while (i < end) {
    while (i < end && STOP[buf[i]!] === 0) i++
    if (i >= end) return -1
    const c = buf[i]!
    if (c === DQUOTE) {
      i = skipQuoted(buf, i, end)
      continue
    }
    if (c === 0x3c) {
      while (i < end && buf[i] !== 0x3e) i++
      i++
      continue
    }
    if (c === 0x2c) return -1
    i = skipLws(buf, i + 1, end)
    const ns = i
    while (i < end && TOKEN[buf[i]!] === 1) i++
    if (i - ns !== n) continue
    let k = 0
    while (k < n) {
      let b = buf[ns + k]!
      if (b >= 0x41 && b <= 0x5a) b |= 0x20
      if (b !== lowerName.charCodeAt(k)) break
      k++
    }
    if (k !== n) continue
    i = skipLws(buf, i, end)
    if (i >= end || buf[i] !== EQ) return -1
    i = skipLws(buf, i + 1, end)
    const vs = i
    while (i < end && TOKEN[buf[i]!] === 1) i++
    if (i === vs) return -1
    paramEnd.value = i
    return vs
  }
  return -1
}

/**
 * Fast path for a parameter that ends the value (the usual place of From/To `;tag=`): scans
 * backwards over the token, then matches `;name=` exactly (no LWS). Returns the value start
 * (end in paramEnd.value) or -1 when the value does not end that way — callers then use findParam.
 */
export function findTrailingParam(buf: Buffer, start: number, end: number, lowerName: string): number {
  let i = end
  while (i > start && TOKEN[buf[i - 1]!] === 1) i--
  const n = lowerName.length
  if (i === end || i - start < n + 2 || buf[i - 1] !== EQ || buf[i - n - 2] !== SEMI) return -1
  const ns = i - n - 1
  for (let k = 0; k < n; k++) {
    let b = buf[ns + k]!
    if (b >= 0x41 && b <= 0x5a) b |= 0x20
    if (b !== lowerName.charCodeAt(k)) return -1
  }
  paramEnd.value = end
  return i
}
