/**
 * The worker side: one worker is an ordinary edge (its listeners bound with SO_REUSEPORT) plus what makes
 * N of them one edge: its number in every branch and tag it makes, the relay that hands a response to the
 * worker owning its transaction, its metrics for the primary's AggregatorRegistry, its state reports, and
 * the admin actions the primary fans out.
 */
import { createSocket, type Socket } from 'node:dgram'
import { AggregatorRegistry } from 'prom-client'
import { H, parseMessage, workerOfBranch, type SipMessage } from '../../sip/index.js'
import { WORKER_PARAM } from '../../proxy/routing.js'
import { registerScrapeMetric } from '../../util/scrape_metric.js'
import type { Inbound } from '../../transport/types.js'
import { bansRoute } from '../../defence/admin.js'
import { dialogPage } from '../admin_target.js'
import { UDP_BUFFER_BYTES, type Edge } from '../edge.js'
import { OWN_PORT_ID_BASE } from '../../transport/transports.js'
import type { HealthState } from '../../dispatch/types.js'
import { isMessage, SYNC_MS, type BackendReport, type ToPrimary, type ToWorker } from './messages.js'
import { unwrap, unwrapFlow, wrap, wrapFlow } from './relay.js'

export interface WorkerLink {
  /** Responses handed to their owner / received from another worker. */
  readonly handedOver: number
  readonly takenOver: number
  /** The edge has started: tell the primary. */
  started(): void
  /** A SIGHUP reload done (or refused, with errors): the primary logs it once for all workers. */
  reloaded(r: { applied: string[]; restart: string[]; errors?: string[] }): void
  close(): void
}

/**
 * Wires an edge into the cluster as worker `index` before it starts (`send` is process.send): its listeners
 * join the SO_REUSEPORT groups only once it knows where the other workers take what is theirs, so nothing
 * the kernel hands a freshly restarted worker is taken for its own by mistake.
 */
export async function attachWorker(edge: Edge, index: number, send: (m: ToPrimary) => void): Promise<WorkerLink> {
  let ports: number[] = []
  let handedOver = 0
  let takenOver = 0
  let flowsHandedOver = 0
  let flowsTakenOver = 0
  /** Connections other workers hold (peers that connected to them): peer key -> worker. */
  const flowOwners = new Map<string, number>()
  const relay: Socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    relay.once('error', reject)
    // exclusive: in a cluster worker a plain bind would share one socket made by the primary across workers.
    relay.bind({ port: 0, address: '127.0.0.1', exclusive: true }, () => {
      relay.off('error', reject)
      resolve()
    })
  })
  // The listeners' buffer size, not the ~200 KB default: while this worker is stalled (CPU starved, a GC
  // pause) everything handed to it waits here, about half of all the responses to its transactions. A 200 to
  // a BYE dropped here is a failed call (the backend answered and ended it; it ignores the retransmitted BYE).
  try {
    relay.setRecvBufferSize(UDP_BUFFER_BYTES)
    relay.setSendBufferSize(UDP_BUFFER_BYTES)
  } catch (err) {
    edge.log.warn({ err, component: 'workers' }, 'worker relay socket: buffer size not set')
  }
  relay.on('error', (err) => edge.log.warn({ err, component: 'workers' }, 'worker relay socket error'))

  // Another worker received a response of ours: take it as if our listener had. Or it sends to a peer whose
  // connection we hold: write the bytes on it.
  relay.on('message', (buf) => {
    const flow = unwrapFlow(buf)
    if (flow !== undefined) {
      const conn = edge.transports.table.find(flow.key)
      if (conn !== undefined) {
        flowsTakenOver++
        conn.write(buf.subarray(flow.start))
      }
      return
    }
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
    edge.onMessage({ msg, source: u.source, listener })
  })

  // What lands on the wrong worker: a response (a UDP peer answers to the shared port, which the kernel maps
  // by the peer's address; a connection carries answers to requests another worker sent on it), owned by the
  // worker its branch names; an in-dialog request (a backend's BYE comes from its one port), owned by the
  // worker the Route names (it holds the dialog); and a registrar's request through the Path of a phone on a
  // TCP/TLS/WS connection (Path entry `;sw=N`), owned by the worker holding that connection. Its CANCEL and
  // non-2xx ACK carry the same Route and follow it; other new requests' retransmissions, CANCEL and ACK come
  // from the same source, which the kernel keeps on one worker.
  //
  // Why hand the Path request over rather than send it from here through the holder (transports.handOff): the
  // flow token names a connection by its id in the process that accepted it (and that process's instance),
  // which only the holder can check is still the phone's; and the call then lives where the phone's in-dialog
  // requests and responses arrive (its connection), one process per call as for every other dialog.
  edge.intercept = (inb: Inbound): boolean => {
    const msg = inb.msg
    let owner: number
    if (msg.isRequest) {
      owner = routeWorker(msg)
    } else {
      const branch = msg.topViaBranch
      if (branch === undefined) return false
      owner = workerOfBranch(branch)
    }
    if (owner < 0 || owner === index) return false
    const port = ports[owner]
    if (port === undefined || port === 0) return false // the owner is restarting: its transactions are gone
    // Another worker has no socket on this worker's own port: it takes it as received on the shared listener.
    const listenerId = inb.listener.id >= OWN_PORT_ID_BASE ? inb.listener.id - OWN_PORT_ID_BASE : inb.listener.id
    relay.send(wrap(msg.buf, msg.start, msg.end, listenerId, inb.source), port, '127.0.0.1')
    handedOver++
    return true
  }

  // TCP/TLS/WS: a connection belongs to the worker that accepted it. The others learn who holds which (through
  // the primary) and send to such a peer by handing the bytes to its holder.
  edge.transports.table.inboundObserver = {
    opened: (key) => send({ t: 'sipedge:flow', worker: index, key, open: true }),
    closed: (key) => send({ t: 'sipedge:flow', worker: index, key, open: false }),
  }
  edge.transports.handOff = (key, buf) => {
    const owner = flowOwners.get(key)
    const port = owner === undefined ? undefined : ports[owner]
    if (port === undefined || port === 0) return false
    relay.send(wrapFlow(key, buf), port, '127.0.0.1')
    flowsHandedOver++
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
  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_handed_over_total', 'counter', 'Responses received by this worker and handed to the worker owning their transaction', () => [
    { value: handedOver, labels },
  ])
  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_taken_over_total', 'counter', 'Responses another worker received and handed to this one', () => [
    { value: takenOver, labels },
  ])

  registerScrapeMetric(edge.metrics.registry, 'sipedge_worker_flow_messages_total', 'counter', 'Messages for a TCP/TLS/WS connection held by another worker, by direction (out = handed to it, in = written for another)', () => [
    { value: flowsHandedOver, labels: { ...labels, direction: 'out' } },
    { value: flowsTakenOver, labels: { ...labels, direction: 'in' } },
  ])

  const report = (): void => {
    if (edge.proxy === undefined) return // not started yet
    const backends: BackendReport[] = edge.dispatcher.backends().map((b) => ({
      id: b.id, set: b.set, uri: b.uri, weight: b.weight, priority: b.priority, admin: b.admin, health: b.health, activeCalls: b.activeCalls, source: b.source,
    }))
    const unready = edge.mediaUnready()
    send({ t: 'sipedge:status', worker: index, backends, dialogs: edge.proxy.dialogs.size, draining: edge.draining, probing: edge.probing, ...(unready !== undefined ? { unready } : {}) })
  }
  const timer = setInterval(report, SYNC_MS)
  timer.unref()
  // The primary's /readyz should not lag an rtpengine going down by a sync period.
  edge.on('media', report)

  let knowPorts: (() => void) | undefined
  const portsKnown = new Promise<void>((resolve) => (knowPorts = resolve))
  const onMessage = (m: unknown): void => {
    if (!isMessage<ToWorker>(m)) return
    switch (m.t) {
      case 'sipedge:relay-ports':
        ports = m.ports
        knowPorts?.()
        return
      case 'sipedge:flows':
        if (m.snapshot) flowOwners.clear()
        for (const [key, w] of m.flows) {
          if (w === null) flowOwners.delete(key)
          else if (w !== index) flowOwners.set(key, w)
        }
        return
      case 'sipedge:others':
        for (const b of edge.dispatcher.backends()) {
          b.otherWorkersCalls = m.calls[b.id] ?? 0
          const health = m.health?.[b.id]
          if (health !== undefined) edge.dispatcher.setHealth(b, health as HealthState)
        }
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
  await portsKnown

  return {
    reloaded(r) {
      send({ t: 'sipedge:reloaded', worker: index, ...r })
    },
    started() {
      send({ t: 'sipedge:started', worker: index })
      report()
    },
    get handedOver() { return handedOver },
    get takenOver() { return takenOver },
    close() {
      clearInterval(timer)
      process.off('message', onMessage)
      process.off('disconnect', orphaned)
      edge.off('media', report)
      edge.intercept = undefined
      edge.transports.handOff = undefined
      edge.transports.table.inboundObserver = undefined
      try {
        relay.close()
      } catch {
        // already closed
      }
    },
  }
}

const SW = `;${WORKER_PARAM}=`

/** The worker named in the URI of the first Route entry (`;sw=N`, set by setRouteWorker), or -1. */
export function routeWorker(msg: SipMessage): number {
  const line = msg.indexOf(H.Route)
  if (line < 0) return -1
  const buf = msg.buf
  const end = msg.headerValueEnd(line)
  for (let p = msg.headerValueStart(line); p + SW.length < end; p++) {
    const c = buf[p]!
    if (c === 0x3e /* > */ || c === 0x2c /* , */) return -1
    if (c !== 0x3b || (buf[p + 1]! | 0x20) !== 0x73 || (buf[p + 2]! | 0x20) !== 0x77 || buf[p + 3] !== 0x3d) continue
    let n = -1
    for (let q = p + SW.length; q < end; q++) {
      const d = buf[q]! - 48
      if (d < 0 || d > 9) break
      n = (n < 0 ? 0 : n * 10) + d
    }
    return n
  }
  return -1
}
