import { connect, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import type { TransportContext } from './connection.js'
import { ConnectionTable, peerKey } from './connection-table.js'
import { familyOf, formatHostport, splitHostport, stripBrackets } from './listen-spec.js'
import { codedError, resolveOptions, type ResolvedOptions, type TlsOptions, type TransportHandlers, type TransportOptions } from './options.js'
import { isWebSocketProto } from './protos.js'
import { StreamConnection } from './stream-connection.js'
import { TcpListener } from './tcp.js'
import { loadTlsMaterial, TLS_MIN_VERSION, TlsListener, type SecureListener, type TlsMaterial } from './tls.js'
import type { Listener, ListenSpec, Peer, Side, TransportProto } from './types.js'
import { UdpListener } from './udp.js'
import { WsListener } from './ws.js'

type AnyListener = UdpListener | TcpListener | TlsListener | WsListener

/** Listener ids of the own ports (worker processes): the shared listener's id plus this. */
export const OWN_PORT_ID_BASE = 1000

/** Wildcard binds: let the kernel pick the source address of outbound connections. */
function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::'
}

/**
 * `udp:0.0.0.0:5060` (public) next to `udp:10.0.0.2:5060` (internal): both sockets need SO_REUSEADDR to
 * bind, and Linux then delivers each datagram to the most specific socket, so the internal address reaches
 * the internal socket and everything else the wildcard one. TCP has no such sharing (a listening wildcard
 * blocks the port): config validation refuses that combination.
 */
export function sharesWildcardPort(spec: ListenSpec, all: readonly ListenSpec[]): boolean {
  if (spec.proto !== 'udp' || spec.port === 0) return false
  return all.some(
    (o) =>
      o !== spec && o.proto === 'udp' && o.port === spec.port && o.host !== spec.host &&
      familyOf(o.host) === familyOf(spec.host) && (isWildcard(o.host) || isWildcard(spec.host)),
  )
}

/**
 * All sockets of the edge: UDP sockets, TCP/TLS servers and WebSocket servers per listen spec, plus the
 * table of their connections. Handlers are called directly; nothing here throws at the caller once started.
 */
export class Transports implements TransportContext {
  readonly listeners: Listener[]
  readonly opts: ResolvedOptions
  readonly table = new ConnectionTable()
  private readonly all: AnyListener[]
  private readonly secure: Array<AnyListener & SecureListener>
  /** Worker processes (opts.ownInternalPorts): a UDP listener facing the backends -> this process's own port beside it. */
  private readonly ownPorts = new Map<Listener, UdpListener>()
  /** Loaded at start when a tls/wss listener exists; replaced by reloadTls(). */
  private tls: TlsMaterial | undefined
  private started = false
  /** Set by worker processes: sends `buf` on a connection another worker holds; false when none does. */
  handOff: ((key: string, buf: Buffer) => boolean) | undefined

  constructor(
    specs: ListenSpec[],
    readonly handlers: TransportHandlers,
    opts?: TransportOptions,
  ) {
    this.opts = resolveOptions(opts)
    this.all = specs.map((spec, i) => this.createListener(i + 1, spec, specs))
    this.listeners = this.all
    this.secure = this.all.filter((l): l is TlsListener | WsListener => l.spec.proto === 'tls' || l.spec.proto === 'wss')
    if (this.opts.ownInternalPorts) this.createOwnPorts(specs)
  }

  /**
   * This process's own UDP port beside `listener` (worker processes, toward the backends), or undefined.
   * A request sent from it names it in its Via, so the backend's answers reach this process directly.
   */
  ownPortOf(listener: Listener): Listener | undefined {
    return this.ownPorts.get(listener)
  }

  ownPortList(): Listener[] {
    return [...this.ownPorts.values()]
  }

  /**
   * Beside each UDP listener that faces the backends (the internal ones, or all when no listener is marked
   * internal), a socket on the same address and an ephemeral port, bound by this process alone: not in
   * `listeners` (never advertised in Record-Route or Path, which any worker may serve), only a Via.
   */
  private createOwnPorts(specs: readonly ListenSpec[]): void {
    const anyInternal = specs.some((s) => s.side === 'internal')
    for (const l of this.all) {
      if (!(l instanceof UdpListener) || (anyInternal && l.spec.side !== 'internal')) continue
      // An advertised address keeps its host; the port is the one bound.
      const advertise = l.spec.advertise === undefined ? undefined : splitHostport(l.spec.advertise, 'advertise').host
      const spec: ListenSpec = { ...l.spec, port: 0, ...(advertise !== undefined ? { advertise } : {}) }
      this.ownPorts.set(l, new UdpListener(OWN_PORT_ID_BASE + l.id, spec, this.handlers, this.handlerError, this.opts.udpBufferSize))
    }
  }

  /** Bind everything; on any failure close what was bound and reject naming the address. */
  async start(): Promise<void> {
    if (this.started) return
    if (this.secure.length > 0) await this.reloadTls()
    for (const l of [...this.all, ...this.ownPorts.values()]) {
      try {
        await l.start()
      } catch (err) {
        await this.stop()
        const code = (err as { code?: string }).code ?? ''
        const where = `${l.spec.proto}:${formatHostport(l.spec.host, l.spec.port)} (${l.spec.side})`
        throw new Error(`cannot listen on ${where}: ${code || (err as Error).message}`, { cause: err })
      }
    }
    this.started = true
  }

  async stop(): Promise<void> {
    this.started = false
    for (const conn of this.table.all()) conn.destroy()
    await Promise.all([...this.all, ...this.ownPorts.values()].map((l) => l.close()))
  }

  /**
   * Read the certificate files again (SIGHUP): new TLS handshakes use the new certificate, established
   * connections keep theirs. Rejects, leaving the current certificates in place, when a file is missing or
   * a key does not match its certificate.
   */
  async reloadTls(files?: TlsOptions): Promise<void> {
    if (this.secure.length === 0 && this.tls === undefined) return
    const needClientCa = this.secure.some((l) => l.spec.clientCert === 'require')
    const tls = files !== undefined ? { ...files } : this.opts.tls
    const material = await loadTlsMaterial(tls, this.secure.length > 0, needClientCa)
    if (material.server !== undefined) for (const l of this.secure) l.setSecureContext(material.server)
    this.tls = material
    this.opts.tls = tls
  }

  listenerFor(side: Side, proto: TransportProto, family?: 4 | 6): Listener | undefined {
    return this.find(side, proto, family)
  }

  connectionCount(): number {
    return this.table.size
  }

  /** RFC 3261 §18.1.1: a request this large should not go over UDP (the proxy decides, it owns the Via). */
  exceedsUdpMtu(byteLength: number): boolean {
    return byteLength > this.opts.udpMtu
  }

  /**
   * Send one message. UDP goes out of `via` (or the first UDP listener of the destination's family, same
   * side as `via` preferred). TCP/TLS use connection `connId` when it is live, else any connection of that
   * transport to dest address:port, else open one (TLS verified against the CA bundle, SNI from
   * dest.servername). WebSocket peers, and `accepted` TCP/TLS flows, are only reachable over a connection
   * they opened: without one the send fails with ENOTCONN (RFC 7118, RFC 5626 §5.3: never connect back). Failures reach onSendError, asynchronously;
   * never throws.
   */
  send(buf: Buffer, dest: Peer, via?: Listener, connId?: number): void {
    try {
      if (dest.proto === 'udp') this.sendUdp(buf, dest, via)
      else if (dest.proto === 'tcp' || dest.proto === 'tls' || isWebSocketProto(dest.proto)) this.sendConnected(buf, dest, via, connId)
      else throw codedError('EPROTONOSUPPORT', `transport '${String(dest.proto)}' is not supported`)
    } catch (err) {
      process.nextTick(this.reportSendError, err, dest)
    }
  }

  /** Called by listeners and connections when a handler throws: keep serving, but make it visible. */
  readonly handlerError = (err: unknown): void => {
    if (this.handlers.onHandlerError) {
      try {
        this.handlers.onHandlerError(err)
        return
      } catch {
        // fall through to the process warning
      }
    }
    process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'SipedgeTransportHandlerError')
  }

  private readonly reportSendError = (err: Error, dest: Peer): void => {
    try {
      this.handlers.onSendError(err, dest)
    } catch (e) {
      this.handlerError(e)
    }
  }

  private sendUdp(buf: Buffer, dest: Peer, via: Listener | undefined): void {
    const address = stripBrackets(dest.address)
    const family = familyOf(address)
    const listener = this.pick('udp', family, via) as UdpListener | undefined
    if (listener === undefined) {
      throw codedError('ENOLISTENER', `no UDP listener for IPv${family || 4} destination ${address}`)
    }
    listener.send(buf, address, dest.port)
  }

  private sendConnected(buf: Buffer, dest: Peer, via: Listener | undefined, connId: number | undefined): void {
    if (connId !== undefined) {
      const conn = this.table.get(connId)
      if (conn !== undefined) return conn.write(buf) // a broken connection drops silently: send nothing
    }
    const address = stripBrackets(dest.address)
    const key = peerKey(dest.proto, address, dest.port)
    const existing = this.table.find(key)
    if (existing !== undefined) return existing.write(buf)
    // Worker processes: the peer's connection may be held by another worker (it accepted it): hand it the bytes.
    if (this.handOff !== undefined && this.handOff(key, buf)) return
    if (dest.accepted === true || isWebSocketProto(dest.proto)) {
      throw codedError('ENOTCONN', `no ${dest.proto.toUpperCase()} connection from ${formatHostport(address, dest.port)} (it has closed)`)
    }
    this.connect(dest, address, via).write(buf)
  }

  private connect(dest: Peer, address: string, via: Listener | undefined): StreamConnection {
    const { proto, port } = dest
    const name = proto.toUpperCase()
    if (!this.started) throw codedError('ESHUTDOWN', 'transports are not running')
    if (this.table.size >= this.opts.maxConnections) {
      throw codedError('EMFILE', `connection limit ${this.opts.maxConnections} reached`)
    }
    const family = familyOf(address)
    if (family === 0) throw codedError('EINVAL', `${name} destination '${address}' is not an IP address`)
    // Inbound data on this connection needs a listener to be attributed to; bind to its address so that
    // multi-homed hosts and containers use the right source address for the side.
    const listener = this.pick(proto, family, via)
    if (listener === undefined) throw codedError('ENOLISTENER', `no ${name} listener for IPv${family} destination ${address}`)
    const host = listener.spec.host
    const where = isWildcard(host) || familyOf(host) !== family ? { host: address, port } : { host: address, port, localAddress: host }
    let socket: Socket
    if (proto === 'tls') {
      const tls = this.tls as TlsMaterial // present: a TLS listener exists, so start() loaded it
      // rejectUnauthorized stays true: a certificate that the CA bundle does not vouch for, or that names
      // neither dest.servername nor the address, fails the connection (reported to onSendError).
      socket = connectTls({ ...where, secureContext: tls.client, minVersion: TLS_MIN_VERSION, rejectUnauthorized: true, servername: dest.servername })
    } else {
      socket = connect(where)
    }
    return new StreamConnection(this, socket, listener, { proto, address, port, servername: dest.servername }, false)
  }

  /**
   * The listener to send from: `via` itself when it fits, else one of the same side, proto and family,
   * else any of that proto and family.
   */
  private pick(proto: TransportProto, family: 0 | 4 | 6, via: Listener | undefined): AnyListener | undefined {
    const want = family === 0 ? undefined : family
    if (via !== undefined && via.spec.proto === proto && (want === undefined || (via as AnyListener).family === want)) {
      return via as AnyListener
    }
    return (via !== undefined ? this.find(via.spec.side, proto, want) : undefined) ?? this.find(undefined, proto, want)
  }

  private createListener(id: number, spec: ListenSpec, all: readonly ListenSpec[]): AnyListener {
    switch (spec.proto) {
      case 'udp': return new UdpListener(id, spec, this.handlers, this.handlerError, this.opts.udpBufferSize, sharesWildcardPort(spec, all), this.opts.reusePort)
      case 'tcp': return new TcpListener(id, spec, this)
      case 'tls': return new TlsListener(id, spec, this)
      case 'ws':
      case 'wss': return new WsListener(id, spec, this)
    }
  }

  private find(side: Side | undefined, proto: TransportProto, family: 4 | 6 | undefined): AnyListener | undefined {
    for (const l of this.all) {
      if (side !== undefined && l.spec.side !== side) continue
      if (l.spec.proto === proto && (family === undefined || l.family === family)) return l
    }
    return undefined
  }
}

// The brief names these as part of this module; they live in their own files.
export { parseListenSpec } from './listen-spec.js'
export type { TransportOptions, TransportHandlers } from './options.js'
