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
const DOT = 46

/** 32-bit FNV-1a of the routing state of `msg`, with `callId` standing for its Call-ID (unmasked). */
export function loopHash(msg: SipMessage, callId: string): number {
  const buf = msg.buf
  let h = hashBytes(0x811c9dc5, buf, msg.startLinePartStart, msg.startLinePartEnd)
  h = hashString(h, callId)
  h = hashString(h, msg.fromTag ?? '')
  h = hashString(h, msg.toTag ?? '')
  h = Math.imul(h ^ msg.cseq.seq, 0x01000193)
  for (let i = 0; i < msg.headerCount; i++) {
    const id = msg.headerId(i)
    if (id === H.Route || id === H.ProxyRequire || id === H.ProxyAuthorization) {
      h = hashBytes(Math.imul(h ^ id, 0x01000193), buf, msg.headerValueStart(i), msg.headerValueEnd(i))
    }
  }
  return h >>> 0
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
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
  return Math.imul(h ^ 0xff, 0x01000193) // field separator: "ab"+"c" differs from "a"+"bc"
}

function hashString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ (s.charCodeAt(i) & 0xff), 0x01000193)
  return Math.imul(h ^ 0xff, 0x01000193)
}
