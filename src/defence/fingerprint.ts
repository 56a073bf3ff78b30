/**
 * Scanner fingerprints: case-insensitive substring rules on User-Agent, From and To, matched on the
 * received bytes (no decoding, no regex). Patterns are ASCII; a header value is compared with `b | 0x20`
 * for letters only, so the scan is exact for ASCII and never matches inside multi-byte UTF-8.
 */
import { H, type SipMessage } from '../sip/index.js'

/**
 * User-Agents of common SIP scanners and brute-forcers: sipvicious 0.2/0.3 (`friendly-scanner` is its
 * default for svmap, svwar and svcrack), sipcli, SIPScan, sundayddr, iWar, SIVuS, VaxSIPUserAgent
 * (sold SDK abused by dialers), pplsip, smap, sip-scan, Gulp.
 */
export const DEFAULT_SCANNER_AGENTS: readonly string[] = [
  'friendly-scanner', 'sipvicious', 'sipcli', 'sip-scan', 'sipscan', 'sundayddr', 'iwar', 'sivus',
  'vaxsipuseragent', 'pplsip', 'smap', 'gulp/',
]

/** svmap names itself in the From display name ("sipvicious") even with a custom User-Agent. */
export const DEFAULT_SCANNER_FROM: readonly string[] = ['"sipvicious"']

/** Longest header value the rules look at: scanners put their marker up front; bounds the work per message. */
const MAX_SCAN = 256

export class PatternSet {
  private readonly patterns: Uint8Array[]

  constructor(patterns: readonly string[]) {
    this.patterns = []
    for (const p of patterns) {
      const lower = p.toLowerCase()
      if (lower.length === 0 || lower.length > MAX_SCAN) continue
      this.patterns.push(Uint8Array.from(Buffer.from(lower, 'latin1')))
    }
  }

  get empty(): boolean {
    return this.patterns.length === 0
  }

  /** Index of the first pattern found in buf[start, end), -1 when none. */
  match(buf: Uint8Array, start: number, end: number): number {
    if (end - start > MAX_SCAN) end = start + MAX_SCAN
    const ps = this.patterns
    for (let k = 0; k < ps.length; k++) if (contains(buf, start, end, ps[k]!)) return k
    return -1
  }
}

/** Case-insensitive (ASCII letters) search of the lower-case `needle` in buf[start, end). */
function contains(buf: Uint8Array, start: number, end: number, needle: Uint8Array): boolean {
  const n = needle.length
  const first = needle[0]!
  for (let i = start; i + n <= end; i++) {
    if (lower(buf[i]!) !== first) continue
    let j = 1
    while (j < n && lower(buf[i + j]!) === needle[j]) j++
    if (j === n) return true
  }
  return false
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c | 0x20 : c
}

export type FingerprintHit = 'user-agent' | 'from' | 'to'

/** The three rule sets; `check` costs one header lookup per non-empty set when nothing matches. */
export class Fingerprints {
  private readonly ua: PatternSet
  private readonly from: PatternSet
  private readonly to: PatternSet

  constructor(rules: { userAgents: readonly string[]; from: readonly string[]; to: readonly string[] }) {
    this.ua = new PatternSet(rules.userAgents)
    this.from = new PatternSet(rules.from)
    this.to = new PatternSet(rules.to)
  }

  check(msg: SipMessage): FingerprintHit | undefined {
    if (!this.ua.empty && inHeader(msg, H.UserAgent, this.ua)) return 'user-agent'
    if (!this.from.empty && inHeader(msg, H.From, this.from)) return 'from'
    if (!this.to.empty && inHeader(msg, H.To, this.to)) return 'to'
    return undefined
  }
}

function inHeader(msg: SipMessage, id: number, set: PatternSet): boolean {
  // First line only: a second User-Agent line is unusual and scanners send one.
  const i = msg.indexOf(id)
  return i >= 0 && set.match(msg.buf, msg.headerValueStart(i), msg.headerValueEnd(i)) >= 0
}
