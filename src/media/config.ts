// The `media.*` configuration, validated on its own so the edge's config layer can hand it the
// `media` subtree (YAML/env/flags already merged) and get either a typed, defaulted config or the list
// of problems, each naming its key.
import { isIP } from 'node:net'
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

export const MEDIA_DEFAULTS: Readonly<MediaConfig> = Object.freeze({
  mode: 'off',
  rtpengine: [],
  interfaces: { public: 'external', internal: 'internal' },
  onFailure: 'reject',
  rejectStatus: 503,
  timeoutMs: 1000,
  retransmitMs: 250,
  maxOfferAttempts: 2,
  replace: ['origin', 'session-connection'],
  iceInternal: 'remove',
  flags: [],
  migrateOnDown: true,
  localAddress: undefined,
  ping: { intervalMs: 5000, timeoutMs: 1000, failThreshold: 3, okThreshold: 2 },
  sets: {},
})

const TOP_KEYS = ['mode', 'rtpengine', 'interfaces', 'onFailure', 'rejectStatus', 'timeoutMs', 'retransmitMs',
  'maxOfferAttempts', 'replace', 'iceInternal', 'flags', 'migrateOnDown', 'localAddress', 'ping', 'sets']

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

class Checker {
  readonly errors: string[] = []
  constructor(readonly base: string) {}

  keys(o: Record<string, unknown>, known: string[], path: string): void {
    for (const k of Object.keys(o)) if (!known.includes(k)) this.errors.push(`${path}.${k}: unknown key (known: ${known.join(', ')})`)
  }

  int(v: unknown, path: string, min: number, max: number, dflt: number): number {
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.errors.push(`${path}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
      return dflt
    }
    return v
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined) return dflt
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.errors.push(`${path}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`)
      return dflt
    }
    return v as T
  }

  name(v: unknown, path: string, dflt: string, allowEmpty = false): string {
    if (v === undefined) return dflt
    if (typeof v !== 'string' || (!allowEmpty && v === '') || !/^[A-Za-z0-9_.:-]*$/.test(v)) {
      this.errors.push(`${path}: expected a name of letters, digits, _ . : -, got ${JSON.stringify(v)}`)
      return dflt
    }
    return v
  }

  strings(v: unknown, path: string, dflt: string[]): string[] {
    if (v === undefined) return [...dflt]
    // A comma list, as env variables and flags give it.
    const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s !== '' && !/[\r\n]/.test(s))) {
      this.errors.push(`${path}: expected a list of strings`)
      return [...dflt]
    }
    return list as string[]
  }

  ip(v: unknown, path: string): string | undefined {
    if (v === undefined) return undefined
    if (typeof v !== 'string' || isIP(v) === 0) {
      this.errors.push(`${path}: expected an IP literal, got ${JSON.stringify(v)}`)
      return undefined
    }
    return v
  }

  bool(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined) return dflt
    if (typeof v !== 'boolean') {
      this.errors.push(`${path}: expected true or false`)
      return dflt
    }
    return v
  }

  bvalue(v: unknown, path: string, depth = 0): v is BInput {
    if (depth > 8) { this.errors.push(`${path}: nested too deep`); return false }
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isSafeInteger(v))) return true
    if (Array.isArray(v)) return v.every((x, i) => this.bvalue(x, `${path}[${i}]`, depth + 1))
    if (isObject(v)) return Object.entries(v).every(([k, x]) => this.bvalue(x, `${path}.${k}`, depth + 1))
    this.errors.push(`${path}: not representable in bencode (strings, integers, booleans, lists, maps)`)
    return false
  }
}

/** NG keys the anchor sets itself: an `extra` map must not override them. */
const RESERVED = new Set(['command', 'call-id', 'from-tag', 'to-tag', 'via-branch', 'sdp', 'direction', 'flags'])

/** Validates the `media` subtree (undefined = all defaults). */
export function validateMediaConfig(raw: unknown, base = 'media'): { config?: MediaConfig; errors: string[] } {
  const c = new Checker(base)
  if (raw === undefined || raw === null) raw = {}
  if (!isObject(raw)) return { errors: [`${base}: expected a map`] }
  c.keys(raw, TOP_KEYS, base)
  const d = MEDIA_DEFAULTS
  const rtpengine: RtpengineSpec[] = []
  for (const s of c.strings(raw['rtpengine'], `${base}.rtpengine`, [])) {
    try { rtpengine.push(parseRtpengineSpec(s)) } catch (err) { c.errors.push(`${base}.rtpengine: ${(err as Error).message}`) }
  }
  const ifs = raw['interfaces']
  let interfaces = { ...d.interfaces }
  if (ifs !== undefined) {
    if (!isObject(ifs)) c.errors.push(`${base}.interfaces: expected a map with public and internal`)
    else {
      c.keys(ifs, ['public', 'internal'], `${base}.interfaces`)
      interfaces = { public: c.name(ifs['public'], `${base}.interfaces.public`, d.interfaces.public), internal: c.name(ifs['internal'], `${base}.interfaces.internal`, d.interfaces.internal) }
    }
  }
  const pingRaw = raw['ping']
  let ping = { ...d.ping }
  if (pingRaw !== undefined) {
    if (!isObject(pingRaw)) c.errors.push(`${base}.ping: expected a map`)
    else {
      c.keys(pingRaw, ['intervalMs', 'timeoutMs', 'failThreshold', 'okThreshold'], `${base}.ping`)
      ping = {
        intervalMs: c.int(pingRaw['intervalMs'], `${base}.ping.intervalMs`, 100, 3_600_000, d.ping.intervalMs),
        timeoutMs: c.int(pingRaw['timeoutMs'], `${base}.ping.timeoutMs`, 10, 60_000, d.ping.timeoutMs),
        failThreshold: c.int(pingRaw['failThreshold'], `${base}.ping.failThreshold`, 1, 100, d.ping.failThreshold),
        okThreshold: c.int(pingRaw['okThreshold'], `${base}.ping.okThreshold`, 1, 100, d.ping.okThreshold),
      }
    }
  }
  const mode = c.oneOf(raw['mode'], `${base}.mode`, ['off', 'anchor'] as const, d.mode)
  const sets: Record<string, MediaSetConfig> = {}
  const setsRaw = raw['sets']
  if (setsRaw !== undefined) {
    if (!isObject(setsRaw)) c.errors.push(`${base}.sets: expected a map of backend set names`)
    else for (const [name, v] of Object.entries(setsRaw)) {
      const p = `${base}.sets.${name}`
      if (!isObject(v)) { c.errors.push(`${p}: expected a map`); continue }
      c.keys(v, ['mode', 'flags', 'extra'], p)
      const extra: Record<string, BInput> = {}
      const ex = v['extra']
      if (ex !== undefined) {
        if (!isObject(ex)) c.errors.push(`${p}.extra: expected a map of NG keys`)
        else for (const [k, x] of Object.entries(ex)) {
          if (RESERVED.has(k)) c.errors.push(`${p}.extra.${k}: set by the edge itself${k === 'flags' ? ` (use ${p}.flags)` : ''}`)
          else if (c.bvalue(x, `${p}.extra.${k}`)) extra[k] = x
        }
      }
      sets[name] = { mode: c.oneOf(v['mode'], `${p}.mode`, ['off', 'anchor'] as const, mode), flags: c.strings(v['flags'], `${p}.flags`, []), extra }
    }
  }
  const config: MediaConfig = {
    mode,
    rtpengine,
    interfaces,
    onFailure: c.oneOf(raw['onFailure'], `${base}.onFailure`, ['reject', 'passthrough'] as const, d.onFailure),
    rejectStatus: c.int(raw['rejectStatus'], `${base}.rejectStatus`, 400, 699, d.rejectStatus),
    timeoutMs: c.int(raw['timeoutMs'], `${base}.timeoutMs`, 10, 60_000, d.timeoutMs),
    retransmitMs: c.int(raw['retransmitMs'], `${base}.retransmitMs`, 5, 60_000, d.retransmitMs),
    maxOfferAttempts: c.int(raw['maxOfferAttempts'], `${base}.maxOfferAttempts`, 1, 10, d.maxOfferAttempts),
    replace: c.strings(raw['replace'], `${base}.replace`, d.replace),
    iceInternal: c.name(raw['iceInternal'], `${base}.iceInternal`, d.iceInternal, true),
    flags: c.strings(raw['flags'], `${base}.flags`, d.flags),
    migrateOnDown: c.bool(raw['migrateOnDown'], `${base}.migrateOnDown`, d.migrateOnDown),
    localAddress: c.ip(raw['localAddress'], `${base}.localAddress`),
    ping,
    sets,
  }
  const anchoring = config.mode === 'anchor' || Object.values(sets).some((s) => s.mode === 'anchor')
  if (anchoring && rtpengine.length === 0) c.errors.push(`${base}.rtpengine: needed when a backend set has mode anchor`)
  if (config.retransmitMs > config.timeoutMs) c.errors.push(`${base}.retransmitMs: larger than ${base}.timeoutMs`)
  if (c.errors.length > 0) return { errors: c.errors }
  return { config, errors: [] }
}

/** The per-set part the anchor takes: mode, and the extra NG keys with the set's flags. */
export function mediaForSet(c: MediaConfig, set: string): { mode: MediaMode; extra: MediaExtra | undefined } {
  const s = c.sets[set]
  if (s === undefined) return { mode: c.mode, extra: undefined }
  const hasExtra = s.flags.length > 0 || Object.keys(s.extra).length > 0
  return { mode: s.mode, extra: hasExtra ? { ...s.extra, flags: s.flags } : undefined }
}
