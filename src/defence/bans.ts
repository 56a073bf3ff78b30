/**
 * The ban table: source address -> ban, bounded (LRU: under a flood of distinct sources the least recently
 * seen bans go first, memory never grows past `max`), each entry with its own TTL. Expired entries vanish
 * on lookup; nothing runs per entry in the background.
 */
import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'

export { DEFAULT_BAN_PREFIX } from './defaults.js'

export type BanReason = 'auth-failures' | 'challenges' | 'not-found' | 'scanner' | 'user-attack' | 'admin' | 'shared'
export const BAN_REASONS: readonly BanReason[] = ['auth-failures', 'challenges', 'not-found', 'scanner', 'user-attack', 'admin', 'shared']

export interface Ban {
  address: string
  reason: BanReason
  /** Wall clock (ms) of the ban and of its end. */
  since: number
  until: number
  /** 'local' = decided here (or by the admin API here); 'shared' = learnt from another edge through etcd. */
  origin: 'local' | 'shared'
  /** Free text for operators: the user attacked, the rule matched, the edge that decided. */
  detail?: string
}

export class BanTable {
  private readonly cache: LRUCache<string, Ban>

  constructor(max: number, private readonly now: () => number) {
    this.cache = new LRUCache<string, Ban>({
      max: Math.max(1, max),
      // A clock we choose (tests step it); ttlResolution 0 reads it on every check.
      perf: { now: () => this.now() },
      ttlResolution: 0,
      allowStale: false,
    })
  }

  get size(): number {
    return this.cache.size
  }

  /** The ban on `address`, if one is in force. One Map lookup (plus the LRU bookkeeping) on a hit. */
  get(address: string): Ban | undefined {
    return this.cache.get(address)
  }

  set(ban: Ban): void {
    this.cache.set(ban.address, ban, { ttl: Math.max(1, ban.until - this.now()) })
  }

  delete(address: string): boolean {
    return this.cache.delete(address)
  }

  /** Bans in force, most recently used first (admin API; purges the expired ones). */
  list(): Ban[] {
    this.cache.purgeStale()
    return [...this.cache.values()]
  }

  /** Active bans (purges the expired ones first: scrape time, not the hot path). */
  active(): number {
    this.cache.purgeStale()
    return this.cache.size
  }

  clear(): void {
    this.cache.clear()
  }
}

/** A plain IPv4/IPv6 literal, as the ban table and the etcd keys use it ('::ffff:1.2.3.4' stays as given). */
export function validAddress(address: string): boolean {
  return address.length <= 45 && isIP(address) !== 0
}
