import { hashString, mix32, type Backend } from './backend.js'
import type { Algorithm, SelectContext } from './types.js'

/** Per-set selection state. `members` is sorted by priority (lowest value first), stable. */
export interface SetState {
  readonly name: string
  algorithm: Algorithm
  members: Backend[]
  /** Round-robin cursor (also the tie-breaker of least-calls). */
  rr: number
}

/**
 * Picks one backend among members[from, to) (one priority group) that is eligible and not excluded.
 * Every function here is allocation-free: it runs once per new dialog.
 */
export function pick(s: SetState, from: number, to: number, ctx: SelectContext,
  exclude: ReadonlySet<Backend> | undefined): Backend | undefined {
  switch (s.algorithm) {
    case 'weighted': return pickWeighted(s, from, to, exclude)
    case 'hash-callid': return pickHash(s, from, to, ctx.callId, exclude)
    case 'hash-from-user':
      // Anonymous callers have no user part: hashing '' would send all of them to one backend.
      return pickHash(s, from, to, ctx.fromUser !== '' ? ctx.fromUser : ctx.callId, exclude)
    case 'least-calls': return pickLeastCalls(s, from, to, exclude)
    default: return pickRoundRobin(s, from, to, exclude)
  }
}

export function usable(b: Backend, exclude: ReadonlySet<Backend> | undefined): boolean {
  return b.eligible && (exclude === undefined || !exclude.has(b))
}

function pickRoundRobin(s: SetState, from: number, to: number, exclude: ReadonlySet<Backend> | undefined) {
  const n = to - from
  const start = s.rr % n
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n
    const b = s.members[from + i]!
    if (usable(b, exclude)) {
      s.rr = (i + 1) % n
      return b
    }
  }
  return undefined
}

/**
 * nginx smooth weighted round-robin: each pick adds every weight to its running value, takes the
 * largest and subtracts the total from it. Deterministic, and spreads (5:1:1 gives a a b a c a a,
 * not a a a a a b c). A weight of 0 is only used when every candidate has weight 0.
 */
function pickWeighted(s: SetState, from: number, to: number, exclude: ReadonlySet<Backend> | undefined) {
  let total = 0
  let best: Backend | undefined
  for (let i = from; i < to; i++) {
    const b = s.members[i]!
    if (b.weight <= 0 || !usable(b, exclude)) continue
    b.swrrCurrent += b.weight
    total += b.weight
    if (best === undefined || b.swrrCurrent > best.swrrCurrent) best = b
  }
  if (best === undefined) return pickRoundRobin(s, from, to, exclude)
  best.swrrCurrent -= total
  return best
}

/**
 * Weighted rendezvous (HRW) hashing: every candidate scores hash(key, backend) and the best wins.
 * The same key keeps its backend while that backend is usable; when it is excluded or down, its keys
 * move to their second-best choice, which is spread evenly over the others (a plain modulo hash
 * would dump the whole load on one neighbour, Kamailio #2361).
 */
export function pickHash(s: SetState, from: number, to: number, key: string, exclude: ReadonlySet<Backend> | undefined) {
  const h = hashString(key)
  // One pass to learn the weights: all equal (the usual case) needs no logarithm; all zero means equal.
  let firstWeight = -1
  let uniform = true
  for (let i = from; i < to; i++) {
    const b = s.members[i]!
    if (b.weight <= 0 || !usable(b, exclude)) continue
    if (firstWeight < 0) firstWeight = b.weight
    else if (b.weight !== firstWeight) { uniform = false; break }
  }
  const anyWeight = firstWeight > 0
  let best: Backend | undefined
  let bestScore = -Infinity
  for (let i = from; i < to; i++) {
    const b = s.members[i]!
    if (!usable(b, exclude)) continue
    const w = anyWeight ? b.weight : 1
    if (w <= 0) continue
    // u in (0,1); -w/ln(u) is the weighted-HRW score (larger is better), monotonic in u for equal weights.
    const u = (mix32(h ^ b.hashSeed) + 0.5) / 4294967296
    const score = uniform ? u : -w / Math.log(u)
    if (score > bestScore) { bestScore = score; best = b }
  }
  return best
}

/** Fewest active calls; among equals, the first from the round-robin cursor, which then moves on. */
function pickLeastCalls(s: SetState, from: number, to: number, exclude: ReadonlySet<Backend> | undefined) {
  const n = to - from
  const start = s.rr % n
  let best: Backend | undefined
  let bestI = 0
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n
    const b = s.members[from + i]!
    if (!usable(b, exclude)) continue
    if (best === undefined || b.activeCalls + b.otherWorkersCalls < best.activeCalls + best.otherWorkersCalls) { best = b; bestI = i }
  }
  if (best !== undefined) s.rr = (bestI + 1) % n
  return best
}
