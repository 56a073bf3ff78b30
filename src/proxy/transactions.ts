import type { Backend } from '../dispatch/backend.js'
import type { MessageEditor, SipMessage } from '../sip/index.js'
import { isConnectionProto } from '../transport/protos.js'
import type { Listener, Peer, Side } from '../transport/types.js'
import type { WheelTimer } from './timer_wheel.js'

/** RFC 3261 §17 timer values (ms). */
export const T1 = 500
export const T2 = 4000
export const T4 = 5000
export const TIMER_B = 64 * T1
/**
 * How long a finished transaction is kept to absorb retransmissions (timers D/J/K/L/M), as Kamailio's
 * `wt_timer` does, rather than RFC 3261's 64*T1: 32 s of finished transactions at thousands of calls per
 * second is memory spent on a case (a retransmission 5+ s late) that UDP loss almost never produces.
 */
export const WAIT = 5000
/**
 * How long a non-INVITE request may wait for its final response from the next hop before the edge answers
 * 408 upstream: timer F (64*T1), Kamailio's `fr_timer` default too. Shorter gives up while a flooded or
 * busy backend's answers are still being retransmitted for; the transaction is freed after it in any case.
 */
export const FR_TIMER = TIMER_B
/** Timer C: how long an INVITE may stay in proceeding without a new provisional (RFC: > 3 min), by default. */
export const TIMER_C = 181_000
/**
 * RFC 6026 timer L: how long a proxy's INVITE answered 2xx stays "accepted", absorbing retransmitted INVITEs
 * while the 2xx retransmissions pass. The edge keeps the full transaction for WAIT (the 2xx retransmissions
 * of the first seconds take the stateful path), then only the transaction key (server_tx.ts `answered`): a full
 * transaction held 32 s costs ~1 KB of heap per call, ~300 MB at 9,000 calls/s.
 */
export const TIMER_L = 64 * T1

export const enumState = {
  /** Client: request sent, nothing back. Server: request received, no final response yet. */
  trying: 0,
  /** Client: a provisional response arrived. */
  proceeding: 1,
  /** A final non-2xx response was sent/received; absorbing retransmissions (timers D/G/H/J/K). */
  completed: 2,
  /** INVITE answered with 2xx (RFC 6026 "Accepted"): absorb INVITE retransmissions, pass 2xx retransmissions. */
  accepted: 3,
  /** Gone from the tables. */
  terminated: 4,
} as const
export type TxState = (typeof enumState)[keyof typeof enumState]

/** The fields the timer wheel keeps on every transaction (one timer per transaction), and its state. */
abstract class OnWheel implements WheelTimer {
  wheelSlot = -1
  wheelRounds = 0
  wheelNext: WheelTimer | null = null
  wheelPrev: WheelTimer | null = null
  state: TxState = enumState.trying
  abstract onTimer(now: number): void
}

/**
 * The transaction with the upstream peer that sent us a request. Matched by the top Via branch, sent-by
 * and method (RFC 3261 §17.2.3), or by the RFC 2543 fallback key.
 */
export class ServerTx extends OnWheel {
  /** The request as received; released once a final response has been sent. */
  request: SipMessage | undefined
  lastResponse: Buffer | undefined
  lastStatus = 0
  /** The active downstream branch (the edge forks sequentially: one at a time, for failover). */
  client: ClientTx | undefined
  tries = 0
  /** Backends already tried for this request: excluded from the next selection. */
  tried: Set<Backend> | undefined
  /** Best final response seen so far among failed branches (RFC 3261 §16.7 step 6). */
  bestStatus = 0
  bestResponse: SipMessage | undefined
  cancelled = false
  /** Reason header values of the upstream CANCEL, copied into the CANCEL sent downstream (RFC 3326). */
  cancelReasons: string[] | undefined
  /** The request came in from the public side with a masked Call-ID, restored inside: re-mask its responses. */
  maskedCallId = false
  /** Original Vias removed when the request left toward the public side (restored on responses). */
  hiddenVias: string | undefined
  /** Edits an onRequest hook made, applied again to every failover attempt. */
  hookEdit: MessageEditor | undefined
  /** Backend set to dispatch to (for failover), when the request is a new call. */
  set: string | undefined
  /** Dispatch by this key whatever the set's algorithm (a REGISTER's address-of-record: path.ts). */
  affinity: string | undefined
  /** Retransmission interval of a final response over UDP (timer G), and the absolute give-up time. */
  retransMs = T1
  giveUpAt = 0
  /** Where responses go (RFC 3261 §18.2.2 / RFC 3581), fixed when the request arrives. */
  responseDest: Peer
  readonly startedAt: number

  constructor(
    readonly key: string,
    readonly method: string,
    request: SipMessage,
    readonly source: Peer,
    readonly listener: Listener,
    readonly connId: number | undefined,
    readonly side: Side,
    private readonly fire: (tx: ServerTx, now: number) => void,
  ) {
    super()
    this.request = request
    this.responseDest = source
    this.startedAt = Date.now()
  }

  get isInvite(): boolean {
    return this.method === 'INVITE'
  }

  get reliable(): boolean {
    return isConnectionProto(this.source.proto)
  }

  override onTimer(now: number): void {
    this.fire(this, now)
  }
}

/** The transaction with a downstream next hop (a backend, or a public peer for calls going out). */
export class ClientTx extends OnWheel {
  /** Bytes sent, kept for retransmission (timers A/E) and to build CANCEL/ACK; dropped when final. */
  out: Buffer | undefined
  /** Next retransmission time (0 = none) and interval; timeout time (failover/timer B/F/C). */
  retransAt = 0
  retransMs = T1
  timeoutAt = 0
  cancelPending = false
  cancelSent = false
  /**
   * The server transaction no longer waits on this branch (failed over, or answered 408 by timer C). It lives
   * on until timer B to CANCEL on the first provisional (RFC 3261 §9.1), ACK a non-2xx final response, and
   * pass a 2xx upstream at once (§16.7 step 5).
   */
  abandoned = false
  ackForNon2xx: Buffer | undefined
  /** A large request sent over TCP (RFC 3261 §18.1.1) keeps its UDP copy in case TCP is refused. */
  udpFallback: { out: Buffer; listener: Listener; target: Peer } | undefined

  constructor(
    readonly branch: string,
    readonly method: string,
    readonly server: ServerTx | undefined,
    readonly backend: Backend | undefined,
    /** Where the request went; changes once if a TCP attempt falls back to UDP. */
    public target: Peer,
    public listener: Listener,
    private readonly fire: (tx: ClientTx, now: number) => void,
  ) {
    super()
  }

  get isInvite(): boolean {
    return this.method === 'INVITE'
  }

  get reliable(): boolean {
    return isConnectionProto(this.target.proto)
  }

  override onTimer(now: number): void {
    this.fire(this, now)
  }
}

/**
 * Server transaction key per RFC 3261 §17.2.3: branch + sent-by + method, with ACK and CANCEL matched to the
 * INVITE they refer to by the caller. For RFC 2543 peers (no magic cookie) the key is built from the
 * fields §17.2.3 lists for the old matching rules.
 */
export function serverKey(msg: SipMessage, method: string): string {
  const via = msg.via
  const branch = via.branch
  const sentBy = via.port === undefined ? via.host : via.host + ':' + via.port
  if (branch !== undefined && branch.length > 7 && branch.startsWith('z9hG4bK')) {
    return branch + '|' + sentBy + '|' + method
  }
  return (
    '2543|' + msg.requestUri + '|' + msg.callId + '|' + (msg.from.tag ?? '') + '|' + msg.cseq.seq + '|' + sentBy + '|' + method
  )
}
