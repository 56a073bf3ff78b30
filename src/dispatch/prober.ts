import { type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { connect, isIPv6, type Socket as TcpSocket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { performance } from 'node:perf_hooks'
import { bindClientSockets } from '../util/client_sockets.js'
import { targetHostport, type Backend } from './backend.js'
import type { Dispatcher } from './dispatcher.js'
import { buildProbe, frameLength, probeBranch, readProbeReply } from './probe-wire.js'
import type { BackendTarget } from './types.js'

export interface ProberOptions {
  /** Time between probe rounds (Kamailio ds_ping_interval). Default 5000. */
  intervalMs?: number
  /** A probe not answered within this is a failure. Default 2000. */
  timeoutMs?: number
  /** Consecutive failures before 'down' (ds_probing_threshold). Default: the dispatcher's (3). */
  failThreshold?: number
  /** Consecutive good answers before 'up' (ds_inactive_threshold). Default: the dispatcher's (2). */
  okThreshold?: number
  /** Which final statuses mean alive. Default 2xx-4xx except 408, as ds_ping_reply_codes would say. */
  okCodes?: (status: number) => boolean
  /** Bind probes to the internal side, e.g. 127.0.0.9. Default: any address. */
  localAddress?: string
  /** From URI of probes. Default `sip:sipedge@<local address>`. */
  fromUri?: string
  /** Called once per counted probe (metrics): ok, or why not ('timeout', 'status 404', 'connection refused'). */
  onResult?: (ok: boolean, why: string | undefined) => void
}

export type ProbeOutcome = 'up' | 'down'

/** One probe in flight, keyed by its branch. Probes of one address are shared (one per key at a time). */
interface Pending {
  readonly branch: string
  readonly key: string
  readonly target: BackendTarget
  readonly deadline: number
  waiters: Array<(r: ProbeOutcome) => void>
  tcp?: TcpSocket
  tcpBuf?: Buffer
}

const noop = (): void => undefined
const defaultOkCodes = (s: number): boolean => s >= 200 && s < 500 && s !== 408

/**
 * OPTIONS health checks. One UDP socket per address family, a short TCP connection per probe for TCP
 * backends, one interval timer for all backends and one deadline timer for all probes in flight
 * (deadlines grow in send order, so the pending map in insertion order is a queue).
 * Results go to every live backend with the probed address; a backend removed meanwhile is ignored.
 */
export class Prober {
  private readonly d: Dispatcher
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly failThreshold: number
  private readonly okThreshold: number
  private readonly okCodes: (status: number) => boolean
  private readonly localAddress: string | undefined
  private readonly fromUri: string | undefined
  private readonly onResult: ((ok: boolean, why: string | undefined) => void) | undefined
  private readonly pending = new Map<string, Pending>()
  private readonly inFlight = new Map<string, Pending>()
  private udp4: UdpSocket | undefined
  private udp6: UdpSocket | undefined
  private binding: Promise<void> | undefined
  private interval: NodeJS.Timeout | undefined
  private deadlineTimer: NodeJS.Timeout | undefined
  private running = false

  constructor(dispatcher: Dispatcher, opts: ProberOptions = {}) {
    this.d = dispatcher
    this.intervalMs = Math.max(1, opts.intervalMs ?? 5000)
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? 2000)
    this.failThreshold = Math.max(1, opts.failThreshold ?? dispatcher.failThreshold)
    this.okThreshold = Math.max(1, opts.okThreshold ?? dispatcher.okThreshold)
    this.okCodes = opts.okCodes ?? defaultOkCodes
    this.localAddress = opts.localAddress
    this.fromUri = opts.fromUri
    this.onResult = opts.onResult
    this.onUdpMessage = this.onUdpMessage.bind(this)
    this.onDeadline = this.onDeadline.bind(this)
    this.tick = this.tick.bind(this)
  }

  /** Binds the UDP sockets, probes everything once, then every intervalMs. */
  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    await this.bindSockets()
    if (!this.running) return // stopped while binding
    this.d.healthChecked = true
    this.interval = setInterval(this.tick, this.intervalMs)
    this.interval.unref()
    this.tick()
  }

  async stop(): Promise<void> {
    this.running = false
    this.d.healthChecked = false
    if (this.interval !== undefined) clearInterval(this.interval)
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer)
    this.interval = this.deadlineTimer = undefined
    // Probes cut short by our own stop say nothing about the backend: settle without counting.
    for (const p of this.pending.values()) this.settle(p, 'down', false)
    await this.binding?.catch(() => undefined)
    const closing: Array<Promise<void>> = []
    for (const s of [this.udp4, this.udp6]) {
      if (s !== undefined) closing.push(new Promise<void>((resolve) => s.close(() => resolve())))
    }
    this.udp4 = this.udp6 = undefined
    this.binding = undefined
    await Promise.all(closing)
  }

  /**
   * Probes one backend now and applies the result to the counters of every live backend with its
   * address. Resolves with this probe's outcome ('up' = a good answer), not the resulting health.
   */
  async probeNow(b: Backend): Promise<ProbeOutcome> {
    if (b.target.proto === 'udp') await this.bindSockets()
    // Our sockets and timers are unref'd; someone awaiting this answer must keep the process alive.
    const keepAlive = setTimeout(noop, this.timeoutMs + 1000)
    try {
      return await new Promise<ProbeOutcome>((resolve) => this.probe(b.key, b.target, resolve))
    } finally {
      clearTimeout(keepAlive)
    }
  }

  /** One round: each live address once, unless its previous probe is still out or all are disabled. */
  private tick(): void {
    if (!this.running) return
    for (const key of this.d.keys()) {
      if (this.inFlight.has(key)) continue
      const group = this.d.backendsWithKey(key)
      let wanted = false
      for (const b of group) if (b.admin !== 'disabled') { wanted = true; break }
      if (wanted) this.probe(key, group[0]!.target, undefined)
    }
  }

  private probe(key: string, target: BackendTarget, waiter: ((r: ProbeOutcome) => void) | undefined): void {
    const joined = this.inFlight.get(key)
    if (joined !== undefined) {
      if (waiter !== undefined) joined.waiters.push(waiter)
      return
    }
    const p: Pending = {
      branch: probeBranch(), key, target,
      deadline: performance.now() + this.timeoutMs,
      waiters: waiter !== undefined ? [waiter] : [],
    }
    this.pending.set(p.branch, p)
    this.inFlight.set(key, p)
    if (this.deadlineTimer === undefined) this.armDeadline(this.timeoutMs)
    if (target.proto === 'udp') this.sendUdp(p)
    else this.sendTcp(p)
  }

  private sendUdp(p: Pending): void {
    const v6 = isIPv6(p.target.host)
    const sock = v6 ? this.udp6 : this.udp4
    if (sock === undefined) return this.settle(p, 'down', true, 'no socket')
    const addr = sock.address()
    const bytes = buildProbe({
      uri: `sip:${targetHostport(p.target)}`,
      viaTransport: 'UDP',
      viaHostport: hostport(this.viaHost(addr.address, v6), addr.port),
      branch: p.branch,
      from: this.fromUri ?? `sip:sipedge@${hostport(this.viaHost(addr.address, v6))}`,
      callId: `${p.branch.slice(7)}@sipedge`,
    })
    // A synchronous send error (no route, unreachable) is a failure now, not after the timeout.
    sock.send(bytes, p.target.port, p.target.host, (err) => {
      if (err) this.settle(p, 'down', true, `send error ${(err as NodeJS.ErrnoException).code ?? err.message}`)
    })
  }

  private sendTcp(p: Pending): void {
    const opts: { host: string; port: number; localAddress?: string } = { host: p.target.host, port: p.target.port }
    if (this.localAddress !== undefined && isIPv6(this.localAddress) === isIPv6(p.target.host)) {
      opts.localAddress = this.localAddress
    }
    const sock = connect(opts)
    p.tcp = sock
    sock.setNoDelay(true)
    sock.on('connect', () => {
      const v6 = isIPv6(p.target.host)
      const local = sock.localAddress ?? (v6 ? '::1' : '127.0.0.1')
      sock.write(buildProbe({
        uri: `sip:${targetHostport(p.target)};transport=tcp`,
        viaTransport: 'TCP',
        viaHostport: hostport(local, sock.localPort ?? 0),
        branch: p.branch,
        from: this.fromUri ?? `sip:sipedge@${hostport(local)}`,
        callId: `${p.branch.slice(7)}@sipedge`,
      }))
    })
    sock.on('data', (chunk: Buffer) => {
      p.tcpBuf = p.tcpBuf === undefined ? chunk : Buffer.concat([p.tcpBuf, chunk])
      for (;;) {
        let len: number
        try {
          len = frameLength(p.tcpBuf)
        } catch {
          return this.settle(p, 'down', true, 'unframeable TCP stream') // not a healthy SIP peer
        }
        if (len < 0) return
        const frame = p.tcpBuf.subarray(0, len)
        p.tcpBuf = p.tcpBuf.subarray(len)
        this.onReply(frame)
        if (!this.pending.has(p.branch)) return
      }
    })
    // Refused, reset, closed before a final answer: a failure signal, not a timeout to wait for.
    sock.on('error', (err: NodeJS.ErrnoException) => this.settle(p, 'down', true, `TCP ${err.code ?? err.message}`))
    sock.on('close', () => this.settle(p, 'down', true, 'TCP closed before an answer'))
  }

  private onUdpMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const reply = readProbeReply(msg)
    if (reply === undefined) return
    const p = this.pending.get(reply.branch)
    // Only the probed backend may answer for itself.
    if (p === undefined || p.target.proto !== 'udp' || rinfo.address !== p.target.host) return
    this.classify(p, reply.status)
  }

  private onReply(frame: Buffer): void {
    const reply = readProbeReply(frame)
    if (reply === undefined) return
    const p = this.pending.get(reply.branch)
    if (p !== undefined) this.classify(p, reply.status)
  }

  private classify(p: Pending, status: number): void {
    if (status < 200) return // provisional: wait for the final answer
    this.settle(p, this.okCodes(status) ? 'up' : 'down', true, `answered ${status}`)
  }

  /** Ends a probe once (later signals for it are ignored) and, when `count`, feeds the thresholds. */
  private settle(p: Pending, outcome: ProbeOutcome, count: boolean, why?: string): void {
    if (this.pending.get(p.branch) !== p) return
    this.pending.delete(p.branch)
    if (this.inFlight.get(p.key) === p) this.inFlight.delete(p.key)
    if (p.tcp !== undefined) p.tcp.destroy()
    if (count) {
      // Looked up now, not when sent: a backend removed meanwhile is not touched, a re-added one is.
      const reason = outcome === 'up' ? undefined : `OPTIONS probe: ${why ?? 'failed'}`
      for (const b of this.d.backendsWithKey(p.key)) {
        this.d.recordHealth(b, outcome === 'up', this.failThreshold, this.okThreshold, reason)
      }
      this.onResult?.(outcome === 'up', reason)
    }
    for (const w of p.waiters) w(outcome)
  }

  private armDeadline(ms: number): void {
    this.deadlineTimer = setTimeout(this.onDeadline, Math.max(1, Math.ceil(ms)))
    this.deadlineTimer.unref()
  }

  private onDeadline(): void {
    this.deadlineTimer = undefined
    const now = performance.now()
    for (const p of this.pending.values()) {
      if (p.deadline > now) return this.armDeadline(p.deadline - now)
      this.settle(p, 'down', true, `no answer within ${this.timeoutMs} ms`)
    }
  }

  private bindSockets(): Promise<void> {
    this.binding ??= (async () => {
      const { udp4, udp6 } = await bindClientSockets(this.localAddress, this.onUdpMessage, () => false)
      this.udp4 = udp4
      this.udp6 = udp6
    })()
    return this.binding
  }

  private viaHost(bound: string, v6: boolean): string {
    if (bound !== '0.0.0.0' && bound !== '::') return bound
    return defaultLocalHost(v6)
  }
}

/** Without a bound address, the first non-internal address of the family (responses use rport anyway). */
const localHostCache: Record<string, string> = {}
function defaultLocalHost(v6: boolean): string {
  return (localHostCache[v6 ? '6' : '4'] ??= findLocalHost(v6))
}

function findLocalHost(v6: boolean): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal && (a.family === 'IPv6') === v6 && !a.address.startsWith('fe80')) return a.address
    }
  }
  return v6 ? '::1' : '127.0.0.1'
}

function hostport(host: string, port?: number): string {
  const h = host.includes(':') ? `[${host}]` : host
  return port === undefined ? h : `${h}:${port}`
}
