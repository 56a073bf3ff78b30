import type { Backend } from '../dispatch/backend.js'
import type { MessageEditor, SipMessage } from '../sip/index.js'
import type { Peer, Side } from '../transport/types.js'
import type { Dialog } from './dialogs.js'

/**
 * What an `onRequest` hook sees for a new (out-of-dialog) request, and how it steers it. Hooks run on the
 * hot path, once per new request (not for in-dialog requests or responses): keep them cheap and
 * synchronous. The default path has no hooks at all.
 */
export interface RequestContext {
  readonly msg: SipMessage
  readonly source: Peer
  readonly side: Side
  /** Edits applied to the forwarded request (add/remove/replace headers). */
  readonly edit: MessageEditor
  /** Backend set for a new inbound call (default: 'default'). */
  set: string
  /** Force a backend (skips the set's algorithm; failover still uses the set). */
  backend?: Backend
  /** Force a next hop for this request (e.g. a carrier for a call going out). */
  target?: Peer
  /** Answer with this status instead of forwarding. */
  reject?: { status: number; reason?: string }
}

export interface ResponseContext {
  readonly msg: SipMessage
  /** The request this answers, as received by the edge. */
  readonly request: SipMessage | undefined
  readonly backend: Backend | undefined
  /** Side the response is going to. */
  readonly side: Side
  readonly edit: MessageEditor
}

export interface ProxyHooks {
  onRequest?(ctx: RequestContext): void
  /** Custom backend choice for a new call; return undefined to fall back to the set's algorithm. */
  selectBackend?(set: string, msg: SipMessage, candidates: readonly Backend[], exclude: ReadonlySet<Backend> | undefined): Backend | undefined
  onResponse?(ctx: ResponseContext): void
  onDialogEnd?(dialog: Dialog, reason: string): void
}
