/** Method names: well-known ones are returned as shared constants so parsing allocates no string. */
import { latin1 } from './bytes.js'

const KNOWN = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY',
  'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE']
const KNOWN_BYTES = KNOWN.map((m) => Uint8Array.from(Buffer.from(m, 'latin1')))

/** The method in buf[start, end): case-sensitive (RFC 3261 §7.1). */
export function methodAt(buf: Buffer, start: number, end: number): string {
  const len = end - start
  const first = buf[start]
  for (let k = 0; k < KNOWN_BYTES.length; k++) {
    const b = KNOWN_BYTES[k]!
    if (b.length !== len || b[0] !== first) continue
    let i = 1
    while (i < len && buf[start + i] === b[i]) i++
    if (i === len) return KNOWN[k]!
  }
  return latin1(buf, start, end)
}
