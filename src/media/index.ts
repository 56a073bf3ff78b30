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
  anchor: MediaAnchor
  /** Counters and NG latency histogram, fed by the client and the anchor (for registerMediaMetrics). */
  stats: MediaStats
  /** Binds the NG socket and starts the pings. */
  start(): Promise<void>
  stop(): Promise<void>
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
  const anchor = new MediaAnchor({
    client, pool,
    interfaces: c.interfaces, onFailure: c.onFailure, rejectStatus: c.rejectStatus, replace: c.replace,
    iceInternal: c.iceInternal,
    extra: c.flags.length > 0 ? { flags: c.flags } : undefined,
    maxOfferAttempts: c.maxOfferAttempts, timeoutMs: c.timeoutMs, migrateOnDown: c.migrateOnDown,
    onEvent: onEvent === undefined ? stats.onEvent : (ev) => { stats.onEvent(ev); onEvent(ev) },
  })
  return {
    client, pool, anchor, stats,
    start: async () => { await client.start(); pool.start() },
    stop: async () => { pool.stop(); await client.close() },
  }
}
