/** CSeq: 1*DIGIT LWS Method (RFC 3261 §20.16); the number must fit in 32 bits (< 2^31). */
import { SipParseError } from './errors.js'
import { TOKEN, isLws, skipLws, trimLwsEnd } from './bytes.js'
import { methodAt } from './methods.js'

export interface CSeq {
  seq: number
  method: string
}

export function parseCSeq(buf: Buffer, start: number, end: number): CSeq {
  let i = skipLws(buf, start, end)
  const ds = i
  let seq = 0
  while (i < end) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) break
    seq = seq * 10 + d
    if (seq > 0x7fffffff) throw new SipParseError('CSeq number too large', 400)
    i++
  }
  if (i === ds || i >= end || !isLws(buf[i]!)) throw new SipParseError('bad CSeq', 400)
  const ms = skipLws(buf, i, end)
  const me = trimLwsEnd(buf, ms, end)
  if (me === ms) throw new SipParseError('CSeq without method', 400)
  for (let k = ms; k < me; k++) if (TOKEN[buf[k]!] !== 1) throw new SipParseError('bad CSeq method', 400)
  return { seq, method: methodAt(buf, ms, me) }
}
