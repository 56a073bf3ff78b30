import { H, newTag, type SipMessage } from '../sip/index.js'

/**
 * Loop detection by branch (RFC 3261 §16.3 step 4 and §16.6 step 8, RFC 5393 §4.2).
 *
 * Every branch the edge sends carries a hash of what decides how the request is routed: the Request-URI as
 * received, the Route set, From tag, To tag, Call-ID, CSeq number, Proxy-Require and Proxy-Authorization.
 * The method is left out (§16.6 step 8: CANCEL and ACK share their INVITE's branch), and so are the Vias and
 * Max-Forwards, which change on every pass. A request that comes back through the edge carrying one of its
 * Vias is a loop only when that Via's hash equals the hash of the request now received; with a new
 * Request-URI or a new route it is a spiral (a hairpinned DID through a carrier) and is forwarded.
 *
 * Branch layout: `z9hG4bK` + hash (base 36) + `.` + a unique token (failover attempts differ only there).
 */

const MAGIC = 'z9hG4bK'
const SCRATCH = Buffer.allocUnsafe(512)
const DOT = 46

/**
 * 32-bit hash of the routing state of `msg`, read from its bytes (no strings built: it runs for every
 * forwarded request). `plainCallId`: the unmasked Call-ID when the message carries a masked one, so that a
 * request looping through masking still matches; undefined to hash the Call-ID bytes as they are.
 */
export function loopHash(msg: SipMessage, plainCallId?: string): number {
  const buf = msg.buf
  let h = hashBytes(0x811c9dc5, buf, msg.startLinePartStart, msg.startLinePartEnd)
  if (plainCallId !== undefined) {
    // Rare (masked Call-IDs only): the same bytes as an unmasked message would give, through a scratch buffer.
    const b = plainCallId.length <= SCRATCH.length ? SCRATCH : Buffer.allocUnsafe(plainCallId.length)
    h = hashBytes(h, b, 0, b.write(plainCallId, 0, 'latin1'))
  } else {
    const c = msg.indexOf(H.CallId)
    if (c >= 0) h = hashBytes(h, buf, msg.headerValueStart(c), msg.headerValueEnd(c))
  }
  h = hashTag(h, msg, msg.indexOf(H.From))
  h = hashTag(h, msg, msg.indexOf(H.To))
  h = Math.imul(h ^ msg.cseq.seq, 0x01000193)
  for (let i = 0; i < msg.headerCount; i++) {
    const id = msg.headerId(i)
    if (id === H.Route || id === H.ProxyRequire || id === H.ProxyAuthorization) {
      h = hashBytes(Math.imul(h ^ id, 0x01000193), buf, msg.headerValueStart(i), msg.headerValueEnd(i))
    }
  }
  return h >>> 0
}

/**
 * The bytes of the `tag` parameter of a From/To line: `;tag=` after the URI (after '>' when there is one).
 * Not a full parse: the same bytes give the same hash on every pass, which is all loop detection needs.
 */
function hashTag(h: number, msg: SipMessage, line: number): number {
  if (line < 0) return h
  const buf = msg.buf
  const end = msg.headerValueEnd(line)
  let i = msg.headerValueStart(line)
  for (let k = end - 1; k > i; k--) {
    if (buf[k] === 62 /* > */) {
      i = k
      break
    }
  }
  for (; i + 4 < end; i++) {
    if (buf[i] !== 59 /* ; */) continue
    let p = i + 1
    while (p < end && (buf[p] === 32 || buf[p] === 9)) p++
    if ((buf[p]! | 0x20) !== 116 || (buf[p + 1]! | 0x20) !== 97 || (buf[p + 2]! | 0x20) !== 103) continue
    p += 3
    while (p < end && (buf[p] === 32 || buf[p] === 9)) p++
    if (buf[p] !== 61 /* = */) continue
    p++
    while (p < end && (buf[p] === 32 || buf[p] === 9)) p++
    let e = p
    while (e < end && buf[e] !== 59 && buf[e] !== 32 && buf[e] !== 9 && buf[e] !== 44) e++
    return hashBytes(h, buf, p, e)
  }
  return Math.imul(h ^ 0xff, 0x01000193)
}

/** A new branch carrying `hash`. */
export function loopBranch(hash: number): string {
  return MAGIC + hash.toString(36) + '.' + newTag()
}

/** True when `branch` is one of ours made for a request with this hash (`hash36` = hash.toString(36)). */
export function branchCarries(branch: string, hash36: string): boolean {
  return (
    branch.length > MAGIC.length + hash36.length + 1 &&
    branch.startsWith(MAGIC) &&
    branch.startsWith(hash36, MAGIC.length) &&
    branch.charCodeAt(MAGIC.length + hash36.length) === DOT
  )
}

function hashBytes(h: number, buf: Buffer, start: number, end: number): number {
  // Four bytes per step (a multiply-rotate mix, as in MurmurHash3's body), then the tail byte by byte.
  let i = start
  for (; i + 4 <= end; i += 4) {
    let k = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)
    k = Math.imul(k, 0xcc9e2d51)
    h ^= Math.imul((k << 15) | (k >>> 17), 0x1b873593)
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0
  }
  for (; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
  return Math.imul(h ^ 0xff, 0x01000193) // field separator: "ab"+"c" differs from "a"+"bc"
}

