/**
 * A Prometheus metric whose samples are computed when /metrics is scraped: the hot path only bumps plain
 * counters, and this reads them. Shared by the edge, the defence and the media metrics.
 */
import type { Metric, Registry } from 'prom-client'

export type Labels = Record<string, string>
export interface Sample { value: number; labels: Labels; metricName?: string }

export function registerScrapeMetric(
  registry: Registry,
  name: string,
  type: 'counter' | 'gauge' | 'histogram',
  help: string,
  read: () => Sample[] | undefined,
): void {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    collect() {},
    reset() {},
    get: async () => ({ name, help, type, aggregator: 'sum', values: read() ?? [] }),
  }
  registry.registerMetric(metric as unknown as Metric<string>)
}
