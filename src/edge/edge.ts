import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Backend } from '../dispatch/backend.js'
import { Dispatcher, type BackendChange } from '../dispatch/dispatcher.js'
import { Prober } from '../dispatch/prober.js'
import type { EtcdSource } from '../discovery/etcd_source.js'
import { Sides, cidrList } from '../proxy/addressing.js'
import type { NextHopResolver } from '../dns/index.js'
import type { ProxyHooks } from '../proxy/hooks.js'
import type { ProxyMedia } from '../proxy/media_step.js'
import { registerMediaMetrics } from '../media/metrics.js'
import { anchors } from '../media/index.js'
import { EdgeMedia } from './edge_media.js'
import { Proxy } from '../proxy/proxy.js'
import { parseListenSpec } from '../transport/listen-spec.js'
import { Transports } from '../transport/transports.js'
import type { Inbound, Listener, ListenSpec, Peer } from '../transport/types.js'
import { startAdmin, type AdminServer } from './admin.js'
import { adminTarget } from './admin_target.js'
import { webrtcPage } from './webrtc_page.js'
import { DEFAULT_CONFIG, changedKeys, parseBackendSpec, validateConfig, type EdgeConfig } from './config.js'
import { inboundTrunks, nextHops, proxyOptions, servedDomains, sourceFilter } from './config_inputs.js'
import { startEtcd } from './etcd_start.js'
import { keepRunning, restartNeeded } from './reload_keys.js'
import { HepExporter } from './hep.js'
import { componentLogger, createLogger, applyLogLevels } from './logger.js'
import { createMetrics, registerNextHopMetrics, type EdgeMetrics } from './metrics.js'
import { EdgeStats, statsObserver } from './stats.js'
import { Defence } from '../defence/defence.js'
import type { SharedBans } from '../defence/shared.js'
import { registerDefenceMetrics } from '../defence/metrics.js'

/**
 * Everything of EdgeConfig is optional here: missing keys take the defaults of `sipedge` itself. A key given
 * as `undefined` counts as missing (`secret: process.env.SIPEDGE_SECRET` compiles under
 * exactOptionalPropertyTypes and, when the variable is unset, gets a random secret as the CLI does).
 */
/** A section given in part takes the defaults for the rest (`failover: { maxTries: 2 }`). */
type PartialSection<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: T[K] | undefined } : T
export type EdgeOptions = { [K in keyof EdgeConfig]?: PartialSection<EdgeConfig[K]> | undefined } & {
  /** Hooks for custom SBC logic (see ProxyHooks); none by default, so the default path pays nothing. */
  hooks?: ProxyHooks
  /**
   * rtpengine anchoring the caller built and starts (`createMedia(...)`); it replaces the edge's own, which
   * the `media` config section makes (SDP untouched when neither anchors).
   */
  mediaAnchor?: ProxyMedia
  /** A pino logger; default: JSON lines on stdout at `logLevel`. */
  logger?: Logger
  /** A complete, already validated config (the CLI passes the one it loaded); other keys are then ignored. */
  config?: EdgeConfig
}

/** How a graceful shutdown ended: calls (dialogs and INVITEs being set up) still up at the deadline. */
export interface ShutdownResult {
  callsCut: number
}

export interface EdgeEvents {
  backend: [backend: Backend, change: BackendChange]
  draining: []
  /** An rtpengine instance of the edge's own media room changed health (mediaUnready() may have changed). */
  media: []
}

/**
 * One running edge: transports, proxy, dispatcher, prober, discovery, admin API. Made by `createEdge`,
 * used by the `sipedge` binary and by SBCs that embed it.
 */
export class Edge extends EventEmitter<EdgeEvents> {
  readonly config: EdgeConfig
  readonly log: Logger
  readonly dispatcher: Dispatcher
  readonly transports: Transports
  readonly stats = new EdgeStats()
  readonly metrics: EdgeMetrics
  proxy!: Proxy
  private prober: Prober | undefined
  private etcd: EtcdSource | undefined
  private admin: AdminServer | undefined
  private hep: HepExporter | undefined
  /** Scanner and toll-fraud defence (config `defence`); undefined when disabled. */
  defence: Defence | undefined
  private sharedBans: SharedBans | undefined
  /** RFC 3263 resolver for next hops given by name (the trunk, R-URIs and Routes from inside). */
  resolver: NextHopResolver | undefined
  private readonly hooks: ProxyHooks | undefined
  /** What the proxy anchors with: the caller's (library) or the one the edge owns. */
  private readonly media: ProxyMedia | undefined
  /** The media room the edge created from `media.*` (some set anchors); started and stopped with the edge. */
  private readonly ownMedia: EdgeMedia | undefined
  private started = false
  private readonly callsPerBackend = new Map<Backend, number>()
  private stopping: Promise<ShutdownResult> | undefined

  constructor(config: EdgeConfig, log: Logger, hooks?: ProxyHooks, media?: ProxyMedia) {
    super()
    this.config = config
    this.log = log
    this.hooks = hooks
    if (media === undefined) {
      this.ownMedia = EdgeMedia.create(config.media, componentLogger(log, config, 'media'), () => this.emit('media'))
      media = this.ownMedia?.proxyMedia
    }
    this.media = media
    this.dispatcher = new Dispatcher({ algorithm: config.algorithm, setAlgorithms: config.setAlgorithms })
    const specs: ListenSpec[] = [
      ...config.listen.map((l) => parseListenSpec(l, 'public')),
      ...config.internalListen.map((l) => parseListenSpec(l, 'internal')),
    ]
    const handlers = {
      onMessage: (inb: Inbound) => this.onMessage(inb),
      onParseError: (err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number) =>
        this.proxy.handleParseError(err, buf, source, listener, connId),
      onSendError: (err: Error, dest: Peer) => {
        this.stats.sendError(this.proxy?.sides.isInternalAddress(dest.address) || this.proxy?.sides.isBackendHost(dest.address) ? 1 : 0)
        this.proxy.handleSendError(err, dest)
      },
      keepOpen: (peer: Peer) => this.proxy?.dialogs.usesFlow(peer) ?? false,
    }
    this.transports = new Transports(specs, handlers, {
      maxMessageSize: config.limits.maxMessageSize,
      maxConnections: config.limits.maxConnections,
      tcpIdleTimeoutMs: config.limits.tcpIdleTimeoutMs,
      // ~200 KB by default: a few 64 KiB junk datagrams would fill it and drop calls' packets (kernel caps at rmem_max).
      udpBufferSize: UDP_BUFFER_BYTES,
      reusePort: config.workers > 1,
      ownInternalPorts: config.workers > 1,
      tls: config.tls,
      ws: config.ws,
    })
    this.metrics = createMetrics(this.stats, {
      callsActive: () => this.proxy.dialogs.size,
      callsPerBackend: () => this.dispatcher.backends().map((b) => ({ id: b.id, set: b.set, calls: b.activeCalls })),
      backends: () => this.dispatcher.backends().map((b) => ({ id: b.id, set: b.set, health: b.health, admin: b.admin })),
      transactions: () => this.proxy.transactionCount,
      dialogs: () => this.proxy.dialogs.size,
      tcpConnections: () => this.transports.connectionCount(),
      etcdState: () => (!this.etcd ? 'off' : this.etcd.state === 'synced' ? 'connected' : 'disconnected'),
    })
    registerDefenceMetrics(this.metrics.registry, () => this.defence)
    registerNextHopMetrics(this.metrics.registry, () => this.proxy?.path.registrations, () => this.resolver)
    if (media?.stats) registerMediaMetrics(this.metrics.registry, media.stats, media.anchor.pool)
  }

  /** Binds the sockets, loads static backends, starts probing, discovery and the admin API. */
  async start(): Promise<void> {
    if (this.started) return
    const c = this.config
    for (const entry of c.backends) {
      const spec = parseBackendSpec(entry)
      if (typeof spec === 'string') throw new Error(`backends: ${spec}`)
      this.dispatcher.upsert(spec)
    }
    await this.transports.start()
    if (this.ownMedia) {
      await this.ownMedia.room.start()
      this.log.info({ rtpengine: this.ownMedia.room.pool.instances.map((i) => `${i.id}=${i.toString()}`) }, 'media anchoring through rtpengine')
    }
    if (c.defence.enabled) {
      const d = c.defence
      this.defence = new Defence({ ...d, maxTracked: d.maxBans, log: componentLogger(this.log, c, 'defence') })
    }
    const sides = new Sides(this.transports.listeners, cidrList(c.trustedNetworks), servedDomains(c.domains), this.transports.ownPortList())
    const hops = nextHops(c, this.transports.listeners, sides.twoSided, componentLogger(this.log, c, 'dns'))
    this.resolver = hops.resolver
    this.proxy = new Proxy(
      this.transports,
      sides,
      this.dispatcher,
      {
        ...proxyOptions(c),
        ...hops.proxy,
        ...(this.hooks ? { hooks: this.hooks } : {}),
        ...(this.media ? { media: this.media } : {}),
        observer: statsObserver(this.stats, (b) => this.callsPerBackend.set(b, (this.callsPerBackend.get(b) ?? 0) + 1)),
        ...(this.defence ? { defence: this.defence } : {}),
      },
      componentLogger(this.log, c, 'proxy'),
    )
    this.refreshBackendHosts()
    this.dispatcher.onChange = (b, what) => {
      if (what === 'added' || what === 'removed') this.refreshBackendHosts()
      // 'probing' comes and goes with single failed transactions: not worth a line at info.
      const level = what !== 'health' ? 'info' : b.health === 'down' ? 'warn' : b.health === 'probing' ? 'debug' : 'info'
      const why = what === 'health' && b.health !== 'up' ? { reason: b.lastFailure } : {}
      this.log[level]({ backend: b.id, uri: b.uri, admin: b.admin, health: b.health, change: what, ...why }, 'backend changed')
      this.emit('backend', b, what)
    }
    this.proxy.start()

    if (c.hep) {
      this.hep = new HepExporter({ ...c.hep, onResult: (ok) => this.stats.hep(ok) })
      this.captureOutgoing(this.hep)
    }
    await this.startProber(c.probe)
    const discovery = await startEtcd(c, this.dispatcher, this.defence, this.log)
    this.etcd = discovery.etcd
    this.sharedBans = discovery.sharedBans
    if (c.admin) {
      const adminLog = componentLogger(this.log, c, 'admin')
      this.admin = await startAdmin(adminTarget(this), {
        listen: c.admin,
        ...(c.adminToken ? { token: c.adminToken } : {}),
        ...(c.adminWebrtcPage !== undefined ? { webrtcPage: webrtcPage(c.adminWebrtcPage) } : {}),
        log: adminLog,
      })
    }
    this.started = true
    this.log.info(
      {
        listen: this.transports.listeners.map((l) => `${l.spec.proto}:${l.hostport} (${l.spec.side})`),
        backends: this.dispatcher.backends().length,
        admin: this.admin ? `${this.admin.address}:${this.admin.port}` : undefined,
      },
      'sipedge started',
    )
  }

  private async startProber(p: EdgeConfig['probe']): Promise<void> {
    if (!p.enabled) return
    const local = (this.transports.listeners.find((l) => l.spec.side === 'internal') ?? this.transports.listeners[0])?.spec.host
    const prober = new Prober(this.dispatcher, {
      intervalMs: p.intervalMs,
      timeoutMs: p.timeoutMs,
      failThreshold: p.failThreshold,
      okThreshold: p.okThreshold,
      onResult: (ok) => this.stats.probe(ok),
      ...(local && local !== '0.0.0.0' && local !== '::' ? { localAddress: local } : {}),
    })
    this.prober = prober
    await prober.start()
    this.dispatcher.onSuspect = (b) => void prober.probeNow(b).catch(() => {})
  }

  /** Calls answered per backend id since start (the demo's summary, tests). */
  callsByBackend(): Array<{ id: string; hostport: string; calls: number }> {
    return [...this.callsPerBackend].map(([b, calls]) => ({ id: b.id, hostport: `${b.target.host}:${b.target.port}`, calls }))
  }

  /** The listeners as bound (ports resolved when 0 was asked). */
  get sockets(): readonly Listener[] {
    return this.transports.listeners
  }

  get adminPort(): number | undefined {
    return this.admin?.port
  }

  get draining(): boolean {
    return this.proxy?.draining ?? false
  }

  /**
   * Graceful stop (SIGTERM): new INVITEs get 503 + Retry-After, calls in progress go on until they end or the
   * deadline passes, then everything closes.
   */
  shutdown(deadlineMs = this.config.shutdownTimeoutMs): Promise<ShutdownResult> {
    if (this.stopping) return this.stopping
    this.stopping = (async () => {
      if (!this.started) return { callsCut: 0 }
      this.proxy.draining = true
      this.emit('draining')
      const until = Date.now() + deadlineMs
      this.log.info({ calls: this.proxy.dialogs.size, deadlineMs }, 'draining: no new calls, waiting for calls in progress')
      // 20 ms steps: an idle edge stops at once, a busy one within a step of its last call ending.
      while (Date.now() < until && this.proxy.busy > 0) {
        await new Promise((r) => setTimeout(r, 20))
        this.proxy.dialogs.purge()
      }
      const callsCut = this.proxy.busy
      if (callsCut > 0) this.log.warn({ callsCut, deadlineMs }, `drain deadline passed: cutting ${callsCut} call(s) still in progress`)
      else this.log.info('drained: no call in progress, stopping')
      await this.close()
      return { callsCut }
    })()
    return this.stopping
  }

  /** Immediate stop. */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.stopping
      return
    }
    this.stopping = this.close().then(() => ({ callsCut: 0 }))
    await this.stopping
  }

  /**
   * SIGHUP: apply what can change live (everything but RESTART_ONLY); returns the changed keys that need a
   * restart. Calls and transactions in progress keep the settings they started with.
   */
  async reload(next: EdgeConfig): Promise<string[]> {
    // Certificates first (files re-read even when their names did not change): a bad file rejects the
    // whole reload and the running certificates stay.
    await this.transports.reloadTls(next.tls)
    const changed = changedKeys(this.config, next)
    const needRestart = restartNeeded(this.config, next, changed)
    applyLogLevels(this.log, next)
    this.dispatcher.configureAlgorithms(next.algorithm, next.setAlgorithms)
    if (this.proxy) {
      this.proxy.reconfigure({
        rateLimit: next.rateLimit,
        failover: next.failover,
        maskCallId: next.maskCallId,
        inboundTrunks: next.inboundTrunks.length ? inboundTrunks(next.inboundTrunks) : undefined,
        filters: {
          public: sourceFilter(next.allowPublic, next.denyPublic),
          internal: sourceFilter(next.allowInternal, next.denyInternal),
        },
      })
      this.proxy.sides.setInternalNets(cidrList(next.trustedNetworks))
      this.proxy.sides.setDomains(servedDomains(next.domains))
    }
    if (this.started && changed.includes('probe')) {
      const old = this.prober
      this.prober = undefined
      this.dispatcher.onSuspect = undefined
      await old?.stop()
      await this.startProber(next.probe)
    }
    // Static backends: upsert the new list, remove static ones that disappeared (health is kept by id).
    const keep = new Set<string>()
    for (const entry of next.backends) {
      const spec = parseBackendSpec(entry)
      if (typeof spec === 'string') continue
      keep.add(spec.id)
      this.dispatcher.upsert(spec)
    }
    for (const b of this.dispatcher.backends()) if (b.source === 'static' && !keep.has(b.id)) this.dispatcher.remove(b.id)
    if (changed.includes('media')) this.reloadMedia(next, needRestart)
    Object.assign(this.config, keepRunning(this.config, next, needRestart))
    return needRestart
  }

  /**
   * SIGHUP on `media`: the instance list, policy, flags and per-set modes apply to new commands. An edge that
   * started without anchoring has no media room: turning it on needs a restart.
   */
  private reloadMedia(next: EdgeConfig, needRestart: string[]): void {
    if (!this.ownMedia) {
      if (anchors(next.media) && !this.media) needRestart.push('media.mode', 'media.sets')
      return
    }
    this.ownMedia.reconfigure(keepRunning(this.config, next, needRestart).media)
  }

  /** OPTIONS probes running (config `probe.enabled`, as last loaded or reloaded). */
  get probing(): boolean {
    return this.prober !== undefined
  }

  /** /readyz: a set anchors with policy reject and no rtpengine can take a call: every new call would get 503. */
  mediaUnready(): string | undefined {
    return this.ownMedia?.unready()
  }

  /** The address of the rtpengine a call's token names (`/dialogs`). */
  rtpengineAddress(id: string): string | undefined {
    return this.media?.anchor.pool.get(id)?.toString()
  }

  private async close(): Promise<void> {
    this.prober && (await this.prober.stop())
    this.etcd && (await this.etcd.stop())
    this.sharedBans && (await this.sharedBans.stop())
    this.admin && (await this.admin.close())
    this.proxy?.stop()
    this.proxy?.clear()
    this.hep?.close()
    this.resolver?.stop()
    await this.ownMedia?.room.stop()
    await this.transports.stop()
    this.started = false
  }

  /** Worker processes (src/edge/workers): true when the message belongs to another worker and was handed to it. */
  intercept: ((inb: Inbound) => boolean) | undefined

  /** A message as if a listener had received it (a worker's relay hands in what another worker received). */
  onMessage(inb: Inbound): void {
    if (this.intercept !== undefined && this.intercept(inb)) return
    if (this.hep) this.hep.capture(inb.msg.buf.subarray(inb.msg.start, inb.msg.end), inb.source, { address: inb.listener.spec.host, port: inb.listener.port }, inb.source.proto)
    this.proxy.handleMessage(inb)
  }

  /** HEP sees what the edge sends too (siptrace style): every send goes through the exporter first. */
  private captureOutgoing(hep: HepExporter): void {
    const transports = this.transports
    const send = transports.send.bind(transports)
    transports.send = (buf, dest, via, connId) => {
      const from = via ?? transports.listeners[0]
      if (from) hep.capture(buf, { address: from.spec.host, port: from.port }, dest, dest.proto)
      send(buf, dest, via, connId)
    }
  }

  private refreshBackendHosts(): void {
    const hosts = new Set<string>()
    for (const b of this.dispatcher.backends()) hosts.add(b.target.host)
    this.proxy.sides.setBackendHosts(hosts)
  }
}

/** SO_RCVBUF/SO_SNDBUF of the UDP listeners (and of the workers' relay sockets, which take half their traffic). */
export const UDP_BUFFER_BYTES = 4 * 1024 * 1024

/**
 * Creates an edge from options (validated like the config file: a bad option throws an Error listing every
 * problem). Call `start()` to bind and run.
 */
export async function createEdge(options: EdgeOptions = {}): Promise<Edge> {
  const { hooks, logger, config: given, mediaAnchor: media, ...rawGiven } = options
  const raw = Object.fromEntries(Object.entries(rawGiven).filter(([, v]) => v !== undefined)) as Partial<EdgeConfig>
  const { config, errors, warnings } = given ? { config: given, errors: [], warnings: [] } : validateConfig(raw, 'options')
  if (!config) throw new Error(`invalid sipedge options:\n  ${errors.join('\n  ')}`)
  if (!config.secret) config.secret = randomBytes(24).toString('base64url')
  // A logger handed in sets the level too, unless the options name one (component loggers follow the config).
  if (logger && raw.logLevel === undefined && !given) config.logLevel = logger.level as EdgeConfig['logLevel']
  const log = logger ?? createLogger(config)
  for (const w of warnings) log.warn(w)
  return new Edge(config, log, hooks, media)
}

export { DEFAULT_CONFIG }
