/** Byte classes and decoding helpers shared by the grammar parsers. All work on absolute offsets. */

export const SP = 0x20, HT = 0x09, CR = 0x0d, LF = 0x0a, COLON = 0x3a, SEMI = 0x3b, COMMA = 0x2c,
  EQ = 0x3d, DQUOTE = 0x22, BSLASH = 0x5c, LT = 0x3c, GT = 0x3e, SLASH = 0x2f, LBRACK = 0x5b, RBRACK = 0x5d

/** RFC 3261 token characters: alphanum and - . ! % * _ + ` ' ~ */
export const TOKEN = new Uint8Array(256)
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1
for (const ch of "-.!%*_+`'~") TOKEN[ch.charCodeAt(0)] = 1

/** Linear white space, including the CR/LF of a folded line (accessors treat folds as LWS). */
export function isLws(c: number): boolean {
  return c === SP || c === HT || c === CR || c === LF
}

export function skipLws(buf: Buffer, p: number, end: number): number {
  while (p < end && isLws(buf[p]!)) p++
  return p
}

export function trimLwsEnd(buf: Buffer, start: number, end: number): number {
  while (end > start && isLws(buf[end - 1]!)) end--
  return end
}

// Buffer's internal slice methods skip the argument checks of toString(); they exist on every Node
// Buffer but are not in the typings.
interface FastSlices {
  latin1Slice(start: number, end: number): string
  utf8Slice(start: number, end: number): string
  utf8Write(text: string, offset: number): number
}

/** Writes text at offset (caller sized the buffer); returns the byte count. */
export function writeUtf8(buf: Buffer, text: string, offset: number): number {
  return (buf as unknown as FastSlices).utf8Write(text, offset)
}

/** For tokens and URIs (ASCII by grammar). */
export function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as FastSlices).latin1Slice(start, end)
}

/** For free text (display names, reason phrases, header values) that may carry UTF-8. */
export function utf8(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as FastSlices).utf8Slice(start, end)
}

/** True when the range holds a CR or LF (a folded header value). */
export function hasLineBreak(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!
    if (c === CR || c === LF) return true
  }
  return false
}

/** Decodes a range, replacing each fold (CRLF + WS run, or any LWS run containing a line break) by one SP. */
export function unfold(buf: Buffer, start: number, end: number): string {
  if (!hasLineBreak(buf, start, end)) return utf8(buf, start, end)
  let out = ''
  let segStart = start
  let i = start
  while (i < end) {
    const c = buf[i]!
    if (c === CR || c === LF) {
      let ws = i
      while (ws > segStart && (buf[ws - 1] === SP || buf[ws - 1] === HT)) ws--
      out += utf8(buf, segStart, ws) + ' '
      while (i < end && isLws(buf[i]!)) i++
      segStart = i
    } else i++
  }
  return out + utf8(buf, segStart, end)
}

/** Parses an unsigned decimal in [start, end); -1 when empty, not all digits, or above `max`. */
export function parseUint(buf: Buffer, start: number, end: number, max: number): number {
  if (end <= start || end - start > 15) return -1
  let n = 0
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n > max ? -1 : n
}

/** Compares buf[start, start+lower.length) with an ASCII lower-case string, case-insensitively. */
export function matchLower(buf: Buffer, start: number, end: number, lower: string): boolean {
  const n = lower.length
  if (end - start !== n) return false
  for (let i = 0; i < n; i++) {
    const c = buf[start + i]!
    const l = c >= 0x41 && c <= 0x5a ? c | 0x20 : c
    if (l !== lower.charCodeAt(i)) return false
  }
  return true
}
