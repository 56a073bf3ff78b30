/**
 * Keys remembered for at least `spanMs` (at most twice that), in two generations swapped as time passes:
 * O(1) per operation, no timer per entry. Keys are 53-bit hashes of strings, so an entry costs a Set slot
 * and a boxed number (~40 bytes), not the string: the proxy keeps one per answered INVITE for the rest of
 * 64*T1, when a full transaction (~1 KB) would be too much at thousands of calls per second.
 */
export class RecentSet {
  private current = new Set<number>()
  private previous = new Set<number>()
  private since = 0

  constructor(private readonly spanMs: number) {}

  get size(): number {
    return this.current.size + this.previous.size
  }

  add(key: string, now: number): void {
    this.roll(now)
    this.current.add(hash53(key))
  }

  has(key: string, now: number): boolean {
    this.roll(now)
    if (this.current.size === 0 && this.previous.size === 0) return false
    const h = hash53(key)
    return this.current.has(h) || this.previous.has(h)
  }

  clear(): void {
    this.current.clear()
    this.previous.clear()
  }

  private roll(now: number): void {
    const age = now - this.since
    if (age < this.spanMs) return
    // Every entry of `previous` is now at least spanMs old; so is every one of `current` after 2*spanMs.
    const old = this.previous
    old.clear()
    if (age >= 2 * this.spanMs) this.current.clear()
    else {
      this.previous = this.current
      this.current = old
    }
    this.since = now
  }
}

/** Two 32-bit FNV-1a variants folded into 53 bits: collisions among a few hundred thousand keys ~1e-10. */
function hash53(s: string): number {
  let a = 0x811c9dc5
  let b = 0x01000193
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff)
}
