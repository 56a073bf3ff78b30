// The `media.*` configuration as the media room takes it. The keys, their defaults and checks are in
// src/config (keys.ts, media_fields.ts, cross.ts), like every other key; `toMediaConfig` turns the
// validated section into this shape.
import type { BInput } from './bencode.js'
import type { FailurePolicy, MediaExtra } from './anchor.js'
import { parseRtpengineSpec, type RtpengineSpec } from './rtpengine_pool.js'

export type MediaMode = 'off' | 'anchor'

export interface MediaSetConfig {
  mode: MediaMode
  /** NG flags added for calls of this backend set. */
  flags: string[]
  /** Other NG keys for this set (e.g. `codec: { strip: [...] }`, `transport-protocol`). */
  extra: Record<string, BInput>
}

export interface MediaConfig {
  /** Mode of every backend set not listed in `sets`. Default 'off' (today's behaviour). */
  mode: MediaMode
  /** `udp:IP:PORT;weight=N`, at least one when any set anchors. */
  rtpengine: RtpengineSpec[]
  /** rtpengine interface names (`--interface=NAME/IP`) facing each side. */
  interfaces: { public: string; internal: string }
  onFailure: FailurePolicy
  rejectStatus: number
  /** One NG command, retransmissions included. */
  timeoutMs: number
  /** First NG retransmission (then doubling). */
  retransmitMs: number
  maxOfferAttempts: number
  replace: string[]
  /** NG `ICE` toward the internal side; '' sends none. */
  iceInternal: string
  /** NG flags for every call. */
  flags: string[]
  migrateOnDown: boolean
  /** Bind address of the NG socket (an address on the rtpengine control network). */
  localAddress: string | undefined
  ping: { intervalMs: number; timeoutMs: number; failThreshold: number; okThreshold: number }
  sets: Record<string, MediaSetConfig>
}

/**
 * The `media` section as the edge's config holds it (validated by src/config: keys.ts, media_fields.ts,
 * cross.ts). Structural, so that this room does not import the config room above it.
 */
export type MediaSection = Omit<MediaConfig, 'rtpengine' | 'localAddress' | 'sets'> & {
  /** `udp:IP:PORT;weight=N` as written (parsed by toMediaConfig). */
  rtpengine: string[]
  localAddress?: string | undefined
  /** A set's keys left out take the section's mode, no flags, no extra. */
  sets: Record<string, { [K in keyof MediaSetConfig]?: MediaSetConfig[K] | undefined }>
}

/** The validated section as createMedia takes it: rtpengine addresses parsed, each set's mode resolved. */
export function toMediaConfig(m: MediaSection): MediaConfig {
  const sets: Record<string, MediaSetConfig> = {}
  for (const [name, s] of Object.entries(m.sets)) sets[name] = { mode: s.mode ?? m.mode, flags: s.flags ?? [], extra: s.extra ?? {} }
  return {
    mode: m.mode,
    rtpengine: m.rtpengine.map(parseRtpengineSpec),
    interfaces: { ...m.interfaces },
    onFailure: m.onFailure,
    rejectStatus: m.rejectStatus,
    timeoutMs: m.timeoutMs,
    retransmitMs: m.retransmitMs,
    maxOfferAttempts: m.maxOfferAttempts,
    replace: [...m.replace],
    iceInternal: m.iceInternal,
    flags: [...m.flags],
    migrateOnDown: m.migrateOnDown,
    localAddress: m.localAddress,
    ping: { ...m.ping },
    sets,
  }
}

/** True when some backend set anchors its media (the edge then runs the media room). */
export function anchors(m: { mode: MediaMode; sets: Record<string, { mode?: MediaMode | undefined }> }): boolean {
  return m.mode === 'anchor' || Object.values(m.sets).some((s) => (s.mode ?? m.mode) === 'anchor')
}

/** The per-set part the anchor takes: mode, and the extra NG keys with the set's flags. */
export function mediaForSet(c: MediaConfig, set: string): { mode: MediaMode; extra: MediaExtra | undefined } {
  const s = c.sets[set]
  if (s === undefined) return { mode: c.mode, extra: undefined }
  const hasExtra = s.flags.length > 0 || Object.keys(s.extra).length > 0
  return { mode: s.mode, extra: hasExtra ? { ...s.extra, flags: s.flags } : undefined }
}
