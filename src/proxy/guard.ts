import type { BlockList } from 'node:net'
import { inList } from './addressing.js'

/**
 * Per-source request rate limit (Kamailio `pike` style): a token bucket per source IP, refilled at `rps`
 * and holding at most `burst`. Bounded memory: idle buckets are swept, and when the table is full a new
 * source is treated as over its limit rather than growing the table (a spoofed-source flood can't exhaust memory).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private lastSweep = 0

  constructor(
    private readonly rps: number,
    private readonly burst: number,
    private readonly maxSources = 100_000,
  ) {}

  get size(): number {
    return this.buckets.size
  }

  /** True when a request from `address` at time `now` (ms) is within its limit. */
  allow(address: string, now: number): boolean {
    let b = this.buckets.get(address)
    if (!b) {
      if (now - this.lastSweep > 10_000 || this.buckets.size >= this.maxSources) this.sweep(now)
      if (this.buckets.size >= this.maxSources) return false
      b = { tokens: this.burst, last: now }
      this.buckets.set(address, b)
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) * this.rps) / 1000)
      b.last = now
    }
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** Drops buckets that have refilled completely (their sources are idle). */
  private sweep(now: number): void {
    this.lastSweep = now
    const full = (this.burst * 1000) / this.rps
    for (const [k, b] of this.buckets) if (now - b.last > full) this.buckets.delete(k)
  }
}

interface Bucket {
  tokens: number
  last: number
}

/** Source filter for one side: a source must match `allow` (when it has entries) and must not match `deny`. */
export class SourceFilter {
  constructor(
    private readonly allowList: BlockList | undefined,
    private readonly denyList: BlockList | undefined,
  ) {}

  get active(): boolean {
    return this.allowList !== undefined || this.denyList !== undefined
  }

  permits(address: string): boolean {
    if (this.denyList && inList(this.denyList, address)) return false
    return !this.allowList || inList(this.allowList, address)
  }
}
