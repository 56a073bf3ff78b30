import type { Server, Socket } from 'node:net'
import type { TransportContext } from './connection.js'
import { advertisedHostport, familyOf } from './listen-spec.js'
import type { Listener, ListenSpec } from './types.js'

/**
 * What TCP, TLS and WebSocket listeners share: binding a `net.Server` (or its TLS/HTTP subclasses), the
 * advertised address, the connection limit, and closing with every socket it accepted, including those
 * still in a TLS handshake or an HTTP upgrade (they would otherwise hold close() up until they time out).
 */
export abstract class ServerListener implements Listener {
  readonly family: 4 | 6
  /** Connections refused (limits, failed handshakes, refused upgrades), for metrics. */
  refused = 0
  private boundPort = 0
  private advertised = ''
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()

  constructor(
    readonly id: number,
    readonly spec: ListenSpec,
    protected readonly ctx: TransportContext,
  ) {
    this.family = familyOf(spec.host) === 6 ? 6 : 4
  }

  get port(): number {
    return this.boundPort
  }

  get hostport(): string {
    return this.advertised
  }

  /** Subclasses call this once with their server, from their constructor. */
  protected attach(server: Server): void {
    this.server = server
    server.on('connection', this.track)
    // After start, a server error (e.g. EMFILE on accept) must not take the process down.
    server.on('error', this.onServerError)
  }

  /** True when one more connection fits the edge-wide limit; counts a refusal otherwise. */
  protected admit(): boolean {
    if (this.ctx.table.size < this.ctx.opts.maxConnections) return true
    this.refused++
    return false
  }

  /** tls/wss servers' `tlsClientError`: a failed or timed-out handshake closes that socket only. */
  protected readonly onHandshakeError = (_err: Error, socket: Socket): void => {
    this.refused++
    socket.destroy()
  }

  start(): Promise<void> {
    const server = this.server as Server
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => reject(err)
      server.once('error', onListenError)
      // exclusive: a cluster worker binds its own socket (not a handle shared through the primary); with
      // reusePort every worker does so on the same port and the kernel spreads new connections over them.
      const shared = this.ctx.opts.reusePort ? { reusePort: true, exclusive: true } : {}
      server.listen({ host: this.spec.host, port: this.spec.port, ipv6Only: this.family === 6, ...shared }, () => {
        server.off('error', onListenError)
        const addr = server.address()
        this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : this.spec.port
        this.advertised = advertisedHostport(this.spec, this.boundPort)
        resolve()
      })
    })
  }

  close(): Promise<void> {
    const server = this.server as Server
    return new Promise((resolve) => {
      for (const s of this.sockets) s.destroy()
      if (!server.listening) return resolve()
      server.close(() => resolve())
    })
  }

  private readonly track = (socket: Socket): void => {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
  }

  private readonly onServerError = (err: Error): void => {
    if (this.server?.listening === true) this.ctx.handlerError(err)
  }
}
