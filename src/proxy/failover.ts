// Failover (RFC 3261 §16.7 step 6, sequential forking): which backend a new call goes to, and what a
// failed branch leads to: the next backend of the set (failover codes, timeout, transport error) within
// maxTries, the best final response seen, or the edge's own final response.
import type { Backend } from '../dispatch/backend.js'
import type { MessageEditor, SipMessage } from '../sip/index.js'
import type { Inbound, Peer } from '../transport/types.js'
import type { ProxyCore } from './core.js'
import type { ProxyOptions } from './options.js'
import type { Relay } from './relay.js'
import { NO_ROUTE } from './routing.js'
import type { ServerTransactions } from './server_tx.js'
import type { ClientTx, ServerTx } from './transactions.js'

export class Failover {
  private maxTries = 3
  private failoverCodes: ReadonlySet<number> = new Set()

  constructor(
    private readonly core: ProxyCore,
    private readonly servers: ServerTransactions,
    private readonly relay: Relay,
    opts: ProxyOptions,
  ) {
    this.reconfigure(opts)
  }

  /** SIGHUP: transactions in progress keep counting tries against the new ceiling. */
  reconfigure(o: Pick<ProxyOptions, 'failover'>): void {
    this.maxTries = o.failover?.maxTries ?? 3
    this.failoverCodes = new Set(o.failover?.codes ?? [408, 500, 503])
  }

  /** Picks the next backend (excluding those tried) and forwards to it; false when none is left. */
  tryBackend(st: ServerTx, forced?: Backend, edit?: MessageEditor): boolean {
    const msg = st.request
    if (!msg || st.cancelled || st.tries >= this.maxTries || st.set === undefined) return false
    const core = this.core
    let backend = forced
    if (!backend && core.hooks.selectBackend) {
      backend = core.hooks.selectBackend(st.set, msg, core.dispatcher.backends(st.set), st.tried)
    }
    // The From user is parsed only when the set's algorithm hashes on it.
    const ctx = { callId: msg.callId, get fromUser(): string { return fromUserOf(msg) } }
    backend ??= st.affinity !== undefined ? core.dispatcher.selectByKey(st.set, st.affinity, st.tried) : core.dispatcher.select(st.set, ctx, st.tried)
    if (!backend) return false
    st.tries++
    ;(st.tried ??= new Set()).add(backend)
    const target: Peer = { proto: backend.target.proto, address: backend.target.host, port: backend.target.port }
    const inb: Inbound = { msg, source: st.source, listener: st.listener, connId: st.connId }
    return this.relay.sendDownstream(st, inb, 'internal', target, NO_ROUTE, edit, backend)
  }

  /** A 3xx-6xx final response on the current branch: true when it leads to the next backend (or the 503 when none is left). */
  onFinalFailure(st: ServerTx, ct: ClientTx, msg: SipMessage): boolean {
    if (!ct.backend || !this.failoverCodes.has(msg.status) || st.set === undefined || st.cancelled) return false
    this.core.dispatcher.reportFailure(ct.backend, String(msg.status))
    this.rememberBest(st, msg)
    this.core.observer.failover(ct.backend)
    if (!this.tryBackend(st, undefined, st.hookEdit)) this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
    return true
  }

  /** What the server transaction does when its current branch failed: the next backend, or a final response. */
  branchFailed(ct: ClientTx, why: string, status: number, wasTrying: boolean): void {
    const st = ct.server
    if (!st || st.lastStatus >= 200 || st.client !== ct) return
    if (st.cancelled) return this.servers.finalLocal(st, 487, 'Request Terminated')
    const core = this.core
    if (status === 408 && !st.isInvite) {
      // RFC 4320 §4.2: no 408 to a non-INVITE request. Its sender gave up at the same moment (timer F), so
      // neither another backend nor any answer would reach it: the transaction just ends.
      if (ct.backend) core.dispatcher.reportFailure(ct.backend, why)
      return this.servers.drop(st)
    }
    if (ct.backend) {
      core.dispatcher.reportFailure(ct.backend, why)
      if (wasTrying && st.set !== undefined) {
        core.observer.failover(ct.backend)
        core.log.info({ callId: st.request?.callId, backend: ct.backend.id, why }, 'backend failed, trying the next one')
        if (this.tryBackend(st, undefined, st.hookEdit)) return
        return this.servers.finalLocal(st, 503, 'Service Unavailable', [['Retry-After', '5']])
      }
    }
    if (st.method === 'ACK') return
    this.servers.finalLocal(st, status, status === 408 ? 'Request Timeout' : status === 430 ? 'Flow Failed' : 'Service Unavailable')
  }

  private rememberBest(st: ServerTx, msg: SipMessage): void {
    // RFC 3261 §16.7 step 6, simplified for sequential forking: the lowest class wins, 6xx always.
    const s = msg.status
    const b = st.bestStatus
    if (b === 0 || (s >= 600 && b < 600) || (b < 600 && Math.floor(s / 100) < Math.floor(b / 100))) {
      st.bestStatus = s
      st.bestResponse = msg
    }
  }
}

function fromUserOf(msg: SipMessage): string {
  try {
    return msg.from.uri.user ?? ''
  } catch {
    return ''
  }
}
