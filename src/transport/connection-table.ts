import type { Connection } from './connection.js'
import type { TransportProto } from './types.js'

/** Key for connection reuse: transport, remote address (no brackets) and port. */
export function peerKey(proto: TransportProto, address: string, port: number): string {
  return `${proto}:${address}:${port}`
}

/**
 * Live connections, by id (replies go back on the connection a request came in on) and by transport +
 * remote address:port (reuse for anything else sent to that peer, whichever side opened the connection).
 */
export class ConnectionTable {
  private readonly byId = new Map<number, Connection>()
  private readonly byKey = new Map<string, Connection>()
  private lastId = 0
  /** Told when a connection a peer opened to us appears and goes (worker processes share who holds which). */
  inboundObserver: { opened(key: string): void; closed(key: string): void } | undefined

  get size(): number {
    return this.byId.size
  }

  nextId(): number {
    this.lastId = this.lastId === 0x7fffffff ? 1 : this.lastId + 1
    return this.lastId
  }

  add(conn: Connection): void {
    this.byId.set(conn.id, conn)
    this.byKey.set(conn.key, conn)
    if (conn.inbound) this.inboundObserver?.opened(conn.key)
  }

  remove(conn: Connection): void {
    if (this.byId.get(conn.id) === conn) this.byId.delete(conn.id)
    // A newer connection to the same peer may have taken the key over; leave it in place.
    if (this.byKey.get(conn.key) === conn) {
      this.byKey.delete(conn.key)
      if (conn.inbound) this.inboundObserver?.closed(conn.key)
    }
  }

  get(id: number): Connection | undefined {
    return this.byId.get(id)
  }

  find(key: string): Connection | undefined {
    return this.byKey.get(key)
  }

  all(): Connection[] {
    return [...this.byId.values()]
  }
}
