/**
 * Hot-path counters: plain numbers in one Float64Array, updated with an index computation and an
 * add, no allocation, no labels, no maps. metrics.ts reads the slots when Prometheus scrapes.
 */
import type { Backend } from '../dispatch/backend.js'
import type { ProxyObserver } from '../proxy/proxy.js'
import type { Side } from '../transport/types.js'

export const SIDE_PUBLIC = 0
export const SIDE_INTERNAL = 1
export type SideIndex = typeof SIDE_PUBLIC | typeof SIDE_INTERNAL
export const SIDES: readonly Side[] = ['public', 'internal']

/** Messages received by the edge vs sent by it. */
export const DIR_IN = 0
export const DIR_OUT = 1
export type DirIndex = typeof DIR_IN | typeof DIR_OUT
export const DIRECTIONS = ['in', 'out'] as const

export const METHODS = [
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'SUBSCRIBE', 'NOTIFY',
  'PUBLISH', 'INFO', 'PRACK', 'UPDATE', 'MESSAGE', 'REFER', 'OTHER',
] as const
const METHOD_OTHER = METHODS.length - 1

/** Index of a method name in METHODS (OTHER for extensions). String compares only: no allocation. */
export function methodIndex(method: string): number {
  switch (method) {
    case 'INVITE': return 0
    case 'ACK': return 1
    case 'BYE': return 2
    case 'CANCEL': return 3
    case 'OPTIONS': return 4
    case 'REGISTER': return 5
    case 'SUBSCRIBE': return 6
    case 'NOTIFY': return 7
    case 'PUBLISH': return 8
    case 'INFO': return 9
    case 'PRACK': return 10
    case 'UPDATE': return 11
    case 'MESSAGE': return 12
    case 'REFER': return 13
    default: return METHOD_OTHER
  }
}

export function sideIndex(side: Side): SideIndex {
  return side === 'public' ? SIDE_PUBLIC : SIDE_INTERNAL
}

/** Upper bounds (ms) of the call setup time histogram (INVITE in -> 200 out). */
export const SETUP_BUCKETS_MS: readonly number[] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]

const N_METHODS = METHODS.length
const N_CLASSES = 6 // 1xx..6xx

// Slot layout: fixed offsets into one array.
const REQ = 0 // [side][dir][method]
const RSP = REQ + 2 * 2 * N_METHODS // [side][dir][class]
const PARSE_ERR = RSP + 2 * 2 * N_CLASSES // [side]
const RATE_LIMITED = PARSE_ERR + 2 // [side]
const DENIED = RATE_LIMITED + 2 // [side]
const SEND_ERR = DENIED + 2 // [side]
const LOCAL_REPLY = SEND_ERR + 2 // [class]
const RELAY_REFUSED = LOCAL_REPLY + N_CLASSES
const FAILOVERS = RELAY_REFUSED + 1
const CALLS_STARTED = FAILOVERS + 1
const CALLS_ANSWERED = CALLS_STARTED + 1
const CALLS_FAILED = CALLS_ANSWERED + 1
const CALLS_ENDED = CALLS_FAILED + 1
const RETRANS = CALLS_ENDED + 1
const PROBE_OK = RETRANS + 1
const PROBE_FAIL = PROBE_OK + 1
const HEP_SENT = PROBE_FAIL + 1
const HEP_DROPPED = HEP_SENT + 1
const SETUP_BUCKETS = HEP_DROPPED + 1 // [bucket] non-cumulative, last = above the largest bound
const SETUP_SUM = SETUP_BUCKETS + SETUP_BUCKETS_MS.length + 1
const SETUP_COUNT = SETUP_SUM + 1
const N_SLOTS = SETUP_COUNT + 1

function statusClass(status: number): number {
  const c = (status / 100) | 0
  return c >= 1 && c <= 6 ? c - 1 : -1
}

export class EdgeStats {
  /** Exposed for metrics.ts and tests; the proxy uses the methods. */
  readonly slots = new Float64Array(N_SLOTS)

  /** A request received (DIR_IN) or forwarded/generated (DIR_OUT) on a side. */
  request(side: SideIndex, dir: DirIndex, method: string): void {
    this.slots[REQ + (side * 2 + dir) * N_METHODS + methodIndex(method)]!++
  }

  requestIdx(side: SideIndex, dir: DirIndex, methodIdx: number): void {
    this.slots[REQ + (side * 2 + dir) * N_METHODS + methodIdx]!++
  }

  response(side: SideIndex, dir: DirIndex, status: number): void {
    const c = statusClass(status)
    if (c >= 0) this.slots[RSP + (side * 2 + dir) * N_CLASSES + c]!++
  }

  parseError(side: SideIndex): void {
    this.slots[PARSE_ERR + side]!++
  }

  rateLimited(side: SideIndex): void {
    this.slots[RATE_LIMITED + side]!++
  }

  /** Refused by an allow/deny CIDR list. */
  denied(side: SideIndex): void {
    this.slots[DENIED + side]!++
  }

  sendError(side: SideIndex): void {
    this.slots[SEND_ERR + side]!++
  }

  /** A response the edge generated itself (400, 403, 408, 483, 503 ...). */
  localReply(status: number): void {
    const c = statusClass(status)
    if (c >= 0) this.slots[LOCAL_REPLY + c]!++
  }

  /** A call toward the outside refused because its source is not trusted. */
  relayRefused(): void {
    this.slots[RELAY_REFUSED]!++
  }

  failover(): void {
    this.slots[FAILOVERS]!++
  }

  callStarted(): void {
    this.slots[CALLS_STARTED]!++
  }

  callAnswered(): void {
    this.slots[CALLS_ANSWERED]!++
  }

  callFailed(): void {
    this.slots[CALLS_FAILED]!++
  }

  callEnded(): void {
    this.slots[CALLS_ENDED]!++
  }

  /** A retransmission the edge answered or dropped itself instead of forwarding. */
  retransmission(): void {
    this.slots[RETRANS]!++
  }

  probe(ok: boolean): void {
    this.slots[ok ? PROBE_OK : PROBE_FAIL]!++
  }

  hep(sent: boolean): void {
    this.slots[sent ? HEP_SENT : HEP_DROPPED]!++
  }

  /** Time from the INVITE arriving to the 2xx going out, in ms. */
  setupTime(ms: number): void {
    if (!(ms >= 0)) return
    let i = 0
    while (i < SETUP_BUCKETS_MS.length && ms > SETUP_BUCKETS_MS[i]!) i++
    const s = this.slots
    s[SETUP_BUCKETS + i]!++
    s[SETUP_SUM]! += ms
    s[SETUP_COUNT]!++
  }

  // --- readers (scrape time) ---

  requests(side: SideIndex, dir: DirIndex, methodIdx: number): number {
    return this.slots[REQ + (side * 2 + dir) * N_METHODS + methodIdx]!
  }

  responses(side: SideIndex, dir: DirIndex, classIdx: number): number {
    return this.slots[RSP + (side * 2 + dir) * N_CLASSES + classIdx]!
  }

  get counters() {
    const s = this.slots
    return {
      parseErrors: [s[PARSE_ERR]!, s[PARSE_ERR + 1]!],
      rateLimited: [s[RATE_LIMITED]!, s[RATE_LIMITED + 1]!],
      denied: [s[DENIED]!, s[DENIED + 1]!],
      sendErrors: [s[SEND_ERR]!, s[SEND_ERR + 1]!],
      localReplies: Array.from(s.subarray(LOCAL_REPLY, LOCAL_REPLY + N_CLASSES)),
      relayRefused: s[RELAY_REFUSED]!,
      failovers: s[FAILOVERS]!,
      callsStarted: s[CALLS_STARTED]!,
      callsAnswered: s[CALLS_ANSWERED]!,
      callsFailed: s[CALLS_FAILED]!,
      callsEnded: s[CALLS_ENDED]!,
      retransmissions: s[RETRANS]!,
      probesOk: s[PROBE_OK]!,
      probesFailed: s[PROBE_FAIL]!,
      hepSent: s[HEP_SENT]!,
      hepDropped: s[HEP_DROPPED]!,
    }
  }

  /** Setup-time histogram: cumulative counts per bound of SETUP_BUCKETS_MS then +Inf, sum (ms), count. */
  setupHistogram(): { cumulative: number[]; sumMs: number; count: number } {
    const cumulative: number[] = []
    let acc = 0
    for (let i = 0; i <= SETUP_BUCKETS_MS.length; i++) {
      acc += this.slots[SETUP_BUCKETS + i]!
      cumulative.push(acc)
    }
    return { cumulative, sumMs: this.slots[SETUP_SUM]!, count: this.slots[SETUP_COUNT]! }
  }

  /** Setup time percentile estimated from the buckets (upper bound of the bucket holding it), ms. */
  setupPercentileMs(p: number): number {
    const { cumulative, count } = this.setupHistogram()
    if (count === 0) return 0
    const rank = Math.ceil((p / 100) * count)
    for (let i = 0; i < SETUP_BUCKETS_MS.length; i++) if (cumulative[i]! >= rank) return SETUP_BUCKETS_MS[i]!
    return Infinity
  }

  reset(): void {
    this.slots.fill(0)
  }
}

/** The proxy's observer calls mapped onto the counters (`answered` also counts calls per backend for the demo). */
export function statsObserver(s: EdgeStats, answered: (b: Backend) => void): ProxyObserver {
  return {
    request: (side, method) => s.request(sideIndex(side), DIR_IN, method),
    requestSent: (side, method) => s.request(sideIndex(side), DIR_OUT, method),
    response: (side, status) => s.response(sideIndex(side), DIR_IN, status),
    responseSent: (side, status) => s.response(sideIndex(side), DIR_OUT, status),
    localReply: (status) => s.localReply(status),
    parseError: (side) => s.parseError(sideIndex(side)),
    refused: (reason, side) => {
      if (reason === 'relay' || reason === 'token') s.relayRefused()
      else if (reason === 'acl') s.denied(sideIndex(side))
      else if (reason === 'rate') s.rateLimited(sideIndex(side))
    },
    failover: () => s.failover(),
    callOffered: () => s.callStarted(),
    callStarted: (b, ms) => {
      if (b) answered(b)
      s.callAnswered()
      s.setupTime(ms)
    },
    callFailed: () => s.callFailed(),
    callEnded: () => s.callEnded(),
    retransmission: () => s.retransmission(),
  }
}
