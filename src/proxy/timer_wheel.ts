/**
 * A hashed timer wheel for transaction timers (RFC 3261 A/B/C/E/F/G/H/J/K and the failover timer).
 *
 * Why not one `setTimeout` per timer: a busy edge arms several timers per transaction and cancels most
 * of them; a wheel makes arming and cancelling O(1) with no per-timer allocation beyond the caller's own
 * object, and one interval timer drives them all. Resolution is `tickMs` (timers fire up to one tick late,
 * never early), which is fine for SIP timers measured in hundreds of milliseconds.
 */
export interface WheelTimer {
  /** Set by the wheel: slot index, or -1 when not armed. */
  wheelSlot: number
  /** Remaining full turns of the wheel before the timer is due. */
  wheelRounds: number
  wheelNext: WheelTimer | null
  wheelPrev: WheelTimer | null
  /** Called when the timer fires. The timer is disarmed before the call, so it may re-arm itself. */
  onTimer(now: number): void
}

export class TimerWheel {
  private readonly slots: Array<WheelTimer | null>
  private readonly mask: number
  private cursor = 0
  private handle: NodeJS.Timeout | undefined
  private lastTick: number
  private armed = 0
  /** The slot being processed, detached from `slots` while its callbacks run. */
  private inFlight: WheelTimer | null = null

  /** `slotCount` must be a power of two; horizon per turn is slotCount * tickMs. */
  constructor(
    private readonly tickMs = 10,
    slotCount = 1024,
  ) {
    if ((slotCount & (slotCount - 1)) !== 0) throw new Error('slotCount must be a power of two')
    this.slots = new Array<WheelTimer | null>(slotCount).fill(null)
    this.mask = slotCount - 1
    this.lastTick = Date.now()
  }

  get size(): number {
    return this.armed
  }

  start(): void {
    if (this.handle) return
    this.lastTick = Date.now()
    this.handle = setInterval(() => this.advance(Date.now()), this.tickMs)
    this.handle.unref()
  }

  stop(): void {
    if (this.handle) clearInterval(this.handle)
    this.handle = undefined
  }

  /** Arm (or re-arm) `t` to fire after `delayMs`. */
  arm(t: WheelTimer, delayMs: number): void {
    if (t.wheelSlot >= 0) this.disarm(t)
    // Ticks already elapsed but not yet processed are counted so a timer never fires early.
    const ticks = Math.max(1, Math.ceil(delayMs / this.tickMs))
    const slotCount = this.mask + 1
    const slot = (this.cursor + ticks) & this.mask
    t.wheelRounds = Math.floor((ticks - 1) / slotCount)
    this.insert(t, slot)
    this.armed++
  }

  disarm(t: WheelTimer): void {
    const slot = t.wheelSlot
    if (slot === -1) return
    if (t.wheelPrev) t.wheelPrev.wheelNext = t.wheelNext
    else if (slot === IN_FLIGHT) this.inFlight = t.wheelNext
    else this.slots[slot] = t.wheelNext
    if (t.wheelNext) t.wheelNext.wheelPrev = t.wheelPrev
    t.wheelSlot = -1
    t.wheelNext = t.wheelPrev = null
    this.armed--
  }

  /** Process every tick up to `now`. Public so tests can drive the wheel without real time. */
  advance(now: number): void {
    let due = Math.floor((now - this.lastTick) / this.tickMs)
    if (due <= 0) return
    this.lastTick += due * this.tickMs
    while (due-- > 0) {
      this.cursor = (this.cursor + 1) & this.mask
      // Detach the slot first: callbacks may arm timers into this same slot (a full turn later)
      // or disarm timers that are still waiting in the detached list.
      let t = this.slots[this.cursor] ?? null
      if (!t) continue
      this.slots[this.cursor] = null
      this.inFlight = t
      for (; t; t = t.wheelNext) t.wheelSlot = IN_FLIGHT
      while ((t = this.inFlight)) {
        this.inFlight = t.wheelNext
        if (this.inFlight) this.inFlight.wheelPrev = null
        t.wheelNext = t.wheelPrev = null
        if (t.wheelRounds > 0) {
          t.wheelRounds--
          this.insert(t, this.cursor)
          continue
        }
        t.wheelSlot = -1
        this.armed--
        try {
          t.onTimer(now)
        } catch {
          // A failing timer callback must not stop the wheel; callers log their own errors.
        }
      }
    }
  }

  private insert(t: WheelTimer, slot: number): void {
    t.wheelSlot = slot
    t.wheelPrev = null
    const head = this.slots[slot] ?? null
    t.wheelNext = head
    if (head) head.wheelPrev = t
    this.slots[slot] = t
  }
}

const IN_FLIGHT = -2

/** Base fields for objects that carry one wheel timer. */
export function timerFields(): Pick<WheelTimer, 'wheelSlot' | 'wheelRounds' | 'wheelNext' | 'wheelPrev'> {
  return { wheelSlot: -1, wheelRounds: 0, wheelNext: null, wheelPrev: null }
}
