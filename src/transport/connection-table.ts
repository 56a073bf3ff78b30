import type { TcpConnection } from './tcp-connection.js'

/** Key for connection reuse: the remote address (no brackets) and port. */
export function peerKey(address: string, port: number): string {
  return `${address}:${port}`
}

/**
 * Live TCP connections, by id (replies go back on the connection a request came in on) and by remote
 * address:port (reuse for anything else sent to that peer, whichever side opened the connection).
 */
export class ConnectionTable {
  private readonly byId = new Map<number, TcpConnection>()
  private readonly byKey = new Map<string, TcpConnection>()
  private lastId = 0

  get size(): number {
    return this.byId.size
  }

  nextId(): number {
    this.lastId = this.lastId === 0x7fffffff ? 1 : this.lastId + 1
    return this.lastId
  }

  add(conn: TcpConnection): void {
    this.byId.set(conn.id, conn)
    this.byKey.set(conn.key, conn)
  }

  remove(conn: TcpConnection): void {
    if (this.byId.get(conn.id) === conn) this.byId.delete(conn.id)
    // A newer connection to the same peer may have taken the key over; leave it in place.
    if (this.byKey.get(conn.key) === conn) this.byKey.delete(conn.key)
  }

  get(id: number): TcpConnection | undefined {
    return this.byId.get(id)
  }

  find(key: string): TcpConnection | undefined {
    return this.byKey.get(key)
  }

  all(): TcpConnection[] {
    return [...this.byId.values()]
  }
}
