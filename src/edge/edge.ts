import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Backend } from '../dispatch/backend.js'
import { Dispatcher, type BackendChange } from '../dispatch/dispatcher.js'
import { Prober } from '../dispatch/prober.js'
import type { EtcdSource } from '../discovery/etcd_source.js'
import { Sides, cidrList, peerFromUri } from '../proxy/addressing.js'
import type { ProxyHooks } from '../proxy/hooks.js'
import { SourceFilter } from '../proxy/guard.js'
import { Proxy, type ProxyObserver } from '../proxy/proxy.js'
import { parseUri } from '../sip/index.js'
import { parseListenSpec } from '../transport/listen-spec.js'
import { Transports } from '../transport/transports.js'
import type { Inbound, Listener, ListenSpec, Peer } from '../transport/types.js'
import { startAdmin, type AdminServer, type AdminTarget } from './admin.js'
import { DEFAULT_CONFIG, changedKeys, parseBackendSpec, validateConfig, type EdgeConfig } from './config.js'
import { HepExporter } from './hep.js'
import { componentLogger, createLogger, applyLogLevels } from './logger.js'
import { createMetrics, type EdgeMetrics } from './metrics.js'
import { DIR_IN, DIR_OUT, EdgeStats, sideIndex } from './stats.js'

/** Everything of EdgeConfig is optional here: missing keys take the defaults of `sipedge` itself. */
export type EdgeOptions = Partial<EdgeConfig> & {
  /** Hooks for custom SBC logic (see ProxyHooks); none by default, so the default path pays nothing. */
  hooks?: ProxyHooks
  /** A pino logger; default: JSON lines on stdout at `logLevel`. */
  logger?: Logger
  /** A complete, already validated config (the CLI passes the one it loaded); other keys are then ignored. */
  config?: EdgeConfig
}

export interface EdgeEvents {
  backend: [backend: Backend, change: BackendChange]
  draining: []
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
  private readonly hooks: ProxyHooks | undefined
  private started = false
  private readonly callsPerBackend = new Map<Backend, number>()
  private stopping: Promise<void> | undefined

  constructor(config: EdgeConfig, log: Logger, hooks?: ProxyHooks) {
    super()
    this.config = config
    this.log = log
    this.hooks = hooks
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
        this.stats.sendError(0)
        this.proxy.handleSendError(err, dest)
      },
    }
    this.transports = new Transports(specs, handlers, {
      maxMessageSize: config.limits.maxMessageSize,
      maxConnections: config.limits.maxConnections,
      tcpIdleTimeoutMs: config.limits.tcpIdleTimeoutMs,
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
    const sides = new Sides(this.transports.listeners, cidrList(c.trustedNetworks))
    let trunk: Peer | undefined
    if (c.trunk) {
      trunk = peerFromUri(parseUri(c.trunk))
      if (!trunk) throw new Error(`trunk: "${c.trunk}" must have an IP literal host`)
    }
    this.proxy = new Proxy(
      this.transports,
      sides,
      this.dispatcher,
      {
        secret: c.secret,
        failover: c.failover,
        maxTransactions: c.limits.maxTransactions,
        maxDialogs: c.limits.maxDialogs,
        dialogTtlS: c.limits.dialogTtlS,
        ...(trunk ? { trunk } : {}),
        ...(this.hooks ? { hooks: this.hooks } : {}),
        observer: this.observer(),
        rateLimit: c.rateLimit,
        maskCallId: c.maskCallId,
        filters: {
          public: sourceFilter(c.allowPublic, c.denyPublic),
          internal: sourceFilter(c.allowInternal, c.denyInternal),
        },
      },
      componentLogger(this.log, c, 'proxy'),
    )
    this.refreshBackendHosts()
    this.dispatcher.onChange = (b, what) => {
      if (what === 'added' || what === 'removed') this.refreshBackendHosts()
      // 'probing' comes and goes with single failed transactions: not worth a line at info.
      const level = what !== 'health' ? 'info' : b.health === 'down' ? 'warn' : b.health === 'probing' ? 'debug' : 'info'
      this.log[level]({ backend: b.id, uri: b.uri, admin: b.admin, health: b.health, change: what }, 'backend changed')
      this.emit('backend', b, what)
    }
    this.proxy.start()

    if (c.hep) {
      this.hep = new HepExporter({ ...c.hep, onResult: (ok) => this.stats.hep(ok) })
      this.captureOutgoing(this.hep)
    }
    if (c.probe.enabled) {
      const local = (this.transports.listeners.find((l) => l.spec.side === 'internal') ?? this.transports.listeners[0])?.spec.host
      this.prober = new Prober(this.dispatcher, {
        intervalMs: c.probe.intervalMs,
        timeoutMs: c.probe.timeoutMs,
        failThreshold: c.probe.failThreshold,
        okThreshold: c.probe.okThreshold,
        ...(local && local !== '0.0.0.0' && local !== '::' ? { localAddress: local } : {}),
      })
      await this.prober.start()
      const prober = this.prober
      this.dispatcher.onSuspect = (b) => void prober.probeNow(b).catch(() => {})
    }
    if (c.etcd) {
      const e = c.etcd
      // Loaded only when configured: the etcd client (gRPC, protobufjs) costs ~40 MB and start-up time.
      const { EtcdSource } = await import('../discovery/etcd_source.js')
      this.etcd = new EtcdSource(this.dispatcher, {
        endpoints: e.endpoints,
        prefix: e.prefix,
        logger: componentLogger(this.log, c, 'etcd'),
        ...(e.username ? { auth: { username: e.username, password: e.password ?? '' } } : {}),
        ...(e.cacert || e.cert || e.key
          ? { tls: { ...(e.cacert ? { ca: e.cacert } : {}), ...(e.cert ? { cert: e.cert } : {}), ...(e.key ? { key: e.key } : {}) } }
          : {}),
      })
      void this.etcd.start()
    }
    if (c.admin) {
      const adminLog = componentLogger(this.log, c, 'admin')
      this.admin = await startAdmin(this.adminTarget(), {
        listen: c.admin,
        ...(c.adminToken ? { token: c.adminToken } : {}),
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
  shutdown(deadlineMs = this.config.shutdownTimeoutMs): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopping = (async () => {
      if (!this.started) return
      this.proxy.draining = true
      this.emit('draining')
      const until = Date.now() + deadlineMs
      this.log.info({ calls: this.proxy.dialogs.size, deadlineMs }, 'draining: no new calls, waiting for calls in progress')
      while (Date.now() < until && this.proxy.busy > 0) {
        await new Promise((r) => setTimeout(r, 100))
        this.proxy.dialogs.purge()
      }
      this.log.info({ left: this.proxy.dialogs.size }, 'drained, stopping')
      await this.close()
    })()
    return this.stopping
  }

  /** Immediate stop. */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopping = this.close()
    return this.stopping
  }

  /** SIGHUP: apply what can change live; returns the keys that need a restart. */
  async reload(next: EdgeConfig): Promise<string[]> {
    // Certificates first (files re-read even when their names did not change): a bad file rejects the
    // whole reload and the running certificates stay.
    await this.transports.reloadTls(next.tls)
    const changed = changedKeys(this.config, next)
    const needRestart = changed.filter((k) => RESTART_ONLY.has(k.split('.')[0]!))
    applyLogLevels(this.log, next)
    // Static backends: upsert the new list, remove static ones that disappeared (health is kept by id).
    const keep = new Set<string>()
    for (const entry of next.backends) {
      const spec = parseBackendSpec(entry)
      if (typeof spec === 'string') continue
      keep.add(spec.id)
      this.dispatcher.upsert(spec)
    }
    for (const b of this.dispatcher.backends()) if (b.source === 'static' && !keep.has(b.id)) this.dispatcher.remove(b.id)
    for (const [set, alg] of Object.entries(next.setAlgorithms)) this.dispatcher.setAlgorithm(set, alg)
    Object.assign(this.config, { ...next, ...pick(this.config, needRestart) })
    return needRestart
  }

  private async close(): Promise<void> {
    this.prober && (await this.prober.stop())
    this.etcd && (await this.etcd.stop())
    this.admin && (await this.admin.close())
    this.proxy?.stop()
    this.proxy?.clear()
    this.hep?.close()
    await this.transports.stop()
    this.started = false
  }

  private onMessage(inb: Inbound): void {
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

  private observer(): ProxyObserver {
    const s = this.stats
    return {
      request: (side, method) => s.request(sideIndex(side), DIR_IN, method),
      response: (side, status) => s.response(sideIndex(side), DIR_OUT, status),
      parseError: (side) => s.parseError(sideIndex(side)),
      refused: (reason) => {
        if (reason === 'relay' || reason === 'token') s.relayRefused()
      },
      failover: () => s.failover(),
      callStarted: (b, ms) => {
        if (b) this.callsPerBackend.set(b, (this.callsPerBackend.get(b) ?? 0) + 1)
        s.callStarted()
        s.setupTime(ms)
      },
      callEnded: () => s.callEnded(),
      retransmission: () => s.retransmission(),
    }
  }

  private adminTarget(): AdminTarget {
    return {
      metrics: () => this.metrics.metrics(),
      contentType: this.metrics.contentType,
      ready: () => {
        if (this.draining) return { ready: false, reason: 'draining' }
        if (!this.dispatcher.backends().some((b) => b.eligible)) return { ready: false, reason: 'no eligible backend' }
        return { ready: true }
      },
      backends: () =>
        this.dispatcher.backends().map((b) => ({
          id: b.id,
          set: b.set,
          uri: b.uri,
          weight: b.weight,
          priority: b.priority,
          admin: b.admin,
          health: b.health,
          activeCalls: b.activeCalls,
          source: b.source,
        })),
      dialogs: (offset, limit) => {
        const page = this.proxy.dialogs.page(offset, limit)
        return {
          total: page.total,
          items: page.items.map((d) => ({
            callId: d.callId,
            direction: d.direction,
            backend: d.backend?.id,
            createdAt: new Date(d.createdAt).toISOString(),
          })),
        }
      },
      setAdmin: (id, state) => this.dispatcher.setAdmin(id, state),
    }
  }
}

function sourceFilter(allow: string[], deny: string[]): SourceFilter {
  return new SourceFilter(allow.length ? cidrList(allow) : undefined, deny.length ? cidrList(deny) : undefined)
}

const RESTART_ONLY = new Set(['listen', 'internalListen', 'secret', 'admin', 'adminToken', 'limits', 'etcd', 'hep', 'trunk'])

function pick(obj: EdgeConfig, keys: string[]): Partial<EdgeConfig> {
  const out: Record<string, unknown> = {}
  for (const k of keys) {
    const top = k.split('.')[0]!
    out[top] = (obj as unknown as Record<string, unknown>)[top]
  }
  return out as Partial<EdgeConfig>
}

/**
 * Creates an edge from options (validated like the config file: a bad option throws an Error listing every
 * problem). Call `start()` to bind and run.
 */
export async function createEdge(options: EdgeOptions = {}): Promise<Edge> {
  const { hooks, logger, config: given, ...raw } = options
  const { config, errors, warnings } = given ? { config: given, errors: [], warnings: [] } : validateConfig(raw, 'options')
  if (!config) throw new Error(`invalid sipedge options:\n  ${errors.join('\n  ')}`)
  if (!config.secret) config.secret = randomBytes(24).toString('base64url')
  // A logger handed in sets the level too, unless the options name one (component loggers follow the config).
  if (logger && raw.logLevel === undefined && !given) config.logLevel = logger.level as EdgeConfig['logLevel']
  const log = logger ?? createLogger(config)
  for (const w of warnings) log.warn(w)
  return new Edge(config, log, hooks)
}

export { DEFAULT_CONFIG }
