// Client transactions (RFC 3261 §17.1, §16.7-16.8): one per branch sent downstream. Retransmissions
// (timers A/E), timeouts (failover timer, B, C, F), the response state machine (provisionals, 2xx, non-2xx
// with its ACK), CANCEL sent and held until a branch rings, abandoned branches, and the dialog entry when
// a call is answered. What a failed branch leads to (next backend, best response) is failover.ts's.
import { buildAck, buildCancel, parseMessage, type SipMessage } from '../sip/index.js'
import type { Inbound, Listener, Peer, Side } from '../transport/types.js'
import type { ProxyCore } from './core.js'
import type { Dialog } from './dialogs.js'
import type { Failover } from './failover.js'
import type { MediaStep } from './media_step.js'
import type { ProxyOptions } from './options.js'
import type { Relay } from './relay.js'
import { ClientTx, FR_TIMER, T1, T2, TIMER_B, TIMER_C, WAIT, enumState, type ServerTx } from './transactions.js'
import type { Backend } from '../dispatch/backend.js'

export class ClientTransactions {
  /** Set by Proxy once every step exists. */
  relay!: Relay
  failover!: Failover
  /** The media step, when the proxy anchors media (set by Proxy). */
  media: MediaStep | undefined
  private readonly clients = new Map<string, ClientTx>()
  private readonly fireClient = (tx: ClientTx, now: number): void => this.onTimer(tx, now)
  private inviteTimeoutMs = 2000
  private timerCMs = TIMER_C

  constructor(
    private readonly core: ProxyCore,
    opts: ProxyOptions,
  ) {
    this.reconfigure(opts)
  }

  /** SIGHUP: new timer values apply to branches started from now on. */
  reconfigure(o: Pick<ProxyOptions, 'failover'>): void {
    this.inviteTimeoutMs = o.failover?.inviteTimeoutMs ?? 2000
    this.timerCMs = o.failover?.timerCMs ?? TIMER_C
  }

  get size(): number {
    return this.clients.size
  }

  /** Every branch (for the send-error sweep). */
  values(): IterableIterator<ClientTx> {
    return this.clients.values()
  }

  /** A branch whose request is built and about to be sent: registered, timers armed. */
  start(
    st: ServerTx,
    branch: string,
    method: string,
    backend: Backend | undefined,
    dest: Peer,
    via: Listener,
    out: Buffer,
    udpFallback: ClientTx['udpFallback'],
  ): ClientTx {
    const ct = new ClientTx(branch, method, st, backend, dest, via, this.fireClient)
    ct.out = out
    ct.udpFallback = udpFallback
    st.client = ct
    this.clients.set(branch, ct)
    const now = Date.now()
    if (!ct.reliable) {
      ct.retransMs = T1
      ct.retransAt = now + T1
    }
    ct.failsOver = backend !== undefined || (st.hops !== undefined && st.hopIndex + 1 < st.hops.length)
    ct.timeoutAt = now + (method === 'INVITE' ? (ct.failsOver ? this.inviteTimeoutMs : TIMER_B) : FR_TIMER)
    this.arm(ct, now)
    return ct
  }

  // ---------------------------------------------------------------- responses

  /** A response received: matched to its branch by the top Via, and taken through the branch's state machine. */
  onResponse(inb: Inbound, side: Side): void {
    const core = this.core
    const msg = inb.msg
    const status = msg.status
    core.observer.response(side, status)
    const via = msg.via
    if (!core.sides.isOwn(via.host, via.port)) return // not ours: RFC 3261 §16.7 step 1 says drop
    const method = msg.cseq.method
    if (method === 'CANCEL') return // the CANCEL's own answer ends at the edge
    const ct = via.branch ? this.clients.get(via.branch) : undefined
    if (!ct || ct.method !== method) {
      // A 2xx retransmission after the branch was forgotten: pass it on statelessly by the next Via (§16.7).
      if (!ct && status >= 200 && status < 300 && method === 'INVITE') this.relay.forwardStateless(inb, msg)
      return
    }
    const st = ct.server

    if (ct.state >= enumState.completed) {
      if (ct.state === enumState.completed && ct.isInvite && status >= 300 && ct.ackForNon2xx) {
        core.transports.send(ct.ackForNon2xx, ct.target, ct.listener) // response retransmitted: our ACK got lost
      } else if (ct.isInvite && status < 300 && status >= 200 && st) {
        // A 2xx retransmission (RFC 6026), or a 2xx on a branch already finished otherwise: pass it on, end to end.
        this.relay.relayResponse(st, ct, msg)
      }
      return
    }

    if (status < 200) return this.provisional(ct, st, msg)

    core.wheel.disarm(ct)
    ct.retransAt = 0
    if (status < 300) {
      if (ct.isInvite) {
        ct.state = enumState.accepted
        ct.out = undefined
        ct.udpFallback = undefined
        core.wheel.arm(ct, WAIT) // keep the branch for 2xx retransmissions, then forget it (they go by the Vias)
        if (st) {
          this.callEstablished(st, ct)
          // §16.7 step 10: the call is answered here; a branch still pending elsewhere is cancelled.
          if (st.client && st.client !== ct && st.client.state < enumState.completed) this.cancelBranch(st.client)
        }
      } else {
        this.complete(ct)
      }
      // §16.7 step 5: a 2xx is relayed at once, whichever branch it comes from, even after another final response.
      if (st) this.relay.relayResponse(st, ct, msg)
      return
    }

    // 3xx-6xx
    if (ct.isInvite && ct.out) {
      ct.ackForNon2xx = buildAck(parseMessage(ct.out), msg)
      core.transports.send(ct.ackForNon2xx, ct.target, ct.listener)
    }
    this.complete(ct)
    // An abandoned branch's final answer (the 487 to our CANCEL, most often) ends with our ACK.
    if (!st || st.lastStatus >= 200 || st.client !== ct) return
    if (this.failover.onFinalFailure(st, ct, msg)) return
    this.relay.relayResponse(st, ct, msg)
  }

  private provisional(ct: ClientTx, st: ServerTx | undefined, msg: SipMessage): void {
    const status = msg.status
    if (ct.abandoned) {
      // A branch given up on rings after all: the CANCEL held back for it goes now (§9.1); nothing goes upstream.
      ct.state = enumState.proceeding
      if (ct.cancelPending) this.sendCancel(ct)
      return
    }
    const now = Date.now()
    if (ct.state === enumState.trying) {
      ct.state = enumState.proceeding
      ct.retransAt = 0
      // After a provisional, the call is alive on this backend: no more failover, timer C bounds the wait.
      ct.timeoutAt = now + (ct.isInvite ? this.timerCMs : TIMER_B)
      this.arm(ct, now)
      if (ct.backend) this.core.dispatcher.reportSuccess(ct.backend)
    } else if (status > 100 && ct.isInvite && !ct.cancelSent) {
      // §16.7 step 2: every provisional above 100 restarts timer C (announcements and queues ring for minutes).
      ct.timeoutAt = now + this.timerCMs
      this.arm(ct, now)
    }
    if (ct.cancelPending) this.sendCancel(ct)
    if (status === 100 || !st || st.lastStatus >= 200) return
    this.relay.relayResponse(st, ct, msg)
  }

  private callEstablished(st: ServerTx, ct: ClientTx): void {
    if (st.method !== 'INVITE' || !st.request || st.request.toTag !== undefined) return
    const inbound = st.side === 'public'
    const dialog: Dialog = {
      callId: st.request.callId,
      internal: inbound ? ct.target : st.source,
      external: inbound ? st.source : ct.target,
      backend: ct.backend,
      createdAt: Date.now(),
      direction: inbound ? 'in' : 'out',
    }
    const media = this.media?.dialogInstance(st)
    if (media !== undefined) dialog.media = media
    if (this.core.dialogs.add(dialog)) {
      if (ct.backend) this.core.dispatcher.callStarted(ct.backend)
      this.core.observer.callStarted(ct.backend, dialog.createdAt - st.startedAt)
    }
  }

  // ---------------------------------------------------------------- CANCEL

  sendCancel(ct: ClientTx): void {
    if (!ct.out) return
    const core = this.core
    const invite = parseMessage(ct.out)
    core.observer.requestSent(ct.backend ? 'internal' : core.sides.sideOf(ct.listener, ct.target), 'CANCEL')
    core.transports.send(buildCancel(invite, ct.server?.cancelReasons), ct.target, ct.listener)
    ct.cancelPending = false
    ct.cancelSent = true
    // If the backend never answers the CANCEL with a 487, timer C / B ends the INVITE with a 487 upstream.
    ct.timeoutAt = Date.now() + 64 * T1
    this.arm(ct, Date.now())
  }

  /** §16.7 step 10: a 2xx on one branch ends the others: CANCEL now if it rang, else as soon as it does. */
  private cancelBranch(ct: ClientTx): void {
    if (ct.state === enumState.proceeding && !ct.cancelSent) this.sendCancel(ct)
    else if (ct.state === enumState.trying) ct.cancelPending = true
  }

  // ---------------------------------------------------------------- timers

  arm(ct: ClientTx, now: number): void {
    const due = ct.retransAt > 0 && ct.retransAt < ct.timeoutAt ? ct.retransAt : ct.timeoutAt
    this.core.wheel.arm(ct, Math.max(0, due - now))
  }

  private onTimer(ct: ClientTx, now: number): void {
    if (ct.state >= enumState.completed) {
      this.clients.delete(ct.branch)
      ct.state = enumState.terminated
      return
    }
    if (ct.retransAt > 0 && now >= ct.retransAt && now < ct.timeoutAt && ct.out) {
      // Timers A / E: retransmit over UDP, doubling (non-INVITE capped at T2).
      this.core.transports.send(ct.out, ct.target, ct.listener)
      ct.retransMs = ct.isInvite ? ct.retransMs * 2 : Math.min(ct.retransMs * 2, T2)
      ct.retransAt = now + ct.retransMs
      this.arm(ct, now)
      return
    }
    if (now >= ct.timeoutAt) {
      if (ct.abandoned) {
        // Timer B (or the CANCEL's own bound) on a branch nobody waits for any more.
        this.complete(ct)
        return
      }
      if (ct.isInvite && ct.state === enumState.proceeding && !ct.cancelSent) {
        // Timer C (§16.8): CANCEL the ringing branch and answer 408 upstream; the branch stays to ACK the
        // 487 that answers the CANCEL (§17.1.1.3) or to pass a 2xx that crossed it.
        this.sendCancel(ct)
        this.abandon(ct, now)
        this.failover.branchFailed(ct, 'timer C', 408, false)
        return
      }
      if (ct.isInvite && ct.state === enumState.trying && ct.failsOver) {
        // Failover timer: the backend (or name target) may still answer. No CANCEL before a provisional (§9.1): it waits for one.
        ct.cancelPending = true
        this.abandon(ct, now)
        this.failover.branchFailed(ct, 'timeout', 408, true)
        return
      }
      this.failed(ct, ct.state === enumState.trying ? 'timeout' : 'no final response', 408)
      return
    }
    this.arm(ct, now)
  }

  /** Detach a pending INVITE branch from its server transaction's wait; it lives on until timer B. */
  private abandon(ct: ClientTx, now: number): void {
    ct.abandoned = true
    ct.retransAt = 0
    if (!ct.cancelSent) ct.timeoutAt = now + TIMER_B
    this.arm(ct, now)
  }

  /** The branch produced no usable answer (timeout or transport error): fail over or answer upstream. */
  failed(ct: ClientTx, why: string, status: number): void {
    const wasTrying = ct.state === enumState.trying
    this.complete(ct)
    this.failover.branchFailed(ct, why, status, wasTrying)
  }

  complete(ct: ClientTx): void {
    this.core.wheel.disarm(ct)
    ct.state = enumState.completed
    ct.out = undefined
    ct.retransAt = 0
    // Timer D / K: keep absorbing response retransmissions for a while over UDP.
    this.core.wheel.arm(ct, ct.reliable ? 0 : WAIT)
  }

  clear(): void {
    for (const ct of this.clients.values()) this.core.wheel.disarm(ct)
    this.clients.clear()
  }
}
