/**
 * The defence's Prometheus metrics, registered on the edge's registry (read at scrape time from the plain
 * counters in DefenceStats; nothing runs per message).
 */
import type { Registry } from 'prom-client'
import { registerScrapeMetric as register } from '../util/scrape_metric.js'
import { BAN_REASONS } from './bans.js'
import type { Defence } from './defence.js'



/** Adds sipedge_bans_active, sipedge_bans_total, sipedge_defence_dropped_total, sipedge_auth_failures_total. */
export function registerDefenceMetrics(registry: Registry, defence: () => Defence | undefined): void {
  register(registry, 'sipedge_bans_active', 'gauge', 'Source addresses banned now (local and shared)', () => {
    const d = defence()
    return d ? [{ value: d.activeBans, labels: {} }] : []
  })
  register(registry, 'sipedge_bans_total', 'counter', 'Bans by reason (shared = learnt from another edge)', () => {
    const d = defence()
    return d ? BAN_REASONS.map((reason) => ({ value: d.stats.bans[reason], labels: { reason } })) : []
  })
  register(registry, 'sipedge_defence_dropped_total', 'counter', 'Public requests dropped (or refused with 403) by the defence, by reason', () => {
    const d = defence()
    if (!d) return []
    const s = d.stats
    return [
      { value: s.droppedBanned, labels: { reason: 'banned' } },
      { value: s.droppedScanner, labels: { reason: 'scanner' } },
      { value: s.rejected, labels: { reason: 'banned-403' } },
    ]
  })
  register(registry, 'sipedge_auth_failures_total', 'counter', 'Answers to public sources: challenges, failed retries (credentials refused), not found', () => {
    const d = defence()
    if (!d) return []
    const s = d.stats
    return [
      { value: s.challenges, labels: { kind: 'challenge' } },
      { value: s.authFailures, labels: { kind: 'failed-retry' } },
      { value: s.notFound, labels: { kind: 'not-found' } },
    ]
  })
}
