/**
 * Sliding-window event counter (the "previous window weighted" approximation used by rate limiters):
 * a fixed window plus the count of the window before it, weighted by how much of it still overlaps the
 * last `windowMs`. Three numbers per counter, no timestamps list, so a flood costs no memory.
 */
export class SlidingCounter {
  private start = 0
  private cur = 0
  private prev = 0

  /** Counts one event at `now` (ms) and returns the estimated count over the last `windowMs`. */
  hit(now: number, windowMs: number): number {
    this.roll(now, windowMs)
    this.cur++
    return this.estimate(now, windowMs)
  }

  /** The estimated count over the last `windowMs` without counting. */
  value(now: number, windowMs: number): number {
    this.roll(now, windowMs)
    return this.estimate(now, windowMs)
  }

  reset(): void {
    this.start = 0
    this.cur = 0
    this.prev = 0
  }

  private roll(now: number, windowMs: number): void {
    const elapsed = now - this.start
    if (elapsed < windowMs && elapsed >= 0) return
    // A clock step backwards, or two windows passed: nothing of the old counts overlaps any more.
    if (elapsed < 0 || elapsed >= 2 * windowMs) {
      this.prev = 0
      this.start = now
    } else {
      this.prev = this.cur
      this.start += windowMs
    }
    this.cur = 0
  }

  private estimate(now: number, windowMs: number): number {
    const overlap = 1 - (now - this.start) / windowMs
    return this.cur + (overlap > 0 ? this.prev * overlap : 0)
  }
}
