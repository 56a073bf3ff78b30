// What the admin API (admin.ts) reads from a running edge: metrics, readiness, backends, dialogs, bans.
import { bansRoute } from '../defence/admin.js'
import type { AdminTarget } from './admin.js'
import type { Edge } from './edge.js'

/** Built once when the admin server starts; every read goes to the edge's live state. */
export function adminTarget(edge: Edge): AdminTarget {
  return {
    metrics: () => edge.metrics.metrics(),
    contentType: edge.metrics.contentType,
    ready: () => {
      if (edge.draining) return { ready: false, reason: 'draining' }
      if (!edge.dispatcher.backends().some((b) => b.eligible)) return { ready: false, reason: 'no eligible backend' }
      const media = edge.mediaUnready()
      if (media !== undefined) return { ready: false, reason: media }
      return { ready: true }
    },
    backends: () =>
      edge.dispatcher.backends().map((b) => ({
        id: b.id,
        set: b.set,
        uri: b.uri,
        weight: b.weight,
        priority: b.priority,
        admin: b.admin,
        health: b.health,
        activeCalls: b.activeCalls,
        source: b.source,
      })),
    dialogs: (offset, limit) => dialogPage(edge, offset, limit),
    setAdmin: (id, state) => edge.dispatcher.setAdmin(id, state),
    bans: (method, path, query) => bansRoute(edge.defence, method, path, query),
  }
}

/** One page of the dialog table as the admin API shows it (also what a worker answers its primary). */
export function dialogPage(edge: Edge, offset: number, limit: number): { total: number; items: unknown[] } {
  const page = edge.proxy.dialogs.page(offset, limit)
  return {
    total: page.total,
    items: page.items.map((d) => ({
      callId: d.callId,
      direction: d.direction,
      backend: d.backend?.id,
      ...(d.media !== undefined ? { media: d.media, rtpengine: edge.rtpengineAddress(d.media) } : {}),
      createdAt: new Date(d.createdAt).toISOString(),
    })),
  }
}
