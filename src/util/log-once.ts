/**
 * LogOnce: a flood from one source (scanner, broken peer) logs once per window, not per message. A utility
 * below every layer that logs (the proxy uses it; src/edge/logger.ts re-exports it).
 */
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'

interface OnceEntry {
  until: number
  suppressed: number
}

/**
 * Logs one line per key per window. Keys are bounded by an LRU so that a spoofed-source flood costs
 * at most `max` entries. When a key logs again after its window, the line carries how many were
 * suppressed in between.
 */
export class LogOnce {
  private readonly seen: LRUCache<string, OnceEntry>
  constructor(
    private readonly log: Logger,
    max = 10000,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.seen = new LRUCache<string, OnceEntry>({ max })
  }

  /** True when the line was written, false when suppressed. */
  warn(key: string, obj: object, msg: string): boolean {
    return this.emit('warn', key, obj, msg)
  }

  error(key: string, obj: object, msg: string): boolean {
    return this.emit('error', key, obj, msg)
  }

  /** Keys currently remembered (bounded by `max`). */
  get size(): number {
    return this.seen.size
  }

  private emit(level: 'warn' | 'error', key: string, obj: object, msg: string): boolean {
    const t = this.now()
    const entry = this.seen.get(key)
    if (entry && t < entry.until) {
      entry.suppressed++
      return false
    }
    const suppressed = entry?.suppressed ?? 0
    this.seen.set(key, { until: t + this.ttlMs, suppressed: 0 })
    this.log[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg)
    return true
  }
}
