import { createServer, type Socket } from 'node:net'
import type { TransportContext } from './connection.js'
import { ServerListener } from './server-listener.js'
import { StreamConnection } from './stream-connection.js'
import type { ListenSpec } from './types.js'

/** A TCP listen socket of the edge; accepted connections join the shared connection table. */
export class TcpListener extends ServerListener {
  constructor(id: number, spec: ListenSpec, ctx: TransportContext) {
    super(id, spec, ctx)
    this.attach(createServer({ noDelay: true }, this.onConnection))
  }

  private readonly onConnection = (socket: Socket): void => {
    const { remoteAddress, remotePort } = socket
    if (!this.admit() || remoteAddress === undefined || remotePort === undefined) return void socket.destroy()
    new StreamConnection(this.ctx, socket, this, { proto: 'tcp', address: remoteAddress, port: remotePort }, true)
  }
}
