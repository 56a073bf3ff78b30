import { createServer, type Server, type Socket } from 'node:net'
import { advertisedHostport, familyOf } from './listen-spec.js'
import { TcpConnection, type TcpContext } from './tcp-connection.js'
import type { Listener, ListenSpec } from './types.js'

/** A TCP listen socket of the edge; accepted connections join the shared connection table. */
export class TcpListener implements Listener {
  readonly family: 4 | 6
  private boundPort = 0
  private advertised = ''
  private readonly server: Server
  /** Connections refused because the table was full (for metrics). */
  refused = 0

  constructor(
    readonly id: number,
    readonly spec: ListenSpec,
    private readonly ctx: TcpContext,
  ) {
    this.family = familyOf(spec.host) === 6 ? 6 : 4
    this.server = createServer({ noDelay: true }, this.onConnection)
    // After start, a server error (e.g. EMFILE on accept) must not take the process down.
    this.server.on('error', this.onServerError)
  }

  get port(): number {
    return this.boundPort
  }

  get hostport(): string {
    return this.advertised
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => reject(err)
      this.server.once('error', onListenError)
      this.server.listen({ host: this.spec.host, port: this.spec.port, ipv6Only: this.family === 6 }, () => {
        this.server.off('error', onListenError)
        const addr = this.server.address()
        this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : this.spec.port
        this.advertised = advertisedHostport(this.spec, this.boundPort)
        resolve()
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve()
      this.server.close(() => resolve())
    })
  }

  private readonly onConnection = (socket: Socket): void => {
    const { remoteAddress, remotePort } = socket
    if (this.ctx.table.size >= this.ctx.opts.maxConnections || remoteAddress === undefined || remotePort === undefined) {
      this.refused++
      socket.destroy()
      return
    }
    new TcpConnection(this.ctx, socket, this, { proto: 'tcp', address: remoteAddress, port: remotePort }, true)
  }

  private readonly onServerError = (err: Error): void => {
    if (this.server.listening) this.ctx.handlerError(err)
  }
}
