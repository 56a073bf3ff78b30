/**
 * Scanner fingerprints: case-insensitive substring rules on User-Agent, From and To, matched on the
 * received bytes (no decoding, no regex, no allocation): one pass over the header value with a table of
 * the patterns' first bytes. Patterns are ASCII; only ASCII letters are case-folded.
 */
import { H, type SipMessage } from '../sip/index.js'

export { DEFAULT_SCANNER_AGENTS, DEFAULT_SCANNER_FROM } from './defaults.js'

/** Longest header value the rules look at: scanners put their marker up front; bounds the work per message. */
const MAX_SCAN = 256

/** ASCII lower-casing table (other bytes map to themselves). */
const LOWER = new Uint8Array(256)
for (let c = 0; c < 256; c++) LOWER[c] = c >= 65 && c <= 90 ? c | 0x20 : c

export class PatternSet {
  /** Patterns by their first (lower-case) byte: one table load per scanned byte, most bytes start none. */
  private readonly byFirst: Array<Uint8Array[] | undefined> = new Array<Uint8Array[] | undefined>(256).fill(undefined)
  private readonly count: number

  constructor(patterns: readonly string[]) {
    let n = 0
    for (const p of patterns) {
      const lower = p.toLowerCase()
      if (lower.length === 0 || lower.length > MAX_SCAN) continue
      const bytes = Uint8Array.from(Buffer.from(lower, 'latin1'))
      ;(this.byFirst[bytes[0]!] ??= []).push(bytes)
      n++
    }
    this.count = n
  }

  get empty(): boolean {
    return this.count === 0
  }

  /** True when a pattern occurs in buf[start, end) (case-insensitive for ASCII letters). */
  match(buf: Uint8Array, start: number, end: number): boolean {
    if (end - start > MAX_SCAN) end = start + MAX_SCAN
    const byFirst = this.byFirst
    for (let i = start; i < end; i++) {
      const list = byFirst[LOWER[buf[i]!]!]
      if (list === undefined) continue
      for (let k = 0; k < list.length; k++) {
        const p = list[k]!
        const n = p.length
        if (i + n > end) continue
        let j = 1
        while (j < n && LOWER[buf[i + j]!] === p[j]) j++
        if (j === n) return true
      }
    }
    return false
  }
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
  return i >= 0 && set.match(msg.buf, msg.headerValueStart(i), msg.headerValueEnd(i))
}
