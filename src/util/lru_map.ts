/**
 * A bounded map for the per-call tables (dialogs, the defence's counters): the least recently used entry is
 * evicted first, and with `ttlMs` an entry not read for that long expires. A `Map` keeps insertion order, and
 * a read re-inserts its key, so the first key is always the least recently used one and, the idle timeout
 * being the same for all, the first to expire: eviction and purging only ever look at the front.
 *
 * Why not lru-cache (still used for the ban table and log-once): it preallocates its arrays with `max` slots
 * and refills every one of them when its last entry is deleted. An edge with a 100,000-dialog table and a
 * handful of calls up empties it many times a second: that refill was ~18 % of the edge's CPU at 500 calls/s.
 */
export type LruEnd = 'evict' | 'expire' | 'delete' | 'set' | 'clear'

export interface LruMapOptions<K, V> {
  max: number
  /** Idle expiry: an entry not read (get) or written for this long is gone. None when absent. */
  ttlMs?: number
  /** Called once for every entry that leaves (also when `set` replaces it), with why. */
  dispose?: (value: V, key: K, why: LruEnd) => void
  now?: () => number
}

interface Entry<V> {
  value: V
  /** ms timestamp after which the entry is expired (Infinity without ttlMs). */
  expires: number
}

export class LruMap<K, V> {
  private readonly map = new Map<K, Entry<V>>()
  private readonly max: number
  private readonly ttlMs: number
  private readonly now: () => number
  private readonly dispose: ((value: V, key: K, why: LruEnd) => void) | undefined

  constructor(o: LruMapOptions<K, V>) {
    if (!(o.max >= 1)) throw new RangeError('LruMap max must be at least 1')
    this.max = o.max
    this.ttlMs = o.ttlMs ?? Infinity
    this.now = o.now ?? Date.now
    this.dispose = o.dispose
  }

  /** Entries held, expired ones not yet purged included (as lru-cache counts them). */
  get size(): number {
    return this.map.size
  }

  /** The value, made the most recently used (and its idle timeout restarted); undefined when absent or expired. */
  get(key: K): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    if (this.ttlMs !== Infinity) {
      const now = this.now()
      if (e.expires <= now) {
        this.remove(key, e, 'expire')
        return undefined
      }
      e.expires = now + this.ttlMs
    }
    this.map.delete(key) // re-inserted last: now the most recently used
    this.map.set(key, e)
    return e.value
  }

  /** Present and not expired; does not count as a use. */
  has(key: K): boolean {
    const e = this.map.get(key)
    return e !== undefined && (this.ttlMs === Infinity || e.expires > this.now())
  }

  set(key: K, value: V): this {
    const old = this.map.get(key)
    if (old !== undefined) {
      this.map.delete(key)
      if (this.dispose !== undefined && old.value !== value) this.dispose(old.value, key, old.expires <= this.now() ? 'expire' : 'set')
    }
    this.map.set(key, { value, expires: this.ttlMs === Infinity ? Infinity : this.now() + this.ttlMs })
    if (this.map.size > this.max) {
      const first = this.map.keys().next().value as K
      this.remove(first, this.map.get(first)!, 'evict')
    }
    return this
  }

  delete(key: K): boolean {
    const e = this.map.get(key)
    if (e === undefined) return false
    this.remove(key, e, 'delete')
    return true
  }

  /** Drops the expired entries now (reads expire them lazily otherwise). */
  purgeStale(): void {
    if (this.ttlMs === Infinity) return
    const now = this.now()
    for (const [key, e] of this.map) {
      if (e.expires > now) return // the rest were used later
      this.remove(key, e, 'expire')
    }
  }

  clear(): void {
    const entries = [...this.map]
    this.map.clear()
    if (this.dispose !== undefined) for (const [key, e] of entries) this.dispose(e.value, key, 'clear')
  }

  /** Values, least recently used first. */
  *values(): IterableIterator<V> {
    for (const e of this.map.values()) yield e.value
  }

  private remove(key: K, e: Entry<V>, why: LruEnd): void {
    this.map.delete(key)
    this.dispose?.(e.value, key, why)
  }
}
