/**
 * Toll-fraud and scanner defence for the public side (Kamailio pike + htable bans + UA filters, fail2ban on
 * Asterisk's security log): learns from what the backends answer to each public source, bans a source over
 * a threshold, and drops everything it sends while banned.
 *
 * Two entry points for the proxy:
 *  - `screen(msg, address)` on every request from the public side, before any other work: a Map lookup
 *    while bans exist, then the fingerprint rules (a few byte scans of User-Agent/From/To);
 *  - `observe(request, address, status)` for every response relayed back to a public source: counts
 *    challenges (401/407), failed retries (credentials answered 401/403/407 again) and not-found answers
 *    (404/484/604, and 403 without credentials: extension enumeration), per source and per target user;
 *    a response other than those to a request with credentials is a successful authentication and resets.
 */
import type { BlockList } from 'node:net'
import { pino, type Logger } from 'pino'
import { cidrList, inList } from '../proxy/addressing.js'
import { H, type SipMessage } from '../sip/index.js'
import { BAN_REASONS, BanTable, validAddress, type Ban, type BanReason } from './bans.js'
import { SlidingCounter } from './counters.js'
import { DEFAULT_SCANNER_AGENTS, DEFAULT_SCANNER_FROM, DEFENCE_DEFAULTS } from './defaults.js'
import { Fingerprints, type FingerprintHit } from './fingerprint.js'
import { LruMap } from '../util/lru_map.js'

export interface DefenceOptions {
  /** What a banned source gets: nothing (default; scanners learn nothing) or 403. */
  action?: 'drop' | 'reject'
  /** Ban duration. Default 600 s (fail2ban's default bantime). */
  banS?: number
  /** Window of every counter. Default 60 s. */
  windowS?: number
  /** Challenges (401/407) per source and window, without a successful authentication. 0 = off. Default 30. */
  challenges?: number
  /** Failed retries (credentials answered 401/403/407) per source and window. 0 = off. Default 5. */
  failures?: number
  /**
   * Failed retries against one user (from any source) per window; past it every further failure against
   * that user bans its source at once (distributed guessing). 0 = off. Default 10.
   */
  userFailures?: number
  /** Not-found answers (404/484/604, 403 without credentials) per source and window. 0 = off. Default 20. */
  notFound?: number
  /** Fingerprint matches per source and window before a ban (matches are always dropped). 0 = never ban. Default 1. */
  scanner?: number
  /** User-Agent substrings (case-insensitive); default DEFAULT_SCANNER_AGENTS, [] = none. */
  userAgents?: readonly string[]
  /** From / To substrings (case-insensitive); default DEFAULT_SCANNER_FROM and none. */
  fromPatterns?: readonly string[]
  toPatterns?: readonly string[]
  /** CIDRs never banned, counted or fingerprinted (trunks, monitoring). */
  allow?: readonly string[]
  /** Ban table size (LRU). Default 100,000. */
  maxBans?: number
  /** Sources and users with live counters (LRU each). Default 100,000. */
  maxTracked?: number
  log?: Logger
  /** Wall clock (ms); tests step it. */
  now?: () => number
}

/** `screen` results. */
export const PASS = 0
export const DROP = 1
export const REJECT = 2
export type Verdict = typeof PASS | typeof DROP | typeof REJECT

export { DEFENCE_DEFAULTS }

/** Counters for metrics (plain numbers; read at scrape time). */
export class DefenceStats {
  droppedBanned = 0
  droppedScanner = 0
  /** Requests of banned sources answered 403 (action reject). */
  rejected = 0
  challenges = 0
  authFailures = 0
  notFound = 0
  readonly bans: Record<BanReason, number> = Object.fromEntries(BAN_REASONS.map((r) => [r, 0])) as Record<BanReason, number>
}

interface SourceCounters {
  challenges: SlidingCounter
  failures: SlidingCounter
  notFound: SlidingCounter
  scanner: SlidingCounter
}

interface UserCounter {
  failures: SlidingCounter
  /** Until when the "user under attack" line is not repeated. */
  loggedUntil: number
}

export class Defence {
  readonly stats = new DefenceStats()
  /** Called for every ban decided here (not for shared ones): the etcd sharing publishes it. */
  onBan: ((ban: Ban) => void) | undefined
  /** Called when a ban is lifted here by the admin API: the etcd sharing deletes it everywhere. */
  onLift: ((address: string) => void) | undefined

  private readonly bans: BanTable
  private readonly sources: LruMap<string, SourceCounters>
  private readonly users: LruMap<string, UserCounter>
  private readonly fingerprints: Fingerprints | undefined
  private readonly allowList: BlockList | undefined
  private readonly banVerdict: Verdict
  private readonly banMs: number
  private readonly windowMs: number
  private readonly limits: { challenges: number; failures: number; userFailures: number; notFound: number; scanner: number }
  private readonly log: Logger
  private readonly now: () => number

  constructor(opts: DefenceOptions = {}) {
    const d = DEFENCE_DEFAULTS
    this.now = opts.now ?? Date.now
    this.log = opts.log ?? pino({ level: 'silent' })
    this.banVerdict = (opts.action ?? d.action) === 'reject' ? REJECT : DROP
    this.banMs = Math.max(1, (opts.banS ?? d.banS) * 1000)
    this.windowMs = Math.max(1, (opts.windowS ?? d.windowS) * 1000)
    this.limits = {
      challenges: opts.challenges ?? d.challenges,
      failures: opts.failures ?? d.failures,
      userFailures: opts.userFailures ?? d.userFailures,
      notFound: opts.notFound ?? d.notFound,
      scanner: opts.scanner ?? d.scanner,
    }
    this.bans = new BanTable(opts.maxBans ?? d.maxBans, this.now)
    const tracked = Math.max(1, opts.maxTracked ?? d.maxTracked)
    this.sources = new LruMap<string, SourceCounters>({ max: tracked })
    this.users = new LruMap<string, UserCounter>({ max: tracked })
    const rules = {
      userAgents: opts.userAgents ?? DEFAULT_SCANNER_AGENTS,
      from: opts.fromPatterns ?? DEFAULT_SCANNER_FROM,
      to: opts.toPatterns ?? [],
    }
    const fp = new Fingerprints(rules)
    this.fingerprints = rules.userAgents.length + rules.from.length + rules.to.length > 0 ? fp : undefined
    this.allowList = opts.allow && opts.allow.length > 0 ? cidrList(opts.allow) : undefined
  }

  // ------------------------------------------------------------------ hot path

  /** A request from the public side: PASS, or DROP / REJECT (answer 403) it without any further work. */
  screen(msg: SipMessage, address: string): Verdict {
    if (this.bans.size > 0 && this.bans.get(address) !== undefined) {
      if (this.banVerdict === DROP) this.stats.droppedBanned++
      else this.stats.rejected++
      return this.banVerdict
    }
    // Fingerprints on new requests only: in-dialog ones (ACK, BYE ...) belong to a call already admitted.
    if (this.fingerprints !== undefined && msg.method !== 'ACK' && msg.toTag === undefined) {
      const hit = this.fingerprints.check(msg)
      if (hit !== undefined) return this.scannerHit(address, hit)
    }
    return PASS
  }

  /** True when a ban is in force on `address` (parse errors from banned sources get no 400 either). */
  isBanned(address: string): boolean {
    return this.bans.size > 0 && this.bans.get(address) !== undefined
  }

  /** A response relayed to the public source `address` for its request `request`. Never throws. */
  observe(request: SipMessage, address: string, status: number): void {
    const challenge = status === 401 || status === 407
    const fail = challenge || status === 403
    if (!fail && status !== 404 && status !== 484 && status !== 604) {
      // Anything else to a request with credentials: authentication passed (100 is hop by hop, not an answer).
      // It clears the source, and the user it authenticated as: its owner got in, so the failures were its own.
      if (status <= 100 || (this.sources.size === 0 && this.users.size === 0) || !hasCredentials(request)) return
      this.sources.delete(address)
      if (this.users.size > 0) this.users.delete(targetUser(request))
      return
    }
    if (this.allowed(address)) return
    const now = this.now()
    const w = this.windowMs
    let c = this.sources.get(address)
    if (c === undefined) {
      c = { challenges: new SlidingCounter(), failures: new SlidingCounter(), notFound: new SlidingCounter(), scanner: new SlidingCounter() }
      this.sources.set(address, c)
    }
    const credentials = fail && hasCredentials(request)
    if (credentials) {
      this.stats.authFailures++
      const user = targetUser(request)
      if (user !== '' && this.limits.userFailures > 0) {
        let u = this.users.get(user)
        if (u === undefined) this.users.set(user, (u = { failures: new SlidingCounter(), loggedUntil: 0 }))
        if (u.failures.hit(now, w) >= this.limits.userFailures) {
          if (now >= u.loggedUntil) {
            u.loggedUntil = now + w
            this.log.warn({ user, failures: Math.round(u.failures.value(now, w)), windowS: w / 1000 }, 'user under password guessing: every further failure bans its source')
          }
          this.ban(address, 'user-attack', `user ${user}`)
          return
        }
      }
      const n = c.failures.hit(now, w)
      if (this.limits.failures > 0 && n >= this.limits.failures) this.ban(address, 'auth-failures', user ? `user ${user}` : undefined, n)
    } else if (challenge) {
      this.stats.challenges++
      const n = c.challenges.hit(now, w)
      if (this.limits.challenges > 0 && n >= this.limits.challenges) this.ban(address, 'challenges', undefined, n)
    } else {
      this.stats.notFound++
      const n = c.notFound.hit(now, w)
      if (this.limits.notFound > 0 && n >= this.limits.notFound) this.ban(address, 'not-found', undefined, n)
    }
  }

  private scannerHit(address: string, hit: FingerprintHit): Verdict {
    if (this.allowed(address)) return PASS
    this.stats.droppedScanner++
    if (this.limits.scanner <= 0) return DROP
    let c = this.sources.get(address)
    if (c === undefined) {
      c = { challenges: new SlidingCounter(), failures: new SlidingCounter(), notFound: new SlidingCounter(), scanner: new SlidingCounter() }
      this.sources.set(address, c)
    }
    const n = c.scanner.hit(this.now(), this.windowMs)
    if (n >= this.limits.scanner) this.ban(address, 'scanner', `${hit} rule`, n)
    return DROP
  }

  // ------------------------------------------------------------------ bans

  private allowed(address: string): boolean {
    return this.allowList !== undefined && inList(this.allowList, address)
  }

  /** Bans `address` for the configured time (one log line); a ban already in force is kept as it is. */
  private ban(address: string, reason: BanReason, detail?: string, count?: number): void {
    if (this.bans.get(address) !== undefined) return
    const now = this.now()
    const ban: Ban = { address, reason, since: now, until: now + this.banMs, origin: 'local', ...(detail ? { detail } : {}) }
    this.sources.delete(address)
    this.commit(ban, count)
  }

  private commit(ban: Ban, count?: number): void {
    this.bans.set(ban)
    this.stats.bans[ban.reason]++
    this.log.warn(
      { src: ban.address, reason: ban.reason, ...(ban.detail ? { detail: ban.detail } : {}), ...(count ? { count: Math.round(count) } : {}), banS: Math.round((ban.until - ban.since) / 1000) },
      'source banned',
    )
    try {
      this.onBan?.(ban)
    } catch (err) {
      this.log.error({ err }, 'ban listener threw')
    }
  }

  /**
   * Admin ban: `address` for `seconds` (default the configured time). Returns the ban, or why not
   * (bad address, allow-listed). Replaces a ban in force.
   */
  banAddress(address: string, seconds?: number, detail?: string): Ban | string {
    if (!validAddress(address)) return 'not an IP address'
    if (this.allowed(address)) return 'address is allow-listed'
    const ms = seconds === undefined ? this.banMs : Math.round(seconds * 1000)
    if (!(ms >= 1000)) return 'duration must be at least 1 s'
    const now = this.now()
    const ban: Ban = { address, reason: 'admin', since: now, until: now + ms, origin: 'local', ...(detail ? { detail } : {}) }
    this.sources.delete(address)
    this.commit(ban)
    return ban
  }

  /** Admin lift: true when a ban was in force. The etcd sharing deletes the key too (lifting it everywhere). */
  lift(address: string): boolean {
    const had = this.bans.delete(address)
    this.sources.delete(address)
    if (had) this.log.info({ src: address }, 'ban lifted')
    try {
      this.onLift?.(address)
    } catch (err) {
      this.log.error({ err }, 'lift listener threw')
    }
    return had
  }

  /** A ban decided by another edge (through etcd). Allow-listed or invalid addresses are ignored. */
  applyShared(address: string, until: number, reason: BanReason, detail?: string): boolean {
    if (!validAddress(address) || this.allowed(address)) return false
    const now = this.now()
    if (until <= now) return false
    const current = this.bans.get(address)
    if (current && current.until >= until) return false
    const ban: Ban = { address, reason, since: now, until, origin: 'shared', ...(detail ? { detail } : {}) }
    this.bans.set(ban)
    this.sources.delete(address)
    this.stats.bans.shared++
    this.log.info({ src: address, reason, ...(detail ? { detail } : {}), banS: Math.round((until - now) / 1000) }, 'source banned by another edge')
    return true
  }

  /** The shared key is gone (expired or lifted on another edge): lift here too. */
  liftShared(address: string): boolean {
    const had = this.bans.delete(address)
    if (had) this.log.info({ src: address }, 'shared ban lifted')
    return had
  }

  /** The ban in force on `address`, if any. */
  banOf(address: string): Ban | undefined {
    return this.bans.get(address)
  }

  /** Bans in force, most recently seen first. */
  list(): Ban[] {
    return this.bans.list()
  }

  get activeBans(): number {
    return this.bans.active()
  }

  /** Sources and users with live counters (bounded by maxTracked each). */
  get tracked(): { sources: number; users: number } {
    return { sources: this.sources.size, users: this.users.size }
  }
}

/** The request carried Authorization or Proxy-Authorization. */
export function hasCredentials(msg: SipMessage): boolean {
  return msg.has(H.Authorization) || msg.has(H.ProxyAuthorization)
}

/** Only the start of a credentials header is read: a huge or forged one costs no more than this. */
const MAX_AUTH_SCAN = 1024
const MAX_USER = 64
const USERNAME = /username\s*=\s*"([^"\r\n]{1,64})"/i

/**
 * The user a request targets: the digest username it tried, else the Request-URI user, else the To user
 * ('' when none can be read). Bounded and never throws, whatever the headers hold.
 */
export function targetUser(msg: SipMessage): string {
  try {
    for (const id of [H.Authorization, H.ProxyAuthorization]) {
      const i = msg.indexOf(id)
      if (i < 0) continue
      const s = msg.headerValueStart(i)
      const e = Math.min(msg.headerValueEnd(i), s + MAX_AUTH_SCAN)
      const m = USERNAME.exec(msg.buf.toString('latin1', s, e))
      if (m) return m[1]!
    }
  } catch {
    // fall through to the URIs
  }
  for (const read of [() => msg.uri.user, () => msg.to.uri.user]) {
    try {
      const u = read()
      if (u) return u.length > MAX_USER ? u.slice(0, MAX_USER) : u
    } catch {
      // unparsable: try the next one
    }
  }
  return ''
}
