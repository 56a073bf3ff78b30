// What a Proxy is given (options) and what it reports (observer): the proxy's public surface, re-exported by proxy.ts.
import type { Backend } from '../dispatch/backend.js'
import type { SipMessage } from '../sip/index.js'
import type { Peer, Side } from '../transport/types.js'
import type { SourceFilter } from './guard.js'
import type { ProxyHooks } from './hooks.js'
import type { KeepaliveOptions } from './keepalive.js'
import type { ProxyMedia } from './media_step.js'

/** Counters the edge exposes as metrics; every method is called on the hot path, so keep them cheap. */
export interface ProxyObserver {
  /** A request received on `side` (counted before admission: rate-limited and denied ones too). */
  request(side: Side, method: string): void
  /** A request sent out of `side` (forwarded, ACK, CANCEL). */
  requestSent(side: Side, method: string): void
  /** A response received on `side`. */
  response(side: Side, status: number): void
  /** A response sent out of `side` (relayed or generated here). */
  responseSent(side: Side, status: number): void
  /** A response the edge generated itself (also counted by responseSent). */
  localReply(status: number): void
  parseError(side: Side): void
  refused(reason: 'relay' | 'token' | 'draining' | 'overload' | 'acl' | 'rate' | 'loop' | 'hops', side: Side): void
  failover(from: Backend): void
  /** A new INVITE taken for routing (a server transaction exists). */
  callOffered(): void
  /** A new INVITE answered 2xx: the dialog exists. */
  callStarted(backend: Backend | undefined, setupMs: number): void
  /** A new INVITE ended with a final response >= 300 (including 487 after CANCEL). */
  callFailed(status: number): void
  callEnded(backend: Backend | undefined, reason: string): void
  retransmission(): void
}

export const NO_OBSERVER: ProxyObserver = {
  request() {},
  requestSent() {},
  response() {},
  responseSent() {},
  localReply() {},
  parseError() {},
  refused() {},
  failover() {},
  callOffered() {},
  callStarted() {},
  callFailed() {},
  callEnded() {},
  retransmission() {},
}

export interface ProxyOptions {
  secret: string
  /** Backend set for new calls from the public side when no hook chooses one. */
  defaultSet?: string
  /** timerCMs: a ringing INVITE branch is CANCELled after this long without a new provisional (default 181 s). */
  failover?: { maxTries?: number; inviteTimeoutMs?: number; codes?: readonly number[]; timerCMs?: number }
  maxTransactions?: number
  maxDialogs?: number
  dialogTtlS?: number
  /** Outbound gateway for calls placed by backends (their R-URI is kept; the packet goes to the trunk). */
  trunk?: Peer
  /** Answer 503 with this Retry-After to new calls while draining. */
  retryAfterS?: number
  hooks?: ProxyHooks
  observer?: ProxyObserver
  /** Per-source request limit on the public side (Kamailio pike); rps 0 = off. */
  rateLimit?: { rps: number; burst: number; action: 'reply' | 'drop' }
  /** Mask the Call-ID of calls placed by backends toward the public side (restored on the way back). */
  maskCallId?: boolean
  /** Source filters per side; requests from other sources are dropped (logged once per source). */
  filters?: { public?: SourceFilter; internal?: SourceFilter }
  /** Scanner/toll-fraud defence: screens public requests, learns from the answers relayed to public sources. */
  defence?: ProxyDefence
  /** rtpengine anchoring of SDP (src/media); off when absent. */
  media?: ProxyMedia
  /** Backend set REGISTERs from the public side go to (default: defaultSet); path.ts. */
  registrarSet?: string
  /** NAT keepalives to the flows of live registrations (nathelper-like); off when absent. */
  natKeepalive?: KeepaliveOptions
}

/**
 * What the proxy asks of a scanner/toll-fraud defence (src/defence's Defence is one). Declared here so that
 * the proxy does not import the defence, which sits above it (it uses the proxy's addressing).
 */
export interface ProxyDefence {
  /** A new request from the public side: 0 pass, 1 drop, 2 answer 403. */
  screen(msg: SipMessage, address: string): 0 | 1 | 2
  /** A ban is in force on `address`. */
  isBanned(address: string): boolean
  /** A response relayed to the public source `address` for its request `request`. */
  observe(request: SipMessage, address: string, status: number): void
}
