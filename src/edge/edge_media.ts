// The edge's own media room (the `media.*` config): created when a backend set anchors, started and stopped with
// the edge, reconfigured on SIGHUP, and asked by /readyz. A library caller may hand in its own ProxyMedia instead.
import type { Logger } from 'pino'
import { anchors, createMedia, mediaForSet, toMediaConfig, type Media, type MediaConfig } from '../media/index.js'
import type { ProxyMedia } from '../proxy/media_step.js'
import type { EdgeConfig } from './config.js'

export class EdgeMedia {
  readonly room: Media
  /** What the proxy's media step uses; `forSet` reads the config in force (SIGHUP changes it). */
  readonly proxyMedia: ProxyMedia
  private config: MediaConfig

  /** Undefined when no set anchors: then the edge creates no media room at all. */
  static create(section: EdgeConfig['media'], log: Logger, onHealth?: () => void): EdgeMedia | undefined {
    return anchors(section) ? new EdgeMedia(section, log, onHealth) : undefined
  }

  private constructor(section: EdgeConfig['media'], log: Logger, onHealth?: () => void) {
    this.config = toMediaConfig(section)
    const room = (this.room = createMedia(this.config, {
      onHealth: (inst, before) => {
        const level = inst.health === 'down' ? 'warn' : 'info'
        log[level]({ rtpengine: inst.id, address: inst.toString(), health: inst.health, before }, 'rtpengine changed')
        onHealth?.()
      },
    }))
    this.proxyMedia = {
      get anchor() { return room.anchor },
      forSet: (set) => (set === undefined ? { mode: 'anchor', extra: undefined } : mediaForSet(this.config, set)),
      stats: room.stats,
    }
  }

  /** SIGHUP: the instance list, policy, flags and per-set modes apply to new commands. */
  reconfigure(section: EdgeConfig['media']): void {
    this.config = toMediaConfig(section)
    this.room.reconfigure(this.config)
  }

  /** /readyz: a set anchors with policy reject and no rtpengine can take a call: every new call would get 503. */
  unready(): string | undefined {
    if (this.config.onFailure !== 'reject' || !anchors(this.config)) return undefined
    return this.room.pool.instances.some((i) => i.health !== 'down') ? undefined : 'no rtpengine up'
  }
}
