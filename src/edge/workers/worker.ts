/**
 * The worker side: one worker is an ordinary edge (its listeners bound with SO_REUSEPORT) plus what makes
 * N of them one edge: its number in every branch and tag it makes, the relay that hands a response to the
 * worker owning its transaction, its metrics for the primary's AggregatorRegistry, its state reports, and
 * the admin actions the primary fans out.
 */
import { createSocket, type Socket } from 'node:dgram'
import { AggregatorRegistry } from 'prom-client'
import { parseMessage, workerOfBranch } from '../../sip/index.js'
import { registerScrapeMetric } from '../../util/scrape_metric.js'
import type { Inbound } from '../../transport/types.js'
import { bansRoute } from '../../defence/admin.js'
import { dialogPage } from '../admin_target.js'
import type { Edge } from '../edge.js'
import { isMessage, SYNC_MS, type BackendReport, type ToPrimary, type ToWorker } from './messages.js'
import { unwrap, wrap } from './relay.js'

export interface WorkerLink {
  /** Responses handed to their owner / received from another worker. */
  readonly handedOver: number
  readonly takenOver: number
  close(): void
}

/** Wires a started edge into the cluster as worker `index`; `send` is process.send. */
export async function attachWorker(edge: Edge, index: number, send: (m: ToPrimary) => void): Promise<WorkerLink> {
  let ports: number[] = []
  let handedOver = 0
  let takenOver = 0
  const relay: Socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    relay.once('error', reject)
    // exclusive: in a cluster worker a plain bind would share one socket made by the primary across workers.
    relay.bind({ port: 0, address: '127.0.0.1', exclusive: true }, () => {
      relay.off('error', reject)
      resolve()
    })
  })
  relay.on('error', (err) => edge.log.warn({ err, component: 'workers' }, 'worker relay socket error'))

  // Another worker received a response of ours: take it as if our listener had.
  relay.on('message', (buf) => {
    const u = unwrap(buf)
    const listener = u && edge.sockets.find((l) => l.id === u.listenerId)
    if (!u || !listener) return
    let msg
    try {
      msg = parseMessage(buf, u.start, buf.length - u.start)
    } catch {
      return // it parsed on the worker that received it; a corrupt hand-over is dropped
    }
    takenOver++
    edge.onMessage({ msg, source: { proto: 'udp', address: u.address, port: u.port }, listener })
  })

  // Only UDP responses can land on the wrong worker: a connection's messages stay with the worker that holds
  // it, and requests come from the source the kernel keeps on one worker (its retransmissions, CANCEL, ACK).
  edge.intercept = (inb: Inbound): boolean => {
    const msg = inb.msg
    if (msg.isRequest || inb.source.proto !== 'udp') return false
    const branch = msg.topViaBranch
    if (branch === undefined) return false
    const owner = workerOfBranch(branch)
    if (owner < 0 || owner === index) return false
    const port = ports[owner]
    if (port === undefined || port === 0) return false // the owner is restarting: its transactions are gone
    relay.send(wrap(msg.buf, msg.start, msg.end, inb.listener.id, inb.source.address, inb.source.port), port, '127.0.0.1')
    handedOver++
    return true
  }

  // Metrics: the primary's AggregatorRegistry asks every worker for its registry and sums the samples; the
  // per-worker series keep a worker label so that the spread over workers shows.
  new AggregatorRegistry() // installs the worker's answer to the primary's metrics requests
  AggregatorRegistry.setRegistries([edge.metrics.registry])
  const labels = { worker: String(index) }
  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_calls_started_total', 'counter', 'INVITEs dispatched to a backend, by worker process', () => [
    { value: edge.stats.counters.callsStarted, labels },
  ])
  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_handed_over_total', 'counter', 'UDP responses received by this worker and handed to the worker owning their transaction', () => [
    { value: handedOver, labels },
  ])
  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_taken_over_total', 'counter', 'UDP responses another worker received and handed to this one', () => [
    { value: takenOver, labels },
  ])

  const report = (): void => {
    const backends: BackendReport[] = edge.dispatcher.backends().map((b) => ({
      id: b.id, set: b.set, uri: b.uri, weight: b.weight, priority: b.priority, admin: b.admin, health: b.health, activeCalls: b.activeCalls, source: b.source,
    }))
    send({ t: 'sipedge:status', worker: index, backends, dialogs: edge.proxy.dialogs.size, draining: edge.draining })
  }
  const timer = setInterval(report, SYNC_MS)
  timer.unref()

  const onMessage = (m: unknown): void => {
    if (!isMessage<ToWorker>(m)) return
    switch (m.t) {
      case 'sipedge:relay-ports':
        ports = m.ports
        return
      case 'sipedge:others':
        for (const b of edge.dispatcher.backends()) b.otherWorkersCalls = m.calls[b.id] ?? 0
        return
      case 'sipedge:ask': {
        let value: unknown
        if (m.what === 'setAdmin') value = edge.dispatcher.setAdmin(m.backend, m.state)
        else if (m.what === 'dialogs') value = dialogPage(edge, m.offset, m.limit)
        else value = bansRoute(edge.defence, m.method, m.path, new URLSearchParams(m.query)) ?? null
        send({ t: 'sipedge:answer', id: m.id, value })
        if (m.what === 'setAdmin') report()
        return
      }
    }
  }
  process.on('message', onMessage)
  // The primary is gone (killed): drain and exit as on SIGTERM rather than run on unsupervised.
  const orphaned = (): void => void process.kill(process.pid, 'SIGTERM')
  process.once('disconnect', orphaned)
  send({ t: 'sipedge:relay-port', worker: index, port: relay.address().port })
  report()

  return {
    get handedOver() { return handedOver },
    get takenOver() { return takenOver },
    close() {
      clearInterval(timer)
      process.off('message', onMessage)
      process.off('disconnect', orphaned)
      edge.intercept = undefined
      try {
        relay.close()
      } catch {
        // already closed
      }
    },
  }
}
