// Media metrics in the edge's style: the hot path only bumps numbers in MediaStats (fed by the NG
// client's onCommand hook and the anchor's onEvent), and Prometheus samples are computed at scrape time.
import type { Registry } from 'prom-client'
import { registerScrapeMetric as register, type Sample } from '../util/scrape_metric.js'
import type { MediaEvent } from './anchor.js'
import type { NgOutcome, NgTarget } from './ng_client.js'
import { rtpengineId, type RtpenginePool } from './rtpengine_pool.js'

/** NG command latency buckets in ms (loopback round trips are ~0.1-0.5 ms; timeouts land in +Inf). */
export const NG_BUCKETS_MS = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const
const OUTCOMES: readonly NgOutcome[] = ['ok', 'error', 'timeout', 'closed']

interface PerCommand { counts: number[]; sumMs: number; outcomes: Record<NgOutcome, number> }

export class MediaStats {
  /** key: `${instanceId}\n${command}` */
  private readonly ng = new Map<string, PerCommand>()
  private readonly ids = new Map<string, string>()
  readonly retransmits = new Map<string, number>()
  readonly events = new Map<string, number>()

  /** For NgClient's `onCommand`. */
  readonly onCommand = (command: string, target: NgTarget, ms: number, outcome: NgOutcome, retransmits: number): void => {
    const id = this.idOf(target)
    const key = `${id}\n${command}`
    let pc = this.ng.get(key)
    if (pc === undefined) {
      pc = { counts: new Array<number>(NG_BUCKETS_MS.length + 1).fill(0), sumMs: 0, outcomes: { ok: 0, error: 0, timeout: 0, closed: 0 } }
      this.ng.set(key, pc)
    }
    let b = 0
    while (b < NG_BUCKETS_MS.length && ms > NG_BUCKETS_MS[b]!) b++
    pc.counts[b]!++
    pc.sumMs += ms
    pc.outcomes[outcome]++
    if (retransmits > 0) this.retransmits.set(id, (this.retransmits.get(id) ?? 0) + retransmits)
  }

  /** For MediaAnchor's `onEvent`. */
  readonly onEvent = (ev: MediaEvent): void => {
    const key = `${ev.command}\n${ev.outcome}`
    this.events.set(key, (this.events.get(key) ?? 0) + 1)
  }

  private idOf(t: NgTarget): string {
    const k = `${t.host}:${t.port}`
    let id = this.ids.get(k)
    if (id === undefined) this.ids.set(k, (id = rtpengineId(t)))
    return id
  }

  /** Per instance and command: cumulative bucket counts, sum and outcomes. */
  *commands(): Generator<{ instance: string; command: string; cumulative: number[]; sumMs: number; count: number; outcomes: Record<NgOutcome, number> }> {
    for (const [key, pc] of this.ng) {
      const [instance, command] = key.split('\n') as [string, string]
      let acc = 0
      const cumulative = pc.counts.map((c) => (acc += c))
      yield { instance, command, cumulative, sumMs: pc.sumMs, count: acc, outcomes: pc.outcomes }
    }
  }
}



/** Registers the sipedge_media_* metrics on `registry`. */
export function registerMediaMetrics(registry: Registry, stats: MediaStats, pool: RtpenginePool): void {
  register(registry, 'sipedge_media_sessions', 'gauge', 'Calls anchored by this edge and not deleted yet, per rtpengine', () =>
    pool.instances.map((i) => ({ value: i.sessions, labels: { instance: i.id, address: i.toString() } })))
  register(registry, 'sipedge_media_rtpengine_health', 'gauge', 'rtpengine health state (1 = current state)', () =>
    pool.instances.flatMap((i) => (['up', 'probing', 'down'] as const).map((h) => ({ value: i.health === h ? 1 : 0, labels: { instance: i.id, address: i.toString(), state: h } }))))
  register(registry, 'sipedge_media_ng_seconds', 'histogram', 'rtpengine NG command round trip (retransmissions included)', () => {
    const name = 'sipedge_media_ng_seconds'
    const out: Sample[] = []
    for (const c of stats.commands()) {
      const base = { instance: c.instance, command: c.command }
      NG_BUCKETS_MS.forEach((ms, i) => out.push({ metricName: `${name}_bucket`, value: c.cumulative[i]!, labels: { ...base, le: String(ms / 1000) } }))
      out.push({ metricName: `${name}_bucket`, value: c.count, labels: { ...base, le: '+Inf' } })
      out.push({ metricName: `${name}_sum`, value: c.sumMs / 1000, labels: base })
      out.push({ metricName: `${name}_count`, value: c.count, labels: base })
    }
    return out
  })
  register(registry, 'sipedge_media_ng_commands_total', 'counter', 'rtpengine NG commands by instance, command and outcome', () => {
    const out: Sample[] = []
    for (const c of stats.commands()) {
      for (const o of OUTCOMES) if (c.outcomes[o] > 0) out.push({ value: c.outcomes[o], labels: { instance: c.instance, command: c.command, outcome: o } })
    }
    return out
  })
  register(registry, 'sipedge_media_ng_retransmissions_total', 'counter', 'NG requests sent again for lack of a reply', () =>
    [...stats.retransmits].map(([instance, value]) => ({ value, labels: { instance } })))
  register(registry, 'sipedge_media_outcomes_total', 'counter', 'Anchoring outcomes: anchored, passthrough, reject, deleted, delete-failed', () =>
    [...stats.events].map(([key, value]) => {
      const [command, outcome] = key.split('\n') as [string, string]
      return { value, labels: { command, outcome } }
    }))
}
