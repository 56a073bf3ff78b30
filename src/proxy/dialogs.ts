import type { Backend } from '../dispatch/backend.js'
import type { Peer } from '../transport/types.js'
import { LruMap } from '../util/lru_map.js'

/**
 * A call the edge carries. The Record-Route token is the source of truth for routing in-dialog requests;
 * this table is a bounded cache on top of it: it counts active calls per backend (least-calls, metrics,
 * draining), and routes requests of clients that ignore Record-Route (SIPp's built-in `uac` sends ACK and
 * BYE to the edge with no Route header).
 */
export interface Dialog {
  callId: string
  /** The backend side of the call: a backend for inbound calls, the originating backend for outbound. */
  internal: Peer
  /** The public side of the call: the client flow (inbound) or the trunk/callee (outbound). */
  external: Peer
  backend: Backend | undefined
  createdAt: number
  /** 'in' when the call came from the public side, 'out' when a backend placed it. */
  direction: 'in' | 'out'
  /** The rtpengine instance id anchoring its media, when anchored. */
  media?: string
}

export interface DialogTableOptions {
  max: number
  ttlS: number
  onEnd(dialog: Dialog, reason: 'bye' | 'evicted' | 'expired' | 'cleared'): void
}

export class DialogTable {
  private readonly cache: LruMap<string, Dialog>
  private ending: 'bye' | 'cleared' | undefined
  /** Call-IDs by TCP flow ('address|port') of either party: an idle connection a dialog uses stays open. */
  private readonly tcpFlows = new Map<string, Set<string>>()

  constructor(private readonly opts: DialogTableOptions) {
    this.cache = new LruMap<string, Dialog>({
      max: opts.max,
      ttlMs: opts.ttlS * 1000,
      dispose: (dialog, _key, reason) => {
        this.unindex(dialog)
        const why = this.ending ?? (reason === 'expire' ? 'expired' : reason === 'evict' ? 'evicted' : undefined)
        if (why) this.opts.onEnd(dialog, why)
      },
    })
  }

  get size(): number {
    return this.cache.size
  }

  get(callId: string): Dialog | undefined {
    return this.cache.get(callId)
  }

  /** Returns false when the Call-ID is already known (a re-INVITE's 2xx, a 2xx retransmission). */
  add(dialog: Dialog): boolean {
    if (this.cache.has(dialog.callId)) return false
    this.cache.set(dialog.callId, dialog)
    if (dialog.external.proto === 'tcp') this.index(dialog.external, dialog.callId)
    if (dialog.internal.proto === 'tcp') this.index(dialog.internal, dialog.callId)
    return true
  }

  /** Does a live dialog route through this TCP flow? */
  usesFlow(peer: Peer): boolean {
    const ids = this.tcpFlows.get(peer.address + '|' + peer.port)
    if (!ids) return false
    for (const id of ids) if (this.cache.has(id)) return true
    return false
  }

  private index(peer: Peer, callId: string): void {
    const key = peer.address + '|' + peer.port
    let ids = this.tcpFlows.get(key)
    if (!ids) this.tcpFlows.set(key, (ids = new Set()))
    ids.add(callId)
  }

  private unindex(dialog: Dialog): void {
    if (dialog.external.proto === 'tcp') this.unindexPeer(dialog.external, dialog.callId)
    if (dialog.internal.proto === 'tcp') this.unindexPeer(dialog.internal, dialog.callId)
  }

  private unindexPeer(peer: Peer, callId: string): void {
    const key = peer.address + '|' + peer.port
    const ids = this.tcpFlows.get(key)
    if (!ids) return
    ids.delete(callId)
    if (ids.size === 0) this.tcpFlows.delete(key)
  }

  end(callId: string): void {
    this.ending = 'bye'
    try {
      this.cache.delete(callId)
    } finally {
      this.ending = undefined
    }
  }

  /** Drop expired entries now (the LRU otherwise expires lazily on access). */
  purge(): void {
    this.cache.purgeStale()
  }

  clear(): void {
    this.ending = 'cleared'
    try {
      this.cache.clear()
    } finally {
      this.ending = undefined
    }
  }

  /** A page of dialogs, oldest first, for the admin API. */
  page(offset: number, limit: number): { total: number; items: Dialog[] } {
    const items: Dialog[] = []
    let i = 0
    for (const d of this.cache.values()) {
      if (i++ < offset) continue
      if (items.length >= limit) break
      if (d) items.push(d)
    }
    return { total: this.cache.size, items }
  }
}
