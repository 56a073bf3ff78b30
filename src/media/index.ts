// The media room: rtpengine anchoring. `createMedia` builds the parts the edge wires in from a
// validated `media` config; the modules stay usable one by one (library users, tests).
import { MediaAnchor, type MediaEvent } from './anchor.js'
import type { MediaConfig } from './config.js'
import { NgClient, type NgOutcome, type NgTarget } from './ng_client.js'
import { RtpenginePool, type MediaHealth, type RtpengineInstance } from './rtpengine_pool.js'
import { MediaStats } from './metrics.js'

export * from './anchor.js'
export * from './bencode.js'
export * from './config.js'
export * from './ng_client.js'
export * from './rtpengine_pool.js'
export * from './sdp_body.js'
export * from './metrics.js'

export interface Media {
  client: NgClient
  pool: RtpenginePool
  /** Replaced by `reconfigure` (calls in flight finish with the one they started with). */
  anchor: MediaAnchor
  /** Counters and NG latency histogram, fed by the client and the anchor (for registerMediaMetrics). */
  stats: MediaStats
  /** Binds the NG socket and starts the pings. */
  start(): Promise<void>
  stop(): Promise<void>
  /**
   * SIGHUP: the new instance list (health kept for addresses that stay) and a new anchor for the policy,
   * interfaces and flags. The NG socket, retransmission and ping timing stay as they started.
   */
  reconfigure(c: MediaConfig): void
}

export interface MediaHooks {
  onCommand?: (command: string, target: NgTarget, ms: number, outcome: NgOutcome, retransmits: number) => void
  onHealth?: (inst: RtpengineInstance, before: MediaHealth) => void
  onEvent?: (ev: MediaEvent) => void
}

export function createMedia(c: MediaConfig, hooks: MediaHooks = {}): Media {
  const stats = new MediaStats()
  const onCommand = hooks.onCommand
  const onEvent = hooks.onEvent
  const client = new NgClient({
    retransmitMs: c.retransmitMs, timeoutMs: c.timeoutMs,
    ...(c.localAddress !== undefined ? { localAddress: c.localAddress } : {}),
    onCommand: onCommand === undefined ? stats.onCommand : (cmd, tg, ms, o, r) => { stats.onCommand(cmd, tg, ms, o, r); onCommand(cmd, tg, ms, o, r) },
  })
  const pool = new RtpenginePool(client, c.rtpengine, { ...c.ping, ...(hooks.onHealth !== undefined ? { onChange: hooks.onHealth } : {}) })
  const event = onEvent === undefined ? stats.onEvent : (ev: MediaEvent) => { stats.onEvent(ev); onEvent(ev) }
  const anchorFor = (m: MediaConfig): MediaAnchor => new MediaAnchor({
    client, pool,
    interfaces: m.interfaces, onFailure: m.onFailure, rejectStatus: m.rejectStatus, replace: m.replace,
    iceInternal: m.iceInternal,
    extra: m.flags.length > 0 ? { flags: m.flags } : undefined,
    maxOfferAttempts: m.maxOfferAttempts, timeoutMs: m.timeoutMs, migrateOnDown: m.migrateOnDown,
    onEvent: event,
  })
  const media: Media = {
    client, pool, anchor: anchorFor(c), stats,
    start: async () => { await client.start(); pool.start() },
    stop: async () => { pool.stop(); await client.close() },
    reconfigure: (m) => {
      pool.update(m.rtpengine)
      media.anchor = anchorFor(m)
    },
  }
  return media
}
