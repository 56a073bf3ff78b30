// Server transactions (RFC 3261 §17.2, RFC 6026): one per request received, matched by serverKey. Absorbs and
// answers retransmitted requests, sends the 100 Trying and the edge's own final responses, moves on with
// every response sent upstream (timers G/H/I/J, accepted), pairs an incoming CANCEL with its INVITE.
import { H, buildResponse } from '../sip/index.js'
import type { Inbound, Peer, Side } from '../transport/types.js'
import { responseDestination } from './addressing.js'
import type { ClientTransactions } from './client_tx.js'
import type { ProxyCore } from './core.js'
import type { MediaStep } from './media_step.js'
import { RecentSet } from './recent_set.js'
import type { Topology } from './topology.js'
import { ServerTx, T1, T2, T4, TIMER_B, TIMER_L, WAIT, enumState, serverKey } from './transactions.js'

export class ServerTransactions {
  /** Set by Proxy once both tables exist (a final response ends the branch still pending). */
  clients!: ClientTransactions
  /** The media step, when the proxy anchors media (set by Proxy). */
  media: MediaStep | undefined
  private readonly servers = new Map<string, ServerTx>()
  /**
   * RFC 6026 timer L, past the 5 s hold of the full transaction: the keys of answered INVITEs, so that a copy
   * retransmitted late is absorbed rather than taken for a new call. Their 2xx retransmissions meanwhile
   * go by the Vias (received/rport filled in, topology hidden): see Relay.forwardStateless.
   */
  private readonly answered = new RecentSet(TIMER_L - WAIT)
  private readonly fireServer = (tx: ServerTx, now: number): void => this.onTimer(tx, now)

  constructor(
    private readonly core: ProxyCore,
    private readonly topology: Topology,
  ) {}

  get size(): number {
    return this.servers.size
  }

  /** Transactions still waiting for their final response (finished ones absorbing retransmissions do not count). */
  get pending(): number {
    let pending = 0
    for (const st of this.servers.values()) if (st.state < enumState.completed) pending++
    return pending
  }

  get(key: string): ServerTx | undefined {
    return this.servers.get(key)
  }

  /** An INVITE answered 2xx a while ago (RFC 6026 timer L): a late copy of it is a retransmission. */
  wasAnswered(key: string, now: number): boolean {
    return this.answered.has(key, now)
  }

  create(inb: Inbound, side: Side, key: string): ServerTx {
    const st = new ServerTx(key, inb.msg.method, inb.msg, inb.source, inb.listener, inb.connId, side, this.fireServer)
    st.responseDest = responseDestination(inb.msg.via, inb.source)
    this.servers.set(key, st)
    return st
  }

  /** Retransmitted request: answer from the last response, or absorb it (the client is still waiting). */
  retransmission(st: ServerTx, inb: Inbound): void {
    this.core.observer.retransmission()
    if (st.lastResponse && st.state !== enumState.accepted) {
      // Over TCP the copy may come on a new connection (the old one broke): answer on the one it came on.
      this.core.transports.send(st.lastResponse, st.responseDest, st.listener, inb.connId ?? st.connId)
    }
  }

  /**
   * CANCEL (RFC 3261 §9.2, §16.10): answered 200 here, paired with its INVITE's transaction, and sent on
   * the pending branch once it has rung (held until then, §9.1).
   */
  cancel(inb: Inbound): void {
    const msg = inb.msg
    const st = this.servers.get(serverKey(msg, 'INVITE'))
    if (!st) return this.core.replyTo(inb, 481, 'Call/Transaction Does Not Exist')
    this.core.replyTo(inb, 200, 'OK')
    if (st.lastStatus >= 200 || st.cancelled) return
    st.cancelled = true
    if (msg.has(H.Reason)) st.cancelReasons = msg.getHeaders(H.Reason)
    const ct = st.client
    if (!ct) return
    if (ct.state === enumState.proceeding) this.clients.sendCancel(ct)
    else ct.cancelPending = true
  }

  /** ACK for our non-2xx final response: hop by hop, it ends here (timer I absorbs stray copies). True when taken. */
  ack(inb: Inbound): boolean {
    const st = this.servers.get(serverKey(inb.msg, 'INVITE'))
    if (!st || st.state !== enumState.completed) return false
    st.state = enumState.terminated
    this.core.wheel.disarm(st)
    this.core.wheel.arm(st, st.reliable ? 0 : T4)
    return true
  }

  sendProvisional(st: ServerTx, status: number, reason: string): void {
    if (!st.request) return
    const out = buildResponse(st.request, status, reason)
    st.lastResponse = held(out)
    this.core.observer.localReply(status)
    this.core.observer.responseSent(st.side, status)
    this.core.transports.send(out, st.responseDest, st.listener, st.connId)
  }

  /** A final response the edge generates itself for a transaction it holds (e.g. 503 when no backend is left). */
  finalLocal(st: ServerTx, status: number, reason: string, headers?: Array<[string, string]>): void {
    if (!st.request || st.lastStatus >= 200) return
    const useBest = st.bestResponse && status === 503 && st.bestStatus >= 600
    if (useBest) {
      const ed = st.bestResponse!.edit()
      ed.removeTopVia()
      this.topology.restoreVias(st, ed)
      return this.sendUpstream(st, st.bestStatus, ed.toBuffer())
    }
    const opts: { toTag?: string; headers?: Array<[string, string]> } = {}
    if (st.request.toTag === undefined) opts.toTag = this.core.localTag
    if (headers) opts.headers = headers
    this.core.observer.localReply(status)
    this.sendUpstream(st, status, buildResponse(st.request, status, reason, opts))
  }

  /** Sends a response upstream and moves the server transaction on (RFC 3261 §17.2 and RFC 6026). */
  sendUpstream(st: ServerTx, status: number, out: Buffer): void {
    const core = this.core
    core.observer.responseSent(st.side, status)
    if (status >= 300 && st.isInvite && st.lastStatus < 200 && st.request?.toTag === undefined) core.observer.callFailed(status)
    core.transports.send(out, st.responseDest, st.listener, st.connId)
    // CANCEL (487), failover exhausted (503), any failure relayed: the call will not exist.
    if (status >= 300 && this.media && st.isInvite) this.media.failed(st)
    if (status < 200) {
      st.lastResponse = held(out)
      st.lastStatus = status
      return
    }
    // Accepted already (or forgotten): further 2xx (retransmissions, another branch's answer) only pass through.
    if (st.state >= enumState.accepted) return
    if (st.lastStatus >= 200 && !(status < 300 && st.isInvite)) return
    st.lastStatus = status
    // Answered: nothing will be forwarded again. What the held transaction still refers to lives on for its
    // 5 s hold and gets promoted by the young-generation GC (the pause behind the latency tail): the route
    // state keeps the request's parsed Route entries, and through them the received datagram.
    st.request = undefined
    st.hookEdit = undefined
    st.bestResponse = undefined
    st.tried = undefined
    st.route = undefined
    st.hops = undefined
    st.cancelReasons = undefined
    core.wheel.disarm(st)
    if (st.isInvite && status < 300) {
      // Accepted (RFC 6026): absorb retransmitted INVITEs, let the end-to-end 2xx retransmissions through;
      // after WAIT, only the key stays, in `answered`, for the rest of timer L.
      st.state = enumState.accepted
      st.lastResponse = undefined
      core.wheel.arm(st, WAIT)
    } else {
      // Kept to answer the request's retransmissions (timers G/J).
      st.state = enumState.completed
      st.lastResponse = held(out)
      if (st.isInvite) {
        st.retransMs = T1
        st.giveUpAt = Date.now() + TIMER_B
        core.wheel.arm(st, st.reliable ? TIMER_B : T1) // timer G until the ACK, H as the bound
      } else {
        core.wheel.arm(st, st.reliable ? 0 : WAIT) // timer J
      }
    }
    // A branch left pending ends with the answer, unless abandoned: that one still owes a CANCEL or an ACK.
    if (st.client && st.client.state < enumState.completed && !st.client.abandoned && status >= 300) this.clients.complete(st.client)
  }

  private onTimer(st: ServerTx, now: number): void {
    // A banned source gets no more retransmissions (and the transaction is freed now).
    const banned = st.side === 'public' && this.core.defence !== undefined && this.core.defence.isBanned(st.source.address)
    if (st.state === enumState.completed && st.isInvite && !st.reliable && now < st.giveUpAt && st.lastResponse && !banned) {
      // Timer G: the ACK has not come; send the final response again.
      this.core.transports.send(st.lastResponse, st.responseDest, st.listener, st.connId)
      st.retransMs = Math.min(st.retransMs * 2, T2)
      this.core.wheel.arm(st, st.retransMs)
      return
    }
    if (st.state === enumState.accepted) this.answered.add(st.key, now)
    if (this.servers.get(st.key) === st) this.servers.delete(st.key)
    st.state = enumState.terminated
    st.client = undefined
  }

  /** Ends a transaction with no answer at all (RFC 4320: a non-INVITE whose sender gave up). */
  drop(st: ServerTx): void {
    this.core.wheel.disarm(st)
    this.servers.delete(st.key)
    st.state = enumState.terminated
    st.request = undefined
    st.hookEdit = undefined
    st.client = undefined
  }

  /**
   * RFC 3261 §17.2.4: a response that cannot be sent ends its server transaction; waiting for an ACK
   * (timer H) or for retransmissions from a peer that is gone only holds memory.
   */
  sendFailed(dest: Peer): void {
    for (const st of this.servers.values()) {
      const d = st.responseDest
      if (st.state === enumState.completed && d.port === dest.port && d.address === dest.address && d.proto === dest.proto) {
        this.core.wheel.disarm(st)
        this.servers.delete(st.key)
        st.state = enumState.terminated
      }
    }
  }

  clear(): void {
    for (const st of this.servers.values()) this.core.wheel.disarm(st)
    this.servers.clear()
    this.answered.clear()
  }
}

/**
 * A response kept for retransmission (while ringing, or for the 5 s hold) in a buffer of its own. Small
 * Buffers are slices of Node's shared 64 KB pool (Buffer.poolSize on Node 24), and one kept slice keeps its
 * whole slab alive: the slabs every forwarded message is cut from stayed pinned by a response each.
 */
function held(out: Buffer): Buffer {
  if (out.byteLength === out.buffer.byteLength) return out
  const own = Buffer.allocUnsafeSlow(out.byteLength)
  out.copy(own)
  return own
}
